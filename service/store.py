"""The service's rows: previews, approvals, applies, rejections and stack secrets blocks.

Every function takes a psycopg Connection and does its writes in one `conn.transaction()` (a
savepoint when the caller has a transaction open, so the caller can add its own writes, e.g. the
deferred job, and commit them together). Rules the database keeps as constraints
(service/migrations/0001_service.sql) are checked here too, first, so the caller gets a typed error
naming the fix and not a constraint name; the constraints stay as the fence against any other path.

Writes of one tenant's previews and decisions are serialized on a transaction-scoped advisory lock
(db.LOCK_CLASS_TENANT, hashtext(tenant)): "is this the latest preview" and "supersede the older
ones" then never interleave across processes. The lock is the two-int form, apart from any bigint
advisory lock a worker holds on the tenant while it runs the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from automation.changeset import ChangeSet
from automation.operations import InvalidTenant
from scoutflo.naming import dns_label_problem
from service import db
from service.errors import (
    AlreadyDecided,
    ApplyReplayed,
    FingerprintMismatch,
    InvalidRequest,
    PreviewFinished,
    PreviewNotReady,
    PreviewSuperseded,
    UnknownApply,
    UnknownPreview,
)

Conn = psycopg.Connection[Any]
Reason = Literal["request", "drift", "upgrade"]
REASONS = ("request", "drift", "upgrade")
TENANT_ID_MAX = 40
"""automation.tenant.tenant_settings: a tenant id is a DNS label of at most 40 characters."""

DeferApply = Callable[[Conn, int], object]
"""`defer_apply(conn, apply_id)`: queue the apply job on `conn`, inside the caller's transaction.
service/jobs.py does it with Procrastinate's supported external-connection path (3.10.0):
`configure(connection=conn).defer(...)` (tasks.py L229-L234: "the job INSERT will run on this
connection instead of the connector's pool, allowing atomic deferral within a user-managed
transaction"), JobManager.batch_defer_jobs → execute_query_all_with_connection (manager.py
L113-L117, sync_psycopg_connector.py L222-L228: a cursor on the given connection, no commit), whose
query calls procrastinate_defer_jobs_v1 (sql/queries.sql L9, sql/schema.sql L118); documented in
docs/howto/production/external_connection.md ("You are responsible for committing")."""

ApplyStatus = Literal["queued", "started", "succeeded", "failed", "interrupted"]
FINAL_APPLY = ("succeeded", "failed", "interrupted")
DIGESTS = ("plan_sha256", "config_digest", "state_digest", "program_digest")


@dataclass(frozen=True)
class PreviewRow:
    id: int
    tenant: str
    reason: str
    status: str
    fingerprint: str | None
    plan_sha256: str | None
    config_digest: str | None
    state_digest: str | None
    program_digest: str | None
    changes: dict[str, Any] | None
    text: str | None
    error: str | None
    created: datetime
    finished: datetime | None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ApplyRow:
    id: int
    approval_id: int
    status: str
    worker: str | None
    host: str | None
    pid: int | None
    update_version: int | None
    summary: dict[str, Any] | None
    error: str | None
    queued: datetime
    started: datetime | None
    heartbeat: datetime | None
    finished: datetime | None
    # What the apply job needs, joined from its approval and preview:
    preview_id: int
    tenant: str
    approver: str
    fingerprint: str
    plan_sha256: str | None

    @property
    def message(self) -> str:
        """`pulumi up --message`: who approved what (the audit trail in the stack's history)."""
        return f"approval {self.approval_id} by {self.approver}"

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


_PREVIEW_COLUMNS = ", ".join(f.name for f in fields(PreviewRow))
_APPLY_SELECT = """
    SELECT a.id, a.approval_id, a.status, a.worker, a.host, a.pid, a.update_version, a.summary, a.error,
           a.queued, a.started, a.heartbeat, a.finished,
           p.id AS preview_id, p.tenant, ap.approver, ap.fingerprint, p.plan_sha256
      FROM applies a JOIN approvals ap ON ap.id = a.approval_id JOIN previews p ON p.id = ap.preview_id
"""


def check_tenant(tenant: str) -> None:
    if problem := dns_label_problem(tenant, TENANT_ID_MAX):
        raise InvalidTenant(f"tenant id {tenant!r} {problem}")


MAX_PERSON = 200
MAX_REASON = 4000


def check_person(field: str, value: str) -> None:
    """Who decided: recorded in the audit trail and in `up --message`, so one printable line."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PERSON or not value.isprintable():
        raise InvalidRequest(
            f"{field}: name the person who decides (one printable line, at most {MAX_PERSON} characters)"
        )


def _lock_tenant(conn: Conn, tenant: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (db.LOCK_CLASS_TENANT, tenant))


def _preview(conn: Conn, preview_id: int, *, for_update: bool = False) -> PreviewRow:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_PREVIEW_COLUMNS} FROM previews WHERE id = %s{lock}", (preview_id,)).fetchone()
    if row is None:
        raise UnknownPreview(preview_id)
    return PreviewRow(**row)


def _latest_id(conn: Conn, tenant: str) -> int | None:
    row = conn.execute("SELECT max(id) FROM previews WHERE tenant = %s", (tenant,)).fetchone()
    return row[0] if row else None


# ---------------------------------------------------------------- previews


def insert_preview(conn: Conn, tenant: str, reason: Reason) -> int:
    """A new preview (status running). Older ready previews of the tenant are superseded now: only
    the latest can be approved, and a person must not approve what a newer preview replaces."""
    check_tenant(tenant)
    if reason not in REASONS:
        raise InvalidRequest(f"reason {str(reason)[:40]!r}: one of {', '.join(REASONS)}")
    with db.unavailable_as_typed(), conn.transaction():
        _lock_tenant(conn, tenant)
        conn.execute(
            "UPDATE previews SET status = 'superseded' WHERE tenant = %s AND status = 'ready'",
            (tenant,),
        )
        row = conn.execute(
            "INSERT INTO previews (tenant, reason) VALUES (%s, %s) RETURNING id", (tenant, reason)
        ).fetchone()
    assert row is not None
    return int(row[0])


def running_preview(conn: Conn, tenant: str) -> int | None:
    """The tenant's newest preview still running (queued or under way), if any."""
    with db.unavailable_as_typed():
        row = conn.execute(
            "SELECT id FROM previews WHERE tenant = %s AND status = 'running' ORDER BY id DESC LIMIT 1", (tenant,)
        ).fetchone()
    return int(row[0]) if row else None


def finish_preview(
    conn: Conn,
    preview_id: int,
    *,
    changes: ChangeSet | None = None,
    error: str | None = None,
    digests: Mapping[str, str] | None = None,
) -> PreviewRow:
    """Record a preview's outcome: `error` → failed; a ChangeSet with changes → ready (superseded when
    a newer preview of the tenant exists); without changes → empty. `digests` (plan_sha256,
    config_digest, state_digest, program_digest) default to the ChangeSet's. Only a running preview
    finishes, once: a replayed preview job gets PreviewFinished and changes nothing."""
    if (changes is None) == (error is None):
        raise ValueError("finish_preview takes either changes or error")
    values = {name: getattr(changes, name) or None for name in DIGESTS} if changes else dict.fromkeys(DIGESTS)
    for name, value in (digests or {}).items():
        if name not in DIGESTS:
            raise ValueError(f"digest {name!r}: one of {DIGESTS}")
        values[name] = value
    with db.unavailable_as_typed(), conn.transaction():
        current = _preview(conn, preview_id)
        _lock_tenant(conn, current.tenant)
        current = _preview(conn, preview_id, for_update=True)
        if current.status != "running":
            raise PreviewFinished(preview_id, current.status)
        if error is not None:
            status = "failed"
        elif changes is not None and changes.has_changes:
            status = "ready" if _latest_id(conn, current.tenant) == preview_id else "superseded"
        else:
            status = "empty"
        conn.execute(
            "UPDATE previews SET status = %s, fingerprint = %s, plan_sha256 = %s, config_digest = %s,"
            " state_digest = %s, program_digest = %s, changes = %s, text = %s, error = %s, finished = now()"
            " WHERE id = %s",
            (
                status,
                changes.fingerprint if changes else None,
                values["plan_sha256"],
                values["config_digest"],
                values["state_digest"],
                values["program_digest"],
                Jsonb(stored_changes(changes)) if changes else None,
                changes.to_text() if changes else None,
                error,
                preview_id,
            ),
        )
        return _preview(conn, preview_id)


def stored_changes(changes: ChangeSet) -> dict[str, Any]:
    """ChangeSet.to_json() (secrets masked there) with the unchanged resources counted, not listed:
    they are most of a steady tenant's resources (~300 bytes each; a 50-app tenant has hundreds), a
    daily drift preview of every tenant would store them all again, and neither the fingerprint nor
    the approval text covers them."""
    data = changes.to_json()
    apps = {app: [r for r in rs if r.get("op") != "same"] for app, rs in data.get("apps", {}).items()}
    return {**data, "apps": {app: rs for app, rs in apps.items() if rs}}


def get_preview(conn: Conn, preview_id: int) -> PreviewRow:
    with db.unavailable_as_typed():
        return _preview(conn, preview_id)


def latest_preview(conn: Conn, tenant: str) -> PreviewRow | None:
    check_tenant(tenant)
    with db.unavailable_as_typed():
        latest = _latest_id(conn, tenant)
        return _preview(conn, latest) if latest is not None else None


# ---------------------------------------------------------------- decisions


def _decidable(conn: Conn, preview_id: int) -> PreviewRow:
    """The preview, locked, if a person may decide on it now; else the typed refusal."""
    preview = _preview(conn, preview_id)
    _lock_tenant(conn, preview.tenant)
    preview = _preview(conn, preview_id, for_update=True)
    if preview.status in ("approved", "rejected", "applied"):
        raise AlreadyDecided(preview_id, preview.status)
    latest = _latest_id(conn, preview.tenant)
    if preview.status == "superseded" or latest != preview_id:
        raise PreviewSuperseded(preview_id, preview.tenant, latest or preview_id)
    if preview.status != "ready":
        raise PreviewNotReady(preview_id, preview.status)
    return preview


def approve(
    conn: Conn, preview_id: int, fingerprint: str, approver: str, *, defer_apply: DeferApply
) -> tuple[int, int]:
    """Approve the tenant's latest preview: the approval row, its apply (queued) and the apply job
    (`defer_apply(conn, apply_id)`) in ONE transaction, so there is never an approval without its
    job nor a job without its approval. Returns (approval_id, apply_id). A superseded, replayed,
    unknown or mismatched approval is a typed error and writes nothing."""
    check_person("approver", approver)
    with db.unavailable_as_typed(), conn.transaction():
        preview = _decidable(conn, preview_id)
        if fingerprint != preview.fingerprint:
            raise FingerprintMismatch(preview_id, fingerprint, preview.fingerprint or "")
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO approvals (preview_id, approver, fingerprint) VALUES (%s, %s, %s) RETURNING id",
                    (preview_id, approver, fingerprint),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            # Not reachable past the row lock above; kept so a path around it is still typed.
            raise AlreadyDecided(preview_id, "approved") from None
        assert row is not None
        approval_id = int(row[0])
        done = conn.execute("INSERT INTO applies (approval_id) VALUES (%s) RETURNING id", (approval_id,)).fetchone()
        assert done is not None
        apply_id = int(done[0])
        conn.execute("UPDATE previews SET status = 'approved' WHERE id = %s", (preview_id,))
        defer_apply(conn, apply_id)
    return approval_id, apply_id


def reject(conn: Conn, preview_id: int, by: str, reason: str = "") -> None:
    """Reject the tenant's latest ready preview: it can then never be approved."""
    check_person("by", by)
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason: at most {MAX_REASON} characters")
    with db.unavailable_as_typed(), conn.transaction():
        _decidable(conn, preview_id)
        conn.execute('INSERT INTO rejections (preview_id, "by", reason) VALUES (%s, %s, %s)', (preview_id, by, reason))
        conn.execute("UPDATE previews SET status = 'rejected' WHERE id = %s", (preview_id,))


# ---------------------------------------------------------------- applies


def _apply(conn: Conn, apply_id: int) -> ApplyRow:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_APPLY_SELECT + " WHERE a.id = %s", (apply_id,)).fetchone()
    if row is None:
        raise UnknownApply(apply_id)
    return ApplyRow(**row)


def get_apply(conn: Conn, apply_id: int) -> ApplyRow:
    with db.unavailable_as_typed():
        return _apply(conn, apply_id)


def start_apply(conn: Conn, apply_id: int, worker: str, host: str, pid: int) -> ApplyRow:
    """queued → started, once: a replayed job, a retried job or a second worker gets ApplyReplayed
    and must not run the CLI."""
    with db.unavailable_as_typed(), conn.transaction():
        row = conn.execute(
            "UPDATE applies SET status = 'started', worker = %s, host = %s, pid = %s, started = now(),"
            " heartbeat = now() WHERE id = %s AND status = 'queued' RETURNING id",
            (worker, host, pid, apply_id),
        ).fetchone()
        current = _apply(conn, apply_id)
        if row is None:
            raise ApplyReplayed(apply_id, current.status)
        return current


def heartbeat(conn: Conn, apply_id: int) -> bool:
    """The worker is alive and still running this apply; False once it is no longer `started`
    (the reaper marked it interrupted: the worker must stop its CLI)."""
    with db.unavailable_as_typed(), conn.transaction():
        row = conn.execute(
            "UPDATE applies SET heartbeat = now() WHERE id = %s AND status = 'started' RETURNING id", (apply_id,)
        ).fetchone()
    return row is not None


def finish_apply(
    conn: Conn,
    apply_id: int,
    *,
    status: Literal["succeeded", "failed", "interrupted"],
    update_version: int | None = None,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> ApplyRow:
    """started → succeeded / failed / interrupted (interrupted also from queued: the reaper's verdict
    on a job that never started). A succeeded apply marks its preview applied."""
    if status not in FINAL_APPLY:
        raise ValueError(f"status {status!r}: one of {FINAL_APPLY}")
    allowed = ("queued", "started") if status == "interrupted" else ("started",)
    with db.unavailable_as_typed(), conn.transaction():
        row = conn.execute(
            "UPDATE applies SET status = %s, update_version = %s, summary = %s, error = %s, finished = now(),"
            " started = coalesce(started, now()) WHERE id = %s AND status = ANY(%s) RETURNING id",
            (
                status,
                update_version,
                Jsonb(dict(summary)) if summary is not None else None,
                error,
                apply_id,
                list(allowed),
            ),
        ).fetchone()
        current = _apply(conn, apply_id)
        if row is None:
            raise ApplyReplayed(apply_id, current.status)
        if status == "succeeded":
            conn.execute("UPDATE previews SET status = 'applied' WHERE id = %s", (current.preview_id,))
        return current


def applies(
    conn: Conn,
    *,
    status: ApplyStatus | tuple[ApplyStatus, ...] | None = None,
    tenant: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[ApplyRow]:
    """Applies by status(es) and/or tenant, oldest first unless `newest_first` (the reaper reads
    the `started` ones; status() the open ones and the last)."""
    where: list[str] = []
    args: list[Any] = []
    if status is not None:
        where.append("a.status = ANY(%s)")
        args.append([status] if isinstance(status, str) else list(status))
    if tenant is not None:
        check_tenant(tenant)
        where.append("p.tenant = %s")
        args.append(tenant)
    query = _APPLY_SELECT + ((" WHERE " + " AND ".join(where)) if where else "")
    query += " ORDER BY a.id DESC" if newest_first else " ORDER BY a.id"
    if limit is not None:
        query += " LIMIT %s"
        args.append(limit)
    with db.unavailable_as_typed(), conn.cursor(row_factory=dict_row) as cur:
        return [ApplyRow(**row) for row in cur.execute(query, args)]


# ---------------------------------------------------------------- history


def history(conn: Conn, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
    """The tenant's previews, newest first, each with its decision and apply: who approved or
    rejected what, when, and what the apply did. Nothing here is ever deleted."""
    check_tenant(tenant)
    if not 1 <= limit <= 10_000:
        raise InvalidRequest(f"limit {limit}: between 1 and 10000")
    query = """
        SELECT p.id, p.reason, p.status, p.fingerprint, p.plan_sha256, p.config_digest, p.state_digest,
               p.program_digest, p.changes -> 'counts' AS counts, p.error, p.created, p.finished,
               ap.id AS approval_id, ap.approver, ap.created AS approved,
               r."by" AS rejected_by, r.reason AS rejection_reason, r.created AS rejected,
               a.id AS apply_id, a.status AS apply_status, a.worker, a.host, a.update_version, a.summary,
               a.error AS apply_error, a.started AS apply_started, a.finished AS apply_finished
          FROM previews p
          LEFT JOIN approvals ap ON ap.preview_id = p.id
          LEFT JOIN applies a ON a.approval_id = ap.id
          LEFT JOIN rejections r ON r.preview_id = p.id
         WHERE p.tenant = %s
         ORDER BY p.id DESC
         LIMIT %s
    """
    with db.unavailable_as_typed(), conn.cursor(row_factory=dict_row) as cur:
        return [_jsonable(row) for row in cur.execute(query, (tenant, limit))]


# ---------------------------------------------------------------- stack secrets blocks

SECRETS_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
"""The secrets-manager block Pulumi writes in Pulumi.<stack>.yaml: the provider URL and the wrapped
data key (KMS) or the passphrase salt. Ciphertext only; nothing else of a stack file is kept."""


def get_stack_secrets(conn: Conn, tenant: str) -> dict[str, str] | None:
    check_tenant(tenant)
    with db.unavailable_as_typed(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT secretsprovider, encryptedkey, encryptionsalt FROM stack_secrets WHERE tenant = %s", (tenant,)
        ).fetchone()
    return {k: v for k, v in row.items() if v is not None} if row else None


def put_stack_secrets(conn: Conn, tenant: str, block: Mapping[str, str]) -> None:
    check_tenant(tenant)
    unknown = sorted(set(block) - set(SECRETS_KEYS))
    if unknown or not isinstance(block.get("secretsprovider"), str):
        raise InvalidRequest(
            f"a stack secrets block holds {SECRETS_KEYS} (secretsprovider required); got {sorted(block)}"
        )
    with db.unavailable_as_typed(), conn.transaction():
        conn.execute(
            "INSERT INTO stack_secrets (tenant, secretsprovider, encryptedkey, encryptionsalt) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (tenant) DO UPDATE SET secretsprovider = excluded.secretsprovider,"
            " encryptedkey = excluded.encryptedkey, encryptionsalt = excluded.encryptionsalt, updated = now()",
            (tenant, block["secretsprovider"], block.get("encryptedkey"), block.get("encryptionsalt")),
        )
