"""RegistryAccess: Argo CD's credentials for the tenant's ECR and what keeps them fresh.

One `repo-creds` template serves every app (Argo CD matches by URL prefix), so there is one
Secret and one refresher per stack, not per app: an ECR token is per registry and dies after
12 h. Pulumi owns the Secret's identity (url, type, enableOCI, username, labels) in every mode
and never asks for a token: no GetAuthorizationToken look-up runs in the program, so no token is
in its inputs, a saved plan or a diff, and nothing in the inputs changes from one run to the next.
The provider's outputs are the live object, though (pulumi-kubernetes@94977969d
provider/pkg/provider/provider.go:2123 Read `checkpointObject(liveInputs, liveObj, ...)`, the
same after an update): after a refresh or an update of the Secret the state holds the token the
cluster had then, encrypted (the SDK marks a Secret's data secret), and expiring in 12 h.
The password is written in the cluster: in `irsa` and `static` modes by a seed Job at deploy time
and then by the refresher CronJob (one pod template for both), in `eso` mode by External Secrets
Operator merging it into the same Secret. The Secret is the same resource in those three modes,
so a switch between them never deletes it and Argo CD keeps the last token until the new source
writes the next. Mode `none` (the EKS-managed Argo CD capability) has no Secret at all: a switch
to it deletes the Secret and the refresher (a leftover `repo-creds` would still match the apps'
URLs with a token that expires, and whether the capability prefers it to its own ECR access is
not documented); it grants the capability's IAM role read of the tenant's repositories instead.
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

from scoutflo import naming
from scoutflo.aws.policies import (
    ECR_PULL_ACTIONS,
    capability_policy_name,
    ecr_access,
    irsa_trust,
    oidc_provider_arn,
    role_name_of,
)
from scoutflo.cluster import manifests

_TYPED: dict[str, Any] = {
    "Secret": k8s.core.v1.Secret,
    "ServiceAccount": k8s.core.v1.ServiceAccount,
    "Role": k8s.rbac.v1.Role,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
    "CronJob": k8s.batch.v1.CronJob,
    "Job": k8s.batch.v1.Job,
    "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
}


def _uid(metadata: Any) -> str:
    """The uid the API server gave the object (typed ObjectMeta, or a dict where the SDK did not
    translate the output)."""
    uid = metadata.get("uid") if isinstance(metadata, dict) else getattr(metadata, "uid", None)
    return str(uid or "")


class CapabilityRoleError(ValueError):
    """argocdCapabilityRoleArn names a role of another account than the one deployed to, or a role
    that is not only the EKS Argo CD capability's."""


def capability_role_name(role_arn: str, account_id: str) -> str:
    """iam:PutRolePolicy takes a role name in the caller's account: a role of another account
    would silently become a same-named role of this one, so that is refused, naming the key.
    The program asks this before it registers anything (__main__.py), so a refused role stops
    the run before any repository is created; the grant asks it again on the resolved account."""
    if role_arn.split(":")[4] != account_id:
        raise CapabilityRoleError(
            f"config 'scoutflo:argocdCapabilityRoleArn' names a role in account {role_arn.split(':')[4]}, but the "
            f"stack deploys to account {account_id}: the capability's role must be in the account of the ECR "
            "repositories (the grant is an inline policy on it)"
        )
    return role_name_of(role_arn)


CAPABILITY_SERVICE = "capabilities.eks.amazonaws.com"
"""The one principal an EKS capability role trusts (docs.aws.amazon.com/eks/latest/userguide/
capability-role.html, "Trust policy for capability roles": Allow, Principal Service
capabilities.eks.amazonaws.com, sts:AssumeRole and sts:TagSession)."""


def capability_trust_problem(trust: str) -> str | None:
    """Why a role whose trust policy is `trust` (JSON) is not only an EKS capability's, or None.

    The tenant names the role, and the grant makes it a reader of the tenant's repositories: any
    principal the role trusts besides the capability service (an account, a user, another
    service, a web identity, "*") would read them too, and a role trusting no capability is
    nobody's capability role (the deployer's own, a person's admin role). Deny statements only
    narrow; a condition on an Allow (ExternalId, SourceAccount) narrows the capability, no more."""
    try:
        doc = json.loads(trust)
    except ValueError:
        return "has a trust policy that is not JSON"
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return "has no trust policy statements"
    trusted = False
    for stmt in statements:
        if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
            continue
        if "NotPrincipal" in stmt or "NotAction" in stmt:
            return "trusts principals by exclusion (NotPrincipal/NotAction)"
        principal = stmt.get("Principal")
        services = principal.get("Service") if isinstance(principal, dict) else None
        services = [services] if isinstance(services, str) else services
        if not isinstance(principal, dict) or set(principal) != {"Service"} or services != [CAPABILITY_SERVICE]:
            return f"trusts {json.dumps(principal, sort_keys=True)}, not only the service {CAPABILITY_SERVICE}"
        trusted = True
    return None if trusted else f"does not trust the service {CAPABILITY_SERVICE}"


def check_capability_role(role_arn: str, found_arn: str, trust: str) -> None:
    """The role `iam:GetRole` found by the configured role's name is that role (same ARN: a path
    in the configured ARN that the name does not carry would grant a role of the same name
    elsewhere), and only the EKS capability service may assume it (`capability_trust_problem`)."""
    key = "config 'scoutflo:argocdCapabilityRoleArn'"
    if found_arn != role_arn:
        raise CapabilityRoleError(
            f"{key} is {role_arn}, but the account's role of that name is {found_arn}: give its ARN exactly"
        )
    if problem := capability_trust_problem(trust):
        raise CapabilityRoleError(
            f"{key}: the role {problem}; it must be the EKS Argo CD capability's role, trusted by "
            f"{CAPABILITY_SERVICE} alone (`aws eks describe-capability ... --query capability.roleArn`): "
            "the grant would let every principal it trusts read the tenant's charts"
        )


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


@dataclass(frozen=True, kw_only=True)
class RegistryAccessArgs:
    tenant: str
    secret_name: str
    """Name of the Argo CD credential Secret (the Role may touch only this name)."""
    namespace: str = "argocd"
    """Argo CD's namespace."""
    credential_url: pulumi.Input[str]
    """`<acct>.dkr.ecr.<region>.amazonaws.com[/<ecrPrefix>]`, no scheme: every app's repoURL."""
    account_id: pulumi.Input[str]
    region: str
    repository_arns: Sequence[pulumi.Input[str]]
    """The ECR repositories Argo CD reads; the token's principal may read only these."""
    mode: str = "irsa"
    """irsa | static | eso | none."""
    schedule: str = "0 */6 * * *"
    cluster_oidc_issuer: str = ""
    """EKS OIDC issuer URL (irsa and eso modes)."""
    static_access_key_id: pulumi.Input[str] | None = None
    static_secret_access_key: pulumi.Input[str] | None = None
    aws_cli_image: str
    kubectl_image: str
    capability_role_arn: str = ""
    adopt_secret: bool = False
    """Import the Secret of this name already in the cluster (see _create_secret)."""
    """mode none: the EKS Argo CD capability's IAM role, which reads the repositories itself."""


class RegistryAccess(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]
    reader_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("scoutflo:index:RegistryAccess", name, None, opts)
        self._name = name
        self._args = args
        # The reader role's policy must exist before a pod asks for a token with that role.
        self._reader_policy: pulumi.Resource | None = None
        self._refresher = manifests.refresher_name(args.tenant)
        if args.mode == "none":
            self._grant_capability()
            self.secret_name = pulumi.Output.from_input("")
            self.reader_role_arn = pulumi.Output.from_input(args.capability_role_arn)
            self.register_outputs({"secret_name": self.secret_name, "reader_role_arn": self.reader_role_arn})
            return
        role_arn = self._create_reader_role() if args.mode in ("irsa", "eso") else None
        secret, identity = self._create_secret()
        if args.mode == "eso":
            self._create_external_secret(role_arn, secret, identity)
        else:
            self._create_refresher(role_arn, secret, identity)
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

    def _grant_capability(self) -> None:
        """Mode none: the EKS Argo CD capability pulls from ECR with its own IAM role, so no
        credential Secret, refresher or IRSA role exists; the role gets read of exactly the
        tenant's repositories (docs.aws.amazon.com/eks/latest/userguide/argocd-configure-repositories.html,
        "ECR Helm Charts": direct integration, no Repository configuration, the Capability Role
        must hold the IAM permissions). The same read actions as the refresher's token principal:
        a pull is BatchGetImage + GetDownloadUrlForLayer, `targetRevision: '*'` lists tags
        (ListImages), and GetAuthorizationToken, which takes no resource, logs in."""
        a = self._args
        self._reader_policy = aws.iam.RolePolicy(
            f"{self._name}-capability-ecr",
            name=capability_policy_name(a.tenant),
            role=pulumi.Output.from_input(a.account_id).apply(
                lambda acct: capability_role_name(a.capability_role_arn, acct)
            ),
            policy=pulumi.Output.all(*a.repository_arns).apply(
                lambda arns: json.dumps(ecr_access(arns, ECR_PULL_ACTIONS), sort_keys=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_reader_role(self) -> pulumi.Output[str]:
        a = self._args
        trust = pulumi.Output.from_input(a.account_id).apply(
            lambda acct: json.dumps(
                irsa_trust(
                    oidc_provider_arn(acct, a.cluster_oidc_issuer),
                    a.cluster_oidc_issuer,
                    a.namespace,
                    self._refresher,
                ),
                sort_keys=True,
            )
        )
        role = aws.iam.Role(
            f"{self._name}-reader",
            name=naming.reader_role_name(a.tenant),
            description=f"Argo CD ECR token refresher of tenant {a.tenant}",
            assume_role_policy=trust,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._reader_policy = aws.iam.RolePolicy(
            f"{self._name}-reader-ecr",
            # Explicit: without a name pulumi-aws draws one from a per-run random seed, and a
            # saved plan (`up --plan`) is violated by the name the update then draws.
            name=naming.READER_POLICY_NAME,
            role=role.name,
            policy=pulumi.Output.all(*a.repository_arns).apply(
                lambda arns: json.dumps(ecr_access(arns, ECR_PULL_ACTIONS), sort_keys=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role.arn

    def _create_secret(self) -> tuple[Any, pulumi.Output[str]]:
        """The credential without a password, and a hash of what it is (its identity).

        pulumi-kubernetes creates with a client-side create unless the provider upserts
        (pulumi/pulumi-kubernetes@94977969d provider/pkg/await/await.go:190 Creation: the apply
        PATCH only `if c.ServerSideApply && (c.UpsertExistingObjects || kinds.IsPatchResource(...))`,
        else `client.Create`), so a Secret of this name already in the cluster and not in the state
        (written by ESO under the design before the Secret moved into Pulumi) fails the create with
        AlreadyExists. `adopt_secret` imports it instead, by the provider's id `namespace/name`
        (provider/pkg/provider/util.go:103 parseFqName). The engine imports only when the state has
        no resource of that id (pulumi/pulumi@1b5949891b pkg/resource/deploy/step_generator.go:1113
        `isImport := ... (old == nil || old.External || oldImportID != goal.ID)`), so a second `up`
        with the key still set is an ordinary one; after the import the engine goes on to diff the
        inputs and updates what differs (our fields only: the password is not in the inputs). A
        fresh stack leaves the key unset: there is nothing to import and a create is right.

        The identity is a hash of the Secret's fields and of its uid. A Secret replaced (a new url)
        or deleted out of band and created again by the next `up` (a new uid) starts without a
        password; the seed Job's name and the ExternalSecret's annotation carry the identity, so
        either runs again at once instead of at the next schedule (up to 6 h). An `up` that changes
        nothing keeps the uid, hence the name and the annotation: no replacement, no sync. They
        `depends_on` the Secret only, and the engine replaces dependents by property dependencies
        alone (pulumi/pulumi pkg/resource/deploy/step_generator.go calculateDependentReplacements),
        which is why the identity is in their inputs.
        """
        a = self._args
        doc = manifests.registry_secret(name=a.secret_name, namespace=a.namespace, url=a.credential_url)
        secret = self._k8s("secret", doc, import_=f"{a.namespace}/{a.secret_name}" if a.adopt_secret else None)
        identity = pulumi.Output.all(a.credential_url, secret.metadata.apply(_uid)).apply(
            lambda parts: manifests.content_hash(
                manifests.registry_secret(name=a.secret_name, namespace=a.namespace, url=parts[0]), parts[1]
            )
        )
        return secret, identity

    def _create_refresher(self, role_arn: pulumi.Output[str] | None, secret: Any, identity: pulumi.Output[str]) -> None:
        a = self._args
        needs: list[pulumi.Resource] = [secret]
        if a.mode == "static":
            needs.append(
                self._k8s(
                    "aws-keys",
                    manifests.static_credentials_secret(
                        name=self._refresher,
                        namespace=a.namespace,
                        access_key_id=pulumi.Output.secret(a.static_access_key_id),
                        secret_access_key=pulumi.Output.secret(a.static_secret_access_key),
                    ),
                )
            )
        elif self._reader_policy is not None:
            needs.append(self._reader_policy)
        name = self._refresher
        needs.append(
            self._k8s("sa", manifests.refresher_service_account(name=name, namespace=a.namespace, role_arn=role_arn))
        )
        needs.append(
            self._k8s("role", manifests.refresher_role(name=name, namespace=a.namespace, secret_name=a.secret_name))
        )
        needs.append(self._k8s("rolebinding", manifests.refresher_role_binding(name=name, namespace=a.namespace)))
        # Before the first pod: the seed's pod starts fenced (DNS, HTTPS, the API server; no ingress).
        needs.append(self._k8s("netpol", manifests.refresher_network_policy(name=name, namespace=a.namespace)))
        template = manifests.refresher_pod_template(
            name=name,
            namespace=a.namespace,
            secret_name=a.secret_name,
            region=a.region,
            aws_cli_image=a.aws_cli_image,
            kubectl_image=a.kubectl_image,
            credentials=a.mode,
            reader_role_name=naming.reader_role_name(a.tenant) if a.mode == "irsa" else "",
        )
        # The seed Job runs (and `pulumi up` waits for it) before anything depends on the
        # credential; its name changes with the pod template or the Secret, so a change to
        # either runs it again (a replaced Secret comes back empty). A seed that failed (webhook
        # down, IAM not yet consistent) is kept in the state with init errors, and the next `up`
        # would only wait on the failed Job again (pulumi/pulumi step_generator.go: hasInitErrors
        # -> an empty update); replaceOnChanges "*" covers the "#initerror" key
        # (applyReplaceOnChanges), so it is replaced and runs again, deleted first because its
        # name is unchanged (an SSA create of the same name would patch the failed Job).
        self._k8s(
            "seed",
            manifests.seed_job(
                name=identity.apply(lambda ident: manifests.seed_job_name(template, ident)),
                namespace=a.namespace,
                pod_template=template,
            ),
            depends_on=needs,
            replace_on_changes=["*"],
            delete_before_replace=True,
        )
        self._k8s(
            "cronjob",
            manifests.refresher_cron_job(name=name, namespace=a.namespace, schedule=a.schedule, pod_template=template),
            depends_on=needs,
        )

    def _create_external_secret(
        self, role_arn: pulumi.Output[str] | None, secret: Any, identity: pulumi.Output[str]
    ) -> None:
        a = self._args
        name = self._refresher
        sa = self._k8s("sa", manifests.refresher_service_account(name=name, namespace=a.namespace, role_arn=role_arn))
        generator = self._k8s(
            "generator",
            manifests.eso_generator(name=name, namespace=a.namespace, region=a.region),
            depends_on=[sa, *([self._reader_policy] if self._reader_policy else [])],
        )
        # creationPolicy Merge only updates an existing Secret: it must exist first.
        self._k8s(
            "externalsecret",
            manifests.eso_external_secret(
                namespace=a.namespace, secret_name=a.secret_name, generator=name, identity=identity
            ),
            depends_on=[generator, secret],
        )


def registry_access_args(cfg: Any, host: pulumi.Output[str], account_id: pulumi.Output[str]) -> RegistryAccessArgs:
    """The stack config mapped onto RegistryAccessArgs (repository ARNs follow from names)."""
    return RegistryAccessArgs(
        tenant=cfg.tenant,
        secret_name=naming.registry_secret_name(cfg.tenant),
        namespace=cfg.argocd_namespace,
        # Argo CD picks the credential whose url is the longest plain string prefix of the
        # repoURL, with no host or path boundary (argoproj/argo-cd@37ee009
        # util/db/repository_secrets.go:615 getRepositoryCredentialIndex: strings.HasPrefix). The
        # apps' repoURL is `<host>/<prefix>`, so that, not the bare host, is what it covers.
        credential_url=host.apply(lambda h: naming.chart_repo_url(h, cfg.ecr_prefix)),
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
        capability_role_arn=cfg.argocd_capability_role_arn,
        adopt_secret=cfg.adopt_credential_secret,
    )
