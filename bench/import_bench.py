"""Import benchmark: a chart of 10, 100 and 300 files served by a loopback Helm repository, fetched,
verified, planned and committed to a loopback stand-in for GitHub. Prints seconds and the number
of GitHub write requests (which must not grow with the file count); asserts nothing.
Usage: python bench/import_bench.py [--files 10,100,300]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoutflo.charts.fetch import ChartFetcher
from scoutflo.charts.plan import plan_import
from scoutflo.github_api import GitHub, commit_files
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", default="10,100,300")
    args = parser.parse_args()
    print(f"{'files':>6} {'fetch+plan s':>12} {'commit s':>9} {'GitHub writes':>13} {'requests':>8}")
    for files in map(int, args.files.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            root.mkdir()
            data = chart_tgz(files)
            (root / "big-1.0.0.tgz").write_bytes(data)
            index = {"apiVersion": "v1", "entries": {"big": [{"version": "1.0.0", "urls": ["big-1.0.0.tgz"]}]}}
            index["entries"]["big"][0]["digest"] = hashlib.sha256(data).hexdigest()
            (root / "index.yaml").write_text(yaml.safe_dump(index))
            state = GitHubState()
            with static_http(root) as url, github_stub(state) as api:
                start = time.perf_counter()
                fetched = ChartFetcher(Path(tmp) / "cache").fetch(url, "big", "*")
                plan = plan_import(app="app", mode="vendor", fetched=fetched, constraint="*", description="")
                planned = time.perf_counter()
                gh = GitHub("t0ken", api=api)
                commit_files(gh, owner="o", repo="app", files=plan.files, message=plan.title, branch=plan.branch)
                done = time.perf_counter()
            print(f"{files:>6} {planned - start:>12.3f} {done - planned:>9.3f} {gh.writes:>13} {len(gh.requests):>8}")


if __name__ == "__main__":
    main()
