"""Crash recovery on an s3:// state backend (production's), with real workers: the stand-in lays
the bucket out in a directory (FAKE_PULUMI_S3_ROOT, tests/fake_pulumi/cli.py) and answers as the
DIY backend does for any bucket URL (lock.go L85-L128). Recovery used to stop with invalid-setup
on anything but file:// (it read lock files from the disk)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_harness import STALE, Service, alive, wait

APPROVER = "alice@example.com"


@pytest.fixture
def service(tmp_path: Path, migrated_database: str) -> Iterator[Service]:
    # The bucket `state` under tmp_path is the directory the harness reads (state/.fake-pulumi).
    svc = Service(tmp_path, migrated_database, extra_env={"SCOUTFLO_STATE_URL": "s3://state?region=eu-west-1"})
    inner = svc.root / "bin" / "pulumi-inner"
    (svc.root / "bin" / "pulumi").rename(inner)
    wrapper = svc.root / "bin" / "pulumi"
    wrapper.write_text(f'#!/bin/sh\nFAKE_PULUMI_S3_ROOT="{svc.root}" exec "{inner}" "$@"\n')
    wrapper.chmod(0o755)
    try:
        yield svc
    finally:
        svc.stop_all()


def lock_files(svc: Service, tenant: str) -> list[Path]:
    folder = svc.root / "state" / ".pulumi" / "locks" / "organization" / "scoutflo" / tenant
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_a_worker_killed_during_apply_recovers_on_s3_state(service: Service) -> None:
    service.add_tenant("s3kill")
    service.start_worker("host-a")
    preview_id = service.api().request_preview("s3kill")
    row = service.wait_preview(preview_id)
    assert row["status"] == "ready", row
    assert any(c["env"].get("PULUMI_BACKEND_URL") == "s3://state?region=eu-west-1" for c in service.calls()), (
        "the CLI ran against the s3:// backend"
    )
    service.fake_settings(delay={"up": 30})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    up = wait(lambda: service.ups("s3kill"), 30, service)[0]
    os.kill(service.workers["host-a"].pid, signal.SIGKILL)
    service.workers.pop("host-a").wait()
    wait(lambda: not alive(up["pid"]), 5)
    assert lock_files(service, "s3kill"), "the killed up left Pulumi's lock in the bucket"
    service.fake_settings()

    service.start_worker("host-b")
    assert service.wait_apply(approval.apply_id, timeout=STALE + 30)["status"] == "interrupted"
    fresh = service.wait_next_preview("s3kill", row["id"], 30)
    assert fresh["status"] == "ready", fresh
    assert lock_files(service, "s3kill") == [], "the dead owner's lock was cancelled"
    assert len(service.ups("s3kill")) == 1
    again = service.api().approve(fresh["id"], fresh["fingerprint"], APPROVER)
    assert service.wait_apply(again.apply_id)["status"] == "succeeded"
    assert service.overlaps() == []
