"""Kubernetes objects as plain dicts: the Argo CD Application, the registry credential template and
the ECR token refresher. Components wrap them in resources; tests validate them against schemas.
Values may be Pulumi Outputs (the seed password, role ARNs): the builders only place them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoutflo.naming import ARGOCD_SECRET_TYPE_LABEL, MANAGED_BY

REFRESHER = "scoutflo-ecr-refresher"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
ESO_GENERATOR_API = "generators.external-secrets.io/v1alpha1"
ESO_SECRET_API = "external-secrets.io/v1"


def _meta(name: str, namespace: str, labels: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **(labels or {})}}
    meta.update(extra)
    return meta


def application(
    *,
    name: str,
    argocd_namespace: str,
    project: str,
    repo_url: Any,
    target_revision: str,
    destination_namespace: str,
    values: Mapping[str, Any],
    revision_history_limit: int,
) -> dict[str, Any]:
    """An Argo CD Application tracking the chart `name` in the tenant's ECR (Helm over OCI)."""
    helm: dict[str, Any] = {"releaseName": name}
    if values:
        helm["valuesObject"] = dict(values)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        # No resources-finalizer: removing an app from the stack must not cascade-delete the
        # workloads and volumes it runs (user data); Argo CD leaves them in place instead.
        "metadata": _meta(name, argocd_namespace),
        "spec": {
            "project": project,
            "source": {
                # Helm-over-OCI: registry host and namespace without oci://, chart by name.
                "repoURL": repo_url,
                "chart": name,
                "targetRevision": target_revision,
                "helm": helm,
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination_namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
                "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
            },
            "revisionHistoryLimit": revision_history_limit,
        },
    }


def _helm_oci_credentials(*, name: str, host: Any, username: str, password: Any) -> dict[str, Any]:
    """Argo CD's Helm-over-OCI repository fields (declarative-setup.md): url without a scheme."""
    return {"type": "helm", "name": name, "url": host, "enableOCI": "true", "username": username, "password": password}


def registry_secret(*, name: str, namespace: str, host: Any, password: Any) -> dict[str, Any]:
    """Argo CD credential template for every chart under the registry host (matched by prefix)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace, {ARGOCD_SECRET_TYPE_LABEL: "repo-creds"}),
        "type": "Opaque",
        "stringData": _helm_oci_credentials(name=name, host=host, username="AWS", password=password),
    }


def refresher_service_account(*, namespace: str, role_arn: Any | None) -> dict[str, Any]:
    annotations = {IRSA_ANNOTATION: role_arn} if role_arn is not None else {}
    meta = _meta(REFRESHER, namespace, annotations=annotations) if annotations else _meta(REFRESHER, namespace)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True}


def refresher_role(*, namespace: str, secret_name: str) -> dict[str, Any]:
    """get/patch on the one credential Secret, nothing else (resourceNames cannot scope create/list)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(REFRESHER, namespace),
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret_name], "verbs": ["get", "patch"]}
        ],
    }


def refresher_role_binding(*, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(REFRESHER, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": REFRESHER},
        "subjects": [{"kind": "ServiceAccount", "name": REFRESHER, "namespace": namespace}],
    }


def static_credentials_secret(*, namespace: str, access_key_id: Any, secret_access_key: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(f"{REFRESHER}-aws", namespace),
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret_access_key},
    }


# The token never reaches a log or an argument list: the aws CLI writes it into a file on a
# memory-backed volume shared with the kubectl container, which sends it as a merge patch.
_FETCH_SCRIPT = """set -eu
umask 077
token="$(aws ecr get-login-password --region "$AWS_REGION")"
printf '{"stringData":{"password":"%s"}}' "$token" > /work/patch.json
echo "fetched a new ECR token"
"""

_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
_LIMITS = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}


def refresher_cron_job(
    *,
    namespace: str,
    secret_name: str,
    region: str,
    schedule: str,
    aws_cli_image: str,
    kubectl_image: str,
    static_credentials: bool,
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "AWS_REGION", "value": region},
        {"name": "HOME", "value": "/tmp"},
        {"name": "AWS_PAGER", "value": ""},
    ]
    env_from = [{"secretRef": {"name": f"{REFRESHER}-aws"}}] if static_credentials else []
    fetch: dict[str, Any] = {
        "name": "fetch-token",
        "image": aws_cli_image,
        "command": ["/bin/sh", "-c", _FETCH_SCRIPT],
        "env": env,
        "securityContext": _RESTRICTED,
        "resources": _LIMITS,
        "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if env_from:
        fetch["envFrom"] = env_from
    patch = {
        "name": "patch-secret",
        "image": kubectl_image,
        "command": [
            "kubectl",
            "patch",
            "secret",
            secret_name,
            f"--namespace={namespace}",
            "--type=merge",
            "--patch-file=/work/patch.json",
        ],
        "securityContext": _RESTRICTED,
        "resources": _LIMITS,
        "volumeMounts": [{"name": "work", "mountPath": "/work", "readOnly": True}],
    }
    pod_spec = {
        "serviceAccountName": REFRESHER,
        "restartPolicy": "OnFailure",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [fetch],
        "containers": [patch],
        "volumes": [
            {"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(REFRESHER, namespace),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 4,
                    "activeDeadlineSeconds": 600,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {"metadata": {"labels": dict(MANAGED_BY)}, "spec": pod_spec},
                }
            },
        },
    }


def eso_generator(*, namespace: str, region: str) -> dict[str, Any]:
    """External Secrets Operator's ECR token generator, authenticated as the IRSA ServiceAccount."""
    return {
        "apiVersion": ESO_GENERATOR_API,
        "kind": "ECRAuthorizationToken",
        "metadata": _meta(REFRESHER, namespace),
        "spec": {
            "region": region,
            "auth": {"jwt": {"serviceAccountRef": {"name": REFRESHER}}},
        },
    }


def eso_external_secret(*, namespace: str, secret_name: str, host: Any, refresh: str = "6h") -> dict[str, Any]:
    """ExternalSecret that owns the Argo CD credential Secret and rewrites its password."""
    return {
        "apiVersion": ESO_SECRET_API,
        "kind": "ExternalSecret",
        "metadata": _meta(secret_name, namespace),
        "spec": {
            "refreshInterval": refresh,
            "dataFrom": [
                {
                    "sourceRef": {
                        "generatorRef": {
                            "apiVersion": ESO_GENERATOR_API,
                            "kind": "ECRAuthorizationToken",
                            "name": REFRESHER,
                        }
                    }
                }
            ],
            "target": {
                "name": secret_name,
                "creationPolicy": "Owner",
                "template": {
                    "metadata": {"labels": {**MANAGED_BY, ARGOCD_SECRET_TYPE_LABEL: "repo-creds"}},
                    "data": _helm_oci_credentials(
                        name=secret_name, host=host, username="{{ .username }}", password="{{ .password }}"
                    ),
                },
            },
        },
    }
