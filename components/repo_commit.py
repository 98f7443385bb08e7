"""RepoCommit: many files as one commit (and optionally one pull request) through a dynamic provider.

The GitHub provider has no multi-file commit resource, so this one calls the Git Data API
(scoutflo.github_api). What lands belongs to the user: changed file contents never rewrite it
(the diff ignores them); only a new branch (a new import) makes a new commit, and deleting the
resource leaves the repository untouched.

THIS MODULE'S PATH AND `RepoCommitProvider`'S NAME ARE PERMANENT. Pulumi pickles the provider
instance (dill) into every RepoCommit's state as `__provider`, and the dynamic provider host
unpickles it from the state in a fresh process started in the project directory (pulumi/pulumi
sdk/python/lib/pulumi/dynamic/__main__.py:45-69, `get_provider`: `dill.loads(base64.b64decode(
props[PROVIDER_KEY]))`); dill pickles a class importable from a module by reference, i.e. as
`components.repo_commit.RepoCommitProvider`.
Moving or renaming it makes every existing stack's refresh, update and delete of its commits fail
to load. tests/test_github_api.py loads a pickled provider in a fresh process from the project root.

Binary files: Pulumi property values carry no bytes, so bytes travel base64-encoded in a separate
input, `binary_files` (path -> base64), and are committed as Git blobs byte for byte; text stays in
`files`. automation/render.py writes both into repos/<app>/ from these same inputs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

# Properties whose change means another commit: anything else (the files themselves, the
# message) is ignored once the commit exists, because from then on the content is the user's.
_IDENTITY = ("owner", "repo", "base", "branch")
_CONTENT = ("files", "binary_files")


def path_problem(path: str) -> str | None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        return "must be a relative path without '.', '..', '\\' or empty parts"
    if parts[0] == ".git":
        return "must not write into .git"
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_binary(
    files: Mapping[str, str | bytes | pulumi.Output[str]],
) -> tuple[dict[str, str | pulumi.Output[str]], dict[str, str]]:
    """Split a path -> text|bytes map into (text files, binary files as base64). Text may be an
    Output (a file naming a resource's ARN); the provider's `check` sees it resolved to str."""
    for path, content in files.items():
        if not isinstance(content, str | bytes | pulumi.Output):
            raise TypeError(
                f"file {path!r}: content must be str (text) or bytes (binary), not {type(content).__name__}"
            )
    text = {p: c for p, c in files.items() if not isinstance(c, bytes)}
    binary = {p: base64.b64encode(c).decode() for p, c in files.items() if isinstance(c, bytes)}
    return dict(sorted(text.items())), dict(sorted(binary.items()))


def decode_binary(binary: Mapping[str, str]) -> dict[str, bytes]:
    return {p: base64.b64decode(c) for p, c in binary.items()}


# Permanent: see the module docstring (existing stacks unpickle it from this module path).
class RepoCommitProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        files = news.get("files") or {}
        binary = news.get("binary_files") or {}
        if not isinstance(files, dict) or not isinstance(binary, dict) or not (files or binary):
            failures.append(CheckFailure("files", "at least one file is required"))
        else:
            for key, entries in (("files", files), ("binary_files", binary)):
                for path, content in entries.items():
                    if problem := path_problem(path):
                        failures.append(CheckFailure(key, f"{path!r} {problem}"))
                    elif not isinstance(content, str):
                        failures.append(CheckFailure(key, f"{path!r} must be a string"))
                    elif key == "binary_files" and _b64(content) is None:
                        failures.append(CheckFailure(key, f"{path!r} must be base64 (the file's bytes)"))
            for path in set(files) & set(binary):
                failures.append(CheckFailure("binary_files", f"{path!r} is also in files"))
        # The token too: without it create fails inside PyGithub, after the plan was approved.
        for key in ("owner", "repo", "base", "message", "token"):
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
            files={**props["files"], **decode_binary(props.get("binary_files") or {})},
            executable=frozenset(props.get("executable") or ()),
            message=props["message"],
            base=props["base"],
            branch=props.get("branch") or None,
            pr_title=props.get("pr_title") or "",
            pr_body=props.get("pr_body") or "",
        )
        # The files are not outputs: the state keeps the inputs anyway (pulumi/pulumi
        # pkg/resource/state.go:62-63, State.Inputs next to State.Outputs), and a chart's
        # files (binary ones base64) would be stored twice. Nothing reads them back: `diff` looks
        # only at `_IDENTITY`, and `update` returns the old outputs.
        outs = {
            **{k: v for k, v in props.items() if k not in _CONTENT},
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
    files: Mapping[str, str | bytes | pulumi.Output[str]]
    """Path -> text (str, or an Output of one) or binary (bytes) content, all in one commit."""
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
        text, binary = encode_binary(args.files)
        props = {
            "owner": args.owner,
            "repo": args.repo,
            "files": text,
            "binary_files": binary,
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
