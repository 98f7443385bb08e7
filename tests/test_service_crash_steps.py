"""SIGKILL of a worker at the steps of an apply the other tests do not reach: after `up` finished
(state written, Pulumi's lock released) but before finish_apply recorded it. The apply is
`interrupted` (its outcome unknown to the service), never run again; the recovery finds no lock
and nothing pending, and the new preview finds nothing left to do (`empty`), so nothing stays open.
Also: a second worker started while the first holds the tenant runs nothing of it."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from tests.service_harness import STALE, Service, alive, secrets_of, wait

APPROVER = "alice@example.com"


def history(svc: Service, tenant: str) -> list[dict[str, Any]]:
    folder = svc.root / "state" / ".pulumi" / "history" / "scoutflo" / tenant
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.history.json"))] if folder.exists() else []


def assert_no_secret_in_logs_or_plans(service: Service, tenant: str) -> None:
    """What the worker logged (job results, warnings, errors) and every stored plan and record."""
    secrets = secrets_of(service.specs[tenant])
    assert secrets
    texts = {f"log {p.name}": p.read_text(errors="replace") for p in (service.root / "logs").glob("*")}
    texts |= {f"plan store {p.name}": p.read_text(errors="replace") for p in (service.root / "plans").glob("*")}
    assert len(texts) > 2
    leaked = {name: [s for s in secrets if s in text] for name, text in texts.items()}
    assert not {k: v for k, v in leaked.items() if v}, leaked


def test_killed_after_up_before_finish_apply(service: Service) -> None:
    service.add_tenant("late")
    service.start_worker("host-a")
    preview_id = service.api().request_preview("late")
    row = service.wait_preview(preview_id)
    assert row["status"] == "ready", row
    service.fake_settings(delay_after={"up": 30})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    # The update is complete and recorded in the stack's history; the CLI has not exited yet.
    wait(lambda: [h for h in history(service, "late") if h["kind"] == "update"], 30, service)
    up = service.ups("late")[0]
    assert alive(up["pid"])
    os.kill(service.workers["host-a"].pid, signal.SIGKILL)
    service.workers.pop("host-a").wait()
    wait(lambda: not alive(up["pid"]), 5)
    service.fake_settings()
    assert service.apply(approval.apply_id)["status"] == "started"

    service.start_worker("host-b")
    assert service.wait_apply(approval.apply_id, timeout=STALE + 30)["status"] == "interrupted"
    fresh = service.wait_next_preview("late", row["id"], 30)
    # The update had finished: nothing is left to approve, and nothing stays open.
    assert fresh["status"] == "empty", fresh
    assert len(service.ups("late")) == 1, "the interrupted approval is never applied again"
    assert [h["message"] for h in history(service, "late") if h["kind"] == "update"] == [
        f"approval {approval.approval_id} by {APPROVER}"
    ]
    assert service.rows("SELECT id FROM previews WHERE tenant = 'late' AND status IN ('running', 'ready')") == []
    assert service.overlaps() == []
    assert_no_secret_in_logs_or_plans(service, "late")


def test_a_second_worker_started_while_one_holds_the_tenant_runs_nothing_of_it(service: Service) -> None:
    service.add_tenant("held")
    service.start_worker("host-a")
    preview_id = service.api().request_preview("held")
    row = service.wait_preview(preview_id)
    service.fake_settings(delay={"up": 4})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    wait(lambda: service.ups("held"), 30, service)
    service.start_worker("host-b")
    # A preview asked for meanwhile waits behind the apply on the tenant's lock, whichever host.
    second = service.api().request_preview("held")
    assert service.wait_apply(approval.apply_id)["status"] == "succeeded"
    assert service.wait_preview(second)["status"] == "empty"
    assert len(service.ups("held")) == 1
    assert service.overlaps() == [], "never two CLIs of one tenant at once"


def test_the_database_lost_mid_up_kills_the_cli_and_the_tenant_recovers(service: Service, postgres: Any) -> None:
    """The watchdog's promise (service/worker.py tenant_fence): the database gone during `up`, the
    CLI's group is killed within half the stale time, before any reaper could take the worker for
    dead; once the database is back the apply is `interrupted`, never run again, and the tenant
    recovers (lock removed, pending creates cleared, a new preview) by itself."""
    import time

    service.add_tenant("dbgone")
    service.start_worker("host-a")
    preview_id = service.api().request_preview("dbgone")
    row = service.wait_preview(preview_id)
    service.fake_settings(delay={"up": 60})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    up = wait(lambda: service.ups("dbgone"), 30, service)[0]
    postgres.stop("immediate")
    try:
        stopped = time.monotonic()
        wait(lambda: not alive(up["pid"]), STALE, service)
        assert time.monotonic() - stopped < STALE, "the CLI outlived the reaper's limit"
        assert service.workers["host-a"].poll() is None, "the worker itself lives on"
    finally:
        postgres.start()
    service.fake_settings()
    assert service.wait_apply(approval.apply_id, timeout=STALE + 60)["status"] == "interrupted"
    fresh = service.wait_next_preview("dbgone", row["id"], 60)
    assert fresh["status"] == "ready", fresh
    assert len(service.ups("dbgone")) == 1
    again = service.api().approve(fresh["id"], fresh["fingerprint"], APPROVER)
    assert service.wait_apply(again.apply_id)["status"] == "succeeded"
    assert service.overlaps() == []
    assert_no_secret_in_logs_or_plans(service, "dbgone")


def test_a_preview_asked_for_during_a_recovery_is_not_lost(service: Service) -> None:
    """A person asks for a preview while the tenant's recovery waits (a Pulumi lock whose owner
    lives). The recovery must not leave a preview row without a job (its defer meets the waiting
    preview's queueing lock), which would supersede the person's preview and then fail unrun."""
    import socket
    import subprocess
    import time
    import uuid

    service.add_tenant("asked")
    service.start_worker("host-a")
    row = service.wait_preview(service.api().request_preview("asked"))
    service.fake_settings(delay={"up": 30})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    up = wait(lambda: service.ups("asked"), 30, service)[0]
    os.kill(service.workers["host-a"].pid, signal.SIGKILL)
    service.workers.pop("host-a").wait()
    wait(lambda: not alive(up["pid"]), 5)
    service.fake_settings()
    # A live process on this host holds a lock too: the recovery waits for it (StackBusy, retried).
    holder = subprocess.Popen(["sleep", "300"])
    lock_dir = service.root / "state" / ".pulumi" / "locks" / "organization" / "scoutflo" / "asked"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    (lock_dir / f"{uuid.uuid4()}.json").write_text(
        json.dumps({"pid": holder.pid, "username": "ops", "hostname": socket.gethostname(), "timestamp": stamp})
    )
    try:
        service.start_worker("host-b")
        assert service.wait_apply(approval.apply_id, timeout=STALE + 30)["status"] == "interrupted"
        wait(
            lambda: service.rows(
                "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'recover_job' AND args ? 'attempt'"
            ),
            30,
            service,
        )
        asked = service.api().request_preview("asked")
    finally:
        holder.kill()
        holder.wait()
    done = service.wait_preview(asked, timeout=60)
    assert done["status"] == "ready", done
    time.sleep(2)
    assert service.rows("SELECT id, status FROM previews WHERE tenant = 'asked' AND status = 'running'") == []
    assert service.api().latest_preview("asked").id == asked  # type: ignore[union-attr]
    assert len(service.ups("asked")) == 1
