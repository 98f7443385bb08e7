"""Every benchmark of bench/, one after another, after a header naming the machine. `make bench`
runs this; `make test` runs it with --smoke (tests/test_bench_smoke.py) so a broken benchmark fails
CI instead of waiting for the next person who runs it.

A benchmark is every bench/*.py but this file: one added later joins by being there, and must
accept --smoke (its smallest sizes, seconds) or the smoke test fails. Each runs in its own process
with the project's tools first on PATH (helm from .tools/bin: the import benchmark packages charts
with it), so the figures do not depend on the caller's PATH. Benchmarks print figures and assert
nothing; a benchmark that exits non-zero is named and makes this exit 1 after the others ran.

Usage: python bench/run.py [--smoke] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The order of docs/figures.md; anything else follows by name.
ORDER = ("render_bench", "import_bench", "github_writes", "approval_diff_bench", "yaml_bounds")
# How long one benchmark may run before it is taken for hung (a loopback server that never
# answers, a helm that waits): stopped and named as failed, so neither `make bench` nor the
# smoke test of `make test` waits forever. A smoke run takes seconds; a full one minutes.
SMOKE_LIMIT_S = 120
FULL_LIMIT_S = 3600


def benchmarks() -> list[Path]:
    found = {p.stem: p for p in BENCH.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")}
    return [found[n] for n in ORDER if n in found] + [found[n] for n in sorted(set(found) - set(ORDER))]


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def machine() -> list[str]:
    """What the figures were measured on: CPU model, cores usable here, RAM, Python, helm."""
    mem_kib = _proc_field("/proc/meminfo", "MemTotal").removesuffix(" kB")
    ram = f"{int(mem_kib) / 2**20:.1f} GiB" if mem_kib.isdigit() else "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        helm = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True, timeout=30, env=env())
        helm_version = helm.stdout.strip() or "unknown"
    except FileNotFoundError:
        helm_version = "not found (run `make setup-dev`)"
    return [
        f"cpu     {_proc_field('/proc/cpuinfo', 'model name')}",
        f"cores   {usable} usable of {os.cpu_count()}",
        f"ram     {ram}",
        f"python  {platform.python_implementation()} {platform.python_version()}",
        f"os      {platform.platform()}",
        f"helm    {helm_version}",
    ]


def env() -> dict[str, str]:
    tools = [str(ROOT / ".tools" / "bin"), str(ROOT / ".venv" / "bin")]
    return {**os.environ, "PATH": os.pathsep.join([*tools, os.environ.get("PATH", "")])}


def _run(cmd: list[str], limit: float) -> int | None:
    """The benchmark's exit code, or None when it ran past `limit` and was stopped. It runs in a
    session of its own so that what it started (servers, helm) is killed with it: killing the
    one process (subprocess.run's timeout) would leave its children holding ports and the
    caller's output pipe."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), start_new_session=True)
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="smallest sizes of every benchmark (seconds)")
    parser.add_argument("--only", help="comma-separated benchmark names (file stems)")
    args = parser.parse_args()
    chosen = benchmarks()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {p.stem for p in chosen}
        if unknown:
            parser.error(f"no benchmark named {sorted(unknown)}; there are {[p.stem for p in chosen]}")
        chosen = [p for p in chosen if p.stem in wanted]
    print("machine" + (" (smoke run: smallest sizes, figures not comparable)" if args.smoke else ""))
    for line in machine():
        print(f"  {line}")
    failed = []
    for path in chosen:
        print(f"\n== bench/{path.name}{' --smoke' if args.smoke else ''}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(path), *(["--smoke"] if args.smoke else [])]
        limit = SMOKE_LIMIT_S if args.smoke else FULL_LIMIT_S
        code = _run(cmd, limit)
        if code is None:
            outcome = f"FAILED (no result after {limit} s, stopped)"
        else:
            outcome = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"== bench/{path.name}: {outcome} in {time.monotonic() - started:.1f} s")
        if code != 0:
            failed.append(path.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
