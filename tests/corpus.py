"""The chart corpus of the import tests and benchmarks: chart sources committed under
tests/data/charts/ (what each reproduces, and why they are not upstream's own files, is in its
README.md), packaged here with the real helm. Nothing outside the repository is read.

`build(root)` copies every chart of the corpus into root and vendors each dependency that names a
repository as `charts/<name>-<version>.tgz`, packaged from the corpus, as `helm dependency build`
would from the repository (a dependency without a repository is a directory subchart, already
there). `package` turns chart directories into archives; `largest(root, ...)` pads the corpus's
kube-prometheus-stack to the size of the real one for the import benchmark.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from scoutflo.charts.versions import parse_version

DATA = Path(__file__).resolve().parent / "data" / "charts"


def helm(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["helm", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"helm {args}: {result.stdout}\n{result.stderr}")
    return result.stdout


def _meta(chart: Path) -> dict[str, Any]:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert isinstance(meta, dict), chart
    return meta


def versions() -> dict[str, list[str]]:
    """Chart name -> the corpus's versions of it, oldest first."""
    found: dict[str, list[str]] = {}
    for chart in sorted(p.parent for p in DATA.glob("*/Chart.yaml")):
        meta = _meta(chart)
        found.setdefault(str(meta["name"]), []).append(str(meta["version"]))
    return {name: sorted(vs, key=lambda v: parse_version(v)) for name, vs in found.items()}


def source(name: str, version: str) -> Path:
    """A chart's committed directory (tests/data/charts/<name>-<version>)."""
    path = DATA / f"{name}-{version}"
    if not (path / "Chart.yaml").is_file():
        raise KeyError(f"no {name} {version} in {DATA}; there are {versions().get(name, [])}")
    return path


def build(root: Path, name: str, version: str) -> Path:
    """One chart ready to package: copied into root, its repository dependencies vendored."""
    chart = root / f"{name}-{version}" / name
    shutil.copytree(source(name, version), chart)
    for dep in _meta(chart).get("dependencies") or []:
        if not dep.get("repository"):
            continue
        # The corpus holds one version a dependency's range admits (its Chart.lock, upstream).
        (dep_version,) = versions()[dep["name"]]
        vendored = build(chart.parent / "deps", dep["name"], dep_version)
        helm("package", str(vendored), "-d", str(chart / "charts"))
    return chart


def synthetic(root: Path) -> dict[str, Path]:
    """The newest corpus version of each catalog chart the corpus has, by catalog name."""
    return {name: build(root, name, vs[-1]) for name, vs in versions().items() if name in CATALOG_CHARTS}


CATALOG_CHARTS = ("kube-prometheus-stack", "cert-manager", "redis")
"""The corpus charts that are catalog entries; the others are their dependencies."""


def package(charts: dict[str, Path], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    packaged = {}
    for name, chart in charts.items():
        before = set(out.glob("*.tgz"))
        helm("package", str(chart), "-d", str(out))
        (new,) = set(out.glob("*.tgz")) - before
        packaged[name] = new
    return packaged


def package_all(root: Path, out: Path) -> dict[tuple[str, str], Path]:
    """Every version of every catalog chart of the corpus, packaged into out."""
    return {
        (name, version): package({name: build(root, name, version)}, out)[name]
        for name, vs in versions().items()
        if name in CATALOG_CHARTS
        for version in vs
    }


REAL_KPS_SHAPE = {"files": 308, "planned_bytes": 6_815_744, "dependencies": 4}
"""kube-prometheus-stack 88.5.3 as packaged from its upstream sources with its four dependencies
vendored (measured with this benchmark before the corpus moved into the repository: 308 files,
one binary, 6.5 MiB planned, 872 KiB archive; the README's figures of issue 16)."""


def largest(root: Path) -> Path:
    """The corpus's kube-prometheus-stack padded to the real 88.5.3's shape: as many files, as many
    bytes once unpacked, as many vendored dependencies; templates are distinct text so the archive
    compresses about as the real one (CRDs and dashboards, mostly YAML and JSON)."""
    (version,) = versions()["kube-prometheus-stack"]
    chart = build(root, "kube-prometheus-stack", version)
    for i in range(REAL_KPS_SHAPE["dependencies"] - len(list((chart / "charts").glob("*.tgz")))):
        dep = root / "extra" / f"exporter-{i}"
        (dep / "templates").mkdir(parents=True)
        (dep / "Chart.yaml").write_text(f"apiVersion: v2\nname: exporter-{i}\nversion: 1.0.{i}\n")
        (dep / "templates" / "cm.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-exporter-{i}\n"
        )
        helm("package", str(dep), "-d", str(chart / "charts"))
    own = [p for p in chart.rglob("*") if p.is_file() and p.suffix != ".tgz"]
    vendored = []
    for archive in (chart / "charts").glob("*.tgz"):
        with tarfile.open(archive) as tar:
            vendored += [m.size for m in tar.getmembers() if m.isfile()]
    pad = REAL_KPS_SHAPE["files"] - len(own) - len(vendored)
    have = sum(p.stat().st_size for p in own) + sum(vendored)
    per_file = max(0, REAL_KPS_SHAPE["planned_bytes"] - have) // max(pad, 1)
    for i in range(pad):
        head = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-rules-{i}\n"
        head += "data:\n  rules.yaml: |\n    groups:\n"
        rules, j = [head], 0
        while sum(map(len, rules)) < per_file:
            rules.append(f"      - alert: Rule{i}x{j}\n        expr: rate(metric_{i}_{j}_total[5m]) > {j % 97}\n")
            j += 1
        (chart / "templates" / f"rules-{i:03}.yaml").write_text("".join(rules))
    return chart
