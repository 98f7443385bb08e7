"""Turning a fetched public chart into the files of one import pull request.

`vendor` (default): the upstream files, `name` set to the app (ECR repo name == chart name),
`version` starting our own line, `appVersion` kept, upstream recorded in annotations and the PR.
Vendored subcharts (`charts/*.tgz`, at any depth) are unpacked into `charts/<name>/` under the
same budget as the chart, so the tree is reviewable and `helm lint`/`helm template` work offline.
`umbrella`: our own small chart depending on the upstream one at the resolved version
(`Chart.yaml` dependency + `Chart.lock`); values nest under the dependency, an upgrade is a
one-line bump.

`ImportPlan.files` maps a path to `str` for text (valid UTF-8 without NUL) and to `bytes` for
anything else, byte for byte (kube-prometheus-stack's `charts/crds/files/crds.bz2`). Every path is
checked here for what Git and the checkouts of its users can hold, so a bad name fails before any
resource is registered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoutflo.charts.archive import Budget, name_problem, read_chart
from scoutflo.charts.chart_yaml import (
    chart_name_problem,
    dump_for_helm,
    read_metadata,
    set_identity,
    version_problem,
    yaml_scalar,
)
from scoutflo.charts.errors import ArchiveError
from scoutflo.charts.fetch import FetchedChart
from scoutflo.repo_files import CHART_DIR, INITIAL_VERSION

ANNOTATION_SOURCE = "scoutflo.io/upstream"
ANNOTATION_DIGEST = "scoutflo.io/upstream-digest"
# Helm writes the time into Chart.lock; a fixed value keeps the import byte-identical per version.
LOCK_GENERATED = "1970-01-01T00:00:00Z"

FileContent = str | bytes


@dataclass(frozen=True)
class ImportPlan:
    branch: str
    title: str
    body: str
    files: dict[str, FileContent]
    """path -> str (UTF-8 text without NUL) or bytes (binary, byte for byte)."""


def branch_name(chart: str, version: str) -> str:
    # Both parts are checked (Helm's chart charset, semver); '..' and '@{' would still make an
    # invalid Git ref (git-check-ref-format), '.lock' cannot end it because the version follows.
    for part in (chart, version):
        if ".." in part or "@{" in part:
            raise ArchiveError(f"{part!r} cannot be part of a Git branch name")
    return f"scoutflo/import-{chart}-{version}"


def content(data: bytes) -> FileContent:
    """Text when it is UTF-8 without NUL (what Git and GitHub treat as text), else the bytes."""
    if b"\0" in data:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def tree_problems(paths: list[str]) -> list[str]:
    """What a Git tree, and checkouts on case-insensitive file systems, cannot hold."""
    problems: list[str] = []
    files = set(paths)
    folded: dict[str, str] = {}
    for path in sorted(paths):
        parts = path.split("/")
        if problem := name_problem(path):
            problems.append(f"{path!r} {problem}")
        elif not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            problems.append(f"{path!r} must be a relative path without '.', '..', '\\' or empty parts")
        elif any(p.lower() == ".git" for p in parts):
            problems.append(f"{path!r} writes into .git")
        # Git stores any length, but a checkout (CI's actions/checkout, a user's clone) fails on
        # Linux and macOS with ENAMETOOLONG: NAME_MAX 255 bytes per name, PATH_MAX 4096 per path.
        elif any(len(p.encode()) > 255 for p in parts):
            problems.append(f"{path[:80]!r}...: a name is longer than 255 bytes")
        elif len(path.encode()) > 4096 - 256:
            problems.append(f"{path[:80]!r}...: the path is longer than 4096 bytes with a checkout's prefix")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                problems.append(f"{'/'.join(parts[:i])!r} is both a file and a directory")
        other = folded.setdefault(path.casefold(), path)
        if other != path:
            problems.append(f"{other!r} and {path!r} differ only in case")
    return problems


def _unpack(prefix: str, files: Mapping[str, bytes], budget: Budget, depth: int, notes: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    subcharts: dict[str, str] = {}  # Chart.yaml name -> where it came from

    def claim(name: str, where: str) -> None:
        if name in subcharts:
            raise ArchiveError(f"{prefix}charts/: two subcharts named {name!r} ({subcharts[name]} and {where})")
        subcharts[name] = where

    def live(entry: str) -> bool:
        # Helm skips charts/ entries named _* or .* (helm/helm pkg/chart/v2/loader/load.go:175):
        # they stay files, as upstream shipped them, never unpacked into a live subchart.
        return not entry.startswith(("_", "."))

    for path, data in sorted(files.items()):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "charts" and parts[2] == "Chart.yaml" and live(parts[1]):
            meta = read_metadata(data, f"{prefix}{path}")
            claim(str(meta["name"]), f"{prefix}charts/{parts[1]}/")
    for path, data in sorted(files.items()):
        if path.startswith("charts/") and path.endswith(".tgz") and path.count("/") == 1 and live(path[7:]):
            if depth >= budget.max_depth:
                raise ArchiveError(f"{prefix}{path}: subcharts nested deeper than {budget.max_depth} levels")
            try:
                _top, sub = read_chart(data, budget=budget)
            except ArchiveError as err:
                raise ArchiveError(f"{prefix}{path}: {err}") from None
            name = str(read_metadata(sub["Chart.yaml"], f"{prefix}{path}: Chart.yaml")["name"])
            claim(name, f"{prefix}{path}")
            notes.append(f"`{prefix}{path}` unpacked into `{prefix}charts/{name}/`")
            unpacked = _unpack(f"{prefix}charts/{name}/", sub, budget, depth + 1, notes)
            # charts/<name>/ may already hold a directory subchart of another name: never merge.
            taken = {prefix + p for p in files} | set(out)
            if clash := sorted(taken & set(unpacked)):
                raise ArchiveError(f"{prefix}{path}: unpacking into {prefix}charts/{name}/ would overwrite {clash[0]}")
            out.update(unpacked)
        else:
            out[prefix + path] = data
    return out


def _checked(files: dict[str, FileContent]) -> dict[str, FileContent]:
    problems = tree_problems(list(files))
    if problems:
        raise ArchiveError("the chart cannot be committed: " + "; ".join(problems[:5]))
    return files


def vendor_files(app: str, fetched: FetchedChart) -> tuple[dict[str, FileContent], list[str]]:
    budget = Budget()
    top, files = read_chart(fetched.archive, budget=budget)
    notes = [f"`Chart.yaml`: `name` {top} → {app}, `version` → {INITIAL_VERSION} (our own line); `appVersion` kept"]
    tree = _unpack("", files, budget, 0, notes)
    planned: dict[str, FileContent] = {path: content(data) for path, data in tree.items()}
    planned["Chart.yaml"] = set_identity(
        tree["Chart.yaml"],
        f"{fetched.chart} {fetched.version}: Chart.yaml",
        name=app,
        version=INITIAL_VERSION,
        annotations={
            ANNOTATION_SOURCE: f"{fetched.source}/{fetched.chart}:{fetched.version}",
            ANNOTATION_DIGEST: fetched.digest,
        },
    )
    return _checked({f"{CHART_DIR}/{path}": data for path, data in planned.items()}), notes


def helm_lock_digest(requested: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    """Helm's `resolver.HashReq`: sha256 of Go's JSON of [requested, locked] dependencies.

    `helm dependency build` refuses a Chart.lock whose digest differs ("out of sync").
    """

    def go(dep: Mapping[str, Any]) -> dict[str, Any]:
        # Field order and omitempty of helm's chart.Dependency struct.
        out: dict[str, Any] = {"name": dep["name"]}
        if dep.get("version"):
            out["version"] = dep["version"]
        out["repository"] = dep["repository"]
        for key in ("condition", "tags", "enabled", "import-values", "alias"):
            if dep.get(key):
                out[key] = dep[key]
        return out

    data = json.dumps([[go(d) for d in requested], [go(d) for d in locked]], separators=(",", ":"))
    # Go's encoder escapes <, > and & in strings.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def umbrella_files(app: str, fetched: FetchedChart, description: str) -> tuple[dict[str, FileContent], list[str]]:
    _, files = read_chart(fetched.archive, budget=Budget())
    upstream = read_metadata(files["Chart.yaml"], f"{fetched.chart} {fetched.version}: Chart.yaml")
    dependency = {"name": fetched.chart, "version": fetched.version, "repository": fetched.source}
    chart: dict[str, Any] = {
        "apiVersion": "v2",
        "name": app,
        "description": description,
        "type": "application",
        "version": INITIAL_VERSION,
    }
    if upstream.get("appVersion") is not None:
        chart["appVersion"] = str(upstream["appVersion"])
    chart["dependencies"] = [dependency]
    chart["annotations"] = {
        ANNOTATION_SOURCE: f"{fetched.source}/{fetched.chart}:{fetched.version}",
        ANNOTATION_DIGEST: fetched.digest,
    }
    lock = {
        "dependencies": [dependency],
        "digest": helm_lock_digest([dependency], [dependency]),
        "generated": LOCK_GENERATED,
    }
    values = (
        f"# Values for the {fetched.chart} chart go under its name; Argo CD adds the stack's values.\n"
        f"{yaml_scalar(fetched.chart)}: {{}}\n"
    )
    tree: dict[str, FileContent] = {
        "Chart.yaml": dump_for_helm(chart),
        "Chart.lock": dump_for_helm(lock),
        "values.yaml": values,
        ".helmignore": "# Patterns to ignore when building packages.\n.git/\n*.tgz.prov\n",
    }
    notes = [
        f"umbrella chart `{app}` {INITIAL_VERSION} depending on `{fetched.chart}` {fetched.version}",
        "to upgrade, bump the dependency's version in `Chart.yaml` and run `helm dependency update chart`",
    ]
    return {f"{CHART_DIR}/{path}": data for path, data in tree.items()}, notes


def plan_import(*, app: str, mode: str, fetched: FetchedChart, constraint: str, description: str) -> ImportPlan:
    if problem := chart_name_problem(fetched.chart):
        raise ArchiveError(f"chart name {problem}")
    if problem := version_problem(fetched.version):
        raise ArchiveError(f"chart {fetched.chart}: version {problem}")
    branch = branch_name(fetched.chart, fetched.version)
    if mode == "umbrella":
        files, notes = umbrella_files(app, fetched, description)
    else:
        files, notes = vendor_files(app, fetched)
    binary = sorted(path for path, data in files.items() if isinstance(data, bytes))
    if binary:
        notes.append("binary files, committed byte for byte: " + ", ".join(f"`{p}`" for p in binary[:10]))
    body = "\n".join(
        [
            f"Imports the public chart **{fetched.chart} {fetched.version}** as `{app}` ({mode} mode).",
            "",
            f"- source: `{fetched.source}` chart `{fetched.chart}`",
            f"- version: `{fetched.version}` (newest match of `{constraint}`)",
            f"- digest: `{fetched.digest}` (verified before import)",
            f"- files: {len(files)}",
            "",
            "What changed from upstream:",
            *[f"- {note}" for note in notes],
            "",
            "Merging releases the chart to ECR; Argo CD deploys it. After the merge the chart is yours:",
            "Scoutflo proposes newer upstream versions as new pull requests and never rewrites main.",
        ]
    )
    return ImportPlan(
        branch=branch,
        title=f"Import {fetched.chart} {fetched.version}",
        body=body + "\n",
        files=files,
    )


def application_values(mode: str, chart: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as the Application passes them: under the dependency's name for an umbrella chart."""
    if mode == "umbrella" and values:
        return {chart: dict(values)}
    return dict(values)


def plan_imports(apps: Any, fetcher: Any) -> dict[str, ImportPlan]:
    """Fetch, verify and plan every public app's import, before any resource is registered:
    a hostile or unreachable chart stops the program with nothing written or registered."""
    plans = {}
    for app in apps:
        src = app.entry.source
        if src.kind == "template":
            continue
        fetched = fetcher.fetch(src.repo, src.chart, app.version, plain_http=src.plain_http)
        plans[app.name] = plan_import(
            app=app.name, mode=app.mode, fetched=fetched, constraint=app.version, description=app.entry.description
        )
    return plans
