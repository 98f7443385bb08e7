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
- the child runs in a session of its own (`start_new_session`), and on a deadline, an answer
  past its cap or any exit the parent kills the whole process group (killpg(2)) before it reaps
  the child, so the group id cannot have been reused; the child asks the kernel for SIGKILL when
  its parent dies (prctl(2) PR_SET_PDEATHSIG, set in its own startup, `preexec_fn` being unsafe
  here), so a parent killed by -9 leaves no acquisition running;
- the parent waits `Limits.seconds` of wall-clock time, however the child is blocked (a server
  that accepts and never answers included), then kills it;
- the child's environment is an allow-list (`child_env`): PATH, locale, PYTHONPATH, the TLS
  trust and proxy settings httpx reads, HOME and TMPDIR in a fresh empty directory. The
  backend's GitHub token, AWS keys and passphrase never reach the process that parses what a
  source sent;
- the request (credentials included) goes to the child on stdin, never on its command line or
  in its environment; the answer comes back as JSON (every file base64, flagged text or not):
  no pickle, nothing the parent reads can run code. The parent reads at most `ANSWER_BYTES`
  (the chart byte budget as base64, plus its file names) and `ERROR_BYTES` of stderr, kills the
  child past either, and parses the answer with its depth bounded and its shape checked;
- a chart error in the child is raised again in the parent as the same `ChartError` class; a
  child that died (a signal, the memory cap, a deadline) becomes an `AcquisitionError` naming the
  chart and the limit.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import select
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoutflo.charts.archive import MAX_CHART_BYTES, MAX_FILES
from scoutflo.charts.errors import AcquisitionError, ArchiveError, ChartError, FetchError
from scoutflo.charts.http import redact
from scoutflo.charts.plan import FileContent, ImportPlan

_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def pdeathsig_prelude(signal_name: str) -> str:
    """The child's first lines: ask for `signal.<signal_name>` when the parent (the thread that
    started it) ends, then stop if the parent is already gone (its pid is in `parent`). Needs
    ctypes, os, signal and sys imported. Shared with automation/guard.py's CLI launcher."""
    return f"""if sys.platform.startswith("linux"):
    if ctypes.CDLL(None, use_errno=True).prctl(1, signal.{signal_name}, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
if os.getppid() != parent:
    os._exit(70)
"""


# Runs first in the child: the parent-death signal, then the caps, are in force before `scoutflo`
# (and any source's bytes) load. PR_SET_PDEATHSIG is 1 (include/uapi/linux/prctl.h line 9); the
# signal comes when the *thread* that started the child ends (prctl(2), "the 'parent' in this case
# is considered to be the thread that created this process"): `acquire` blocks in that thread
# until the child is reaped, so it is the program's death. A parent that died before the prctl
# call is seen by getppid(2) no longer being the pid it passed: the child stops, nobody would
# read its answer.
_BOOT = (
    """import ctypes, os, resource, signal, sys
memory, cpu, parent = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
"""
    + pdeathsig_prelude("SIGKILL")
    + """resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
from scoutflo.charts.bounded import child_main
child_main()
"""
)

ANSWER_BYTES = (MAX_CHART_BYTES + 1024 * 1024) * 4 // 3 + (MAX_FILES + 64) * 8 * 1024 + 1024 * 1024
"""The most a plan's JSON answer can be: the chart byte budget (and the few files the plan adds,
1 MiB) as base64, each file's path (at most 3 840 bytes, `plan.tree_problems`, twice that if
every character were an escaped quote) with its keys, and the PR body: about 214 MiB."""

ERROR_BYTES = 1024 * 1024
"""stderr: a traceback, or nothing."""

_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    # httpx reads these with trust_env (httpx 0.28.1 `_config.py` create_ssl_context lines 34-37,
    # `_utils.py` get_environment_proxies via urllib.request.getproxies): a backend behind a
    # proxy or a private CA keeps working. A proxy URL can hold the proxy's own password: the
    # child needs it to reach the source at all.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
)


def child_env(parent: Mapping[str, str], home: str) -> dict[str, str]:
    """The child's whole environment: what it needs to run and reach a source, nothing else."""
    env = {name: parent[name] for name in _ENV if parent.get(name)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, parent.get("PYTHONPATH")) if p)
    env["HOME"] = env["TMPDIR"] = home
    return env


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
    with tempfile.TemporaryDirectory(prefix="scoutflo-chart-") as home:
        argv = [sys.executable, "-c", _BOOT, str(limits.memory_bytes), str(limits.cpu_seconds), str(os.getpid())]
        returncode, stdout, stderr = run_child(
            argv, payload, env=child_env(os.environ, home), cwd=home, seconds=limits.seconds, name=request.name
        )
    return answer(request, returncode, stdout, stderr, limits)


MESSAGE_CHARS = 2000
"""The longest error message taken from the child (a chart error names a file and a limit)."""


def run_child(
    argv: list[str],
    payload: bytes,
    *,
    env: Mapping[str, str],
    cwd: str,
    seconds: float,
    name: str,
    max_out: int = ANSWER_BYTES,
    max_err: int = ERROR_BYTES,
) -> tuple[int, bytes, bytes]:
    """Run `argv` in a session of its own with `payload` on stdin: its exit status, stdout and
    stderr, or an `AcquisitionError` naming `name` past the deadline or either cap. However it
    ends, the child's whole process group is killed before the child is reaped."""
    deadline = time.monotonic() + seconds
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = _exchange(proc, payload, deadline, max_out, max_err, name, seconds)
        # Both pipes are closed: wait for the exit without reaping (WNOWAIT, waitid(2)), so the
        # process group id stays this child's while the group is killed below.
        while not _exited(proc):
            if time.monotonic() >= deadline:
                raise AcquisitionError(_late(name, seconds))
            time.sleep(0.005)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return proc.returncode, out, err


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, leaving it unreaped (WNOWAIT, waitid(2))."""
    if not hasattr(os, "waitid"):
        # CPython offers os.waitid only where the platform has it (not macOS): reaping here lets
        # the pid be reused before the group kill, a narrow race the Linux path avoids.
        return proc.poll() is not None
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _late(name: str, seconds: float) -> str:
    return f"{name}: acquisition gave no answer within {seconds:g} s (the per-chart deadline); stopped"


def _exchange(
    proc: subprocess.Popen[bytes],
    payload: bytes,
    deadline: float,
    max_out: int,
    max_err: int,
    name: str,
    seconds: float,
) -> tuple[bytes, bytes]:
    """Write `payload`, read both streams up to their caps, until both close or the deadline.
    As `subprocess.Popen._communicate` does on POSIX (CPython 3.11 Lib/subprocess.py lines 237 and
    2055-2117): a selector over the pipes, stdin written PIPE_BUF bytes at a time so a write
    never blocks."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    caps = {proc.stdout.fileno(): max_out, proc.stderr.fileno(): max_err}
    got = {fd: bytearray() for fd in caps}
    sent = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AcquisitionError(_late(name, seconds))
            # The child may exit while something it started still holds the pipes open: once
            # it has, what it wrote is in the pipes; read what is there and stop.
            exited = _exited(proc)
            for key, _ in sel.select(0 if exited else min(left, 0.1)):
                if key.fileobj is proc.stdin:
                    try:
                        sent += os.write(key.fd, payload[sent : sent + select.PIPE_BUF])
                    except BrokenPipeError:
                        sent = len(payload)  # the child is gone: its exit status says why
                    if sent >= len(payload):
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                data = os.read(key.fd, 64 * 1024)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                got[key.fd] += data
                if len(got[key.fd]) > caps[key.fd]:
                    stream = "answer" if key.fileobj is proc.stdout else "error output"
                    raise AcquisitionError(
                        f"{name}: acquisition wrote more than {caps[key.fd]} bytes of {stream}, more than a chart"
                        " within the import's budget can need; stopped"
                    )
            if exited and not sel.select(0):
                break
    return bytes(got[proc.stdout.fileno()]), bytes(got[proc.stderr.fileno()])


def answer(request: Request, returncode: int, stdout: bytes, stderr: bytes, limits: Limits) -> ImportPlan:
    """The child's answer as a plan, or the typed error it reported or died of."""
    try:
        out = json.loads(stdout) if stdout.strip() else None
    except RecursionError:
        # json's C decoder recurses once per level and raises RecursionError at the
        # interpreter's limit (as `fetch._json` relies on): bounded, and never a valid answer.
        raise AcquisitionError(f"{request.name}: acquisition answered JSON nested too deeply; stopped") from None
    except ValueError:
        out = None
    if isinstance(out, dict) and out.get("error") == "memory":
        raise AcquisitionError(f"{request.name}: acquisition needed more than {_mib(limits)} of memory; stopped")
    if isinstance(out, dict) and isinstance(out.get("error"), str) and isinstance(out.get("message"), str):
        # Cut: the child parsed untrusted input, and its message is printed and kept in records.
        raise _error_class(out["error"])(out["message"][:MESSAGE_CHARS])
    if returncode == 0 and isinstance(out, dict) and isinstance(out.get("plan"), dict):
        plan = _plan(out["plan"])
        if plan is None:
            raise AcquisitionError(f"{request.name}: acquisition answered a malformed plan; stopped")
        return plan
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


def _plan(raw: Mapping[str, Any]) -> ImportPlan | None:
    """The plan the child sent, or None when it is not one (a child that went wrong)."""
    texts = [raw.get("branch"), raw.get("title"), raw.get("body")]
    if not all(isinstance(t, str) for t in texts) or not isinstance(raw.get("files"), dict):
        return None
    files: dict[str, FileContent] = {}
    for path, content in raw["files"].items():
        if not isinstance(content, dict) or not isinstance(content.get("base64"), str):
            return None
        try:
            data = base64.b64decode(content["base64"], validate=True)
            files[path] = data.decode("utf-8") if content.get("text") is True else data
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
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
        # Every file base64 (text flagged): the answer is at most 4/3 of the chart budget, where
        # JSON strings could be six times a text file of control characters (`\u0001`).
        files = {
            path: {"text": True, "base64": base64.b64encode(data.encode()).decode()}
            if isinstance(data, str)
            else {"text": False, "base64": base64.b64encode(data).decode()}
            for path, data in plan.files.items()
        }
        out = {"plan": {"branch": plan.branch, "title": plan.title, "body": plan.body, "files": files}}
    # backslashreplace: a lone surrogate in a message stays a valid JSON escape.
    sys.stdout.buffer.write(json.dumps(out, ensure_ascii=False).encode("utf-8", "backslashreplace"))
    sys.stdout.flush()
