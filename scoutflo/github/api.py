"""GitHub writes that are safe to repeat: one commit of many files through the Git Data API.

pulumi-github's RepositoryFile makes one commit (one Contents API write) per file; a chart has
20-150 files and GitHub allows 80 content-generating requests a minute and 500 an hour per token.
One commit through the Git Data API costs 3 writes whatever the file count (tree with inline text,
commit, ref), plus 1 per binary file (a base64 blob) and 1 for a pull request.

The HTTP client is PyGithub's `Requester` (PyGithub 2.10, pinned in requirements.txt). Why PyGithub
and not githubkit: it is synchronous (the dynamic provider's methods are plain functions), small
(requests + urllib3, no pydantic model tree), and its redirect handling is what we need:
`github/Requester.py:1291-1313` follows a 301 only to the same scheme and host (and re-sends on
its own connection, so the token never reaches another origin) and raises otherwise;
`Requester.py:213,277` send every request with `allow_redirects=False`, so requests never follows a
302/307/308 by itself and we refuse them here. Its retry policy we do NOT use (`retry=0`):
`github/GithubRetry.py:98` adds POST to urllib3's retried methods, so a read timeout after GitHub
accepted `POST /pulls` would open a second pull request, and it sleeps whatever `Retry-After`
says (no clamp, no budget). This module decides instead, per request, whether repeating is safe.
We call `Requester.requestJson` (status, headers, body), not the object model: its
`requestJsonAndCheck` raises only for status >= 400 (`Requester.py:889-897`), so a 302/307/308,
which PyGithub neither follows nor refuses, would be taken for success. A 202 to a GET PyGithub
would sleep on and ask again without end (`Requester.py:1285-1289`); its connection class is
replaced on our requester so that the 202 reaches us and is waited for within the budget.

On a branch whose ruleset requires signed commits our (unsigned) commits are refused when the
ref moves; that refusal is a typed error naming the ruleset and the fix (see `_move_ref` for why
this module does not switch to GraphQL `createCommitOnBranch`).

Every write sequence here is safe to repeat (the engine re-runs a create that failed or whose
answer was lost): each commit carries a `Scoutflo-Commit:` trailer and is looked for before a new
one is made; an existing import branch or open pull request is reused; paths that already exist
on a branch the user has committed to are left alone.
"""

from __future__ import annotations

import base64
import bisect
import email.utils
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from github import Auth, Github

API = "https://api.github.com"
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
TRAILER = "Scoutflo-Commit"
# GitHub's secondary limits for content-generating requests, per token ("Rate limits for the REST
# API", docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
WRITES_PER_MINUTE = 80
WRITES_PER_HOUR = 500
MAX_WAIT = 3600.0
"""No rate-limit window of GitHub's is longer than an hour: a longer wait asked for is bogus."""
HISTORY = 100
"""Commits scanned for our trailer (one page): a re-run follows the failed run closely."""


class GitHubError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, message: str):
        super().__init__(f"GitHub {method} {path} failed with {status}: {message}")
        self.status = status
        self.message = message


RULE_VIOLATION = "Repository rule violations found"
"""How GitHub opens its refusal of a ref write that breaks a ruleset, the rules' own messages
following (`GH013: Repository rule violations found for refs/heads/…` over git; over the REST API
the same words in `message`, e.g. "Repository rule violations found\n\nChanges must be made
through a pull request." quoted against docs.github.com/rest/git/refs#update-a-reference in
satisfactory-factories/application#67; "409 Repository rule violations found — Commits must have
verified signatures" for Git Data API commits in grafana/pyroscope-dotnet#386). Matched on the
words, whatever the 4xx status."""
UNSIGNED = "Commits must have verified signatures"
"""The "Require signed commits" rule's own line in that refusal (GH013 reports quoted in
vercel/workflow#1867, transloadit/uppy#6442)."""


class RulesetRefused(GitHubError):
    """A ruleset of the repository or its organisation refused a ref write; nothing moved."""


class SignedCommitsRequired(RulesetRefused):
    """The branch requires signed commits and ours are not signed (see commit_files)."""


class Pacer:
    """Sliding windows over one token's writes: a write waits (never fails) until it fits in
    both the per-minute and the per-hour budget. Slots are reserved under a lock, so the dynamic
    provider's concurrent creates (one process serves the whole `pulumi up`) share the windows."""

    def __init__(self, per_minute: int = WRITES_PER_MINUTE, per_hour: int = WRITES_PER_HOUR):
        self.windows = ((60.0, per_minute), (3600.0, per_hour))
        self._slots: list[float] = []
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Reserve the earliest slot at or after `now`; returns how long to wait for it.

        Slots stay sorted (callers read the clock before taking the lock, so their `now`s
        arrive slightly out of order), and the windows are checked again until one slot fits
        both: moving a slot out of a full hour can move it into a full minute."""
        with self._lock:
            # Kept for two hours: a caller whose clock read lags another's still sees its hour.
            while self._slots and self._slots[0] <= now - 7200.0:
                self._slots.pop(0)
            at, moved, slots = now, True, self._slots
            while moved:
                moved = False
                for span, limit in self.windows:
                    # A window of `span` holding `at` must hold fewer than `limit` others: any
                    # `limit` consecutive slots lying, with `at`, within less than `span` would
                    # overflow it, and the earliest way out is the first of them + span. One pass:
                    # `at` only grows, so groups left behind never matter again.
                    i = bisect.bisect_right(slots, at - span)
                    while i + limit - 1 < len(slots) and slots[i] < at + span:
                        # (not `max - min < span`: after a move, float rounding keeps it true)
                        if max(slots[i + limit - 1], at) < min(slots[i], at) + span:
                            at, moved = slots[i] + span, True
                        i += 1
            bisect.insort(self._slots, at)
            return at - now


_PACERS: dict[str, Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(token: str) -> Pacer:
    """One pacer per token in this process (keyed by a digest, never the token itself)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with _PACERS_LOCK:
        return _PACERS.setdefault(key, Pacer())


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
"""Digits only: float() also takes "nan", "inf" and "1_0", and a NaN wait fails time.sleep."""


def _seconds_until(value: str, now: float, *, epoch: bool) -> float | None:
    """A header's wait in seconds: delta-seconds (Retry-After), epoch seconds (x-ratelimit-reset;
    PyGithub notes GitHub sometimes sends a float, Requester.py:1241) or an HTTP-date (RFC 9110
    §10.2.3 allows it for Retry-After); None when unparsable."""
    value = value.strip()
    if _NUMBER.fullmatch(value):
        number = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return when.timestamp() - now
    return number - now if epoch else number


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str, now: float) -> float | None:
    """How long GitHub asks us to wait before repeating a refused request, or None when the
    answer is not a rate limit. The order is GitHub's own ("Rate limits for the REST API",
    "Exceeding the rate limit"): retry-after first, then x-ratelimit-reset when
    x-ratelimit-remaining is 0, else at least one minute. Clamped to [1 s, MAX_WAIT]."""
    if status not in (403, 429):
        return None
    h = {k.lower(): v for k, v in headers.items()}
    wait: float | None = None
    if "retry-after" in h:
        wait = _seconds_until(h["retry-after"], now, epoch=False)
    elif h.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in h:
        reset = _seconds_until(h["x-ratelimit-reset"], now, epoch=True)
        wait = None if reset is None else reset + 1  # the reset happens somewhere in that second
    if wait is None:
        limited = status == 429 or h.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()
        if not limited:
            return None  # a plain 403 is a permission problem: repeating will not help
        wait = 60.0
    return min(max(wait, 1.0), MAX_WAIT)


class _Accepted(Exception):
    """GitHub answered a GET with 202 Accepted: the answer is being computed (the statistics
    endpoints say so: "Give the job a few moments to complete, and then submit the request again",
    docs.github.com/rest/metrics/statistics). Raised from the connection, before PyGithub sees the
    202: PyGithub would sleep 2 s and ask again, without limit and outside our budget
    (github/Requester.py:1285-1289, Consts.PROCESSING_202_WAIT_TIME = 2 at github/Consts.py:63;
    each repeat a recursive call, so a 202 that never ends is a RecursionError)."""

    def __init__(self, headers: Mapping[str, str]):
        super().__init__("202 Accepted")
        self.headers = {k.lower(): v for k, v in headers.items()}


def _answering_202(connection_class: type) -> type:
    """PyGithub's connection class (github/Requester.py:148-245, requests underneath), raising
    _Accepted for a 202 to a GET or HEAD, the only ones PyGithub repeats (Requester.py:1285-1287)."""

    class Connection(connection_class):
        def getresponse(self) -> Any:
            response = super().getresponse()
            if response.status == 202 and self.verb in ("GET", "HEAD"):
                raise _Accepted(dict(response.getheaders()))
            return response

    return Connection


@dataclass
class GitHub:
    """One operation's client: its waits (rate limits, pacing, backoff) share one `budget`."""

    token: str = field(repr=False)
    api: str = API
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time
    budget: float = 1800.0
    """Seconds this operation may spend waiting in total; beyond it, one clear error."""
    max_attempts: int = 5
    """Attempts per request for transient failures (5xx, dropped connections, timeouts)."""
    timeout: int = 30
    pacer: Pacer | None = None
    writes: int = 0
    waited: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # retry=0: PyGithub's GithubRetry would repeat POSTs blindly (see module docstring);
        # no seconds_between_*: the Pacer below knows GitHub's windows instead of a fixed gap.
        client = Github(
            auth=Auth.Token(self.token),
            base_url=self.api.rstrip("/"),
            timeout=self.timeout,
            retry=0,
            per_page=HISTORY,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._requester = client.requester
        # The requester's own connection class (an instance attribute, Requester.py:430-433,
        # used by __createConnection, :1371-1394), so no other client or thread is affected.
        attribute = "_Requester__connectionClass"
        setattr(self._requester, attribute, _answering_202(getattr(self._requester, attribute)))
        if self.pacer is None:
            self.pacer = pacer_for(self.token)

    def _wait(self, seconds: float, why: str, method: str, path: str) -> None:
        if seconds <= 0:
            return
        if self.waited + seconds > self.budget:
            raise GitHubError(
                429,
                method,
                path,
                f"{why}: waiting {seconds:.0f} s more would exceed this operation's budget of "
                f"{self.budget:.0f} s; nothing is lost, run `pulumi up` again later",
            )
        self.waited += seconds
        self.sleep(seconds)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok404: bool = False,
        idempotent: bool = False,
        verify: Callable[[], Any] | None = None,
    ) -> Any:
        """One REST call. A refused request (rate limit) is always repeated after GitHub's wait.
        An answer that leaves the outcome unknown (5xx, dropped connection, timeout) is repeated
        only for GETs and `idempotent` writes; otherwise `verify` reads back whether the write
        landed (its non-None result is returned) before repeating, and without `verify` the
        error is raised."""
        backoff = 1.0
        for attempt in range(1, self.max_attempts + 1):
            write = method in WRITE_METHODS
            if write:
                assert self.pacer is not None
                self._wait(self.pacer.reserve(self.now()), "pacing writes to GitHub's secondary limits", method, path)
                self.writes += 1
            self.requests.append((method, path))
            accepted = False
            try:
                status, headers, raw = self._requester.requestJson(method, path, input=body)
            except _Accepted as answer:
                status, headers, raw, accepted = 202, answer.headers, "", True
            except RuntimeError as err:
                # PyGithub refuses a 301 to another host or scheme (Requester.py:1291-1303).
                raise GitHubError(0, method, path, f"redirect not followed: {err}") from None
            except requests.RequestException as err:
                status, headers, raw = 0, {}, f"connection failed: {type(err).__name__}"
            except ValueError:
                # PyGithub reads x-ratelimit-* as numbers before returning (Requester.py:1240-1248,
                # `int(float(...))`): an HTTP-date or "NaN" there raises, and the answer is lost.
                status, headers, raw = 0, {}, "answer with unreadable x-ratelimit headers"
            if 300 <= status < 400:
                raise GitHubError(
                    status,
                    method,
                    path,
                    f"redirected to {headers.get('location', '?')}; not followed, the token is only sent to {self.api}",
                )
            if status == 404 and ok404:
                return None
            if status == 202 and write and not idempotent and verify is not None:
                # A write GitHub queued ("Accepted"): sending it again could do it twice, so it is
                # read back until it shows, within this operation's budget.
                return self._await_write(method, path, verify)
            if status == 202 and (accepted or (write and idempotent)):
                # A GET whose answer is still being computed, or a queued write that is safe to
                # send again: asked again within this operation's budget.
                if attempt == self.max_attempts:
                    raise GitHubError(
                        202,
                        method,
                        path,
                        f"GitHub still had not finished after {self.max_attempts} attempts (202 Accepted); "
                        "run `pulumi up` again later",
                    )
                self._wait(backoff, "GitHub is preparing the answer (202 Accepted)", method, path)
                backoff = min(backoff * 2, 60.0)
                continue
            if 200 <= status < 300:
                return json.loads(raw) if raw else None
            message = _message(raw) if status else raw
            wait = rate_limit_wait(status, headers, message, self.now()) if status else None
            if wait is not None:
                self._wait(wait, f"rate limited ({status}: {message})", method, path)
                continue
            if status and status < 500:
                if RULE_VIOLATION.lower() in message.lower():
                    raise RulesetRefused(status, method, path, message)
                raise GitHubError(status, method, path, message)
            # 5xx or no answer: GitHub may or may not have done it.
            if write and not idempotent:
                if verify is None:
                    raise GitHubError(status, method, path, f"{message}; the write's outcome is unknown")
                landed = verify()
                if landed is not None:
                    return landed
            if attempt == self.max_attempts:
                break
            self._wait(backoff, f"GitHub failing ({status or message})", method, path)
            backoff = min(backoff * 2, 60.0)
        raise GitHubError(status, method, path, f"{message} (after {self.max_attempts} attempts)")

    def _await_write(self, method: str, path: str, verify: Callable[[], Any]) -> Any:
        backoff = 1.0
        for _ in range(self.max_attempts):
            if (landed := verify()) is not None:
                return landed
            self._wait(backoff, "GitHub accepted the write (202) and has not done it yet", method, path)
            backoff = min(backoff * 2, 60.0)
        if (landed := verify()) is not None:
            return landed
        raise GitHubError(
            202, method, path, "GitHub accepted the write (202) but it has not shown; run `pulumi up` again later"
        )


def _message(payload: str) -> str:
    """GitHub's `message` with its `errors` details: a 422's message alone is often only
    "Repository creation failed." or "Validation Failed", the reason (a name taken, a description
    refused, a visibility the organisation forbids) is in `errors` (objects with resource, field,
    code and sometimes message, or plain strings: docs.github.com/en/rest "Client errors")."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:200]
    if not isinstance(data, dict):
        return payload[:200]
    text = str(data.get("message", payload))
    details = []
    for e in data.get("errors") or ():
        if isinstance(e, dict):
            details.append(
                str(e.get("message") or " ".join(str(e[k]) for k in ("resource", "field", "code") if k in e))
            )
        else:
            details.append(str(e))
    return f"{text} ({'; '.join(details)[:300]})" if details else text


def _q(ref: str) -> str:
    return urllib.parse.quote(ref, safe="/")


def branch_head(gh: GitHub, r: str, base: str, attempts: int = 6) -> str:
    """The base branch's head. A repository created with auto_init gets its first commit a moment
    after the create call returns; until then the ref is missing (404) or the repo "empty" (409)."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            ref = gh.call("GET", f"{r}/git/ref/heads/{_q(base)}", ok404=True)
        except GitHubError as err:
            if err.status != 409:
                raise
            ref = None
        if ref:
            return str(ref["object"]["sha"])
        if attempt < attempts:
            gh._wait(delay, f"waiting for branch {base!r}", "GET", r)
            delay *= 2
    raise GitHubError(404, "GET", f"{r}/git/ref/heads/{base}", f"branch {base!r} does not exist")


def _ref_sha(gh: GitHub, r: str, name: str) -> str | None:
    ref = gh.call("GET", f"{r}/git/ref/heads/{_q(name)}", ok404=True)
    return str(ref["object"]["sha"]) if ref else None


def marker_line(key: str) -> str:
    return f"{TRAILER}: {key}"


def commit_key(*, base: str, branch: str | None, message: str) -> str:
    """What a commit is, for finding it again: an import is its branch (one per chart version); a
    commit straight to `base` is the base and its title, so that different direct commits (the
    scaffold, the note on a re-adopted repository) are never taken for one another."""
    title = message.strip().splitlines()[0] if message.strip() else ""
    return branch or f"{base}: {title}"


def _find_marked(gh: GitHub, r: str, head: str, key: str) -> str | None:
    """The newest commit reachable from `head` (first page) whose message has our trailer."""
    line = marker_line(key)
    for commit in gh.call("GET", f"{r}/commits?sha={head}&per_page={HISTORY}") or []:
        if line in commit["commit"]["message"].splitlines():
            return str(commit["sha"])
    return None


def _open_pull(gh: GitHub, owner: str, r: str, branch: str) -> dict[str, Any] | None:
    """Our open pull request from `branch`. The answer is checked, not trusted to be filtered:
    PyGithub follows a same-origin 301 (a renamed repository) to the Location's path alone,
    dropping the query (Requester.py:1312, `o.path`), and GitHub then lists every open pull
    request, a fork's from a branch of the same name included. GitHub's label is
    "owner:branch" with the owner as GitHub spells it (logins are case-insensitive)."""
    head = f"{urllib.parse.quote(owner)}:{urllib.parse.quote(branch, safe='')}"
    for pr in gh.call("GET", f"{r}/pulls?state=open&head={head}&per_page={HISTORY}") or []:
        pr_owner, _, ref = str((pr.get("head") or {}).get("label") or "").partition(":")
        if pr.get("state") == "open" and pr_owner.lower() == owner.lower() and ref == branch:
            return dict(pr)
    return None


@dataclass(frozen=True)
class CommitResult:
    commit_sha: str
    branch: str
    pull_request: int | None = None
    pull_request_url: str | None = None
    created: bool = True
    kept: tuple[str, ...] = ()
    """Paths not written because the branch already had them (the user's version stays)."""


def _tree_entries(
    gh: GitHub, r: str, files: Mapping[str, str | bytes], executable: frozenset[str]
) -> list[dict[str, str]]:
    """Text inline in the tree request (no extra write); bytes as a base64 blob first, the only
    way the Git Data API stores arbitrary bytes (POST /git/blobs, encoding base64): one write per
    distinct binary content, repeatable because a blob's sha is its content's."""
    blobs: dict[bytes, str] = {}
    entries = []
    for path, content in sorted(files.items()):
        entry = {"path": path, "mode": "100755" if path in executable else "100644", "type": "blob"}
        if isinstance(content, bytes):
            if content not in blobs:
                body = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
                blobs[content] = gh.call("POST", f"{r}/git/blobs", body, idempotent=True)["sha"]
            entry["sha"] = blobs[content]
        else:
            entry["content"] = content
        entries.append(entry)
    return entries


def _new_commit(
    gh: GitHub,
    r: str,
    *,
    parent: str,
    base_tree: str,
    files: Mapping[str, str | bytes],
    executable: frozenset[str],
    message: str,
) -> str:
    entries = _tree_entries(gh, r, files, executable)
    # A tree's sha is its content's: repeating the request makes the same tree.
    tree = gh.call("POST", f"{r}/git/trees", {"base_tree": base_tree, "tree": entries}, idempotent=True)
    # Repeating a commit request may leave an unreferenced commit object behind: invisible, and
    # collected by git; only the ref update below makes a commit anyone sees.
    commit = gh.call(
        "POST", f"{r}/git/commits", {"message": message, "tree": tree["sha"], "parents": [parent]}, idempotent=True
    )
    return str(commit["sha"])


def _tree_of(gh: GitHub, r: str, commit: str) -> str:
    return str(gh.call("GET", f"{r}/git/commits/{commit}")["tree"]["sha"])


def _user_paths(gh: GitHub, r: str, head: str) -> tuple[set[str], str]:
    """Paths on `head` that are the user's, and head's tree. A repository created with auto_init
    holds one parentless commit with only GitHub's README.md: nothing there is the user's yet."""
    commit = gh.call("GET", f"{r}/git/commits/{head}")
    tree_sha = str(commit["tree"]["sha"])
    tree = gh.call("GET", f"{r}/git/trees/{tree_sha}?recursive=1")
    if tree.get("truncated"):
        raise GitHubError(0, "GET", f"{r}/git/trees", "tree too large to tell which files are the user's")
    paths = {e["path"] for e in tree["tree"] if e["type"] == "blob"}
    if not commit.get("parents") and paths <= {"README.md"}:
        return set(), tree_sha
    return paths, tree_sha


def _signature_rulesets(gh: GitHub, r: str, branch: str) -> str:
    """Which rulesets require signed commits on `branch`, as GitHub lists a branch's active rules
    (GET /repos/{owner}/{repo}/rules/branches/{branch}, docs.github.com/rest/repos/rules: each rule
    with its `type`, `ruleset_source_type`, `ruleset_source` and `ruleset_id`), for the message
    only: a read that fails leaves the message general."""
    try:
        rules = gh.call("GET", f"{r}/rules/branches/{_q(branch)}?per_page=100", ok404=True) or []
    except GitHubError:
        return "a ruleset"
    named = sorted(
        {
            f"ruleset {rule.get('ruleset_id')} of {rule.get('ruleset_source_type')} {rule.get('ruleset_source')}"
            for rule in rules
            if isinstance(rule, dict) and rule.get("type") == "required_signatures"
        }
    )
    return " and ".join(named) or "a ruleset"


def _move_ref(gh: GitHub, *, method: str, owner: str, repo: str, branch: str, write: Callable[[], Any]) -> Any:
    """A ref write (the only writes a ruleset judges), its refusal by a ruleset made plain.

    Why a refusal and not signing: on a branch whose ruleset has "Require signed commits", GitHub
    accepts only commits "signed and verified", checking every commit the update brings
    (docs: repositories/…/managing-rulesets/available-rules-for-rulesets.md, "Require signed
    commits"). Our commits come from POST /git/commits and carry no signature: GitHub signs API
    commits only for a GitHub App or bot that sends no author, committer or signature
    (authentication/…/about-commit-signature-verification.md, "Signature verification for bots"),
    not for a personal access token. GraphQL `createCommitOnBranch` is signed by GitHub for any
    token (its doc: "Commits made using this mutation are automatically signed by GitHub"), but it
    cannot carry what our commits are: a `FileAddition` is a path and its contents only, no mode
    (octokit/graphql-schema schema.graphql, input FileAddition), so `ci/*` would lose its
    executable bit and the release workflow (`run: ci/release`) would fail; and every file goes
    in full in one request (a 100 MiB chart budget is no GraphQL payload), where the Git Data API
    writes binaries as blobs one by one. Its commit and ref move are one write (fewer than our 3),
    and its `expectedHeadOid` would keep the trailer logic safe to repeat, but neither outweighs
    a pipeline that cannot run. With an App installation token the same Git Data API commits are
    signed, so the fix is the token (or a bypass), named here."""
    try:
        return write()
    except RulesetRefused as err:
        if UNSIGNED.lower() not in err.message.lower():
            raise RulesetRefused(
                err.status,
                method,
                f"/repos/{owner}/{repo}/git/refs/heads/{branch}",
                f"{' '.join(err.message.split())}; a ruleset on branch {branch!r} refused this program's commit and "
                "nothing moved: add the token's account to the ruleset's bypass list or exclude the branch, then "
                "run `pulumi up` again",
            ) from None
        rulesets = _signature_rulesets(gh, f"/repos/{owner}/{repo}", branch)
        # GitHub lists every rule the update breaks, one per paragraph (the refusal quoted at
        # RULE_VIOLATION); a ruleset on main often requires a pull request too, and a fix for the
        # signatures alone would meet that refusal next: the others are named as well.
        others = [
            " ".join(line.split())
            for line in err.message.splitlines()
            if line.strip() and not any(known.lower() in line.lower() for known in (UNSIGNED, RULE_VIOLATION))
        ]
        also = f" The same refusal names other rules, which the fix must meet too: {' '.join(others)}" if others else ""
        raise SignedCommitsRequired(
            err.status,
            method,
            f"/repos/{owner}/{repo}/git/refs/heads/{branch}",
            f'{rulesets} requires signed commits on branch {branch!r} (rule "Require signed commits") and this '
            "program's commits, made through the Git Data API with a personal access token, are not signed; "
            "nothing on the branch changed. Fix, then run `pulumi up` again: set `github:token` to a GitHub App "
            "installation token (GitHub signs the API commits of an App that sets no author or committer, as "
            "this program does), or add the token's account to that ruleset's bypass list, or exclude the "
            f"branch from it.{also}",
        ) from None


def commit_files(
    gh: GitHub,
    *,
    owner: str,
    repo: str,
    files: Mapping[str, str | bytes],
    executable: frozenset[str] = frozenset(),
    message: str,
    base: str = "main",
    branch: str | None = None,
    pr_title: str = "",
    pr_body: str = "",
) -> CommitResult:
    """Commit `files` (path -> text, or bytes for a binary file) in one commit on `base` (branch
    None) or on a new `branch` with a pull request into `base`. Safe to repeat after any failure:
    see the module docstring."""
    r = f"/repos/{owner}/{repo}"
    key = commit_key(base=base, branch=branch, message=message)
    full_message = f"{message.rstrip()}\n\n{marker_line(key)}\n"
    if not branch:
        head = branch_head(gh, r, base)
        if done := _find_marked(gh, r, head, key):
            return CommitResult(done, base, created=False)
        # Our commit was never made (or made by a version without the trailer): write only what
        # the user does not have, so a re-run never rewrites their files.
        user, base_tree = _user_paths(gh, r, head)
        kept = tuple(sorted(p for p in files if p in user))
        todo = {p: c for p, c in files.items() if p not in user}
        if not todo:
            return CommitResult(head, base, created=False, kept=kept)
        sha = _new_commit(
            gh, r, parent=head, base_tree=base_tree, files=todo, executable=executable, message=full_message
        )
        # Not forced: if main moved since we read it, fail rather than drop someone's commit.
        _move_ref(
            gh,
            method="PATCH",
            owner=owner,
            repo=repo,
            branch=base,
            write=lambda: gh.call(
                "PATCH",
                f"{r}/git/refs/heads/{_q(base)}",
                {"sha": sha, "force": False},
                verify=lambda: {} if _ref_sha(gh, r, base) == sha else None,
            ),
        )
        return CommitResult(sha, base, kept=kept)

    existing = _ref_sha(gh, r, branch)
    if existing:
        if found := _open_pull(gh, owner, r, branch):
            return CommitResult(existing, branch, found["number"], found["html_url"], created=False)
        if _find_marked(gh, r, existing, key) is None:
            raise GitHubError(
                409,
                "GET",
                f"{r}/git/ref/heads/{branch}",
                f"branch {branch!r} exists but holds no Scoutflo commit; it is not ours to change: "
                "rename or delete it, then run `pulumi up` again",
            )
        # Our branch, perhaps with the user's commits on top: keep it as it is, propose it again.
        sha = existing
    else:
        head = branch_head(gh, r, base)
        # Merged already (our PR landed, its branch deleted on merge, before this re-run): the
        # squash commit carries the trailer from the commit message or the PR body.
        if merged := _find_marked(gh, r, head, key):
            return CommitResult(merged, base, created=False)
        base_tree = _tree_of(gh, r, head)
        sha = _new_commit(
            gh, r, parent=head, base_tree=base_tree, files=files, executable=executable, message=full_message
        )
        ref_body = {"ref": f"refs/heads/{branch}", "sha": sha}

        def create_branch() -> None:
            try:
                gh.call(
                    "POST", f"{r}/git/refs", ref_body, verify=lambda: {} if _ref_sha(gh, r, branch) == sha else None
                )
            except GitHubError as err:
                # "Reference already exists": an earlier attempt of ours landed (the answer was lost).
                if err.status != 422 or _ref_sha(gh, r, branch) != sha:
                    raise

        _move_ref(gh, method="POST", owner=owner, repo=repo, branch=branch, write=create_branch)
    body = f"{pr_body.rstrip()}\n\n{marker_line(key)}\n" if pr_body else f"{marker_line(key)}\n"
    request = {"title": pr_title, "head": branch, "base": base, "body": body}
    pr: dict[str, Any] | None
    try:
        pr = gh.call("POST", f"{r}/pulls", request, verify=lambda: _open_pull(gh, owner, r, branch))
    except GitHubError as err:
        # "A pull request already exists for owner:branch": ours, from an attempt whose answer was lost.
        if err.status != 422 or not (pr := _open_pull(gh, owner, r, branch)):
            raise
    assert pr is not None
    return CommitResult(sha, branch, pr["number"], pr["html_url"])
