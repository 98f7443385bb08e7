"""The service's throughput and footprint: tenants per minute through request → preview → approve →
apply with 1 and 2 workers (real `python -m automation worker` processes over the stand-in CLI,
tests/service_harness.py), the rows and bytes PostgreSQL keeps per tenant and per day, a worker's
peak memory, and the database load projected for 10 000 tenants.

A day of a tenant is taken as one scheduled (refreshing) preview that finds nothing, plus one
change a person approves: the measured rows and bytes of each, added. Figures, no assertions.

Usage: python bench/service_throughput.py [--tenants 20] [--workers 1,2] [--concurrency 2] [--smoke]
(--smoke: 3 tenants, 1 worker; what `make test` runs)
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import _smoke  # noqa: E402
from service import db, schedule  # noqa: E402
from tests.postgres import SERVER_USER, Postgres, find_bindir  # noqa: E402
from tests.service_harness import Service, wait  # noqa: E402

TABLES = (
    "previews",
    "approvals",
    "applies",
    "rejections",
    "stack_secrets",
    "procrastinate_jobs",
    "procrastinate_events",
)
PROJECTED = 10_000
POLL, HEARTBEAT, STALE = 5.0, 10.0, 60.0
"""Production's defaults (service/worker.py WorkerOptions, SCOUTFLO_HEARTBEAT_STALE_SECONDS): the
load on PostgreSQL is measured as it would be (LISTEN/NOTIFY wakes a worker on a new job)."""
IDLE_S = 3.0


def footprint(url: str) -> dict[str, tuple[int, int]]:
    """(rows, bytes) per table; bytes are the rows' own (pg_column_size of each row, TOAST
    compressed as stored), without page and index overhead: a table of a few rows takes whole
    8 KiB pages, which says nothing about 10 000 tenants."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            # Our own table names, not input.
            row = conn.execute(f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t").fetchone()
            out[table] = (int(row[0]), int(row[1])) if row else (0, 0)
    return out


def commits(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(server: Postgres, workers: int, tenants: int, concurrency: int) -> dict[str, Any]:
    url = server.database()
    db.migrate(url)
    root = Path(tempfile.mkdtemp(prefix="scoutflo-bench-"))
    svc = Service(root, url, stale=STALE)
    try:
        ids = [f"b{n:04d}" for n in range(tenants)]
        for tenant in ids:
            svc.add_tenant(tenant)
        for n in range(workers):
            svc.start_worker(
                f"host-{n}", concurrency=concurrency, poll_interval=POLL, heartbeat_interval=HEARTBEAT, reap_every=60
            )
        api = svc.api()
        # What idle workers commit (polls, heartbeats, the reaper) is measured, then taken out.
        time.sleep(1)
        idle0, idle_t0 = commits(url), time.monotonic()
        time.sleep(IDLE_S)
        idle_rate = (commits(url) - idle0) / (time.monotonic() - idle_t0)
        before = footprint(url)
        tx0 = commits(url)
        started = time.monotonic()
        previews = {tenant: api.request_preview(tenant) for tenant in ids}
        applies = []
        pending = dict(previews)
        while pending:
            for tenant, preview_id in list(pending.items()):
                row = svc.preview(preview_id)
                if row["status"] == "running":
                    continue
                if row["status"] != "ready":
                    raise SystemExit(f"preview of {tenant} ended {row['status']}: {row['error']}")
                applies.append(api.approve(preview_id, row["fingerprint"], "bench").apply_id)
                del pending[tenant]
            time.sleep(0.05)
        for apply_id in applies:
            row = svc.wait_apply(apply_id, timeout=600)
            if row["status"] != "succeeded":
                raise SystemExit(f"apply {apply_id} ended {row['status']}: {row['error']}")
        elapsed = time.monotonic() - started
        tx_change = commits(url) - tx0 - idle_rate * elapsed
        after_change = footprint(url)
        # One scheduled preview per tenant, as the sweep queues them (nothing changed: empty).
        tx1, drift_t0 = commits(url), time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            queued = [schedule.queue_scheduled(conn, t) for t in ids]
        if not all(queued):
            raise SystemExit("a scheduled preview was not queued")
        wait(lambda: not svc.rows("SELECT 1 FROM previews WHERE status = 'running'"), 600, svc)
        tx_drift = commits(url) - tx1 - idle_rate * (time.monotonic() - drift_t0)
        after_drift = footprint(url)
        rss = [peak_rss_kib(p.pid) for p in svc.workers.values()]
        return {
            "elapsed": elapsed,
            "per_min": tenants / elapsed * 60,
            "change": {t: tuple(a - b for a, b in zip(after_change[t], before[t], strict=True)) for t in TABLES},
            "drift": {t: tuple(a - b for a, b in zip(after_drift[t], after_change[t], strict=True)) for t in TABLES},
            "tx_change": tx_change / tenants,
            "tx_drift": tx_drift / tenants,
            "rss_mib": max(rss) / 1024,
            "idle_rate": idle_rate / workers,
        }
    finally:
        svc.stop_all()
        shutil.rmtree(root, ignore_errors=True)
        server.drop(psycopg.conninfo.conninfo_to_dict(url)["dbname"])  # type: ignore[arg-type]


def start_server() -> Postgres:
    """A throwaway server as tests/postgres.py's session fixture starts it (unix socket only; as
    the `postgres` user when run as root, which initdb requires)."""
    root = Path(tempfile.mkdtemp(prefix="scoutflo-bench-pg-"))
    server = Postgres(find_bindir(), root)
    owner = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None
    if owner:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server.init()
    (root / "sock").mkdir()
    if owner:
        os.chown(root / "sock", owner.pw_uid, owner.pw_gid)
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs at once per worker")
    args = _smoke.parse(parser, "3 tenants, 1 worker", tenants=3, workers="1")
    server = start_server()
    try:
        results = {}
        for count in (int(n) for n in args.workers.split(",")):
            results[count] = run(server, count, args.tenants, args.concurrency)
            r = results[count]
            print(
                f"{count} worker(s) × concurrency {args.concurrency}: {args.tenants} tenants in {r['elapsed']:.1f} s "
                f"= {r['per_min']:.0f} tenants/min (preview → approve → apply); worker peak RSS {r['rss_mib']:.0f} MiB"
            )
        r = results[max(results)]
        print(
            "\nper tenant, by table (rows, row bytes): one approved change | one scheduled preview that found nothing"
        )
        day_rows = day_bytes = 0
        for table in TABLES:
            (cr, cb), (dr, db_) = r["change"][table], r["drift"][table]
            per = args.tenants
            print(f"  {table:22} {cr / per:6.1f} rows {cb / per:9.0f} B | {dr / per:6.1f} rows {db_ / per:9.0f} B")
            if table != "stack_secrets":  # one row per tenant, written once, not per day
                day_rows += cr + dr
                day_bytes += cb + db_
        day_rows_t, day_bytes_t = day_rows / args.tenants, day_bytes / args.tenants
        tx_day = r["tx_change"] + r["tx_drift"]
        print(
            f"a tenant's day (one scheduled preview + one approved change; stack_secrets is once per tenant): "
            f"{day_rows_t:.0f} rows, "
            f"{day_bytes_t / 1024:.1f} KiB, {tx_day:.0f} committed transactions"
        )
        print(
            f"projected for {PROJECTED} tenants: {day_rows_t * PROJECTED / 1e6:.2f} M rows/day, "
            f"{day_bytes_t * PROJECTED / 2**30:.2f} GiB/day ({day_bytes_t * PROJECTED * 365 / 2**30:.0f} GiB/year "
            f"before retention), {tx_day * PROJECTED / 86400:.1f} transactions/s on average, plus "
            f"{r['idle_rate']:.1f}/s per idle worker (poll every {POLL:g} s, heartbeat every {HEARTBEAT:g} s, reaper)"
        )
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
