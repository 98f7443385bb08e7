"""The service's jobs on Procrastinate 3.10 (the only module that imports it: the engine can change).

Jobs carry ids only (`preview_id`, `apply_id`, a periodic `timestamp`): never a spec, never a
credential. Every job of a tenant is deferred with Procrastinate's `lock=f"tenant:{id}"`: a job is
fetched only when no job of its lock is `doing` and none of its lock is older in `todo`
(procrastinate_fetch_job_v2, sql/schema.sql L210-L262 in 3.10.0), and a unique index allows one
`doing` job per lock (schema.sql L102). So one tenant's preview, apply and recovery run one at a
time, in the order they were queued, on whichever host. Previews are also deferred with
`queueing_lock=f"preview:{id}"`: one waiting preview per tenant (unique index over `todo` jobs,
schema.sql L100; a second defer raises AlreadyEnqueued, manager.py L147-L155).

The lock of a job whose worker died stays taken (the row stays `doing`) until someone finishes the
job: service/recovery.py does, for a worker whose heartbeat is stale.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as pexc
from procrastinate import sql as psql
from psycopg.rows import dict_row

from automation import operations as ops
from service import db
from service.errors import ApplyReplayed
from service.tenants import TenantSource, load_source
from service.worker import FenceBusy, tenant_fence

log = logging.getLogger("scoutflo.jobs")

PREVIEW, APPLY, RECOVER, REAP, SWEEP, PRUNE = (
    "preview_job",
    "apply_job",
    "recover_job",
    "reap_job",
    "sweep_job",
    "prune_plans_job",
)


def tenant_lock(tenant: str) -> str:
    return f"tenant:{tenant}"


def preview_queueing_lock(tenant: str) -> str:
    return f"preview:{tenant}"


# ---------------------------------------------------------------- deferring (in the caller's transaction)

_DEFERRER = procrastinate.App(connector=procrastinate.PsycopgConnector())
"""Defers only, always on the caller's connection (`connection=` in Task.configure, tasks.py
L229-L234: "the job INSERT will run on this connection ... allowing atomic deferral within a
user-managed transaction"); that path never opens the connector's pool
(sync_psycopg_connector.py L222-L228 uses the connection given)."""


def _defer(
    conn: psycopg.Connection[Any],
    task: str,
    *,
    lock: str,
    queueing_lock: str | None = None,
    schedule_in: float | None = None,
    priority: int = 0,
    **kwargs: int,
) -> int | None:
    # A savepoint: a queueing-lock conflict aborts only it, not the caller's transaction.
    later = {"seconds": schedule_in} if schedule_in is not None else None
    try:
        with conn.transaction():
            return _DEFERRER.configure_task(
                task, lock=lock, queueing_lock=queueing_lock, schedule_in=later, priority=priority, connection=conn
            ).defer(**kwargs)
    except pexc.AlreadyEnqueued:
        return None


def defer_preview(conn: psycopg.Connection[Any], tenant: str, preview_id: int) -> int | None:
    """Queue the preview job in the caller's transaction; None when one is already waiting."""
    return _defer(
        conn, PREVIEW, lock=tenant_lock(tenant), queueing_lock=preview_queueing_lock(tenant), preview_id=preview_id
    )


def defer_apply(conn: psycopg.Connection[Any], apply_id: int) -> int:
    """The callback of service.store.approve: the apply job, in the approval's transaction."""
    row = conn.execute(
        "SELECT p.tenant FROM applies a JOIN approvals ap ON ap.id = a.approval_id "
        "JOIN previews p ON p.id = ap.preview_id WHERE a.id = %s",
        (apply_id,),
    ).fetchone()
    if row is None:
        raise ValueError(f"apply {apply_id} does not exist")
    job = _defer(conn, APPLY, lock=tenant_lock(row[0]), apply_id=apply_id)
    assert job is not None  # no queueing lock: never AlreadyEnqueued
    return job


def defer_recover(conn: psycopg.Connection[Any], tenant: str, job_id: int) -> int | None:
    """Recovery of a tenant whose job `job_id` died with its worker, under the tenant's lock."""
    return _defer(conn, RECOVER, lock=tenant_lock(tenant), queueing_lock=f"recover:{tenant}", job_id=job_id)


def fail_dead_job(conn: psycopg.Connection[Any], job_id: int) -> bool:
    """Mark a `doing` job of a dead worker failed, in the caller's transaction: this frees its lock
    (the unique index covers `doing` rows only, schema.sql L102), and Procrastinate never retries
    it by itself (a retry is decided only in the worker that ran the job, worker.py L332-L345).
    procrastinate_finish_job_v1 is what JobManager.finish_job runs (queries.sql `finish_job`;
    schema.sql L264-L292: doing → failed, attempts + 1), here on our connection so that it commits
    together with the apply's `interrupted` and the recovery job. False when it is no longer doing."""
    with conn.transaction():
        row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
        if row is None or row[0] != "doing":
            return False
        conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed'::procrastinate_job_status, false)", (job_id,))
    return True


def retry_dead_job(conn: psycopg.Connection[Any], job_id: int) -> bool:
    """Put a `doing` job of a dead worker back to `todo` (procrastinate_retry_job_v2, schema.sql
    L364-L400, what JobManager.retry_job runs): only for a job that wrote nothing yet."""
    with conn.transaction():
        row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
        if row is None or row[0] != "doing":
            return False
        conn.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", (job_id,))
    return True


def job_args(conn: psycopg.Connection[Any], job_id: int) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute("SELECT task_name, args FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()
    return (str(row[0]), dict(row[1])) if row else None


def stalled_jobs(conn: psycopg.Connection[Any], stale_after: float) -> list[dict[str, Any]]:
    """Jobs `doing` on a worker whose heartbeat is older than `stale_after` seconds, or whose worker
    row is gone (pruned by another worker's start, schema.sql L553-L564; worker_id ON DELETE SET
    NULL, schema.sql L77): Procrastinate's own query (queries.sql `select_stalled_jobs_by_heartbeat`,
    used by JobManager.get_stalled_jobs, manager.py L223-L273), run on our connection."""
    query = psql.queries["select_stalled_jobs_by_heartbeat"]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, {"queue": None, "task_name": None, "seconds_since_heartbeat": stale_after})
        return list(cur.fetchall())


def is_connection_error(err: BaseException) -> bool:
    """Procrastinate wraps driver errors (ConnectorException, sync_psycopg_connector.py L43-L44,
    psycopg_connector.py wrap_exceptions)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (psycopg.OperationalError, psycopg.InterfaceError, pexc.ConnectorException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# ---------------------------------------------------------------- the worker's side


@dataclass(frozen=True)
class StoredSecretsBlocks:
    """Each tenant's secrets-manager block (ciphertext) in the stack_secrets table, for
    automation.operations.Stacks: a worker with a fresh workspace opens an existing stack with the
    manager it was created with (an awskms:// stack's wrapped data key lives only there)."""

    database_url: str

    # A passphrase stack's file has its salt and no `secretsprovider`; the table wants a provider.
    # "passphrase" loads exactly like none (pulumi/pulumi 1b5949891b pkg/cmd/pulumi/stack/secrets.go
    # L237-L246: a cloud manager only for another value, else the passphrase manager when there
    # is a salt), so it is stored as "passphrase" and given back as the CLI wrote it.

    def get(self, tenant_id: str) -> dict[str, str] | None:
        from service import store

        with db.session(self.database_url) as conn:
            block = store.get_stack_secrets(conn, tenant_id)
        if block and block.get("secretsprovider") == ops.PASSPHRASE and block.get("encryptionsalt"):
            block = {k: v for k, v in block.items() if k != "secretsprovider"}
        return block

    def put(self, tenant_id: str, block: Mapping[str, str]) -> None:
        from service import store

        stored = dict(block)
        if "secretsprovider" not in stored and stored.get("encryptionsalt"):
            stored["secretsprovider"] = ops.PASSPHRASE
        with db.session(self.database_url) as conn:
            store.put_stack_secrets(conn, tenant_id, stored)


@dataclass
class Runtime:
    """What job bodies need, built once per worker process."""

    settings: Any
    options: Any
    source: TenantSource
    stacks: ops.Stacks
    host: str
    pid: int

    @classmethod
    def start(cls, settings: Any, options: Any) -> Runtime:
        backend = settings.backend
        if options.chart_cache_dir is not None and backend.chart_cache_dir is None:
            backend = replace(backend, chart_cache_dir=Path(options.chart_cache_dir))
        if not backend.plan_store:
            # The plan store every worker shares (ServiceSettings.plan_store), not a host's own.
            backend = replace(backend, plan_store=settings.plan_store, plan_retention_days=settings.plan_retention_days)
        stacks = ops.Stacks(backend, secrets_blocks=StoredSecretsBlocks(settings.database_url))
        if options.program_dir is not None:
            stacks = replace(stacks, project_dir=Path(options.program_dir).resolve())
        backend.check(stacks.project_dir)
        return cls(
            settings=settings,
            options=options,
            source=load_source(settings.tenant_source),
            stacks=stacks,
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    @property
    def worker_name(self) -> str:
        return str(self.options.display_name())


FENCE_BUSY_RETRY = procrastinate.RetryStrategy(max_attempts=720, wait=5, retry_exceptions={FenceBusy})
"""The apply job's: taken before anything is written (service/worker.py tenant_fence), a retry is
safe. Procrastinate puts the same job back to `todo` (worker.py L332-L345 → _persist_job_status
L165-L178 → retry_job, procrastinate_retry_job_v2, sql/schema.sql L364-L402). That is safe only for
a job without a queueing lock: the apply's has none, and NULLs never collide in the unique index
over `todo` jobs (schema.sql L100)."""

AGAIN_AFTER = 5.0
"""Seconds before a job refused by the tenant's fence (or, for a recovery, by a Pulumi lock whose
owner is not proven dead) runs again, as a new job (`_again`)."""

AGAIN_ATTEMPTS = 720
"""How many times a preview or a recovery is queued again (an hour, at AGAIN_AFTER)."""

RECOVER_AGAIN_PRIORITY = 1
"""A recovery queued again is a new job, with a higher id than a job of the tenant deferred while
it ran (a person's preview): procrastinate_fetch_job_v2 would fetch that one first (a lock's `todo`
jobs go by priority, then id; the first blocks the rest, whatever its scheduled_at: schema.sql
L224-L251). A higher priority keeps the recovery first, as Procrastinate's retry did by keeping
its id: nothing else of the tenant runs before its lock is cleared and its state refreshed."""


def _again(
    conn: psycopg.Connection[Any],
    task: str,
    *,
    lock: str,
    queueing_lock: str,
    attempt: int,
    priority: int = 0,
    **kwargs: int,
) -> int | None:
    """Queue a refused preview or recovery job again, AGAIN_AFTER seconds later, as a new job under
    its own lock and queueing lock; None when a job of that queueing lock waits already.

    Not Procrastinate's retry: a retry puts the same row back to `todo` (procrastinate_retry_job_v2,
    schema.sql L364-L402) and, when a job of its queueing lock was deferred while it ran (the unique
    index covers `todo` rows only, schema.sql L100), the UPDATE raises UniqueViolation inside the
    worker's _persist_job_status (worker.py L165-L178), which nothing catches: the job stays `doing`,
    holding the tenant's lock (schema.sql L102), for as long as that worker lives (the reaper only
    finishes jobs of dead workers). A new job deferred with the queueing lock instead meets
    AlreadyEnqueued, a choice the caller makes (manager.py L147-L155)."""
    return _defer(
        conn,
        task,
        lock=lock,
        queueing_lock=queueing_lock,
        schedule_in=AGAIN_AFTER,
        priority=priority,
        attempt=attempt,
        **kwargs,
    )


def make_app(
    settings: Any, *, runtime: Runtime | None = None, reap_cron: str = "* * * * *", sweep_cron: str = "*/5 * * * *"
) -> procrastinate.App:
    """The App a worker runs: its connector on the service's database, its tasks bound to `runtime`."""
    from service import recovery, schedule

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=settings.database_url))

    def need() -> Runtime:
        if runtime is None:
            raise RuntimeError("this App defers only; run jobs in `python -m automation worker`")
        return runtime

    # No Procrastinate retry on the preview and the recovery: they have a queueing lock (`_again`).
    @app.task(name=PREVIEW, pass_context=True)
    def preview_job(context: procrastinate.JobContext, preview_id: int, attempt: int = 0) -> str:
        return run_preview(need(), context.job.worker_id, preview_id, context.job.id, attempt)

    @app.task(name=APPLY, pass_context=True, retry=FENCE_BUSY_RETRY)
    def apply_job(context: procrastinate.JobContext, apply_id: int) -> str:
        return run_apply(need(), context.job.worker_id, context.job.id, apply_id)

    @app.task(name=RECOVER, pass_context=True)
    def recover_job(context: procrastinate.JobContext, job_id: int, attempt: int = 0) -> str:
        # A recovery waits, holding the tenant, while the fence is held or a Pulumi lock's owner is
        # not proven dead (automation/locks.py cancel): nothing else of the tenant runs before it.
        try:
            return recovery.recover(need(), context.job.worker_id, job_id)
        except ops.StackBusy as err:
            if attempt + 1 >= AGAIN_ATTEMPTS:
                raise  # the job fails: a person looks at the lock (docs/service.md)
            lock, queueing = context.job.lock, context.job.queueing_lock
            assert lock is not None and queueing is not None  # defer_recover sets both
            with db.connect(need().settings.database_url, autocommit=True) as conn, conn.transaction():
                # Another recovery of the tenant waits (the reaper queued one meanwhile): this one
                # still runs, without the queueing lock, since its dead job may need more (a refresh
                # after an apply) than the waiting one's; first, by its priority, as a retry would.
                first, next_attempt = RECOVER_AGAIN_PRIORITY, attempt + 1
                if (
                    _again(
                        conn,
                        RECOVER,
                        lock=lock,
                        queueing_lock=queueing,
                        priority=first,
                        attempt=next_attempt,
                        job_id=job_id,
                    )
                    is None
                ):
                    _defer(
                        conn,
                        RECOVER,
                        lock=lock,
                        schedule_in=AGAIN_AFTER,
                        priority=first,
                        attempt=next_attempt,
                        job_id=job_id,
                    )
            return f"recovery of job {job_id} refused ({err}); queued again in {AGAIN_AFTER:g}s"

    # Every worker runs the periodic deferrer; the database keeps one job per (task, periodic id,
    # tick) (procrastinate_periodic_defers UNIQUE, schema.sql L81-L88; periodic.py defer_jobs:
    # "The database will keep us from deferring the same task for the same scheduled time").
    # No Procrastinate `lock` on the reaper: a lock stays taken while its job is `doing`, and a
    # reap job left doing by a worker killed mid-reap would block every later reap (only the
    # reaper finishes a dead worker's job). Two reaps never overlap: service/recovery.py reap
    # holds a session advisory lock, which the server frees when that session ends.
    @app.periodic(cron=reap_cron, periodic_id="reap")
    @app.task(name=REAP, queueing_lock="reap")
    def reap_job(timestamp: int) -> str:
        return recovery.reap(need())

    @app.periodic(cron=sweep_cron, periodic_id="sweep")
    @app.task(name=SWEEP, queueing_lock="sweep", lock="sweep")
    def sweep_job(timestamp: int) -> str:
        return schedule.sweep(need(), timestamp)

    # Plans are kept for the audit (automation/plans.py) and dropped past the retention, daily.
    @app.periodic(cron="17 3 * * *", periodic_id="prune")
    @app.task(name=PRUNE, queueing_lock="prune", lock="prune")
    def prune_plans_job(timestamp: int) -> str:
        ready = need()
        gone = ready.stacks.backend.open_plan_store().prune(ready.settings.plan_retention_days)
        return f"{gone} plan files older than {ready.settings.plan_retention_days} days removed"

    return app


def new_worker(app: procrastinate.App, options: Any) -> Any:
    """Procrastinate's Worker (worker.py L33-L102) with our options; signals are ours (service/worker.py)."""
    from procrastinate import worker as pworker

    return pworker.Worker(
        app=app,
        name=options.display_name(),
        concurrency=options.concurrency,
        fetch_job_polling_interval=options.poll_interval,
        abort_job_polling_interval=max(options.poll_interval, 1.0),
        update_heartbeat_interval=options.heartbeat_interval,
        stalled_worker_timeout=options.stale_after,
        install_signal_handlers=False,
        shutdown_graceful_timeout=None,
        # A job that succeeded is deleted with its events (worker.py L182-L189; the events cascade,
        # schema.sql L90-L95): the audit is the service's own tables, and 10 000 tenants would
        # otherwise add a job and its events per preview and apply forever. Failed jobs stay.
        delete_jobs="successful",
    )


# ---------------------------------------------------------------- job bodies


def _kind(err: BaseException) -> str:
    mapped = ops.map_error(err)
    return f"{mapped.kind}: {mapped}"


def run_preview(
    runtime: Runtime, worker_id: int | None, preview_id: int, job_id: int | None = None, attempt: int = 0
) -> str:
    """Preview a tenant and record the result. A replayed job (the preview is no longer running)
    does nothing. A scheduled preview (drift) refreshes first and is classed `upgrade` when the
    program changed since the tenant's last apply (service/schedule.py classify). Refused by the
    tenant's fence, it is queued again (`_preview_again`)."""
    from service import schedule, store

    url = runtime.settings.database_url
    with db.connect(url, autocommit=True) as conn:
        row = store.get_preview(conn, preview_id)
        if row.status != "running":
            return f"preview {preview_id} is {row.status}: nothing to do"
        watch = None
        try:
            tenant = runtime.source.get(row.tenant)
            with tenant_fence(url, row.tenant, worker_id, runtime.settings.heartbeat_stale_seconds) as watch:
                with guarded(runtime, watch) as stacks:
                    changes = ops.preview(tenant, stacks, refresh=row.reason != "request")
        except FenceBusy as err:
            return _preview_again(conn, row.tenant, preview_id, attempt, err)
        except Exception as err:  # noqa: BLE001 - every failure is recorded on the preview
            log.warning("preview %s of %s failed: %s", preview_id, row.tenant, _kind(err))
            with conn.transaction():
                store.finish_preview(conn, preview_id, error=_kind(err))
                if watch is not None and watch.lost.is_set() and job_id is not None:
                    # Its CLI was killed mid-run: a DIY preview takes no lock (backend.go
                    # L1197-L1201), but a tenant's first preview creates the stack, which does
                    # (L870-L874), so the tenant is recovered like after an apply.
                    defer_recover(conn, row.tenant, job_id)
            return f"preview {preview_id} failed"
        if row.reason != "request" and changes.has_changes:
            reason = schedule.classify(conn, row.tenant, changes)
            if reason != row.reason:
                conn.execute(
                    "UPDATE previews SET reason = %s WHERE id = %s AND status = 'running'", (reason, preview_id)
                )
        done = store.finish_preview(conn, preview_id, changes=changes)
        return f"preview {preview_id} {done.status}"


def _preview_again(conn: psycopg.Connection[Any], tenant: str, preview_id: int, attempt: int, err: FenceBusy) -> str:
    """The fence refused the preview before it wrote anything: queue it again (`_again`) or, when
    another preview of the tenant waits already (a person asked while this one ran), close it as
    superseded: the waiting one reads the tenant's spec later and shows what this one would have.
    Under the tenant's transaction lock, as ServiceApi.request_preview (service/api.py), so a
    request sees either this preview waiting again or none."""
    from service import store

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (db.LOCK_CLASS_TENANT, tenant))
        if attempt + 1 >= AGAIN_ATTEMPTS:
            store.finish_preview(conn, preview_id, error=f"stack-busy: {err}")
            return f"preview {preview_id} failed: the tenant stayed held"
        queued = _again(
            conn,
            PREVIEW,
            lock=tenant_lock(tenant),
            queueing_lock=preview_queueing_lock(tenant),
            attempt=attempt + 1,
            preview_id=preview_id,
        )
        if queued is not None:
            return f"preview {preview_id} refused ({err}); queued again in {AGAIN_AFTER:g}s"
        conn.execute(
            "UPDATE previews SET status = 'superseded', finished = now() WHERE id = %s AND status = 'running'",
            (preview_id,),
        )
    return f"preview {preview_id} superseded by the preview waiting"


def run_apply(runtime: Runtime, worker_id: int | None, job_id: int | None, apply_id: int) -> str:
    """Apply an approved preview once: `queued → started` is the one gate (store.start_apply); a
    replayed or duplicated job finds it started and does nothing. The plan comes from the plan
    store by the approved sha256, the state must be the one previewed (automation/operations.py
    apply), `up --message` names the approval and the approver."""
    from service import store

    url = runtime.settings.database_url
    with db.connect(url, autocommit=True) as conn:
        current = store.get_apply(conn, apply_id)
        if current.status != "queued":
            return f"apply {apply_id} is {current.status}: an approval is applied at most once"
        try:
            tenant = runtime.source.get(current.tenant)
        except Exception as err:  # noqa: BLE001 - recorded: nothing ran
            store.start_apply(conn, apply_id, runtime.worker_name, runtime.host, runtime.pid)
            store.finish_apply(conn, apply_id, status="failed", error=_kind(err))
            return f"apply {apply_id} failed"
        started = threading.Event()
        with tenant_fence(
            url,
            current.tenant,
            worker_id,
            runtime.settings.heartbeat_stale_seconds,
            # Until start_apply the apply is `queued`, which heartbeat() rightly calls not ours.
            still_ours=lambda probe: not started.is_set() or store.heartbeat(probe, apply_id),
        ) as watch:
            try:
                row = store.start_apply(conn, apply_id, runtime.worker_name, runtime.host, runtime.pid)
            except ApplyReplayed as err:  # another job of this approval started it
                return f"apply {apply_id} refused: {err}"
            started.set()
            failure: BaseException | None = None
            result: dict[str, Any] = {}
            try:
                with guarded(runtime, watch) as stacks:
                    result = ops.apply(
                        tenant, row.fingerprint, stacks, plan_sha256=row.plan_sha256, message=row.message
                    )
            except Exception as err:  # noqa: BLE001 - recorded on the apply, below
                failure = err
        # Recorded once the fence's watchdog is stopped (it would take `succeeded` for "no
        # longer ours"); the tenant's job lock is still held until this job returns.
        try:
            if failure is not None and watch.lost.is_set():
                return _interrupted(conn, current.tenant, apply_id, job_id, watch.reason)
            if failure is not None:
                log.warning("apply %s of %s failed: %s", apply_id, current.tenant, _kind(failure))
                store.finish_apply(conn, apply_id, status="failed", error=_kind(failure))
                return f"apply {apply_id} failed"
            version = result.get("updateVersion")
            store.finish_apply(
                conn,
                apply_id,
                status="succeeded",
                update_version=version if isinstance(version, int) else None,
                summary={"changes": result.get("summary") or {}, "engine": result.get("engine") or {}},
            )
        except ApplyReplayed as err:  # the reaper took it for dead meanwhile: its verdict stands
            return f"apply {apply_id}: {err}"
        return f"apply {apply_id} succeeded"


def _interrupted(conn: psycopg.Connection[Any], tenant: str, apply_id: int, job_id: int | None, why: str) -> str:
    """This worker killed its own CLI mid-update (fence lost): the apply is `interrupted` (never
    retried by itself) and the tenant's recovery is queued behind this job, in one transaction.
    When the database itself is gone this raises, and the reaper does the same once it is back."""
    from service import store

    with conn.transaction():
        store.finish_apply(conn, apply_id, status="interrupted", error=f"interrupted: {why}")
        if job_id is not None:
            defer_recover(conn, tenant, job_id)
    return f"apply {apply_id} interrupted"


@contextmanager
def guarded(runtime: Runtime, watch: Any) -> Iterator[ops.Stacks]:
    """The job's own stack factory: its CLIs run under a CliGuard of this job alone
    (automation/guard.py; Stacks.guard), which the watch kills, group and all, once it fires."""
    from automation.guard import CliGuard

    guard = CliGuard()
    watch.on_lost(guard.kill)
    yield replace(runtime.stacks, guard=guard)
