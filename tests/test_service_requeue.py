"""A preview refused by the tenant's fence, with a real Procrastinate worker (in this process, so
the test can hold the job between its fetch and its refusal) on the real PostgreSQL
(tests/postgres.py): it never stays `doing` (service/jobs.py `_again`); nor does a recovery."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import psycopg

from service import jobs, store
from service.worker import tenant_fence
from tests.service_harness import wait

YEARLY = "0 0 1 1 *"  # no reap nor sweep runs during the test


class GatedTenants:
    """The tenant source the job reads first (service/jobs.py run_preview): it holds the first
    job's call until the test lets it go, so a second preview is asked for while the job is `doing`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()

    def get(self, tenant: str) -> str:
        self.entered.set()
        assert self.go.wait(10)
        return tenant


def ask_preview(conn: psycopg.Connection[Any], tenant: str) -> tuple[int, int | None]:
    """What ServiceApi.request_preview does (service/api.py), without its tenant check."""
    with conn.transaction():
        preview_id = store.insert_preview(conn, tenant, "request")
        return preview_id, jobs.defer_preview(conn, tenant, preview_id)


@contextmanager
def in_process_worker(database_url: str, source: GatedTenants) -> Iterator[None]:
    """service/jobs.py's App and Procrastinate Worker, as `python -m automation worker` runs them
    (service/worker.py serve), in a thread of this process."""
    settings = SimpleNamespace(database_url=database_url, heartbeat_stale_seconds=30)
    runtime = SimpleNamespace(settings=settings, source=source, host="in-test")
    app = jobs.make_app(settings, runtime=runtime, reap_cron=YEARLY, sweep_cron=YEARLY)  # type: ignore[arg-type]
    worker = jobs.new_worker(
        app,
        SimpleNamespace(
            display_name=lambda: "in-test", concurrency=1, poll_interval=0.2, heartbeat_interval=1.0, stale_after=30.0
        ),
    )

    async def serve() -> None:
        async with app.open_async():
            await worker.run()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def job_rows(conn: psycopg.Connection[Any], task: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT status, args, lock, queueing_lock, scheduled_at > now() + interval '2 seconds'"
        " FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
        (task,),
    ).fetchall()


def test_a_preview_refused_by_the_fence_while_another_was_asked_for_never_stays_doing(
    migrated_database: str,
) -> None:
    """Before the fix: Procrastinate's retry of the refused job met the second preview's job on the
    queueing lock (UniqueViolation in the worker's _persist_job_status), and the first job stayed
    `doing` while its worker lived, holding `tenant:acme`, so the second never ran."""
    source = GatedTenants()
    # Another session holds the tenant (a worker declared dead that is still connected): FenceBusy.
    with tenant_fence(migrated_database, "acme", None, 30), psycopg.connect(migrated_database, autocommit=True) as conn:
        first, first_job = ask_preview(conn, "acme")
        assert first_job is not None
        with in_process_worker(migrated_database, source):
            assert source.entered.wait(10)
            assert job_rows(conn, jobs.PREVIEW)[0][0] == "doing"
            # Asked for while the first job runs: its queueing lock is free (it covers `todo` only).
            second, second_job = ask_preview(conn, "acme")
            assert second_job is not None
            source.go.set()
            # The first closes as superseded (a preview waits), its job done; the second runs,
            # is refused in turn, and waits again as a new job under both locks, ~5 s later.
            expected = [("todo", {"preview_id": second, "attempt": 1}, "tenant:acme", "preview:acme", True)]
            wait(lambda: job_rows(conn, jobs.PREVIEW) == expected, 5)
            assert store.get_preview(conn, first).status == "superseded"
            assert store.get_preview(conn, second).status == "running"
            # A person asking now gets the waiting preview (nothing new queued).
            with conn.transaction() as attempt:
                extra = store.insert_preview(conn, "acme", "request")
                assert jobs.defer_preview(conn, "acme", extra) is None
                raise psycopg.Rollback(attempt)


def test_a_recovery_refused_while_another_was_queued_never_stays_doing(migrated_database: str) -> None:
    """The same with the recovery's queueing lock `recover:<tenant>` (a reaper queues a recovery
    while one runs): the refused one waits again, still before the other, neither is dropped."""
    source = GatedTenants()
    with tenant_fence(migrated_database, "acme", None, 30), psycopg.connect(migrated_database, autocommit=True) as conn:
        _, dead = ask_preview(conn, "acme")  # the job whose worker died: its subject
        assert dead is not None
        conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (dead,))
        assert jobs.defer_recover(conn, "acme", dead) is not None
        with in_process_worker(migrated_database, source):
            assert source.entered.wait(10)
            assert job_rows(conn, jobs.RECOVER)[0][0] == "doing"
            assert jobs.defer_recover(conn, "acme", dead) is not None
            source.go.set()
            expected = [
                ("todo", {"job_id": dead}, "tenant:acme", "recover:acme", None),  # the one that waited
                # The first, again, ~5 s later, without the queueing lock that one holds, and still
                # first (service/jobs.py RECOVER_AGAIN_PRIORITY): that one does not run before it.
                ("todo", {"job_id": dead, "attempt": 1}, "tenant:acme", None, True),
            ]
            wait(lambda: job_rows(conn, jobs.RECOVER) == expected, 5)
            for _ in range(20):
                assert job_rows(conn, jobs.RECOVER) == expected
                threading.Event().wait(0.1)


def test_a_recovery_queued_again_still_runs_before_the_tenants_later_jobs(migrated_database: str) -> None:
    """A refused recovery waits again as a new job, with a new id: a preview asked for while it ran
    (an older id) would be fetched first (procrastinate_fetch_job_v2 orders a lock's `todo` jobs by
    priority, then id, and lets the first block the rest, schema.sql L210-L262), and would preview
    the tenant before its lock is cleared and its pending operations settled. Procrastinate's retry
    kept the recovery's id; the new job keeps its place by a higher priority."""
    source = GatedTenants()
    with tenant_fence(migrated_database, "acme", None, 30), psycopg.connect(migrated_database, autocommit=True) as conn:
        _, dead = ask_preview(conn, "acme")
        assert dead is not None
        conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (dead,))
        assert jobs.defer_recover(conn, "acme", dead) is not None
        with in_process_worker(migrated_database, source):
            assert source.entered.wait(10)
            asked, asked_job = ask_preview(conn, "acme")  # a person asks while the recovery runs
            assert asked_job is not None
            source.go.set()
            wait(lambda: [r[4] for r in job_rows(conn, jobs.RECOVER)] == [True], 5)  # waits again, ~5 s
            # The preview stays behind it: not fetched (it would be refused and queued again, too).
            for _ in range(20):
                assert job_rows(conn, jobs.PREVIEW)[-1][:2] == ("todo", {"preview_id": asked}), "ran first"
                threading.Event().wait(0.1)
