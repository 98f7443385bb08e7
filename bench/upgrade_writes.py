"""GitHub writes and reads of an upstream upgrade (issue 19), measured against the GitHub stand-in.

Per chart: the import (one PR, squash-merged as the app repositories do), a user edit on main,
then the upgrade to the next version (scoutflo/github/upgrade.py: tree and commit of upstream as
imported, tree and commit of the merge, the ref, the PR), the same with a conflict, a newer
version while that PR is open (the PR updated in place), a re-run (nothing to write), a newer
version that brings a conflict into the open PR (title, body and draft in one GraphQL write),
and a newer version while the import PR is still open (that PR updated in place). Charts:
the corpus's two cert-manager versions (vendor), redis (umbrella) and, unless --smoke,
kube-prometheus-stack padded to the real 88.5.3's shape (308 files, one binary), whose next
version is derived from it. Asserts nothing; prints figures.
Usage: python bench/upgrade_writes.py [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _smoke
from scoutflo.charts.fetch import FetchedChart
from scoutflo.charts.plan import ImportPlan, plan_import
from scoutflo.github.api import GitHub, Pacer
from scoutflo.github.upgrade import import_or_upgrade
from tests import corpus
from tests.github_stub import GitHubState, github_stub

SOURCE = "https://charts.example.test/stable"


def _plan(chart: Path, name: str, version: str, mode: str, out: Path) -> ImportPlan:
    (archive,) = corpus.package({name: chart}, out / f"{name}-{version}").values()
    data = archive.read_bytes()
    fetched = FetchedChart(name, version, "sha256:" + hashlib.sha256(data).hexdigest(), SOURCE, data)
    return plan_import(app="app", mode=mode, fetched=fetched, constraint="*", description=name)


def _next(plan: ImportPlan, old: str, new: str) -> dict[str, str | bytes]:
    """A next upstream release derived from a prepared one: version, appVersion, one new value."""
    files = dict(plan.files)
    files["chart/Chart.yaml"] = str(files["chart/Chart.yaml"]).replace(old, new)
    files["chart/values.yaml"] = str(files["chart/values.yaml"]) + "benchNewValue: 1\n"
    return files


def _run(url: str, plan: ImportPlan, files: dict[str, str | bytes] | None = None) -> tuple[int, int, float]:
    gh = GitHub("t0ken", api=url, sleep=lambda _s: None, pacer=Pacer())
    start = time.perf_counter()
    import_or_upgrade(
        gh,
        owner="o",
        repo="r",
        files=files or plan.files,
        message=plan.title,
        branch=plan.branch,
        pr_title=plan.title,
        pr_body=plan.body,
    )
    reads = sum(1 for method, _ in gh.requests if method == "GET")
    return gh.writes, reads, time.perf_counter() - start


def _edit_main(state: GitHubState, path: str, old: str, new: str) -> None:
    text = state.files("main")[path].decode()
    assert old in text, (path, old)
    state.user_commit("main", {path: text.replace(old, new, 1).encode()})


def measure(label: str, first: ImportPlan, second: ImportPlan, third: dict[str, str | bytes], edit: Any) -> None:
    """`edit(state, "user")` edits main as a user would; `edit(state, "conflict")` also changes
    lines upstream's next version changes."""
    rows: list[tuple[str, tuple[int, int, float]]] = []
    for case in ("edits kept", "a conflict", "draft", "import open"):
        state = GitHubState()
        with github_stub(state) as url:
            imported = _run(url, first)
            if case == "import open":
                # The import PR not merged yet: the newer version updates it in place.
                rows.append(("import PR open, newer version", _run(url, second)))
                continue
            if case == "edits kept":
                rows.append(("import", imported))
            state.merge_pull(1)
            edit(state, "user")
            if case == "edits kept":
                rows.append(("upgrade, user edits kept", _run(url, second)))
                rows.append(("newer version, PR updated", _run(url, second, third)))
                rows.append(("re-run", _run(url, second, third)))
            elif case == "a conflict":
                edit(state, "conflict")
                rows.append(("upgrade, a conflict", _run(url, second)))
            else:
                _run(url, second)
                edit(state, "conflict")
                rows.append(("newer version, conflict: draft", _run(url, second, third)))
    print(f"  {label} ({len(second.files)} files)")
    for name, (writes, reads, seconds) in rows:
        print(f"    {name:<32} {writes:>2} writes {reads:>4} reads {seconds:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--largest", action=argparse.BooleanOptionalAction, default=True, help="kube-prometheus-stack too"
    )
    args = _smoke.parse(parser, "cert-manager and redis only", largest=False)
    print("GitHub writes of an upstream upgrade (GitHub stand-in; + 1 per binary file new to the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plans = {
            (name, version): _plan(
                corpus.build(root / version, name, version),
                name,
                version,
                "umbrella" if name == "redis" else "vendor",
                root / "out",
            )
            for name, version in (
                ("cert-manager", "v1.17.2"),
                ("cert-manager", "v1.17.3"),
                ("redis", "21.0.0"),
                ("redis", "21.0.1"),
            )
        }

        def cert_edit(state: GitHubState, which: str) -> None:
            if which == "user":
                _edit_main(state, "chart/values.yaml", "enabled: false", "enabled: true")
            else:
                _edit_main(state, "chart/templates/deployment.yaml", "--v=2", "--v=4")

        cm = plans[("cert-manager", "v1.17.3")]
        measure(
            "cert-manager v1.17.2 -> v1.17.3 (vendor)",
            plans[("cert-manager", "v1.17.2")],
            cm,
            _next(cm, "v1.17.3", "v1.17.4"),
            cert_edit,
        )

        def redis_edit(state: GitHubState, which: str) -> None:
            if which == "user":
                _edit_main(state, "chart/values.yaml", "redis: {}", "redis:\n  replica: 2")
            else:
                _edit_main(state, "chart/Chart.yaml", "version: 21.0.0", "version: 21.0.0-mine")

        rd = plans[("redis", "21.0.1")]
        measure(
            "redis 21.0.0 -> 21.0.1 (umbrella)",
            plans[("redis", "21.0.0")],
            rd,
            _next(rd, "21.0.1", "21.0.2"),
            redis_edit,
        )
        if args.largest:
            chart = corpus.largest(root / "largest")
            kps = _plan(chart, "kube-prometheus-stack", "77.0.0", "vendor", root / "out")
            nxt = ImportPlan(
                kps.branch.replace("77.0.0", "77.0.1"),
                kps.title.replace("77.0.0", "77.0.1"),
                kps.body,
                _next(kps, "77.0.0", "77.0.1"),
            )
            newer = _next(kps, "77.0.0", "77.0.2")

            def kps_edit(state: GitHubState, which: str) -> None:
                if which == "user":
                    _edit_main(state, "chart/values.yaml", "enabled: true", "enabled: false")
                else:
                    values = state.files("main")["chart/values.yaml"].decode()
                    state.user_commit("main", {"chart/values.yaml": (values + "mine: 1\n").encode()})

            measure("kube-prometheus-stack 77.0.0 -> 77.0.1 (largest, derived)", kps, nxt, newer, kps_edit)


if __name__ == "__main__":
    main()
