"""Turning a fetched public chart into the files of one import pull request.

`vendor` (default): the upstream files, `name` set to the app (ECR repo name == chart name),
`version` starting our own line, `appVersion` kept, upstream recorded in annotations and the PR.
Every packed subchart Helm would load is unpacked into `charts/<name>/` under the same budget and
checks as the chart: `charts/*.tgz` of the chart and of every subchart, packed or directory, at
any depth (Helm loads a directory subchart's own `charts/*.tgz` too). What the pull request shows
as text is then everything Helm renders; no template arrives inside a binary file.
`umbrella`: our own small chart depending on the upstream one at the resolved version
(`Chart.yaml` dependency + `Chart.lock`) and the sha256 of the archive reviewed here
(`dependencies.sha256`), which the app repo's `ci/dependencies` checks at every release; values
nest under the dependency, an upgrade is a one-line bump.

`ImportPlan.files` maps a path to `str` for text (valid UTF-8 without NUL) and to `bytes` for
anything else, byte for byte (kube-prometheus-stack's `charts/crds/files/crds.bz2`). Every path is
checked here for what Git and the checkouts of its users can hold, so a bad name fails before any
resource is registered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoutflo.charts.archive import Budget, FileNameError, fold_name, name_problem, read_chart
from scoutflo.charts.chart_yaml import (
    CHART_DIR,
    INITIAL_VERSION,
    chart_name_problem,
    dump_for_helm,
    read_metadata,
    set_identity,
    version_problem,
    yaml_scalar,
)
from scoutflo.charts.errors import ArchiveError
from scoutflo.charts.fetch import FetchedChart, sha256

ANNOTATION_SOURCE = "scoutflo.io/upstream"
ANNOTATION_DIGEST = "scoutflo.io/upstream-digest"
# Helm writes the time into Chart.lock; a fixed value keeps the import byte-identical per version.
LOCK_GENERATED = "1970-01-01T00:00:00Z"
DIGESTS_FILE = "dependencies.sha256"
"""Next to Chart.lock in an umbrella chart: `<name> <version> sha256:<hex>` per dependency, the
archive's own digest. Chart.lock's `digest` hashes the requirements only (helm/helm
internal/resolver/resolver.go:213 HashReq, checked at pkg/downloader/manager.go:123), and
`helm dependency build` writes whatever the repository serves (chart_downloader.go:151-168, no
check of the bytes): ci/dependencies compares each download with this file."""
# Names shown in the pull request's body: only characters GitHub's Markdown gives no meaning to
# (no `@` mention, `#` reference, `:` link, space for a closing keyword, backtick ending the span).
_SHOWN = re.compile(r"[A-Za-z0-9._/+-]{1,200}")

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
        elif any(fold_name(p) == ".git" for p in parts):
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
        # Not case alone: `é` and `e` + U+0301 are one file on macOS (fold_name).
        other = folded.setdefault(fold_name(path), path)
        if other != path:
            problems.append(
                f"{other!r} and {path!r} differ only in case or Unicode normalization: one file on"
                " case-insensitive or normalizing file systems"
            )
    return problems


def shown(name: str) -> str:
    """A name from the archive as the pull request's body shows it: in a code span when it holds
    only plain characters, else a placeholder (the Files tab lists every file by its name)."""
    if _SHOWN.fullmatch(name):
        return f"`{name}`"
    return f"(a name of {len(name)} characters, not all plain: see the Files tab)"


def _unpack(prefix: str, files: Mapping[str, bytes], budget: Budget, depth: int, notes: list[str]) -> dict[str, bytes]:
    """One chart's files with every subchart Helm would load from them made reviewable.

    Helm groups the files under `charts/` by their first name (helm/helm pkg/chart/v2/loader/
    load.go:149-157), skips names starting with `_` or `.` (:175), loads `<n>.tgz` as an archive
    (:177-183) and any other name as a directory chart through LoadFiles itself (:184-196), which
    does the same with that chart's own `charts/`: a `.tgz` in a directory subchart, at any depth,
    is rendered. Each one is read here under the import's budget and checks and unpacked into
    `charts/<name>/`, and every live directory subchart is walked the same way.
    """
    out: dict[str, bytes] = {}
    subcharts: dict[str, str] = {}  # Chart.yaml name -> where it came from
    directories: dict[str, dict[str, bytes]] = {}

    def claim(name: str, where: str) -> None:
        if name in subcharts:
            raise ArchiveError(f"{prefix}charts/: two subcharts named {name!r} ({subcharts[name]} and {where})")
        subcharts[name] = where

    def live(entry: str) -> bool:
        # Helm skips charts/ entries named _* or .* (load.go:175): they stay files, as upstream
        # shipped them, never unpacked into a live subchart.
        return not entry.startswith(("_", "."))

    def deeper(where: str) -> None:
        if depth >= budget.max_depth:
            raise ArchiveError(f"{where}: subcharts nested deeper than {budget.max_depth} levels")

    def merge(unpacked: dict[str, bytes], where: str, into: str, taken: set[str]) -> None:
        # charts/<name>/ may already hold a directory subchart of another name: never merge.
        if clash := sorted((taken | set(out)) & set(unpacked)):
            raise ArchiveError(f"{where}: unpacking into {into} would overwrite {clash[0]}")
        out.update(unpacked)

    for path, data in sorted(files.items()):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "charts" and parts[2] == "Chart.yaml" and live(parts[1]):
            meta = read_metadata(data, f"{prefix}{path}")
            claim(str(meta["name"]), f"{prefix}charts/{parts[1]}/")
    for path, data in sorted(files.items()):
        parts = path.split("/")
        if len(parts) < 2 or parts[0] != "charts" or not live(parts[1]):
            out[prefix + path] = data
        elif len(parts) > 2:
            directories.setdefault(parts[1], {})["/".join(parts[2:])] = data
        elif path.endswith(".tgz"):  # Helm's test is filepath.Ext(n) == ".tgz" (load.go:177)
            deeper(f"{prefix}{path}")
            try:
                _top, sub = read_chart(data, budget=budget)
            except FileNameError as err:
                raise err.within(prefix=f"{prefix}{path}: ") from None
            except ArchiveError as err:
                raise ArchiveError(f"{prefix}{path}: {err}") from None
            name = str(read_metadata(sub["Chart.yaml"], f"{prefix}{path}: Chart.yaml")["name"])
            claim(name, f"{prefix}{path}")
            notes.append(f"{shown(prefix + path)} unpacked into {shown(f'{prefix}charts/{name}/')}")
            into = f"{prefix}charts/{name}/"
            merge(_unpack(into, sub, budget, depth + 1, notes), prefix + path, into, {prefix + p for p in files})
        else:
            out[prefix + path] = data  # a file Helm cannot load as a chart fails `helm template`
    # Directory subcharts last: a packed one unpacked into the same directory is already in `out`.
    for directory, sub in sorted(directories.items()):
        where = f"{prefix}charts/{directory}/"
        deeper(where)
        merge(_unpack(where, sub, budget, depth + 1, notes), where, where, set())
    return out


def _checked(files: dict[str, FileContent]) -> dict[str, FileContent]:
    problems = tree_problems(list(files))
    if problems:
        raise ArchiveError("the chart cannot be committed: " + "; ".join(problems[:5]))
    return files


def vendor_files(app: str, fetched: FetchedChart) -> tuple[dict[str, FileContent], list[str]]:
    budget = Budget()
    top, files = read_chart(fetched.archive, budget=budget)
    notes = [
        f"`Chart.yaml`: `name` {shown(top)} → `{app}`, `version` → {INITIAL_VERSION} (our own line); `appVersion` kept"
    ]
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
    # The archive's own digest, of the bytes read and verified here (the upstream index's digest
    # or OCI layer digest, checked by the fetcher): ci/dependencies refuses any other bytes.
    archive_digest = sha256(fetched.archive)
    digests = (
        "# The sha256 of each dependency's archive, as reviewed at import. ci/dependencies checks every\n"
        "# download against it and fails on any other bytes (Chart.lock's digest covers Chart.yaml only).\n"
        "# After `helm dependency update chart`, `ci/dependencies record` rewrites it from chart/charts/.\n"
        f"{fetched.chart} {fetched.version} {archive_digest}\n"
    )
    tree: dict[str, FileContent] = {
        "Chart.yaml": dump_for_helm(chart),
        "Chart.lock": dump_for_helm(lock),
        DIGESTS_FILE: digests,
        "values.yaml": values,
        ".helmignore": f"# Patterns to ignore when building packages.\n.git/\n*.tgz.prov\n{DIGESTS_FILE}\n",
    }
    notes = [
        f"umbrella chart `{app}` {INITIAL_VERSION} depending on `{fetched.chart}` {fetched.version}",
        f"`{CHART_DIR}/{DIGESTS_FILE}` records the archive's digest `{archive_digest}`: every release"
        " downloads the dependency again and `ci/dependencies` refuses any other bytes",
        "to upgrade, bump the dependency's version in `Chart.yaml`, run `helm dependency update chart`"
        " and `ci/dependencies record`, and commit `Chart.yaml`, `Chart.lock` and"
        f" `{DIGESTS_FILE}` (not `chart/charts/`)",
    ]
    return {f"{CHART_DIR}/{path}": data for path, data in tree.items()}, notes


def plan_import(*, app: str, mode: str, fetched: FetchedChart, constraint: str, description: str) -> ImportPlan:
    if problem := chart_name_problem(fetched.chart):
        raise ArchiveError(f"chart name {problem}")
    if problem := version_problem(fetched.version):
        raise ArchiveError(f"chart {fetched.chart}: version {problem}")
    branch = branch_name(fetched.chart, fetched.version)
    # Name and version are Helm's charset and semver by now: safe to print in every message.
    where = f"chart {fetched.chart} {fetched.version} from {fetched.source}"
    try:
        if mode == "umbrella":
            files, notes = umbrella_files(app, fetched, description)
        else:
            files, notes = vendor_files(app, fetched)
    except FileNameError as err:
        raise err.within(chart=where) from None
    except ArchiveError as err:
        raise ArchiveError(f"{where}: {err}") from None
    binary = sorted(path for path, data in files.items() if isinstance(data, bytes))
    if binary:
        # Names come from the archive: only plain ones are shown (see `shown`), at most ten.
        listed = [shown(p) for p in binary[:10]]
        more = f" and {len(binary) - 10} more" if len(binary) > 10 else ""
        notes.append(f"{len(binary)} binary files, committed byte for byte: " + ", ".join(listed) + more)
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
        where = f"app {app.name!r}: chart {src.chart} from {src.repo}"
        try:
            fetched = fetcher.fetch(src.repo, src.chart, app.version, plain_http=src.plain_http)
        except FileNameError as err:
            raise err.within(chart=where) from None
        except ArchiveError as err:
            # The fetcher reads the archive before caching it (read_chart): its FetchErrors name
            # the source, an archive's errors do not.
            raise ArchiveError(f"{where}: {err}") from None
        plans[app.name] = plan_import(
            app=app.name, mode=app.mode, fetched=fetched, constraint=app.version, description=app.entry.description
        )
    return plans
