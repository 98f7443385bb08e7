"""RepoCommit: many files as one commit (and optionally one pull request) through a dynamic provider.

The GitHub provider has no multi-file commit resource, so this one calls the Git Data API
(scoutflo.github_api). What lands belongs to the user: changed file contents never rewrite it
(the diff ignores them); only a new branch (a new import) makes a new commit, and deleting the
resource leaves the repository untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

# Properties whose change means another commit: anything else (the files themselves, the
# message) is ignored once the commit exists, because from then on the content is the user's.
_IDENTITY = ("owner", "repo", "base", "branch")


def path_problem(path: str) -> str | None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        return "must be a relative path without '.', '..', '\\' or empty parts"
    if parts[0] == ".git":
        return "must not write into .git"
    return None


class RepoCommitProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        files = news.get("files") or {}
        if not isinstance(files, dict) or not files:
            failures.append(CheckFailure("files", "at least one file is required"))
        else:
            for path, content in files.items():
                if problem := path_problem(path):
                    failures.append(CheckFailure("files", f"{path!r} {problem}"))
                elif not isinstance(content, str):
                    failures.append(CheckFailure("files", f"{path!r} must be text"))
        for key in ("owner", "repo", "base", "message"):
            if not news.get(key):
                failures.append(CheckFailure(key, f"{key} is required"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from scoutflo.github_api import API, GitHub, commit_files

        gh = GitHub(props["token"], api=props.get("api_url") or API)
        result = commit_files(
            gh,
            owner=props["owner"],
            repo=props["repo"],
            files=props["files"],
            executable=frozenset(props.get("executable") or ()),
            message=props["message"],
            base=props["base"],
            branch=props.get("branch") or None,
            pr_title=props.get("pr_title") or "",
            pr_body=props.get("pr_body") or "",
        )
        outs = {
            **props,
            "commit_sha": result.commit_sha,
            "pull_request_url": result.pull_request_url or "",
            "github_writes": gh.writes,
        }
        return CreateResult(f"{props['owner']}/{props['repo']}@{result.branch}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in _IDENTITY if (olds.get(key) or "") != (news.get(key) or "")]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(olds)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The commit (and any PR branch) is the user's now; never remove it.
        return None


@dataclass(frozen=True, kw_only=True)
class RepoCommitArgs:
    owner: str
    """Repository owner (user or organisation)."""
    repo: pulumi.Input[str]
    """Repository name."""
    files: Mapping[str, str | bytes]
    """Path -> text content, all in one commit."""
    executable: Sequence[str] = field(default_factory=tuple)
    """Paths committed with mode 100755."""
    message: str
    """Commit message."""
    token: pulumi.Input[str]
    """GitHub token (a Pulumi secret)."""
    base: str = "main"
    """Branch committed to, or the PR's base when `branch` is set."""
    branch: str = ""
    """'' commits straight to base; otherwise a new branch and a pull request into base."""
    pr_title: str = ""
    pr_body: str = ""
    api_url: str = "https://api.github.com"
    """GitHub REST API root (GitHub Enterprise Server: https://HOST/api/v3)."""


class RepoCommit(pulumi.dynamic.Resource):
    """One commit of many files through the Git Data API (see module docstring)."""

    commit_sha: pulumi.Output[str]
    pull_request_url: pulumi.Output[str]

    def __init__(self, name: str, args: RepoCommitArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "owner": args.owner,
            "repo": args.repo,
            "files": dict(sorted(args.files.items())),
            "executable": sorted(args.executable),
            "message": args.message,
            "token": pulumi.Output.secret(args.token),
            "base": args.base,
            "branch": args.branch,
            "pr_title": args.pr_title,
            "pr_body": args.pr_body,
            "api_url": args.api_url,
            "commit_sha": None,
            "pull_request_url": None,
            "github_writes": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["token"]))
        super().__init__(RepoCommitProvider(), name, props, opts)
