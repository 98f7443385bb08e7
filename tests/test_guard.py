"""automation/guard.py on real processes: the stand-in CLI (tests/fake_pulumi) runs a long `up`
under a worker process; killing the worker with SIGKILL, or the guard's `kill()`, leaves no CLI
process. `/proc` is what the kernel says of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from automation import operations as ops
from automation.guard import CliGuard
from tests.program_copy import program_copy
from tests.test_operations import FAKE, tenant

ROOT = Path(__file__).resolve().parent.parent


def in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: object, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def backend(tmp_path: Path) -> ops.Backend:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    (tmp_path / "state").mkdir(exist_ok=True)
    return ops.Backend(
        url=f"file://{tmp_path / 'state'}",
        secrets_provider="passphrase",
        state_dir=tmp_path / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
    )


def slow_up(state: Path, seconds: float) -> None:
    (state / ".fake-pulumi").mkdir(parents=True, exist_ok=True)
    (state / ".fake-pulumi" / "settings.json").write_text(json.dumps({"delay": {"up": seconds}}))


def running_up(state: Path) -> dict[str, int]:
    ups = state / ".fake-pulumi" / "ups.jsonl"
    assert wait_for(lambda: ups.exists() and ups.read_text().strip()), "the `up` never started"
    return dict(json.loads(ups.read_text().splitlines()[-1]))


WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from automation import operations as ops
    from tests.test_operations import tenant
    tmp, program = Path(sys.argv[2]), Path(sys.argv[3])
    backend = ops.Backend(
        url=f"file://{tmp / 'state'}", secrets_provider="passphrase", state_dir=tmp / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp / "passphrase")},
    )
    stacks = ops.Stacks(backend, project_dir=program)
    changes = ops.preview(tenant(), stacks)
    (tmp / "state" / ".fake-pulumi" / "settings.json").write_text('{"delay": {"up": 120}}')
    ops.apply(tenant(), changes.fingerprint, stacks)
    """
)


def test_a_worker_killed_by_sigkill_leaves_no_cli_running(tmp_path: Path) -> None:
    backend(tmp_path)
    program = program_copy(tmp_path / "program")
    env = {**os.environ, "PATH": f"{FAKE}{os.pathsep}{os.environ['PATH']}"}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(ROOT), str(tmp_path), str(program)], env=env)
    try:
        up = running_up(tmp_path / "state")
        assert alive(up["pid"]) and up["pgid"] != worker.pid and up["pid"] in in_group(up["pgid"])
        assert os.getpgid(up["pid"]) == up["pgid"] != os.getpgid(worker.pid), "the CLI is in a group of its own"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_for(lambda: not in_group(up["pgid"]), 10), f"left running: {in_group(up['pgid'])}"
        assert not alive(up["pid"])
    finally:
        worker.kill()
        worker.wait()
    # What the killed `up` leaves is Pulumi's lock (automation/locks.py clears it once its owner is dead).
    locks = tmp_path / "state" / ".pulumi" / "locks" / "organization" / "scoutflo" / "acme"
    assert len(list(locks.iterdir())) == 1


def test_kill_ends_the_running_cli_group_and_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    guard = CliGuard()
    stacks = ops.Stacks(backend(tmp_path), project_dir=program_copy(tmp_path / "program"), guard=guard)
    changes = ops.preview(tenant(), stacks)
    slow_up(tmp_path / "state", 120)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ops.apply(tenant(), changes.fingerprint, stacks)
        except BaseException as err:  # noqa: BLE001 - inspected below
            errors.append(err)

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    up = running_up(tmp_path / "state")
    assert guard.groups() == {up["pgid"]}
    guard.kill()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - started < 60, "the apply ended with its CLI"
    assert isinstance(errors[0], ops.OperationFailed)
    assert wait_for(lambda: not in_group(up["pgid"]), 10) and guard.groups() == set()
    with pytest.raises(ops.OperationFailed, match="killed"):
        ops.preview(tenant(), stacks)


def test_a_failing_on_started_kills_the_cli_it_could_not_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    stacks = ops.Stacks(backend(tmp_path), project_dir=program_copy(tmp_path / "program"))
    changes = ops.preview(tenant(), stacks)
    slow_up(tmp_path / "state", 120)
    groups: list[int] = []

    def record(group: int) -> None:
        groups.append(group)
        running_up(tmp_path / "state")  # the `up` runs; recording it fails (the database is gone)
        raise ConnectionError("database unreachable")

    started = time.monotonic()
    with pytest.raises(ops.OperationFailed, match="database unreachable"):
        ops.apply(tenant(), changes.fingerprint, stacks, on_started=record)
    assert time.monotonic() - started < 60 and groups and not in_group(groups[0])
