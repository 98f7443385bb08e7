"""Names shared by GitHub, ECR, Helm and Argo CD, and the rules that make one name fit all four."""

from __future__ import annotations

import re
from collections.abc import Callable

# An app name is the GitHub repo, the ECR repository, the chart name and the Argo CD Application
# (also the Helm release name, which Helm caps at 53 characters). ECR's grammar forbids doubled
# separators, DNS-1123 forbids upper case, dots and underscores: the intersection is below.
APP_NAME_MAX = 53
_APP_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ECR_NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")

ARGOCD_SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"
MANAGED_BY = {"app.kubernetes.io/managed-by": "scoutflo"}


def app_name_problem(name: object) -> str | None:
    """Why `name` cannot be an app name, or None when it can."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > APP_NAME_MAX:
        return f"is {len(name)} characters; at most {APP_NAME_MAX} (Helm release names are capped)"
    if not _APP_NAME.match(name):
        return (
            "must be lower-case letters, digits and single hyphens, starting and ending with a "
            "letter or digit (it names the GitHub repo, the ECR repository, the chart and the "
            "Argo CD Application)"
        )
    return None


def dns_label_problem(value: object, max_len: int = 63) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > max_len or not _DNS_LABEL.match(value):
        return f"must be a DNS-1123 label (lower-case letters, digits, '-', at most {max_len} characters)"
    return None


def ecr_prefix_problem(prefix: object) -> str | None:
    if not isinstance(prefix, str):
        return "must be a string"
    if prefix and not _ECR_NAMESPACE.match(prefix):
        return "must be empty or an ECR namespace such as 'scoutflo' or 'team/charts' (no leading or trailing '/')"
    return None


def ecr_repository_name(prefix: str, app: str) -> str:
    """`helm push chart.tgz oci://<host>/<prefix>` lands in repository `<prefix>/<chart name>`."""
    return f"{prefix}/{app}" if prefix else app


def registry_host(account_id: str, region: str) -> str:
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def chart_repo_url(host: str, prefix: str) -> str:
    """Argo CD's Helm-over-OCI `repoURL`: host and namespace, no scheme (DESIGN.md)."""
    return f"{host}/{prefix}" if prefix else host


def oci_push_target(host: str, prefix: str) -> str:
    return f"oci://{chart_repo_url(host, prefix)}"


def registry_secret_name(tenant: str) -> str:
    return f"scoutflo-ecr-{tenant}"


# Inline policy names are scoped to their role, so one fixed name per role suffices. Every
# pulumi-aws resource that has a `name` gets one explicitly: left out, the provider draws it from
# a per-run random seed and a saved plan (`up --plan`) no longer matches the update.
READER_POLICY_NAME = "scoutflo-ecr-read"
CI_PUSH_POLICY_NAME = "scoutflo-ecr-push"


def reader_role_name(tenant: str) -> str:
    """The token refresher's IAM role (tenant <= 40 characters keeps it within IAM's 64)."""
    return f"scoutflo-{tenant}-ecr-reader"


def ecr_repository_arn(account_id: str, region: str, repository_name: str) -> str:
    return f"arn:aws:ecr:{region}:{account_id}:repository/{repository_name}"


def ecr_arn_for(region: str, repository_name: str) -> Callable[[str], str]:
    """account id -> repository ARN, for `account_id.apply(...)`."""
    return lambda account_id: ecr_repository_arn(account_id, region, repository_name)


def ci_role_name(tenant: str, app: str) -> str:
    # IAM role names are capped at 64 characters; tenant <= 40 and app <= 53 could exceed that.
    name = f"scoutflo-{tenant}-{app}-ci"
    return name if len(name) <= 64 else f"scoutflo-{app[:50]}-ci"
