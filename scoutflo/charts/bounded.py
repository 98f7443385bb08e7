"""Chart acquisition (resolve, fetch, verify, read, plan) in a child process with a real deadline
and real CPU and memory caps.

`Http`'s 300 s deadline is checked between requests, and every parser has its own bound, but a
bug or a parser we did not foresee (libyaml's quadratic flow scan, PyYAML's unbounded C recursion,
semver's regex on a megabyte prerelease: issue 16) would still hang or kill the process that
holds a tenant's lock. So each public chart is acquired by a child Python process:
- RLIMIT_AS and RLIMIT_CPU are set by the child itself before it reads anything a source sent
  (`preexec_fn` "is NOT SAFE to use in the presence of threads", Python's `subprocess` docs, and
  the Pulumi program runs gRPC threads); past RLIMIT_CPU's soft limit the kernel sends SIGXCPU,
  past the hard one SIGKILL (setrlimit(2)); RLIMIT_CORE is 0, so a child killed by a signal
  leaves no core file holding the credentials it was given;
- the parent waits `Limits.seconds` of wall-clock time and then kills it (`subprocess.run`'s
  timeout kills the child and waits for it);
- the request (credentials included) goes to the child on stdin, never on its command line; the
  answer comes back as JSON (text files as strings, binary files base64): no pickle, nothing the
  parent reads can run code;
- a chart error in the child is raised again in the parent as the same `ChartError` class; a
  child that died (a signal, the memory cap, a deadline) becomes an `AcquisitionError` naming the
  chart and the limit.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoutflo.charts.errors import AcquisitionError, ArchiveError, ChartError, FetchError
from scoutflo.charts.http import redact
from scoutflo.charts.plan import FileContent, ImportPlan

_ROOT = str(Path(__file__).resolve().parent.parent.parent)

# Runs first in the child: the caps are in force before `scoutflo` (and any source's bytes) load.
_BOOT = """import resource, sys
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
from scoutflo.charts.bounded import child_main
child_main()
"""

_MEMORY_ANSWER = b'{"error": "memory"}'
"""Prepared before anything is read: after a MemoryError there may be no room to build it."""


@dataclass(frozen=True)
class Limits:
    seconds: float = 360.0
    """Wall clock for one chart: Http's 300 s network deadline, then reading and planning."""
    cpu_seconds: int = 240
    memory_bytes: int = 2 * 1024 * 1024 * 1024
    """Address space: a 100 MiB chart budget read, unpacked and answered as JSON fits in it."""


@dataclass(frozen=True)
class Request:
    """One chart to acquire: what `ChartFetcher.fetch` and `plan_import` take."""

    app: str
    repo: str
    chart: str
    constraint: str
    plain_http: bool
    mode: str
    description: str

    @property
    def name(self) -> str:
        """How every chart error names the source (`fetch._Source.at`)."""
        repo = redact(self.repo) if "://" in self.repo else self.repo
        return f"chart {self.chart} from {repo}"


def plan_imports_bounded(
    apps: Iterable[Any],
    *,
    cache: Path,
    credentials: Mapping[str, tuple[str, str]],
    limits: Limits = Limits(),
) -> dict[str, ImportPlan]:
    """`plan.plan_imports`, one child process per public app: a hostile or unreachable chart stops
    the program with a typed error, nothing written or registered, and the parent unharmed."""
    plans = {}
    for app in apps:
        src = app.entry.source
        if src.kind == "template":
            continue
        request = Request(
            app=app.name,
            repo=src.repo,
            chart=src.chart,
            constraint=app.version,
            plain_http=bool(src.plain_http),
            mode=app.mode,
            description=app.entry.description,
        )
        plans[app.name] = acquire(request, cache=cache, credentials=credentials, limits=limits)
    return plans


def acquire(
    request: Request, *, cache: Path, credentials: Mapping[str, tuple[str, str]], limits: Limits = Limits()
) -> ImportPlan:
    """Fetch and plan one chart in a capped child process."""
    payload = json.dumps(
        {
            "request": dataclasses.asdict(request),
            "cache": str(Path(cache).resolve()),
            "credentials": {host: list(pair) for host, pair in credentials.items()},
        }
    ).encode()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
    argv = [sys.executable, "-c", _BOOT, str(limits.memory_bytes), str(limits.cpu_seconds)]
    try:
        proc = subprocess.run(argv, input=payload, capture_output=True, timeout=limits.seconds, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise AcquisitionError(
            f"{request.name}: acquisition gave no answer within {limits.seconds:g} s (the per-chart deadline); stopped"
        ) from None
    return answer(request, proc.returncode, proc.stdout, proc.stderr, limits)


def answer(request: Request, returncode: int, stdout: bytes, stderr: bytes, limits: Limits) -> ImportPlan:
    """The child's answer as a plan, or the typed error it reported or died of."""
    try:
        out = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        out = None
    if isinstance(out, dict) and out.get("error") == "memory":
        raise AcquisitionError(f"{request.name}: acquisition needed more than {_mib(limits)} of memory; stopped")
    if isinstance(out, dict) and isinstance(out.get("error"), str) and isinstance(out.get("message"), str):
        raise _error_class(out["error"])(out["message"])
    if returncode == 0 and isinstance(out, dict) and isinstance(out.get("plan"), dict):
        return _plan(out["plan"])
    raise AcquisitionError(f"{request.name}: {death(returncode, stderr, limits)}")


_ERRORS: dict[str, type[ChartError]] = {
    cls.__name__: cls for cls in (ChartError, FetchError, ArchiveError, AcquisitionError)
}
"""The classes of `errors.py` (each takes one message); a subclass elsewhere travels as its base."""


def _error_class(name: str) -> type[ChartError]:
    return _ERRORS.get(name, ChartError)


def death(returncode: int, stderr: bytes, limits: Limits) -> str:
    """Why a child gave no answer, naming the limit it hit when it was one."""
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        if sig == signal.SIGXCPU:
            return f"acquisition was killed by {name} (CPU limit {limits.cpu_seconds} s); stopped"
        if sig == signal.SIGKILL:  # RLIMIT_CPU's hard limit, or the kernel's OOM killer
            return (
                f"acquisition was killed by {name} (CPU limit {limits.cpu_seconds} s, or the system ran out of"
                " memory); stopped"
            )
        return f"acquisition was killed by {name} (memory cap {_mib(limits)}); stopped"
    # An unexpected exception (a bug): its last line, without control characters, for the report.
    last = (stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
    last = "".join(ch if ch.isprintable() else "?" for ch in last)[:300]
    if "MemoryError" in last:
        return f"acquisition needed more than {_mib(limits)} of memory; stopped"
    return f"acquisition failed (exit {returncode}){': ' + last if last else ''}"


def _mib(limits: Limits) -> str:
    return f"{limits.memory_bytes // (1024 * 1024)} MiB"


def _plan(raw: Mapping[str, Any]) -> ImportPlan:
    files: dict[str, FileContent] = {}
    for path, content in raw["files"].items():
        files[path] = content["text"] if "text" in content else base64.b64decode(content["base64"])
    return ImportPlan(branch=raw["branch"], title=raw["title"], body=raw["body"], files=files)


def child_main() -> None:
    """The child: one request on stdin, one JSON answer on stdout."""
    memory_answer = _MEMORY_ANSWER
    try:
        _child(json.loads(sys.stdin.buffer.read()))
    except MemoryError:
        os.write(1, memory_answer)


def _child(raw: Mapping[str, Any]) -> None:
    # Imported here: the parent needs none of it, and the child loads it under its caps.
    from scoutflo.charts.fetch import ChartFetcher
    from scoutflo.charts.plan import plan_import

    request = Request(**raw["request"])
    fetcher = ChartFetcher(
        Path(raw["cache"]), credentials={host: (pair[0], pair[1]) for host, pair in raw["credentials"].items()}
    )
    try:
        fetched = fetcher.fetch(request.repo, request.chart, request.constraint, plain_http=request.plain_http)
        plan = plan_import(
            app=request.app,
            mode=request.mode,
            fetched=fetched,
            constraint=request.constraint,
            description=request.description,
        )
    except ChartError as err:
        base = next(cls for cls in type(err).__mro__ if cls in _ERRORS.values())
        out: dict[str, Any] = {"error": base.__name__, "message": str(err)}
    else:
        files = {
            path: {"text": data} if isinstance(data, str) else {"base64": base64.b64encode(data).decode()}
            for path, data in plan.files.items()
        }
        out = {"plan": {"branch": plan.branch, "title": plan.title, "body": plan.body, "files": files}}
    # backslashreplace: a lone surrogate in a message stays a valid JSON escape.
    sys.stdout.buffer.write(json.dumps(out, ensure_ascii=False).encode("utf-8", "backslashreplace"))
    sys.stdout.flush()
