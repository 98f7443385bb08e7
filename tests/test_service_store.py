"""service.db and service.store against a real PostgreSQL (tests/postgres.py): migrations once and
concurrent-safe, the approval rules kept by code AND by the database's constraints, applies run once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from automation import operations as ops
from automation.changeset import ChangeSet, changeset_from_events
from service import db, errors, store
from tests import approval_events as ae

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def changes() -> tuple[ChangeSet, ChangeSet]:
    """Two real change sets (the program's first deploy of one app, then a one-field change)."""
    first = changeset_from_events(ae.first_deploy(1), stack="acme", config_digest="hmac:one", plan_sha256="a" * 64)
    second = changeset_from_events(ae.one_field_change(1), stack="acme", config_digest="hmac:two")
    assert first.has_changes and second.has_changes and first.fingerprint != second.fingerprint
    return first, second


@pytest.fixture
def conn(migrated_database: str) -> Iterator[Conn]:
    with psycopg.connect(migrated_database, autocommit=True) as c:
        yield c


def count(conn: Conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # table names are the tests' own
    assert row is not None
    return int(row[0])


def no_defer(conn: Conn, apply_id: int) -> None:
    """The approval's job callback when a test only looks at the rows (the job side is in test_service_api)."""


def ready(conn: Conn, tenant: str, change: ChangeSet) -> store.PreviewRow:
    preview_id = store.insert_preview(conn, tenant, "request")
    row = store.finish_preview(conn, preview_id, changes=change)
    assert row.status == "ready"
    return row


# ---------------------------------------------------------------- migrations


def test_migrate_applies_everything_once_and_records_it(database: str) -> None:
    applied = db.migrate(database)
    assert applied[:2] == ["0001_service.sql", "procrastinate/schema"]
    assert {f"procrastinate/{name}" for name in db.procrastinate_migrations()} <= set(applied)
    assert "procrastinate/03.04.00_50_post_add_retry_failed_job_procedure.sql" in applied
    assert db.migrate(database) == []
    with psycopg.connect(database) as conn:
        assert sorted(db.applied_migrations(conn)) == sorted(applied)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"previews", "approvals", "applies", "rejections", "stack_secrets", "procrastinate_jobs"} <= tables
        # Procrastinate's defer function, which its connector calls (sql/queries.sql defer_jobs).
        assert conn.execute("SELECT to_regproc('procrastinate_defer_jobs_v1')").fetchone() != (None,)


def test_concurrent_migrations_apply_once(database: str) -> None:
    start = threading.Barrier(4)
    results: list[list[str]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database) as conn:
                start.wait()
                results.append(db.migrate(conn))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            failures.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(len(r) > 0 for r in results) == [False, False, False, True]
    with psycopg.connect(database) as conn:
        assert count(conn, "scoutflo_migrations") == len(next(r for r in results if r))


def test_a_procrastinate_script_not_yet_recorded_is_applied(database: str) -> None:
    # A database set up by an older Procrastinate has the newer scripts unrecorded: migrate runs them.
    db.migrate(database)
    name = "procrastinate/03.04.00_50_post_add_retry_failed_job_procedure.sql"
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM scoutflo_migrations WHERE name = %s", (name,))
        conn.execute("DROP TRIGGER procrastinate_trigger_status_events_update_v1 ON procrastinate_jobs")
    assert db.migrate(database) == [name]
    with psycopg.connect(database) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'procrastinate_trigger_status_events_update_v1'"
        ).fetchone()
        assert found == (1,)


def test_a_failed_migration_leaves_nothing(database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    broken = tmp_path / "migrations"
    broken.mkdir()
    (broken / "0001_service.sql").write_text((db.MIGRATIONS / "0001_service.sql").read_text())
    (broken / "0002_broken.sql").write_text("CREATE TABLE half (id int);\nSELECT no_such_function();\n")
    monkeypatch.setattr(db, "MIGRATIONS", broken)
    with pytest.raises(psycopg.errors.UndefinedFunction):
        db.migrate(database)
    with psycopg.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == set()


# ---------------------------------------------------------------- previews and approvals


def test_approve_the_latest_ready_preview(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])
    assert preview.fingerprint == changes[0].fingerprint and preview.plan_sha256 == "a" * 64
    assert preview.changes is not None and preview.changes["fingerprint"] == changes[0].fingerprint
    assert preview.text == changes[0].to_text()
    assert store.latest_preview(conn, "acme") == preview
    seen: list[tuple[int, int]] = []

    def defer(c: Conn, apply_id: int) -> None:
        # Called inside the approval's transaction: the rows are there for this connection only.
        seen.append((apply_id, count(c, "approvals")))
        with psycopg.connect(c.info.dsn) as other:
            assert count(other, "approvals") == 0

    approval_id, apply_id = store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=defer)
    assert seen == [(apply_id, 1)]
    assert store.get_preview(conn, preview.id).status == "approved"
    row = store.get_apply(conn, apply_id)
    assert (row.status, row.approval_id, row.tenant, row.approver, row.preview_id) == (
        "queued",
        approval_id,
        "acme",
        "alice",
        preview.id,
    )
    assert row.message == f"approval {approval_id} by alice"


def test_a_preview_keeps_its_changes_and_counts_the_unchanged(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    update = changes[1]  # one field of one app changed, the rest of the tenant unchanged
    stored = ready(conn, "acme", update).changes
    assert stored is not None and stored["counts"] == dict(update.counts) and update.counts["same"] > 10
    listed = [r for rs in stored["apps"].values() for r in rs]
    assert [r["op"] for r in listed] == ["update"]
    expected = [r for rs in update.to_json()["apps"].values() for r in rs if r["op"] != "same"]
    assert listed == json.loads(json.dumps(expected))  # tuples come back as JSON arrays
    assert stored["fingerprint"] == update.fingerprint


def test_a_failing_job_callback_writes_nothing(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])

    def defer(c: Conn, apply_id: int) -> None:
        raise RuntimeError("queue refused")

    with pytest.raises(RuntimeError, match="queue refused"):
        store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=defer)
    assert (count(conn, "approvals"), count(conn, "applies")) == (0, 0)
    assert store.get_preview(conn, preview.id).status == "ready"


def test_a_newer_preview_supersedes_and_the_older_is_refused(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    old = ready(conn, "acme", changes[0])
    newer = store.insert_preview(conn, "acme", "drift")
    assert store.get_preview(conn, old.id).status == "superseded"
    with pytest.raises(errors.PreviewSuperseded) as refused:
        store.approve(conn, old.id, old.fingerprint or "", "alice", defer_apply=no_defer)
    assert refused.value.latest == newer and refused.value.exit_code == 13
    # The latest is still running: nothing to approve yet.
    with pytest.raises(errors.PreviewNotReady):
        store.approve(conn, newer, changes[1].fingerprint, "alice", defer_apply=no_defer)
    assert (count(conn, "approvals"), count(conn, "applies")) == (0, 0)


def test_an_older_preview_finishing_after_a_newer_one_started_is_superseded(
    conn: Conn, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    first = store.insert_preview(conn, "acme", "request")
    second = store.insert_preview(conn, "acme", "request")
    assert store.finish_preview(conn, first, changes=changes[0]).status == "superseded"
    assert store.finish_preview(conn, second, changes=changes[1]).status == "ready"
    with pytest.raises(errors.PreviewSuperseded):
        store.approve(conn, first, changes[0].fingerprint, "alice", defer_apply=no_defer)


def test_a_replayed_approval_is_refused(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])
    store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=no_defer)
    with pytest.raises(errors.AlreadyDecided) as replay:
        store.approve(conn, preview.id, preview.fingerprint or "", "mallory", defer_apply=no_defer)
    assert replay.value.kind == "already-decided"
    assert (count(conn, "approvals"), count(conn, "applies")) == (1, 1)


def test_fingerprint_unknown_and_unready_previews_are_refused(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])
    with pytest.raises(errors.FingerprintMismatch) as mismatch:
        store.approve(conn, preview.id, changes[1].fingerprint, "alice", defer_apply=no_defer)
    assert mismatch.value.exit_code == ops.ChangesDiffer.exit_code
    with pytest.raises(errors.UnknownPreview):
        store.approve(conn, preview.id + 1000, "sha256:x", "alice", defer_apply=no_defer)
    empty = store.insert_preview(conn, "beta", "drift")
    no_change = changeset_from_events([], stack="beta")
    assert store.finish_preview(conn, empty, changes=no_change).status == "empty"
    with pytest.raises(errors.PreviewNotReady, match="nothing to change"):
        store.approve(conn, empty, no_change.fingerprint, "alice", defer_apply=no_defer)
    failed = store.insert_preview(conn, "gamma", "request")
    assert store.finish_preview(conn, failed, error="stack-busy").status == "failed"
    with pytest.raises(errors.PreviewNotReady):
        store.approve(conn, failed, "sha256:x", "alice", defer_apply=no_defer)
    with pytest.raises(errors.PreviewFinished):
        store.finish_preview(conn, failed, error="again")
    assert (count(conn, "approvals"), count(conn, "applies")) == (0, 0)


def test_reject_is_a_decision_too(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])
    store.reject(conn, preview.id, "bob", "not now")
    with pytest.raises(errors.AlreadyDecided):
        store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=no_defer)
    with pytest.raises(errors.AlreadyDecided):
        store.reject(conn, preview.id, "bob")


def test_malformed_requests_are_typed_and_write_nothing(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    preview = ready(conn, "acme", changes[0])
    fingerprint = preview.fingerprint or ""
    for approver in ("", "  ", "alice\nbob", "x" * 201):
        with pytest.raises(errors.InvalidRequest, match="approver"):
            store.approve(conn, preview.id, fingerprint, approver, defer_apply=no_defer)
    with pytest.raises(errors.InvalidRequest, match="by"):
        store.reject(conn, preview.id, "")
    with pytest.raises(errors.InvalidRequest, match="reason"):
        store.insert_preview(conn, "acme", "whim")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidRequest, match="limit"):
        store.history(conn, "acme", limit=0)
    assert (count(conn, "approvals"), count(conn, "rejections"), count(conn, "previews")) == (0, 0, 1)


def test_bad_tenant_ids_are_refused_by_code_and_by_the_table(conn: Conn) -> None:
    for bad in ("", "Acme", "../x", "a" * 41, "acme\x00"):
        with pytest.raises(ops.InvalidTenant):
            store.insert_preview(conn, bad, "request")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO previews (tenant, reason) VALUES ('../x', 'request')")


# ---------------------------------------------------------------- what the database itself refuses


def test_the_database_keeps_one_approval_per_preview_and_one_apply_per_approval(
    conn: Conn, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    preview = ready(conn, "acme", changes[0])
    approval_id, _ = store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=no_defer)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO approvals (preview_id, approver, fingerprint) VALUES (%s, 'x', %s)",
            (preview.id, preview.fingerprint),
        )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO applies (approval_id) VALUES (%s)", (approval_id,))
    other = ready(conn, "beta", changes[1])
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # an approval carries its preview's fingerprint
        conn.execute(
            "INSERT INTO approvals (preview_id, approver, fingerprint) VALUES (%s, 'x', %s)",
            (other.id, changes[0].fingerprint),
        )


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM previews",
        "DELETE FROM approvals",
        "DELETE FROM applies",
        "DELETE FROM rejections",
        "TRUNCATE previews CASCADE",
        "TRUNCATE approvals CASCADE",
        "TRUNCATE applies",
        "UPDATE approvals SET approver = 'mallory'",
    ],
)
def test_the_audit_trail_is_never_deleted_nor_rewritten(
    conn: Conn, changes: tuple[ChangeSet, ChangeSet], statement: str
) -> None:
    preview = ready(conn, "acme", changes[0])
    store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=no_defer)
    rejected = ready(conn, "beta", changes[1])
    store.reject(conn, rejected.id, "bob")
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="audit trail keeps every row"):
        conn.execute(statement.encode())
    assert [count(conn, t) for t in ("previews", "approvals", "applies", "rejections")] == [2, 1, 1, 1]


# ---------------------------------------------------------------- concurrency


def test_concurrent_approvals_of_one_preview_exactly_one_wins(
    migrated_database: str, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        preview = ready(conn, "acme", changes[0])
    contenders = 6
    start = threading.Barrier(contenders)
    won: list[tuple[int, int]] = []
    refused: list[BaseException] = []

    def slow_defer(conn: Conn, apply_id: int) -> None:
        # Widen the window between the approval's insert and its commit.
        conn.execute("SELECT pg_sleep(0.2)")

    def run(name: str) -> None:
        with psycopg.connect(migrated_database, autocommit=True) as conn:
            start.wait()
            try:
                won.append(store.approve(conn, preview.id, preview.fingerprint or "", name, defer_apply=slow_defer))
            except errors.AlreadyDecided as err:
                refused.append(err)

    threads = [threading.Thread(target=run, args=(f"approver{i}",)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == contenders - 1
    with psycopg.connect(migrated_database) as conn:
        assert (count(conn, "approvals"), count(conn, "applies")) == (1, 1)


def test_a_preview_inserted_while_an_approval_commits_never_leaves_two_approvable(
    migrated_database: str, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    # The approval holds the tenant's lock until it commits; the new preview supersedes nothing
    # that was approved, and only it is the latest afterwards.
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        preview = ready(conn, "acme", changes[0])
    inside = threading.Event()
    release = threading.Event()

    def held_defer(conn: Conn, apply_id: int) -> None:
        inside.set()
        assert release.wait(10)

    def approve() -> None:
        with psycopg.connect(migrated_database, autocommit=True) as conn:
            store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=held_defer)

    approver = threading.Thread(target=approve)
    approver.start()
    assert inside.wait(10)
    inserted: list[int] = []

    def insert() -> None:
        with psycopg.connect(migrated_database, autocommit=True) as conn:
            inserted.append(store.insert_preview(conn, "acme", "request"))

    inserter = threading.Thread(target=insert)
    inserter.start()
    inserter.join(0.5)
    assert inserter.is_alive()  # waits for the approval's transaction
    release.set()
    approver.join()
    inserter.join()
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        assert store.get_preview(conn, preview.id).status == "approved"
        latest = store.latest_preview(conn, "acme")
        assert latest is not None and latest.id == inserted[0] and latest.status == "running"


# ---------------------------------------------------------------- applies


def queued_apply(conn: Conn, change: ChangeSet, tenant: str = "acme") -> int:
    preview = ready(conn, tenant, change)
    return store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=no_defer)[1]


def test_an_apply_starts_once_and_finishes_once(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    apply_id = queued_apply(conn, changes[0])
    started = store.start_apply(conn, apply_id, "worker-a", "host-a", 4242)
    assert (started.status, started.worker, started.host, started.pid) == ("started", "worker-a", "host-a", 4242)
    with pytest.raises(errors.ApplyReplayed) as replay:
        store.start_apply(conn, apply_id, "worker-b", "host-b", 1)
    assert replay.value.status == "started"
    assert store.heartbeat(conn, apply_id) is True
    done = store.finish_apply(conn, apply_id, status="succeeded", update_version=7, summary={"update": 3})
    assert (done.status, done.update_version, done.summary) == ("succeeded", 7, {"update": 3})
    assert store.get_preview(conn, done.preview_id).status == "applied"
    assert store.heartbeat(conn, apply_id) is False
    with pytest.raises(errors.ApplyReplayed):
        store.finish_apply(conn, apply_id, status="failed", error="again")
    with pytest.raises(errors.ApplyReplayed):
        store.start_apply(conn, apply_id, "worker-b", "host-b", 1)
    with pytest.raises(errors.UnknownApply):
        store.start_apply(conn, apply_id + 1000, "worker-b", "host-b", 1)


def test_an_apply_that_never_started_can_be_marked_interrupted(
    conn: Conn, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    apply_id = queued_apply(conn, changes[0])
    with pytest.raises(errors.ApplyReplayed):
        store.finish_apply(conn, apply_id, status="failed", error="never started")
    row = store.finish_apply(conn, apply_id, status="interrupted", error="worker lost")
    assert row.status == "interrupted" and row.started is not None
    assert store.get_preview(conn, row.preview_id).status == "approved"  # not applied: a new preview is due
    assert [a.id for a in store.applies(conn, status="interrupted", tenant="acme")] == [apply_id]


# ---------------------------------------------------------------- history, secrets blocks


def test_history_lists_every_decision_newest_first(conn: Conn, changes: tuple[ChangeSet, ChangeSet]) -> None:
    superseded = ready(conn, "acme", changes[0])
    applied = ready(conn, "acme", changes[1])
    approval_id, apply_id = store.approve(conn, applied.id, applied.fingerprint or "", "alice", defer_apply=no_defer)
    store.start_apply(conn, apply_id, "w", "h", 1)
    store.finish_apply(conn, apply_id, status="succeeded", update_version=2, summary={"create": 5})
    rejected = ready(conn, "acme", changes[0])
    store.reject(conn, rejected.id, "bob", "too big")
    ready(conn, "other", changes[0])
    listed = store.history(conn, "acme")
    assert [h["id"] for h in listed] == [rejected.id, applied.id, superseded.id]
    assert [h["status"] for h in listed] == ["rejected", "applied", "superseded"]
    assert (listed[0]["rejected_by"], listed[0]["rejection_reason"]) == ("bob", "too big")
    assert (listed[1]["approval_id"], listed[1]["approver"], listed[1]["apply_id"]) == (approval_id, "alice", apply_id)
    assert (listed[1]["apply_status"], listed[1]["update_version"], listed[1]["worker"]) == ("succeeded", 2, "w")
    assert listed[1]["counts"] == dict(changes[1].counts)
    assert isinstance(listed[1]["created"], str)  # JSON-ready
    assert [h["id"] for h in store.history(conn, "acme", limit=1)] == [rejected.id]


def test_stack_secrets_blocks(conn: Conn) -> None:
    assert store.get_stack_secrets(conn, "acme") is None
    block = {"secretsprovider": "awskms://alias/scoutflo", "encryptedkey": "AQICAHh…wrapped"}
    store.put_stack_secrets(conn, "acme", block)
    assert store.get_stack_secrets(conn, "acme") == block
    store.put_stack_secrets(conn, "acme", {"secretsprovider": "passphrase", "encryptionsalt": "v1:salt"})
    assert store.get_stack_secrets(conn, "acme") == {"secretsprovider": "passphrase", "encryptionsalt": "v1:salt"}
    with pytest.raises(errors.InvalidRequest, match="secretsprovider"):
        store.put_stack_secrets(conn, "acme", {"secretsprovider": "passphrase", "config": "x"})


# ---------------------------------------------------------------- the database unreachable


def test_an_unreachable_database_is_a_typed_error(tmp_path: Any) -> None:
    url = psycopg.conninfo.make_conninfo(host=str(tmp_path), dbname="scoutflo", user="nobody", password="hunter2")
    with pytest.raises(errors.DatabaseUnavailable) as down:
        db.connect(url)
    assert down.value.exit_code == 11 and str(tmp_path) in str(down.value)
    assert "hunter2" not in str(down.value)
    with pytest.raises(errors.DatabaseUnavailable):
        db.migrate(url)


def test_a_connection_lost_mid_call_is_a_typed_error(
    postgres: Any, migrated_database: str, changes: tuple[ChangeSet, ChangeSet]
) -> None:
    conn = psycopg.connect(migrated_database, autocommit=True)
    preview = ready(conn, "acme", changes[0])
    killer = psycopg.connect(migrated_database, autocommit=True)

    def kill_me(c: Conn, apply_id: int) -> None:
        # The server ends this session between the approval's insert and its commit.
        killer.execute("SELECT pg_terminate_backend(%s)", (c.info.backend_pid,))

    with pytest.raises(errors.DatabaseUnavailable, match="nothing was written"):
        store.approve(conn, preview.id, preview.fingerprint or "", "alice", defer_apply=kill_me)
    assert (count(killer, "approvals"), count(killer, "applies")) == (0, 0)
    assert store.get_preview(killer, preview.id).status == "ready"
    killer.close()


# ---------------------------------------------------------------- error codes


def test_service_errors_continue_the_cli_table() -> None:
    taken = {cls.exit_code for cls in ops.ERRORS} | {0, 2}
    codes = [cls.exit_code for cls in errors.ERRORS]
    assert codes == list(range(max(taken) + 1, max(taken) + 1 + len(codes)))
    kinds = [cls.kind for cls in (*ops.ERRORS, *errors.ERRORS)]
    assert len(kinds) == len(set(kinds))
    assert all(issubclass(cls, ops.AutomationError) for cls in errors.ERRORS)
