"""The backend's typed Python API: request a preview, read the latest, approve, reject, status and
history. Each call is one connection and one transaction: it either happened whole or raised a
typed error (service.errors, automation.operations) and wrote nothing. `python -m automation`
offers the same calls as commands (C's CLI), with the same errors and exit codes.

Jobs are queued through two callbacks on the call's own connection, inside its transaction
(`defer_preview(conn, tenant, preview_id)`, `defer_apply(conn, apply_id)`; service/jobs.py gives the
Procrastinate ones): the preview or approval row and its job commit together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from automation.operations import OperationFailed
from service import db, store
from service.settings import ServiceSettings
from service.store import Conn, DeferApply, PreviewRow, Reason
from service.tenants import TenantSource, load_source

DeferPreview = Callable[[Conn, str, int], object]
"""`defer_preview(conn, tenant, preview_id)`: queue the preview job on `conn`; returns None when a
preview of the tenant is already waiting to start (Procrastinate's queueing lock, service/jobs.py),
anything else (the job id) when it queued one."""


@dataclass(frozen=True)
class Approval:
    approval_id: int
    apply_id: int
    preview_id: int

    def to_json(self) -> dict[str, int]:
        return {"approval": self.approval_id, "apply": self.apply_id, "preview": self.preview_id}


@dataclass(frozen=True)
class ServiceApi:
    database_url: str
    tenants: TenantSource
    """Only tenants it knows can be previewed (an unknown id is InvalidTenant, nothing is queued)."""
    defer_preview: DeferPreview
    defer_apply: DeferApply

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ServiceApi:
        from service import jobs  # the only module that knows Procrastinate

        return cls(
            database_url=settings.database_url,
            tenants=load_source(settings.tenant_source),
            defer_preview=jobs.defer_preview,
            defer_apply=jobs.defer_apply,
        )

    def _session(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        return db.session(self.database_url)

    def request_preview(self, tenant: str, reason: Reason = "request") -> int:
        """Queue a preview of the tenant; returns its id. When a preview of the tenant is already
        waiting to start, that one is returned and nothing new is queued: it has not read the
        tenant's spec yet, so it shows the change asked for now."""
        self.tenants.get(tenant)  # InvalidTenant when the backend does not know it
        with self._session() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (db.LOCK_CLASS_TENANT, tenant))
            with conn.transaction() as attempt:
                preview_id = store.insert_preview(conn, tenant, reason)
                if self.defer_preview(conn, tenant, preview_id) is None:
                    raise psycopg.Rollback(attempt)
                return preview_id
            waiting = store.running_preview(conn, tenant)
            if waiting is None:  # the queueing lock is held only by a running preview's job
                raise OperationFailed(f"a preview job of {tenant} waits in the queue but no preview is running")
            return waiting

    def latest_preview(self, tenant: str) -> PreviewRow | None:
        with self._session() as conn:
            return store.latest_preview(conn, tenant)

    def approve(self, preview_id: int, fingerprint: str, approver: str) -> Approval:
        """Approve the tenant's latest preview, naming it and the fingerprint the approver saw. The
        approval, its apply and the apply job commit together (service.store.approve)."""
        with self._session() as conn:
            approval_id, apply_id = store.approve(conn, preview_id, fingerprint, approver, defer_apply=self.defer_apply)
        return Approval(approval_id, apply_id, preview_id)

    def reject(self, preview_id: int, by: str, reason: str = "") -> None:
        with self._session() as conn:
            store.reject(conn, preview_id, by, reason)

    def status(self, tenant: str) -> dict[str, Any]:
        """The tenant now: its latest preview (without the change text) and its open applies."""
        with self._session() as conn:
            latest = store.latest_preview(conn, tenant)
            open_applies = store.applies(conn, tenant=tenant, status=("queued", "started"))
            last = store.applies(conn, tenant=tenant, newest_first=True, limit=1)
        preview = None
        if latest is not None:
            preview = {k: v for k, v in latest.to_json().items() if k not in ("changes", "text")}
            preview["counts"] = (latest.changes or {}).get("counts")
        return {
            "tenant": tenant,
            "preview": preview,
            "openApplies": [a.to_json() for a in open_applies],
            "lastApply": last[0].to_json() if last else None,
        }

    def history(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._session() as conn:
            return store.history(conn, tenant, limit)
