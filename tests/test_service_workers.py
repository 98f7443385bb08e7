"""The service with real processes: PostgreSQL (tests/postgres.py), workers as `python -m automation
worker` subprocesses on two "hosts" (state dirs of their own) sharing one file:// state backend and
one plan store, over the stand-in CLI (tests/service_harness.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from automation import locks
from service import errors, jobs, schedule
from service.tenants import DirectoryTenantSource
from tests.postgres import Postgres
from tests.service_harness import STALE, Service, alive, secrets_of, wait

APPROVER = "alice@example.com"


def preview_ready(svc: Service, tenant: str) -> dict[str, Any]:
    preview_id = svc.api().request_preview(tenant)
    row = svc.wait_preview(preview_id)
    assert row["status"] == "ready", row
    return row


def pending(svc: Service, tenant: str) -> list[dict[str, str]]:
    state = json.loads((svc.root / "state" / ".pulumi" / "stacks" / "scoutflo" / f"{tenant}.json").read_text())
    return locks.pending_operations(state["deployment"])


def diy_locks(svc: Service, tenant: str) -> list[locks.LockInfo]:
    return locks.diy_locks(f"file://{svc.root / 'state'}", "scoutflo", tenant)


# ---------------------------------------------------------------- many tenants, two hosts


def test_twenty_tenants_on_two_hosts_each_applied_exactly_once(service: Service) -> None:
    tenants = [f"t{n:02d}" for n in range(20)]
    for tenant in tenants:
        service.add_tenant(tenant)
    service.start_worker("host-a")
    service.start_worker("host-b")
    api = service.api()
    previews = {tenant: api.request_preview(tenant) for tenant in tenants}
    approvals = {}
    for tenant, preview_id in previews.items():
        row = service.wait_preview(preview_id)
        assert row["status"] == "ready", row
        approvals[tenant] = api.approve(preview_id, row["fingerprint"], APPROVER)
    for approval in approvals.values():
        assert service.wait_apply(approval.apply_id)["status"] == "succeeded", service.apply(approval.apply_id)

    # Exactly one `up` per approval, carrying who approved which approval; never two CLI processes
    # of one tenant at once (tests/service_harness.py WRAPPER); both hosts worked.
    for tenant, approval in approvals.items():
        ups = service.ups(tenant)
        assert [u["message"] for u in ups] == [f"approval {approval.approval_id} by {APPROVER}"], ups
    assert service.overlaps() == []
    assert (service.root / "charts").is_dir()  # the one chart cache both hosts' programs use
    hosts = {row["worker"] for row in service.rows("SELECT worker FROM applies")}
    assert hosts == {"host-a", "host-b"}
    history = api.history("t00")
    assert history[0]["approver"] == APPROVER and history[0]["apply_status"] == "succeeded"
    assert isinstance(history[0]["update_version"], int)

    # A replayed approval and a replayed apply job are refused: no second `up`.
    with pytest.raises(errors.AlreadyDecided):
        api.approve(previews["t00"], service.preview(previews["t00"])["fingerprint"], APPROVER)
    with psycopg.connect(service.url, autocommit=True) as conn:
        replay = jobs.defer_apply(conn, approvals["t00"].apply_id)
    # A job that succeeded is deleted (service/jobs.py new_worker): the replay ran, and refused.
    wait(lambda: not service.rows("SELECT 1 FROM procrastinate_jobs WHERE id = %s", replay), 30)
    assert len(service.ups("t00")) == 1
    assert service.apply(approvals["t00"].apply_id)["status"] == "succeeded"

    # No secret in any table, nor in any job's arguments (ids only).
    spec_secrets = [s for tenant in tenants for s in secrets_of(service.specs[tenant])]
    assert_no_secret_anywhere(service, spec_secrets)


def assert_no_secret_anywhere(service: Service, spec_secrets: list[str]) -> None:
    tables = [r["tablename"] for r in service.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"previews", "approvals", "applies", "procrastinate_jobs", "stack_secrets"} <= set(tables)
    for table in tables:
        dump = "\n".join(
            r["row"] for r in service.rows(f"SELECT t::text AS row FROM {table} t")
        )  # names from the catalog
        leaked = [s for s in spec_secrets if s in dump]
        assert not leaked, f"{table} holds {leaked[:3]}"
    assert_ids_only(service)


def assert_ids_only(service: Service) -> list[dict[str, Any]]:
    """Every job's arguments are ids (and a periodic tick), never a spec or a credential."""
    allowed = {"preview_id", "apply_id", "job_id", "timestamp"}
    found = service.rows("SELECT task_name, args FROM procrastinate_jobs")
    for row in found:
        assert set(row["args"]) <= allowed and all(isinstance(v, int) for v in row["args"].values()), row
    return found


def test_the_cross_host_race_runs_one_up(service: Service) -> None:
    """The same apply queued four times, three without the tenant's lock, to two hosts polling at
    once: the `queued → started` gate in the database lets exactly one of them run `up`. A preview
    requested meanwhile runs only after that apply, on the state it left (the tenant's lock orders
    its jobs across hosts): no second approval is ever made against the state the first changed."""
    service.add_tenant("race")
    service.start_worker("host-a")
    row = preview_ready(service, "race")
    service.stop_worker("host-a")
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    with psycopg.connect(service.url, autocommit=True) as conn:
        for _ in range(3):  # duplicates with no lock at all: only the database gate stands
            jobs._DEFERRER.configure_task(jobs.APPLY, connection=conn).defer(apply_id=approval.apply_id)
    waiting = assert_ids_only(service)
    assert [r["args"] for r in waiting if r["task_name"] == jobs.APPLY] == [{"apply_id": approval.apply_id}] * 4
    # A second preview requested now (the spec unchanged: a changed spec would rightly refuse the
    # approved apply, its config digest moved) waits behind the apply.
    second_id = service.api().request_preview("race")
    service.start_worker("host-a")
    service.start_worker("host-b")
    applied = service.wait_apply(approval.apply_id)
    assert applied["status"] == "succeeded"
    second = service.wait_preview(second_id)
    wait(lambda: not service.rows("SELECT id FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"), 30)
    assert len(service.ups("race")) == 1
    # It ran after the apply, on the state the apply left: nothing is left to change.
    assert second["status"] == "empty" and second["created"] < applied["finished"] < second["finished"]
    assert second["state_digest"] != row["state_digest"]
    assert service.overlaps() == []


def test_superseded_and_mismatched_approvals_are_refused(service: Service) -> None:
    service.add_tenant("sup")
    service.start_worker("host-a")
    api = service.api()
    first = preview_ready(service, "sup")
    second = preview_ready(service, "sup")
    assert service.preview(first["id"])["status"] == "superseded"
    with pytest.raises(errors.PreviewSuperseded):
        api.approve(first["id"], first["fingerprint"], APPROVER)
    with pytest.raises(errors.FingerprintMismatch):
        api.approve(second["id"], "sha256:" + "0" * 64, APPROVER)
    assert service.rows("SELECT count(*) AS n FROM approvals")[0]["n"] == 0
    # The tenant's spec changes after the preview: the approved plan is refused, never applied.
    service.add_tenant("sup", apps=["storefront", "admin"])
    approval = api.approve(second["id"], second["fingerprint"], APPROVER)
    refused = service.wait_apply(approval.apply_id)
    assert refused["status"] == "failed" and refused["error"].startswith("changes-differ"), refused
    assert service.ups("sup") == []


# ---------------------------------------------------------------- a worker killed during an apply


def test_a_worker_killed_during_apply_recovers_without_a_person(service: Service) -> None:
    service.add_tenant("kill")
    service.start_worker("host-a")
    row = preview_ready(service, "kill")
    service.fake_settings(delay={"up": 30})
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    up = wait(lambda: service.ups("kill"), 30, service)[0]
    assert alive(up["pid"])
    os.kill(service.workers["host-a"].pid, signal.SIGKILL)
    service.workers.pop("host-a").wait()
    # The orphaned CLI dies with its worker (automation/guard.py: PR_SET_PDEATHSIG).
    wait(lambda: not alive(up["pid"]), 5)
    assert diy_locks(service, "kill"), "the killed up left Pulumi's lock"
    assert pending(service, "kill"), "and its creates pending in the state"
    service.fake_settings()

    started = time.monotonic()
    service.start_worker("host-b")
    interrupted = service.wait_apply(approval.apply_id, timeout=STALE + 30)
    assert interrupted["status"] == "interrupted"
    # Recovery: the lock proven dead and removed, pending operations settled, a new preview queued.
    fresh = service.wait_next_preview("kill", row["id"], 30)
    assert fresh["status"] == "ready" and fresh["reason"] == "request", fresh
    assert not diy_locks(service, "kill")
    assert pending(service, "kill") == []
    assert time.monotonic() - started < STALE + 30
    # No second `up` of the interrupted approval, ever; a new approval applies.
    assert len(service.ups("kill")) == 1
    again = service.api().approve(fresh["id"], fresh["fingerprint"], APPROVER)
    assert service.wait_apply(again.apply_id)["status"] == "succeeded"
    assert [u["message"] for u in service.ups("kill")] == [
        f"approval {approval.approval_id} by {APPROVER}",
        f"approval {again.approval_id} by {APPROVER}",
    ]
    assert service.apply(approval.apply_id)["status"] == "interrupted"
    assert service.overlaps() == []


# ---------------------------------------------------------------- the database restarts


def test_a_database_restart_while_approvals_wait_loses_nothing(service: Service, postgres: Postgres) -> None:
    tenants = ["db-a", "db-b", "db-c"]
    for tenant in tenants:
        service.add_tenant(tenant)
    service.start_worker("host-a")
    rows = {tenant: preview_ready(service, tenant) for tenant in tenants}
    service.stop_worker("host-a")
    api = service.api()
    approvals = {t: api.approve(r["id"], r["fingerprint"], APPROVER) for t, r in rows.items()}
    queued = "SELECT j.args FROM procrastinate_jobs j JOIN applies a ON a.id = (j.args ->> 'apply_id')::bigint"
    queued += " WHERE j.status = 'todo' AND a.status = 'queued' ORDER BY j.id"
    waiting = service.rows(queued)
    assert [w["args"]["apply_id"] for w in waiting] == [a.apply_id for a in approvals.values()]
    postgres.restart("immediate")  # a crash: recovery from the WAL at start
    assert service.rows(queued) == waiting  # every approval and its job survived
    service.start_worker("host-a")
    for tenant, approval in approvals.items():
        assert service.wait_apply(approval.apply_id)["status"] == "succeeded"
        assert len(service.ups(tenant)) == 1
    # A running worker outlives a restart: it registers again and takes new work.
    postgres.restart("fast")
    service.add_tenant("db-d")
    wait(lambda: _request(service, "db-d"), 30, service)
    assert service.workers["host-a"].poll() is None


def _request(service: Service, tenant: str) -> bool:
    try:
        preview_id = service.api().request_preview(tenant)
    except errors.DatabaseUnavailable:
        return False
    return service.wait_preview(preview_id)["status"] == "ready"


# ---------------------------------------------------------------- a fresh worker, an awskms stack

KMS = "awskms://alias/scoutflo-tenants?region=eu-west-1"
KMS_ACCESS = {"AWS_ACCESS_KEY_ID": "AKIABACKENDKMS", "AWS_SECRET_ACCESS_KEY": "BACKEND-KMS-SECRET"}


def test_a_fresh_worker_operates_an_existing_kms_tenant(tmp_path: Path, migrated_database: str) -> None:
    """The stack's KMS-wrapped data key lives in Pulumi.<tenant>.yaml, which a fresh workspace does
    not have: the worker restores it from the stack_secrets table (tests/fake_pulumi refuses a
    stack whose state another secrets manager encrypted, as the CLI's loader does)."""
    service = Service(tmp_path, migrated_database, secrets_provider=KMS, extra_env=KMS_ACCESS)
    try:
        service.add_tenant("kms")
        service.start_worker("host-a")
        first = preview_ready(service, "kms")
        done = service.api().approve(first["id"], first["fingerprint"], APPROVER)
        assert service.wait_apply(done.apply_id)["status"] == "succeeded"
        service.stop_worker("host-a")
        (block,) = service.rows("SELECT secretsprovider, encryptedkey, encryptionsalt FROM stack_secrets")
        assert block["secretsprovider"] == KMS and block["encryptedkey"] and block["encryptionsalt"] is None

        service.start_worker("host-c")  # a new host: an empty state dir
        assert not (tmp_path / "host-c" / "tenants").exists()
        service.add_tenant("kms", apps=["storefront", "admin"])
        second = preview_ready(service, "kms")
        again = service.api().approve(second["id"], second["fingerprint"], APPROVER)
        assert service.wait_apply(again.apply_id)["status"] == "succeeded"
        assert service.apply(again.apply_id)["worker"] == "host-c"
        assert len(service.ups("kms")) == 2
        assert_no_secret_anywhere(service, [*secrets_of(service.specs["kms"]), KMS_ACCESS["AWS_SECRET_ACCESS_KEY"]])
    finally:
        service.stop_all()


# ---------------------------------------------------------------- scheduled previews


def test_a_drift_run_opens_a_preview_only_when_something_changed(service: Service) -> None:
    service.add_tenant("drift")
    service.start_worker("host-a")
    row = preview_ready(service, "drift")
    approval = service.api().approve(row["id"], row["fingerprint"], APPROVER)
    assert service.wait_apply(approval.apply_id)["status"] == "succeeded"

    runtime = SimpleNamespace(
        settings=SimpleNamespace(database_url=service.url, drift_interval_hours=24),
        options=SimpleNamespace(sweep_every=300),
        source=DirectoryTenantSource(service.tenants),
    )
    tick = schedule.slot("drift", 24 * 3600)
    assert schedule.sweep(runtime, tick - 300).startswith(f"sweep {tick - 300}: queued 0")
    assert "queued 1" in schedule.sweep(runtime, tick)
    quiet = service.wait_preview(service.rows("SELECT max(id) AS id FROM previews")[0]["id"])
    assert (quiet["reason"], quiet["status"]) == ("drift", "empty")
    assert service.api().status("drift")["openApplies"] == []

    # Someone changes a resource in a console: the stand-in's providers now read it back changed.
    service.fake_settings(drift={"storefront": {"imageTagMutability": "MUTABLE"}})
    assert "queued 1" in schedule.sweep(runtime, tick + 24 * 3600)
    changed = service.wait_preview(service.rows("SELECT max(id) AS id FROM previews")[0]["id"])
    assert (changed["reason"], changed["status"]) == ("drift", "ready")
    assert changed["changes"]["counts"].get("update"), changed["changes"]["counts"]
    # An open preview is not superseded by the next sweep.
    assert "skipped 1" in schedule.sweep(runtime, tick + 2 * 24 * 3600)
    assert service.preview(changed["id"])["status"] == "ready"


def test_slots_spread_tenants_over_the_day() -> None:
    day = 24 * 3600
    ids = [f"tenant-{n}" for n in range(2000)]
    per_hour = [0] * 24
    for tenant in ids:
        per_hour[schedule.slot(tenant, day) // 3600] += 1
    assert min(per_hour) > 2000 / 24 * 0.6 and max(per_hour) < 2000 / 24 * 1.4
    # Every tenant is due in exactly one 5-minute window of the day.
    for tenant in ids[:50]:
        assert sum(schedule.due(tenant, tick, 300, day) for tick in range(0, day, 300)) == 1
