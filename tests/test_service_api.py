"""service.api, the backend's calls, against a real PostgreSQL with Procrastinate's schema: the jobs
are deferred by service/jobs.py (Procrastinate 3.10) on the call's connection and land in
procrastinate_jobs in the same transaction as the rows; a database restart loses nothing; no secret
reaches any table."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from automation import operations as ops
from automation.changeset import ChangeSet, changeset_from_events
from service import errors, jobs, store
from service.api import ServiceApi
from service.tenants import DirectoryTenantSource
from tests import approval_events as ae
from tests.kubeconfigs import tenant_spec
from tests.postgres import Postgres

SECRETS = {
    "github": "ghp_KNOWNGITHUBSECRET0123456789",
    "aws": "AWS/KNOWN+SECRET/ACCESS/KEY/0123456789",
    "kube": "KNOWN-KUBE-BEARER-TOKEN-0123456789",
}
TENANTS = ("acme", "beta", "gamma", "delta", "omega")


@pytest.fixture(scope="module")
def change() -> ChangeSet:
    """A real change set: the program's first deploy of one app, secrets masked by the event log."""
    return changeset_from_events(ae.first_deploy(1), stack="acme", config_digest="hmac:acme", plan_sha256="b" * 64)


@pytest.fixture
def tenants(tmp_path: Path) -> DirectoryTenantSource:
    root = tmp_path / "tenants"
    root.mkdir(mode=0o700)
    for tenant in TENANTS:
        spec = tenant_spec(token=SECRETS["kube"], id=tenant)
        spec["github"] = {"owner": f"{tenant}-gitops", "token": SECRETS["github"]}
        spec["aws"] = {"region": "eu-west-1", "accessKeyId": "AKIAKNOWN", "secretAccessKey": SECRETS["aws"]}
        path = root / f"{tenant}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
    return DirectoryTenantSource(root)


@pytest.fixture
def api(migrated_database: str, tenants: DirectoryTenantSource) -> ServiceApi:
    return ServiceApi(
        database_url=migrated_database,
        tenants=tenants,
        defer_preview=jobs.defer_preview,
        defer_apply=jobs.defer_apply,
    )


@pytest.fixture
def conn(migrated_database: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated_database, autocommit=True) as c:
        yield c


def job_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, dict[str, Any], str | None, str | None, str]]:
    return [
        (r[0], r[1], r[2], r[3], r[4])
        for r in conn.execute(
            "SELECT task_name, args, lock, queueing_lock, status::text FROM procrastinate_jobs ORDER BY id"
        )
    ]


def finish(conn: psycopg.Connection[Any], preview_id: int, change: ChangeSet) -> str:
    """What the preview job does when the engine is done (service/jobs.py run_preview)."""
    row = store.finish_preview(conn, preview_id, changes=change)
    assert row.status == "ready" and row.fingerprint
    return row.fingerprint


def test_request_preview_queues_one_job_with_ids_only(api: ServiceApi, conn: psycopg.Connection[Any]) -> None:
    first = api.request_preview("acme")
    assert job_rows(conn) == [("preview_job", {"preview_id": first}, "tenant:acme", "preview:acme", "todo")]
    # A second request while that one waits gets the same preview: it has not read the spec yet.
    assert api.request_preview("acme", "drift") == first
    assert len(job_rows(conn)) == 1 and store.latest_preview(conn, "acme") == store.get_preview(conn, first)
    # Once its job runs (the queueing lock covers `todo` jobs only), a new request queues a new preview.
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE args->>'preview_id' = %s", (str(first),))
    second = api.request_preview("acme")
    assert second > first and job_rows(conn)[-1][:2] == ("preview_job", {"preview_id": second})


def test_concurrent_requests_queue_one_preview(api: ServiceApi, conn: psycopg.Connection[Any]) -> None:
    start = threading.Barrier(4)
    got: list[int] = []

    def request() -> None:
        start.wait()
        got.append(api.request_preview("acme"))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and len(set(got)) == 1
    assert len(job_rows(conn)) == 1 and conn.execute("SELECT count(*) FROM previews").fetchone() == (1,)


def test_an_unknown_tenant_is_refused_and_nothing_is_queued(api: ServiceApi, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ops.InvalidTenant, match="unknown tenant"):
        api.request_preview("nobody")
    with pytest.raises(ops.InvalidTenant):
        api.request_preview("../acme")
    assert job_rows(conn) == [] and conn.execute("SELECT count(*) FROM previews").fetchone() == (0,)


def test_approve_writes_the_approval_the_apply_and_its_job_together(
    api: ServiceApi, conn: psycopg.Connection[Any], change: ChangeSet
) -> None:
    preview_id = api.request_preview("acme")
    fingerprint = finish(conn, preview_id, change)
    latest = api.latest_preview("acme")
    assert latest is not None and (latest.id, latest.status, latest.fingerprint) == (preview_id, "ready", fingerprint)
    approval = api.approve(preview_id, fingerprint, "alice@acme")
    assert job_rows(conn)[-1] == ("apply_job", {"apply_id": approval.apply_id}, "tenant:acme", None, "todo")
    row = store.get_apply(conn, approval.apply_id)
    assert (row.status, row.approval_id, row.approver) == ("queued", approval.approval_id, "alice@acme")
    status = api.status("acme")
    assert status["preview"]["status"] == "approved" and status["preview"]["counts"] == dict(change.counts)
    assert [a["id"] for a in status["openApplies"]] == [approval.apply_id]
    assert "text" not in status["preview"] and "changes" not in status["preview"]
    assert status["lastApply"]["id"] == approval.apply_id
    store.start_apply(conn, approval.apply_id, "w", "h", 1)
    store.finish_apply(conn, approval.apply_id, status="succeeded")
    status = api.status("acme")
    assert status["openApplies"] == [] and status["lastApply"]["status"] == "succeeded"
    assert status["preview"]["status"] == "applied"
    assert api.status("beta") == {"tenant": "beta", "preview": None, "openApplies": [], "lastApply": None}


def test_a_job_that_cannot_be_queued_leaves_no_approval(
    migrated_database: str, tenants: DirectoryTenantSource, conn: psycopg.Connection[Any], change: ChangeSet
) -> None:
    def defer_then_fail(c: psycopg.Connection[Any], apply_id: int) -> None:
        jobs.defer_apply(c, apply_id)  # the job row is written on the approval's connection…
        raise RuntimeError("the queue is full")  # …and goes with everything else when this fails

    failing = ServiceApi(migrated_database, tenants, jobs.defer_preview, defer_then_fail)
    preview_id = failing.request_preview("acme")
    fingerprint = finish(conn, preview_id, change)
    with pytest.raises(RuntimeError, match="queue is full"):
        failing.approve(preview_id, fingerprint, "alice")
    assert [j[0] for j in job_rows(conn)] == ["preview_job"]
    assert conn.execute("SELECT count(*) FROM approvals").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM applies").fetchone() == (0,)


def test_superseded_and_replayed_approvals_are_refused_through_the_api(
    api: ServiceApi, conn: psycopg.Connection[Any], change: ChangeSet
) -> None:
    old = api.request_preview("acme")
    old_fingerprint = finish(conn, old, change)
    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded'")  # the preview job ran
    newer = api.request_preview("acme", "drift")
    newer_fingerprint = finish(conn, newer, change)
    with pytest.raises(errors.PreviewSuperseded):
        api.approve(old, old_fingerprint, "alice")
    api.approve(newer, newer_fingerprint, "alice")
    with pytest.raises(errors.AlreadyDecided):
        api.approve(newer, newer_fingerprint, "alice")
    with pytest.raises(errors.UnknownPreview):
        api.approve(newer + 100, newer_fingerprint, "alice")
    assert [j[0] for j in job_rows(conn)].count("apply_job") == 1
    history = api.history("acme")
    assert [(h["id"], h["status"], h["approver"]) for h in history] == [
        (newer, "approved", "alice"),
        (old, "superseded", None),
    ]


def test_reject_through_the_api(api: ServiceApi, conn: psycopg.Connection[Any], change: ChangeSet) -> None:
    preview_id = api.request_preview("acme")
    fingerprint = finish(conn, preview_id, change)
    api.reject(preview_id, "bob", "wait for Monday")
    with pytest.raises(errors.AlreadyDecided):
        api.approve(preview_id, fingerprint, "alice")
    assert api.history("acme")[0]["rejected_by"] == "bob"


def test_a_database_restart_while_approvals_wait_loses_nothing(
    postgres: Postgres, api: ServiceApi, conn: psycopg.Connection[Any], change: ChangeSet
) -> None:
    approved = {}
    for tenant in TENANTS[:4]:
        preview_id = api.request_preview(tenant)
        approved[tenant] = api.approve(preview_id, finish(conn, preview_id, change), f"approver-of-{tenant}")
    pending = api.request_preview(TENANTS[4])
    pending_fingerprint = finish(conn, pending, change)
    before = job_rows(conn)
    conn.close()

    # One approval is in flight when the server crashes: it fails whole and can be repeated.
    in_flight = threading.Event()
    crashed = threading.Event()
    outcome: list[BaseException] = []

    def slow_defer(c: psycopg.Connection[Any], apply_id: int) -> None:
        jobs.defer_apply(c, apply_id)
        in_flight.set()
        assert crashed.wait(30)

    slow = ServiceApi(api.database_url, api.tenants, api.defer_preview, slow_defer)

    def approve_in_flight() -> None:
        try:
            slow.approve(pending, pending_fingerprint, "carol")
        except errors.DatabaseUnavailable as err:
            outcome.append(err)

    worker = threading.Thread(target=approve_in_flight)
    worker.start()
    assert in_flight.wait(30)
    postgres.stop("immediate")  # a crash: recovery from the WAL at start
    crashed.set()
    worker.join()
    assert len(outcome) == 1 and "nothing was written" in str(outcome[0])
    with pytest.raises(errors.DatabaseUnavailable):
        api.status("acme")
    postgres.start()

    with psycopg.connect(api.database_url, autocommit=True) as after:
        assert job_rows(after) == before
        for tenant, approval in approved.items():
            row = store.get_apply(after, approval.apply_id)
            assert (row.status, row.tenant, row.approver, row.approval_id) == (
                "queued",
                tenant,
                f"approver-of-{tenant}",
                approval.approval_id,
            )
        assert store.get_preview(after, pending).status == "ready"
    retried = api.approve(pending, pending_fingerprint, "carol")
    assert [a["id"] for a in api.status(TENANTS[4])["openApplies"]] == [retried.apply_id]


def test_no_secret_reaches_any_table(
    postgres: Postgres, api: ServiceApi, conn: psycopg.Connection[Any], change: ChangeSet
) -> None:
    # Everything the service writes for a tenant whose spec holds known credentials.
    preview_id = api.request_preview("acme")
    approval = api.approve(preview_id, finish(conn, preview_id, change), "alice")
    store.start_apply(conn, approval.apply_id, "worker-1", "host-1", 99)
    store.finish_apply(conn, approval.apply_id, status="succeeded", update_version=1, summary={"create": 3})
    store.put_stack_secrets(conn, "acme", {"secretsprovider": "awskms://alias/scoutflo", "encryptedkey": "AQICwrapped"})
    failed = api.request_preview("beta")
    store.finish_preview(conn, failed, error="the CLI failed")
    dump = postgres.dump(api.database_url)
    # The dump does hold the rows (so its silence on secrets means something)…
    assert change.fingerprint in dump and "alice" in dump and "AQICwrapped" in dump and "apply_job" in dump
    # …and no credential of the tenant's spec, in any table (Procrastinate's jobs included).
    for name, secret in SECRETS.items():
        assert secret not in dump, name
    assert "render-placeholder-secret" not in dump  # the program's own secret config, masked in changes
    # Every text and jsonb column, read through SQL too (pg_dump escapes some characters).
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND data_type IN ('text', 'jsonb', 'json', 'character varying')"
    ).fetchall()
    assert ("procrastinate_jobs", "args") in columns and ("previews", "changes") in columns
    for table, column in columns:
        query = psycopg.sql.SQL("SELECT {}::text FROM {}").format(
            psycopg.sql.Identifier(column), psycopg.sql.Identifier(table)
        )
        for (value,) in conn.execute(query):
            assert not any(secret in (value or "") for secret in SECRETS.values()), (table, column)
