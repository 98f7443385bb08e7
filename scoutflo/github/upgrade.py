"""An upstream upgrade that keeps the user's edits: one pull request holding a three-way merge.

The import commit of a public chart (scoutflo.github.api.commit_files on
`scoutflo/import-<chart>-<version>`) holds the upstream files exactly as the import prepared them.
An upgrade finds that record again and merges the new version into main with it as the base
(scoutflo.charts.merge): base = the upstream files the repository last took, ours = main,
theirs = the new upstream prepared exactly as an import prepares it.

Layout (docs/chart-import.md, "Upgrades"): the pull request's branch `scoutflo/upgrade-<chart>`
holds two commits on top of main:
- U, "upstream as imported": main's tree with `chart/` replaced by the new upstream files; its
  message carries `Scoutflo-Upstream: <chart> <version>`. U is the base of the next upgrade.
- M, the merge: main's tree with `chart/` replaced by the merge result (conflicts marked); its
  message is the pull request's title and body, and `Scoutflo-Commit: scoutflo/upgrade-<chart>-<version>`.
The repositories squash-merge and delete branches on merge, so U is on no branch after the merge:
GitHub keeps every pull request's head as `refs/pull/<n>/head` in the base repository, the
commits included ("Checking out pull requests locally": a pull request's head stays fetchable
after its branch is gone), and the closed pull request answers `head.sha`. The base of an upgrade
is therefore the newest commit carrying `Scoutflo-Upstream:` (or an import's `Scoutflo-Commit:`
trailer) in the history of the head of the last merged import or upgrade pull request of the
chart. An import made before upgrades existed is such a record already: its commit's `chart/`
is the upstream as imported.

An import pull request still open when a newer version comes gets the same U and M on its own
branch (the import commit is their base), never a second pull request.

Writes: tree U, commit U, tree M, commit M, the ref, the pull request (created; or updated: a
REST PATCH, or one GraphQL request that also makes it a draft) = 6, plus one blob per
binary file whose content is new to the repository (a blob GitHub has is named by its sha:
git's blob id, computed here). Safe to repeat after any single failed or lost write: trees are
content-addressed, a repeated commit is an unreferenced object, the ref write reads back (api.py
`verify`), and every run starts by looking at what exists: the branch head already being this
version's M (its trailer) skips to the pull request, whose title and body come from M's message;
an open pull request already naming this version is the end.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pygit2

from scoutflo.charts import safe_yaml
from scoutflo.charts.archive import MAX_CHART_BYTES, MAX_FILE_BYTES
from scoutflo.charts.chart_yaml import CHART_DIR
from scoutflo.charts.merge import MergeResult, merge_charts
from scoutflo.charts.plan import ANNOTATION_SOURCE, FileContent, content, shown
from scoutflo.charts.versions import parse_version
from scoutflo.github.api import (
    CommitResult,
    GitHub,
    GitHubError,
    _move_ref,
    _open_pull,
    _q,
    _ref_sha,
    branch_head,
    commit_files,
    marker_line,
)

UPSTREAM_TRAILER = "Scoutflo-Upstream"
CONFLICTS_TRAILER = "Scoutflo-Conflicts"
IMPORT_PREFIX = "scoutflo/import-"
UPGRADE_PREFIX = "scoutflo/upgrade-"
HISTORY = 100
BODY_LIMIT = 60_000
"""GitHub refuses a pull request body over 65 536 characters; lists are cut well before."""
LISTED = 40
"""Paths listed per section of the body; the Files tab has them all."""
CANDIDATES = 5
"""Merged import/upgrade pull requests looked at, newest merge first, for the chart's base."""


_PLAIN = re.compile(r"[A-Za-z0-9._+-]{1,128}")
"""Chart names (Helm's charset) and versions (semver, `v` prefix) as the title and body show them."""
_LINK = re.compile(r"https://[A-Za-z0-9._~:/@%+-]{1,400}")
_URL = re.compile(r"[a-z]+://[A-Za-z0-9._~:/@%+-]{1,400}")
"""A source shown in a code span (oci://…, a plain-HTTP mirror): nothing GitHub's Markdown reads."""


class UpgradeError(GitHubError):
    """An upgrade that cannot be proposed safely; nothing was written."""


@dataclass(frozen=True)
class Upstream:
    chart: str
    version: str
    app_version: str
    source: str
    mode: str
    """'vendor' or 'umbrella' (Chart.yaml depends on the upstream chart)."""


def upstream_of(files: Mapping[str, FileContent], where: str) -> Upstream:
    """What a prepared chart (an import's or a base's `chart/`) is, from its Chart.yaml: the
    import records `<source>/<chart>:<version>` in annotation `scoutflo.io/upstream`
    (scoutflo/charts/plan.py vendor_files and umbrella_files)."""
    raw = files.get(f"{CHART_DIR}/Chart.yaml")
    if not isinstance(raw, str):
        raise UpgradeError(0, "GET", where, f"{where}: no {CHART_DIR}/Chart.yaml as text")
    meta = safe_yaml.load(raw, f"{where}: {CHART_DIR}/Chart.yaml")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    recorded = annotations.get(ANNOTATION_SOURCE) if isinstance(annotations, dict) else None
    if not isinstance(recorded, str) or ":" not in recorded or "/" not in recorded.rsplit(":", 1)[0]:
        raise UpgradeError(
            0, "GET", where, f"{where}: Chart.yaml has no {ANNOTATION_SOURCE} annotation `<source>/<chart>:<version>`"
        )
    left, version = recorded.rsplit(":", 1)
    source, chart = left.rsplit("/", 1)
    # Both reach branch names, trailers, the title and the body: plain only (a base's Chart.yaml is
    # the user's text; a newline there would forge a trailer line of the body).
    if not (_PLAIN.fullmatch(chart) and _PLAIN.fullmatch(version)):
        raise UpgradeError(0, "GET", where, f"{where}: {ANNOTATION_SOURCE} names a chart or version that is not plain")
    deps = meta.get("dependencies") or []
    umbrella = any(isinstance(d, dict) and d.get("name") == chart for d in deps)
    app_version = meta.get("appVersion")
    # Upstream's (or the user's) text: shown only when plain.
    shown_app = "" if app_version is None else str(app_version)
    if shown_app and not _PLAIN.fullmatch(shown_app):
        shown_app = "(not plain text: see Chart.yaml)"
    return Upstream(chart, version, shown_app, source, "umbrella" if umbrella else "vendor")


def upgrade_branch(chart: str) -> str:
    return f"{UPGRADE_PREFIX}{chart}"


def version_key(chart: str, version: str) -> str:
    """The trailer key of an upgrade to one version (commit_key's form: a branch-like name)."""
    return f"{UPGRADE_PREFIX}{chart}-{version}"


def _newer(new: str, old: str) -> bool:
    try:
        return parse_version(new) > parse_version(old)
    except ValueError:
        return new != old


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: str
    mode: str
    type: str
    sha: str
    size: int = 0
    """A blob's size as the tree answers it (docs.github.com/rest/git/trees: `size` per blob)."""


def git_blob_id(data: bytes) -> str:
    """Git's id of a blob, the sha GitHub names it by (`blob <size>\\0<data>`, SHA-1)."""
    return str(pygit2.hash(data))


def _tree(gh: GitHub, r: str, commit: str) -> list[Entry]:
    tree_sha = str(gh.call("GET", f"{r}/git/commits/{commit}")["tree"]["sha"])
    tree = gh.call("GET", f"{r}/git/trees/{tree_sha}?recursive=1")
    if tree.get("truncated"):
        raise UpgradeError(0, "GET", f"{r}/git/trees", "the repository's tree is too large to read in one answer")
    return [
        Entry(e["path"], e["mode"], e["type"], e["sha"], int(e.get("size") or 0))
        for e in tree["tree"]
        if e["type"] != "tree"
    ]


def _chart_entries(entries: list[Entry]) -> dict[str, Entry]:
    return {e.path: e for e in entries if e.path.startswith(f"{CHART_DIR}/") and e.type == "blob"}


def _read_blobs(gh: GitHub, r: str, entries: list[Entry], known: dict[str, bytes]) -> dict[str, bytes]:
    """Blob contents by sha: from `known` (the new upstream's files, by their git ids) or read
    from GitHub (GET /git/blobs/{sha}, base64), each checked against its id. What is read is
    bounded as an import is (Helm's own caps, scoutflo/charts/archive.py): 5 MiB per file and
    100 MiB in all, checked on the tree's sizes before anything is read; each file is merged in
    memory."""
    wanted = {e.sha for e in entries}
    out = {sha: known[sha] for sha in wanted if sha in known}
    total = 0
    for entry in sorted({e.sha: e for e in entries if e.sha not in out}.values(), key=lambda e: e.path):
        if entry.size > MAX_FILE_BYTES:
            raise UpgradeError(
                0,
                "GET",
                f"{r}/git/trees",
                f"{entry.path} is {entry.size} bytes; an upgrade reads at most {MAX_FILE_BYTES} per file, as Helm "
                "loads a chart: make it smaller (or remove it from chart/), then run `pulumi up` again",
            )
        total += entry.size
        if total > MAX_CHART_BYTES:
            raise UpgradeError(
                0, "GET", f"{r}/git/trees", f"chart/ holds more than {MAX_CHART_BYTES} bytes to merge, Helm's cap"
            )
    for sha in sorted(wanted - set(out)):
        answer = gh.call("GET", f"{r}/git/blobs/{sha}")
        data = base64.b64decode(answer["content"]) if answer.get("encoding") == "base64" else answer["content"].encode()
        if git_blob_id(data) != sha:
            raise UpgradeError(0, "GET", f"{r}/git/blobs/{sha}", "the blob read back does not match its id")
        out[sha] = data
    return out


def _files(entries: Mapping[str, Entry], blobs: Mapping[str, bytes]) -> dict[str, FileContent]:
    return {p: content(blobs[e.sha]) for p, e in entries.items()}


@dataclass(frozen=True)
class Listed:
    """A commit as GitHub's commit list answers it (repos/commits#list-commits: `sha`,
    `commit.message`, `commit.tree.sha`)."""

    sha: str
    message: str
    tree: str


def _messages(gh: GitHub, r: str, head: str) -> list[Listed]:
    return [
        Listed(str(c["sha"]), str(c["commit"]["message"]), str((c["commit"].get("tree") or {}).get("sha") or ""))
        for c in gh.call("GET", f"{r}/commits?sha={head}&per_page={HISTORY}") or []
    ]


def _lines(message: str) -> list[str]:
    return [line.strip() for line in message.splitlines()]


@dataclass(frozen=True)
class Base:
    commit: str
    pull: int | None
    """The merged pull request it was found by (None: the upgrade branch's own U)."""
    entries: dict[str, Entry]


TREE_TRAILER = "Scoutflo-Tree"
"""The tree a commit of Scoutflo's was made with, in its own message (the tree is written before
the commit): a commit whose tree differs was rewritten (`git commit --amend` and a force-push,
keeping the message), so it is the user's, not Scoutflo's."""


def u_message(chart: str, version: str, tree: str) -> str:
    """U's message, exactly: a record is recognised by the whole message and its tree, never by a
    trailer line found anywhere (a user's `git cherry-pick -x` of U, a resolution commit quoting
    the trailer, or U amended with other content, would otherwise be taken for upstream's files
    and their edits silently dropped by the next merge: base == ours there means "unchanged by
    the user")."""
    return (
        f"Upstream {chart} {version} as an import prepares it\n\n"
        f"The base of the next upgrade; the next commit merges it with main.\n\n"
        f"{UPSTREAM_TRAILER}: {chart} {version}\n{TREE_TRAILER}: {tree}\n"
    )


def _is_record(commit: Listed, chart: str, import_branch: str | None) -> bool:
    """Whether a commit is Scoutflo's record of upstream as imported: an upgrade's U (the whole
    message, `u_message`, with the tree it names), or the import commit of `import_branch`
    (commit_files ends its message with the trailer: scoutflo/github/api.py commit_files
    `full_message`; it carries no tree, so an import commit amended in place is trusted)."""
    lines = commit.message.rstrip("\n").split("\n")
    if len(lines) >= 2 and lines[-2].strip().startswith(f"{UPSTREAM_TRAILER}: {chart} "):
        version = lines[-2].strip().rsplit(" ", 1)[1]
        return commit.message.rstrip("\n") == u_message(chart, version, commit.tree).rstrip("\n")
    return bool(import_branch) and lines[-1].strip() == marker_line(import_branch or "")


def _is_merge_commit(message: str, chart: str) -> bool:
    """Whether a commit message is an upgrade's M (its last lines, as import_or_upgrade writes them)."""
    lines = message.rstrip("\n").split("\n")
    return (
        len(lines) >= 3
        and lines[-1].startswith(marker_line(f"{UPGRADE_PREFIX}{chart}-"))
        and lines[-2].startswith(f"{CONFLICTS_TRAILER}: ")
        and lines[-3].startswith(f"{TREE_TRAILER}: ")
    )


def _is_our_merge(commit: Listed, chart: str) -> bool:
    """An M as Scoutflo made it: its message, and the tree that message names."""
    lines = commit.message.rstrip("\n").split("\n")
    return _is_merge_commit(commit.message, chart) and lines[-3] == f"{TREE_TRAILER}: {commit.tree}"


def _base_in_history(gh: GitHub, r: str, head: str, chart: str, import_branch: str | None) -> str | None:
    """The newest commit from `head` that records upstream as imported: an upgrade's U, or the
    import commit of `import_branch`."""
    for commit in _messages(gh, r, head):
        if _is_record(commit, chart, import_branch):
            return commit.sha
    return None


def _ours_pr(pr: Mapping[str, Any], owner: str) -> bool:
    label = str((pr.get("head") or {}).get("label") or "")
    return label.partition(":")[0].lower() == owner.lower()


def _last_merged_base(gh: GitHub, r: str, owner: str, chart: str, closed: list[dict[str, Any]]) -> Base | None:
    """The base recorded by the chart's last merged import or upgrade pull request."""
    merged = [
        pr
        for pr in closed
        if pr.get("merged_at")
        and _ours_pr(pr, owner)
        and (
            str(pr["head"].get("ref", "")).startswith(f"{IMPORT_PREFIX}{chart}-")
            or pr["head"].get("ref") == upgrade_branch(chart)
        )
    ]
    merged.sort(key=lambda pr: str(pr["merged_at"]), reverse=True)
    for pr in merged[:CANDIDATES]:
        ref = str(pr["head"]["ref"])
        found = _base_in_history(gh, r, str(pr["head"]["sha"]), chart, ref if ref.startswith(IMPORT_PREFIX) else None)
        if found is None:
            continue
        read = _chart_at(gh, r, found, f"{r} #{pr['number']}")
        if read is not None and read[1].chart == chart:  # `redis-` also prefixes `redis-cluster-`'s imports
            return Base(found, int(pr["number"]), read[0])
    return None


def _chart_at(gh: GitHub, r: str, sha: str, where: str) -> tuple[dict[str, Entry], Upstream] | None:
    """The chart entries of commit `sha` and the upstream its Chart.yaml names, or None when it
    has no readable Chart.yaml there (then it is no record of ours)."""
    entries = _chart_entries(_tree(gh, r, sha))
    chart_yaml = entries.get(f"{CHART_DIR}/Chart.yaml")
    if chart_yaml is None:
        return None
    blobs = _read_blobs(gh, r, [chart_yaml], {})
    try:
        return entries, upstream_of({f"{CHART_DIR}/Chart.yaml": content(blobs[chart_yaml.sha])}, where)
    except (UpgradeError, safe_yaml.UntrustedYamlError):
        return None


# --- the pull request's text ------------------------------------------------------------------


def _keys(text: FileContent | None, where: str) -> set[str] | None:
    if not isinstance(text, str):
        return set()
    try:
        data = safe_yaml.load(text, where)
    except safe_yaml.UntrustedYamlError:
        return None
    keys: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(f"{prefix}{k}")
                walk(v, f"{prefix}{k}.")

    walk(data, "")
    return keys


def _listed(paths: list[str]) -> str:
    shown_paths = [shown(p) for p in paths[:LISTED]]
    more = f" and {len(paths) - LISTED} more (see the Files tab)" if len(paths) > LISTED else ""
    return ", ".join(shown_paths) + more if paths else "none"


def upgrade_body(
    *,
    old: Upstream | None,
    new: Upstream,
    base: Base | None,
    base_version: str,
    result: MergeResult,
    since_files: Mapping[str, FileContent],
    theirs_files: Mapping[str, FileContent],
    onto: str = "the changes on `main`",
) -> str:
    """The pull request's body: from (`old`, what main last took) -> to, the source, the base
    merged against (`base_version`: main's, or the open upgrade branch's own when the user
    committed on it), what upstream changed and what became of it, the conflicts, the values
    keys upstream added or removed."""
    values = f"{CHART_DIR}/values.yaml"
    link = (
        f"<{new.source}>"
        if _LINK.fullmatch(new.source)
        else f"`{new.source}`"
        if _URL.fullmatch(new.source)
        else shown(new.source)
    )
    if old:
        head = (
            f"Upgrades the public chart **{new.chart}** from {old.version} to **{new.version}** "
            f"(appVersion {old.app_version or '–'} → {new.app_version or '–'}), merged with {onto} "
            f"({new.mode} mode)."
        )
    else:
        head = (
            f"Proposes the public chart **{new.chart} {new.version}** (appVersion {new.app_version or '–'}) "
            "over `main`."
        )
    lines = [head, "", f"- source: {link} chart `{new.chart}` version `{new.version}`"]
    if base is not None:
        where = f"#{base.pull}" if base.pull else "the first commit of this branch, under your commits on it"
        lines.append(f"- base: the upstream files of {base_version} as imported ({where}, commit `{base.commit[:12]}`)")
    else:
        lines.append(
            "- base: **none recorded** (no merged import or upgrade pull request of this chart was found): every file "
            "`main` holds that differs from upstream is a conflict to review, nothing of yours is overwritten"
        )
    conflicts = [f"{shown(c.path)} ({c.kind})" for c in result.conflicts[:LISTED]]
    more = f" and {len(result.conflicts) - LISTED} more" if len(result.conflicts) > LISTED else ""
    lines += [
        f"- files changed upstream ({len(result.changed_upstream)}): {_listed(list(result.changed_upstream))}",
        f"- taken from upstream (unchanged on `main`): {_listed(list(result.taken))}",
        f"- merged cleanly with your changes: {_listed(list(result.merged))}",
        f"- deleted on `main`, unchanged upstream (stay deleted): {_listed(list(result.kept_deleted))}",
        f"- **conflicts ({len(result.conflicts)})**: " + (", ".join(conflicts) + more if conflicts else "none"),
    ]
    if new.mode == "umbrella":
        lines.append(
            f"- values: the umbrella chart does not vendor `{new.chart}`'s values.yaml; compare it at the source"
        )
    elif old is None:
        lines.append("- values keys: no recorded base to compare upstream's values.yaml with")
    else:
        before = _keys(since_files.get(values), f"base {values}")
        after = _keys(theirs_files.get(values), f"upstream {values}")
        if before is None or after is None:
            lines.append("- values keys: a values.yaml could not be read as YAML")
        else:
            added, removed = sorted(after - before), sorted(before - after)
            lines.append(f"- values keys added upstream: {_listed(added)}")
            lines.append(f"- values keys removed upstream: {_listed(removed)}")
    if result.conflicts:
        lines += [
            "",
            "This pull request holds conflicts and is a draft (where the repository's plan has drafts). Each "
            "conflicting file is committed with "
            "standard markers (`<<<<<<< main`, `=======`, `>>>>>>> upstream`; a side deleted is empty): edit it to "
            "the version you want (or delete it), commit to this branch, then mark the pull request ready. The "
            "`lint` check fails while any marker remains.",
        ]
    lines += [
        "",
        "The first commit of this branch is upstream as an import prepares it; it is the base of the next upgrade.",
    ]
    return "\n".join(lines)[:BODY_LIMIT]


# --- writing ----------------------------------------------------------------------------------


def _tree_request(
    gh: GitHub,
    r: str,
    outside: list[Entry],
    chart: Mapping[str, FileContent],
    modes: Mapping[str, str],
    on_github: set[str],
) -> str:
    """POST /git/trees without base_tree: every entry outside `chart/` by its sha as it is, every
    chart file by its sha when GitHub has that content, else text inline and bytes as a blob
    (one write each, idempotent: a blob's sha is its content's)."""
    entries: list[dict[str, Any]] = [{"path": e.path, "mode": e.mode, "type": e.type, "sha": e.sha} for e in outside]
    for path, value in sorted(chart.items()):
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        entry: dict[str, Any] = {"path": path, "mode": modes.get(path, "100644"), "type": "blob"}
        sha = git_blob_id(data)
        if sha in on_github:
            entry["sha"] = sha
        elif isinstance(value, bytes):
            body = {"content": base64.b64encode(value).decode(), "encoding": "base64"}
            entry["sha"] = gh.call("POST", f"{r}/git/blobs", body, idempotent=True)["sha"]
            on_github.add(entry["sha"])
        else:
            entry["content"] = value
        entries.append(entry)
    return str(gh.call("POST", f"{r}/git/trees", {"tree": entries}, idempotent=True)["sha"])


def _commit(gh: GitHub, r: str, tree: str, parents: list[str], message: str) -> str:
    body = {"message": message, "tree": tree, "parents": parents}
    return str(gh.call("POST", f"{r}/git/commits", body, idempotent=True)["sha"])


def _split_message(message: str) -> tuple[str, str, bool]:
    """M's message -> (PR title, PR body with our trailer, draft)."""
    title, _, rest = message.partition("\n")
    lines = rest.strip("\n").splitlines()
    conflicts = next((line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{CONFLICTS_TRAILER}:")), "0")
    ours = (f"{CONFLICTS_TRAILER}:", f"{TREE_TRAILER}:")
    body = "\n".join(line for line in lines if not line.startswith(ours)).rstrip() + "\n"
    return title, body, conflicts != "0"


GRAPHQL = "/graphql"
"""GitHub's GraphQL endpoint beside the REST root (POST https://api.github.com/graphql,
docs.github.com/en/graphql/guides/forming-calls-with-graphql)."""

_UPDATE_TO_DRAFT = (
    "mutation($id: ID!, $title: String!, $body: String!) {"
    " update: updatePullRequest(input: {pullRequestId: $id, title: $title, body: $body}) { pullRequest { number } }"
    " draft: convertPullRequestToDraft(input: {pullRequestId: $id}) { pullRequest { isDraft } }"
    " }"
)
"""An open pull request's title and body replaced and the pull request made a draft, in ONE
request (one write, as the REST PATCH it replaces): REST "Update a pull request" takes title,
body, state, base, maintainer_can_modify and no `draft` (docs.github.com/rest/pulls/pulls
#update-a-pull-request), and GraphQL executes a mutation's top-level fields serially, in the
order written (graphql/graphql-spec spec/Section 6 -- Execution.md:158-161 "This selection set
should be executed serially", :640-641 "in serial order, starting with the first appearing
field textually"). Inputs: UpdatePullRequestInput {pullRequestId, title, body} and
ConvertPullRequestToDraftInput {pullRequestId} (octokit/graphql-schema schema.graphql:60579,
:6762; the mutations :25413, :23511). A field error does not stop the fields after it (it
nulls its own field, both payloads are nullable, and is listed in `errors`: Execution.md:898-915
"Handling Execution Errors"): the update lands even when the conversion is
refused, and a refused conversion alone is not an error of the run (the `pr` check failing on
the markers is what blocks the merge); any other refusal is raised."""


NO_DRAFTS = "Draft pull requests are not supported in this repository"
"""GitHub's 422 to POST /pulls with `draft: true` where the plan has no drafts (private
repositories on GitHub Free and Pro), quoted in SWE-agent/SWE-agent#179 and
OpenHands/OpenHands#6560; getsentry/seer#1493 falls back to a ready pull request the same way."""


def _update_pull(gh: GitHub, r: str, pr: Mapping[str, Any], *, key: str, title: str, body: str, draft: bool) -> None:
    number = int(pr["number"])
    if not (draft and not pr.get("draft")):
        gh.call("PATCH", f"{r}/pulls/{number}", {"title": title, "body": body}, idempotent=True)
        return

    def landed() -> dict[str, Any] | None:
        # An unknown outcome (5xx, a lost answer) is read back, never sent again blindly.
        now = gh.call("GET", f"{r}/pulls/{number}")
        return {} if now.get("draft") and marker_line(key) in _lines(str(now.get("body") or "")) else None

    variables = {"id": pr["node_id"], "title": title, "body": body}
    answer = gh.call("POST", GRAPHQL, {"query": _UPDATE_TO_DRAFT, "variables": variables}, verify=landed)
    errors = answer.get("errors") if isinstance(answer, dict) else None
    updated = isinstance(answer, dict) and bool((answer.get("data") or {}).get("update"))
    if errors and updated:
        # The title and body landed; only the conversion was refused (e.g. a plan without
        # drafts): the title counts the conflicts, the body lists them and the `pr` check fails
        # on their markers, which is what blocks the merge. Not worth failing the whole run for.
        return
    if errors:
        said = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
        raise UpgradeError(
            0,
            "POST",
            GRAPHQL,
            f"pull request #{number}: GitHub did not update it or make it a draft ({said}); its conflicts are "
            "listed in its body and its `pr` check fails on their markers",
        )


def _ensure_pull(
    gh: GitHub,
    *,
    owner: str,
    r: str,
    branch: str,
    base: str,
    key: str,
    head: str,
    message: str,
    open_pr: dict[str, Any] | None,
) -> CommitResult:
    title, body, draft = _split_message(message)
    if open_pr is not None:
        if marker_line(key) not in _lines(str(open_pr.get("body") or "")):
            _update_pull(gh, r, open_pr, key=key, title=title, body=body, draft=draft)
        return CommitResult(head, branch, int(open_pr["number"]), str(open_pr["html_url"]))
    request = {"title": title, "head": branch, "base": base, "body": body, "draft": draft}
    pr: dict[str, Any] | None
    try:
        pr = gh.call("POST", f"{r}/pulls", request, verify=lambda: _open_pull(gh, owner, r, branch))
    except GitHubError as err:
        if err.status != 422:
            raise
        pr = _open_pull(gh, owner, r, branch)
        if pr is None and draft and NO_DRAFTS.lower() in err.message.lower():
            # A private repository on GitHub Free or Pro has no draft pull requests (GitHub's
            # "Changing the stage of a pull request": drafts in private repositories need Team
            # or Enterprise Cloud): the refused request changed nothing; the pull request opens
            # ready, its title counts the conflicts and the `pr` check fails on their markers.
            request["draft"] = False
            try:
                pr = gh.call("POST", f"{r}/pulls", request, verify=lambda: _open_pull(gh, owner, r, branch))
            except GitHubError as again:
                if again.status != 422 or not (pr := _open_pull(gh, owner, r, branch)):
                    raise
        if pr is None:
            raise
    return CommitResult(head, branch, int(pr["number"]), str(pr["html_url"]))


def _open_import(gh: GitHub, owner: str, r: str, chart: str, branch: str) -> dict[str, Any] | None:
    """The chart's open, unmerged import pull request of another version (branch
    `scoutflo/import-<chart>-<version>`), checked by its Chart.yaml (`redis-` also prefixes
    `redis-cluster-`'s branches)."""
    prefix = f"{IMPORT_PREFIX}{chart}-"
    for pr in gh.call("GET", f"{r}/pulls?state=open&per_page={HISTORY}") or []:
        ref = str((pr.get("head") or {}).get("ref") or "")
        if pr.get("state") != "open" or not _ours_pr(pr, owner) or not ref.startswith(prefix) or ref == branch:
            continue
        read = _chart_at(gh, r, str(pr["head"]["sha"]), f"{r} #{pr['number']}")
        if read is not None and read[1].chart == chart:
            return dict(pr)
    return None


def _last_line(message: str) -> str:
    return message.rstrip("\n").split("\n")[-1].strip()


def import_or_upgrade(
    gh: GitHub,
    *,
    owner: str,
    repo: str,
    files: Mapping[str, FileContent],
    message: str,
    base: str = "main",
    branch: str,
    pr_title: str = "",
    pr_body: str = "",
) -> CommitResult:
    """The import pull request of a chart main does not have yet (commit_files, as before; an
    open import pull request of another version is updated instead, never a second one), or the
    upgrade of the one it has to the version `files` hold. Safe to repeat (module docstring)."""
    r = f"/repos/{owner}/{repo}"
    new = upstream_of(files, f"the import {branch}")
    main_head = branch_head(gh, r, base)
    closed = gh.call("GET", f"{r}/pulls?state=closed&per_page={HISTORY}") or []
    recorded = _last_merged_base(gh, r, owner, new.chart, closed)
    main_entries = _tree(gh, r, main_head)

    def import_pr() -> CommitResult:
        return commit_files(
            gh,
            owner=owner,
            repo=repo,
            files=files,
            message=message,
            base=base,
            branch=branch,
            pr_title=pr_title,
            pr_body=pr_body,
        )

    pending: dict[str, Any] | None = None
    if recorded is None and f"{CHART_DIR}/Chart.yaml" not in {e.path for e in main_entries}:
        # One open pull request per app: an import not merged yet takes the newer version on its
        # own branch (below: merged into that branch as it is, the user's commits on it kept).
        pending = _open_import(gh, owner, r, new.chart, branch)
        if pending is None:
            return import_pr()
    theirs_known = {git_blob_id(v if isinstance(v, bytes) else v.encode()): v for v in files.values()}
    known_bytes = {sha: (v if isinstance(v, bytes) else v.encode()) for sha, v in theirs_known.items()}
    old: Upstream | None = None
    base_files: dict[str, FileContent] = {}
    if recorded is not None:
        base_blobs = _read_blobs(gh, r, list(recorded.entries.values()), known_bytes)
        base_files = _files(recorded.entries, base_blobs)
        old = upstream_of(base_files, f"{r} base {recorded.commit[:12]}")
        if not _newer(new.version, old.version):
            # Main took this version (or a newer one) already: nothing to propose.
            return CommitResult(main_head, base, created=False)
    key = version_key(new.chart, new.version)
    upgrade = upgrade_branch(new.chart)
    for pr in closed:
        if (
            pending is None
            and _ours_pr(pr, owner)
            and (pr.get("head") or {}).get("ref") == upgrade
            and not pr.get("merged_at")
            and marker_line(key) in _lines(str(pr.get("body") or ""))
        ):
            # Closed without merging: the user declined this version; it is not proposed again.
            return CommitResult(
                str(pr["head"].get("sha") or main_head), upgrade, int(pr["number"]), str(pr["html_url"]), created=False
            )
    open_pr: dict[str, Any] | None
    if pending is not None:
        upgrade, open_pr = str(pending["head"]["ref"]), pending
    else:
        open_pr = _open_pull(gh, owner, r, upgrade)
    head = _ref_sha(gh, r, upgrade)
    if pending is not None and head is None:
        # The import's branch is gone (GitHub closes its pull request): a fresh import.
        return import_pr()
    history = _messages(gh, r, head) if head else []
    # The branch's newest merge only: an older version's M further down (the catalog's range
    # lowered after a newer version was proposed) is not this proposal; answering with it would
    # give the pull request that version's title over the newer version's tree.
    newest = next((c.message for c in history if _is_merge_commit(c.message, new.chart)), None)
    done = newest if newest is not None and _last_line(newest) == marker_line(key) else None
    if done is not None:
        # This version's merge is on the branch already (a run whose ref write or pull request
        # failed, or whose answer was lost; or the user's commits on top of it): only the pull
        # request may be missing or stale. (Main's history below the branch cannot hold this
        # key: a merged upgrade to this version made it main's version, answered above.)
        return _ensure_pull(
            gh,
            owner=owner,
            r=r,
            branch=upgrade,
            base=base,
            key=key,
            head=head or "",
            message=done,
            open_pr=open_pr,
        )
    # U's parents. A new branch starts on main. Over an older version's M (Scoutflo's own head),
    # U also has that head as a parent, so the move is a fast-forward and never forced: a commit
    # pushed to the branch meanwhile makes it fail ("not a fast forward") instead of being dropped,
    # and the re-run builds on it. Main first, so the pull request's diff is against main's head.
    on_main = {c.sha for c in _messages(gh, r, main_head)} if history else set()
    if head is None:
        parents = [main_head]
    elif main_head in {c.sha for c in history}:
        parents = [head]
    else:
        parents = [main_head, head]
    ours_entries = main_entries
    base_record, base_version, since_files = recorded, old.version if old else "", base_files
    # The user's commits anywhere on the branch (not only at its head: under an older run's M too,
    # e.g. a conflict resolved before a newer version came). Rebuilding from main would leave them
    # in the history but drop their content from the tree; they are merged into instead. A commit
    # counts as Scoutflo's only by its whole message (u_message, M's last two lines).
    users = [
        c.sha
        for c in history
        if c.sha not in on_main and not (_is_record(c, new.chart, None) or _is_our_merge(c, new.chart))
    ]
    prior: Upstream | None = None
    if pending is not None or users:
        if open_pr is None:
            raise UpgradeError(
                409,
                "GET",
                f"{r}/git/ref/heads/{upgrade}",
                f"branch {upgrade!r} holds commits that are not Scoutflo's and no open pull request: it is not ours to "
                "change; merge, rename or delete it, then run `pulumi up` again",
            )
        # Merge into the branch as the user left it, against the upstream it was built on.
        found = _base_in_history(gh, r, head or "", new.chart, upgrade if pending is not None else None)
        if found is None:
            # Rewritten (a force-push without Scoutflo's first commit): there is no base to merge
            # the new version into the user's branch with, and guessing one could drop their edits.
            raise UpgradeError(
                409,
                "GET",
                f"{r}/commits",
                f"branch {upgrade!r} no longer holds Scoutflo's first commit (upstream as imported), so a newer "
                "version cannot be merged into it safely: merge or close its pull request (a closed one declines "
                "that version; the next is proposed), delete the branch, then run `pulumi up` again",
            )
        entries = _chart_entries(_tree(gh, r, found))
        base_files = _files(entries, _read_blobs(gh, r, list(entries.values()), known_bytes))
        base_record = Base(found, None, entries)
        prior = upstream_of(base_files, f"{r} base {found[:12]}")
        base_version = prior.version
        parents = [head or ""]
        ours_entries = _tree(gh, r, head or "")
        if pending is not None:
            since_files = base_files
    ours_chart = _chart_entries(ours_entries)
    ours_files = _files(ours_chart, _read_blobs(gh, r, list(ours_chart.values()), known_bytes))
    result = merge_charts(base_files, ours_files, dict(files), their_label=f"upstream {new.version}")
    body = upgrade_body(
        old=old if pending is None else prior,
        new=new,
        base=base_record,
        base_version=base_version,
        result=result,
        since_files=since_files,
        theirs_files=files,
        onto="the changes on `main`" if pending is None else "this import pull request's branch",
    )
    if pending is not None:
        title = pr_title or f"Import {new.chart} {new.version}"
        body = f"{pr_body.rstrip()}\n\n{body}"[:BODY_LIMIT] if pr_body else body
    elif old:
        title = f"Upgrade {new.chart} {old.version} → {new.version}"
    else:
        title = f"Propose {new.chart} {new.version} (no recorded base)"
    if result.conflicts:
        title += f" ({len(result.conflicts)} conflict{'' if len(result.conflicts) == 1 else 's'})"
    outside = [e for e in ours_entries if not e.path.startswith(f"{CHART_DIR}/")]
    modes = {p: e.mode for p, e in ours_chart.items()}
    on_github = {e.sha for e in ours_entries} | {e.sha for e in (base_record.entries.values() if base_record else ())}
    # U is upstream exactly as an import writes it (every chart file 100644: commit_files with no
    # `executable`), never with the modes of main's files (a user's symlink or +x there).
    tree_u = _tree_request(gh, r, outside, files, {}, on_github)
    commit_u = _commit(gh, r, tree_u, parents, u_message(new.chart, new.version, tree_u))
    tree_m = _tree_request(gh, r, outside, result.files, modes, on_github)
    m_message = (
        f"{title}\n\n{body}\n\n{TREE_TRAILER}: {tree_m}\n{CONFLICTS_TRAILER}: {len(result.conflicts)}\n"
        f"{marker_line(key)}\n"
    )
    commit_m = _commit(gh, r, tree_m, [commit_u], m_message)
    path = f"{r}/git/refs/heads/{_q(upgrade)}"

    def move() -> None:
        if head is None:
            try:
                gh.call(
                    "POST",
                    f"{r}/git/refs",
                    {"ref": f"refs/heads/{upgrade}", "sha": commit_m},
                    verify=lambda: {} if _ref_sha(gh, r, upgrade) == commit_m else None,
                )
            except GitHubError as err:
                if err.status != 422 or _ref_sha(gh, r, upgrade) != commit_m:
                    raise
        else:
            gh.call(
                "PATCH",
                path,
                {"sha": commit_m, "force": False},
                verify=lambda: {} if _ref_sha(gh, r, upgrade) == commit_m else None,
            )

    _move_ref(gh, method="POST" if head is None else "PATCH", owner=owner, repo=repo, branch=upgrade, write=move)
    return _ensure_pull(
        gh, owner=owner, r=r, branch=upgrade, base=base, key=key, head=commit_m, message=m_message, open_pr=open_pr
    )
