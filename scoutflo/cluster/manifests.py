"""Kubernetes objects as plain dicts: the Argo CD Application, the registry credential template and
the ECR token refresher. Components wrap them in resources; tests validate them against schemas.
Values may be Pulumi Outputs (the registry url, role ARNs): the builders only place them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from scoutflo.naming import ARGOCD_SECRET_TYPE_LABEL, MANAGED_BY

REFRESHER = "scoutflo-ecr-refresher"
REFRESHER_LABEL = "scoutflo.io/refresher"
# The refresher's objects are per tenant, so that several tenants share one Argo CD namespace. A
# CronJob's name is at most 52 characters (the controller appends an 11-character suffix to its
# Jobs, kubernetes pkg/apis/batch/validation ValidateCronJob), and the seed Job's adds "-seed-"
# and a 10-character hash to the 63 of a label value (job-name): a name of at most 47 fits both.
_REFRESHER_NAME_MAX = 36
"""`scoutflo-ecr-refresher-<tenant>` up to here (tenants of up to 13 characters; the names #17
first deployed, kept so those stacks are not replaced again)."""
LONG_REFRESHER_PREFIX = "sf-ecr-"
"""Longer tenants' prefix: 7 characters and a tenant id of at most 40 (config 'scoutflo:tenant') are
47. The whole tenant id is in the name, so two tenants never share one; a hash of a cut id could
(24 bits: two tenants among some thousands sharing a namespace would take each other's objects)."""
_NAME_FITS = 47
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
ESO_GENERATOR_API = "generators.external-secrets.io/v1alpha1"
ESO_SECRET_API = "external-secrets.io/v1"
CREDENTIAL_IDENTITY_ANNOTATION = "scoutflo.io/credential-identity"
# Argo CD's name for the cluster it runs in (argoproj/argo-cd v3.4.0
# pkg/apis/application/v1alpha1/application_defaults.go:31 KubernetesInternalAPIServerAddr).
IN_CLUSTER = "https://kubernetes.default.svc"


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
    prune: str = "true",
    server_side_apply: bool = False,
    destination: str = IN_CLUSTER,
) -> dict[str, Any]:
    """An Argo CD Application tracking the chart `name` in the tenant's ECR (Helm over OCI).

    `prune` and `server_side_apply` come from the catalog entry: see `sync_policy`. `destination`
    is the stack's `argocdDestination`: see `application_destination`.
    """
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
            "destination": {**application_destination(destination), "namespace": destination_namespace},
            "syncPolicy": sync_policy(prune, server_side_apply=server_side_apply),
            "revisionHistoryLimit": revision_history_limit,
        },
    }


PRUNE_MODES = ("true", "false", "confirm")


def application_destination(destination: str) -> dict[str, str]:
    """`spec.destination` without the namespace: a URL or an EKS cluster ARN is the cluster's
    `server`, anything else its registered `name`; never both (argoproj/argo-cd v3.4.0
    util/argo/argo.go:1083 "application destination can't have both name and server defined").

    The EKS-managed Argo CD capability identifies clusters by ARN in the cluster Secret's `server`
    field and does not support kubernetes.default.svc (docs.aws.amazon.com/eks/latest/userguide/
    argocd-register-clusters.html, "Register the local cluster"); the stack names either that ARN
    or the name the cluster was registered under. Validated in scoutflo/config.py."""
    if destination.startswith("https://") or destination.startswith("arn:"):
        return {"server": destination}
    return {"name": destination}


def sync_policy(prune: str, *, server_side_apply: bool = False) -> dict[str, Any]:
    """Automated sync; what happens to objects a new chart version no longer renders is `prune`.

    A chart upgrade or downgrade that stops rendering a PersistentVolumeClaim (or a CRD) makes
    Argo CD prune it, and with it the user's data. Argo CD reads the Application's `Prune=` sync
    option as the default for every resource without its own annotation (argoproj/argo-cd
    controller/sync.go `WithDefaultPruneOption(syncOp.SyncOptions.GetOptionValue("Prune"))`;
    gitops-engine/pkg/sync/sync_context.go isPruningDisabled / objRequiresPruneConfirmation), and
    automated syncs carry the Application's syncOptions (controller/appcontroller.go autoSync).
    'false': nothing is ever pruned, by automated or manual syncs ("ignored (no prune)"), and
    automated.prune is off too; 'confirm': automated syncs never prune either, and a person's sync
    with "Prune" ticked waits for that person's approval of each prune; 'true': pruned.

    The Application-level `Prune=` option is read only from Argo CD 3.4.0 (argo-cd commit b7e2027,
    first tagged v3.4.0: controller/sync.go:350; absent from v3.3.14 and v2.14.21 controller/sync.go,
    whose gitops-engine reads `Prune=false` only from an object's own annotation, v3.3.14
    gitops-engine/pkg/sync/sync_context.go:1273). Before 3.4, 'false' still stops automated syncs
    from pruning (automated.prune, v2.14.21 controller/appcontroller.go:2108), but a person's sync
    with "Prune" ticked prunes without asking. 'confirm' turns automated.prune off as 'false' does:
    with it on, a version before 3.4, which ignores `Prune=confirm`, pruned at every automated sync
    (the user's data gone with no one asked); off, no Argo CD version prunes unless a person syncs
    with "Prune" ticked, and from 3.4 that sync still waits for the confirmation. docs/design.md's
    Argo CD version table says so; the program cannot read the cluster's Argo CD version at preview.
    """
    if prune not in PRUNE_MODES:
        raise ValueError(f"prune must be one of {PRUNE_MODES}, not {prune!r}")
    options = ["CreateNamespace=true"]
    if prune != "true":
        options.append(f"Prune={prune}")
    if server_side_apply:
        # Client-side apply stores the whole object in the last-applied-configuration annotation,
        # which cannot exceed 262 144 bytes: big CRDs (kube-prometheus-stack's) never sync that
        # way (argo-cd docs/user-guide/sync-options.md:288 at v3.4.0). The option is read by
        # every supported version (controller/sync.go:381 at v2.14.21, :343 at v3.4.0
        # `sync.WithServerSideApply(syncOp.SyncOptions.HasOption(common.SyncOptionServerSideApply))`;
        # gitops-engine pkg/sync/common/types.go:36 SyncOptionServerSideApply = "ServerSideApply=true").
        options.append("ServerSideApply=true")
    return {
        "automated": {"prune": prune == "true", "selfHeal": True},
        "syncOptions": options,
        "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
    }


def _helm_oci_credentials(*, name: str, url: Any, username: str) -> dict[str, Any]:
    """Argo CD's Helm-over-OCI repository fields (declarative-setup.md): url without a scheme.

    No `password` key: the token is written in the cluster (seed Job, refresher, or ESO), never by
    Pulumi. pulumi-kubernetes (at 94977969d) diffs new inputs against the live object pruned to the
    shape of the old inputs (provider/pkg/provider/provider.go:1494 Diff `oldLivePruned :=
    pruneLiveState(oldLive, oldInputs)`; provider/pkg/provider/util.go:234 pruneMap keeps only keys
    the inputs have), and refresh and update prune the same way (provider.go:2083 Read, :2389
    Update): a key the program never registers is never diffed, so the in-cluster patches of
    `data.password` cause no diff and no replacement (Secret data is replace-on-change,
    provider/pkg/provider/diff.go forceNewProperties). An `ignore_changes` path would not do: Check
    turns `stringData` into `data` (provider/pkg/clients/unstructured.go:134
    normalizeSecretStringData) and the engine applies ignoreChanges to the checked inputs
    (pulumi/pulumi pkg/resource/deploy/step_generator.go:3076 processIgnoreChanges), so a
    `data.password` path would keep an old token in the inputs and write it back on an update.
    """
    return {"type": "helm", "name": name, "url": url, "enableOCI": "true", "username": username}


def registry_secret(*, name: str, namespace: str, url: Any) -> dict[str, Any]:
    """Argo CD credential template for every chart under `url` (matched by prefix), no password."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace, {ARGOCD_SECRET_TYPE_LABEL: "repo-creds"}),
        "type": "Opaque",
        "stringData": _helm_oci_credentials(name=name, url=url, username="AWS"),
    }


def refresher_name(tenant: str) -> str:
    """The name of the tenant's refresher objects (ServiceAccount, Role, RoleBinding, CronJob,
    NetworkPolicy, ESO generator): the whole tenant id in it, so distinct tenants get distinct
    names (the two forms cannot meet: one starts `scoutflo-`, the other `sf-`)."""
    name = f"{REFRESHER}-{tenant}"
    if len(name) <= _REFRESHER_NAME_MAX:
        return name
    name = f"{LONG_REFRESHER_PREFIX}{tenant}"
    if len(name) > _NAME_FITS:
        # config.parse_config caps a tenant id at 40 characters; a caller that skipped it is told.
        raise ValueError(f"tenant id {tenant!r} is longer than 40 characters: the refresher's names would not fit")
    return name


def refresher_service_account(*, name: str, namespace: str, role_arn: Any | None) -> dict[str, Any]:
    annotations = {IRSA_ANNOTATION: role_arn} if role_arn is not None else {}
    meta = _meta(name, namespace, annotations=annotations) if annotations else _meta(name, namespace)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True}


def refresher_role(*, name: str, namespace: str, secret_name: str) -> dict[str, Any]:
    """get/patch on the one credential Secret, nothing else (resourceNames cannot scope create/list)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, namespace),
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret_name], "verbs": ["get", "patch"]}
        ],
    }


def refresher_role_binding(*, name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def static_credentials_name(refresher: str) -> str:
    """The static keys' Secret, beside the tenants' credential Secrets (`scoutflo-ecr-<tenant>`,
    naming.registry_secret_name) in one namespace. `<refresher>-aws` was tenant `refresher-acme-aws`'s
    credential name (scoutflo-ecr-refresher-acme-aws): that tenant's create failed on acme's keys,
    or with adoptCredentialSecret imported them into its stack, and its destroy deleted them. A dot
    is in no tenant id (a DNS label) but may be in a Secret's name (a DNS subdomain)."""
    return f"{refresher}.aws"


def static_credentials_secret(
    *, name: str, namespace: str, access_key_id: Any, secret_access_key: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(static_credentials_name(name), namespace),
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret_access_key},
    }


# The token never reaches a log or an argument list: the aws CLI writes it into a file on a
# memory-backed volume shared with the kubectl container, which sends it as a merge patch.
# Before that, the script refuses to run under any identity but the one its mode names. In irsa
# mode the EKS pod identity webhook injects AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, but it
# fails open (aws/amazon-eks-pod-identity-webhook@3bf80a3 deploy/mutatingwebhook.yaml:9
# `failurePolicy: Ignore`; pkg/handler/handler.go:172 addEnvToContainer also skips a container
# that sets AWS_ROLE_ARN itself, so we cannot pin it in the env): a pod created while it is down
# has neither, and the CLI would go on to the node's instance role. The role ARN must be the
# reader role, and the instance metadata service is off for the CLI in every mode
# (AWS_EC2_METADATA_DISABLED, boto/botocore@0e6e240 botocore/utils.py:418 IMDSFetcher).
FETCH_SCRIPT = """set -eu
umask 077
case "${SCOUTFLO_CREDENTIALS:-}" in
irsa)
  case "${AWS_ROLE_ARN:-}" in
  *":role/$SCOUTFLO_READER_ROLE") ;;
  *)
    echo "refusing to fetch an ECR token: AWS_ROLE_ARN is not role $SCOUTFLO_READER_ROLE" >&2
    echo "(is the EKS pod identity webhook running, and the ServiceAccount annotated?)" >&2
    exit 1
    ;;
  esac
  if [ ! -s "${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ]; then
    echo "refusing to fetch an ECR token: no web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE)" >&2
    exit 1
  fi
  ;;
static)
  if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
    echo "refusing to fetch an ECR token: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (static keys)" >&2
    exit 1
  fi
  ;;
*)
  echo "refusing to fetch an ECR token: unknown SCOUTFLO_CREDENTIALS '${SCOUTFLO_CREDENTIALS:-}'" >&2
  exit 1
  ;;
esac
token="$(aws ecr get-login-password --region "$AWS_REGION")"
printf '{"stringData":{"password":"%s"}}' "$token" > "$PATCH_FILE"
echo "fetched a new ECR token"
"""

_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
_LIMITS = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}
# Both tools write under $HOME (aws: ~/.aws/cli/cache; kubectl: its discovery cache, ~/.kube/cache
# unless KUBECACHEDIR is set, kubernetes/cli-runtime pkg/genericclioptions/config_flags.go
# getDefaultCacheDir): with a read-only root filesystem both point into the `tmp` emptyDir.
_WRITABLE_HOME = [
    {"name": "HOME", "value": "/tmp"},
    {"name": "KUBECACHEDIR", "value": "/tmp/.kube/cache"},
]


def refresher_pod_template(
    *,
    name: str,
    namespace: str,
    secret_name: str,
    region: str,
    aws_cli_image: str,
    kubectl_image: str,
    credentials: str,
    reader_role_name: str = "",
) -> dict[str, Any]:
    """The pod that fetches a token and patches it into the Secret: the refresher CronJob's and
    the seed Job's, one template for both so the deploy-time seed proves the schedule's pod."""
    if credentials not in ("irsa", "static"):
        raise ValueError(f"credentials must be 'irsa' or 'static', not {credentials!r}")
    env: list[dict[str, Any]] = [
        {"name": "AWS_REGION", "value": region},
        # Set and empty (no pager). Written without `value`: the API server drops an empty one
        # (EnvVar `value,omitempty`), and an input the live object lacks is a diff on every up.
        {"name": "AWS_PAGER"},
        {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
        {"name": "SCOUTFLO_CREDENTIALS", "value": credentials},
        {"name": "PATCH_FILE", "value": "/work/patch.json"},
        *_WRITABLE_HOME,
    ]
    if credentials == "irsa":
        env.append({"name": "SCOUTFLO_READER_ROLE", "value": reader_role_name})
    fetch: dict[str, Any] = {
        "name": "fetch-token",
        "image": aws_cli_image,
        "command": ["/bin/sh", "-c", FETCH_SCRIPT],
        "env": env,
        "securityContext": _RESTRICTED,
        "resources": _LIMITS,
        "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if credentials == "static":
        fetch["envFrom"] = [{"secretRef": {"name": static_credentials_name(name)}}]
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
        "env": list(_WRITABLE_HOME),
        "securityContext": _RESTRICTED,
        "resources": _LIMITS,
        "volumeMounts": [
            {"name": "work", "mountPath": "/work", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        # The label the NetworkPolicy selects: this tenant's refresher pods and nothing else.
        "metadata": {"labels": {**MANAGED_BY, REFRESHER_LABEL: name}},
        "spec": {
            "serviceAccountName": name,
            # Never: a retry is a new pod. The EKS pod identity webhook mutates pods only at
            # CREATE and fails open (deploy/mutatingwebhook.yaml:9,21 at 3bf80a3), so restarting
            # a pod it missed would refuse again on every try until backoffLimit.
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [fetch],
            "containers": [patch],
            "volumes": [
                {"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


# Retries cover IAM's eventual consistency right after the reader role is created.
_JOB_SPEC = {"backoffLimit": 4, "activeDeadlineSeconds": 600}


def refresher_cron_job(*, name: str, namespace: str, schedule: str, pod_template: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(name, namespace),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {**_JOB_SPEC, "ttlSecondsAfterFinished": 86400, "template": dict(pod_template)}},
        },
    }


def content_hash(*parts: Any, length: int = 10) -> str:
    """A short stable hash of JSON-able values (key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def seed_job_name(pod_template: Mapping[str, Any], secret_identity: str) -> str:
    """A new name, hence a new Job that runs again, whenever the pod or the Secret changes: a
    replaced Secret (a new url), or one deleted out of band and created again (a new uid), comes
    back without a password and must be seeded again."""
    return f"{pod_template['spec']['serviceAccountName']}-seed-{content_hash(pod_template, secret_identity)}"


def refresher_network_policy(*, name: str, namespace: str) -> dict[str, Any]:
    """The refresher pods (seed Job and CronJob) talk to DNS, AWS (STS and ECR, HTTPS) and the
    API server, and take no connection. NetworkPolicy has no host names, so AWS is "TCP 443
    anywhere"; the API server is 443 on EKS and 6443 where kubeadm set it up (the policy sees the
    endpoint's port after the Service's DNAT). Port 80 stays closed: no instance metadata
    service (169.254.169.254:80) even if AWS_EC2_METADATA_DISABLED were lost."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace),
        "spec": {
            "podSelector": {"matchLabels": {REFRESHER_LABEL: name}},
            # Ingress listed with no rules: nothing may connect to the pods.
            "policyTypes": ["Ingress", "Egress"],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
            ],
        },
    }


def seed_job(*, name: Any, namespace: str, pod_template: Mapping[str, Any]) -> dict[str, Any]:
    """Runs the refresher's pod once at deploy time, so Argo CD can pull before the first
    scheduled run. pulumi-kubernetes waits for a Job to complete (provider/pkg/await/job.go), so
    `pulumi up` fails loudly when the token cannot be fetched. No ttlSecondsAfterFinished: a Job
    the TTL controller deleted would be created again by the next `up --refresh`."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, namespace),
        "spec": {**_JOB_SPEC, "template": dict(pod_template)},
    }


def eso_generator(*, name: str, namespace: str, region: str) -> dict[str, Any]:
    """External Secrets Operator's ECR token generator, authenticated as the IRSA ServiceAccount."""
    return {
        "apiVersion": ESO_GENERATOR_API,
        "kind": "ECRAuthorizationToken",
        "metadata": _meta(name, namespace),
        "spec": {
            "region": region,
            "auth": {"jwt": {"serviceAccountRef": {"name": name}}},
        },
    }


def eso_external_secret(
    *, namespace: str, secret_name: str, generator: str, identity: Any, refresh: str = "6h"
) -> dict[str, Any]:
    """ExternalSecret that writes only the password into the Secret Pulumi owns.

    creationPolicy Merge: ESO updates an existing Secret and keeps its other keys, never creates or
    owns it (external-secrets pkg/controllers/externalsecret/externalsecret_controller.go:
    `case esv1.CreatePolicyMerge` updates only when the Secret exists; ApplyTemplate keeps existing
    keys for Merge; applyOwnership sets an ownerReference only for Owner). So the Secret is the
    same Pulumi resource in every mode and switching modes never deletes it; deletionPolicy Retain
    keeps the last token when the ExternalSecret goes (a switch back to irsa or static).
    `identity` (a hash of the Secret's fields) is an annotation: a replaced Secret changes it, and
    ESO refreshes an ExternalSecret whose labels or annotations changed (shouldRefreshPeriodic,
    pkg/controllers/util/util.go GetResourceVersion), so the new Secret gets a token at once.
    """
    return {
        "apiVersion": ESO_SECRET_API,
        "kind": "ExternalSecret",
        "metadata": _meta(secret_name, namespace, annotations={CREDENTIAL_IDENTITY_ANNOTATION: identity}),
        "spec": {
            "refreshInterval": refresh,
            "dataFrom": [
                {
                    "sourceRef": {
                        "generatorRef": {
                            "apiVersion": ESO_GENERATOR_API,
                            "kind": "ECRAuthorizationToken",
                            "name": generator,
                        }
                    }
                }
            ],
            "target": {
                "name": secret_name,
                "creationPolicy": "Merge",
                "deletionPolicy": "Retain",
                "template": {"engineVersion": "v2", "data": {"password": "{{ .password }}"}},
            },
        },
    }
