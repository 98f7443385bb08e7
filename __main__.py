"""Scoutflo GitOps: for one tenant, every catalog app gets a chart repo, an ECR repository and an
Argo CD Application; the tenant gets one registry credential and its refresher."""

import pulumi
import pulumi_aws as aws

from charts_catalog import CatalogError
from components.argo_app import ArgoApp, ArgoAppArgs
from components.chart_registry import ChartRegistry, ChartRegistryArgs
from components.chart_repo import ChartRepo, ChartRepoArgs
from components.github_oidc import GithubOidc, GithubOidcArgs
from components.registry_access import (
    CapabilityRoleError,
    RegistryAccess,
    capability_role_name,
    check_capability_role,
    registry_access_args,
)
from scoutflo import naming
from scoutflo.adoption import AdoptionError, look_up
from scoutflo.charts.bounded import plan_imports_bounded
from scoutflo.charts.errors import ChartError
from scoutflo.charts.fetch import cache_dir
from scoutflo.charts.plan import application_values
from scoutflo.config import ConfigError, load_config
from scoutflo.github.adoption import app_description
from scoutflo.github.repo_files import EXECUTABLES, initial_files

try:
    cfg = load_config()
    # Public charts are fetched and checked before anything is registered, each in a child
    # process under a wall-clock deadline and CPU and memory caps (scoutflo/charts/bounded.py).
    imports = plan_imports_bounded(
        cfg.apps, cache=cache_dir(cfg.chart_cache_dir), credentials=cfg.chart_registry_credentials
    )
    # What already exists (shared OIDC provider, repos and ECR repositories kept from an earlier
    # removal) is adopted, not created twice; a foreign repo of an app's name stops the run here.
    ecr_names = {app.name: naming.ecr_repository_name(cfg.ecr_prefix, app.name) for app in cfg.apps}
    existing = look_up(
        cfg.tenant,
        cfg.github_owner,
        [app.name for app in cfg.apps],
        ecr_names.values(),
        oidc=not cfg.github_oidc_provider_arn,
    )
    if cfg.token_refresh_mode == "none":
        # Before anything is registered: inside the grant's apply it would fail the run after
        # the repositories were created.
        role_name = capability_role_name(cfg.argocd_capability_role_arn, aws.get_caller_identity().account_id)
        try:
            # terraform-provider-aws internal/service/iam/role_data_source.go (0929dbaa, L77-L99):
            # iam:GetRole by name; assume_role_policy is the document URL-decoded (QueryUnescape).
            role = aws.iam.get_role(name=role_name)
        except Exception as err:  # noqa: BLE001 - the SDK raises a bare Exception for a failed invoke
            raise CapabilityRoleError(
                f"config 'scoutflo:argocdCapabilityRoleArn': the role {role_name} could not be read: {err}"
            ) from None
        check_capability_role(cfg.argocd_capability_role_arn, role.arn, role.assume_role_policy)
except (ConfigError, CatalogError, ChartError, AdoptionError, CapabilityRoleError) as err:
    raise pulumi.RunError(str(err)) from None

account = aws.get_caller_identity_output().account_id
host = account.apply(lambda acct: naming.registry_host(acct, cfg.aws_region))
oidc = GithubOidc("github-oidc", GithubOidcArgs(existing_arn=cfg.github_oidc_provider_arn, found=existing.oidc))
access = RegistryAccess("registry-access", registry_access_args(cfg, host, account))

outputs = {}
for app in cfg.apps:
    ecr_name = ecr_names[app.name]
    kept = existing.registries.get(ecr_name)
    registry = ChartRegistry(
        app.name,
        ChartRegistryArgs(
            repository_name=ecr_name,
            tenant=cfg.tenant,
            exists=kept is not None,
            tags=kept.tags if kept else {},
            encryption_type=kept.encryption_type if kept else "AES256",
            kms_key=kept.kms_key if kept else "",
        ),
    )
    src, plan = app.entry.source, imports.get(app.name)
    repo = ChartRepo(
        app.name,
        ChartRepoArgs(
            owner=cfg.github_owner,
            name=app.name,
            description=app_description(app.entry.description),
            files=initial_files(
                app=app.name, source=src.repo, template_dir=src.template_dir, branch_protection=cfg.branch_protection
            ),
            executable=EXECUTABLES,
            token=cfg.github_token,
            registry_url=host.apply(lambda h: naming.oci_push_target(h, cfg.ecr_prefix)),
            region=cfg.aws_region,
            oidc_provider_arn=oidc.arn,
            ecr_repository_arn=registry.repository_arn,
            ci_role_name=naming.ci_role_name(cfg.tenant, app.name),
            required_check=cfg.required_check,
            branch_protection=cfg.branch_protection,
            existing=existing.repos.get(app.name),
            tenant=cfg.tenant,
            import_files=plan.files if plan else {},
            import_branch=plan.branch if plan else "",
            import_title=plan.title if plan else "",
            import_body=plan.body if plan else "",
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
            values=application_values(app.mode, src.chart, app.values),
            revision_history_limit=cfg.revision_history_limit,
            prune=app.entry.sync.prune,
            server_side_apply=app.entry.sync.server_side_apply,
            destination=cfg.argocd_destination,
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
