"""The daily refreshing preview of every tenant, spread over the day.

Each tenant has a slot: sha256 of its id, modulo the drift interval (24 h by default), so the
previews of 10 000 tenants are spread evenly and a tenant's slot never moves (a new tenant or a
removed one moves no one else's). `sweep_job` runs every few minutes (its tick is Procrastinate's
periodic `timestamp`, the scheduled time, not the time it ran: periodic.py L200-L238 in 3.10.0)
and queues a preview for every tenant whose slot falls in the tick's window (previous tick, this
tick]. A tick missed while no worker ran is not caught up: Procrastinate defers only ticks
overdue by less than `max_delay` (10 min, periodic.py L22 and L167-L197); that tenant's next slot is a day
later.

The preview refreshes first (automation/operations.py preview(refresh=True)), so drift made
outside Pulumi shows as a change. A preview with changes stays open for a person as `drift`, or as
`upgrade` when an upstream chart has a newer version in the catalog's range (the app's import
commit changes: the upgrade pull request of scoutflo/github/upgrade.py, shown before anything is
written) or the program itself changed since the tenant's last apply (a new checkout); one
without changes is `empty`: nothing is left open.
A tenant that already has a preview open (running, or ready and waiting for a decision) is skipped:
a newer preview would supersede what a person may be reading.
"""

from __future__ import annotations

import hashlib
from typing import Any

from automation.changeset import ChangeSet
from automation.operations import InvalidTenant
from service import db, jobs, store
from service.tenants import check_tenant_id


def slot(tenant: str, period_seconds: int) -> int:
    """The tenant's second of the period (stable, uniform)."""
    digest = hashlib.sha256(tenant.encode()).digest()
    return int.from_bytes(digest[:8], "big") % period_seconds


def due(tenant: str, tick: int, every: int, period_seconds: int) -> bool:
    """Is the tenant's slot in (tick - every, tick], on the period's circle?"""
    start = (tick - every) % period_seconds
    end = tick % period_seconds
    at = slot(tenant, period_seconds)
    if start < end:
        return start < at <= end
    return at > start or at <= end  # the window wraps past midnight


def sweep(runtime: Any, tick: int) -> str:
    """Queue the scheduled previews of the tenants due at `tick`."""
    period = int(runtime.settings.drift_interval_hours * 3600)
    every = int(runtime.options.sweep_every)
    queued, skipped, refused = [], [], []
    with db.connect(runtime.settings.database_url, autocommit=True) as conn:
        for tenant in runtime.source.ids():
            try:
                check_tenant_id(tenant)
            except InvalidTenant:
                refused.append(str(tenant)[:80])  # one bad id from the source stops no one else's
                continue
            if not due(tenant, tick, every, period):
                continue
            if queue_scheduled(conn, tenant):
                queued.append(tenant)
            else:
                skipped.append(tenant)
    return (
        f"sweep {tick}: queued {len(queued)} ({', '.join(queued[:20])}), skipped {len(skipped)} with a preview open"
        + (
            f", refused {len(refused)} ids that are not tenant ids ({', '.join(map(repr, refused[:5]))})"
            if refused
            else ""
        )
    )


def queue_scheduled(conn: Any, tenant: str) -> bool:
    """The tenant's refreshing preview, unless one of its previews is open; True when queued."""
    try:
        with conn.transaction():
            latest = store.latest_preview(conn, tenant)
            if latest is not None and latest.status in ("running", "ready"):
                return False
            preview_id = store.insert_preview(conn, tenant, "drift")
            if jobs.defer_preview(conn, tenant, preview_id) is None:
                raise _Skip  # a preview job of the tenant is waiting already: roll this one back
    except _Skip:
        return False
    return True


class _Skip(Exception):
    pass


def upstream_upgrades(changes: ChangeSet) -> list[str]:
    """The apps whose import pull request changes: a newer upstream chart version in the catalog's
    range (or a re-import) arrives as a new `<app>-import` commit of the chart repo (components/
    chart_repo.py), previewed with no GitHub write (scoutflo/github/upgrade.py): the program is the
    same, the upstream moved. Only an existing commit that changes (update, replace): a create or a
    delete is an app added to or removed from the spec (or the tenant's first deploy), not upstream."""
    return sorted(
        {
            r.app
            for r in changes.resources
            if r.op in ("update", "replace")
            and r.type.startswith("pulumi-python:dynamic")
            and r.name.endswith("-import")
        }
    )


def classify(conn: Any, tenant: str, changes: ChangeSet) -> str:
    """`upgrade` when an upstream chart moved (an import or upgrade pull request changes) or the
    program changed since the tenant's last successful apply, else `drift`."""
    if upstream_upgrades(changes):
        return "upgrade"
    row = conn.execute(
        "SELECT p.program_digest FROM applies a JOIN approvals ap ON ap.id = a.approval_id "
        "JOIN previews p ON p.id = ap.preview_id WHERE p.tenant = %s AND a.status = 'succeeded' "
        "ORDER BY a.id DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    if row is not None and row[0] and changes.program_digest and row[0] != changes.program_digest:
        return "upgrade"
    return "drift"
