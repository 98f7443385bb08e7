"""Issue 18, engine side: an approval bound to the program's version, plans and their records in
a store every worker reads, one HMAC key for every worker, `up --message` and the update's
version, over the stand-in CLI (tests/fake_pulumi) on one DIY state backend shared by two
"hosts" (two state dirs)."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from automation import operations as ops
from tests.program_copy import program_copy
from tests.test_operations import FAKE, tenant


@dataclass
class MemoryBlocks:
    """A SecretsBlocks kept in memory (the service keeps them in PostgreSQL)."""

    blocks: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, tenant_id: str) -> Mapping[str, str] | None:
        return self.blocks.get(tenant_id)

    def put(self, tenant_id: str, block: Mapping[str, str]) -> None:
        self.blocks[tenant_id] = dict(block)


@dataclass
class Hosts:
    a: ops.Stacks
    b: ops.Stacks
    state: Path
    store: Path
    tmp: Path

    def ups(self) -> list[dict[str, object]]:
        path = self.state / ".fake-pulumi" / "ups.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hosts:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    program = program_copy(tmp_path / "program")
    state, store = tmp_path / "state", tmp_path / "plans"
    state.mkdir()
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    key = tmp_path / "digest.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    blocks = MemoryBlocks()

    def host(name: str) -> ops.Stacks:
        backend = ops.Backend(
            url=f"file://{state}",
            secrets_provider="passphrase",
            state_dir=tmp_path / f"host-{name}",
            env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
            digest_key_file=key,
            plan_store=f"file://{store}",
        )
        return ops.Stacks(backend, project_dir=program, secrets_blocks=blocks)

    return Hosts(host("a"), host("b"), state, store, tmp_path)


def test_a_plan_previewed_on_one_host_is_applied_on_another_and_kept(hosts: Hosts) -> None:
    on_a = ops.preview(tenant(), hosts.a)
    on_b = ops.preview(tenant(), hosts.b)
    assert on_a.has_changes and on_a.fingerprint == on_b.fingerprint, "one change, one fingerprint on every host"
    assert on_a.program_digest == on_b.program_digest and on_a.state_digest == on_b.state_digest
    assert not (hosts.b.tenant_dir("acme") / "plans" / Path(str(on_a.plan_path)).name).exists()
    started: list[int] = []
    result = ops.apply(
        tenant(),
        on_a.fingerprint,
        hosts.b,
        plan_sha256=on_a.plan_sha256,
        message="approval 7 by alice",
        on_started=started.append,
    )
    assert result["planSha256"] == on_a.plan_sha256 and result["summary"]["create"] > 0
    ((up,),) = [hosts.ups()]
    assert started == [up["pgid"]] != [up["pid"]], "on_started got the process group the `up` ran in"
    assert up["message"] == "approval 7 by alice"
    assert result["engine"]["message"] == "approval 7 by alice" and result["engine"]["result"] == "succeeded"
    # The engine counts the stack resource too; the approval diff leaves it out.
    assert result["engine"]["resourceChanges"]["create"] == result["summary"]["create"] + 1
    assert result["updateVersion"] == 1
    hexed = on_a.plan_sha256.removeprefix("sha256:")
    assert (hosts.store / f"{hexed}.plan.json").exists(), "the plan is kept after the update"
    record = json.loads((hosts.store / f"{hexed}.record.json").read_text())
    assert record["fingerprint"] == on_a.fingerprint and record["programDigest"] == on_a.program_digest
    # The same approval again, on the host that previewed it: the state has moved on.
    with pytest.raises(ops.ChangesDiffer, match="state moved on"):
        ops.apply(tenant(), on_a.fingerprint, hosts.a, plan_sha256=on_a.plan_sha256)
    assert len(hosts.ups()) == 1
    # A second update is version 2 (the DIY history counts it; `version` there is always 0).
    changed = tenant(apps=[{"name": "storefront", "chart": "webapp", "values": {"replicaCount": 3}}])
    again = ops.preview(changed, hosts.a)
    assert ops.apply(changed, again.fingerprint, hosts.b, plan_sha256=again.plan_sha256)["updateVersion"] == 2


def test_a_stored_plan_is_refused_for_another_tenant_another_preview_or_when_altered(hosts: Hosts) -> None:
    acme = ops.preview(tenant(), hosts.a)
    other = ops.preview(tenant("globex"), hosts.a)
    with pytest.raises(ops.ChangesDiffer, match="another stack"):
        ops.apply(tenant(), acme.fingerprint, hosts.b, plan_sha256=other.plan_sha256)
    with pytest.raises(ops.ChangesDiffer, match="other changes"):
        ops.apply(tenant("globex"), acme.fingerprint, hosts.b, plan_sha256=other.plan_sha256)
    with pytest.raises(ops.ChangesDiffer, match="64 lowercase hex"):
        ops.apply(tenant(), acme.fingerprint, hosts.b, plan_sha256="../../etc/passwd")
    with pytest.raises(ops.ChangesDiffer, match="has no plan"):
        ops.apply(tenant(), acme.fingerprint, hosts.b, plan_sha256="sha256:" + "0" * 64)
    plan = hosts.store / f"{acme.plan_sha256.removeprefix('sha256:')}.plan.json"
    plan.write_bytes(plan.read_bytes().replace(b'"create"', b'"same"'))
    with pytest.raises(ops.ChangesDiffer, match="gone from the plan store or was altered"):
        ops.apply(tenant(), acme.fingerprint, hosts.b, plan_sha256=acme.plan_sha256)
    assert hosts.ups() == [], "nothing was applied"


def test_another_program_version_refuses_the_approval(hosts: Hosts) -> None:
    approved = ops.preview(tenant(), hosts.a)
    program = hosts.a.project_dir
    # A change to the provider code between preview and apply (the example: an app
    # repository turned public), in this private copy of the checkout.
    target = program / "components" / "app_repository.py"
    text = target.read_text()
    target.write_text(text + "\n# a later version of the program\n")
    with pytest.raises(ops.ChangesDiffer, match="the program changed since the preview") as err:
        ops.apply(tenant(), approved.fingerprint, hosts.b, plan_sha256=approved.plan_sha256)
    assert err.value.kind == "changes-differ"
    with pytest.raises(ops.ChangesDiffer, match="the program changed since the preview"):
        ops.apply(tenant(), approved.fingerprint, hosts.a)  # this host's own saved plan: the same
    assert hosts.ups() == []
    again = ops.preview(tenant(), hosts.a)
    assert again.fingerprint != approved.fingerprint, "the program's version is in the fingerprint"
    target.write_text(text)
    assert ops.preview(tenant(), hosts.b).fingerprint == approved.fingerprint, "the same files, the same identity"


def test_the_digest_key_file_is_never_created_and_must_be_private(hosts: Hosts, tmp_path: Path) -> None:
    backend = hosts.a.backend
    missing = ops.Backend(**{**backend.__dict__, "digest_key_file": tmp_path / "nope.key"})
    with pytest.raises(ops.InvalidSetup, match=r"nope\.key"):
        missing.digest_key()
    assert not (tmp_path / "nope.key").exists()
    key = Path(str(backend.digest_key_file))
    key.chmod(0o644)
    with pytest.raises(ops.InvalidSetup, match="mode 0600"):
        backend.digest_key()
    key.chmod(0o600)
    assert backend.digest_key() == key.read_bytes()
    assert not (Path(backend.state_dir) / "digest.key").exists()


# ---------------------------------------------------------------- a fresh worker, an awskms stack

KMS = "awskms://alias/scoutflo-tenants?region=eu-west-1"
KMS_ACCESS = {"AWS_ACCESS_KEY_ID": "AKIABACKENDKMS", "AWS_SECRET_ACCESS_KEY": "BACKEND-KMS-SECRET"}


def _kms_host(hosts: Hosts, name: str, blocks: MemoryBlocks | None, **env: str) -> ops.Stacks:
    backend = ops.Backend(
        url=hosts.a.backend.url,
        secrets_provider=KMS,
        state_dir=hosts.tmp / f"kms-{name}",
        env={**KMS_ACCESS, **env},
        digest_key_file=hosts.a.backend.digest_key_file,
        plan_store=hosts.a.backend.plan_store,
    )
    return ops.Stacks(backend, project_dir=hosts.a.project_dir, secrets_blocks=blocks)


def test_a_fresh_worker_opens_an_existing_kms_stack_through_its_restored_secrets_block(hosts: Hosts) -> None:
    blocks = MemoryBlocks()
    first = _kms_host(hosts, "first", blocks)
    changes = ops.preview(tenant(), first)
    ops.apply(tenant(), changes.fingerprint, first, plan_sha256=changes.plan_sha256)
    block = blocks.blocks["acme"]
    assert block["secretsprovider"] == KMS and set(block) == {"secretsprovider", "encryptedkey"}
    assert ops.secrets_block(first.tenant_dir("acme"), "acme") == block
    state = json.loads((hosts.state / ".pulumi" / "stacks" / "scoutflo" / "acme.json").read_text())
    assert state["deployment"]["secrets_providers"]["state"]["encryptedkey"] == block["encryptedkey"]

    # Without the block a fresh workspace gets the backend's default manager (a new passphrase
    # one) for a stack whose state is KMS-encrypted: refused, nothing written.
    with pytest.raises(ops.OperationFailed, match="Restore the stack's secrets block"):
        ops.preview(tenant(), _kms_host(hosts, "bare", None))

    # With it (as a worker restores it from the database): the same stack, the same manager.
    fresh = _kms_host(hosts, "fresh", MemoryBlocks({"acme": dict(block)}))
    assert not ops.preview(tenant(), fresh).has_changes, "the applied state, read with the stack's own manager"
    assert ops.secrets_block(fresh.tenant_dir("acme"), "acme") == block

    # The CLI's own fallback, when asked for: the snapshot's manager is written into the stack file.
    fallback = _kms_host(hosts, "fallback", None, PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER="true")
    assert not ops.preview(tenant(), fallback).has_changes
    assert ops.secrets_block(fallback.tenant_dir("acme"), "acme") == block


def test_a_secrets_block_with_other_keys_is_refused(hosts: Hosts) -> None:
    stacks = _kms_host(hosts, "odd", MemoryBlocks({"acme": {"secretsprovider": KMS, "config": "x"}}))
    with pytest.raises(ops.InvalidSetup, match="unknown keys"):
        ops.preview(tenant(), stacks)


def test_a_refreshing_preview_shows_drift_made_outside_pulumi_and_nothing_else(hosts: Hosts) -> None:
    changes = ops.preview(tenant(), hosts.a)
    ops.apply(tenant(), changes.fingerprint, hosts.a)
    assert not ops.preview(tenant(), hosts.b, refresh=True).has_changes, "no drift: nothing to approve"
    # Someone edits the Argo CD Application outside Pulumi (the stand-in's providers report it).
    settings = hosts.state / ".fake-pulumi" / "settings.json"
    settings.write_text(json.dumps({"drift": {"storefront-application": {"spec": {"drifted": True}}}}))
    assert not ops.preview(tenant(), hosts.b).has_changes, "without a refresh the state does not know"
    drifted = ops.preview(tenant(), hosts.b, refresh=True)
    (app,) = [r for r in drifted.resources if r.op != "same"]
    assert app.name == "storefront-application" and app.op == "update"
    ops.apply(tenant(), drifted.fingerprint, hosts.a, plan_sha256=drifted.plan_sha256, message="drift fix")


def test_stored_plans_are_kept_until_the_retention_prunes_them(hosts: Hosts) -> None:
    old = ops.preview(tenant(), hosts.a)
    new = ops.preview(tenant("globex"), hosts.a)
    store = hosts.a.backend.open_plan_store()
    aged = time.time() - 91 * 86400
    for suffix in (".plan.json", ".record.json"):
        os.utime(hosts.store / f"{old.plan_sha256.removeprefix('sha256:')}{suffix}", (aged, aged))
    assert store.prune(hosts.a.backend.plan_retention_days) == 2
    assert store.record(old.plan_sha256) is None and store.record(new.plan_sha256) is not None
    with pytest.raises(ops.ChangesDiffer, match="never stored, or pruned"):
        ops.apply(tenant(), old.fingerprint, hosts.b, plan_sha256=old.plan_sha256)
