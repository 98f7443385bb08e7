"""Approval-text benchmark: lines of the approval text (ChangeSet.to_text) for a first deploy of
1, 10 and 30 apps and for a one-field change (svc00's replicaCount). Beside them, "unfolded": the
same text with every app in full (no folding; files and JSON already in their short forms). The
text before folding, file hashes and pretty-printed JSON was 14 687 lines for 30 apps. The events
come from the real program run under Pulumi's mock engine (tests/approval_events.py). Prints a
table; asserts nothing.

Usage: python bench/approval_lines.py [--apps 1,10,30] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from automation.changeset import ChangeSet, _resource_lines, changeset_from_events  # noqa: E402
from bench import _smoke  # noqa: E402
from tests import approval_events  # noqa: E402


def unfolded_lines(changes: ChangeSet) -> int:
    """Every listed resource of every app in full, as the text was before folding."""
    count = 3
    for resources in changes.by_app().values():
        listed = [r for r in resources if r.listed]
        if listed:
            count += 2 + sum(len(_resource_lines(r)) for r in listed)
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default="1,10,30")
    args = _smoke.parse(parser, "1 app only", apps="1")
    print(f"{'apps':>4} {'case':<18} {'resources':>9} {'unfolded':>9} {'lines':>6} {'to_text s':>9}")
    for count in (int(n) for n in args.apps.split(",")):
        for case, make in (
            ("first deploy", approval_events.first_deploy),
            ("one-field change", approval_events.one_field_change),
        ):
            changes = changeset_from_events(make(count))
            started = time.perf_counter()
            text = changes.to_text()
            seconds = time.perf_counter() - started
            listed = sum(r.listed for r in changes.resources)
            lines = len(text.split("\n"))
            print(f"{count:>4} {case:<18} {listed:>9} {unfolded_lines(changes):>9} {lines:>6} {seconds:>9.3f}")


if __name__ == "__main__":
    main()
