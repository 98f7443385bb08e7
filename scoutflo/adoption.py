"""What already exists: the look-ups that decide, before any resource is registered, whether a
shared or retained thing is adopted or created.

Three things outlive a stack or an app, or are shared by stacks:
- the account's GitHub OIDC provider (one per URL per AWS account);
- an app's GitHub repository (archived, never deleted, when the app is removed);
- an app's ECR repository (retained with every chart version when the app is removed).

This module only asks the providers; what each answer means is decided where the thing lives:
scoutflo/github/adoption.py (a repository of the app's name: this tenant's by its mark, or refused)
and scoutflo/aws/adoption.py (the OIDC provider and ECR repositories, adopted with `import_`, and
why that option is set on every run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from scoutflo.aws.adoption import OIDC_URL, FoundRegistry, OidcProvider, oidc_from_lookup, registry_to_adopt
from scoutflo.github.adoption import AdoptionError, FoundRepo, repo_to_adopt


@dataclass(frozen=True, kw_only=True)
class Existing:
    oidc: OidcProvider | None
    """The account's GitHub OIDC provider, or None when the account has none."""
    repos: Mapping[str, FoundRepo]
    """App repositories to adopt."""
    registries: Mapping[str, FoundRegistry]
    """ECR repositories to adopt."""


def _ask(what: str, fix: str, invoke: Callable[[], Any]) -> Any:
    """Run a look-up; its failure (a bare Exception from the SDK) becomes one clear message."""
    try:
        return invoke()
    except Exception as err:  # noqa: BLE001 - the SDK raises a bare Exception for a failed invoke
        raise AdoptionError(f"looking up {what} failed: {err}. {fix}") from None


def look_up(tenant: str, owner: str, apps: Iterable[str], ecr_names: Iterable[str], *, oidc: bool) -> Existing:
    """Ask the providers what exists (plain invokes: their answers are needed as resource options)."""
    import pulumi_aws as aws
    import pulumi_github as github

    provider = oidc_from_lookup(lambda: aws.iam.get_open_id_connect_provider(url=OIDC_URL)) if oidc else None
    gh_fix = "Check github:token (or $GITHUB_TOKEN): scopes repo and workflow, for owner github:owner."
    found = {
        app: repo_to_adopt(
            tenant,
            owner,
            app,
            _ask(
                f"GitHub repository {owner}/{app}",
                gh_fix,
                partial(github.get_repository, full_name=f"{owner}/{app}"),
            ),
        )
        for app in apps
    }
    # The list data source answers every name (internal/service/ecr/repositories_data_source.go);
    # aws.ecr.get_repository fails on a missing repository (repository_data_source.go
    # findRepository), so it is asked only about names that exist, for their tags.
    aws_fix = "The deployer's AWS rights are deploy/deployer-iam-policy.json."
    in_region = set(_ask("the region's ECR repositories", aws_fix, aws.ecr.get_repositories).names or ())
    registries = {
        name: registry_to_adopt(
            tenant,
            name,
            _ask(f"ECR repository {name}", aws_fix, partial(aws.ecr.get_repository, name=name)),
        )
        for name in ecr_names
        if name in in_region
    }
    return Existing(
        oidc=provider,
        repos={app: repo for app, repo in found.items() if repo is not None},
        registries=registries,
    )
