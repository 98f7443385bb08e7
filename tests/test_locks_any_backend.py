"""automation/locks.py reads Pulumi's DIY locks through the CLI, so crash recovery works on the
production state backend (s3://), not only on file://. The stand-in lays an s3:// bucket out in a
directory (FAKE_PULUMI_S3_ROOT) and prints its refusal as pkg/backend/diy/lock.go L85-L109 does,
the lock's URL as lockURLForError (L114-L128) makes it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automation import locks
from automation import operations as ops
from tests.program_copy import program_copy
from tests.test_operations import FAKE, tenant

# Verbatim shape of lock.go L87-L106 (two locks; the second written with a local offset).
REFUSAL = (
    "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`.\n"
    "  s3://state-bucket/.pulumi/locks/organization/scoutflo/acme/6f1c.json?region=eu-west-1: "
    "created by ops@ip-10-0-1-7 (pid 4242) at 2026-12-06T04:01:02Z\n"
    "  s3://state-bucket/.pulumi/locks/organization/scoutflo/acme/77aa.json?region=eu-west-1: "
    "created by DOMAIN\\svc@w2@odd (pid 17) at 2026-12-06T06:00:00+02:00\n"
)


def test_the_cli_refusal_is_read_lock_by_lock() -> None:
    found = locks.locks_from_refusal(REFUSAL)
    assert found is not None and [i.pid for i in found] == [17, 4242]
    assert found[0].timestamp == datetime(2026, 12, 6, 4, 0, 0, tzinfo=UTC)
    assert (found[1].username, found[1].hostname) == ("ops", "ip-10-0-1-7")
    assert found[1].url.startswith("s3://state-bucket/.pulumi/locks/organization/scoutflo/acme/6f1c.json")
    assert found[0].hostname == "odd", "the host is what follows the last @ (a user may hold one)"
    assert locks.locks_from_refusal("error: a stack named acme already exists") is None
    # Counted two, named one: the other is never proven dead.
    short = locks.locks_from_refusal(REFUSAL.rsplit("\n  s3://", 1)[0])
    assert short is not None and len(short) == 2 and any(i.pid == 0 for i in short)
    assert not any(locks.owner_dead(i, "ip-10-0-1-7") for i in short if i.pid == 0)


def s3_stacks(tmp_path: Path, program: Path) -> tuple[ops.Stacks, Path]:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    buckets = tmp_path / "buckets"
    (buckets / "state-bucket").mkdir(parents=True)
    backend = ops.Backend(
        url="s3://state-bucket?region=eu-west-1",
        secrets_provider="passphrase",
        state_dir=tmp_path / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase), "FAKE_PULUMI_S3_ROOT": str(buckets)},
    )
    lock_dir = buckets / "state-bucket" / ".pulumi" / "locks" / "organization" / "scoutflo" / "acme"
    return ops.Stacks(backend, project_dir=program), lock_dir


def write_lock(lock_dir: Path, pid: int, when: datetime) -> Path:
    """A lock as lockContent is marshalled (lock.go L39-L61; time.Time as RFC 3339 nanoseconds)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{uuid.uuid4()}.json"
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    path.write_text(json.dumps({"pid": pid, "username": "w", "hostname": socket.gethostname(), "timestamp": stamp}))
    return path


def test_recovery_removes_a_dead_owners_lock_on_s3_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    stacks, lock_dir = s3_stacks(tmp_path, program_copy(tmp_path / "program"))
    first = ops.preview(tenant(), stacks)
    assert locks.cancel(tenant(), stacks) == [], "no lock: nothing removed"

    # A worker's CLI killed mid-up on this host: its pid is gone.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = write_lock(lock_dir, child.pid, datetime.now(UTC) - timedelta(seconds=5))
    with pytest.raises(ops.StackBusy, match="locked by 1 lock"):
        ops.apply(tenant(), first.fingerprint, stacks, plan_sha256=first.plan_sha256)

    # A live process's lock (this test's own pid, taken after it started) is never removed.
    live = write_lock(lock_dir, os.getpid(), datetime.now(UTC))
    with pytest.raises(ops.StackBusy, match=f"pid {os.getpid()}"):
        locks.cancel(tenant(), stacks)
    assert dead.exists() and live.exists()
    live.unlink()

    removed = locks.cancel(tenant(), stacks)
    assert [i.pid for i in removed] == [child.pid] and removed[0].url.startswith("s3://state-bucket/.pulumi/locks/")
    assert not dead.exists()
    again = ops.preview(tenant(), stacks)
    result = ops.apply(tenant(), again.fingerprint, stacks, plan_sha256=again.plan_sha256)
    assert result["summary"].get("create", 0) > 0


def test_an_unreadable_lock_is_never_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI fails with the unmarshal error instead of listing the locks (lock.go L91-L99):
    the locks are unknown, so nothing is removed."""
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    stacks, lock_dir = s3_stacks(tmp_path, program_copy(tmp_path / "program"))
    ops.preview(tenant(), stacks)
    lock_dir.mkdir(parents=True, exist_ok=True)
    (lock_dir / "broken.json").write_text("not json")
    with pytest.raises(ops.StackBusy, match="could not be read"):
        locks.cancel(tenant(), stacks)
    assert (lock_dir / "broken.json").exists()


def test_a_tenant_without_a_stack_has_no_lock_to_cancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its first preview died before the stack was made: recovery goes on to the new preview."""
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    stacks, _ = s3_stacks(tmp_path, program_copy(tmp_path / "program"))
    assert locks.cancel(tenant(), stacks) == []
