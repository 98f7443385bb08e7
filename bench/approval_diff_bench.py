"""Approval-diff benchmark: one changed file of N lines with every other line changed (the shape
on which difflib is slowest), rendered by ChangeSet.to_text, beside difflib.unified_diff on the
whole file as the text used to call it. Prints seconds; asserts nothing.

docs/figures.md's approval-diff table and docs/backend.md's difflib figures are its rows.
Usage: python bench/approval_diff_bench.py [--lines 2000,8000,20000] [--difflib-up-to 20000] [--smoke]
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pulumi.automation import EngineEvent  # noqa: E402

from automation.changeset import changeset_from_events  # noqa: E402
from bench import _smoke  # noqa: E402


def texts(lines: int) -> tuple[str, str]:
    old = [f"      - key{i % 97}: value {i % 89}" for i in range(lines)]
    new = [line if i % 2 else f"      - key{i % 97}: other {i % 89}" for i, line in enumerate(old)]
    return "\n".join(old) + "\n", "\n".join(new) + "\n"


def event(old: str, new: str) -> EngineEvent:
    urn = "urn:pulumi:acme::scoutflo::pulumi-python:dynamic:Resource::shop"

    def state(text: str) -> dict[str, object]:
        return {"type": "pulumi-python:dynamic:Resource", "urn": urn, "custom": True, "inputs": {"files": {"f": text}}}

    meta = {"op": "update", "urn": urn, "type": "pulumi-python:dynamic:Resource", "old": state(old), "new": state(new)}
    return EngineEvent.from_json({"resourcePreEvent": {"metadata": meta}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", default="2000,8000,20000")
    parser.add_argument("--difflib-up-to", type=int, default=20000, help="skip whole-file difflib above this")
    args = _smoke.parse(parser, "200 lines only", lines="200")
    print(f"{'lines':>6} {'KiB':>5} {'to_text s':>9} {'difflib on the whole value s':>28}")
    for lines in (int(n) for n in args.lines.split(",")):
        old, new = texts(lines)
        started = time.perf_counter()
        changeset_from_events([event(old, new)]).to_text()
        ours = time.perf_counter() - started
        whole = "skipped"
        if lines <= args.difflib_up_to:
            started = time.perf_counter()
            list(difflib.unified_diff(old.split("\n"), new.split("\n"), lineterm="", n=1))
            whole = f"{time.perf_counter() - started:.2f}"
        print(f"{lines:>6} {len(old) // 1024:>5} {ours:>9.3f} {whole:>28}")


if __name__ == "__main__":
    main()
