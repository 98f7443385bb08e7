"""Import benchmark. Prints figures; asserts nothing.

1. A chart of 10, 100 and 300 files served by a loopback Helm repository, fetched, verified,
   planned and committed to a loopback stand-in for GitHub: seconds and GitHub write requests
   (which must not grow with the file count).
2. The largest catalog chart, kube-prometheus-stack: the repository's corpus chart
   (tests/data/charts, with its binary crds.bz2 and vendored dependency) padded to the real
   88.5.3's shape (tests/corpus.py `largest`: 308 files, 6.5 MiB unpacked, four vendored
   dependencies): import time (fetch + verify + plan, vendor mode) and peak memory (Python heap
   by tracemalloc, and the process's peak RSS). Nothing outside the repository is read.
Usage: python bench/import_bench.py [--files 10,100,300] [--smoke]
(--smoke: a 10-file chart, and the corpus chart unpadded; what `make test` runs)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import resource
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _smoke
from scoutflo.charts.fetch import ChartFetcher
from scoutflo.charts.plan import plan_import
from scoutflo.github.api import GitHub, commit_files
from tests import corpus
from tests.github_stub import GitHubState, github_stub
from tests.loopback import static_http


def chart_tgz(files: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        entries = {"big/Chart.yaml": b"apiVersion: v2\nname: big\nversion: 1.0.0\nappVersion: '1'\n"}
        entries["big/values.yaml"] = b"replicaCount: 1\n"
        for i in range(files - 2):
            entries[f"big/templates/cm-{i:03}.yaml"] = (
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  k: v\n".encode() * 4
            )
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def file_counts(counts: list[int]) -> None:
    print(f"{'files':>6} {'fetch+plan s':>12} {'commit s':>9} {'GitHub writes':>13} {'requests':>8}")
    for files in counts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            root.mkdir()
            data = chart_tgz(files)
            (root / "big-1.0.0.tgz").write_bytes(data)
            index: dict[str, Any] = {
                "apiVersion": "v1",
                "entries": {"big": [{"version": "1.0.0", "urls": ["big-1.0.0.tgz"]}]},
            }
            index["entries"]["big"][0]["digest"] = hashlib.sha256(data).hexdigest()
            (root / "index.yaml").write_text(yaml.safe_dump(index))
            state = GitHubState(repo={"full_name": "o/app"})
            with static_http(root) as url, github_stub(state) as api:
                start = time.perf_counter()
                fetched = ChartFetcher(Path(tmp) / "cache").fetch(url, "big", "*")
                plan = plan_import(app="app", mode="vendor", fetched=fetched, constraint="*", description="")
                planned = time.perf_counter()
                gh = GitHub("t0ken", api=api)
                # The synthetic charts here are text only; binary blobs are the GitHub client's concern.
                text = {path: data for path, data in plan.files.items() if isinstance(data, str)}
                commit_files(gh, owner="o", repo="app", files=text, message=plan.title, branch=plan.branch)
                done = time.perf_counter()
            print(f"{files:>6} {planned - start:>12.3f} {done - planned:>9.3f} {gh.writes:>13} {len(gh.requests):>8}")


def largest_chart(smoke: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if smoke:
            chart = corpus.synthetic(work / "src")["kube-prometheus-stack"]
        else:
            chart = corpus.largest(work / "src")
        packages = corpus.package({"kube-prometheus-stack": chart}, work / "repo")
        corpus.helm("repo", "index", str(work / "repo"))
        archive = packages["kube-prometheus-stack"]
        with static_http(work / "repo") as url:
            tracemalloc.start()
            start = time.perf_counter()
            fetched = ChartFetcher(work / "cache").fetch(url, "kube-prometheus-stack", "*")
            plan = plan_import(
                app="monitoring", mode="vendor", fetched=fetched, constraint="*", description="kube-prometheus-stack"
            )
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        binary = sum(isinstance(v, bytes) for v in plan.files.values())
        size = sum(len(v.encode() if isinstance(v, str) else v) for v in plan.files.values())
        print()
        shape = "the corpus chart" if smoke else "the corpus chart padded to the real 88.5.3's shape"
        print(f"kube-prometheus-stack {fetched.version} ({shape})")
        print(
            f"  archive {archive.stat().st_size / 1024:.0f} KiB, {len(plan.files)} files ({binary} binary), "
            f"{size / 1024 / 1024:.1f} MiB planned"
        )
        print(
            f"  fetch + verify + plan: {seconds:.2f} s; peak Python heap {peak / 1024 / 1024:.1f} MiB; "
            f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", default="10,100,300")
    args = _smoke.parse(parser, "a 10-file chart, and the corpus chart unpadded", files="10")
    file_counts([int(n) for n in args.files.split(",")])
    largest_chart(args.smoke)


if __name__ == "__main__":
    main()
