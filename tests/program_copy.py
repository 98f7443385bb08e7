"""A private copy of the program for tests that preview and then apply: the approval is bound to
the program's identity (automation/program.py), and the shared checkout's files change whenever
someone edits them, which would refuse an approval between a test's preview and its apply."""

from __future__ import annotations

import shutil
from pathlib import Path

from automation.program import PROGRAM_PATHS

ROOT = Path(__file__).resolve().parent.parent


def program_copy(dest: Path) -> Path:
    """The program's files (automation.program.PROGRAM_PATHS) and the shipped stack files, copied
    to `dest`; returns it. Its virtualenv stays the checkout's (operations._write_project)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_PATHS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy2(stack_file, dest / stack_file.name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest
