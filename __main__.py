"""Scoutflo GitOps: for one tenant, every catalog app gets a chart repo, an ECR repository and an
Argo CD Application; the tenant gets one registry credential and its refresher."""

import pulumi
import pulumi_aws as aws

from charts_catalog import CatalogError
from components.argo_app import ArgoApp, ArgoAppArgs
from components.chart_registry import ChartRegistry, ChartRegistryArgs
from components.chart_repo import ChartRepo, ChartRepoArgs
from components.github_oidc import GithubOidc, GithubOidcArgs
from components.registry_access import RegistryAccess, RegistryAccessArgs
from scoutflo import naming
from scoutflo.config import ConfigError, load_config
from scoutflo.repo_files import EXECUTABLES, initial_files

try:
    cfg = load_config()
except (ConfigError, CatalogError) as err:
    # Before any resource is registered; RunError prints the message without a traceback.
    raise pulumi.RunError(str(err)) from None

account = aws.get_caller_identity_output().account_id
host = account.apply(lambda acct: naming.registry_host(acct, cfg.aws_region))
repo_names = {app.name: naming.ecr_repository_name(cfg.ecr_prefix, app.name) for app in cfg.apps}

oidc = GithubOidc("github-oidc", GithubOidcArgs(existing_arn=cfg.github_oidc_provider_arn))
access = RegistryAccess(
    "registry-access",
    RegistryAccessArgs(
        tenant=cfg.tenant,
        secret_name=naming.registry_secret_name(cfg.tenant),
        namespace=cfg.argocd_namespace,
        registry_host=host,
        account_id=account,
        region=cfg.aws_region,
        repository_arns=[account.apply(naming.ecr_arn_for(cfg.aws_region, n)) for n in repo_names.values()],
        mode=cfg.token_refresh_mode,
        schedule=cfg.refresh_schedule,
        cluster_oidc_issuer=cfg.cluster_oidc_issuer,
        static_access_key_id=cfg.static_access_key_id,
        static_secret_access_key=cfg.static_secret_access_key,
        aws_cli_image=cfg.aws_cli_image,
        kubectl_image=cfg.kubectl_image,
    ),
)

outputs = {}
for app in cfg.apps:
    registry = ChartRegistry(app.name, ChartRegistryArgs(repository_name=repo_names[app.name]))
    src = app.entry.source
    repo = ChartRepo(
        app.name,
        ChartRepoArgs(
            owner=cfg.github_owner,
            name=app.name,
            description=f"{app.entry.description} - Helm chart deployed by Argo CD",
            files=initial_files(app=app.name, source=src.repo, template_dir=src.template_dir),
            executable=EXECUTABLES,
            token=cfg.github_token,
            registry_url=host.apply(lambda h: naming.oci_push_target(h, cfg.ecr_prefix)),
            region=cfg.aws_region,
            oidc_provider_arn=oidc.arn,
            ecr_repository_arn=registry.repository_arn,
            ci_role_name=naming.ci_role_name(cfg.tenant, app.name),
            required_check=cfg.required_check,
        ),
    )
    argo = ArgoApp(
        app.name,
        ArgoAppArgs(
            name=app.name,
            argocd_namespace=cfg.argocd_namespace,
            project=cfg.argocd_project,
            repo_url=host.apply(lambda h: naming.chart_repo_url(h, cfg.ecr_prefix)),
            target_revision=app.target_revision,
            namespace=app.namespace,
            values=app.values,
            revision_history_limit=cfg.revision_history_limit,
        ),
        opts=pulumi.ResourceOptions(depends_on=[access]),
    )
    outputs[app.name] = {
        "repoUrl": repo.html_url,
        "ecrRepositoryUrl": registry.repository_url,
        "argocdApp": argo.app_name,
    }

pulumi.export("tenant", cfg.tenant)
pulumi.export("apps", outputs)
