"""Crash recovery: the reaper (a periodic job) and the recovery of one tenant (a tenant job).

A worker that dies (SIGKILL, OOM, host lost) leaves its job `doing` in procrastinate_jobs, and
Procrastinate's lock `tenant:<id>` taken by it: nothing else of that tenant runs until the job is
finished (procrastinate_fetch_job_v2, schema.sql L210-L262 in 3.10.0). Procrastinate itself does
not finish or retry such a job; it offers the query that finds it: jobs `doing` on a worker whose
heartbeat is older than N seconds, or whose worker row was pruned (JobManager.get_stalled_jobs,
manager.py L223-L273; queries.sql `select_stalled_jobs_by_heartbeat`).

`reap` (every minute on some worker) takes each such job and, in one transaction:
- an apply that had started: `interrupted` (never retried by itself: its plan was made for a state
  the killed `up` may have changed half-way), the job failed (its lock frees), and the tenant's
  recovery queued under the tenant's lock;
- an apply still `queued` (the worker died before starting it): the job back to `todo` (nothing ran);
- a preview: failed, the job failed, recovery queued (a preview itself takes no DIY lock,
  pulumi/pulumi 1b5949891b pkg/backend/diy/backend.go L1197-L1201, but creating the stack in a
  tenant's first preview does, L870-L874, so a killed one may leave it);
- a recovery: the job failed and queued again; a reap, sweep or prune job: the job failed.
It also settles an apply left `started` by a job that ended without recording its outcome
(`_orphaned_applies`): interrupted, recovery queued.

`recover` (the tenant's job) then, holding the tenant's session fence (service/worker.py: a
worker declared dead that is still connected holds it, and recovery waits):
1. Pulumi's DIY lock: read it through the CLI's refusal, on any DIY backend (automation/locks.py
   stack_locks); remove it with `pulumi cancel` only once its
   owner is proven dead: by automation/locks.owner_dead (same host: the pid is gone), or, for a
   lock of the host the dead apply ran on (applies.host), by our fences: the fence is free (the
   dead worker's database session ended, and its CLI died with it through PR_SET_PDEATHSIG, or
   was killed by its watchdog once the session was lost). Any other lock makes recovery wait.
2. After an apply: `pulumi refresh --clear-pending-creates` settles the operations the killed `up`
   left pending (docs/service.md says why clear, not import).
3. A new preview (same reason) queued behind it: a person approves again what is left to do.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from service import db, jobs, store
from service.errors import PreviewFinished, PreviewNotReady, UnknownApply, UnknownPreview
from service.worker import tenant_fence

log = logging.getLogger("scoutflo.recovery")

LOCK_CLASS_REAPER = 0x5C0F_0004
"""Session advisory lock (class, 0) of the running reaper (service/db.py and service/worker.py use
0x5C0F_0001..3)."""


def reap(runtime: Any) -> str:
    """One pass over the stalled jobs; returns what it did (the job's result, in the logs)."""
    url = runtime.settings.database_url
    done: list[str] = []
    with db.connect(url, autocommit=True) as conn:
        # One reaper at a time, on any worker; a session lock (not a Procrastinate job lock,
        # service/jobs.py says why): the server frees it when this session ends, however.
        got = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (LOCK_CLASS_REAPER,)).fetchone()
        if not got or not got[0]:
            return "another reaper is running"
        for job in jobs.stalled_jobs(conn, runtime.settings.heartbeat_stale_seconds):
            try:
                done.append(reap_one(conn, job))
            except (UnknownApply, UnknownPreview) as err:
                jobs.fail_dead_job(conn, job["id"])
                done.append(f"job {job['id']}: {err}")
        done += _orphaned_applies(conn, runtime.settings.heartbeat_stale_seconds)
        done += _orphaned_previews(conn, runtime.settings.heartbeat_stale_seconds)
    return "; ".join(done) or "nothing stalled"


def _orphaned_previews(conn: Any, stale_after: float) -> list[str]:
    """Previews still `running` with no preview job waiting or running for them (their job ended
    without recording the outcome): failed, so the tenant's status says so and the daily sweep,
    which skips a tenant with a preview open, does not skip it forever. A preview and its job are
    written in one transaction (service/api.py, schedule.py, recovery), so a running preview
    without a job is one whose job is over."""
    rows = conn.execute(
        "SELECT p.id, p.tenant, (SELECT max(j.id) FROM procrastinate_jobs j WHERE j.task_name = %s"
        "  AND (j.args ->> 'preview_id')::bigint = p.id) FROM previews p"
        " WHERE p.status = 'running' AND p.created < now() - make_interval(secs => %s)"
        " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s"
        " AND (j.args ->> 'preview_id')::bigint = p.id AND j.status IN ('todo', 'doing'))",
        (jobs.PREVIEW, stale_after, jobs.PREVIEW),
    ).fetchall()
    done = []
    for preview_id, tenant, job_id in rows:
        try:
            with conn.transaction():
                store.finish_preview(conn, int(preview_id), error="its job ended without an outcome")
                if job_id is not None:
                    # It may have been cut short with Pulumi's lock held: recovered like a dead one.
                    jobs.defer_recover(conn, tenant, int(job_id))
        except (PreviewFinished, PreviewNotReady):
            continue  # finished meanwhile
        done.append(f"preview {preview_id}: failed (its job ended without an outcome); recovery queued")
    return done


def _requeued_applies(conn: Any, stale_after: float) -> list[str]:
    """Applies still `queued` with no apply job waiting or running (their job failed before
    start_apply committed: the database went away): queued again. Safe, as every apply job only
    runs past `queued → started` (service/store.py start_apply)."""
    rows = conn.execute(
        "SELECT a.id FROM applies a WHERE a.status = 'queued' AND a.queued < now() - make_interval(secs => %s)"
        " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s"
        " AND (j.args ->> 'apply_id')::bigint = a.id AND j.status IN ('todo', 'doing'))",
        (stale_after, jobs.APPLY),
    ).fetchall()
    for (apply_id,) in rows:
        with conn.transaction():
            jobs.defer_apply(conn, int(apply_id))
    return [f"apply {apply_id}: queued again (its job ended before it started)" for (apply_id,) in rows]


def _orphaned_applies(conn: Any, stale_after: float) -> list[str]:
    """Applies still `started` whose job is no longer running: the worker lived, but its job ended
    without recording the outcome (the database went away mid-apply: the fence's watchdog killed
    the CLI, and the job failed writing `interrupted`). Their heartbeat (applies.heartbeat, kept by
    the fence's probe, service/store.py heartbeat) has stopped; nothing else would settle them."""
    rows = conn.execute(
        "SELECT a.id, max(j.id) FROM applies a JOIN procrastinate_jobs j"
        " ON j.task_name = %s AND (j.args ->> 'apply_id')::bigint = a.id"
        " WHERE a.status = 'started' AND a.heartbeat < now() - make_interval(secs => %s)"
        " GROUP BY a.id HAVING bool_and(j.status <> 'doing')",
        (jobs.APPLY, stale_after),
    ).fetchall()
    done = _requeued_applies(conn, stale_after)
    for apply_id, job_id in rows:
        with conn.transaction():
            apply = store.get_apply(conn, int(apply_id))
            if apply.status != "started":
                continue
            store.finish_apply(conn, apply.id, status="interrupted", error="its job ended without an outcome")
            jobs.defer_recover(conn, apply.tenant, int(job_id))
        done.append(f"apply {apply.id}: interrupted (its job ended without an outcome); recovery queued")
    return done


def reap_one(conn: Any, job: dict[str, Any]) -> str:
    """Settle one stalled job (see the module's docstring), in one transaction."""
    job_id, task, args = int(job["id"]), str(job["task_name"]), dict(job["args"] or {})
    with conn.transaction():
        if task == jobs.APPLY:
            apply = store.get_apply(conn, int(args["apply_id"]))
            if apply.status == "queued":
                jobs.retry_dead_job(conn, job_id)
                return f"apply {apply.id}: its worker died before it started; queued again"
            if apply.status != "started":
                jobs.fail_dead_job(conn, job_id)
                return f"apply {apply.id}: {apply.status} already; its job closed"
            store.finish_apply(
                conn,
                apply.id,
                status="interrupted",
                error=f"the worker {apply.worker} on {apply.host} died during the apply (heartbeat stale)",
            )
            jobs.fail_dead_job(conn, job_id)
            jobs.defer_recover(conn, apply.tenant, job_id)
            log.warning("apply %s of %s interrupted: its worker died; recovery queued", apply.id, apply.tenant)
            return f"apply {apply.id}: interrupted; recovery of {apply.tenant} queued"
        if task == jobs.PREVIEW:
            preview = store.get_preview(conn, int(args["preview_id"]))
            if preview.status == "running":
                store.finish_preview(conn, preview.id, error="interrupted: its worker died (heartbeat stale)")
            jobs.fail_dead_job(conn, job_id)
            jobs.defer_recover(conn, preview.tenant, job_id)
            return f"preview {preview.id}: its worker died; recovery of {preview.tenant} queued"
        jobs.fail_dead_job(conn, job_id)
        if task == jobs.RECOVER:
            original = int(args["job_id"])
            subject = _subject(conn, original)
            if subject is not None:
                jobs.defer_recover(conn, subject[0], original)
            return f"recovery job {job_id}: its worker died; queued again"
        return f"{task} job {job_id}: its worker died; closed"


def _subject(conn: Any, job_id: int) -> tuple[str, str, str, str | None] | None:
    """(tenant, task, reason for the new preview, host of the dead worker if known) of the job."""
    found = jobs.job_args(conn, job_id)
    if found is None:
        return None
    task, args = found
    if task == jobs.APPLY:
        apply = store.get_apply(conn, int(args["apply_id"]))
        return apply.tenant, task, store.get_preview(conn, apply.preview_id).reason, apply.host
    if task == jobs.PREVIEW:
        preview = store.get_preview(conn, int(args["preview_id"]))
        return preview.tenant, task, preview.reason, None
    return None


def recover(runtime: Any, worker_id: int | None, job_id: int) -> str:
    """Bring the tenant of the dead job `job_id` back to a state a new preview can describe."""
    from automation import locks

    url = runtime.settings.database_url
    with db.connect(url, autocommit=True) as conn:
        subject = _subject(conn, job_id)
        if subject is None:
            return f"job {job_id}: nothing to recover"
        tenant_id, task, reason, dead_host = subject
        tenant = runtime.source.get(tenant_id)
        stale = runtime.settings.heartbeat_stale_seconds
        with tenant_fence(url, tenant_id, worker_id, stale) as watch, jobs.guarded(runtime, watch) as stacks:
            # Refuses (StackBusy, retried later) while a lock's owner is not proven dead.
            removed = locks.cancel(
                tenant, stacks, this_host=runtime.host, live_check=lambda info: _alive(info, runtime.host, dead_host)
            )
            settled: dict[str, Any] = {}
            if task == jobs.APPLY:
                settled = locks.refresh(
                    tenant, stacks, clear_pending_creates=True, message=f"scoutflo recovery after job {job_id}"
                )
        preview_id: int | None = None
        with conn.transaction() as attempt:
            preview_id = store.insert_preview(conn, tenant_id, reason)  # type: ignore[arg-type]
            if jobs.defer_preview(conn, tenant_id, preview_id) is None:
                # A preview job of the tenant waits already (asked for during the recovery; the
                # queueing lock keeps one): it runs after this job, on the state left now. A row
                # of ours without a job would supersede it, then fail unrun.
                preview_id = None
                raise psycopg.Rollback(attempt)
        log.warning(
            "tenant %s recovered: %d Pulumi lock(s) removed, pending operations %s settled; preview %s queued",
            tenant_id,
            len(removed),
            settled.get("pendingBefore", []),
            preview_id or "(one already waiting)",
        )
        queued = f"preview {preview_id} queued" if preview_id else "a preview already waits"
        return f"tenant {tenant_id} recovered ({len(removed)} lock(s) removed); {queued}"


def _alive(info: Any, this_host: str, dead_host: str | None) -> bool | None:
    """automation/locks.py owner_dead's question for a lock of another host: False (dead) for a
    lock taken on the host of the worker whose apply died. We hold the tenant's session fence, so
    that worker's database session has ended; its CLI died with it (PR_SET_PDEATHSIG through
    automation/guard.py) or was killed by its watchdog once the session was lost. None (not
    proven) for any other host: a person's CLI run outside the service is never cancelled."""
    host = getattr(info, "hostname", None)
    if dead_host is not None and host == dead_host and host != this_host:
        return False
    return None
