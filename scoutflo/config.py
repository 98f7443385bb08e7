"""Stack configuration: every key read and validated here, once, before any resource exists.

`parse_config` is pure (a mapping of raw values in, a frozen StackConfig out) so every bad-input
case is tested without Pulumi; `load_config` reads `pulumi.Config` and calls it. Defaults live on
the dataclass fields and are declared again in Pulumi.yaml for the CLI; a test keeps the two equal.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from charts_catalog import CatalogEntry
from scoutflo.charts.versions import VersionError, parse_constraint
from scoutflo.description import GITHUB_DESCRIPTION_MAX, app_description, repo_description
from scoutflo.naming import app_name_problem, dns_label_problem, ecr_prefix_problem

# An IAM OIDC provider's ARN: partition, no region, a 12-digit account, the issuer's host and path
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
# oidc-provider resource). Exactly GitHub's issuer: the CI roles' trust keys on its sub and aud.
# An IAM role's ARN (same reference, `role` resource: path and name of [\w+=,.@-], name at most 64).
_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
# The in-cluster API server address, which the EKS Argo CD capability does not support. The
# *name* `in-cluster` it does, once the local cluster is registered under it (docs.aws.amazon.com/
# eks/latest/userguide/argocd-register-clusters.html, "Register the local cluster": "You can use
# the cluster name in-cluster for compatibility with most Argo CD examples online").
IN_CLUSTER_DESTINATIONS = ("https://kubernetes.default.svc", "kubernetes.default.svc")
_GITHUB_OIDC_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:oidc-provider/token\.actions\.githubusercontent\.com")

PROJECT = "scoutflo"
Mode = Literal["vendor", "umbrella"]
RefreshMode = Literal["irsa", "static", "eso", "none"]
_APP_KEYS = {"name", "chart", "version", "targetRevision", "namespace", "values", "mode"}
SHARED_GROUP = "shared"
"""Where the resources of no app are grouped (automation/changeset.py `app_of`, plan_check.py,
render.py's tree): no app may take the name, or its resources would be listed among them."""


class ConfigError(ValueError):
    """Bad stack configuration; the message names the key, the app and the fix."""


@dataclass(frozen=True, kw_only=True)
class AppSpec:
    name: str
    """Names the GitHub repo, the ECR repository, the chart and the Argo CD Application."""
    chart: str
    """Catalog key."""
    version: str
    """Semver range of the upstream chart to import (the catalog's unless overridden)."""
    target_revision: str = "*"
    """What Argo CD tracks in ECR: '*' is the newest; an exact version pins (rollback)."""
    namespace: str
    """Where Argo CD deploys the app; defaults to the app's name."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """Catalog default values deep-merged with the app's own."""
    mode: Mode = "vendor"
    entry: CatalogEntry


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    tenant: str
    """Tenant id; a DNS label, used in shared resource names."""
    github_owner: str
    """`github:owner`: the user or organisation that owns the app repos."""
    aws_region: str
    """`aws:region`: where the ECR repositories live."""
    apps: tuple[AppSpec, ...]
    catalog_path: str = ""
    argocd_namespace: str = "argocd"
    argocd_project: str = "default"
    argocd_destination: str = "https://kubernetes.default.svc"
    """The Applications' cluster: an API server URL or EKS cluster ARN (`server`), or the name it is
    registered under in Argo CD (`name`); see scoutflo.cluster.manifests.application_destination."""
    ecr_prefix: str = ""
    """ECR namespace in front of every app repository ('' = none)."""
    token_refresh_mode: RefreshMode = "irsa"
    refresh_schedule: str = "0 */6 * * *"
    cluster_oidc_issuer: str = ""
    """The EKS cluster's OIDC issuer URL; required for the irsa and eso refresh modes."""
    argocd_capability_role_arn: str = ""
    """tokenRefreshMode=none: the EKS Argo CD capability's IAM role, granted read of the tenant's ECR."""
    github_oidc_provider_arn: str = ""
    """'' creates the account's GitHub OIDC provider; an ARN adopts an existing one."""
    aws_cli_image: str = "public.ecr.aws/aws-cli/aws-cli:2.31.21"
    kubectl_image: str = "registry.k8s.io/kubectl:v1.35.2"
    revision_history_limit: int = 10
    chart_cache_dir: str = ""
    """Where fetched charts are cached by digest ('' = ~/.cache/scoutflo/charts)."""
    required_check: str = "lint"
    """The PR workflow job that branch protection requires."""
    branch_protection: bool = True
    adopt_credential_secret: bool = False
    """Take the tenant's credential Secret already in the cluster (made by ESO before the Secret
    moved into Pulumi) into the stack by import, instead of failing its create."""
    """Protect `main` of every app repo; false on GitHub Free, where private repos get none."""
    github_token: Any = None
    """`github:token` or $GITHUB_TOKEN, as a Pulumi secret Output (the commits use it)."""
    static_access_key_id: Any = None
    """tokenRefreshMode=static: the refresher's AWS key id (secret Output)."""
    static_secret_access_key: Any = None
    chart_registry_credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    """registry host -> (username, password) for private public-chart sources (fetch time only)."""


# Pulumi key (in the `scoutflo:` namespace) -> StackConfig field, for keys with defaults.
OPTIONAL_KEYS = {
    "catalogPath": "catalog_path",
    "argocdNamespace": "argocd_namespace",
    "argocdProject": "argocd_project",
    "argocdDestination": "argocd_destination",
    "ecrPrefix": "ecr_prefix",
    "tokenRefreshMode": "token_refresh_mode",
    "refreshSchedule": "refresh_schedule",
    "clusterOidcIssuer": "cluster_oidc_issuer",
    "argocdCapabilityRoleArn": "argocd_capability_role_arn",
    "githubOidcProviderArn": "github_oidc_provider_arn",
    "awsCliImage": "aws_cli_image",
    "kubectlImage": "kubectl_image",
    "revisionHistoryLimit": "revision_history_limit",
    "chartCacheDir": "chart_cache_dir",
    "branchProtection": "branch_protection",
    "adoptCredentialSecret": "adopt_credential_secret",
}
# Secret keys: only read for tokenRefreshMode=static; never parsed here, so never in a message.
STATIC_KEY_ID = "refresherAccessKeyId"
STATIC_SECRET_KEY = "refresherSecretAccessKey"
CREDENTIALS_KEY = "chartRegistryCredentials"


def field_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(StackConfig) if f.name in OPTIONAL_KEYS.values()}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's own rule: maps merge key by key, anything else (lists too) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _need(raw: Mapping[str, Any], key: str, fix: str) -> Any:
    value = raw.get(key)
    if value in (None, ""):
        raise ConfigError(f"missing required config '{key}': {fix}")
    return value


def _as_object(key: str, value: Any) -> Any:
    # The CLI hands structured values to the program as JSON strings.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config '{key}' is not valid JSON: {err}") from None
    return value


def _as_bool(key: str, value: Any) -> bool:
    # The CLI hands a boolean to the program as the text "true" or "false", the only strings its
    # type check accepts for `type: boolean` (pulumi/pulumi sdk/go/common/workspace/project.go
    # ValidateConfigValue, lines 798-806).
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ConfigError(f"config '{key}' must be true or false, e.g. `pulumi config set {key.split(':')[1]} false`")


def _refuse_other_github_api(base_url: object) -> None:
    """pulumi-github talks to `github:baseUrl` (or $GITHUB_BASE_URL, terraform-provider-github
    github/provider.go:40 `base_url`), but the commit resource talks to api.github.com: with GitHub
    Enterprise Server the token would go to the wrong host. Until the commits follow it, refuse."""
    if base_url in (None, "") or str(base_url).rstrip("/") == "https://api.github.com":
        return
    raise ConfigError(
        "config 'github:baseUrl' (or $GITHUB_BASE_URL) points at another GitHub API than api.github.com; "
        "GitHub Enterprise Server is not supported yet: remove it with `pulumi config rm github:baseUrl`"
    )


# An EKS cluster's ARN (service-authorization reference for Amazon EKS, `cluster` resource:
# arn:${Partition}:eks:${Region}:${Account}:cluster/${ClusterName}; a cluster name is 1-100 of
# [0-9A-Za-z_-], starting alphanumeric: EKS API CreateCluster `name`).
_EKS_CLUSTER_ARN = re.compile(r"arn:aws(-[a-z]+)*:eks:[a-z0-9-]+:[0-9]{12}:cluster/[0-9A-Za-z][0-9A-Za-z_-]{0,99}")
# An Argo CD cluster name, as this stack accepts it: what `argocd cluster add --name` is given in
# the EKS guide (`in-cluster`, `local-cluster`) and DNS-like names; no spaces or slashes.
_CLUSTER_NAME = re.compile(r"[0-9A-Za-z]([0-9A-Za-z._-]{0,251}[0-9A-Za-z])?")


def destination_problem(value: str) -> str | None:
    """What is wrong with `scoutflo:argocdDestination`, or None: an https:// API server URL, an
    EKS cluster ARN (how the EKS Argo CD capability registers clusters,
    docs.aws.amazon.com/eks/latest/userguide/argocd-register-clusters.html) or a cluster name."""
    fix = (
        "use an API server URL (https://kubernetes.default.svc, the default), the EKS cluster ARN "
        "the cluster is registered under (arn:aws:eks:<region>:<account>:cluster/<name>), or the "
        "cluster name registered in Argo CD (e.g. in-cluster)"
    )
    if value.startswith("https://"):
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            return f"has an invalid port; {fix}"
        if not parts.hostname or "@" in parts.netloc or any(c.isspace() or ord(c) < 0x20 for c in value):
            return f"is not a usable https:// URL (a host, no user or password, no spaces); {fix}"
        return None
    if value.startswith("arn:"):
        return None if _EKS_CLUSTER_ARN.fullmatch(value) else f"is not an EKS cluster ARN; {fix}"
    if "://" in value:
        return f"must be an https:// URL; {fix}"
    return None if _CLUSTER_NAME.fullmatch(value) else f"is not a cluster name; {fix}"


def _check_capability(mode: str, role_arn: str, destination: object) -> None:
    """tokenRefreshMode=none is for the AWS-managed Argo CD capability of EKS: it reads ECR with
    its own IAM role (docs.aws.amazon.com/eks/latest/userguide/argocd-configure-repositories.html:
    "ECR Helm Charts | Direct integration with AWS ECR for OCI Helm charts. No Repository
    configuration needed", the Capability Role holding the IAM permissions), which this stack
    grants read of the tenant's repositories, and it does not deploy to kubernetes.default.svc
    (the cluster is registered by its ARN), so the Applications need another destination."""
    if mode != "none":
        if role_arn:
            raise ConfigError(
                f"config 'scoutflo:argocdCapabilityRoleArn' is only for tokenRefreshMode=none (this stack uses "
                f"{mode}): remove it with `pulumi config rm argocdCapabilityRoleArn`"
            )
        return
    if not _ROLE_ARN.fullmatch(role_arn):
        raise ConfigError(
            "config 'scoutflo:argocdCapabilityRoleArn' must be the IAM role ARN of the EKS Argo CD capability "
            "(arn:aws:iam::<account>:role/<name>, `aws eks describe-capability ... --query capability.roleArn`) "
            "for tokenRefreshMode=none"
        )
    if destination in (None, "") or str(destination).rstrip("/") in IN_CLUSTER_DESTINATIONS:
        raise ConfigError(
            "config 'scoutflo:argocdDestination' must name the cluster registered with the EKS Argo CD "
            "capability (its EKS cluster ARN, or the name it is registered under, such as in-cluster) for "
            "tokenRefreshMode=none: the capability does not support kubernetes.default.svc"
        )


def parse_config(raw: Mapping[str, Any], catalog: Mapping[str, CatalogEntry]) -> StackConfig:
    """Validate raw config values (keys as in the stack file) against the catalog."""
    tenant = _need(raw, "scoutflo:tenant", "set it with `pulumi config set tenant <id>`")
    if problem := dns_label_problem(tenant, 40):
        raise ConfigError(f"config 'scoutflo:tenant' {problem}")
    owner = _need(raw, "github:owner", "set it with `pulumi config set github:owner <user-or-org>`")
    region = _need(raw, "aws:region", "set it with `pulumi config set aws:region <region>`")

    options: dict[str, Any] = {}
    for key, attr in OPTIONAL_KEYS.items():
        value = raw.get(f"scoutflo:{key}")
        if value is not None:
            options[attr] = value
    if "revision_history_limit" in options:
        try:
            options["revision_history_limit"] = int(options["revision_history_limit"])
        except (TypeError, ValueError):
            raise ConfigError("config 'scoutflo:revisionHistoryLimit' must be an integer") from None
        if options["revision_history_limit"] < 1:
            raise ConfigError("config 'scoutflo:revisionHistoryLimit' must be at least 1")
    if "branch_protection" in options:
        options["branch_protection"] = _as_bool("scoutflo:branchProtection", options["branch_protection"])
    if "adopt_credential_secret" in options:
        options["adopt_credential_secret"] = _as_bool(
            "scoutflo:adoptCredentialSecret", options["adopt_credential_secret"]
        )
    not_strings = ("revision_history_limit", "branch_protection", "adopt_credential_secret")
    for key, attr in OPTIONAL_KEYS.items():
        if attr not in not_strings and not isinstance(options.get(attr, ""), str):
            raise ConfigError(f"config 'scoutflo:{key}' must be a string")

    if problem := ecr_prefix_problem(options.get("ecr_prefix", "")):
        raise ConfigError(f"config 'scoutflo:ecrPrefix' {problem}")
    if problem := dns_label_problem(options.get("argocd_namespace", "argocd")):
        raise ConfigError(f"config 'scoutflo:argocdNamespace' {problem}")
    if problem := destination_problem(options.get("argocd_destination", "https://kubernetes.default.svc")):
        raise ConfigError(f"config 'scoutflo:argocdDestination' {problem}")
    mode = options.get("token_refresh_mode", "irsa")
    if mode not in ("irsa", "static", "eso", "none"):
        raise ConfigError(
            f"config 'scoutflo:tokenRefreshMode' is {mode!r}; use 'irsa' (default), 'static', 'eso' or 'none'"
        )
    _check_capability(mode, options.get("argocd_capability_role_arn", ""), raw.get("scoutflo:argocdDestination"))
    if mode == "none" and options.get("adopt_credential_secret"):
        # Mode none has no credential Secret (components/registry_access.py): the key would
        # silently do nothing, and a leftover eso-era Secret would stay unmanaged.
        raise ConfigError(
            "config 'scoutflo:adoptCredentialSecret' adopts the credential Secret of tokenRefreshMode "
            "irsa, static or eso; tokenRefreshMode=none has none: remove it with "
            "`pulumi config rm adoptCredentialSecret`"
        )
    issuer = options.get("cluster_oidc_issuer", "")
    if mode in ("irsa", "eso") and not issuer.startswith("https://"):
        raise ConfigError(
            f"config 'scoutflo:clusterOidcIssuer' is required for tokenRefreshMode={mode}: the EKS "
            "cluster's OIDC issuer URL (`aws eks describe-cluster --query cluster.identity.oidc.issuer`), "
            "or use tokenRefreshMode=static"
        )
    if mode == "static":
        for key in (STATIC_KEY_ID, STATIC_SECRET_KEY):
            if raw.get(f"scoutflo:{key}") in (None, ""):
                raise ConfigError(
                    f"config 'scoutflo:{key}' is required for tokenRefreshMode=static: "
                    f"`pulumi config set --secret {key} …`"
                )
    arn = options.get("github_oidc_provider_arn", "")
    if arn and not _GITHUB_OIDC_ARN.fullmatch(arn):
        raise ConfigError(
            "config 'scoutflo:githubOidcProviderArn' must be the ARN of the account's "
            "token.actions.githubusercontent.com OIDC provider, or empty to create it"
        )
    if len(options.get("refresh_schedule", "0 */6 * * *").split()) != 5:
        raise ConfigError("config 'scoutflo:refreshSchedule' must be a 5-field cron expression")

    token = raw.get("github:token")
    if token in (None, ""):
        raise ConfigError(
            "missing config 'github:token': `pulumi config set --secret github:token <token>` "
            "or export GITHUB_TOKEN (repo and workflow scopes)"
        )
    _refuse_other_github_api(raw.get("github:baseUrl"))
    credentials = _parse_credentials(raw.get(f"scoutflo:{CREDENTIALS_KEY}"))
    apps = _parse_apps(_as_object("scoutflo:apps", _need(raw, "scoutflo:apps", "list the apps to deploy")), catalog)
    for app in apps:
        # The repository's description is the entry's text, a suffix and the tenant's mark.
        text = app.entry.description
        if any(unicodedata.category(c) == "Cc" for c in text):
            # GitHub answers 422 "description control characters are not allowed" (quoted in
            # github/VisualStudio#1777, r-lib/gh#92); a YAML block scalar (`|`, `>`) ends in one.
            raise ConfigError(
                f"catalog entry {app.entry.name!r} ({app.entry.path}) 'description' holds a line break or "
                f"another control character ({text!r}), which GitHub refuses in a repository description: "
                "write it on one line (a plain or quoted YAML string, not `|` or `>`)"
            )
        over = len(repo_description(app_description(text), tenant)) - GITHUB_DESCRIPTION_MAX
        if over > 0:
            raise ConfigError(
                f"catalog entry {app.entry.name!r} ({app.entry.path}) 'description' is {over} characters "
                f"too long for app {app.name!r}'s GitHub repository description (at most "
                f"{GITHUB_DESCRIPTION_MAX} with Scoutflo's suffix and tenant mark): shorten it"
            )
    return StackConfig(
        tenant=tenant,
        github_owner=owner,
        aws_region=region,
        apps=apps,
        github_token=token,
        static_access_key_id=raw.get(f"scoutflo:{STATIC_KEY_ID}"),
        static_secret_access_key=raw.get(f"scoutflo:{STATIC_SECRET_KEY}"),
        chart_registry_credentials=credentials,
        **options,
    )


def _parse_credentials(value: Any) -> dict[str, tuple[str, str]]:
    """{host: {username, password}}; values never appear in a message, only hosts and keys."""
    if value in (None, ""):
        return {}
    key = f"config 'scoutflo:{CREDENTIALS_KEY}'"
    value = _as_object(f"scoutflo:{CREDENTIALS_KEY}", value)
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must map registry hosts to {{username, password}}")
    out = {}
    for host, creds in value.items():
        if not isinstance(creds, dict) or not all(isinstance(creds.get(k), str) for k in ("username", "password")):
            raise ConfigError(f"{key} entry {host!r} needs string 'username' and 'password'")
        out[str(host)] = (creds["username"], creds["password"])
    return out


def _parse_apps(raw_apps: Any, catalog: Mapping[str, CatalogEntry]) -> tuple[AppSpec, ...]:
    if not isinstance(raw_apps, list) or not raw_apps:
        raise ConfigError("config 'scoutflo:apps' must be a non-empty list of apps (name, chart, ...)")
    seen: set[str] = set()
    apps = []
    for i, item in enumerate(raw_apps):
        where = f"config 'scoutflo:apps[{i}]'"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping with at least name and chart")
        name = item.get("name")
        if isinstance(name, str) and name:
            where = f"config 'scoutflo:apps[{i}]' (app {name!r})"
        if extra := sorted(set(item) - _APP_KEYS):
            raise ConfigError(f"{where}: unknown key {extra[0]!r}; allowed: {sorted(_APP_KEYS)}")
        if problem := app_name_problem(name):
            raise ConfigError(f"{where} 'name' {problem}")
        assert isinstance(name, str)
        if name == SHARED_GROUP:
            raise ConfigError(
                f"{where} 'name' {name!r} is reserved: the approval text, its JSON and `make render` "
                "list the stack's own resources (OIDC provider, registry credential) under it; "
                "choose another name"
            )
        if name in seen:
            raise ConfigError(f"{where} 'name' is used by an earlier app; app names must be unique")
        seen.add(name)
        chart = item.get("chart")
        if not isinstance(chart, str) or chart not in catalog:
            raise ConfigError(
                f"{where} 'chart' {chart!r} is not in the catalog; choose one of {sorted(catalog)} "
                "or add an entry under scoutflo:catalogPath"
            )
        entry = catalog[chart]
        version = item.get("version", entry.source.version)
        target = item.get("targetRevision", "*")
        for key, value in (("version", version), ("targetRevision", target)):
            try:
                parse_constraint(value)
            except VersionError as err:
                raise ConfigError(
                    f"{where} '{key}' {value!r} is not a semver version or range ({err}); "
                    "e.g. '*', '1.2.3' or '>=1.2.0 <2.0.0'"
                ) from None
        # The app's own name, not the chart's: two apps of one chart must not share a namespace.
        namespace = item.get("namespace", name)
        if problem := dns_label_problem(namespace):
            raise ConfigError(f"{where} 'namespace' {problem}")
        values = item.get("values", {}) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{where} 'values' must be a mapping of Helm values")
        mode = item.get("mode", "vendor")
        if mode not in ("vendor", "umbrella"):
            raise ConfigError(f"{where} 'mode' is {mode!r}; use 'vendor' (default) or 'umbrella'")
        if mode == "umbrella" and entry.source.kind == "template":
            raise ConfigError(f"{where} 'mode' umbrella needs a public chart; {chart!r} is a template")
        apps.append(
            AppSpec(
                name=name,
                chart=chart,
                version=version,
                target_revision=target,
                namespace=namespace,
                values=deep_merge(entry.values, values),
                mode=mode,
                entry=entry,
            )
        )
    return tuple(apps)


def load_config() -> StackConfig:
    """Read the stack's config through Pulumi, load the catalog it names, validate everything.

    Secrets are read as secret Outputs and only checked for presence, so no secret value is ever
    parsed, compared or placed in an error message.
    """
    import os

    import pulumi

    from charts_catalog import load_catalog

    raw: dict[str, Any] = {}
    for key in (
        "scoutflo:tenant",
        "scoutflo:apps",
        "github:owner",
        "aws:region",
        *(f"scoutflo:{k}" for k in OPTIONAL_KEYS),
    ):
        namespace, name = key.split(":")
        raw[key] = pulumi.Config(namespace).get(name)
    for key in (STATIC_KEY_ID, STATIC_SECRET_KEY):
        raw[f"scoutflo:{key}"] = pulumi.Config(PROJECT).get_secret(key)
    # Needed as plain text to fetch charts while the program runs; never exported or logged.
    raw[f"scoutflo:{CREDENTIALS_KEY}"] = pulumi.Config(PROJECT).get(CREDENTIALS_KEY)
    raw["github:baseUrl"] = pulumi.Config("github").get("baseUrl") or os.environ.get("GITHUB_BASE_URL")
    # The GitHub provider falls back to $GITHUB_TOKEN as well; the commits follow the same rule.
    env_token = os.environ.get("GITHUB_TOKEN")
    raw["github:token"] = pulumi.Config("github").get_secret("token") or (
        pulumi.Output.secret(env_token) if env_token else None
    )
    return parse_config(raw, load_catalog(raw.get("scoutflo:catalogPath") or None))
