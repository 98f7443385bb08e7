"""A worker process: runs the service's jobs (service/jobs.py) until SIGTERM/SIGINT, on any host.

Workers are stateless: tenants' workspaces under `SCOUTFLO_STATE_DIR` are scratch (the stack's
state is in the state backend, its secrets-manager block in the `stack_secrets` table, plans in
the plan store), so a worker can be added or lost at any time.

While a job runs the Pulumi CLI for a tenant, the worker holds two fences besides Procrastinate's
job lock `tenant:<id>`:
- a PostgreSQL *session* advisory lock on the tenant (`pg_try_advisory_lock`, on a connection of its
  own). The server releases it when the session ends, so a worker that dies (SIGKILL, host lost)
  frees it without anyone's help ("a lock ... is held until explicitly released or the session
  ends", PostgreSQL docs, Advisory Locks); a worker that is alive but cut off keeps it, so the
  reaper (service/recovery.py) can tell a dead worker from a slow one before it touches the
  tenant's Pulumi lock;
- a watchdog thread that kills the CLI's whole process group (automation/guard.py) when that
  connection is lost or this worker's Procrastinate heartbeat goes stale: the reaper declares such
  a worker dead after `heartbeat_stale_seconds`, and by then its CLI must be gone, or the recovery
  would run `pulumi cancel` under an update that is still writing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from automation.operations import StackBusy
from service import db
from service.errors import DatabaseUnavailable

log = logging.getLogger("scoutflo.worker")

LOCK_CLASS_OPERATION = 0x5C0F_0003
"""Session advisory locks (class, hashtext(tenant)) held while a tenant's CLI runs. service/db.py
keeps the two-int key space for the service and names classes 0x5C0F_0001/2; Procrastinate itself
takes no advisory locks (its `lock` is a unique index on procrastinate_jobs, schema.sql L102)."""


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker process runs; the defaults are production's."""

    name: str = ""
    """Shown in applies.worker and Procrastinate's logs; default `<host>:<pid>`."""
    concurrency: int = 4
    """Jobs at once. Job bodies are sync and Procrastinate runs each in a thread of its own
    (procrastinate/worker.py L308-L313 in 3.10.0: utils.sync_to_async, asgiref thread_sensitive=False),
    so a CLI run never blocks the event loop that keeps the heartbeat."""
    poll_interval: float = 5.0
    """Procrastinate's fallback poll (worker.py L693-L700); LISTEN/NOTIFY wakes it sooner."""
    heartbeat_interval: float = 10.0
    """Procrastinate's heartbeat (worker.py L481-L490: procrastinate_workers.last_heartbeat)."""
    stale_after: float = 60.0
    """A worker whose heartbeat is older is dead to the reaper (ServiceSettings.heartbeat_stale_seconds)."""
    reap_every: int = 60
    """Seconds between reaper runs."""
    sweep_every: int = 300
    """Seconds between sweeps (each queues the tenants whose slot fell in the last `sweep_every`)."""
    restart_delay: float = 2.0
    """After the database went away: wait, then register again (a new worker id)."""
    chart_cache_dir: Path | None = None
    """One chart cache for every tenant this worker runs (automation/operations.py
    Backend.chart_cache_dir): a sweep fetches each upstream chart once, not once per tenant. Its
    path is in every tenant's config digest, so every worker of a fleet names the same path (a
    shared mount, or the same local path on each host); unset, each tenant keeps its own."""
    program_dir: Path | None = None
    """The Pulumi program the CLI runs (a release's checkout); default this checkout. Its identity
    (automation/program.py) is in every fingerprint: workers of one fleet run the same release."""

    @property
    def reap_cron(self) -> str:
        return cron_every(self.reap_every)

    @property
    def sweep_cron(self) -> str:
        return cron_every(self.sweep_every)

    def check(self) -> None:
        """Refuse settings under which a live worker would be reaped as dead, or no cron fits."""
        from automation.operations import InvalidSetup

        if self.heartbeat_interval * 3 > self.stale_after:
            raise InvalidSetup(
                f"--heartbeat-interval {self.heartbeat_interval:g}s: at most a third of "
                f"SCOUTFLO_HEARTBEAT_STALE_SECONDS ({self.stale_after:g}s), or a live worker is taken for dead"
            )
        for flag, seconds in (("--reap-every", self.reap_every), ("--sweep-every", self.sweep_every)):
            try:
                cron_every(seconds)
            except ValueError as err:
                raise InvalidSetup(f"{flag}: {err}") from None

    def display_name(self) -> str:
        return self.name or f"{socket.gethostname()}:{os.getpid()}"


def cron_every(seconds: int) -> str:
    """A cron firing every `seconds` (which must divide a minute, or be whole minutes dividing an
    hour). Procrastinate's crons take a 6th column for seconds (procrastinate/blueprints.py L370,
    croniter's second field)."""
    if 0 < seconds < 60 and 60 % seconds == 0:
        return f"* * * * * */{seconds}"
    if seconds % 60 == 0 and 0 < seconds // 60 <= 60 and 60 % (seconds // 60) == 0:
        return f"*/{seconds // 60} * * * *"
    raise ValueError(f"{seconds}s: use a divisor of 60 seconds or a divisor of 60 minutes")


# ---------------------------------------------------------------- the tenant's session fence


class FenceBusy(StackBusy):
    """The tenant's session fence is held by another database session: a worker declared dead is
    still connected. Nothing was written; the job runs again (service/jobs.py: FENCE_BUSY_RETRY, `_again`)."""


@dataclass
class Watch:
    """What the job body sees while it holds a tenant: `lost` is set once the fence is gone (the
    CLI was killed); `on_lost` callbacks (kill the CLI group) run once, from the watchdog thread."""

    tenant: str
    lost: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    _callbacks: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_lost(self, callback: Callable[[], None]) -> None:
        with self._lock:
            fire = self.lost.is_set()
            if not fire:
                self._callbacks.append(callback)
        if fire:
            callback()

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            self.reason = reason
            self.lost.set()
            callbacks, self._callbacks = self._callbacks, []
        log.error("tenant %s: %s; killing its CLI", self.tenant, reason)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("tenant %s: a kill callback failed", self.tenant)


@contextmanager
def tenant_fence(
    database_url: str,
    tenant: str,
    worker_id: int | None,
    stale_after: float,
    *,
    still_ours: Callable[[psycopg.Connection[Any]], bool] | None = None,
    check_every: float | None = None,
) -> Iterator[Watch]:
    """Hold the tenant's session advisory lock for the block, with a watchdog on it.

    Refused (FenceBusy) when another session holds it: a worker the reaper gave up on is still
    alive and connected. The watchdog probes the lock's own connection; a probe that fails, or
    that has not answered for half `stale_after` (a network partition blocks it rather than
    failing it), a heartbeat of `worker_id` older than half `stale_after`, or `still_ours(conn)` False
    (the apply is no longer `started`: the reaper gave up on it, service/store.py heartbeat),
    fires the Watch."""
    conn = db.connect(database_url, autocommit=True)
    watch = Watch(tenant)
    stop = threading.Event()
    try:
        with db.unavailable_as_typed(database_url):
            got = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS_OPERATION, tenant)
            ).fetchone()
        if not got or not got[0]:
            raise FenceBusy(
                f"tenant {tenant} is held by another worker's database session (a worker declared dead is still "
                "connected); it is retried once that session ends"
            )
        interval = check_every if check_every is not None else max(0.2, min(5.0, stale_after / 6))
        # Half the reaper's threshold: the CLI is dead before any reaper takes this worker for
        # dead (it needs the heartbeat older than `stale_after`, service/recovery.py).
        limit = stale_after / 2
        last_ok = [time.monotonic()]

        def probe() -> None:
            while not stop.is_set():
                try:
                    if worker_id is None:
                        conn.execute("SELECT 1")
                        age = 0.0
                    else:
                        row = conn.execute(
                            "SELECT extract(epoch FROM now() - last_heartbeat)::float8 FROM procrastinate_workers "
                            "WHERE id = %s",
                            (worker_id,),
                        ).fetchone()
                        # procrastinate_prune_stalled_workers_v1 deletes a stale worker's row
                        # (schema.sql L553-L564): gone means another worker judged it dead.
                        age = float("inf") if row is None else float(row[0])
                    if still_ours is not None and not still_ours(conn):
                        watch.fire("the apply is no longer started here (the reaper marked it interrupted)")
                        return
                except (psycopg.Error, DatabaseUnavailable) as err:
                    watch.fire(f"lost the database connection holding the tenant ({type(err).__name__})")
                    return
                if age > limit:
                    watch.fire(f"this worker's heartbeat is {age:.1f}s old (the reaper's limit is {stale_after:g}s)")
                    return
                last_ok[0] = time.monotonic()
                stop.wait(interval)

        def watchdog() -> None:
            while not stop.wait(interval):
                if time.monotonic() - last_ok[0] > limit:
                    watch.fire(f"the database has not answered for {limit:g}s")
                    return

        threads = [
            threading.Thread(target=probe, name=f"fence-probe-{tenant}", daemon=True),
            threading.Thread(target=watchdog, name=f"fence-watchdog-{tenant}", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield watch
        finally:
            stop.set()
            threads[1].join()
            threads[0].join(timeout=interval + 1)
    finally:
        stop.set()
        # Closing the session releases its advisory locks (server side), lost connection or not.
        conn.close()


# ---------------------------------------------------------------- running the worker


def run(settings: Any, options: WorkerOptions) -> int:
    """Run until SIGTERM/SIGINT; 0 then. The database going away (restart, failover) does not end
    the process: Procrastinate's worker stops when a side task fails (worker.py L621-L641: the
    listener or heartbeat lost its connection), and this loop registers a new one once it is back.
    A stop signal lets running jobs finish (shutdown_graceful_timeout None: worker.py L568-L571)."""
    from service import jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stopping = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        current: list[Any] = []

        def on_signal() -> None:
            stopping.set()
            for worker in current:
                worker.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        runtime = jobs.Runtime.start(settings, options)
        while not stopping.is_set():
            app = jobs.make_app(settings, runtime=runtime, reap_cron=options.reap_cron, sweep_cron=options.sweep_cron)
            try:
                async with app.open_async():
                    worker = jobs.new_worker(app, options)
                    current[:] = [worker]
                    await worker.run()
            except (psycopg.Error, DatabaseUnavailable, OSError) as err:
                log.warning("worker: the database is unavailable (%s); retrying", type(err).__name__)
            except Exception as err:
                if not jobs.is_connection_error(err):
                    raise
                log.warning("worker: the database is unavailable (%s); retrying", err)
            finally:
                current.clear()
            if not stopping.is_set():
                await asyncio.sleep(options.restart_delay)

    asyncio.run(main())
    return 0
