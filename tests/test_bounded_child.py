"""The child process that acquires each public chart (`scoutflo/charts/bounded.py`), attacked
from its side: what it inherits from the parent, what it can make the parent read, and what it
leaves running when the parent or the deadline ends it. Every case runs real processes (the real
child program where it is the subject) against loopback sockets; `/proc` is what the kernel says
of them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoutflo.charts import bounded
from scoutflo.charts.bounded import ANSWER_BYTES, ERROR_BYTES, Limits, Request, acquire, answer, child_env, run_child
from scoutflo.charts.errors import AcquisitionError, ChartError

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "GITHUB_TOKEN": "ghp_marker_github_token_4711",
    "AWS_SECRET_ACCESS_KEY": "marker/aws/secret/4711",
    "AWS_ACCESS_KEY_ID": "AKIAMARKER4711",
    "PULUMI_CONFIG_PASSPHRASE": "marker passphrase 4711",
}


def request(port: int) -> Request:
    return Request(
        app="app",
        repo=f"http://127.0.0.1:{port}",
        chart="demo",
        constraint="*",
        plain_http=False,
        mode="vendor",
        description="",
    )


@contextlib.contextmanager
def silent() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback port that accepts every connection and never answers a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], held
    finally:
        listener.close()
        for conn in held:
            conn.close()


def children(of: int) -> list[int]:
    """The live processes whose parent is `of` and that run the acquisition child program."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == of and fields[0] not in "ZX" and b"child_main" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (an orphan's zombie waits for a reaper that a
    container's init may never be)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def wait_for(predicate: object, seconds: float) -> bool:
    assert callable(predicate)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def the_child(of: int) -> int:
    assert wait_for(lambda: children(of), 20), "the acquisition child never started"
    (pid,) = children(of)
    return pid


# ------------------------------------------------------------------ environment


def test_the_child_inherits_none_of_the_parents_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", "")  # empty: not passed on
    seen: dict[str, str] = {}
    errors: list[ChartError] = []
    with silent() as (port, held):

        def run() -> None:
            try:
                acquire(request(port), cache=tmp_path / "cache", credentials={}, limits=Limits(seconds=30))
            except ChartError as err:
                errors.append(err)

        worker = threading.Thread(target=run)
        worker.start()
        pid = the_child(os.getpid())
        # Once it has connected the child is past exec and its startup: its environment is final.
        assert wait_for(lambda: held, 20)
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        seen = dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)
        os.kill(pid, signal.SIGKILL)
        worker.join(30)
    assert not worker.is_alive()
    for value in SECRETS.values():
        assert value.encode() not in raw
    assert set(seen) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "HOME", "TMPDIR", *bounded._ENV}
    assert seen["HOME"] == seen["TMPDIR"] != os.environ.get("HOME")
    assert not Path(seen["HOME"]).exists()  # removed with the acquisition
    assert str(ROOT) in seen["PYTHONPATH"].split(os.pathsep)
    assert len(errors) == 1 and isinstance(errors[0], AcquisitionError)
    assert "killed by SIGKILL" in str(errors[0])


def test_child_env_passes_only_what_runs_python_and_reaches_a_source() -> None:
    parent = {
        **SECRETS,
        "PATH": "/usr/bin",
        "HOME": "backend-home",
        "PYTHONPATH": "/extra",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "https_proxy": "http://proxy:3128",
        "NO_PROXY": "127.0.0.1",
        "KUBECONFIG": "backend-home/.kube/config",
        "AWS_PROFILE": "backend",
        "PYTHONSTARTUP": "/tmp/evil.py",
        "PYTHONINSPECT": "1",
    }
    env = child_env(parent, "/tmp/x")
    assert env == {
        "PATH": "/usr/bin",
        "PYTHONPATH": os.pathsep.join([str(ROOT), "/extra"]),
        "SSL_CERT_FILE": "/etc/ca.pem",
        "https_proxy": "http://proxy:3128",
        "NO_PROXY": "127.0.0.1",
        "HOME": "/tmp/x",
        "TMPDIR": "/tmp/x",
    }


# ------------------------------------------------------------------ what the parent reads


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run(code: str, tmp_path: Path, *, seconds: float = 30, max_out: int = 1024 * 1024) -> tuple[int, bytes, bytes]:
    return run_child(
        python(code),
        b"{}",
        env={"PATH": os.environ["PATH"]},
        cwd=str(tmp_path),
        seconds=seconds,
        name="chart demo from http://h",
        max_out=max_out,
    )


@pytest.mark.parametrize(("stream", "what"), [("stdout", "answer"), ("stderr", "error output")])
def test_a_child_that_writes_without_end_is_stopped_at_the_cap(stream: str, what: str, tmp_path: Path) -> None:
    """Before: `subprocess.run(capture_output=True)` read it all, until the deadline or the
    parent's memory ran out. Now the cap ends it, long before the 30 s deadline."""
    code = f"""
        import sys
        chunk = b"x" * 65536
        while True:
            sys.{stream}.buffer.write(chunk)
    """
    started = time.monotonic()
    cap = 1024 * 1024 if stream == "stdout" else ERROR_BYTES
    with pytest.raises(
        AcquisitionError, match=f"^chart demo from http://h: acquisition wrote more than {cap} bytes of {what}"
    ):
        run(code, tmp_path)
    assert time.monotonic() - started < 20


def test_an_answer_up_to_the_cap_is_read_whole(tmp_path: Path) -> None:
    code = """
        import sys
        sys.stdin.buffer.read()
        sys.stdout.buffer.write(b"y" * 1048576)
        sys.stderr.buffer.write(b"note")
    """
    assert run(code, tmp_path) == (0, b"y" * 1024 * 1024, b"note")


def test_the_answer_cap_holds_a_chart_of_the_whole_budget() -> None:
    """The cap is derived from the archive budget: the child's base64 answer for 100 MiB of
    files (every path as long as a checkout allows) fits it, and it is well under what the
    parent could hold twice (the JSON text and the decoded plan)."""
    from scoutflo.charts.archive import MAX_CHART_BYTES, MAX_FILES

    longest_path = '"' * 3840
    entry = json.dumps({longest_path: {"text": True, "base64": ""}}, ensure_ascii=False)
    assert 4 * -(-MAX_CHART_BYTES // 3) + MAX_FILES * len(entry) < ANSWER_BYTES < 256 * 1024 * 1024


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "answered JSON nested too deeply"),
        (b'{"plan": ' * 5000 + b"1" + b"}" * 5000, "answered JSON nested too deeply"),
        (b'{"plan": {"files": 5, "branch": "b", "title": "t", "body": ""}}', "answered a malformed plan"),
        (b'{"plan": {"files": {}, "branch": 1, "title": "t", "body": ""}}', "answered a malformed plan"),
        (b'{"plan": {"files": {"a": "x"}, "branch": "b", "title": "t", "body": ""}}', "answered a malformed plan"),
        (
            b'{"plan": {"files": {"a": {"base64": "@@"}}, "branch": "b", "title": "t", "body": ""}}',
            "answered a malformed plan",
        ),
        (
            b'{"plan": {"files": {"a": {"text": true, "base64": "/w=="}}, "branch": "b", "title": "t", "body": ""}}',
            "answered a malformed plan",
        ),
        (b'{"plan": {"branch": "b", "title": "t", "body": ""}}', "answered a malformed plan"),
    ],
    ids=[
        "deep list",
        "deep object",
        "files not a map",
        "branch not text",
        "file not a map",
        "bad base64",
        "text not UTF-8",
        "no files",
    ],
)
def test_a_malformed_answer_is_a_typed_error(stdout: bytes, message: str) -> None:
    """Before: RecursionError, TypeError, KeyError or binascii.Error tracebacks in the parent."""
    with pytest.raises(AcquisitionError, match=f"^chart demo from http://127.0.0.1:1: acquisition {message}"):
        answer(request(1), 0, stdout, b"", Limits())


def test_an_error_message_from_the_child_is_cut() -> None:
    stdout = json.dumps({"error": "ChartError", "message": "x" * 10_000}).encode()
    with pytest.raises(ChartError) as err:
        answer(request(1), 1, stdout, b"", Limits())
    assert len(str(err.value)) == bounded.MESSAGE_CHARS


def test_without_waitid_the_exit_is_still_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no os.waitid (CPython offers it only where the platform does)."""
    monkeypatch.delattr(os, "waitid")
    code, out, _ = run_child(
        [sys.executable, "-c", "print('done')"], b"", env=os.environ, cwd=str(tmp_path), seconds=10, name="demo"
    )
    assert (code, out) == (0, b"done\n")


def test_text_and_binary_files_travel_as_base64() -> None:
    plan = b'{"plan": {"files": {"t": {"text": true, "base64": "AWE="}, "b": {"text": false, "base64": "AA=="}},'
    plan += b' "branch": "b", "title": "t", "body": ""}}'
    got = answer(request(1), 0, plan, b"", Limits())
    assert got.files == {"t": "\x01a", "b": b"\0"}


# ------------------------------------------------------------------ what is left running


GRANDCHILD = """
    import subprocess, sys, time
    sleeper = subprocess.Popen(["sleep", "300"])
    open({pidfile!r}, "w").write(str(sleeper.pid))
    {then}
"""


@pytest.mark.parametrize(
    ("then", "raises"),
    [("time.sleep(300)", True), ("print()", False)],
    ids=["deadline", "normal exit"],
)
def test_nothing_the_child_started_outlives_it(then: str, raises: bool, tmp_path: Path) -> None:
    """Before: `subprocess.run`'s timeout killed the direct child only; its own children ran on."""
    pidfile = tmp_path / "grandchild"
    code = GRANDCHILD.format(pidfile=str(pidfile), then=then)
    if raises:
        with pytest.raises(AcquisitionError, match="gave no answer within 2 s"):
            run(code, tmp_path, seconds=2)
    else:
        assert run(code, tmp_path)[0] == 0
    grandchild = int(pidfile.read_text())
    assert wait_for(lambda: not alive(grandchild), 1), "the child's own child is still running"


def test_a_child_blocked_on_a_silent_server_is_stopped_at_the_deadline(tmp_path: Path) -> None:
    """Http's own deadline is 300 s and its read timeout 30 s: the parent's wall clock ends a
    child that connected and waits for an answer that never comes, and no process is left."""
    with silent() as (port, held):
        started = time.monotonic()
        with pytest.raises(
            AcquisitionError,
            match=rf"^chart demo from http://127.0.0.1:{port}: acquisition gave no answer within 3 s",
        ):
            acquire(request(port), cache=tmp_path / "cache", credentials={}, limits=Limits(seconds=3))
        elapsed = time.monotonic() - started
        assert held, "the child never connected: the case did not test a blocked read"
    assert 3 <= elapsed < 6
    assert children(os.getpid()) == []


PARENT = """
import os, sys
from pathlib import Path
from scoutflo.charts.bounded import Limits, Request, acquire
port = int(sys.argv[1])
request = Request(app="app", repo=f"http://127.0.0.1:{port}", chart="demo", constraint="*",
                  plain_http=False, mode="vendor", description="")
acquire(request, cache=Path(sys.argv[2]), credentials={}, limits=Limits(seconds=120))
"""


def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    """kill -9 of the program that holds a tenant's lock: before, its acquisition child went on
    (blocked on the source for up to Http's 300 s deadline) as an orphan."""
    with silent() as (port, held):
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, str(port), str(tmp_path / "cache")],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
        )
        child = 0
        try:
            child = the_child(parent.pid)
            assert wait_for(lambda: held, 20)
            parent.kill()
            parent.wait()
            assert wait_for(lambda: not alive(child), 1), "the acquisition child outlived its parent"
        finally:
            parent.kill()
            parent.wait()
            if child and alive(child):
                os.kill(child, signal.SIGKILL)


def test_a_child_whose_parent_died_before_it_started_stops(tmp_path: Path) -> None:
    """The parent-death signal only covers a parent that dies after prctl: the child compares
    getppid() with the pid it was given."""
    proc = subprocess.run(
        [sys.executable, "-c", bounded._BOOT, str(2**30), "10", "1"],
        input=b"{}",
        capture_output=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (70, b"")
