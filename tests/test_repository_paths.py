"""Tests and benchmarks read nothing outside the repository (issue 17 §4, issue 20): a mirror, a
home directory or a tool cache of one machine is absent in CI's fresh clone, and a test that
depends on one is skipped there or fails."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A string literal opening on this workplace's machine-local places: its mirror of upstream
# snapshots and tool caches (/work/.mirror, /work/.library), the product side's notes. Paths
# under /root or /home stay allowed: tests use them as hostile input (a kubeconfig's origin).
OUTSIDE = re.compile(r"""['"]/work/(\.|shared)""")


def test_no_test_or_benchmark_names_a_machine_local_path() -> None:
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py"), ROOT / "Makefile"]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line) and path != Path(__file__)
    ]
    assert not found, "\n".join(found)
