"""An app's GitHub repository through our own provider (scoutflo/github/repository.py,
components/app_repository.py), at the HTTP level against the loopback stand-in for GitHub
(tests/github_stub.py): one write to create, none to adopt our own, none ever on someone else's,
archive never delete, and the take-over of a pulumi-github Repository's state."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.app_repository import AppRepositoryProvider
from scoutflo.github.adoption import repo_description, tenant_mark, tenant_topic
from scoutflo.github.api import GitHub, GitHubError, Pacer
from scoutflo.github.repository import (
    SETTINGS,
    RepositoryGone,
    archive_repository,
    ensure_repository,
    update_repository,
)
from tests.github_stub import READ_ONLY, TOKEN, Fault, GitHubState, github_stub

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_800_000_000.0
TENANT = "acme"
DESC = repo_description("Helm chart of web", TENANT)
Stub = tuple[GitHubState, str]


def client(url: str, **kwargs: Any) -> GitHub:
    return GitHub(TOKEN, api=url, sleep=lambda _s: None, now=lambda: NOW, pacer=Pacer(), **kwargs)


def ensure(gh: GitHub, owner: str = "o", name: str = "web") -> Any:
    return ensure_repository(gh, owner=owner, name=name, tenant=TENANT, description=DESC)


def writes(state: GitHubState) -> list[tuple[str, str, Any]]:
    return [(m, p, b) for m, p, b in state.requests if m != "GET"]


def ours(**fields: Any) -> dict[str, Any]:
    """Our repository as a run of this version leaves it."""
    return {"full_name": "o/web", "description": DESC, **SETTINGS, **fields}


TOPIC_MARKED = {"full_name": "o/web", "description": "Helm chart of web", "topics": [tenant_topic(TENANT)], **SETTINGS}
"""Ours as pulumi-github's Repository left it: the tenant's topic, a description without the mark."""


@pytest.fixture(scope="module")
def server() -> Iterator[Stub]:
    """One stand-in for the module (stopping one costs half a second); each test resets its state."""
    state = GitHubState(repo=None)
    with github_stub(state) as url:
        yield state, url


@pytest.fixture
def github(server: Stub) -> Callable[..., Stub]:
    """start(repo, **state fields): GitHub holding the repository `repo` (GitHub's metadata
    fields, the rest defaulted as GitHub does), or none."""
    state, url = server

    def start(repo: dict[str, Any] | None = None, **fields: Any) -> Stub:
        vars(state).update(vars(GitHubState(repo=repo, **fields)))
        return state, url

    return start


@pytest.fixture
def empty(github: Callable[..., Stub]) -> Stub:
    """GitHub with no repository yet."""
    return github()


def outs(result: Any) -> dict[str, Any]:
    """A provider result's outputs (CreateResult, UpdateResult, ReadResult)."""
    assert result.outs is not None
    return dict(result.outs)


def props(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "owner": "o",
        "name": "web",
        "tenant": TENANT,
        "description": DESC,
        "token": TOKEN,
        "api_url": url,
    } | changes


# ------------------------------------------------------------------ creating: one write


@pytest.mark.parametrize(("owner", "path"), [("o", "/orgs/o/repos"), ("me", "/user/repos")])
def test_a_new_repository_is_one_write_carrying_every_setting(empty: Stub, owner: str, path: str) -> None:
    state, url = empty
    gh = client(url)
    facts = ensure(gh, owner=owner)
    assert writes(state) == [("POST", path, {"name": "web", "description": DESC, "auto_init": True, **SETTINGS})]
    assert gh.writes == facts.writes == 1 and not facts.adopted
    assert state.repo is not None and state.repo["full_name"] == f"{owner}/web"
    assert {k: state.repo[k] for k in SETTINGS} == SETTINGS and state.repo["visibility"] == "private"
    assert (facts.full_name, facts.default_branch, facts.repo_id) == (f"{owner}/web", "main", state.repo["id"])
    # auto_init: the default branch with one README commit, which the scaffold commit builds on.
    assert list(state.refs) == ["main"] and state.files("main") == {"README.md": b"# web\n"}


def test_auto_init_makes_the_owners_default_branch(github: Callable[..., Stub]) -> None:
    state, url = github(default_branch="trunk")
    facts = ensure(client(url))
    assert facts.default_branch == "trunk" and list(state.refs) == ["trunk"]


def test_the_create_returns_once_auto_inits_branch_exists(github: Callable[..., Stub]) -> None:
    """BranchDefault renames the default branch right after AppRepository (no wait of its own:
    terraform-provider-github resource_github_branch_default.go:129-142), and GitHub makes
    auto_init's commit after the create answers (409 "Git Repository is empty." meanwhile)."""
    state, url = github(None, empty_window=2, default_branch="trunk")
    gh = client(url)
    facts = ensure(gh)
    assert facts.default_branch == "trunk" and gh.writes == 1
    assert state.empty_reads == 0, "returned while the branch was not there yet"
    polls = [p for m, p, _ in state.requests if m == "GET" and p.endswith("/git/ref/heads/trunk")]
    assert len(polls) == 3


def test_a_user_account_that_is_not_the_tokens_is_a_clear_error_before_any_write(empty: Stub) -> None:
    state, url = empty
    state.accounts["someone"] = "User"
    with pytest.raises(GitHubError, match="'someone' is a user account but the token is 'me'"):
        ensure(client(url), owner="someone")
    with pytest.raises(GitHubError, match=r"no GitHub user or organisation 'nobody' \(github:owner\)"):
        ensure(client(url), owner="nobody")
    state.login = None  # a GitHub App installation token
    with pytest.raises(GitHubError, match=r"installation token can only create repositories in an organisation"):
        ensure(client(url), owner="someone")
    assert writes(state) == [] and state.repo is None


def test_a_rerun_adopts_the_repository_it_made_with_no_write(empty: Stub) -> None:
    state, url = empty
    first = ensure(client(url))
    gh = client(url)
    again = ensure(gh)
    assert gh.writes == again.writes == 0 and again.adopted
    assert (again.repo_id, again.full_name) == (first.repo_id, first.full_name)
    assert len(writes(state)) == 1


FAULTS = {
    "rate limited": Fault("status", 429, {"Retry-After": "1"}, "slow down"),
    "502 before": Fault("status", 502, message="bad gateway"),
    "dropped before": Fault("drop"),
    "dropped after": Fault("drop-after"),
    "502 after": Fault("status-after", 502, message="bad gateway"),
}


def _sweep(start: Callable[[], GitHubState], writes: int, check: Callable[[GitHubState], None]) -> None:
    """Each write failing once in turn, in each way, with and without in-run retries; a failed
    run is run again (the engine re-runs a create left pending, pulumi/pulumi
    pkg/engine/lifecycletest/pulumi_test.go:912), and once more as after a lost success answer.
    Our own repository is never refused on the way."""
    state = start()
    with github_stub(state) as url:
        for name, fault in FAULTS.items():
            for attempts in (1, 5):
                for n in range(writes):
                    vars(state).update(vars(start()))
                    state.write_faults = {n: fault}
                    try:
                        ensure(client(url, max_attempts=attempts))
                    except GitHubError as err:
                        assert "not tenant" not in str(err) and "redirects" not in str(err), err
                        # With retries, an unknown outcome is read back (`verify`) and settled
                        # in the same run; only a single attempt may leave it to the next run.
                        assert attempts == 1, f"write {n} {name}, {attempts} attempts: {err}"
                        ensure(client(url))
                    last = ensure(client(url))
                    try:
                        assert last.adopted and last.writes == 0
                        check(state)
                    except AssertionError as err:
                        raise AssertionError(f"write {n} {name}, {attempts} attempts: {err}") from None


def test_every_create_write_failing_once_ends_in_exactly_one_repository() -> None:
    def check(state: GitHubState) -> None:
        assert state.repo is not None and state.repo["full_name"] == "o/web" and state.repo["description"] == DESC
        assert {k: state.repo[k] for k in SETTINGS} == SETTINGS
        # One repository, initialised once: any second create was refused as "name already exists".
        assert list(state.refs) == ["main"] and len(state.history("main")) == 1
        creates = [r for r in writes(state) if r[0] == "POST"]
        assert 1 <= len(creates) <= 2 and [r for r in writes(state) if r[0] != "POST"] == []

    _sweep(lambda: GitHubState(repo=None), 1, check)


def test_every_unarchive_write_failing_once_ends_unarchived() -> None:
    def check(state: GitHubState) -> None:
        assert state.repo is not None and not state.repo["archived"]
        assert {r[2]["archived"] for r in writes(state)} == {False}

    _sweep(lambda: GitHubState(repo=ours(archived=True)), 1, check)


# ------------------------------------------------------------------ adopting, refusing


@pytest.mark.parametrize(
    "found",
    [
        {"description": "my own project"},
        {"description": "my own project", "archived": True},
        {"description": repo_description("Helm chart of web", "other-tenant")},
        {"description": None, "topics": [tenant_topic("other-tenant")], "archived": True},
        # Our mark quoted inside someone's description is not our mark (it must end it).
        {"description": f"Fork of {tenant_mark(TENANT)} web, now bob's"},
    ],
    ids=["stranger", "stranger-archived", "other-tenant", "other-tenant-topic-archived", "mark-not-at-end"],
)
def test_someone_elses_repository_of_the_same_name_is_refused_with_no_write(
    github: Callable[..., Stub], found: dict[str, Any]
) -> None:
    state, url = github({"full_name": "o/web", **found})
    before = json.dumps(state.repo, sort_keys=True)
    with pytest.raises(GitHubError, match=r"o/web already exists and is not tenant acme's \(") as err:
        ensure(client(url))
    fix = "unarchive it and end its description" if found.get("archived") else "end its description"
    assert "rename the app" in str(err.value) and f"{fix} with '(Scoutflo tenant acme)'" in str(err.value)
    assert writes(state) == [] and json.dumps(state.repo, sort_keys=True) == before


def test_our_archived_repository_is_adopted_with_one_patch(github: Callable[..., Stub]) -> None:
    state, url = github(ours(archived=True))
    gh = client(url)
    facts = ensure(gh)
    assert writes(state) == [("PATCH", "/repos/o/web", {"archived": False})]
    assert facts.adopted and facts.writes == 1 and not facts.archived
    assert state.repo is not None and not state.repo["archived"] and state.repo["description"] == DESC


def test_an_archived_repository_is_unarchived_before_its_settings_are_set(github: Callable[..., Stub]) -> None:
    """An archived repository refuses every other change (403 "Repository was archived so is
    read-only."): unarchiving goes alone, the settings after it; the user's description stays."""
    state, url = github(ours(archived=True, has_wiki=True, description=f"the user's words {DESC}"))
    facts = ensure(client(url))
    assert [(m, b) for m, _, b in writes(state)] == [("PATCH", {"archived": False}), ("PATCH", {"has_wiki": False})]
    assert facts.writes == 2 and state.repo is not None and state.repo["description"] == f"the user's words {DESC}"


@pytest.mark.parametrize(
    "found",
    [TOPIC_MARKED, ours(description=f"{DESC}  ")],
    ids=["older-topic", "mark-then-trailing-spaces"],
)
def test_our_marks_are_recognised(github: Callable[..., Stub], found: dict[str, Any]) -> None:
    state, url = github(found)
    facts = ensure(client(url))
    assert facts.adopted and facts.writes == 0 and writes(state) == []


def test_a_renamed_repository_is_refused_never_acted_on(github: Callable[..., Stub]) -> None:
    """GitHub answers a former name with a 301 to /repositories/{id}, which PyGithub follows on
    the same origin; what it finds is another repository."""
    state, url = github(ours(full_name="o/web-renamed"))
    state.moved.add("o/web")
    assert state.repo is not None
    for act in (
        lambda gh: ensure(gh),
        lambda gh: update_repository(gh, owner="o", name="web", fields={"description": "x"}),
    ):
        with pytest.raises(GitHubError, match="o/web now redirects to o/web-renamed"):
            act(client(url))
    # Removing the app leaves the moved repository alone and does not fail: an error there
    # would block every later `pulumi up` of the stack until its state is edited by hand.
    assert archive_repository(client(url), owner="o", name="web", repo_id=state.repo["id"]) is False
    assert ("GET", f"/repositories/{state.repo['id']}", None) in state.requests
    assert writes(state) == [] and not state.repo["archived"]


def test_a_name_reused_by_another_repository_is_never_patched_nor_archived(empty: Stub) -> None:
    """Ours deleted by the user, and someone's created under the same name: its description
    does not end with our mark, and the state's repository id tells it apart. Neither a
    description change, nor removing the app, nor a refresh may act on it."""
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    # What the engine hands back: protobuf Struct numbers are doubles.
    created["repo_id"] = float(created["repo_id"])
    state.repo = state.new_repo("o/web", id=created["repo_id"] + 1, description="their project", private=False)
    n = len(state.requests)
    new_desc = repo_description("Web front end", TENANT)
    with pytest.raises(GitHubError, match="another repository than the one this stack made"):
        provider.update("web", created, props(url, description=new_desc))
    provider.delete("web", created)
    assert provider.read("web", created).id is None
    assert all(m == "GET" for m, _, _ in state.requests[n:])
    assert state.repo["description"] == "their project" and not state.repo["archived"]


def test_a_repository_of_ours_made_after_the_look_up_is_adopted(github: Callable[..., Stub]) -> None:
    """A concurrent run of this stack created it between our read and our create: the create
    answers 422 "name already exists on this account", and the repository is ours."""
    state, url = github(ours())
    state.failures[("GET", "/repos/o/web")] = [Fault("status", 404, message="Not Found")]  # not yet there
    gh = client(url)
    facts = ensure(gh)
    assert facts.adopted and gh.writes == 1 and [m for m, _, _ in writes(state)] == ["POST"]


def test_someone_elses_repository_made_meanwhile_is_never_taken_for_our_lost_create(
    github: Callable[..., Stub],
) -> None:
    """Our create fails with a 5xx (not done), and someone's repository of the same name
    appeared after our read: reading back whether the create landed finds a repository, but
    not ours (no mark); it is refused, not recorded as the one we created."""
    state, url = github({"full_name": "o/web", "description": "their project"})
    before = json.dumps(state.repo, sort_keys=True)
    state.failures[("GET", "/repos/o/web")] = [Fault("status", 404, message="Not Found")]
    state.write_faults = {0: Fault("status", 502, message="bad gateway")}
    with pytest.raises(GitHubError, match="o/web already exists and is not tenant acme's"):
        ensure(client(url))
    assert {m for m, _, _ in writes(state)} == {"POST"} and json.dumps(state.repo, sort_keys=True) == before


# ------------------------------------------------------------------ removing: archive, never delete


def test_removal_archives_once_and_never_deletes(empty: Stub) -> None:
    state, url = empty
    ensure(client(url))
    gh = client(url)
    assert archive_repository(gh, owner="o", name="web") is True and gh.writes == 1
    assert writes(state)[-1] == ("PATCH", "/repos/o/web", {"archived": True})
    assert state.repo is not None and state.repo["archived"]
    gh = client(url)
    assert archive_repository(gh, owner="o", name="web") is False and gh.writes == 0
    # The archive is read-only: the stand-in refuses commits to it as GitHub does.
    with pytest.raises(GitHubError, match=READ_ONLY):
        client(url).call("POST", "/repos/o/web/git/refs", {"ref": "refs/heads/x", "sha": state.refs["main"]})
    state.repo = None
    gh = client(url)
    assert archive_repository(gh, owner="o", name="web") is False and gh.writes == 0
    assert "DELETE" not in {m for m, _, _ in state.requests}


def test_provider_delete_archives_and_never_deletes(empty: Stub) -> None:
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    provider.delete("web", created)
    provider.delete("web", created)
    assert state.repo is not None and state.repo["archived"]
    assert [m for m, _, _ in writes(state)] == ["POST", "PATCH"]


# ------------------------------------------------------------------ the dynamic provider


def test_provider_diff_and_update(empty: Stub) -> None:
    state, url = empty
    provider = AppRepositoryProvider()
    created = provider.create(props(url))
    olds = outs(created)
    assert created.id == "web" and olds["github_writes"] == 1 and olds["full_name"] == "o/web"
    same = provider.diff("web", olds, props(url))
    assert not same.changes and not same.replaces
    for key in ("owner", "name"):
        moved = provider.diff("web", olds, props(url, **{key: "other"}))
        assert moved.changes and moved.replaces == [key] and not moved.delete_before_replace
    for key in ("tenant", "api_url"):  # recorded for removal and re-adoption, same repository
        other = provider.diff("web", olds, props(url, **{key: "other"}))
        assert other.changes and not other.replaces, key
    new_desc = repo_description("Web front end", TENANT)
    changed = provider.diff("web", olds, props(url, description=new_desc))
    assert changed.changes and not changed.replaces
    n = len(state.requests)
    updated = outs(provider.update("web", olds, props(url, description=new_desc)))
    assert [r for r in state.requests[n:] if r[0] != "GET"] == [("PATCH", "/repos/o/web", {"description": new_desc})]
    assert updated["github_writes"] == 1 and updated["description"] == new_desc
    assert state.repo is not None and state.repo["description"] == new_desc
    # A rotated token is recorded with no write, so a later removal archives with a live one.
    stale = {**updated, "token": "ghp_rotated_out"}
    rotated = provider.diff("web", stale, props(url, description=new_desc))
    assert rotated.changes and not rotated.replaces
    n = len(state.requests)
    kept = outs(provider.update("web", stale, props(url, description=new_desc)))
    assert kept["token"] == TOKEN and kept["github_writes"] == 0
    assert all(r[0] == "GET" for r in state.requests[n:])


# What a pulumi-github Repository (chart_repo.py before this provider) left in the state: its
# outputs, camelCase, with neither `owner` nor `tenant`.
LEGACY_OUTPUTS = {
    "name": "web",
    "description": "Helm chart of web",
    "visibility": "private",
    "autoInit": True,
    "archiveOnDestroy": True,
    "archived": False,
    "deleteBranchOnMerge": True,
    "hasIssues": True,
    "hasWiki": False,
    "hasProjects": False,
    "allowMergeCommit": False,
    "allowRebaseMerge": False,
    "allowSquashMerge": True,
    "topics": [tenant_topic(TENANT)],
    "fullName": "o/web",
    "htmlUrl": "https://github.test/o/web",
    "repoId": 123,
    "nodeId": "R_1",
    "defaultBranch": "main",
}


def test_a_pulumi_github_repositorys_state_is_taken_over_and_marked_once(
    github: Callable[..., Stub],
) -> None:
    state, url = github(TOPIC_MARKED)
    provider = AppRepositoryProvider()
    diff = provider.diff("web", LEGACY_OUTPUTS, props(url))
    assert diff.changes and diff.replaces == [] and not diff.delete_before_replace
    updated = outs(provider.update("web", LEGACY_OUTPUTS, props(url)))
    # One write: the mark appended to the description the user may have edited, kept otherwise.
    marked = f"Helm chart of web {tenant_mark(TENANT)}"
    assert writes(state) == [("PATCH", "/repos/o/web", {"description": marked})]
    assert updated["github_writes"] == 1 and updated["full_name"] == "o/web" and updated["adopted"] is True
    assert state.repo is not None and state.repo["description"] == marked
    # The next run sees this provider's own state: no change; a repeated takeover writes nothing.
    assert not provider.diff("web", updated, props(url)).changes
    assert outs(provider.update("web", LEGACY_OUTPUTS, props(url)))["github_writes"] == 0


@pytest.mark.parametrize(
    "users",
    ["Our storefront, owned by team web", f"Was {tenant_mark(TENANT)} once"],
    ids=["reworded", "mark-not-at-end"],
)
def test_the_takeover_appends_the_mark_to_the_users_description(github: Callable[..., Stub], users: str) -> None:
    """The user's description is kept, not replaced by the program's; the mark goes at its end,
    where `is_tenants_repo` looks for it."""
    state, url = github({**TOPIC_MARKED, "description": users})
    AppRepositoryProvider().update("web", LEGACY_OUTPUTS, props(url))
    assert writes(state) == [("PATCH", "/repos/o/web", {"description": f"{users} {tenant_mark(TENANT)}"})]


@pytest.mark.parametrize(("length", "written"), [(350 - len(f" {tenant_mark(TENANT)}"), 1), (340, 0)])
def test_a_description_too_long_for_the_mark_keeps_the_topic_alone(
    github: Callable[..., Stub], length: int, written: int
) -> None:
    """Marked, it fits GitHub's 350 characters exactly (written), or would not (left alone)."""
    state, url = github({**TOPIC_MARKED, "description": "x" * length})
    updated = outs(AppRepositoryProvider().update("web", LEGACY_OUTPUTS, props(url)))
    assert updated["github_writes"] == written and len(writes(state)) == written
    assert state.repo is not None and len(state.repo["description"]) == (350 if written else length)


def test_provider_read_keeps_the_users_description_and_drops_a_repository_that_is_gone(empty: Stub) -> None:
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    assert state.repo is not None
    state.repo["description"] = f"edited {DESC}"
    found = provider.read("web", created)
    assert found.id == "web" and outs(found)["full_name"] == "o/web"
    # The user's edit of the description is not taken for a change to undo (no update follows).
    assert not provider.diff("web", outs(found), props(url)).changes
    # Nor undone by an update for another reason (a rotated token).
    n = len(state.requests)
    assert outs(provider.update("web", {**outs(found), "token": "ghp_old"}, props(url)))["github_writes"] == 0
    assert all(m == "GET" for m, _, _ in state.requests[n:]) and state.repo["description"] == f"edited {DESC}"
    state.repo = None
    assert provider.read("web", created).id is None


def test_provider_outputs_are_githubs_ids_and_names(github: Callable[..., Stub]) -> None:
    """What BranchProtection (node_id), the CI trust (repo_id), BranchDefault and the exports
    read: GitHub's own values, from the create, an adoption and a refresh."""

    def github_says(state: GitHubState) -> dict[str, Any]:
        assert state.repo is not None
        keys = ("node_id", "full_name", "html_url", "default_branch")
        return {"repo_id": state.repo["id"], **{k: state.repo[k] for k in keys}}

    provider = AppRepositoryProvider()
    for start, adopted in ((None, False), (ours(archived=True), True)):
        state, url = github(start, default_branch="trunk")
        created = outs(provider.create(props(url)))
        assert {k: created[k] for k in github_says(state)} == github_says(state)
        assert created["adopted"] is adopted and created["default_branch"] == "trunk"
    assert state.repo is not None
    state.repo["default_branch"] = "main"  # BranchDefault's rename
    read = outs(provider.read("web", created))
    assert {k: read[k] for k in github_says(state)} == github_says(state) and read["default_branch"] == "main"


def test_provider_check_names_each_missing_input() -> None:
    for key in ("owner", "name", "tenant", "description", "token"):
        result = AppRepositoryProvider().check({}, props("http://unused", **{key: ""}))
        assert [(f.property, f.reason) for f in result.failures] == [(key, f"{key} is required")]


def test_an_update_of_a_repository_deleted_on_github_creates_it_again(empty: Stub) -> None:
    """Not a silent success that records a repository which is not there, nor an error sending
    the user to a refresh that a revoked token in the state makes fail (tests/test_dynamic_host.py
    has that loop): the update creates it again and records the new id. `update_repository` alone
    still names the deletion."""
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    state.repo = None
    with pytest.raises(RepositoryGone, match=r"o/web no longer exists .*run `pulumi refresh` to forget it"):
        update_repository(GitHub(TOKEN, api=url), owner="o", name="web", fields={})
    updated = outs(provider.update("web", created, props(url, description=repo_description("x", TENANT))))
    # (The stand-in numbers a repository from its name: tests/test_dynamic_host.py sees a new id.)
    assert state.repo is not None and updated["repo_id"] == state.repo["id"]
    assert updated["github_writes"] == 1 and updated["token"] == TOKEN
    assert provider.read("web", updated).id == "web"


def test_the_token_is_only_in_the_secret_token_output(empty: Stub) -> None:
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    updated = outs(provider.update("web", created, props(url, description=repo_description("x", TENANT))))
    read = outs(provider.read("web", created))
    for result in (created, updated, read):
        assert result["token"] == TOKEN
        assert TOKEN not in json.dumps({k: v for k, v in result.items() if k != "token"})
    # Nor in an error, nor anywhere but the Authorization header.
    state.repo = state.new_repo("o/web", description="someone's")
    with pytest.raises(GitHubError) as err:
        provider.create(props(url))
    assert TOKEN not in str(err.value)
    assert TOKEN not in json.dumps(state.requests)


def test_the_scaffold_right_after_the_create_waits_for_auto_inits_commit(github: Callable[..., Stub]) -> None:
    """GitHub makes auto_init's commit after the create answers: Git Data reads answer 409 "Git
    Repository is empty." meanwhile. The scaffold waits (reads only) and costs the same writes."""
    from scoutflo.github.api import commit_files

    state, url = github(None, empty_window=3)
    gh = client(url)
    ensure(gh)
    done = commit_files(gh, owner="o", repo="web", files={"a.txt": "x"}, message="Scoutflo: scaffold")
    assert done.created and gh.writes == 1 + 3 and state.empty_reads == 0
    assert state.files("main")["a.txt"] == b"x"
    # The create waited out the window (3 refusals, then the branch); the commit read it once.
    assert sum(1 for m, p, _ in state.requests if m == "GET" and "/git/ref/heads/main" in p) == 5


@pytest.mark.parametrize(("text", "why"), [("two\nlines", "control characters"), ("x" * 340, "maximum is 350")])
def test_the_stand_in_refuses_descriptions_github_refuses(empty: Stub, text: str, why: str) -> None:
    """scoutflo/config.py refuses these before any resource; here, what GitHub would answer, and
    the error carries GitHub's reason (`errors`), not only "Repository creation failed."."""
    state, url = empty
    with pytest.raises(GitHubError, match=rf"failed with 422: Repository creation failed\. \(.*{why}"):
        ensure_repository(client(url), owner="o", name="web", tenant=TENANT, description=repo_description(text, TENANT))
    assert state.repo is None


def test_a_repository_created_again_by_an_update_gets_main_back(empty: Stub) -> None:
    """The owner's default branch is not `main`: BranchDefault renamed it at the first `up`, but its
    state still says `main`, so it does nothing when the update makes the repository again; the
    scaffold's commit (and protection, CI trust) name `main`. The update renames it itself."""
    state, url = empty
    provider = AppRepositoryProvider()
    created = outs(provider.create(props(url)))
    state.repo, state.refs = None, {}
    state.default_branch = "master"
    updated = outs(provider.update("web", created, props(url, description=repo_description("x", TENANT))))
    assert state.repo is not None and state.repo["default_branch"] == "main" == updated["default_branch"]
    assert set(state.refs) == {"main"} and updated["github_writes"] == 2
