"""automation/locks.py over the stand-in CLI: what a worker killed by SIGKILL mid-`up` leaves
(Pulumi's DIY lock with its owner's host, pid and time; the pending operations), proving the
owner dead, `pulumi cancel`, and `refresh` settling the pending creates."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automation import locks
from automation import operations as ops
from tests.program_copy import program_copy
from tests.test_guard import ROOT, WORKER, backend, in_group, running_up, slow_up, wait_for
from tests.test_operations import FAKE, tenant
from tests.test_operations_shared import MemoryBlocks


def test_a_killed_up_leaves_the_lock_and_pending_creates_and_recovery_clears_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = backend(tmp_path)
    program = program_copy(tmp_path / "program")
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(ROOT), str(tmp_path), str(program)], env=os.environ)
    try:
        up = running_up(tmp_path / "state")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_for(lambda: not in_group(up["pgid"]), 10)
    finally:
        worker.kill()
        worker.wait()
    (tmp_path / "state" / ".fake-pulumi" / "settings.json").write_text("{}")

    info = locks.diy_lock(base.url, "scoutflo", "acme")
    assert info is not None and info.pid == up["pid"] and info.hostname == socket.gethostname()
    assert abs(info.timestamp - datetime.fromtimestamp(float(up["time"]), UTC)) < timedelta(seconds=5)
    assert locks.owner_dead(info), "its CLI is gone"
    state = json.loads((tmp_path / "state" / ".pulumi" / "stacks" / "scoutflo" / "acme.json").read_text())
    pending = locks.pending_operations(state["deployment"])
    assert pending and {p["type"] for p in pending} == {"creating"}

    # Another host (state dir) now, the stack's secrets block restored as the service does:
    # every update answers stack-busy until the lock goes.
    block = ops.secrets_block(base.state_dir / "tenants" / "acme", "acme")
    stacks = ops.Stacks(
        ops.Backend(**{**base.__dict__, "state_dir": tmp_path / "host-b"}),
        project_dir=program,
        secrets_blocks=MemoryBlocks({"acme": block}),
    )
    again = ops.preview(tenant(), stacks)
    with pytest.raises(ops.StackBusy, match="locked by 1 lock"):
        ops.apply(tenant(), again.fingerprint, stacks)

    removed = locks.cancel(tenant(), stacks)  # read from the CLI's refusal: whole seconds (lock.go L106)
    assert [(i.pid, i.username, i.hostname) for i in removed] == [(info.pid, info.username, info.hostname)]
    assert abs(removed[0].timestamp - info.timestamp) < timedelta(seconds=1)
    assert locks.diy_lock(base.url, "scoutflo", "acme") is None

    kept = locks.refresh(tenant(), stacks, clear_pending_creates=False)
    assert kept["pendingBefore"] == pending and kept["pendingAfter"] == pending, "a refresh alone keeps pending creates"
    cleared = locks.refresh(tenant(), stacks, clear_pending_creates=True)
    assert cleared["pendingBefore"] == pending and cleared["pendingAfter"] == []
    assert cleared["updateVersion"] == kept["updateVersion"] + 1

    # The interrupted creates are shown again for a person to approve, then applied.
    fresh = ops.preview(tenant(), stacks)
    assert fresh.counts.get("create", 0) > 0
    result = ops.apply(tenant(), fresh.fingerprint, stacks, plan_sha256=fresh.plan_sha256)
    assert result["summary"]["create"] == fresh.counts["create"]


def test_a_lock_whose_owner_lives_is_never_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    program = program_copy(tmp_path / "program")
    base = backend(tmp_path)
    host_a = ops.Stacks(base, project_dir=program)
    changes = ops.preview(tenant(), host_a)
    # Host B opens the stack as a worker does, with the stack's secrets block from the service.
    block = ops.secrets_block(base.state_dir / "tenants" / "acme", "acme")
    host_b = ops.Stacks(
        ops.Backend(**{**base.__dict__, "state_dir": tmp_path / "host-b"}),
        project_dir=program,
        secrets_blocks=MemoryBlocks({"acme": block}),
    )
    slow_up(tmp_path / "state", 3)
    thread = threading.Thread(target=lambda: ops.apply(tenant(), changes.fingerprint, host_a))
    thread.start()
    try:
        up = running_up(tmp_path / "state")
        info = locks.diy_lock(base.url, "scoutflo", "acme")
        assert info is not None and info.pid == up["pid"]
        assert not locks.owner_dead(info)
        with pytest.raises(ops.StackBusy, match=f"pid {up['pid']}"):
            locks.cancel(tenant(), host_b)
        assert locks.diy_lock(base.url, "scoutflo", "acme") == info, "the live update's lock stays"
    finally:
        thread.join(60)
    assert locks.diy_lock(base.url, "scoutflo", "acme") is None, "its own update removed it"


def test_owner_dead_needs_proof() -> None:
    now = datetime.now(UTC)
    here = socket.gethostname()
    mine = locks.LockInfo(Path("x"), os.getpid(), "u", here, now)
    assert not locks.owner_dead(mine), "this live process took it"
    # The pid is alive but started after the lock was taken: the pid was reused.
    assert locks.owner_dead(locks.LockInfo(Path("x"), os.getpid(), "u", here, now - timedelta(days=3650)))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert locks.owner_dead(locks.LockInfo(Path("x"), child.pid, "u", here, now))
    elsewhere = locks.LockInfo(Path("x"), 4242, "u", "another-host", now)
    assert not locks.owner_dead(elsewhere), "another host's process: no proof without live_check"
    assert not locks.owner_dead(elsewhere, live_check=lambda info: None)
    assert not locks.owner_dead(elsewhere, live_check=lambda info: True)
    assert locks.owner_dead(elsewhere, live_check=lambda info: False)
    assert not locks.owner_dead(locks.LockInfo(Path("x"), 0, "", "", now)), "an unreadable lock"


def test_lock_files_are_read_as_the_cli_writes_them(tmp_path: Path) -> None:
    directory = tmp_path / ".pulumi" / "locks" / "organization" / "scoutflo" / "acme"
    directory.mkdir(parents=True)
    # lockContent as Go's json.Marshal writes it (time.Time: RFC 3339 with nanoseconds and the zone).
    (directory / "0b.json").write_text(
        '{"pid":31,"username":"ops","hostname":"w1","timestamp":"2026-12-06T04:01:02.123456789+02:00"}'
    )
    (directory / "0a.json").write_text("not json")
    found = locks.diy_locks(f"file://{tmp_path}", "scoutflo", "acme")
    assert [i.pid for i in found] == [0, 31]
    assert found[1].timestamp == datetime(2026, 12, 6, 2, 1, 2, 123456, UTC) and found[1].hostname == "w1"
    with pytest.raises(ops.InvalidSetup, match="cannot name a lock directory"):
        locks.diy_lock(f"file://{tmp_path}", "scoutflo", "../x")
