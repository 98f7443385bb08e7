"""A small GitHub REST client and the one-commit-many-files operation (Git Data API).

pulumi-github's RepositoryFile makes one commit (one Contents API write) per file; a chart has
20-150 files and GitHub allows 80 content writes a minute and 500 an hour per token. One commit
through the Git Data API costs 3 writes whatever the file count (tree with inline contents,
commit, ref), plus 1 for a pull request. Standard library only: it runs inside Pulumi's dynamic
provider process, where only what the program's environment has is importable.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

API = "https://api.github.com"
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


class GitHubError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, message: str):
        super().__init__(f"GitHub {method} {path} failed with {status}: {message}")
        self.status = status


@dataclass
class GitHub:
    token: str
    api: str = API
    max_attempts: int = 5
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    writes: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None, ok404: bool = False) -> Any:
        """One REST call; retries secondary limits (403/429 + retry-after) and 5xx with backoff."""
        data = None if body is None else json.dumps(body).encode()
        delay = 1.0
        for attempt in range(1, self.max_attempts + 1):
            req = urllib.request.Request(self.api + path, data=data, method=method)
            req.add_header("Authorization", f"Bearer {self.token}")
            req.add_header("Accept", "application/vnd.github+json")
            req.add_header("X-GitHub-Api-Version", "2022-11-28")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            self.requests.append((method, path))
            if method in WRITE_METHODS:
                self.writes += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as err:
                payload = err.read().decode("utf-8", "replace")
                if err.code == 404 and ok404:
                    return None
                wait = _retry_wait(err.code, dict(err.headers.items()), payload, delay)
                if wait is None or attempt == self.max_attempts:
                    raise GitHubError(err.code, method, path, _message(payload)) from None
                self.sleep(wait)
                delay = min(delay * 2, 60.0)
            except urllib.error.URLError as err:
                if attempt == self.max_attempts:
                    raise GitHubError(0, method, path, f"unreachable: {err.reason}") from None
                self.sleep(delay)
                delay = min(delay * 2, 60.0)
        raise AssertionError("unreachable")


def _message(payload: str) -> str:
    try:
        return str(json.loads(payload).get("message", payload))
    except (ValueError, AttributeError):
        return payload[:200]


def _retry_wait(status: int, headers: Mapping[str, str], payload: str, backoff: float) -> float | None:
    headers = {k.lower(): v for k, v in headers.items()}
    if status in (403, 429):
        if headers.get("retry-after"):
            return float(headers["retry-after"])
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 1
        if status == 429 or "secondary rate limit" in payload.lower():
            return max(backoff, 60.0)
        return None  # a plain 403 is a permission problem: retrying will not help
    if status >= 500:
        return backoff
    return None


def _base_sha(gh: GitHub, r: str, base: str, attempts: int = 6) -> str:
    """The base branch's head. A repository created with auto_init gets its first commit a moment
    after the create call returns; until then the ref is missing (404) or the repo "empty" (409)."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            ref = gh.call("GET", f"{r}/git/ref/heads/{base}", ok404=True)
        except GitHubError as err:
            if err.status != 409:
                raise
            ref = None
        if ref:
            return str(ref["object"]["sha"])
        if attempt < attempts:
            gh.sleep(delay)
            delay *= 2
    raise GitHubError(404, "GET", f"{r}/git/ref/heads/{base}", f"branch {base!r} does not exist")


@dataclass(frozen=True)
class CommitResult:
    commit_sha: str
    branch: str
    pull_request: int | None = None
    pull_request_url: str | None = None
    created: bool = True


def commit_files(
    gh: GitHub,
    *,
    owner: str,
    repo: str,
    files: Mapping[str, str],
    executable: frozenset[str] = frozenset(),
    message: str,
    base: str = "main",
    branch: str | None = None,
    pr_title: str = "",
    pr_body: str = "",
) -> CommitResult:
    """Commit `files` in one commit on `base` (branch None) or on a new `branch` with a PR into base.

    Re-running for a branch that already has an open PR returns that PR: nothing is duplicated.
    """
    r = f"/repos/{owner}/{repo}"
    q = urllib.parse.quote
    if branch:
        existing = gh.call("GET", f"{r}/git/ref/heads/{q(branch, safe='/')}", ok404=True)
        if existing:
            pulls = gh.call("GET", f"{r}/pulls?state=open&head={q(owner)}:{q(branch, safe='')}") or []
            if pulls:
                pr = pulls[0]
                return CommitResult(existing["object"]["sha"], branch, pr["number"], pr["html_url"], created=False)
    base_sha = _base_sha(gh, r, q(base, safe="/"))
    base_tree = gh.call("GET", f"{r}/git/commits/{base_sha}")["tree"]["sha"]
    entries = [
        {"path": path, "mode": "100755" if path in executable else "100644", "type": "blob", "content": content}
        for path, content in sorted(files.items())
    ]
    tree = gh.call("POST", f"{r}/git/trees", {"base_tree": base_tree, "tree": entries})
    commit = gh.call("POST", f"{r}/git/commits", {"message": message, "tree": tree["sha"], "parents": [base_sha]})
    if not branch:
        # Not forced: if main moved since we read it, fail loudly rather than drop someone's commit.
        gh.call("PATCH", f"{r}/git/refs/heads/{q(base, safe='/')}", {"sha": commit["sha"], "force": False})
        return CommitResult(commit["sha"], base)
    if existing:
        gh.call("PATCH", f"{r}/git/refs/heads/{q(branch, safe='/')}", {"sha": commit["sha"], "force": True})
    else:
        gh.call("POST", f"{r}/git/refs", {"ref": f"refs/heads/{branch}", "sha": commit["sha"]})
    pr = gh.call("POST", f"{r}/pulls", {"title": pr_title, "head": branch, "base": base, "body": pr_body})
    return CommitResult(commit["sha"], branch, pr["number"], pr["html_url"])
