"""Issue 16 §3 bombs, before and after. Prints figures; asserts nothing.

"Before" is what the code did without the bounds: PyYAML's C loader on the whole document,
semver's parser on the whole version, json on every tag page. "After" is the code now. Each case
runs in its own child process under a wall-clock bound and an address-space cap, so a bomb that
still works shows as a timeout, a signal or a MemoryError instead of stopping the benchmark.
Columns: wall seconds, the child's peak RSS (MiB), and how it ended.
Usage: python bench/yaml_bounds.py [--before-seconds 60] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402

CAP = 3 * 1024 * 1024 * 1024

_PRELUDE = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
sys.path.insert(0, {root!r})
data = open(sys.argv[1], 'rb').read()
start = time.perf_counter()
try:
    outcome = 'accepted'
{body}
except Exception as err:
    outcome = type(err).__name__ + ': ' + ' '.join(str(err).split())[:100]
elapsed = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec on Linux).
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
print(json.dumps([elapsed, peak, outcome]))
"""

BEFORE_YAML = "    import yaml\n    yaml.load(data, Loader=yaml.CSafeLoader)"
BEFORE_EVENTS = "    import yaml\n    for _ in yaml.parse(data, Loader=yaml.CSafeLoader): pass"
"""What `load` (its alias scan) and `load_at` did first: every event of the document."""
AFTER_YAML = "    from scoutflo.charts import safe_yaml\n    safe_yaml.load(data, 'Chart.yaml')"
BEFORE_INDEX = "    import yaml\n    len(yaml.load(data, Loader=yaml.CSafeLoader)['entries']['demo'])"
AFTER_INDEX = (
    "    from scoutflo.charts import safe_yaml\n"
    "    from scoutflo.charts.fetch import MAX_VERSIONS, MAX_INDEX_NODES\n"
    "    safe_yaml.load_at(data, 'index.yaml', ('entries', 'demo'), max_items=MAX_VERSIONS,"
    " fields=('version', 'urls', 'digest'), max_nodes=MAX_INDEX_NODES)"
)
BEFORE_VERSION = "    import semver\n    semver.Version.parse(data.decode())"
AFTER_VERSION = "    from scoutflo.charts.versions import parse_version\n    parse_version(data.decode())"
BEFORE_TAGS = "    tags = []\n    for _ in range(50):\n        tags.extend(json.loads(data)['tags'])"
AFTER_TAGS = (
    "    from scoutflo.charts.fetch import MAX_TAGS\n"
    "    tags = json.loads(data)['tags']\n"
    "    if len(tags) > MAX_TAGS:\n        raise ValueError(f'more than {MAX_TAGS} tags; stopped at the first page')"
)


def run(body: str, data: bytes, seconds: float) -> str:
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        code = _PRELUDE.format(cap=CAP, root=str(ROOT), body=body)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, f.name], capture_output=True, text=True, timeout=seconds, check=False
            )
        except subprocess.TimeoutExpired:
            return f"{'>' + format(seconds, 'g'):>8} {'':>9}  still running, killed"
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return f"{time.monotonic() - start:8.3f} {'':>9}  died: {name}"
        if not proc.stdout.strip():
            return f"{time.monotonic() - start:8.3f} {'':>9}  exit {proc.returncode}: {proc.stderr.strip()[-90:]}"
        elapsed, peak, outcome = json.loads(proc.stdout)
        return f"{elapsed:8.3f} {peak:9.1f}  {outcome}"


def _n(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before-seconds", type=float, default=60.0)
    args = _smoke.parse(parser, "every case at 1/1000 of its size (seconds)")
    slow = args.before_seconds
    # --smoke: the same cases, each a thousandth of its size (no longer a bomb, still every path).
    div = 1000 if args.smoke else 1

    deep = 1_000_000 // div
    flow = b"entries:\n  demo: " + b"[" * deep
    # Each dot-separated identifier is one more repetition of semver's prerelease group, and
    # Python's re keeps a backtracking frame per repetition.
    prerelease = b"1.0.0-" + b"a." * ((4 * 1024 * 1024 - 4) // div) + b"a"
    tags = [f"{i}.0.0"[:7] for i in range(380_000 // div)]
    page = json.dumps({"tags": tags}).encode()
    seqs = 40_000 // div
    chart = b"apiVersion: v2\nname: demo\nversion: 1.0.0\nkeywords: " + b"[" * seqs + b"]" * seqs + b"\n"
    block = b"keywords:\n" + b"- " * seqs + b"x\n"
    many = 1_600_000 // div
    entries = b"entries:\n  demo:\n" + b"  - {version: 1.0.0}\n" * many
    n10, n20 = 10_000 // div, 20_000 // div

    cases = [
        (
            f"index.yaml, flow nesting {_n(deep)} deep ({len(gzip.compress(flow))} B gzipped)",
            flow,
            BEFORE_EVENTS,
            AFTER_INDEX,
        ),
        (f"flow nesting {_n(n10)} deep, events", b"[" * n10 + b"]" * n10, BEFORE_EVENTS, AFTER_YAML),
        (
            f"flow nesting {_n(n20)} deep, events (twice as deep)",
            b"[" * n20 + b"]" * n20,
            BEFORE_EVENTS,
            AFTER_YAML,
        ),
        (f"flow nesting {_n(n10)} deep, loaded", b"[" * n10 + b"]" * n10, BEFORE_YAML, AFTER_YAML),
        (f"Chart.yaml of nested sequences ({len(chart) // 1024} KiB)", chart, BEFORE_YAML, AFTER_YAML),
        (f"compact block sequences {_n(seqs)} deep", block, BEFORE_YAML, AFTER_YAML),
        (
            f"{_n(many)} entries under one chart ({len(gzip.compress(entries)) // 1024} KiB gzipped)",
            entries,
            BEFORE_INDEX,
            AFTER_INDEX,
        ),
        (f"{len(prerelease) / 2**20:.2f} MiB valid-semver prerelease", prerelease, BEFORE_VERSION, AFTER_VERSION),
        (f"50 tag pages of {len(page) / 2**20:.2f} MiB ({len(tags)} tags each)", page, BEFORE_TAGS, AFTER_TAGS),
    ]
    print(f"cap {CAP // 2**30} GiB; 'before' stopped after {slow:g} s")
    print(f"{'':<58} {'seconds':>8} {'peak MiB':>9}  outcome")
    for title, data, before, after in cases:
        print(title)
        print(f"  {'before':<56}", run(before, data, slow))
        print(f"  {'after':<56}", run(after, data, 60))


if __name__ == "__main__":
    main()
