"""An upstream upgrade as `pulumi up` runs it: the import's RepoCommit under the real dynamic
provider host (`python -m pulumi.dynamic`, over gRPC, tests/test_dynamic_host.py says how the
engine calls it). A new upstream version changes the commit's branch: the preview shows a
replacement, branch and title from -> to, with no GitHub write; the `up` creates the replacement,
whose create reads main and proposes the upgrade PR (6 writes); deleting the old one writes nothing.
"""

from __future__ import annotations

from typing import Any

from components.repo_commit import encode_binary
from tests.github_stub import GitHubState
from tests.test_dynamic_host import (
    IMPORT_URN,
    OLD_ID,
    Host,
    changes,
    commit_inputs,
    github,  # noqa: F401 (fixture)
    host,  # noqa: F401 (fixture)
)
from tests.test_upgrade import plans, pytestmark  # noqa: F401 (fixture; helm needed)


def import_inputs(url: str, plan: Any) -> dict[str, Any]:
    """The import's RepoCommit as components/chart_repo.py registers it."""
    text, binary = encode_binary(plan.files)
    return commit_inputs(
        url,
        settings="",
        repo_id=OLD_ID,
        files=text,
        binary_files=binary,
        executable=[],
        message=plan.title,
        branch=plan.branch,
        pr_title=plan.title,
        pr_body=plan.body,
        upgrade=True,
    )


def test_a_new_upstream_version_previews_as_a_replacement_and_ups_as_the_upgrade_pr(
    host: Host,  # noqa: F811
    github: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    state, url = github
    old = plans["cert-manager v1.17.2"]
    first = import_inputs(url, old)
    assert not host.check(IMPORT_URN, {}, first, preview=False).failures
    old_id, old_state = host.create(IMPORT_URN, first)
    assert old_id == f"o/web@{old.branch}" and old_state[1]["github_writes"] == 4
    state.merge_pull(1)
    values = state.files("main")["chart/values.yaml"].decode()
    state.user_commit("main", {"chart/values.yaml": values.replace("enabled: false", "enabled: true").encode()})
    writes = state.writes
    new = plans["cert-manager v1.17.3"]
    second = import_inputs(url, new)
    # The preview: Check with the old inputs, Diff against the state: a replacement on `branch`.
    assert not host.check(IMPORT_URN, first, second, preview=True).failures
    assert changes(host.diff(IMPORT_URN, old_id, old_state, second, preview=True)) == (True, ["branch"])
    assert state.writes == writes
    # The `up`: Check again without olds (a replacement), Create, then Delete of the old one.
    assert not host.check(IMPORT_URN, {}, second, preview=False).failures
    new_id, new_state = host.create(IMPORT_URN, second)
    assert new_id == "o/web@scoutflo/upgrade-cert-manager"
    assert new_state[1]["github_writes"] == 6 and new_state[1]["pull_request_url"] == state.pulls[1]["html_url"]
    host.delete(IMPORT_URN, old_id, old_state)
    assert state.writes == writes + 6
    # The next `up` with nothing new: Diff against the new state is DIFF_NONE, so the engine
    # calls no Create or Update (0 writes).
    assert not host.check(IMPORT_URN, second, second, preview=False).failures
    assert changes(host.diff(IMPORT_URN, new_id, new_state, second, preview=False)) == (False, [])
    assert state.writes == writes + 6
    merged = state.files("scoutflo/upgrade-cert-manager")["chart/values.yaml"].decode()
    assert "enabled: true" in merged and "maxConcurrentChallenges: 60" in merged
    assert state.pulls[1]["title"] == "Upgrade cert-manager v1.17.2 → v1.17.3"


def test_a_new_version_while_the_import_pr_is_open_updates_that_pr_under_the_host(
    host: Host,  # noqa: F811
    github: tuple[GitHubState, str],  # noqa: F811
    plans: dict[str, Any],  # noqa: F811
) -> None:
    """The import PR is still open when upstream moves: the replacement's create updates that PR
    (its branch, title and body) instead of opening a second one."""
    state, url = github
    old = plans["cert-manager v1.17.2"]
    first = import_inputs(url, old)
    old_id, old_state = host.create(IMPORT_URN, first)
    new = plans["cert-manager v1.17.3"]
    second = import_inputs(url, new)
    assert changes(host.diff(IMPORT_URN, old_id, old_state, second, preview=True)) == (True, ["branch"])
    new_id, new_state = host.create(IMPORT_URN, second)
    host.delete(IMPORT_URN, old_id, old_state)
    assert len(state.pulls) == 1 and state.pulls[0]["state"] == "open" and state.pulls[0]["title"] == new.title
    assert new_id == f"o/web@{old.branch}" and new_state[1]["pull_request_url"] == state.pulls[0]["html_url"]
    assert "appVersion: v1.17.3" in state.files(old.branch)["chart/Chart.yaml"].decode()
