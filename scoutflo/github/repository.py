"""An app's GitHub repository in one write: created, adopted again or archived, safe to repeat.

pulumi-github's Repository makes 5 writes to create one private repository with topics
(terraform-provider-github v6.13.0, the `upstream` of pulumi-github 6.15.0, commit 20728bb,
github/resource_github_repository.go: the create at :758/761, the topics PUT at :771, then
resourceGithubRepositoryUpdate, which every create ends with (:785): an Edit at :961, the topics
PUT again at :994 and a visibility Edit at :1011), 3 without topics. The create's request body,
resourceGithubRepositoryObject (:587-613), already carries every setting we use (visibility,
has_*, allow_*_merge, delete_branch_on_merge, auto_init), so the Edits repeat what the create set.
Here the create is that one request, nothing after it.

What tells a repository of this tenant's from someone else's of the same name has to be in that
one request, so that a re-run after a lost answer ("name already exists") can recognise its own
repository: the description ends with `(Scoutflo tenant <tenant>)` (scoutflo/github/adoption.py). The
topic `scoutflo-<tenant>`, which repositories of earlier versions carry, is recognised too.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoutflo.github.adoption import is_tenants_repo, tenant_mark
from scoutflo.github.api import GitHub, GitHubError, branch_head

SETTINGS: dict[str, bool] = {
    "private": True,
    "has_issues": True,
    "has_wiki": False,
    "has_projects": False,
    "allow_merge_commit": False,
    "allow_rebase_merge": False,
    "allow_squash_merge": True,
    "delete_branch_on_merge": True,
}
"""What every app repository is set to (the names are GitHub's REST fields, accepted by both
create endpoints and by the update endpoint: docs.github.com/en/rest/repos/repos)."""


@dataclass(frozen=True, kw_only=True)
class RepoFacts:
    repo_id: int
    node_id: str
    full_name: str
    html_url: str
    default_branch: str
    archived: bool
    description: str
    writes: int = 0
    adopted: bool = False
    """It existed (ours: archived by an earlier removal, or created by a run whose answer was lost)."""

    def outputs(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "node_id": self.node_id,
            "full_name": self.full_name,
            "html_url": self.html_url,
            "default_branch": self.default_branch,
        }


def repo_facts(repo: Mapping[str, Any], writes: int = 0, *, adopted: bool = False) -> RepoFacts:
    return RepoFacts(
        repo_id=int(repo["id"]),
        node_id=str(repo["node_id"]),
        full_name=str(repo["full_name"]),
        html_url=str(repo["html_url"]),
        default_branch=str(repo.get("default_branch") or ""),
        archived=bool(repo.get("archived")),
        description=str(repo.get("description") or ""),
        writes=writes,
        adopted=adopted,
    )


def _path(owner: str, name: str) -> str:
    return f"/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(name, safe='')}"


def get_repository(gh: GitHub, owner: str, name: str) -> dict[str, Any] | None:
    """The repository as GitHub answers it, or None. A renamed or transferred repository answers
    its old name with a 301 PyGithub follows on the same origin (api.py): the answer's
    full_name then names another repository, which is refused, never acted on."""
    repo = gh.call("GET", _path(owner, name), ok404=True)
    if repo is None:
        return None
    wanted = f"{owner}/{name}"
    if str(repo.get("full_name", "")).lower() != wanted.lower():
        raise GitHubError(
            409,
            "GET",
            _path(owner, name),
            f"{wanted} now redirects to {repo.get('full_name')} (renamed or transferred): rename the app, "
            f"or rename the repository back to {name} if it is this app's",
        )
    return dict(repo)


def _create_path(gh: GitHub, owner: str) -> str:
    """POST /orgs/{org}/repos for an organisation; POST /user/repos, which creates in the token's
    own account, only when that account is `owner` (terraform-provider-github would create a user
    owner's repository in whichever account the token is: config.go ConfigureOwner sets
    IsOrganization only for an organisation, and resource_github_repository.go:761 then calls
    Create with owner "")."""
    account = gh.call("GET", f"/users/{urllib.parse.quote(owner, safe='')}", ok404=True)
    if account is None:
        raise GitHubError(404, "GET", f"/users/{owner}", f"no GitHub user or organisation {owner!r} (github:owner)")
    if account.get("type") == "Organization":
        return f"/orgs/{urllib.parse.quote(owner, safe='')}/repos"
    try:
        me = gh.call("GET", "/user")
    except GitHubError as err:
        if err.status != 403:
            raise
        # A GitHub App installation token has no user (GET /user answers 403 "Resource not
        # accessible by integration", quoted in actions/create-github-app-token#258), and
        # POST /user/repos creates in the token's user account only.
        raise GitHubError(
            403,
            "GET",
            "/user",
            f"github:owner {owner!r} is a user account, and the token has no user account of its own "
            f"({err}): a GitHub App installation token can only create repositories in an organisation; "
            f"use a personal access token of {owner!r}, or an organisation as github:owner",
        ) from None
    if str(me.get("login", "")).lower() != owner.lower():
        raise GitHubError(
            403,
            "GET",
            "/user",
            f"github:owner {owner!r} is a user account but the token is {me.get('login')!r}'s: a token "
            "can only create repositories in its own account or in an organisation it belongs to",
        )
    return "/user/repos"


def _refuse(owner: str, name: str, tenant: str, repo: Mapping[str, Any]) -> GitHubError:
    return GitHubError(
        409,
        "GET",
        _path(owner, name),
        f"{owner}/{name} already exists and is not tenant {tenant}'s (its description does not end "
        f"with {tenant_mark(tenant)!r}{', archived' if repo.get('archived') else ''}): rename the app, or, if "
        f"it is this tenant's, {'unarchive it and ' if repo.get('archived') else ''}end its description "
        f"with {tenant_mark(tenant)!r} so Scoutflo adopts it",
    )


def ensure_repository(gh: GitHub, *, owner: str, name: str, tenant: str, description: str) -> RepoFacts:
    """The app's repository, created with one write when absent. One of this tenant's that
    exists (archived when its app was removed, or created by an attempt whose answer was lost)
    is adopted: unarchived and set to SETTINGS with one write, or none when it already is.
    Anyone else's is refused, whatever its state."""
    before = gh.writes
    if (found := get_repository(gh, owner, name)) is not None:
        return _adopt(gh, owner, name, tenant, description, found, before)
    body = {"name": name, "description": description, "auto_init": True, **SETTINGS}
    path = _create_path(gh, owner)

    def landed() -> dict[str, Any] | None:
        repo = get_repository(gh, owner, name)
        return repo if repo is not None and is_tenants_repo(tenant, repo) else None

    try:
        created = gh.call("POST", path, body, verify=landed)
    except GitHubError as err:
        # 422 "name already exists on this account": ours from an attempt whose answer was lost,
        # or someone's made meanwhile (decided by the marker, as for any existing repository).
        if err.status != 422 or (found := get_repository(gh, owner, name)) is None:
            raise
        return _adopt(gh, owner, name, tenant, description, found, before)
    # GitHub makes auto_init's commit after the create answers. Returning before its branch
    # exists would let what depends on this repository fail on a missing branch: BranchDefault
    # renames the default branch with no wait for it to exist (terraform-provider-github
    # github/resource_github_branch_default.go:129-142: Get, then RenameBranch of
    # GetDefaultBranch()). Reads only, within the operation's wait budget.
    branch_head(gh, _path(owner, name), str(created.get("default_branch") or "main"))
    return repo_facts(created, gh.writes - before)


def _adopt(
    gh: GitHub, owner: str, name: str, tenant: str, description: str, repo: Mapping[str, Any], before: int
) -> RepoFacts:
    if not is_tenants_repo(tenant, repo):
        raise _refuse(owner, name, tenant, repo)
    if repo.get("archived"):
        # Unarchived alone, first: an archived repository is read-only (403 "Repository was
        # archived so is read-only.") and GitHub documents no exception for other fields sent
        # with `archived: false`; and its answer may leave out the merge settings
        # (terraform-provider-github resource_github_repository.go:846-863 reads them only when
        # not archived), which compared as missing would be written again every time. The
        # unarchived answer has them.
        repo = gh.call("PATCH", _path(owner, name), {"archived": False}, idempotent=True)
    # Only the settings are set; the description is left as found (it carries the mark: the
    # user may reword it as long as it keeps ending with the mark, which is how every later
    # run, removal and re-adoption knows the repository).
    fix = {k: v for k, v in SETTINGS.items() if repo.get(k) != v}
    if fix:
        repo = gh.call("PATCH", _path(owner, name), fix, idempotent=True)
    return repo_facts(repo, gh.writes - before, adopted=True)


def _same_repository(repo: Mapping[str, Any], repo_id: Any) -> bool:
    """Whether `repo` is the repository whose id the state recorded (None: not recorded). A
    repository's id survives renames and archiving; a new repository under the same name (ours
    deleted by the user, then someone's created) has another. The state's number may come back
    as a float (the dynamic provider's properties travel as protobuf Struct numbers)."""
    return repo_id is None or int(repo["id"]) == int(repo_id)


def refresh_repository(gh: GitHub, owner: str, name: str, holder: str) -> dict[str, Any] | None:
    """`get_repository` for a provider's `read` (`pulumi refresh`), which can only use the token
    the state holds (ReadRequest.properties are the prior outputs: pulumi sdk/python/lib/pulumi/
    dynamic/__main__.py:229-236). A 401 there is a `github:token` rotated, the old one revoked,
    before any `up` recorded the new one (or, for a commit, before this version recorded token
    changes at all): the error says the `up` that records it comes first. That `up` succeeds even
    when the repository was deleted meanwhile (AppRepository's update creates it again), so the
    advice holds."""
    try:
        return get_repository(gh, owner, name)
    except GitHubError as err:
        if err.status != 401:
            raise
        raise GitHubError(
            401,
            "GET",
            _path(owner, name),
            f"GitHub refused the token the state of {holder} holds (rotated since it was recorded): run "
            "`pulumi up` once, which records the current token, then `pulumi refresh`",
        ) from None


def rename_default_branch(gh: GitHub, *, owner: str, name: str, facts: RepoFacts, to: str = "main") -> RepoFacts:
    """The repository's default branch renamed to `to` (one write; none when it already is), as
    BranchDefault's `rename` does at create (terraform-provider-github github/
    resource_github_branch_default.go:129-142, RenameBranch: POST /repos/{owner}/{repo}/branches/
    {branch}/rename with `new_name`, and GitHub moves the default with it). For a repository
    created again by AppRepository's update, which BranchDefault, its state unchanged, leaves alone."""
    if not facts.default_branch or facts.default_branch == to:
        return facts
    path = _path(owner, name)

    def renamed() -> dict[str, Any] | None:
        repo = get_repository(gh, owner, name)
        return repo if repo is not None and repo.get("default_branch") == to else None

    gh.call(
        "POST",
        f"{path}/branches/{urllib.parse.quote(facts.default_branch, safe='')}/rename",
        {"new_name": to},
        verify=renamed,
    )
    repo = get_repository(gh, owner, name)
    if repo is None:
        raise RepositoryGone(404, "GET", path, f"{owner}/{name} was deleted again while its branch was renamed")
    return repo_facts(repo, facts.writes + 1, adopted=facts.adopted)


class RepositoryGone(GitHubError):
    """The repository an update was to set no longer exists (deleted on GitHub)."""


def update_repository(
    gh: GitHub, *, owner: str, name: str, fields: Mapping[str, Any], repo_id: Any = None
) -> RepoFacts:
    """Set `fields` (a subset of SETTINGS, or the description); PATCH sets values, so repeating is
    harmless. Nothing is written when the repository already has them, and nothing at all when
    the name now holds another repository than the state's `repo_id`."""
    before = gh.writes
    repo = get_repository(gh, owner, name)
    if repo is None:
        raise RepositoryGone(
            404,
            "GET",
            _path(owner, name),
            f"{owner}/{name} no longer exists (deleted on GitHub): run `pulumi refresh` to forget it, "
            "and the next `pulumi up` creates it again",
        )
    if not _same_repository(repo, repo_id):
        raise GitHubError(
            409,
            "GET",
            _path(owner, name),
            f"{owner}/{name} is another repository than the one this stack made (id {repo['id']}, "
            f"not {int(repo_id)}): it was deleted and the name reused; rename the app, or run "
            "`pulumi refresh` to forget the deleted one",
        )
    fix = {k: v for k, v in fields.items() if repo.get(k) != v}
    if fix:
        repo = gh.call("PATCH", _path(owner, name), fix, idempotent=True)
    return repo_facts(repo, gh.writes - before)


def archive_repository(gh: GitHub, *, owner: str, name: str, repo_id: Any = None) -> bool:
    """Archive, never delete: the repository and its history are the user's. True when archived
    now; False when it is gone or archived already (what terraform-provider-github's
    archive_on_destroy does, resource_github_repository.go:1033-1046), and False with nothing
    written when the name no longer leads to the state's repository: moved (renamed or
    transferred, so the user took it elsewhere) or deleted with the name reused by another. The
    app's removal must not fail on either (the state could then only be fixed by hand), and
    neither is ours to archive."""
    repo = gh.call("GET", _path(owner, name), ok404=True)
    if repo is None or repo.get("archived"):
        return False
    if str(repo.get("full_name", "")).lower() != f"{owner}/{name}".lower() or not _same_repository(repo, repo_id):
        return False
    gh.call("PATCH", _path(owner, name), {"archived": True}, idempotent=True)
    return True
