"""The Git Data API commit at the HTTP level, against a loopback stand-in for GitHub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.repo_commit import RepoCommitProvider
from scoutflo.github_api import GitHub, GitHubError, commit_files
from tests.github_stub import GitHubState, github_stub

FILES = {f"chart/templates/t{i:03}.yaml": f"kind: ConfigMap # {i}\n" for i in range(98)} | {
    "chart/Chart.yaml": "name: x\nversion: 0.1.0\n",
    "ci/release": "#!/bin/sh\n",
}


@pytest.fixture
def stub() -> Iterator[tuple[GitHubState, GitHub, list[float]]]:
    state = GitHubState()
    sleeps: list[float] = []
    with github_stub(state) as url:
        yield state, GitHub("t0ken", api=url, sleep=sleeps.append), sleeps


def calls(state: GitHubState) -> list[tuple[str, str]]:
    return [(m, p.split("?")[0]) for m, p, _ in state.requests]


def test_100_files_direct_to_main_is_one_commit_of_three_writes(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, _ = stub
    result = commit_files(gh, owner="o", repo="r", files=FILES, executable=frozenset({"ci/release"}), message="m")
    assert calls(state) == [
        ("GET", "/repos/o/r/git/ref/heads/main"),
        ("GET", "/repos/o/r/git/commits/c0"),
        ("POST", "/repos/o/r/git/trees"),
        ("POST", "/repos/o/r/git/commits"),
        ("PATCH", "/repos/o/r/git/refs/heads/main"),
    ]
    assert gh.writes == 3
    tree = state.requests[2][2]
    assert tree["base_tree"] == "tree-c0"
    assert len(tree["tree"]) == 100
    modes = {e["path"]: e["mode"] for e in tree["tree"]}
    assert modes["ci/release"] == "100755" and modes["chart/Chart.yaml"] == "100644"
    assert state.requests[3][2]["parents"] == ["c0"]
    assert state.requests[4][2] == {"sha": result.commit_sha, "force": False}
    assert state.refs["main"] == result.commit_sha


def test_import_is_one_branch_and_one_pull_request(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, _ = stub
    kwargs = dict(owner="o", repo="r", files=FILES, message="Import", branch="scoutflo/import-x-1.2.3", pr_title="t")
    result = commit_files(gh, **kwargs, pr_body="body")  # type: ignore[arg-type]
    assert calls(state) == [
        ("GET", "/repos/o/r/git/ref/heads/scoutflo/import-x-1.2.3"),
        ("GET", "/repos/o/r/git/ref/heads/main"),
        ("GET", "/repos/o/r/git/commits/c0"),
        ("POST", "/repos/o/r/git/trees"),
        ("POST", "/repos/o/r/git/commits"),
        ("POST", "/repos/o/r/git/refs"),
        ("POST", "/repos/o/r/pulls"),
    ]
    assert gh.writes == 4
    assert result.pull_request == 1 and state.refs["main"] == "c0", "main is untouched"
    assert state.pulls[0]["head"] == "scoutflo/import-x-1.2.3" and state.pulls[0]["body"] == "body"

    # Running the same import again finds the open PR: no writes, nothing duplicated.
    state.requests.clear()
    gh.writes = 0
    again = commit_files(gh, **kwargs)  # type: ignore[arg-type]
    assert again.pull_request == 1 and not again.created
    assert gh.writes == 0 and len(state.pulls) == 1


def test_a_closed_import_pr_is_reopened_as_a_new_one(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, _ = stub
    kwargs = dict(owner="o", repo="r", files=FILES, message="Import", branch="b", pr_title="t")
    commit_files(gh, **kwargs)  # type: ignore[arg-type]
    state.pulls[0]["state"] = "closed"
    result = commit_files(gh, **kwargs)  # type: ignore[arg-type]
    assert result.pull_request == 2
    assert ("PATCH", "/repos/o/r/git/refs/heads/b") in calls(state)


def test_429_waits_for_retry_after(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [(429, {"Retry-After": "7"}, "slow down")]
    commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [7.0]
    assert calls(state).count(("POST", "/repos/o/r/git/trees")) == 2


def test_secondary_limit_without_header_and_5xx_back_off(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/commits")] = [
        (403, {}, "You have exceeded a secondary rate limit"),
        (502, {}, "bad gateway"),
    ]
    commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [60.0, 2.0]


def test_rate_limit_reset_header(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref")] = [
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}, "")
    ]
    commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0]


def test_plain_403_fails_at_once(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [(403, {}, "Resource not accessible by integration")]
    with pytest.raises(GitHubError, match="403: Resource not accessible"):
        commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == []


def test_unreachable_api_is_one_clear_error() -> None:
    sleeps: list[float] = []
    gh = GitHub("t", api="http://127.0.0.1:9", sleep=sleeps.append, max_attempts=3)
    with pytest.raises(GitHubError, match="unreachable"):
        commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0]


def test_provider_check_rejects_bad_paths() -> None:
    provider = RepoCommitProvider()
    news = {
        "owner": "o",
        "repo": "r",
        "base": "main",
        "message": "m",
        "files": {"../x": "", "/abs": "", ".git/config": ""},
    }
    reasons = [f.reason for f in provider.check({}, news).failures]
    assert len(reasons) == 3
    assert not provider.check({}, {**news, "files": {"chart/Chart.yaml": "x"}}).failures
    assert provider.check({}, {**news, "files": {}}).failures


def test_provider_diff_never_rewrites_user_content() -> None:
    provider = RepoCommitProvider()
    old = {"owner": "o", "repo": "r", "base": "main", "branch": "", "files": {"a": "1"}, "message": "m"}
    same = provider.diff("id", old, {**old, "files": {"a": "2"}, "message": "other"})
    assert same.changes is False
    new_import = provider.diff(
        "id", {**old, "branch": "scoutflo/import-x-1.0.0"}, {**old, "branch": "scoutflo/import-x-1.1.0"}
    )
    assert new_import.changes is True and new_import.replaces == ["branch"]
    assert new_import.delete_before_replace is False
    assert provider.delete("id", old) is None


def test_a_newer_upstream_version_arrives_as_a_new_pull_request(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, _ = stub
    for version in ("1.0.0", "1.1.0"):
        commit_files(
            gh, owner="o", repo="r", files=FILES, message="m", branch=f"scoutflo/import-x-{version}", pr_title=version
        )
    assert [(p["head"], p["state"]) for p in state.pulls] == [
        ("scoutflo/import-x-1.0.0", "open"),
        ("scoutflo/import-x-1.1.0", "open"),
    ]
    assert state.refs["main"] == "c0", "imports never touch main"


def test_provider_create_commits_through_the_api(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, _ = stub
    props = {
        "owner": "o",
        "repo": "r",
        "base": "main",
        "branch": "scoutflo/import-x-1.0.0",
        "files": FILES,
        "executable": ["ci/release"],
        "message": "Import x 1.0.0",
        "pr_title": "Import x 1.0.0",
        "pr_body": "body",
        "token": "t0ken",
        "api_url": gh.api,
    }
    result = RepoCommitProvider().create(props)
    assert result.id == "o/r@scoutflo/import-x-1.0.0"
    assert result.outs["pull_request_url"] == "https://github.test/pull/1"
    assert result.outs["github_writes"] == 4
    assert state.pulls[0]["title"] == "Import x 1.0.0"


def test_provider_survives_pulumis_serialization_into_a_fresh_interpreter() -> None:
    """The dynamic provider is pickled by Pulumi (dill) and loaded by the provider host, a new
    Python process started in the project directory; it must load and validate there."""
    import subprocess
    import sys
    from pathlib import Path

    from pulumi.dynamic.dynamic import serialize_provider

    blob = serialize_provider(RepoCommitProvider())
    code = (
        "import base64, sys, dill\n"
        "p = dill.loads(base64.b64decode(sys.stdin.read()))\n"
        "bad = p.check({}, {'owner': 'o', 'repo': 'r', 'base': 'main', 'message': 'm', 'files': {'../x': ''}})\n"
        "print(type(p).__module__, len(bad.failures))\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code], input=blob, cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["components.repo_commit", "1"]


def test_waits_for_the_first_commit_of_a_new_repository(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [
        (409, {}, "Git Repository is empty."),
        (404, {}, "Not Found"),
    ]
    commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0]
    assert gh.writes == 3


def test_a_missing_base_branch_is_an_error(stub: tuple[GitHubState, GitHub, list[float]]) -> None:
    state, gh, sleeps = stub
    state.refs.clear()
    with pytest.raises(GitHubError, match="branch 'main' does not exist"):
        commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert len(sleeps) == 5
