"""The service's job side in-process against a real PostgreSQL: a worker's tenant fence
(service/worker.py: one session per tenant, freed by the server, its watchdog firing and killing
the job's CLI group when the session is lost, the heartbeat is stale or the apply is taken away),
the reaper's settling of operations whose job ended without an outcome (service/recovery.py), the
sweep's queued previews and how a scheduled preview is classed (service/schedule.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from automation import operations as ops
from service import jobs
from service.worker import FenceBusy, tenant_fence
from tests.service_harness import alive, wait


def fired(watch: Any) -> list[str]:
    calls: list[str] = []
    watch.on_lost(lambda: calls.append(watch.reason))
    return calls


def test_one_session_holds_a_tenant_and_its_end_frees_it(migrated_database: str) -> None:
    with tenant_fence(migrated_database, "acme", None, 30):
        with pytest.raises(FenceBusy), tenant_fence(migrated_database, "acme", None, 30):
            pass
        with tenant_fence(migrated_database, "other", None, 30):
            pass  # another tenant is not held
    with tenant_fence(migrated_database, "acme", None, 30):
        pass  # released with the block


def test_a_lost_session_fires_the_watch(migrated_database: str) -> None:
    with tenant_fence(migrated_database, "acme", None, 30, check_every=0.1) as watch:
        calls = fired(watch)
        with psycopg.connect(migrated_database, autocommit=True) as admin:
            # The server ends the fence's session (as a failover or a restart would).
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        wait(lambda: watch.lost.is_set(), 10)
        assert calls and "lost the database connection" in calls[0]
        # The server released the lock with the session: another worker may take the tenant now.
        with tenant_fence(migrated_database, "acme", None, 30):
            pass


def test_a_stale_heartbeat_or_an_apply_taken_away_fires_the_watch(migrated_database: str) -> None:
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '20 seconds') RETURNING id"
        ).fetchone()
        assert row is not None
        stale_worker = int(row[0])
        row = conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id").fetchone()
        assert row is not None
        live_worker = int(row[0])
    with tenant_fence(migrated_database, "acme", stale_worker, 30, check_every=0.1) as watch:
        wait(lambda: watch.lost.is_set(), 10)
        assert "heartbeat is" in watch.reason
    ours = threading.Event()
    ours.set()
    with tenant_fence(
        migrated_database, "acme", live_worker, 30, check_every=0.1, still_ours=lambda _: ours.is_set()
    ) as watch:
        calls = fired(watch)
        threading.Event().wait(0.5)
        assert not watch.lost.is_set()
        ours.clear()
        wait(lambda: watch.lost.is_set(), 10)
        assert calls == [watch.reason] and "no longer started" in watch.reason


def test_a_fired_watch_kills_the_jobs_cli_group(migrated_database: str, tmp_path: Path) -> None:
    """service/jobs.py guarded: the job's CLIs run under a CliGuard of its own, killed with the watch."""
    backend = ops.Backend(url=f"file://{tmp_path}/state", secrets_provider="passphrase", state_dir=tmp_path / "ws")
    runtime = SimpleNamespace(stacks=ops.Stacks(backend))
    with tenant_fence(migrated_database, "acme", None, 30, check_every=0.1) as watch:
        with jobs.guarded(runtime, watch) as stacks:  # type: ignore[arg-type]
            assert stacks.guard is not runtime.stacks.guard
            cli = stacks.guard.popen(["/bin/sleep", "60"], env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
            with psycopg.connect(migrated_database, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            wait(lambda: not alive(cli.pid), 10)
            assert stacks.guard.killed
            stacks.guard.finish(cli)


def test_a_scheduled_preview_is_an_upgrade_when_the_program_changed_since_the_last_apply(
    migrated_database: str,
) -> None:
    from dataclasses import replace

    from automation.changeset import changeset_from_events
    from service import schedule, store
    from tests import approval_events as ae

    change = changeset_from_events(ae.first_deploy(1), stack="acme", config_digest="hmac:one", plan_sha256="a" * 64)
    applied = replace(change, program_digest="program:one")
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        assert schedule.classify(conn, "acme", applied) == "drift"  # never applied: nothing to compare
        preview_id = store.insert_preview(conn, "acme", "request")
        store.finish_preview(conn, preview_id, changes=applied)
        _, apply_id = store.approve(conn, preview_id, applied.fingerprint, "alice", defer_apply=lambda c, a: None)
        store.start_apply(conn, apply_id, "w", "h", 1)
        store.finish_apply(conn, apply_id, status="succeeded")
        assert schedule.classify(conn, "acme", replace(change, program_digest="program:one")) == "drift"
        assert schedule.classify(conn, "acme", replace(change, program_digest="program:two")) == "upgrade"


def test_the_reaper_settles_an_apply_whose_job_ended_without_an_outcome(migrated_database: str) -> None:
    """The database went away mid-apply: the watchdog killed the CLI and the job failed before it
    could write `interrupted`. Once the apply's heartbeat is stale, the reaper settles it."""
    from dataclasses import replace

    from automation.changeset import changeset_from_events
    from service import recovery, store
    from tests import approval_events as ae

    change = changeset_from_events(ae.first_deploy(1), stack="acme", config_digest="hmac:one", plan_sha256="a" * 64)
    runtime = SimpleNamespace(settings=SimpleNamespace(database_url=migrated_database, heartbeat_stale_seconds=5))
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        preview_id = store.insert_preview(conn, "acme", "request")
        store.finish_preview(conn, preview_id, changes=change)
        _, apply_id = store.approve(conn, preview_id, change.fingerprint, "alice", defer_apply=jobs.defer_apply)
        store.start_apply(conn, apply_id, "w", "h", 1)
        conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE task_name = %s", (jobs.APPLY,))
        assert recovery.reap(runtime) == "nothing stalled"  # its heartbeat is fresh: still running
        conn.execute("UPDATE applies SET heartbeat = now() - interval '1 minute' WHERE id = %s", (apply_id,))
        assert "interrupted" in recovery.reap(runtime)
        assert store.get_apply(conn, apply_id).status == "interrupted"
        queued = conn.execute("SELECT task_name, args, lock FROM procrastinate_jobs WHERE status = 'todo'").fetchall()
        assert [(t, lock) for t, _, lock in queued] == [(jobs.RECOVER, "tenant:acme")]
        assert recovery.reap(runtime) == "nothing stalled"  # settled once

        # A preview whose job ended the same way: failed, so the tenant's sweep does not skip it forever.
        waiting = store.insert_preview(conn, "acme", "drift")
        jobs.defer_preview(conn, "acme", waiting)
        conn.execute("UPDATE previews SET created = now() - interval '1 minute' WHERE id = %s", (waiting,))
        assert recovery.reap(runtime) == "nothing stalled"  # its job still waits
        conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE task_name = %s", (jobs.PREVIEW,))
        assert "failed" in recovery.reap(runtime)
        assert store.get_preview(conn, waiting).status == "failed"
        # One recovery of a tenant waits at a time (queueing lock `recover:<id>`): the apply's covers it.
        assert conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s AND status = 'todo'", (jobs.RECOVER,)
        ).fetchone() == (1,)

        # An apply whose job failed before `queued → started` committed: queued again, once.
        third = store.insert_preview(conn, "acme", "request")
        store.finish_preview(conn, third, changes=replace(change, config_digest="hmac:two"))
        fingerprint = store.get_preview(conn, third).fingerprint
        assert fingerprint is not None
        _, queued_id = store.approve(conn, third, fingerprint, "alice", defer_apply=jobs.defer_apply)
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'failed' WHERE args ->> 'apply_id' = %s", (str(queued_id),)
        )
        conn.execute("UPDATE applies SET queued = now() - interval '1 minute' WHERE id = %s", (queued_id,))
        assert "queued again" in recovery.reap(runtime)
        again = conn.execute(
            "SELECT lock FROM procrastinate_jobs WHERE status = 'todo' AND args ->> 'apply_id' = %s", (str(queued_id),)
        ).fetchall()
        assert again == [("tenant:acme",)]
        assert "queued again" not in recovery.reap(runtime)


def test_a_sweep_queues_the_tenants_due_and_refuses_ids_that_are_not_tenant_ids(migrated_database: str) -> None:
    from service import schedule

    class Source:
        def ids(self) -> list[str]:
            return ["acme", "../etc", "other"]

    runtime = SimpleNamespace(
        settings=SimpleNamespace(database_url=migrated_database, drift_interval_hours=24),
        options=SimpleNamespace(sweep_every=300),
        source=Source(),
    )
    tick = schedule.slot("acme", 24 * 3600)
    result = schedule.sweep(runtime, tick)
    assert result.startswith(f"sweep {tick}: queued 1 (acme)") and "refused 1 ids" in result, result
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        jobs_ = conn.execute("SELECT task_name, args, lock, queueing_lock FROM procrastinate_jobs").fetchall()
        reasons = conn.execute("SELECT tenant, reason, status FROM previews").fetchall()
    assert reasons == [("acme", "drift", "running")]
    (preview_id,) = [args["preview_id"] for _, args, _, _ in jobs_]
    assert jobs_ == [(jobs.PREVIEW, {"preview_id": preview_id}, "tenant:acme", "preview:acme")]
