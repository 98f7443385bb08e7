"""RepoCommit: many files as one commit (and optionally one pull request) through a dynamic provider.

The GitHub provider has no multi-file commit resource, so this one calls the Git Data API
(scoutflo.github.api). What lands belongs to the user: changed file contents never rewrite it
(the diff ignores them); only a new branch (a new import) makes a new commit, and deleting the
resource leaves the repository untouched.

THIS MODULE'S PATH AND `RepoCommitProvider`'S NAME ARE PERMANENT. Pulumi pickles the provider
instance (dill) into every RepoCommit's state as `__provider`, and the dynamic provider host
unpickles it from the state in a fresh process started in the project directory (pulumi/pulumi
sdk/python/lib/pulumi/dynamic/__main__.py:45-69, `get_provider`: `dill.loads(base64.b64decode(
props[PROVIDER_KEY]))`); dill pickles a class importable from a module by reference, i.e. as
`components.repo_commit.RepoCommitProvider`.
Moving or renaming it makes every existing stack's refresh, update and delete of its commits fail
to load. tests/test_github_api.py loads a pickled provider in a fresh process from the project root;
tests/test_dynamic_host.py runs both providers in the real host (`python -m pulumi.dynamic`) over gRPC.

Binary files: Pulumi property values carry no bytes, so bytes travel base64-encoded in a separate
input, `binary_files` (path -> base64), and are committed as Git blobs byte for byte; text stays in
`files`. automation/render.py writes both into repos/<app>/ from these same inputs.

Previews: inputs derived from resources not created yet (the CI role's ARN inside
`ci/settings.env`, the repository's `repo_id`) reach `check` and `diff` unknown. The engine sends
them as the sentinel string (pulumi/pulumi at 1b5949891b3c, pkg/resource/plugin/rpc.go:190-211:
MarshalPropertyValue keeps a computed or unknown output as UnknownStringValue when KeepUnknowns,
which Check and Diff set in a preview: provider_plugin.go:1190-1213, 1317-1350; step_generator.go
:1272 allowUnknowns = DryRun), and the Python host, which deserializes Check's and Diff's
properties with keep_unknowns (dynamic/__main__.py:115-116, 183-184), hands them over as
`pulumi.output.Unknown` instances (runtime/rpc.py:1140-1141; Python line numbers are the pinned
SDK 3.272.0's). `check` accepts them wherever a preview can have them and stays as strict as ever
on known values. Create, Update, Read and Delete never see one: the engine does not call Create
or Update in a preview of a provider without preview support (provider_plugin.go:1442-1444,
1718-1719), and leaves unknowns out of every request outside a preview (rpc.go:190-200).

The repository's identity: `repo_id` (AppRepository's GitHub id) is an input. A repository deleted
on GitHub and created again by the next `pulumi up` (after `pulumi refresh` dropped it) has a new
id, and the commit is replaced: the scaffold lands on the new repository instead of leaving it
empty. `read` (`pulumi refresh`) answers gone when the repository is gone or its name now leads to
another one, which covers states recorded before `repo_id` existed too.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

# Properties whose change means another commit: anything else (the files themselves, the
# message) is ignored once the commit exists, because from then on the content is the user's.
# `repo_id` is identity too, when both sides have one (`_repo_changed`).
_IDENTITY = ("owner", "repo", "base", "branch")
_CONTENT = ("files", "binary_files")
_REQUIRED = ("owner", "repo", "base", "message", "token")
# Recorded, never written to GitHub: a new token is an update of the state alone, because
# `read` (`pulumi refresh`) calls GitHub with the state's token, and a rotated-out one fails.
_RECORDED = ("token", "api_url")


def is_unknown(value: Any) -> bool:
    """A value a preview does not know yet: the Python dynamic-provider host deserializes the
    engine's unknown sentinel into a `pulumi.output.Unknown` for Check and Diff (pulumi
    sdk/python/lib/pulumi/runtime/rpc.py:1140-1141, keep_unknowns from dynamic/__main__.py:115-116,
    183-184)."""
    return isinstance(value, Unknown)


def _differs(old: Any, new: Any) -> bool:
    """An unknown new value may be anything: a change (the conservative answer, which the engine
    takes for a replacement when the key is identity)."""
    return is_unknown(old) or is_unknown(new) or old != new


def repo_id_of(value: Any) -> int | None:
    """A GitHub repository id as the state holds it (a protobuf Struct number, so a float), or
    None when it is not one (bool, fraction, zero or negative, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value) if value > 0 else None


def _repo_changed(old: Any, new: Any) -> bool:
    """Whether the commit's repository is another one. No id on either side is no evidence: a
    state recorded before `repo_id` was an input (its next `up` must not replace the commit,
    and its refresh records the id, `read`), or a commit given none. An unknown new id means
    AppRepository is being created in this preview, which happens only when the program's
    look-up found no repository (components/chart_repo.py passes a found one's id as a known
    input), so it will be a new one: a replacement, as the `up` that follows decides."""
    if old is None or new is None:
        return False
    return is_unknown(new) or repo_id_of(old) != repo_id_of(new)


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
    Output (a file naming a resource's ARN); the provider's `check` sees it as a str at `up`, and
    unknown in a preview while that resource is yet to be created (module docstring)."""
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
        """Every known value as strictly as at `up`; an unknown one (a preview: module docstring)
        is accepted, and checked by the Check of the `up` that knows it (the engine checks again,
        step_generator.go:1320-1345). The inputs go back unchanged, unknowns included: the host
        serializes an Unknown as the sentinel again (runtime/rpc.py:469, serialize_property
        `is_unknown`), so the engine keeps them unknown."""
        failures = []
        files = news.get("files") or {}
        binary = news.get("binary_files") or {}
        # A whole map unknown may hold files: only known entries are checked, and known maps
        # that are both empty are an error.
        maps = {"files": {} if is_unknown(files) else files, "binary_files": {} if is_unknown(binary) else binary}
        some_unknown = is_unknown(files) or is_unknown(binary)
        if not all(isinstance(m, dict) for m in maps.values()) or not (some_unknown or any(maps.values())):
            failures.append(CheckFailure("files", "at least one file is required"))
        else:
            for key, entries in maps.items():
                for path, content in entries.items():
                    if problem := path_problem(path):
                        failures.append(CheckFailure(key, f"{path!r} {problem}"))
                    elif is_unknown(content):
                        continue  # e.g. ci/settings.env naming the CI role before the role exists
                    elif not isinstance(content, str):
                        failures.append(CheckFailure(key, f"{path!r} must be a string"))
                    elif key == "binary_files" and _b64(content) is None:
                        failures.append(CheckFailure(key, f"{path!r} must be base64 (the file's bytes)"))
            for path in set(maps["files"]) & set(maps["binary_files"]):
                failures.append(CheckFailure("binary_files", f"{path!r} is also in files"))
        # The token too: without it create fails inside PyGithub, after the plan was approved.
        for key in _REQUIRED:
            if not is_unknown(news.get(key)) and not news.get(key):
                failures.append(CheckFailure(key, f"{key} is required"))
        repo_id = news.get("repo_id")
        if repo_id is not None and not is_unknown(repo_id) and repo_id_of(repo_id) is None:
            failures.append(
                CheckFailure(
                    "repo_id", f"repo_id must be the repository's GitHub id (a positive integer), not {repo_id!r}"
                )
            )
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from scoutflo.github.api import API, GitHub, commit_files

        gh = GitHub(props["token"], api=props.get("api_url") or API)
        files = {**props["files"], **decode_binary(props.get("binary_files") or {})}
        if props.get("upgrade") and props.get("branch"):
            # A public chart's import: the first one is the import PR as below; once main has the
            # chart, a newer upstream version is a three-way merge with the user's edits
            # (scoutflo/github/upgrade.py), never upstream's files over theirs.
            from scoutflo.github.upgrade import import_or_upgrade

            result = import_or_upgrade(
                gh,
                owner=props["owner"],
                repo=props["repo"],
                files=files,
                message=props["message"],
                base=props["base"],
                branch=props["branch"],
                pr_title=props.get("pr_title") or "",
                pr_body=props.get("pr_body") or "",
            )
        else:
            result = commit_files(
                gh,
                owner=props["owner"],
                repo=props["repo"],
                files=files,
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
        """`olds` are the state's outputs (the host passes DiffRequest.olds, dynamic/__main__.py:115,
        which the engine fills with the old outputs, provider_plugin.go:1357-1365), `news` the
        checked inputs, unknowns included in a preview. An unknown identity key is a replacement
        (`_differs`); the host answers DIFF_SOME with these replaces (dynamic/__main__.py:122-135)
        and the engine plans a create-before-delete replacement, re-checking the inputs without
        olds (step_generator.go:2003-2022). A refresh diffs too, with the refreshed outputs as
        `olds` and the old inputs as `news` (pkg/resource/deploy/step.go:1699-1708)."""
        replaces = [key for key in _IDENTITY if _differs(olds.get(key) or "", news.get(key) or "")]
        if _repo_changed(olds.get("repo_id"), news.get("repo_id")):
            replaces.append("repo_id")
        recorded = [key for key in _RECORDED if _differs(olds.get(key) or "", news.get(key) or "")]
        return DiffResult(changes=bool(replaces or recorded), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """No GitHub write: the new token (and API root) is recorded for the next refresh, and a
        state recorded before `repo_id` was an input takes it now."""
        recorded = {key: news[key] for key in (*_RECORDED, "repo_id") if news.get(key) is not None}
        return UpdateResult({**olds, **recorded})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: the commit is gone when its repository is, or when the name now leads
        to another repository than the recorded `repo_id` (deleted, the name reused). An empty id
        drops it from the state (pulumi/pulumi pkg/resource/deploy/step.go:1616-1620), so the next
        `up` commits the pipeline again to the repository AppRepository creates, instead of
        leaving it empty. A repository still there records its id (states from before `repo_id`
        was an input), which makes the commit's identity whole from then on. `props` are the
        state's outputs (ReadRequest.properties, step.go:1580-1586; dynamic/__main__.py:233).

        The commit itself is not looked for, on purpose: once landed it is the user's. An import
        PR squash-merged (its branch deleted on merge, its commit on no branch), a PR closed
        unmerged, the scaffold's files edited, removed or reverted, `main` rewritten: each is the
        user's decision, and a commit dropped from the state would be made again by the next
        `up`, undoing it: commit_files looks for its trailer among the newest commits of the
        branch only (scoutflo.github.api._find_marked, one page), so it re-proposes a PR closed unmerged,
        and once the scaffold commit is past that page (or `main` was rewritten) commits again
        every scaffold file the user no longer has. Only a repository gone (or another one) means the
        pipeline was lost rather than changed."""
        from scoutflo.github.api import API, GitHub
        from scoutflo.github.repository import refresh_repository

        owner, name = props["owner"], props["repo"]
        gh = GitHub(props["token"], api=props.get("api_url") or API)
        repo = refresh_repository(gh, owner, name, f"the commit to {owner}/{name}")
        recorded = props.get("repo_id")
        if repo is None or (recorded is not None and repo_id_of(recorded) != int(repo["id"])):
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "repo_id": int(repo["id"])})

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
    repo_id: pulumi.Input[int] | None = None
    """The repository's GitHub id (AppRepository.repo_id): another id (the repository deleted and
    created again) replaces the commit, so the files land on the new repository."""
    upgrade: bool = False
    """A public chart's import (`files` as scoutflo/charts/plan.py prepares them): once main holds
    the chart, a new version (a new `branch`, so a replacement) is proposed as a three-way merge
    with the user's edits (scoutflo/github/upgrade.py) instead of upstream's files."""


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
            "repo_id": args.repo_id,
            "upgrade": args.upgrade,
            "commit_sha": None,
            "pull_request_url": None,
            "github_writes": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["token"]))
        super().__init__(RepoCommitProvider(), name, props, opts)
