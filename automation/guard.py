"""The Pulumi CLI under a guard: it dies with the process that started it, and can be killed, with
everything it started, by `CliGuard.kill()` (a worker's watchdog, when the database is lost or
the heartbeat goes stale).

Each CLI call runs as: worker → guard (a small Python process) → CLI. The guard
- is started in a session and process group of its own (`start_new_session`: setsid(2)), so the
  CLI, its language host, the program and the provider plugins are all in that group (children
  keep their parent's group, setpgid(2)), and nothing outside it;
- asks for SIGTERM when the worker's thread that started it ends (PR_SET_PDEATHSIG, prctl(2);
  the same prelude as the chart child, scoutflo/charts/bounded.py `pdeathsig_prelude`), and on
  it (or SIGHUP, or SIGINT) kills its whole group with SIGKILL (killpg(2)), itself included:
  a worker killed by -9 leaves no CLI and no plugin running;
- forks the CLI, which asks for SIGKILL when the guard ends (set in the forked child before
  execv: the guard is single-threaded, so unlike `preexec_fn` in the threaded worker this is
  safe; PR_SET_PDEATHSIG survives execve(2) for a binary without set-uid or capabilities), and
  exits with the CLI's status.
`preexec_fn` cannot do the first step: "not safe to use in the presence of threads" (Python's
subprocess docs), and the worker runs the SDK's event-log and gRPC threads.

The worker side kills the group before it reaps the guard (the bounded chart child's rule: a
reaped pid's group id can be reused), and after the guard exits, whatever the CLI left behind in
the group goes too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from scoutflo.charts.bounded import pdeathsig_prelude

_GUARD = (
    """import ctypes, os, signal, sys
parent, command, args = int(sys.argv[1]), sys.argv[2], sys.argv[2:]
"""
    + pdeathsig_prelude("SIGTERM")
    + """def down(signum, frame):
    os.killpg(0, signal.SIGKILL)
for name in ("SIGTERM", "SIGHUP", "SIGINT"):
    signal.signal(getattr(signal, name), down)
guard = os.getpid()
child = os.fork()
if child == 0:
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    parent = guard
"""
    + "\n".join("    " + line for line in pdeathsig_prelude("SIGKILL").splitlines())
    + """
    os.execv(command, args)
while True:
    try:
        _, status = os.waitpid(child, 0)
        break
    except ChildProcessError:
        os._exit(70)
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""
)
"""argv: parent pid, the CLI's path, then the CLI's argv (its argv[0] is its path)."""


class GuardKilled(Exception):
    """The guard was told to kill its CLI processes; no new one starts through it."""


class CliGuard:
    """Every CLI process group started through it, and `kill()` to end them all. One per job (a
    worker gives each job its own): once killed it starts nothing more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._killed = False

    @property
    def killed(self) -> bool:
        return self._killed

    def groups(self) -> set[int]:
        """The process groups (= the guards' pids) running now."""
        with self._lock:
            return set(self._groups)

    def popen(self, argv: list[str], *, env: Mapping[str, str], cwd: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """`subprocess.Popen(argv, ...)` under a guard. The caller ends it with `finish`."""
        if not argv or not os.path.isabs(argv[0]):
            raise ValueError(f"the guarded command must be an absolute path, got {argv[:1]}")
        with self._lock:
            if self._killed:
                raise GuardKilled(
                    "this operation's CLI processes were killed (the worker's watchdog); not starting more"
                )
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _GUARD, str(os.getpid()), *argv],
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                **kwargs,
            )
            self._groups.add(proc.pid)
        return proc

    def finish(self, proc: subprocess.Popen[Any]) -> int:
        """Wait for the guard to exit (without reaping it, so its group id stays its own), kill
        what is left in its group, then reap it; its exit status (the CLI's)."""
        try:
            if proc.returncode is None and hasattr(os, "waitid"):
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            kill_group(proc.pid)
            return proc.wait()
        finally:
            kill_group(proc.pid)
            proc.wait()
            with self._lock:
                self._groups.discard(proc.pid)

    def kill(self) -> None:
        """Kill every CLI group started through this guard (SIGKILL: a CLI mid-update cannot be
        asked to stop cleanly without the state lock being held past it either way; the recovery
        after is the reaper's: `automation.locks`). Safe from any thread, more than once."""
        with self._lock:
            self._killed = True
            groups = set(self._groups)
        for group in groups:
            kill_group(group)


def kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
