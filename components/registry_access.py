"""RegistryAccess: Argo CD's credentials for the tenant's ECR and what keeps them fresh.

One `repo-creds` template per registry host serves every app (Argo CD matches by URL prefix), so
there is one Secret and one refresher per stack, not per app: an ECR token is per registry and
dies after 12 h. Modes: `irsa` (CronJob as an IRSA ServiceAccount), `static` (CronJob with keys
from config secrets) and `eso` (External Secrets Operator's ECR generator owns the Secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from scoutflo import manifests, naming
from scoutflo.policies import ECR_PULL_ACTIONS, ecr_access, irsa_trust, oidc_provider_arn

_TYPED: dict[str, Any] = {
    "Secret": k8s.core.v1.Secret,
    "ServiceAccount": k8s.core.v1.ServiceAccount,
    "Role": k8s.rbac.v1.Role,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
    "CronJob": k8s.batch.v1.CronJob,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


@dataclass(frozen=True, kw_only=True)
class RegistryAccessArgs:
    tenant: str
    secret_name: str
    """Name of the Argo CD credential Secret (the Role may touch only this name)."""
    namespace: str = "argocd"
    """Argo CD's namespace."""
    registry_host: pulumi.Input[str]
    """`<acct>.dkr.ecr.<region>.amazonaws.com`, no scheme: a prefix of every app's repoURL."""
    account_id: pulumi.Input[str]
    region: str
    repository_arns: Sequence[pulumi.Input[str]]
    """The ECR repositories Argo CD reads; the token's principal may read only these."""
    mode: str = "irsa"
    """irsa | static | eso."""
    schedule: str = "0 */6 * * *"
    cluster_oidc_issuer: str = ""
    """EKS OIDC issuer URL (irsa and eso modes)."""
    static_access_key_id: pulumi.Input[str] | None = None
    static_secret_access_key: pulumi.Input[str] | None = None
    aws_cli_image: str
    kubectl_image: str


class RegistryAccess(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]
    reader_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:RegistryAccess", name, None, opts)
        self._name = name
        self._args = args
        role_arn = self._create_reader_role() if args.mode in ("irsa", "eso") else None
        if args.mode == "eso":
            self._create_external_secret(role_arn)
        else:
            self._create_secret_and_refresher(role_arn)
        self.secret_name = pulumi.Output.from_input(args.secret_name)
        self.reader_role_arn = role_arn if role_arn is not None else pulumi.Output.from_input("")
        self.register_outputs({"secret_name": self.secret_name, "reader_role_arn": self.reader_role_arn})

    def _k8s(self, suffix: str, doc: dict[str, Any], **extra: Any) -> Any:
        """Create one Kubernetes object from a manifest dict, typed by its kind."""
        opts = pulumi.ResourceOptions(parent=self, **extra)
        body = {_snake(k): v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        typed = _TYPED.get(doc["kind"])
        if typed is not None:
            return typed(f"{self._name}-{suffix}", **body, opts=opts)
        return k8s.apiextensions.CustomResource(
            f"{self._name}-{suffix}", api_version=doc["apiVersion"], kind=doc["kind"], **body, opts=opts
        )

    def _create_reader_role(self) -> pulumi.Output[str]:
        a = self._args
        trust = pulumi.Output.from_input(a.account_id).apply(
            lambda acct: json.dumps(
                irsa_trust(
                    oidc_provider_arn(acct, a.cluster_oidc_issuer),
                    a.cluster_oidc_issuer,
                    a.namespace,
                    manifests.REFRESHER,
                ),
                sort_keys=True,
            )
        )
        role = aws.iam.Role(
            f"{self._name}-reader",
            name=f"scoutflo-{a.tenant}-ecr-reader",
            description=f"Argo CD ECR token refresher of tenant {a.tenant}",
            assume_role_policy=trust,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{self._name}-reader-ecr",
            role=role.name,
            policy=pulumi.Output.all(*a.repository_arns).apply(
                lambda arns: json.dumps(ecr_access(arns, ECR_PULL_ACTIONS), sort_keys=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role.arn

    def _create_secret_and_refresher(self, role_arn: pulumi.Output[str] | None) -> None:
        a = self._args
        # Seeded at deploy time so Argo CD can pull before the first scheduled refresh; from then
        # on the CronJob owns the password, so Pulumi ignores it and a second `up` shows no diff.
        seed = aws.ecr.get_authorization_token_output(opts=pulumi.InvokeOutputOptions(parent=self))
        secret = self._k8s(
            "secret",
            manifests.registry_secret(
                name=a.secret_name,
                namespace=a.namespace,
                host=a.registry_host,
                password=pulumi.Output.secret(seed.password),
            ),
            ignore_changes=["stringData.password"],
        )
        if a.mode == "static":
            self._k8s(
                "aws-keys",
                manifests.static_credentials_secret(
                    namespace=a.namespace,
                    access_key_id=pulumi.Output.secret(a.static_access_key_id),
                    secret_access_key=pulumi.Output.secret(a.static_secret_access_key),
                ),
            )
        self._k8s("sa", manifests.refresher_service_account(namespace=a.namespace, role_arn=role_arn))
        self._k8s("role", manifests.refresher_role(namespace=a.namespace, secret_name=a.secret_name))
        self._k8s("rolebinding", manifests.refresher_role_binding(namespace=a.namespace))
        self._k8s(
            "cronjob",
            manifests.refresher_cron_job(
                namespace=a.namespace,
                secret_name=a.secret_name,
                region=a.region,
                schedule=a.schedule,
                aws_cli_image=a.aws_cli_image,
                kubectl_image=a.kubectl_image,
                static_credentials=a.mode == "static",
            ),
            depends_on=[secret],
        )

    def _create_external_secret(self, role_arn: pulumi.Output[str] | None) -> None:
        a = self._args
        sa = self._k8s("sa", manifests.refresher_service_account(namespace=a.namespace, role_arn=role_arn))
        generator = self._k8s(
            "generator", manifests.eso_generator(namespace=a.namespace, region=a.region), depends_on=[sa]
        )
        self._k8s(
            "externalsecret",
            manifests.eso_external_secret(namespace=a.namespace, secret_name=a.secret_name, host=a.registry_host),
            depends_on=[generator],
        )


def registry_access_args(cfg: Any, host: pulumi.Input[str], account_id: pulumi.Output[str]) -> RegistryAccessArgs:
    """The stack config mapped onto RegistryAccessArgs (repository ARNs follow from names)."""
    return RegistryAccessArgs(
        tenant=cfg.tenant,
        secret_name=naming.registry_secret_name(cfg.tenant),
        namespace=cfg.argocd_namespace,
        registry_host=host,
        account_id=account_id,
        region=cfg.aws_region,
        repository_arns=[
            account_id.apply(naming.ecr_arn_for(cfg.aws_region, naming.ecr_repository_name(cfg.ecr_prefix, app.name)))
            for app in cfg.apps
        ],
        mode=cfg.token_refresh_mode,
        schedule=cfg.refresh_schedule,
        cluster_oidc_issuer=cfg.cluster_oidc_issuer,
        static_access_key_id=cfg.static_access_key_id,
        static_secret_access_key=cfg.static_secret_access_key,
        aws_cli_image=cfg.aws_cli_image,
        kubectl_image=cfg.kubectl_image,
    )
