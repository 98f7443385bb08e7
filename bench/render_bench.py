"""Render benchmark: the program under mocks with 1, 10, 100 and 300 apps, and with template charts
of 10, 100 and 300 files. Prints seconds, peak RSS and resources per app; asserts nothing.

Each case runs in its own process so peak RSS is that case's alone.
Usage: python bench/render_bench.py [--apps 1,10,100,300] [--files 10,100,300] [--smoke]
(--smoke: 1 app, and 10 apps of a 10-file chart; what `make test` runs)
"""

from __future__ import annotations

import argparse
import json
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402


def make_catalog(directory: Path, files: int) -> None:
    """A catalog entry whose template chart has `files` files (a real helm-create chart, padded)."""
    chart = directory / "templates" / "big"
    src = ROOT / "charts_catalog" / "templates" / "webapp"
    for path in src.rglob("*"):
        if path.is_file():
            target = chart / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    existing = sum(1 for p in chart.rglob("*") if p.is_file())
    for i in range(max(0, files - existing)):
        (chart / "templates" / f"extra-{i:03}.yaml").write_text(f"# padding file {i}\n")
    (directory / "big.yaml").write_text("name: big\ndescription: padded template\nsource:\n  repo: template:big\n")


def one_case(apps: int, files: int) -> dict[str, float]:
    from automation import render

    config, secrets = render.stack_config("dev")
    chart = "webapp"
    with tempfile.TemporaryDirectory() as tmp:
        if files:
            make_catalog(Path(tmp), files)
            config["scoutflo:catalogPath"] = tmp
            chart = "big"
        config["scoutflo:apps"] = json.dumps([{"name": f"app-{i}", "chart": chart} for i in range(apps)])
        start = time.perf_counter()
        recording = render.run(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"), config, secrets)
        render.write(recording, Path(tmp) / "out")
        seconds = time.perf_counter() - start
    custom = [r for r in recording.resources if r.custom]
    shared = [r for r in custom if "registry-access" in r.urn or "github-oidc" in r.urn]
    return {
        "apps": apps,
        "files": files,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "resources": len(custom),
        "per_app": round((len(custom) - len(shared)) / apps, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default="1,10,100,300")
    parser.add_argument("--files", default="10,100,300")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = _smoke.parse(parser, "1 app, and 10 apps of a 10-file chart", apps="1", files="10")
    if args.case:
        apps, files = map(int, args.case.split(":"))
        print(json.dumps(one_case(apps, files)))
        return
    cases = [(int(n), 0) for n in args.apps.split(",") if n] + [(10, int(f)) for f in args.files.split(",") if f]
    print(f"{'apps':>5} {'chart files':>11} {'seconds':>8} {'peak RSS MiB':>12} {'resources':>9} {'per app':>7}")
    for apps, files in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--case", f"{apps}:{files}"], capture_output=True, text=True, check=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        label = str(r["files"]) if r["files"] else "webapp"
        row = (r["apps"], label, r["seconds"], r["peak_rss_mib"], r["resources"], r["per_app"])
        print("{:>5} {:>11} {:>8} {:>12} {:>9} {:>7}".format(*row))


if __name__ == "__main__":
    main()
