"""Turning a fetched public chart into the files of one import pull request.

`vendor` (default): the upstream files, `name` set to the app (ECR repo name == chart name),
`version` starting our own line, `appVersion` kept, upstream recorded in annotations and the PR.
Vendored subcharts (`charts/*.tgz`) are unpacked into `charts/<name>/` (with the same checks as
the chart), so the tree is plain text and `helm lint`/`helm template` work offline.
`umbrella`: our own small chart depending on the upstream one at the resolved version
(`Chart.yaml` dependency + `Chart.lock`); values nest under the dependency, an upgrade is a
one-line bump.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from scoutflo.chart_archive import ArchiveError, read_chart
from scoutflo.chart_fetch import FetchedChart
from scoutflo.repo_files import CHART_DIR, INITIAL_VERSION, set_chart_identity

ANNOTATION_SOURCE = "scoutflo.io/upstream"
ANNOTATION_DIGEST = "scoutflo.io/upstream-digest"
# Helm writes the time into Chart.lock; a fixed value keeps the import byte-identical per version.
LOCK_GENERATED = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class ImportPlan:
    branch: str
    title: str
    body: str
    files: dict[str, str]


def branch_name(chart: str, version: str) -> str:
    return f"scoutflo/import-{chart}-{version}"


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{path!r} is not UTF-8 text; binary chart files are not supported") from None


def _unpack(prefix: str, files: Mapping[str, bytes], notes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, data in sorted(files.items()):
        if path.startswith("charts/") and path.endswith(".tgz") and path.count("/") == 1:
            top, sub = read_chart(data)
            sub_chart = yaml.safe_load(sub["Chart.yaml"]) or {}
            name = str(sub_chart.get("name") or top)
            if name in (".", "..") or "/" in name:
                raise ArchiveError(f"{path!r}: subchart name {name!r} is not allowed")
            notes.append(f"`{path}` unpacked into `charts/{name}/`")
            out.update(_unpack(f"{prefix}charts/{name}/", sub, notes))
        else:
            out[prefix + path] = _text(path, data)
    return out


def add_annotations(chart_yaml: str, annotations: Mapping[str, str]) -> str:
    lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in annotations.items())
    m = re.search(r"^annotations:[ \t]*\n", chart_yaml, re.M)
    if m:
        return chart_yaml[: m.end()] + lines + chart_yaml[m.end() :]
    if re.search(r"^annotations:", chart_yaml, re.M):
        raise ArchiveError("Chart.yaml has an inline 'annotations:' value; expected a block mapping")
    return chart_yaml.rstrip("\n") + "\nannotations:\n" + lines


def vendor_files(app: str, fetched: FetchedChart) -> tuple[dict[str, str], list[str]]:
    top, files = read_chart(fetched.archive)
    notes = [f"`Chart.yaml`: `name` {top} → {app}, `version` → {INITIAL_VERSION} (our own line); `appVersion` kept"]
    tree = _unpack("", files, notes)
    chart_yaml = set_chart_identity(tree["Chart.yaml"], app, INITIAL_VERSION)
    tree["Chart.yaml"] = add_annotations(
        chart_yaml,
        {ANNOTATION_SOURCE: f"{fetched.source}/{fetched.chart}:{fetched.version}", ANNOTATION_DIGEST: fetched.digest},
    )
    return {f"{CHART_DIR}/{path}": text for path, text in tree.items()}, notes


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


def umbrella_files(app: str, fetched: FetchedChart, description: str) -> tuple[dict[str, str], list[str]]:
    _, files = read_chart(fetched.archive)
    upstream = yaml.safe_load(files["Chart.yaml"]) or {}
    dependency = {"name": fetched.chart, "version": fetched.version, "repository": fetched.source}
    chart: dict[str, Any] = {
        "apiVersion": "v2",
        "name": app,
        "description": description,
        "type": "application",
        "version": INITIAL_VERSION,
    }
    if upstream.get("appVersion"):
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
        f"{fetched.chart}: {{}}\n"
    )
    tree = {
        "Chart.yaml": yaml.safe_dump(chart, sort_keys=False),
        "Chart.lock": yaml.safe_dump(lock, sort_keys=False),
        "values.yaml": values,
        ".helmignore": "# Patterns to ignore when building packages.\n.git/\n*.tgz.prov\n",
    }
    notes = [
        f"umbrella chart `{app}` {INITIAL_VERSION} depending on `{fetched.chart}` {fetched.version}",
        "to upgrade, bump the dependency's version in `Chart.yaml` and run `helm dependency update chart`",
    ]
    return {f"{CHART_DIR}/{path}": text for path, text in tree.items()}, notes


def plan_import(*, app: str, mode: str, fetched: FetchedChart, constraint: str, description: str) -> ImportPlan:
    if mode == "umbrella":
        files, notes = umbrella_files(app, fetched, description)
    else:
        files, notes = vendor_files(app, fetched)
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
        branch=branch_name(fetched.chart, fetched.version),
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
