"""The program's identity: which version of this Pulumi program a preview ran, so an approval of
one version is never applied by another (issue 18: a checkout changed between preview and apply
was applied under the old approval).

The identity is what the CLI runs: the project file (its `main` points at the checkout, see
operations._write_project), the program's entry point and every module it imports from the
checkout, its catalog, and the dependency pins. Engine code (automation/, service/) is not the
program: it decides *whether* to run, not *what* is registered.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

PROGRAM_PATHS = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "scoutflo", "charts_catalog")
"""What the CLI's language host runs: Pulumi.yaml names the runtime, __main__.py is the entry
point, the rest is imported or read by it (catalog entries, chart templates)."""

_SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
"""Written by running or checking the program, never part of it (a compiled .pyc in a
__pycache__ is derived from its .py, which is hashed)."""


class ProgramError(Exception):
    """The checkout cannot be identified (a program path is missing or unreadable)."""


def _files(project_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for name in PROGRAM_PATHS:
        top = project_dir / name
        if top.is_file():
            found.append((name, top))
        elif top.is_dir():
            for root, dirs, files in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
                for file in files:
                    if file.endswith((".pyc", ".pyo")):
                        continue
                    path = Path(root) / file
                    found.append((path.relative_to(project_dir).as_posix(), path))
        else:
            raise ProgramError(f"{top} is missing: {project_dir} is not a checkout of this program")
    return sorted(found)


def files_digest(project_dir: Path) -> str:
    """sha256 over every program file's path, mode bit x and content, in path order: any edit,
    addition, removal or rename changes it."""
    outer = hashlib.sha256()
    for rel, path in _files(project_dir):
        try:
            data = path.read_bytes()
            executable = os.access(path, os.X_OK)
        except OSError as err:
            raise ProgramError(f"{path}: {err.strerror}") from None
        outer.update(f"{rel}\0{int(executable)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return outer.hexdigest()


def program_commit(project_dir: Path) -> str:
    """The last commit that changed the program's paths, or "" outside a git checkout (an image
    built without .git). Not HEAD: a commit that touches only docs or the engine is the same
    program, and an approval survives it."""
    if not (project_dir / ".git").exists():
        return ""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_dir), "log", "-1", "--format=%H", "--", *PROGRAM_PATHS],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return ""  # no git binary or not a repository git accepts: the files digest still binds
    return out.stdout.strip()


def program_digest(project_dir: Path) -> str:
    """`program:<commit or "none">:<sha256 of the files>`. The files digest binds (an uncommitted
    edit changes it too); the commit names the version for the audit trail."""
    project = Path(project_dir).resolve()
    return f"program:{program_commit(project) or 'none'}:{files_digest(project)}"
