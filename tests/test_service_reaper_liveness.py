"""The reaper must outlive a worker that dies while reaping. A job's Procrastinate `lock` stays
taken while the job is `doing` (procrastinate_fetch_job_v2 skips a job whose lock has a `doing`
job, sql/schema.sql L210-L262 in 3.10.0), and only the reaper finishes a dead worker's job: a
reap job holding a lock of its own, left `doing` by a worker killed mid-reap (SIGKILL, host lost,
or the database lost while it ran), would block every later reap, and with it all recovery."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg

from service import jobs


def _worker(conn: psycopg.Connection[Any], stale: bool) -> int:
    row = conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - make_interval(secs => %s)) RETURNING id",
        (3600 if stale else 0,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _fetch(conn: psycopg.Connection[Any], worker_id: int) -> Any:
    return conn.execute("SELECT id, task_name FROM procrastinate_fetch_job_v2(NULL, %s)", (worker_id,)).fetchone()


def test_a_reap_job_left_doing_by_a_dead_worker_does_not_block_the_next(migrated_database: str) -> None:
    app = jobs.make_app(SimpleNamespace(database_url=migrated_database))
    reap = app.tasks[jobs.REAP]
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        dead, alive = _worker(conn, stale=True), _worker(conn, stale=False)
        first = reap.configure(connection=conn).defer(timestamp=1)
        assert _fetch(conn, dead)[0] == first  # the dead worker had taken it: `doing` forever
        second = reap.configure(connection=conn).defer(timestamp=2)
        fetched = _fetch(conn, alive)
        assert fetched is not None and fetched[0] == second, "the next reap must run"
        # And the reaper finds the first one among the stalled jobs (it then fails it).
        assert first in [j["id"] for j in jobs.stalled_jobs(conn, 60)]


def test_two_reaps_never_overlap_and_a_dead_reapers_session_frees_it(migrated_database: str) -> None:
    from service import recovery

    runtime = SimpleNamespace(settings=SimpleNamespace(database_url=migrated_database, heartbeat_stale_seconds=60))
    holder = psycopg.connect(migrated_database, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s, 0)", (recovery.LOCK_CLASS_REAPER,))
    assert recovery.reap(runtime) == "another reaper is running"
    holder.close()  # the reaper's session ended (its worker died): the next reap runs
    assert recovery.reap(runtime) == "nothing stalled"


def _approved(conn: psycopg.Connection[Any], tenant: str) -> int:
    """An approved preview of `tenant`; its apply job queued (service.store.approve)."""
    from automation.changeset import changeset_from_events
    from service import store
    from tests import approval_events as ae

    change = changeset_from_events(ae.first_deploy(1), stack=tenant, config_digest="hmac:x", plan_sha256="b" * 64)
    preview_id = store.insert_preview(conn, tenant, "request")
    store.finish_preview(conn, preview_id, changes=change)
    _, apply_id = store.approve(conn, preview_id, change.fingerprint, "alice", defer_apply=jobs.defer_apply)
    return int(apply_id)


def test_a_worker_killed_before_start_apply_or_between_start_and_up(migrated_database: str) -> None:
    """SIGKILL before `queued → started` committed: the job goes back to `todo` and runs once on
    another worker. After it (before or during `up`): `interrupted`, never retried, the job failed
    (the tenant's lock freed) and the tenant's recovery queued."""
    from service import recovery, store

    runtime = SimpleNamespace(settings=SimpleNamespace(database_url=migrated_database, heartbeat_stale_seconds=60))
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        dead, alive = _worker(conn, stale=True), _worker(conn, stale=False)
        early = _approved(conn, "early")
        job = _fetch(conn, dead)[0]
        assert "queued again" in recovery.reap(runtime)
        assert store.get_apply(conn, early).status == "queued"
        assert _fetch(conn, alive)[0] == job, "the same job, once, on a live worker"

        late = _approved(conn, "late")
        job = _fetch(conn, dead)[0]
        store.start_apply(conn, late, "w", "h", 1)
        assert "interrupted" in recovery.reap(runtime)
        assert store.get_apply(conn, late).status == "interrupted"
        statuses: dict[str, str] = dict(
            conn.execute("SELECT task_name, status FROM procrastinate_jobs WHERE lock = 'tenant:late'")
        )
        assert statuses == {jobs.APPLY: "failed", jobs.RECOVER: "todo"}
        assert _fetch(conn, alive)[1] == jobs.RECOVER
        assert recovery.reap(runtime) == "nothing stalled", "nothing is retried by itself"
