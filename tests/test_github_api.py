"""GitHub writes at the HTTP level, through PyGithub, against the loopback stand-in for GitHub
(tests/github_stub.py): one commit per import, safe to repeat after any failure, binary files byte
for byte, rate limits and redirects as GitHub answers them."""

from __future__ import annotations

import base64
import bisect
import email.utils
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.app_repository import AppRepositoryProvider
from components.repo_commit import RepoCommitProvider
from scoutflo.github.api import (
    MAX_WAIT,
    GitHub,
    GitHubError,
    Pacer,
    RulesetRefused,
    SignedCommitsRequired,
    commit_files,
    marker_line,
    rate_limit_wait,
)
from tests.github_stub import AUTO_INIT_README, Fault, GitHubState, Ruleset, github_stub

ROOT = Path(__file__).resolve().parent.parent
FILES: dict[str, str | bytes] = {f"chart/templates/t{i:03}.yaml": f"kind: ConfigMap # {i}\n" for i in range(98)} | {
    "chart/Chart.yaml": "name: x\nversion: 0.1.0\n",
    "ci/release": "#!/bin/sh\n",
}
BINARY = {"chart/files/crds.bz2": bytes(range(256)) * 3, "chart/icon.png": b"\x89PNG\r\n\x1a\n\x00\xff\xfe"}
NOW = 1_800_000_000.0
Stub = tuple[GitHubState, str, list[float]]


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = GitHubState()
    with github_stub(state) as url:
        yield state, url, []


def client(url: str, sleeps: list[float], **kwargs: Any) -> GitHub:
    return GitHub("t0ken", api=url, sleep=sleeps.append, now=lambda: NOW, pacer=Pacer(), **kwargs)


def calls(state: GitHubState) -> list[tuple[str, str]]:
    return [(m, p.split("?")[0]) for m, p, _ in state.requests]


def as_bytes(files: dict[str, str | bytes]) -> dict[str, bytes]:
    return {p: c if isinstance(c, bytes) else c.encode() for p, c in files.items()}


# ------------------------------------------------------------------ one commit, few writes


def test_100_files_direct_to_main_is_one_commit_of_three_writes(stub: Stub) -> None:
    state, url, sleeps = stub
    gh = client(url, sleeps)
    root = state.refs["main"]
    result = commit_files(gh, owner="o", repo="r", files=FILES, executable=frozenset({"ci/release"}), message="m")
    assert [c for c in calls(state) if c[0] != "GET"] == [
        ("POST", "/repos/o/r/git/trees"),
        ("POST", "/repos/o/r/git/commits"),
        ("PATCH", "/repos/o/r/git/refs/heads/main"),
    ]
    assert gh.writes == 3 and sleeps == []
    assert state.refs["main"] == result.commit_sha and state.history("main") == [result.commit_sha, root]
    # auto_init's README is GitHub's, not the user's; every file lands byte for byte.
    assert state.files("main") == {"README.md": AUTO_INIT_README, **as_bytes(FILES)}
    assert state.modes("main")["ci/release"] == "100755" and state.modes("main")["chart/Chart.yaml"] == "100644"
    assert marker_line("main: m") in state.objects[result.commit_sha]["message"].splitlines()


def test_import_is_one_branch_and_one_pull_request(stub: Stub) -> None:
    state, url, sleeps = stub
    gh = client(url, sleeps)
    kwargs: dict[str, Any] = dict(owner="o", repo="r", files=FILES, message="Import", branch="scoutflo/import-x-1.2.3")
    result = commit_files(gh, **kwargs, pr_title="t", pr_body="body")
    assert [c for c in calls(state) if c[0] != "GET"] == [
        ("POST", "/repos/o/r/git/trees"),
        ("POST", "/repos/o/r/git/commits"),
        ("POST", "/repos/o/r/git/refs"),
        ("POST", "/repos/o/r/pulls"),
    ]
    assert gh.writes == 4
    assert result.pull_request == 1 and state.history("main") == [state.refs["main"]], "main is untouched"
    assert state.pulls[0]["head"]["label"] == "o:scoutflo/import-x-1.2.3"
    assert state.pulls[0]["body"] == f"body\n\n{marker_line('scoutflo/import-x-1.2.3')}\n"

    # Running the same import again finds the open PR: no writes, nothing duplicated.
    again = client(url, sleeps)
    assert commit_files(again, **kwargs).pull_request == 1
    assert again.writes == 0 and len(state.pulls) == 1


def test_binary_files_are_blobs_byte_for_byte_one_write_each(stub: Stub) -> None:
    state, url, sleeps = stub
    gh = client(url, sleeps)
    files: dict[str, str | bytes] = {**FILES, **BINARY, "chart/copy.bz2": BINARY["chart/files/crds.bz2"]}
    commit_files(gh, owner="o", repo="r", files=files, message="Import", branch="b")
    blobs = [body for m, p, body in state.requests if p.endswith("/git/blobs")]
    # One write per distinct binary content, none per text file; the tree points at the blobs.
    assert len(blobs) == 2 and gh.writes == 4 + 2
    assert state.files("b") == {"README.md": AUTO_INIT_README, **as_bytes(files)}


# ------------------------------------------------------------------ safe to repeat


def test_a_rerun_after_a_success_whose_answer_was_lost_writes_nothing(stub: Stub) -> None:
    state, url, sleeps = stub
    first = commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="scaffold")
    # The user edits a scaffold file, then the engine re-runs the create it never saw finish.
    state.user_commit("main", {"chart/Chart.yaml": b"name: mine\n"})
    gh = client(url, sleeps)
    again = commit_files(gh, owner="o", repo="r", files=FILES, message="scaffold")
    assert gh.writes == 0 and again.commit_sha == first.commit_sha and not again.created
    assert state.files("main")["chart/Chart.yaml"] == b"name: mine\n"


def test_another_direct_commit_is_not_taken_for_the_scaffold(stub: Stub) -> None:
    """A re-adopted repository's note goes straight to main like the scaffold did in the repo's
    earlier life; the scaffold's trailer must not make the note look done."""
    state, url, sleeps = stub
    commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="scaffold")
    gh = client(url, sleeps)
    note = commit_files(gh, owner="o", repo="r", files={"NOTE.md": "adopted again\n"}, message="note")
    assert note.created and gh.writes == 3 and state.files("main")["NOTE.md"] == b"adopted again\n"


def test_a_scaffold_without_our_trailer_never_overwrites_the_users_files(stub: Stub) -> None:
    """A commit made before the trailer existed (or by hand) is not found by marker: only paths
    the user does not have are written."""
    state, url, sleeps = stub
    state.user_commit("main", {"chart/Chart.yaml": b"name: mine\n", "README.md": b"my readme\n"})
    gh = client(url, sleeps)
    result = commit_files(gh, owner="o", repo="r", files={**FILES, "README.md": "ours\n"}, message="scaffold")
    assert set(result.kept) == {"chart/Chart.yaml", "README.md"}
    files = state.files("main")
    assert files["chart/Chart.yaml"] == b"name: mine\n" and files["README.md"] == b"my readme\n"
    assert files["ci/release"] == b"#!/bin/sh\n"


def test_an_existing_branch_that_is_not_ours_is_left_alone(stub: Stub) -> None:
    state, url, sleeps = stub
    state.refs["scoutflo/import-x-1.0.0"] = state.refs["main"]
    with pytest.raises(GitHubError, match="holds no Scoutflo commit"):
        commit_files(
            client(url, sleeps), owner="o", repo="r", files=FILES, message="m", branch="scoutflo/import-x-1.0.0"
        )
    assert state.refs["scoutflo/import-x-1.0.0"] == state.refs["main"] and not state.pulls


def test_a_closed_import_pr_is_proposed_again_from_the_same_branch(stub: Stub) -> None:
    state, url, sleeps = stub
    kwargs: dict[str, Any] = dict(owner="o", repo="r", files=FILES, message="Import", branch="b", pr_title="t")
    commit_files(client(url, sleeps), **kwargs)
    state.pulls[0]["state"] = "closed"
    state.user_commit("b", {"chart/values.yaml": b"mine: 1\n"})  # the user's commit on our branch
    head = state.refs["b"]
    gh = client(url, sleeps)
    result = commit_files(gh, **kwargs)
    assert result.pull_request == 2 and gh.writes == 1, "only the pull request is written"
    assert state.refs["b"] == head, "the branch, with the user's commit, is never force-pushed"


def test_an_import_merged_before_the_rerun_is_not_proposed_again(stub: Stub) -> None:
    """The answer was lost, the user squash-merged the PR (its branch deleted on merge), then the
    engine re-ran the create: the trailer on main says it is done."""
    state, url, sleeps = stub
    kwargs: dict[str, Any] = dict(owner="o", repo="r", files=FILES, message="Import", branch="imp", pr_title="t")
    first = commit_files(client(url, sleeps), **kwargs)
    squash = state.objects[first.commit_sha]["message"]
    state.refs["main"] = state.commit(
        state.objects[state.objects[first.commit_sha]["tree"]]["entries"], [state.refs["main"]], squash
    )
    del state.refs["imp"]
    state.pulls[0]["state"] = "closed"
    gh = client(url, sleeps)
    assert not commit_files(gh, **kwargs).created
    assert gh.writes == 0 and len(state.pulls) == 1 and "imp" not in state.refs


FAULTS = {
    "rate limited": Fault("status", 429, {"Retry-After": "1"}, "slow down"),
    "502 before": Fault("status", 502, message="bad gateway"),
    "dropped before": Fault("drop"),
    "dropped after": Fault("drop-after"),
    "502 after": Fault("status-after", 502, message="bad gateway"),
}


def _sweep(run: Callable[[GitHub], Any], check: Callable[[GitHubState], None], writes: int) -> None:
    """Fail each write once in turn, in each way, with and without in-run retries (one attempt =
    the run fails and the engine re-runs the create: an interrupted create is left as a pending
    operation and the next `up` warns and goes on, creating the resource again, pulumi/pulumi
    pkg/engine/lifecycletest/pulumi_test.go:912 TestUpdateShowsWarningWithPendingOperations);
    the end state is always the same."""
    state = GitHubState()
    with github_stub(state) as url:  # one server; its state is reset in place for each case
        for name, fault in FAULTS.items():
            for attempts in (1, 5):
                for n in range(writes):
                    vars(state).update(vars(GitHubState(write_faults={n: fault})))
                    try:
                        run(client(url, [], max_attempts=attempts))
                    except GitHubError:
                        run(client(url, []))  # the engine's re-run of the pending create
                    run(client(url, []))  # and a re-run after a success whose answer was lost
                    try:
                        check(state)
                    except AssertionError as err:
                        raise AssertionError(f"write {n} {name}, {attempts} attempts: {err}") from None


def test_every_import_write_failing_once_in_turn_ends_in_one_commit_and_one_pr() -> None:
    files = {**FILES, **BINARY}

    def run(gh: GitHub) -> Any:
        return commit_files(gh, owner="o", repo="r", files=files, message="Import", branch="imp", pr_title="t")

    def check(state: GitHubState) -> None:
        assert [p["head"]["label"] for p in state.pulls] == ["o:imp"], state.pulls
        marked = [s for s in state.history("imp") if marker_line("imp") in state.objects[s]["message"]]
        assert marked == [state.refs["imp"]]
        assert state.files("imp") == {"README.md": AUTO_INIT_README, **as_bytes(files)}
        assert len(state.history("main")) == 1

    _sweep(run, check, writes=6)


def test_every_scaffold_write_failing_once_in_turn_ends_in_one_commit_on_main() -> None:
    files = {**FILES, **BINARY}

    def run(gh: GitHub) -> Any:
        return commit_files(gh, owner="o", repo="r", files=files, message="scaffold")

    def check(state: GitHubState) -> None:
        history = state.history("main")
        assert len(history) == 2 and marker_line("main: scaffold") in state.objects[history[0]]["message"]
        assert state.files("main") == {"README.md": AUTO_INIT_README, **as_bytes(files)}

    _sweep(run, check, writes=5)


def test_a_write_with_unknown_outcome_is_read_back_not_repeated_blindly(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/pulls")] = [Fault("drop-after")]
    state.failures[("POST", "/repos/o/r/git/refs")] = [Fault("status-after", 502, message="bad gateway")]
    result = commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m", branch="b")
    assert result.pull_request == 1 and len(state.pulls) == 1
    assert calls(state).count(("POST", "/repos/o/r/pulls")) == 1
    assert calls(state).count(("POST", "/repos/o/r/git/refs")) == 1
    assert sleeps == []


def test_a_write_that_times_out_is_read_back(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/pulls")] = [Fault("slow-after", message="1.5")]
    gh = client(url, sleeps, timeout=1)
    assert commit_files(gh, owner="o", repo="r", files=FILES, message="m", branch="b").pull_request == 1
    assert len(state.pulls) == 1 and calls(state).count(("POST", "/repos/o/r/pulls")) == 1


def test_contents_must_be_text_or_bytes() -> None:
    from components.repo_commit import encode_binary

    with pytest.raises(TypeError, match=r"'a\.yaml': content must be str"):
        encode_binary({"a.yaml": 3})  # type: ignore[dict-item]


def test_dropped_reads_and_idempotent_writes_are_repeated(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [Fault("drop")]
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("drop-after")]
    commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m")
    assert sleeps == [1.0, 1.0]
    assert calls(state).count(("POST", "/repos/o/r/git/trees")) == 2


# ------------------------------------------------------------------ rate limits


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (429, {"Retry-After": "7"}, "slow down", 7.0),
        (403, {"retry-after": http_date(30)}, "secondary rate limit", 30.0),
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 100)},
            "API rate limit exceeded",
            101.0,
        ),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": http_date(10)}, "", 11.0),
        (403, {}, "You have exceeded a secondary rate limit", 60.0),
        (429, {}, "", 60.0),
        (429, {"Retry-After": "-5"}, "", 1.0),  # clamped up
        (429, {"Retry-After": http_date(-100)}, "", 1.0),  # a date in the past
        (429, {"Retry-After": "999999"}, "", MAX_WAIT),  # clamped down
        (429, {"Retry-After": "soon"}, "", 60.0),  # unparsable: GitHub's "at least a minute"
        # float() takes these; RFC 9110 §10.2.3 delta-seconds is 1*DIGIT (NaN slept = ValueError)
        (429, {"Retry-After": "nan"}, "", 60.0),
        (429, {"Retry-After": "1_0"}, "", 60.0),
        # Unicode digits: str.isdigit() says yes to "²" but float("²") raises; float() reads "٣" as 3
        # (and int("٣٠٠٠...") too): DIGIT is ASCII only (RFC 5234 B.1).
        (429, {"Retry-After": "²"}, "", 60.0),
        (429, {"Retry-After": "٣"}, "", 60.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "١٨٠٠٠٠٠٠١٠"}, "rate limit", 60.0),
        (429, {"Retry-After": "9" * 5000}, "", MAX_WAIT),  # beyond int()'s 4300-digit limit: no ValueError
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "NaN"}, "API rate limit exceeded", 60.0),
        (403, {}, "Resource not accessible by integration", None),
        (403, {"x-ratelimit-remaining": "12"}, "Must have admin rights", None),
        (502, {"Retry-After": "3"}, "", None),
    ],
)
def test_rate_limit_wait(status: int, headers: dict[str, str], message: str, wait: float | None) -> None:
    assert rate_limit_wait(status, headers, message, NOW) == wait


def test_rate_limited_writes_wait_and_are_repeated(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/commits")] = [
        Fault("status", 403, {"Retry-After": http_date(20)}, "You have exceeded a secondary rate limit"),
        Fault("status", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 5)}, "rate limit"),
    ]
    state.failures[("POST", "/repos/o/r/pulls")] = [Fault("status", 429, {"Retry-After": "7"}, "slow down")]
    commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m", branch="b")
    assert sleeps == [20.0, 6.0, 7.0]
    assert len(state.pulls) == 1


def test_waits_are_bounded_by_a_total_budget_per_operation(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 429, {"Retry-After": "50"})] * 3
    with pytest.raises(GitHubError, match="budget of 120 s"):
        commit_files(client(url, sleeps, budget=120), owner="o", repo="r", files=FILES, message="m")
    assert sleeps == [50.0, 50.0]
    assert len(state.history("main")) == 1


def test_rate_limit_headers_pygithub_cannot_read_are_a_failed_answer_not_a_crash(stub: Stub) -> None:
    """PyGithub parses x-ratelimit-reset with int(float(...)) inside requestJson
    (Requester.py:1246-1248): an HTTP-date there raises ValueError before we see the answer."""
    state, url, sleeps = stub
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": http_date(10)}
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [Fault("status", 403, limited, "rate limit")]
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 403, limited, "rate limit")]
    commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 1.0] and len(state.history("main")) == 2


def test_plain_403_fails_at_once(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 403, message="Resource not accessible")]
    with pytest.raises(GitHubError, match="403: Resource not accessible"):
        commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == []


def test_pacer_keeps_writes_within_secondary_limits() -> None:
    pacer = Pacer()
    waits = [pacer.reserve(0.0) for _ in range(80)]
    assert waits == [0.0] * 80
    assert pacer.reserve(10.0) == 50.0, "the 81st write in a minute waits for the first to leave the window"
    hourly = Pacer(per_minute=10**6)
    assert [hourly.reserve(0.0) for _ in range(500)] == [0.0] * 500
    assert hourly.reserve(1.0) == 3599.0


def window_overflows(slots: list[float], span: float, limit: int) -> list[float]:
    """Slots t with more than `limit` slots in (t - span, t]: what GitHub would refuse (a slot at
    t - span, within float rounding, has left the window)."""
    ordered = sorted(slots)
    return [t for i, t in enumerate(ordered) if i - bisect.bisect_right(ordered, t - span + 1e-6) + 1 > limit]


def test_pacer_never_overbooks_when_callers_clocks_interleave() -> None:
    """Threads read the clock before taking the pacer's lock, so reservations arrive slightly out
    of order; a window must still never hold more than its limit (found by a randomized search)."""
    pacer = Pacer(per_minute=2, per_hour=6)
    slots = [t + pacer.reserve(t) for t in (30.0, 29.0, 89.0, 84.0, 90.0, 148.0)]
    assert window_overflows(slots, 60, 2) == [] and window_overflows(slots, 3600, 6) == []
    rng = random.Random(1)
    for _ in range(300):
        pacer = Pacer(per_minute=rng.randint(2, 5), per_hour=rng.randint(3, 12))
        (_, per_minute), (_, per_hour) = pacer.windows
        now, slots = 0.0, []
        for _ in range(rng.randint(3, 20)):
            now += rng.choice([0.0, 1.0, 10.0, 30.0, 59.0, 61.0, 600.0, 3000.0])
            t = now - rng.choice([0.0, 0.0, 1.0, 5.0])
            slots.append(t + pacer.reserve(t))
        assert window_overflows(slots, 60, per_minute) == [] and window_overflows(slots, 3600, per_hour) == []
    # Four callers that sleep their waits, clocks in 50 ms steps (float sums like 11.1 + 60).
    pacer, clocks, slots = Pacer(), [0.0] * 4, []
    for _ in range(400):
        k = rng.randrange(4)
        clocks[k] += rng.choice([0.05, 0.5, 2.0])
        clocks[k] += pacer.reserve(clocks[k])
        slots.append(clocks[k])
    assert window_overflows(slots, 60, 80) == [] and max(clocks) > 60


def test_concurrent_creates_share_one_pacer() -> None:
    """The provider host serves concurrent creates on threads; reservations never overbook."""
    import threading

    pacer, waits, lock = Pacer(), [], threading.Lock()

    def worker() -> None:
        for _ in range(20):
            wait = pacer.reserve(0.0)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0.0] * 80 + [60.0] * 80


def test_writes_are_paced_not_failed(stub: Stub) -> None:
    state, url, _ = stub
    clock = [NOW]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    gh = GitHub("t0ken", api=url, sleep=sleep, now=lambda: clock[0], pacer=Pacer(per_minute=2))
    commit_files(gh, owner="o", repo="r", files=FILES, message="m", branch="b")
    assert sleeps == [60.0] and gh.writes == 4 and len(state.pulls) == 1


# ------------------------------------------------------------------ redirects and the token


def test_the_token_never_follows_a_redirect_to_another_origin(stub: Stub) -> None:
    state, url, sleeps = stub
    elsewhere = GitHubState()
    with github_stub(elsewhere) as other:
        for status in (302, 307, 308):
            state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [
                Fault("redirect", status, location=f"{other}/repos/o/r/git/ref/heads/main")
            ]
            with pytest.raises(GitHubError, match="not followed"):
                commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
        # PyGithub's own 301 handling refuses another host (Requester.py:1299-1303).
        state.failures[("POST", "/repos/o/r/git/trees")] = [
            Fault("redirect", 301, location=other.replace("127.0.0.1", "localhost") + "/repos/o/r/git/trees")
        ]
        with pytest.raises(GitHubError, match="redirect not followed"):
            commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert elsewhere.requests == []
    assert set(state.authorizations) == {"token t0ken"}
    assert "t0ken" not in repr(client(url, sleeps))


def test_a_same_origin_301_is_followed(stub: Stub) -> None:
    """GitHub answers 301 for a renamed repository; PyGithub re-sends on its own connection."""
    state, url, sleeps = stub
    state.failures[("GET", "/repos/o/old/git/ref/heads/main")] = [
        Fault("redirect", 301, location=f"{url}/repos/o/r/git/ref/heads/main")
    ]
    gh = client(url, sleeps)
    assert gh.call("GET", "/repos/o/old/git/ref/heads/main")["object"]["sha"] == state.refs["main"]


def test_a_301_that_drops_the_query_never_takes_someone_elses_pull_request(stub: Stub) -> None:
    """PyGithub follows a same-origin 301 to the Location's path alone (Requester.py:1312,
    `o.path`): the query is lost, so `GET /pulls?state=open&head=o:b` after a repository rename
    lists every open pull request. A fork's PR from a branch of the same name is not ours either
    (GitHub's `head` filter is the label "owner:branch", pulls#list-pull-requests)."""
    state, url, sleeps = stub
    kwargs: dict[str, Any] = dict(owner="o", repo="r", files=FILES, message="Import", branch="b", pr_title="t")
    commit_files(client(url, sleeps), **kwargs)
    state.pulls[0]["state"] = "closed"
    state.pull("someone:b", "main")  # a fork's pull request from its own branch `b`
    state.pull("o:feature", "main")  # the user's
    state.also_named.add("o/renamed")  # the redirect's target
    state.failures[("GET", "/repos/o/r/pulls")] = [
        Fault("redirect", 301, location=f"{url}/repos/o/renamed/pulls?state=open&head=o:b")
    ]
    result = commit_files(client(url, sleeps), **kwargs)
    assert result.pull_request == 4 and state.pulls[3]["head"]["label"] == "o:b"
    assert [p["state"] for p in state.pulls[1:3]] == ["open", "open"]


def test_unreachable_api_is_one_clear_error() -> None:
    sleeps: list[float] = []
    gh = client("http://127.0.0.1:9", sleeps, max_attempts=3)
    with pytest.raises(GitHubError, match="connection failed"):
        commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0]


def test_waits_for_the_first_commit_of_a_new_repository(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [
        Fault("status", 409, message="Git Repository is empty."),
        Fault("status", 404, message="Not Found"),
    ]
    gh = client(url, sleeps)
    commit_files(gh, owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0] and gh.writes == 3


def test_a_missing_base_branch_is_an_error(stub: Stub) -> None:
    state, url, sleeps = stub
    state.refs.clear()
    with pytest.raises(GitHubError, match="branch 'main' does not exist"):
        commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert len(sleeps) == 5


# ------------------------------------------------------------------ the dynamic provider


def test_provider_check_rejects_bad_paths_and_bad_binary() -> None:
    provider = RepoCommitProvider()
    news = {
        "owner": "o",
        "repo": "r",
        "base": "main",
        "message": "m",
        "token": "t",
        "files": {"../x": "", "/abs": "", ".git/c": ""},
    }
    assert len(provider.check({}, news).failures) == 3
    assert not provider.check({}, {**news, "files": {"chart/Chart.yaml": "x"}}).failures
    assert provider.check({}, {**news, "files": {}}).failures
    binary = {**news, "files": {}, "binary_files": {"a.bin": base64.b64encode(b"\0").decode()}}
    assert not provider.check({}, binary).failures
    bad = provider.check({}, {**binary, "binary_files": {"a.bin": "not base64!", "../b": "AA=="}}).failures
    assert [f.property for f in bad] == ["binary_files", "binary_files"]


def test_provider_check_requires_the_token() -> None:
    """Without it create would fail inside PyGithub (Auth.Token asserts a str) after the plan was
    approved; check runs at preview and names the field."""
    news = {"owner": "o", "repo": "r", "base": "main", "message": "m", "files": {"a": "b"}}
    assert [f.property for f in RepoCommitProvider().check({}, news).failures] == ["token"]
    assert not RepoCommitProvider().check({}, {**news, "token": "t"}).failures


def test_provider_diff_never_rewrites_user_content() -> None:
    provider = RepoCommitProvider()
    old = {"owner": "o", "repo": "r", "base": "main", "branch": "", "files": {"a": "1"}, "message": "m"}
    same = provider.diff("id", old, {**old, "files": {"a": "2"}, "binary_files": {"b": "AA=="}, "message": "other"})
    assert same.changes is False
    new_import = provider.diff(
        "id", {**old, "branch": "scoutflo/import-x-1.0.0"}, {**old, "branch": "scoutflo/import-x-1.1.0"}
    )
    assert new_import.changes is True and new_import.replaces == ["branch"]
    assert new_import.delete_before_replace is False
    assert provider.delete("id", old) is None


def test_provider_create_commits_text_and_binary_through_the_api(stub: Stub) -> None:
    state, url, _ = stub
    props = {
        "owner": "o",
        "repo": "r",
        "base": "main",
        "branch": "scoutflo/import-x-1.0.0",
        "files": FILES,
        "binary_files": {p: base64.b64encode(d).decode() for p, d in BINARY.items()},
        "executable": ["ci/release"],
        "message": "Import x 1.0.0",
        "pr_title": "Import x 1.0.0",
        "pr_body": "body",
        "token": "t0ken",
        "api_url": url,
    }
    result = RepoCommitProvider().create(props)
    assert result.id == "o/r@scoutflo/import-x-1.0.0"
    assert result.outs["pull_request_url"] == "https://github.test/pull/1"
    assert result.outs["github_writes"] == 4 + len(BINARY)
    # The chart is in the state's inputs; the outputs do not carry it a second time.
    assert "files" not in result.outs and "binary_files" not in result.outs
    assert not RepoCommitProvider().diff(result.id, result.outs, props).changes
    assert state.files("scoutflo/import-x-1.0.0") == {"README.md": AUTO_INIT_README, **as_bytes({**FILES, **BINARY})}


# What existing stacks hold as every dynamic resource's `__provider` (dill, by reference):
# sdk/python/lib/pulumi/dynamic/dynamic.py serialize_provider; loaded by __main__.py:45-69.
# Per provider: the pickle, a check() call's inputs, and what the loaded provider answers.
STORED_PROVIDERS = {
    RepoCommitProvider: (
        "gASVNAAAAAAAAACMFmNvbXBvbmVudHMucmVwb19jb21taXSUjBJSZXBvQ29tbWl0UHJvdmlkZXKUk5QpgZQu",
        {"owner": "o", "repo": "r", "base": "main", "message": "m", "token": "t", "files": {"../x": ""}},
        ["files"],
    ),
    AppRepositoryProvider: (
        "gASVOgAAAAAAAACMGWNvbXBvbmVudHMuYXBwX3JlcG9zaXRvcnmUjBVBcHBSZXBvc2l0b3J5UHJvdmlkZXKUk5QpgZQu",
        {"owner": "o", "name": "web", "tenant": "acme", "description": "d"},
        ["token"],
    ),
}


@pytest.mark.parametrize("provider", list(STORED_PROVIDERS), ids=lambda p: p.__name__)
def test_a_provider_pickled_by_an_existing_stack_loads_in_a_fresh_process(provider: type) -> None:
    """The provider host is a fresh Python process in the project directory; it unpickles the
    provider stored in the state. components/repo_commit.py's and components/app_repository.py's
    paths are therefore permanent: if this fails, existing stacks can no longer refresh, update
    or delete their commits and repositories."""
    from pulumi.dynamic.dynamic import serialize_provider

    stored, news, failing = STORED_PROVIDERS[provider]
    assert serialize_provider(provider()) == stored, "the pickle must stay a by-name reference"
    code = (
        "import base64, json, sys, dill\n"
        "p = dill.loads(base64.b64decode(sys.argv[1]))\n"
        "bad = p.check({}, json.loads(sys.stdin.read()))\n"
        "print(type(p).__module__, type(p).__name__, json.dumps([f.property for f in bad.failures]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, stored],
        input=json.dumps(news),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    module, name, failures = result.stdout.split(" ", 2)
    assert (module, name, json.loads(failures)) == (provider.__module__, provider.__name__, failing)


def test_binary_files_reach_the_commit_inputs_and_the_rendered_repo_byte_for_byte(tmp_path: Path) -> None:
    """Pulumi inputs carry no bytes: RepoCommit sends them base64 under `binary_files`, and render
    writes repos/<app>/ from those same inputs."""
    import pulumi

    from automation import render
    from components.repo_commit import RepoCommit, RepoCommitArgs

    def program() -> None:
        RepoCommit(
            "c",
            RepoCommitArgs(
                owner="o", repo="app", files={**FILES, **BINARY}, message="m", token=pulumi.Output.secret("t")
            ),
        )

    recording = render.run(program, {"aws:region": "us-east-1"})
    (commit,) = [r for r in recording.resources if r.type == render.DYNAMIC_TYPE]
    assert set(commit.inputs["files"]) == set(FILES)
    assert {p: base64.b64decode(d) for p, d in commit.inputs["binary_files"].items()} == BINARY
    render.write(recording, tmp_path)
    written = {
        str(p.relative_to(tmp_path / "repos" / "app")): p.read_bytes()
        for p in (tmp_path / "repos" / "app").rglob("*")
        if p.is_file()
    }
    assert written == as_bytes({**FILES, **BINARY})


# ------------------------------------------------------------------ answers PyGithub would mishandle


def test_a_non_ascii_retry_after_is_a_sane_wait_through_the_real_client(stub: Stub) -> None:
    """`Retry-After: ²` on the wire (the stand-in sends header bytes as Latin-1, as http.client
    reads them): waited as GitHub's "at least a minute", then repeated; no traceback."""
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 429, {"Retry-After": "²"}, "slow down")]
    # PyGithub reads x-ratelimit-reset itself (int(float(...)), Requester.py:1246-1248): "²" raises
    # there, which the client takes as an answer lost (a GET: asked again after 1 s).
    odd_reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "²"}
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [Fault("status", 403, odd_reset, "rate limit")]
    commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 60.0] and len(state.history("main")) == 2


def test_a_non_ascii_retry_after_beyond_the_budget_is_a_typed_error(stub: Stub) -> None:
    state, url, sleeps = stub
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 429, {"Retry-After": "²"}, "slow down")]
    with pytest.raises(GitHubError, match="budget of 30 s"):
        commit_files(client(url, sleeps, budget=30), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == []


@pytest.fixture
def no_pygithub_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyGithub's own 202 wait (time.sleep in github/Requester.py:1288) must never run."""
    import github.Requester

    def refuse(seconds: float) -> None:
        raise AssertionError(f"PyGithub slept {seconds} s outside the operation's budget")

    monkeypatch.setattr(github.Requester.time, "sleep", refuse)


def test_a_202_to_a_read_is_asked_again_within_the_budget(stub: Stub, no_pygithub_sleep: None) -> None:
    state, url, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [Fault("status", 202, message="")] * 2
    result = commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0] and state.refs["main"] == result.commit_sha


def test_a_202_that_never_ends_is_a_typed_error_not_a_recursion(stub: Stub, no_pygithub_sleep: None) -> None:
    state, url, sleeps = stub
    state.failures[("GET", "/repos/o/r/git/ref/heads/main")] = [Fault("status", 202, message="")] * 50
    with pytest.raises(GitHubError, match=r"failed with 202: GitHub still had not finished after 5 attempts"):
        commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert sleeps == [1.0, 2.0, 4.0, 8.0] and len(state.history("main")) == 1
    with pytest.raises(GitHubError, match="budget of 2 s"):
        commit_files(client(url, [], budget=2), owner="o", repo="r", files={"a": "b"}, message="m")


def test_a_write_answered_202_is_read_back_or_sent_again_only_when_safe(stub: Stub, no_pygithub_sleep: None) -> None:
    state, url, sleeps = stub
    # The tree write queued (not done): content-addressed, so sent again. The pull request done but
    # answered "Accepted": found by reading back, never opened twice.
    state.failures[("POST", "/repos/o/r/git/trees")] = [Fault("status", 202, message="")]
    state.failures[("POST", "/repos/o/r/pulls")] = [Fault("status-after", 202, message="Accepted")]
    result = commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m", branch="b")
    assert len(state.pulls) == 1 and result.pull_request == 1
    assert [c for c in calls(state) if c[0] != "GET"].count(("POST", "/repos/o/r/pulls")) == 1
    assert sleeps == [1.0]


# ------------------------------------------------------------------ rulesets that require signed commits


def test_a_ruleset_requiring_signed_commits_refuses_the_scaffold_with_the_rule_and_the_fix(stub: Stub) -> None:
    state, url, sleeps = stub
    state.rulesets = [Ruleset(4242, "o")]  # the organisation's, on the default branch
    with pytest.raises(SignedCommitsRequired) as err:
        commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m")
    text = str(err.value)
    assert err.value.status == 409 and isinstance(err.value, RulesetRefused)
    assert "ruleset 4242 of Organization o requires signed commits on branch 'main'" in text
    assert '"Require signed commits"' in text and "GitHub App installation token" in text and "bypass" in text
    assert len(state.history("main")) == 1, "nothing moved"
    assert ("GET", "/repos/o/r/rules/branches/main") in calls(state), "the rule is named from GitHub's own list"


def test_an_import_branch_under_such_a_ruleset_is_refused_before_any_pull_request(stub: Stub) -> None:
    state, url, sleeps = stub
    state.rulesets = [Ruleset(7, "o/r", "Repository", include=("scoutflo/import-*",))]
    with pytest.raises(SignedCommitsRequired, match=r"ruleset 7 of Repository o/r .* 'scoutflo/import-x-1\.0\.0'"):
        commit_files(
            client(url, sleeps), owner="o", repo="r", files=FILES, message="m", branch="scoutflo/import-x-1.0.0"
        )
    assert "scoutflo/import-x-1.0.0" not in state.refs and state.pulls == []


def test_a_ruleset_on_main_only_leaves_the_import_branch_alone(stub: Stub) -> None:
    """Rulesets judge the branches they target (a creation checks the commits no other branch
    reaches): the import branch is created and proposed."""
    state, url, sleeps = stub
    state.rulesets = [Ruleset(1, "o")]
    result = commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m", branch="scoutflo/i")
    assert result.pull_request == 1 and state.refs["scoutflo/i"] == result.commit_sha


def test_with_an_app_token_the_same_commits_are_signed_and_a_rerun_after_the_fix_commits_once(stub: Stub) -> None:
    state, url, sleeps = stub
    state.rulesets = [Ruleset(4242, "o")]
    with pytest.raises(SignedCommitsRequired):
        commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m")
    state.signs_api_commits = True  # the stack now holds a GitHub App installation token
    result = commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m")
    assert state.history("main") == [result.commit_sha, state.history("main")[-1]]
    assert state.objects[result.commit_sha]["verified"]
    again = commit_files(client(url, sleeps), owner="o", repo="r", files=FILES, message="m")
    assert not again.created and again.commit_sha == result.commit_sha


def test_another_rule_violation_is_typed_and_names_the_branch(stub: Stub) -> None:
    state, url, sleeps = stub
    refusal = "Repository rule violations found\n\nChanges must be made through a pull request.\n\n"
    state.failures[("PATCH", "/repos/o/r/git/refs/heads/main")] = [Fault("status", 422, message=refusal)]
    with pytest.raises(RulesetRefused, match=r"Changes must be made through a pull request\..*branch 'main'") as err:
        commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert not isinstance(err.value, SignedCommitsRequired)


def test_a_signature_refusal_that_names_other_rules_too_shows_them(stub: Stub) -> None:
    """An organisation's ruleset on main often has "Require a pull request" beside "Require signed
    commits": the fix named for signatures alone (an App token) would meet the next refusal."""
    state, url, sleeps = stub
    refusal = (
        "Repository rule violations found\n\nChanges must be made through a pull request.\n\n"
        "Commits must have verified signatures.\n\n"
    )
    state.failures[("PATCH", "/repos/o/r/git/refs/heads/main")] = [Fault("status", 422, message=refusal)]
    with pytest.raises(SignedCommitsRequired) as err:
        commit_files(client(url, sleeps), owner="o", repo="r", files={"a": "b"}, message="m")
    assert "Changes must be made through a pull request." in str(err.value)
    assert "\n" not in str(err.value)
