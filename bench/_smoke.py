"""The one `--smoke` of every benchmark (bench/run.py skips this module: its name starts with _).

`make test` runs each benchmark with --smoke (tests/test_bench_smoke.py): its smallest sizes, in
seconds, so a broken benchmark fails there. Each benchmark names what its smoke run measures and
the sizes it takes; the sizes replace the options' values, given or defaulted, so a smoke run is
the same on every machine.
"""

from __future__ import annotations

import argparse
from typing import Any


def parse(parser: argparse.ArgumentParser, measures: str, **sizes: Any) -> argparse.Namespace:
    """`parser`'s arguments with --smoke added (help: `measures`); under --smoke each option named
    in `sizes` (its dest) takes that size. A size naming no option of `parser` is a mistake in the
    benchmark, refused before anything runs."""
    dests = {action.dest for action in parser._actions}
    if unknown := sorted(set(sizes) - dests):
        raise ValueError(f"smoke sizes for options the benchmark does not have: {unknown}")
    parser.add_argument("--smoke", action="store_true", help=measures)
    args = parser.parse_args()
    if args.smoke:
        for dest, size in sizes.items():
            setattr(args, dest, size)
    return args
