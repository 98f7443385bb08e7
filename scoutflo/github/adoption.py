"""Whether a GitHub repository of an app's name is this tenant's: adopted, created, or refused.

An app's GitHub repository outlives the app (archived, never deleted, when the app is removed), so
a later stack may find it again. Every repository Scoutflo creates ends its description with the
tenant's mark (`tenant_mark`), set by the one request that creates it (scoutflo/github/repository.py);
that mark, not the name, tells this tenant's kept repository from someone else's. The repository is
created and adopted by our own provider (components/app_repository.py), which checks the same mark
again at create time. scoutflo/adoption.py asks GitHub and hands the answer to `repo_to_adopt`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

# The description rule is the bottom layer's (config checks its length); re-exported for github/.
from scoutflo.description import GITHUB_DESCRIPTION_MAX as GITHUB_DESCRIPTION_MAX
from scoutflo.description import app_description as app_description
from scoutflo.description import repo_description as repo_description
from scoutflo.description import tenant_mark as tenant_mark

TOPIC_PREFIX = "scoutflo-"


def tenant_topic(tenant: str) -> str:
    # Topics: lower-case letters, digits, hyphens, at most 50 characters (terraform-provider-github
    # resource_github_repository.go "topics" validation); a tenant id is a DNS label of <= 40.
    return f"{TOPIC_PREFIX}{tenant}"


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
