"""What already exists: the look-ups that decide, before any resource is registered, whether a
shared or retained thing is adopted or created.

Three things outlive a stack or an app, or are shared by stacks:
- the account's GitHub OIDC provider (one per URL per AWS account);
- an app's GitHub repository (archived, never deleted, when the app is removed);
- an app's ECR repository (retained with every chart version when the app is removed).

The OIDC provider and ECR repositories are adopted with Pulumi's `import_` option; an app's
GitHub repository is created and adopted by our own provider (components/app_repository.py),
which checks the same mark again at create time.

Why `import_` is set on *every* run where the thing exists, also once this stack owns it: the
engine imports only when the resource is not in the stack's state or its stored id differs from
the import id (pulumi/pulumi pkg/resource/deploy/step_generator.go:1102-1113, `isImport :=
goal.Custom && goal.ID != "" && (old == nil || old.External || oldImportID != goal.ID)`). Each
id used here is the provider's own resource id (OIDC provider: its ARN, terraform-provider-aws
internal/service/iam/openid_connect_provider.go `d.SetId(...Arn)`; ECR repository: its name,
internal/service/ecr/repository.go `d.SetId(RepositoryName)`), so for a resource this stack
created the option is inert and nothing flips between create and adopt. After an import the
engine diffs the imported state against the program's inputs like any update
(step_generator.go:1241-1270 `continueStepsFromImport`). A diff that needs a replacement is
refused for an imported resource (step_generator.go:1975-1996).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from scoutflo.policies import GITHUB_OIDC_HOST

OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
TOPIC_PREFIX = "scoutflo-"
TENANT_TAG = "scoutflo:tenant"
"""ECR repositories carry it; GitHub repositories carry `tenant_mark` at the end of their
description. Both tell a tenant's own kept repository from someone else's, or another tenant's, of
the same name."""
# terraform-provider-aws internal/retry/error.go NotFoundError.Error(): the text the OIDC data
# source fails with when no provider has the URL (openid_connect_provider_data_source.go
# findOpenIDConnectProviderByURL returns &retry.NotFoundError{}).
_AWS_NOT_FOUND = "couldn't find resource"


def tenant_topic(tenant: str) -> str:
    # Topics: lower-case letters, digits, hyphens, at most 50 characters (terraform-provider-github
    # resource_github_repository.go "topics" validation); a tenant id is a DNS label of <= 40.
    return f"{TOPIC_PREFIX}{tenant}"


def tenant_mark(tenant: str) -> str:
    """The end of every app repository's description: set by the one request that creates it
    (scoutflo/github_repo.py), so even a repository whose creation answer was lost is known."""
    return f"(Scoutflo tenant {tenant})"


_MARK = re.compile(r"\(Scoutflo tenant ([a-z0-9-]+)\)$")


def _description_and_topics(repo: Any) -> tuple[str, tuple[str, ...]]:
    """From a REST answer (a mapping) or the get_repository data source's result (attributes)."""
    get = repo.get if isinstance(repo, Mapping) else partial(getattr, repo)
    return str(get("description", "") or "").rstrip(), tuple(get("topics", None) or ())


def marked_tenant(repo: Any) -> str | None:
    """The tenant a repository's description (or older topic) names, if any."""
    description, topics = _description_and_topics(repo)
    if found := _MARK.search(description):
        return found.group(1)
    return next((t.removeprefix(TOPIC_PREFIX) for t in topics if t.startswith(TOPIC_PREFIX)), None)


GITHUB_DESCRIPTION_MAX = 350
"""GitHub refuses a longer repository description ("Description cannot be more than 350
characters", quoted in Ylianst/MeshCentral#4724 and owasp-modsecurity/ModSecurity#3130): the create
would fail with a 422 only at `pulumi up`, after the app's other resources were made."""


def app_description(text: str) -> str:
    """An app repository's description before the tenant's mark (the catalog entry's own text)."""
    return f"{text} - Helm chart deployed by Argo CD"


def repo_description(text: str, tenant: str) -> str:
    return f"{text} {tenant_mark(tenant)}"


def with_mark(description: str, tenant: str) -> str | None:
    """`description` with the tenant's mark appended, or None when it has it already or the
    result would be longer than GitHub allows (the repository then stays known by its topic)."""
    text = description.rstrip()
    if text.endswith(tenant_mark(tenant)):
        return None
    marked = f"{text} {tenant_mark(tenant)}".lstrip()
    return marked if len(marked) <= GITHUB_DESCRIPTION_MAX else None


def is_tenants_repo(tenant: str, repo: Any) -> bool:
    """A GitHub repository (a REST answer, or the get_repository data source's result) that is
    this tenant's: its description ends with the mark, or it has the tenant's topic
    (repositories of earlier versions)."""
    description, topics = _description_and_topics(repo)
    return description.endswith(tenant_mark(tenant)) or tenant_topic(tenant) in topics


class AdoptionError(ValueError):
    """Something with an app's name exists and is not ours to take over."""


@dataclass(frozen=True, kw_only=True)
class OidcProvider:
    arn: str
    client_ids: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FoundRepo:
    archived: bool
    """A removed app's repository, adopted again: its content is the user's."""
    repo_id: int = 0
    node_id: str = ""
    """GitHub's ids of the repository (immutable): AppRepository takes them as inputs so a
    preview of its update shows them known (components/app_repository.py `known ids`)."""


# What the first commit of a stack that adopts an archived repository writes instead of the
# scaffold: the repository already has its pipeline and the user's chart, which the scaffold
# would overwrite on main. RepoCommit ignores file changes once it exists
# (components/repo_commit.py `_IDENTITY`), so later runs passing the scaffold change nothing.
READOPTED_MESSAGE = "Scoutflo: repository adopted again"
READOPTED_FILES = {
    ".scoutflo/adopted.md": (
        "This repository was archived when its app was removed from a Scoutflo stack, and adopted\n"
        "again when the app came back: Scoutflo unarchived it and left every file as it was.\n"
    )
}


@dataclass(frozen=True, kw_only=True)
class FoundRegistry:
    tags: Mapping[str, str]
    """Kept when adopted (ours is added): `tags` is not computed, a left-out one is removed."""
    encryption_type: str = "AES256"
    kms_key: str = ""
    """Kept as found: encryption_type and kms_key are ForceNew (terraform-provider-aws
    internal/service/ecr/repository.go), and the engine refuses to replace a resource that names
    an import id (pulumi/pulumi pkg/resource/deploy/step_generator.go:1975-1996)."""


@dataclass(frozen=True, kw_only=True)
class Existing:
    oidc: OidcProvider | None
    """The account's GitHub OIDC provider, or None when the account has none."""
    repos: Mapping[str, FoundRepo]
    """App repositories to adopt."""
    registries: Mapping[str, FoundRegistry]
    """ECR repositories to adopt."""


def repo_to_adopt(tenant: str, owner: str, name: str, found: Any) -> FoundRepo | None:
    """Adopt the repository `found` by `github.get_repository`, create it (None), or refuse.

    The data source answers a 404 with an empty id and no error (terraform-provider-github
    github/data_source_github_repository.go:369-377), so "absent" is an answer without repo_id.
    Ours: it carries this tenant's mark (`is_tenants_repo`), archived or not. Every repository
    Scoutflo creates has it, and archiving (what removing an app does) keeps the description, so
    an archive without it is someone's old project: adopting it would unarchive it, make it
    private and rename its default branch. GitHub redirects a renamed or transferred
    repository's old name; net/http follows the 301 and the data source sets full_name from the answer
    (data_source_github_repository.go:404): a different full name means adopting `name` would
    act on the moved repository.
    """
    if not getattr(found, "repo_id", None):
        return None
    wanted = f"{owner}/{name}"
    actual = str(getattr(found, "full_name", "") or wanted)
    if actual.lower() != wanted.lower():
        raise AdoptionError(
            f"GitHub repository {wanted} now redirects to {actual} (renamed or transferred): rename "
            f"the app in scoutflo:apps, or rename {actual} back to {name} if it is this app's repository"
        )
    archived = bool(getattr(found, "archived", False))
    if is_tenants_repo(tenant, found):
        return FoundRepo(
            archived=archived, repo_id=int(found.repo_id), node_id=str(getattr(found, "node_id", "") or "")
        )
    other = marked_tenant(found)
    whose = f"it is tenant {other}'s" if other else f"its description does not end with '{tenant_mark(tenant)}'"
    raise AdoptionError(
        f"GitHub repository {wanted} already exists and is not tenant {tenant}'s ({whose}"
        f"{', archived' if archived else ''}): rename the app in scoutflo:apps, or, if it is this "
        f"tenant's, {'unarchive it and ' if archived else ''}end its description with "
        f"'{tenant_mark(tenant)}' so Scoutflo adopts it"
    )


def registry_to_adopt(tenant: str, name: str, found: Any) -> FoundRegistry:
    """An ECR repository `aws.ecr.get_repository` found: adopt it when it is this tenant's."""
    tags = dict(getattr(found, "tags", None) or {})
    if tags.get(TENANT_TAG) == tenant:
        encryption = (getattr(found, "encryption_configurations", None) or [None])[0]
        return FoundRegistry(
            tags=tags,
            encryption_type=str(getattr(encryption, "encryption_type", "") or "AES256"),
            kms_key=str(getattr(encryption, "kms_key", "") or ""),
        )
    owner = f"tenant {tags[TENANT_TAG]!r}'s" if TENANT_TAG in tags else f"not tagged {TENANT_TAG}={tenant}"
    raise AdoptionError(
        f"ECR repository {name} already exists and is {owner}: set scoutflo:ecrPrefix to give this "
        f"tenant its own namespace, or, if it is this tenant's, tag it {TENANT_TAG}={tenant} "
        f"(`aws ecr tag-resource`) so Scoutflo adopts it with every chart version in it"
    )


def oidc_from_lookup(lookup: Any) -> OidcProvider | None:
    """Call `lookup()` (the OIDC data source); None when the account has no provider for the URL.

    The data source fails instead of answering empty, and the engine passes the provider's
    error to the program as the invoke's error (pulumi/pulumi pkg/resource/deploy/
    source_eval.go resmon.Invoke: "invocation of %v returned an error"); the Python SDK raises
    it as an Exception (sdk/python/lib/pulumi/runtime/invoke.py). Only the not-found text means
    absent: any other failure (e.g. AccessDenied) stops the run instead of creating a duplicate.
    """
    try:
        found = lookup()
    except Exception as err:  # noqa: BLE001 - the SDK raises a bare Exception for a failed invoke
        if _AWS_NOT_FOUND in str(err):
            return None
        raise AdoptionError(
            f"looking up the account's GitHub OIDC provider ({OIDC_URL}) failed: {err}. The deployer "
            "needs iam:ListOpenIDConnectProviders and iam:GetOpenIDConnectProvider "
            "(deploy/deployer-iam-policy.json)"
        ) from None
    return OidcProvider(arn=found.arn, client_ids=tuple(found.client_id_lists or ()), tags=dict(found.tags or {}))


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
