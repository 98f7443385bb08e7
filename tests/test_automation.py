"""The Automation API through its seams: no test pretends the Pulumi CLI ran.

Engine events are the SDK's own EngineEvent objects, parsed from JSON lines shaped as
`pulumi preview --event-log` writes them (tests/data/preview-events.jsonl)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import EngineEvent
from pulumi.automation.errors import CommandError, ConcurrentUpdateError

from automation import operations as ops
from automation.__main__ import main as cli
from automation.changeset import changeset_from_events, events_from_log, lookup, parse_path
from automation.tenant import Tenant, TenantError, tenant_config
from charts_catalog import load_catalog
from scoutflo.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).parent / "data" / "preview-events.jsonl"


def tenant(**changes: Any) -> Tenant:
    data: dict[str, Any] = {
        "id": "acme",
        "github": {"owner": "acme-gitops", "token": "ghp_TOKENVALUE"},
        "aws": {"region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/scoutflo-deployer"},
        "cluster": {"kubeconfig": "apiVersion: v1\nkind: Config\n# KUBE-SECRET", "context": "prod"},
        "apps": [{"name": "storefront", "chart": "webapp"}],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X", "ecrPrefix": "scoutflo"},
    }
    data.update(changes)
    return Tenant.from_dict(data)


# ------------------------------------------------------------------ tenant -> stack config


def test_tenant_maps_to_stack_config_with_secrets_marked() -> None:
    cfg = tenant_config(tenant())
    assert cfg["scoutflo:tenant"].value == "acme"
    assert json.loads(cfg["scoutflo:apps"].value) == [{"chart": "webapp", "name": "storefront"}]
    assert cfg["github:owner"].value == "acme-gitops" and not cfg["github:owner"].secret
    assert cfg["github:token"].secret and cfg["github:token"].value == "ghp_TOKENVALUE"
    assert cfg["kubernetes:kubeconfig"].secret
    assert cfg["kubernetes:context"].value == "prod"
    assert json.loads(cfg["aws:assumeRoles"].value) == [
        {"roleArn": "arn:aws:iam::123456789012:role/scoutflo-deployer", "sessionName": "scoutflo-acme"}
    ]
    assert cfg["scoutflo:ecrPrefix"].value == "scoutflo"
    assert "aws:accessKey" not in cfg
    # What the tenant maps to is what the program accepts.
    raw = {k: v.value for k, v in cfg.items()}
    assert parse_config(raw, load_catalog()).apps[0].name == "storefront"


def test_static_aws_keys_are_secrets() -> None:
    cfg = tenant_config(tenant(aws={"region": "us-east-1", "accessKeyId": "AKIA1", "secretAccessKey": "s3cr3t"}))
    assert cfg["aws:accessKey"].secret and cfg["aws:secretKey"].secret
    assert "aws:assumeRoles" not in cfg


def test_tenant_repr_hides_credentials() -> None:
    text = repr(tenant())
    assert "ghp_TOKENVALUE" not in text and "KUBE-SECRET" not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "Acme Corp"}, "tenant id"),
        ({"github": {"owner": "o", "token": ""}}, r"'github\.token'"),
        ({"aws": {"region": "r", "accessKeyId": "AKIA"}}, "go together"),
        ({"apps": []}, "at least one app"),
        ({"config": {"scoutflo:ecrPrefix": "x"}}, "without a namespace"),
        ({"config": {"tenant": "other"}}, "tenant's own fields"),
    ],
)
def test_bad_tenants(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantError, match=message):
        tenant_config(tenant(**changes))


def test_tenant_spec_missing_field() -> None:
    with pytest.raises(TenantError, match=r"'github\.owner'"):
        Tenant.from_dict({"id": "x", "aws": {"region": "r"}})


# ------------------------------------------------------------------ ChangeSet from engine events


@pytest.fixture
def events() -> list[EngineEvent]:
    return events_from_log(EVENTS)


def test_changeset_is_built_from_events_per_resource_and_app(events: list[EngineEvent]) -> None:
    cs = changeset_from_events(events, stack="acme")
    assert dict(cs.counts) == {"same": 5, "update": 2, "create": 5, "replace": 1, "delete": 2}
    apps = cs.by_app()
    assert list(apps) == ["shared", "admin", "billing", "legacy", "storefront"]
    (app,) = [r for r in apps["admin"] if r.op == "update"]
    assert app.type == "kubernetes:argoproj.io/v1alpha1:Application" and app.name == "admin-application"
    changes = {p.path: (p.kind, p.old, p.new) for p in app.properties}
    assert changes["spec.source.targetRevision"] == ("update", "*", "0.1.0")
    assert changes["spec.source.helm.valuesObject.replicaCount"] == ("update", 2, 3)
    (replace,) = [r for r in cs.resources if r.op == "replace"]
    assert replace.app == "storefront", "a grandchild belongs to its top-level component's app"
    assert [(p.path, p.kind, p.old, p.new) for p in replace.properties] == [
        ("name", "update-replace", "scoutflo-acme-storefront-ci", "scoutflo-acme-shop-ci")
    ]
    assert {r.name for r in cs.resources if r.op == "delete"} == {"legacy", "legacy-var-aws-region"}


def test_secrets_and_unknowns_are_masked(events: list[EngineEvent]) -> None:
    cs = changeset_from_events(events)
    blob = json.dumps(cs.to_json()) + cs.to_text()
    assert "ghp_LEAKED" not in blob
    assert "gASV" not in blob, "the dynamic provider's pickle is no approval material"
    commit = next(r for r in cs.resources if r.name == "billing-initial")
    assert {p.path: p.new for p in commit.properties}["token"] == "[secret]"
    variable = next(r for r in cs.resources if r.name == "billing-var-aws-role-arn")
    assert {p.path: p.new for p in variable.properties}["value"] == "(known after apply)"


def test_changeset_json_and_text(events: list[EngineEvent]) -> None:
    cs = changeset_from_events(events, stack="acme", plan_path="/tmp/acme.plan.json")
    data = json.loads(json.dumps(cs.to_json()))
    assert data["fingerprint"] == cs.fingerprint and data["planPath"] == "/tmp/acme.plan.json"
    (update,) = [r for r in data["apps"]["admin"] if r["op"] == "update"]
    assert {p["path"]: p["new"] for p in update["properties"]}["spec.source.targetRevision"] == "0.1.0"
    text = cs.to_text()
    assert "spec.source.targetRevision: * → 0.1.0" in text
    assert "name: scoutflo-acme-storefront-ci → scoutflo-acme-shop-ci  (forces replacement)" in text
    assert "- delete   github:index/actionsVariable:ActionsVariable  legacy-var-aws-region" in text


def test_fingerprint_is_stable_and_sensitive(events: list[EngineEvent]) -> None:
    first = changeset_from_events(events).fingerprint
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert changeset_from_events(shuffled).fingerprint == first, "event order does not matter"
    lines = EVENTS.read_text().splitlines()
    changed = [line.replace('"targetRevision":"0.1.0"', '"targetRevision":"0.1.1"') for line in lines]
    other = changeset_from_events([EngineEvent.from_json(json.loads(line)) for line in changed])
    assert other.fingerprint != first
    ops.check_approval(first, changeset_from_events(events))
    with pytest.raises(ops.ChangesDiffer) as err:
        ops.check_approval(first, other)
    assert err.value.current is other and first in str(err.value)


def test_no_change_preview() -> None:
    same = [line for line in EVENTS.read_text().splitlines() if '"op":"same"' in line]
    cs = changeset_from_events(EngineEvent.from_json(json.loads(line)) for line in same)
    assert not cs.has_changes
    assert cs.fingerprint == changeset_from_events([]).fingerprint


def test_property_paths() -> None:
    assert parse_path('spec.source["helm.values"][0].x') == ["spec", "source", "helm.values", 0, "x"]
    assert lookup({"a": [{"b": 1}]}, "a[0].b") == 1
    assert lookup({"a": {}}, "a.missing") is None


def test_diff_command_renders_a_saved_event_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli(["diff", "--events", str(EVENTS), "--stack", "acme"]) == 0
    assert "spec.source.targetRevision: * → 0.1.0" in capsys.readouterr().out
    assert cli(["diff", "--events", str(EVENTS), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["replace"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert cli(["diff", "--events", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


# ------------------------------------------------------------------ without the CLI, and errors


@pytest.fixture
def no_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))


def test_every_cli_operation_fails_fast_with_the_install_message(no_cli: None) -> None:
    for call in (
        lambda: ops.preview(tenant()),
        lambda: ops.apply(tenant(), "sha256:x"),
        lambda: ops.destroy(tenant(), confirm="acme"),
        lambda: ops.preview("dev"),
    ):
        with pytest.raises(ops.PulumiCliMissing, match="install it"):
            call()


def test_cli_reports_missing_pulumi(no_cli: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["preview", "--stack", "dev"]) == 1
    assert "Pulumi CLI is not installed" in capsys.readouterr().err
    assert cli(["preview", "--stack", "dev", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "cli-missing"


def test_checks_that_need_no_cli_come_first(no_cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ops.ConfirmationRequired):
        ops.destroy(tenant(), confirm=None)
    with pytest.raises(ops.AutomationError) as err:
        ops.preview(tenant(id="Not Valid"))
    assert err.value.kind == "invalid-tenant"
    spec = tmp_path / "t.json"
    spec.write_text(
        json.dumps({"id": "acme", "github": {"owner": "o", "token": "t"}, "aws": {"region": "r"}, "apps": []})
    )
    assert cli(["preview", "--stack", "other", "--tenant", str(spec)]) == 1
    assert "does not match" in capsys.readouterr().err


def test_render_needs_no_cli(no_cli: None, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "automation", "render", "--stack", "dev", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "tenant acme: 2 apps" in result.stdout


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = "import automation, automation.operations, automation.changeset, automation.tenant; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PATH": ""})
    assert result.stdout.strip() == "ok" and result.stderr == ""
    assert not list(tmp_path.iterdir())


def test_error_mapping() -> None:
    from pulumi.automation._cmd import CommandResult

    busy = ConcurrentUpdateError(
        CommandResult("", "error: [409] Conflict: Another update is currently in progress.", 255)
    )
    assert isinstance(ops.map_error(busy), ops.StackBusy)
    failed = ops.map_error(CommandError(CommandResult("", "x\n" * 20 + "error: provider failed", 1)))
    assert isinstance(failed, ops.OperationFailed) and "provider failed" in str(failed)
    assert str(failed).count("\n") <= 8
    assert ops.map_error(TenantError("bad")).kind == "invalid-tenant"
    assert ops.map_error(KeyError("k")).kind == "failed"


def test_run_many_runs_in_parallel_and_types_every_failure() -> None:
    from pulumi.automation._cmd import CommandResult

    barrier = threading.Barrier(3, timeout=5)

    def operation(target: ops.Target) -> str:
        barrier.wait()  # only passes when three tenants run at once
        name = ops.stack_name(target)
        if name == "busy":
            raise ConcurrentUpdateError(CommandResult("", "Another update is currently in progress", 255))
        if name == "nocli":
            raise ops.PulumiCliMissing(ops.INSTALL_CLI)
        if name == "boom":
            raise RuntimeError("provider crashed")
        return f"done {name}"

    results = ops.run_many(["ok1", "busy", "nocli", "boom", "ok2", "ok3"], operation, max_workers=3)
    assert [(r.tenant, r.ok, r.error_kind) for r in results] == [
        ("ok1", True, ""),
        ("busy", False, "stack-busy"),
        ("nocli", False, "cli-missing"),
        ("boom", False, "failed"),
        ("ok2", True, ""),
        ("ok3", True, ""),
    ]
    assert results[0].value == "done ok1" and "provider crashed" in results[3].message


def test_kept_resources_on_destroy() -> None:
    deployment = {
        "resources": [
            {"urn": "u1", "type": "aws:ecr/repository:Repository", "id": "scoutflo/a", "retainOnDelete": True},
            {"urn": "u2", "type": "github:index/repository:Repository", "id": "a", "protect": True},
            {"urn": "u3", "type": "aws:iam/role:Role", "id": "r"},
        ]
    }
    assert [k["urn"] for k in ops.kept_resources(deployment)] == ["u1", "u2"]


def test_backend_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    stacks = ops.Stacks(ops.Backend(plan_dir=tmp_path / "plans"))
    env = stacks.env()
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path}/.pulumi-scoutflo"
    assert (tmp_path / ".pulumi-scoutflo").is_dir()
    assert env["PULUMI_EXPERIMENTAL"] == "true"
    assert stacks.plan_path(tenant()) == str(tmp_path / "plans" / "acme.plan.json")
    prod = ops.Stacks(ops.Backend(url="s3://state-bucket", secrets_provider="awskms://alias/scoutflo", use_plans=False))
    assert prod.env() == {"PULUMI_BACKEND_URL": "s3://state-bucket"}
    assert prod.plan_path(tenant()) is None
