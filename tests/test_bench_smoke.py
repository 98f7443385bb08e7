"""Every benchmark at its smallest sizes (bench/run.py --smoke), so a broken benchmark fails
`make test` instead of waiting for the next person who runs `make bench` (issue 20). The figures
are not checked: benchmarks assert nothing; the run must finish and name the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_runs_at_its_smallest_sizes(tools: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    for field in ("cpu", "cores", "ram", "python", "helm"):
        line = next(line for line in lines if line.strip().startswith(field + " "))
        assert "unknown" not in line and "not found" not in line, line
    scripts = sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name != "run.py")
    assert scripts, "bench/ has benchmarks"
    for name in scripts:
        assert any(line.startswith(f"== bench/{name}: ok in ") for line in lines), (
            f"{name} did not run:\n{result.stdout}"
        )


def test_the_runner_refuses_a_benchmark_it_does_not_have() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--only", "no_such_bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no benchmark named ['no_such_bench']" in result.stderr, result.stderr
