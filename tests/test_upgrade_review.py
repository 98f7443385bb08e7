"""Upgrades under review (issue 19): an open import pull request takes a newer version in place;
an update that brings conflicts makes the open pull request a draft in the same single write
(GraphQL); past the base search's bounds the upgrade falls to the no-base proposal, never a
wrong base; the user's commits on the upgrade branch survive every later version; a commit of
the user's that quotes a record's trailer is never taken for upstream's files."""

from __future__ import annotations

import copy
import functools
from typing import Any

from scoutflo.github.api import GitHub, GitHubError, Pacer
from scoutflo.github.upgrade import GRAPHQL, import_or_upgrade, u_message, upgrade_branch
from tests.github_stub import GitHubState, github_stub
from tests.test_upgrade import (  # noqa: F401 (fixtures)
    FAULTS,
    _run,
    _text,
    _user_commit,
    _version3,
    each_write_failing_once,
    imported,
    plans,
    pytestmark,
)

BRANCH = upgrade_branch("cert-manager")


def _version(prepared: dict[str, Any], n: int) -> dict[str, str | bytes]:
    """v1.17.<n> (n >= 4), derived from v1.17.3 as _version3 does, one more value each."""
    files = _version3(prepared)
    files["chart/Chart.yaml"] = str(files["chart/Chart.yaml"]).replace("v1.17.4", f"v1.17.{n}")
    for k in range(5, n + 1):
        files["chart/values.yaml"] = str(files["chart/values.yaml"]) + f"extra{k}: {k}\n"
    return files


def test_an_open_import_pr_takes_a_newer_version_in_place_never_a_second_pr(
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """One open pull request per app: v1.17.2's import PR is open, unmerged, with the user's commit
    on its branch; v1.17.3 arrives: the same PR now proposes v1.17.3 with the user's commit
    merged in; once merged, it is the base of the next upgrade."""
    state = GitHubState()
    with github_stub(state) as url:
        first, writes = _run(url, plans["cert-manager v1.17.2"])
        assert writes == 4 and first.pull_request == 1
        import_branch = plans["cert-manager v1.17.2"].branch
        values = _text(state, import_branch)["chart/values.yaml"]
        state.user_commit(
            import_branch, {"chart/values.yaml": values.replace("enabled: false", "enabled: true").encode()}
        )
        prepared = copy.deepcopy(state)
        second, writes = _run(url, plans["cert-manager v1.17.3"])
        assert writes == 6 and second.pull_request == 1 and len(state.pulls) == 1, state.pulls
        proposed = _text(state, import_branch)
        assert "appVersion: v1.17.3" in proposed["chart/Chart.yaml"]
        assert "enabled: true" in proposed["chart/values.yaml"]
        assert "maxConcurrentChallenges: 60" in proposed["chart/values.yaml"]
        pr = state.pulls[0]
        assert pr["title"] == plans["cert-manager v1.17.3"].title and pr["state"] == "open"
        assert pr["body"].startswith(plans["cert-manager v1.17.3"].body.rstrip())
        assert "from v1.17.2 to **v1.17.3**" in pr["body"]
        expected = dict(proposed)
        again, writes = _run(url, plans["cert-manager v1.17.3"])
        assert writes == 0 and again.pull_request == 1 and len(state.pulls) == 1
        # Each write failing once, before or after it took effect: the same single PR and tree.
        attempt = functools.partial(_run, url, plans["cert-manager v1.17.3"])
        for where in each_write_failing_once(state, prepared, attempt):
            assert len(state.pulls) == 1 and _text(state, import_branch) == expected, where
        # Merged: its record of v1.17.3 is the base of the next upgrade.
        state.merge_pull(1)
        nxt, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
        assert writes == 6 and nxt.pull_request == 2
        assert state.pulls[1]["title"] == "Upgrade cert-manager v1.17.3 → v1.17.4", state.pulls[1]["body"]
        assert "enabled: true" in _text(state, BRANCH)["chart/values.yaml"]


def test_an_update_that_brings_conflicts_makes_the_open_pr_a_draft_in_one_write(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    state, url = imported
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    assert not state.pulls[1]["draft"]
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    prepared = copy.deepcopy(state)
    v4 = _version3(plans)
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=v4)
    pr = state.pulls[1]
    assert writes == 6 and len(state.pulls) == 2 and pr["state"] == "open"
    assert pr["draft"] and pr["title"] == "Upgrade cert-manager v1.17.2 → v1.17.4 (1 conflict)"
    (graphql,) = [b for m, p, b in state.requests if m == "POST" and p == GRAPHQL]
    assert graphql["variables"]["id"] == pr["node_id"] and graphql["variables"]["title"] == pr["title"]
    assert graphql["query"].index("updatePullRequest(") < graphql["query"].index("convertPullRequestToDraft(")
    assert not [p for m, p, _b in state.requests if m == "PATCH" and "/pulls/" in p]
    expected = _text(state, BRANCH)
    attempt = functools.partial(_run, url, plans["cert-manager v1.17.3"], files=v4)
    for where in each_write_failing_once(state, prepared, attempt):
        assert [p["state"] for p in state.pulls] == ["closed", "open"], where
        assert state.pulls[1]["draft"] and state.pulls[1]["title"].endswith("(1 conflict)"), where
        assert _text(state, BRANCH) == expected, where
    del result


def test_a_draft_github_refuses_is_a_typed_error_and_the_pr_check_still_blocks(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )

    class Refused(GitHub):
        """A node id GitHub cannot resolve: both mutations answer an error (200, `errors`)."""

        def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
            if path == GRAPHQL:
                body = {**body, "variables": {**body["variables"], "id": "PR_gone"}}
            return super().call(method, path, body, **kwargs)

    gh = Refused("t0ken", api=url, sleep=lambda _s: None, pacer=Pacer())
    try:
        import_or_upgrade(
            gh, owner="o", repo="r", files=_version3(plans), message="m", branch=plans["cert-manager v1.17.3"].branch
        )
    except GitHubError as err:
        assert "did not update it or make it a draft (Could not resolve to a PullRequest" in str(err)
        assert "its `pr` check fails on their markers" in str(err)
        assert "<<<<<<< main" in _text(state, BRANCH)["chart/templates/deployment.yaml"]
    else:
        raise AssertionError("a refused GraphQL mutation must raise")


def _closed(state: GitHubState, n: int) -> None:
    for i in range(n):
        state.pull(f"o:feature-{i}", "main", title=f"feature {i}")
        state.close_pull(len(state.pulls))


def test_past_the_newest_100_closed_prs_the_upgrade_has_no_base_and_overwrites_nothing(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    state, url = imported
    prepared = copy.deepcopy(state)
    _closed(state, 99)  # the import PR is the 100th newest closed: still found
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    assert state.pulls[result.pull_request - 1]["title"] == "Upgrade cert-manager v1.17.2 → v1.17.3"
    vars(state).update(vars(copy.deepcopy(prepared)))
    _closed(state, 100)  # the 101st: beyond the look-up
    main = _text(state, "main")
    result, writes = _run(url, plans["cert-manager v1.17.3"])
    pr = state.pulls[result.pull_request - 1]
    assert writes == 6 and pr["draft"] and "(no recorded base)" in pr["title"] and "**none recorded**" in pr["body"]
    merged = _text(state, result.branch)
    # Nothing of the user's is overwritten: their values are in every conflict's `main` side.
    assert "enabled: true" in merged["chart/values.yaml"] and "<<<<<<< main" in merged["chart/values.yaml"]
    assert all(merged[p] == main[p] for p in main if not p.startswith("chart/"))


def test_past_the_five_newest_merged_candidates_the_upgrade_has_no_base(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """Merged pull requests from branches named like ours but holding no record (made by hand)
    are candidates that fail; the sixth is never looked at: no base, never a wrong one."""
    state, url = imported
    prepared = copy.deepcopy(state)
    for count, title in ((4, "Upgrade cert-manager v1.17.2 → v1.17.3"), (5, "(no recorded base)")):
        vars(state).update(vars(copy.deepcopy(prepared)))
        for i in range(count):
            state.refs[BRANCH] = state.refs["main"]
            state.user_commit(BRANCH, {f"notes/{i}.txt": b"by hand\n"})
            state.pull(f"o:{BRANCH}", "main", title=f"by hand {i}")
            state.merge_pull(len(state.pulls))
        result, _ = _run(url, plans["cert-manager v1.17.3"])
        assert title in state.pulls[result.pull_request - 1]["title"], count


def test_the_users_resolution_survives_every_later_version(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """A conflict resolved by a commit on the branch, then v1.17.4 merged on top (Scoutflo's M is
    the head again), then v1.17.5: the resolution is in every later tree, never the markers again."""
    state, url = imported
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    _run(url, plans["cert-manager v1.17.3"])
    conflicted = _text(state, BRANCH)["chart/templates/deployment.yaml"]
    assert "<<<<<<< main" in conflicted
    lines = conflicted.splitlines(keepends=True)
    start, mid, end = (
        next(i for i, line in enumerate(lines) if line.startswith(m)) for m in ("<<<<<<<", "=======", ">>>>>>>")
    )
    resolved = "".join(lines[:start] + lines[mid + 1 : end] + lines[end + 1 :]).replace("--v=2", "--v=4")
    state.user_commit(BRANCH, {"chart/templates/deployment.yaml": resolved.encode()}, message="resolve")
    for n in (4, 5):
        _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version(plans, n))
        merged = _text(state, BRANCH)
        assert writes == 6 and merged["chart/templates/deployment.yaml"] == resolved, n
        assert f"v1.17.{n}" in merged["chart/Chart.yaml"] and "timeoutSeconds: 10" in merged["chart/values.yaml"]
    assert len(state.pulls) == 2 and state.pulls[1]["state"] == "open"


def test_a_commit_quoting_a_records_trailer_is_never_taken_for_upstream(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """The user edits values on the open upgrade branch with a message that quotes U's trailer (a
    `cherry-pick -x` of U carries it whole). Taken for the record, its values would be the base of
    the next upgrade: base == main there, so upstream's file would silently replace the edit."""
    state, url = imported
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    values = _text(state, BRANCH)["chart/values.yaml"]
    mine = values.replace("quay.io/jetstack", "mirror.example/jetstack")
    assert mine != values
    u = state.history(BRANCH)[1]
    forged = u_message("cert-manager", "v1.17.3", state.objects[u]["tree"]) + "(cherry picked from commit 0123456789)\n"
    state.user_commit(BRANCH, {"chart/values.yaml": mine.encode()}, message=forged)
    state.merge_pull(result.pull_request)
    nxt, _ = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    merged = _text(state, nxt.branch)["chart/values.yaml"]
    assert "mirror.example/jetstack" in merged and "timeoutSeconds: 10" in merged


def test_a_force_push_that_drops_the_record_is_a_typed_error_then_close_and_delete_recovers(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """The user force-pushes the open upgrade branch to main plus a commit of theirs: U is gone,
    so there is no base to merge a newer version into their branch with. Nothing is written; once
    they close the PR and delete the branch, the newer version is proposed afresh."""
    state, url = imported
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    state.refs[BRANCH] = state.refs["main"]
    state.user_commit(BRANCH, {"chart/NOTES-mine.txt": b"mine\n"})
    writes = state.writes
    try:
        _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    except GitHubError as err:
        assert "no longer holds Scoutflo's first commit" in str(err) and BRANCH in str(err)
    else:
        raise AssertionError("a branch without its record must not be merged into")
    assert state.writes == writes
    state.close_pull(result.pull_request)
    del state.refs[BRANCH]
    nxt, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 6 and nxt.pull_request == 3
    assert state.pulls[2]["title"] == "Upgrade cert-manager v1.17.2 → v1.17.4"


def test_real_releases_a_renamed_file_crlf_and_no_final_newline() -> None:
    """zenml 0.72.0 -> 0.73.0 (tests/data/upstream): the user renamed server-secret.yaml (upstream
    changed it: the old path comes back as a conflict, theirs kept, nothing moved silently),
    converted NOTES.txt to CRLF (every line theirs: upstream's change is a conflict, never taken
    over it), and prefixed server-db-job.yaml, which has no final newline on either side (merged
    cleanly, still without one)."""
    from tests.test_upgrade import _real

    old, new = _real("0.72.0"), _real("0.73.0")
    state = GitHubState()
    with github_stub(state) as url:
        _run(url, old)
        state.merge_pull(1)
        main = _text(state, "main")
        secret, notes, job = (f"chart/templates/{n}" for n in ("server-secret.yaml", "NOTES.txt", "server-db-job.yaml"))
        assert not main[job].endswith("\n") and not str(new.files[job]).endswith("\n")
        edits = {
            "chart/templates/secret.yaml": main[secret],
            notes: main[notes].replace("\n", "\r\n"),
            job: "# ours\n" + main[job],
        }
        _user_commit(state, edits, deleted=(secret,))
        result, writes = _run(url, new)
        merged = _text(state, result.branch)
        body = state.pulls[result.pull_request - 1]["body"]
        assert writes == 6 and "`chart/templates/server-secret.yaml` (deleted on main, changed upstream)" in body
        assert merged["chart/templates/secret.yaml"] == main[secret]
        assert merged[secret].startswith("<<<<<<<\n=======\n")
        assert "`chart/templates/NOTES.txt` (both changed)" in body and "\r\n" in merged[notes]
        assert "<<<<<<< main" in merged[notes]
        assert merged[job].startswith("# ours\n") and merged[job] == "# ours\n" + str(new.files[job])


def test_a_lower_version_after_a_newer_one_is_proposed_again_not_relabelled(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """v1.17.3 proposed, then v1.17.4 on the same PR, then the catalog's range is lowered and the
    program asks for v1.17.3 again: v1.17.3's merge further down the branch is not the proposal
    any more; the PR's tree and title both become v1.17.3 again (never v1.17.3's title over
    v1.17.4's files)."""
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert "appVersion: v1.17.4" in _text(state, BRANCH)["chart/Chart.yaml"]
    _, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 6 and len(state.pulls) == 2
    assert state.pulls[1]["title"] == "Upgrade cert-manager v1.17.2 → v1.17.3"
    assert "appVersion: v1.17.3" in _text(state, BRANCH)["chart/Chart.yaml"]
    _, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0


def test_a_lost_answer_to_any_write_is_recovered_within_the_run(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """With the client's retries (not only by a re-run): each write of the update that makes the
    open PR a draft answered 502 or dropped after it took effect, once. Idempotent writes are sent
    again; the others (the ref's move, the GraphQL request) read back whether they landed
    (GitHub.call's `verify`) instead of failing the run or sending twice."""
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    prepared = copy.deepcopy(state)
    v4 = _version3(plans)
    _run(url, plans["cert-manager v1.17.3"], files=v4)
    expected = _text(state, BRANCH)
    for name in ("dropped after", "502 after"):
        for n in range(6):
            vars(state).update(vars(copy.deepcopy(prepared)))
            state.write_faults = {prepared.writes + n: FAULTS[name]}
            result, _ = _run(url, plans["cert-manager v1.17.3"], files=v4)
            where = f"write {n} {name}"
            assert result.pull_request == 2 and [p["state"] for p in state.pulls] == ["closed", "open"], where
            assert state.pulls[1]["draft"] and _text(state, BRANCH) == expected, where
            assert len([p for m, p, _b in state.requests if m == "POST" and p == GRAPHQL]) <= 1, where


def test_a_repository_without_drafts_gets_its_conflicting_upgrade_as_a_ready_pr(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """App repositories are private; on GitHub Free or Pro they have no drafts, and GitHub refuses
    `draft: true` with a 422. The upgrade still opens (ready, its title counting the conflicts),
    and a later update that brings conflicts is not a failed run either."""
    state, url = imported
    state.drafts = False
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    result, writes = _run(url, plans["cert-manager v1.17.3"])
    pr = state.pulls[result.pull_request - 1]
    assert writes == 7 and not pr["draft"] and pr["title"].endswith("(1 conflict)")  # + the refused request
    again, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0 and again.pull_request == result.pull_request
    # A newer version updating that open, ready PR with conflicts: GitHub takes the title and body
    # of the GraphQL request and refuses its conversion; the run does not fail over it.
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    pr = state.pulls[result.pull_request - 1]
    assert writes == 6 and pr["title"] == "Upgrade cert-manager v1.17.2 → v1.17.4 (1 conflict)"
    assert not pr["draft"] and len(state.pulls) == 2
    assert len([p for m, p, _b in state.requests if m == "POST" and p == GRAPHQL]) == 1


def test_u_is_upstream_as_imported_whatever_the_modes_on_main(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """The user made a chart file executable on main: the merge (M) keeps their mode, U (the next
    base, upstream as an import writes it) holds every chart file as 100644."""
    state, url = imported
    head = state.refs["main"]
    tree = dict(state.objects[state.objects[head]["tree"]]["entries"])
    path = "chart/templates/deployment.yaml"
    tree[path] = ("100755", tree[path][1])
    state.refs["main"] = state.commit(tree, [head], "chmod +x")
    _run(url, plans["cert-manager v1.17.3"])
    m, u = state.history(BRANCH)[:2]
    assert state.modes(m)[path] == "100755"
    assert {mode for p, mode in state.modes(u).items() if p.startswith("chart/")} == {"100644"}


def test_deleting_the_upgrade_branch_declines_that_version_only(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """GitHub closes an open pull request whose head branch is deleted (done by hand here: the
    stand-in has no branch deletion). That version is declined like a closed PR; the next one
    gets a fresh branch and pull request."""
    state, url = imported
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    state.close_pull(result.pull_request)
    del state.refs[BRANCH]
    again, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0 and not again.created and BRANCH not in state.refs
    nxt, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 6 and nxt.pull_request == 3 and state.pulls[2]["state"] == "open"
    assert state.history(BRANCH)[2] == state.refs["main"]


def test_a_resolution_amended_into_scoutflos_merge_and_force_pushed_is_kept(
    imported: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """Resolving a conflict with `git commit --amend` and a force-push keeps M's message over the
    user's tree. By its message it would pass for Scoutflo's own M, and a newer version would be
    merged afresh from main, dropping the resolution from the tree; the tree M's message names
    tells them apart."""
    state, url = imported
    main = _text(state, "main")
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    _run(url, plans["cert-manager v1.17.3"])
    m = state.refs[BRANCH]
    conflicted = _text(state, BRANCH)["chart/templates/deployment.yaml"]
    lines = conflicted.splitlines(keepends=True)
    start, mid, end = (
        next(i for i, line in enumerate(lines) if line.startswith(k)) for k in ("<<<<<<<", "=======", ">>>>>>>")
    )
    resolved = "".join(lines[:start] + lines[mid + 1 : end] + lines[end + 1 :]).replace("--v=2", "--v=4")
    tree = dict(state.objects[state.objects[m]["tree"]]["entries"])
    tree["chart/templates/deployment.yaml"] = ("100644", state.blob(resolved.encode()))
    state.refs[BRANCH] = state.commit(tree, state.objects[m]["parents"], state.objects[m]["message"])
    _, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0  # the same version: nothing to do
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    merged = _text(state, BRANCH)
    assert writes == 6 and merged["chart/templates/deployment.yaml"] == resolved
    assert "timeoutSeconds: 10" in merged["chart/values.yaml"]
    assert "Scoutflo-Tree" not in state.pulls[1]["body"] and "Scoutflo-Conflicts" not in state.pulls[1]["body"]
