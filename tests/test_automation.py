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
from automation.tenant import Tenant, TenantError, tenant_settings
from charts_catalog import load_catalog
from scoutflo.config import parse_config
from tests.kubeconfigs import kubeconfig_text

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).parent / "data" / "preview-events.jsonl"


def tenant(**changes: Any) -> Tenant:
    data: dict[str, Any] = {
        "id": "acme",
        "github": {"owner": "acme-gitops", "token": "ghp_TOKENVALUE"},
        "aws": {
            "region": "eu-west-1",
            "accessKeyId": "AKIATENANTKEY",
            "secretAccessKey": "TENANT-AWS-SECRET",
            "roleArn": "arn:aws:iam::123456789012:role/scoutflo-deployer",
        },
        "cluster": {"kubeconfig": kubeconfig_text(token="KUBE-SECRET"), "context": "prod"},
        "apps": [{"name": "storefront", "chart": "webapp"}],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X", "ecrPrefix": "scoutflo"},
    }
    data.update(changes)
    return Tenant.from_dict(data)


# ------------------------------------------------------------------ tenant -> stack config


def test_tenant_maps_to_stack_config_with_secrets_marked() -> None:
    cfg = tenant_settings(tenant())
    assert cfg.plain["scoutflo:tenant"] == "acme"
    assert cfg.plain["scoutflo:apps"] == [{"chart": "webapp", "name": "storefront"}], "an object, not JSON text"
    assert cfg.plain["github:owner"] == "acme-gitops"
    assert cfg.secrets["github:token"] == "ghp_TOKENVALUE"
    given = json.loads(cfg.secrets["kubernetes:kubeconfig"])
    assert given["users"] == [{"name": "deployer", "user": {"token": "KUBE-SECRET"}}], "the checked copy, as JSON"
    assert cfg.secrets["aws:accessKey"] == "AKIATENANTKEY" and cfg.secrets["aws:secretKey"] == "TENANT-AWS-SECRET"
    assert cfg.plain["kubernetes:context"] == "prod"
    assert cfg.plain["aws:assumeRoles"] == [
        {"roleArn": "arn:aws:iam::123456789012:role/scoutflo-deployer", "sessionName": "scoutflo-acme"}
    ]
    assert cfg.plain["scoutflo:ecrPrefix"] == "scoutflo"
    assert not set(cfg.plain) & set(cfg.secrets)
    # What the tenant maps to is what the program accepts.
    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in {**cfg.plain, **cfg.secrets}.items()}
    assert parse_config(raw, load_catalog()).apps[0].name == "storefront"


def test_secret_keys_come_from_pulumi_yaml() -> None:
    # chartRegistryCredentials is `secret: true` in Pulumi.yaml; it used to be written in plain text.
    creds = {"registry.example.com": {"username": "u", "password": "CHART-PW"}}
    config = {
        "chartRegistryCredentials": creds,
        "refresherAccessKeyId": "AKIAREFRESH",
        "clusterOidcIssuer": "https://oidc.x",
    }
    cfg = tenant_settings(tenant(config=config))
    assert json.loads(cfg.secrets["scoutflo:chartRegistryCredentials"]) == creds
    assert cfg.secrets["scoutflo:refresherAccessKeyId"] == "AKIAREFRESH"
    assert "CHART-PW" not in json.dumps(cfg.plain)


def test_config_digest_is_keyed_and_covers_secrets() -> None:
    one, other = tenant_settings(tenant()), tenant_settings(tenant(github={"owner": "acme-gitops", "token": "ghp_NEW"}))
    assert one.digest(b"k") == tenant_settings(tenant()).digest(b"k")
    assert one.digest(b"k") != other.digest(b"k"), "a changed secret changes the digest"
    assert one.digest(b"k") != one.digest(b"other key"), "keyed: the digest alone reveals nothing"
    assert "ghp_TOKENVALUE" not in repr(one)


def test_tenant_repr_hides_credentials() -> None:
    text = repr(tenant())
    assert "ghp_TOKENVALUE" not in text and "KUBE-SECRET" not in text and "TENANT-AWS-SECRET" not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "Acme Corp"}, "tenant id"),
        ({"id": "dev"}, "shipped in the repository"),
        ({"id": "example"}, "shipped in the repository"),
        ({"apps": []}, "at least one app"),
        ({"config": {"scoutflo:ecrPrefix": "x"}}, "without a namespace"),
        ({"config": {"tenant": "other"}}, "not tenant-settable"),
        ({"config": {"catalogPath": "/etc"}}, "names a path on the backend"),
        ({"config": {"chartCacheDir": "/var/lib/scoutflo"}}, "names a path on the backend"),
        ({"config": {"madeUp": "x"}}, "unknown"),
        ({"config": {"revisionHistoryLimit": "ten"}}, "must be of type 'integer'"),
        ({"config": {"ecrPrefix": ["a"]}}, "must be of type 'string'"),
    ],
)
def test_bad_tenants(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantError, match=message):
        tenant_settings(tenant(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"github": {"owner": "o", "token": ""}}, r"'github\.token'"),
        ({"aws": {"region": "r"}}, r"'aws\.accessKeyId'"),
        ({"aws": {"region": "r", "accessKeyId": "AKIA"}}, r"'aws\.secretAccessKey'"),
        ({"cluster": {"context": "prod"}}, r"'cluster\.kubeconfig'"),
        ({"cluster": None}, "names its own cluster credentials"),
        ({"apps": "storefront"}, "list of objects"),
    ],
)
def test_a_tenant_names_its_credentials(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantError, match=message):
        tenant(**changes)


def test_tenant_spec_missing_field() -> None:
    with pytest.raises(TenantError, match=r"'github'"):
        Tenant.from_dict({"id": "x", "aws": {"region": "r"}})
    with pytest.raises(TenantError, match="JSON object"):
        Tenant.from_dict(["x"])


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
    assert "   - github:index/actionsVariable:ActionsVariable  legacy-var-aws-region" in text


def test_fingerprint_is_stable_and_sensitive(events: list[EngineEvent]) -> None:
    first = changeset_from_events(events).fingerprint
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert changeset_from_events(shuffled).fingerprint == first, "event order does not matter"
    lines = EVENTS.read_text().splitlines()
    changed = [line.replace('"targetRevision":"0.1.0"', '"targetRevision":"0.1.1"') for line in lines]
    other = changeset_from_events([EngineEvent.from_json(json.loads(line)) for line in changed])
    assert other.fingerprint != first
    assert changeset_from_events(events, config_digest="hmac-sha256:a").fingerprint != first, "config enters"


def _event(op: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> EngineEvent:
    urn = "urn:pulumi:acme::scoutflo::scoutflo:index:ChartRepo$pulumi-python:dynamic:Resource::shop-initial"

    def state(inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        if inputs is None:
            return None
        kind = "pulumi-python:dynamic:Resource"
        return {"type": kind, "urn": urn, "id": "", "parent": "", "provider": "", "custom": True, "inputs": inputs}

    meta = {"op": op, "urn": urn, "type": "pulumi-python:dynamic:Resource", "provider": ""}
    meta |= {"old": state(old), "new": state(new), "diffs": [], "keys": [], "detailedDiff": None}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 1, "resourcePreEvent": {"metadata": meta}})


def test_a_resource_without_detailed_diff_is_compared_by_its_inputs() -> None:
    # A dynamic provider's diff says "changed" without naming what: the approver must still see
    # the change and the fingerprint must still move with every input.
    old = {"repo": "shop", "files": {"values.yaml": "replicas: 1\n"}}
    one = changeset_from_events([_event("update", old, {"repo": "shop", "files": {"values.yaml": "replicas: 2\n"}})])
    two = changeset_from_events([_event("update", old, {"repo": "shop", "files": {"values.yaml": "replicas: 3\n"}})])
    assert one.fingerprint != two.fingerprint
    (change,) = one.resources
    assert [(p.path, p.old, p.new) for p in change.properties] == [
        ('files["values.yaml"]', "replicas: 1\n", "replicas: 2\n")
    ]
    assert "replicas: 2" in one.to_text()


def test_unknowns_are_listed() -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    cs = changeset_from_events([_event("create", None, {"repo": "shop", "sha": unknown})])
    assert cs.resources[0].unknowns == ("sha",)
    # A create shows every leaf; an unknown one says so in its place.
    assert "        sha: (known after apply)" in cs.to_text()


def test_text_elides_long_values_with_a_stable_hash() -> None:
    long_old = "".join(f"line {i}\n" for i in range(60))
    long_new = long_old.replace("line 30\n", "line thirty\n")
    cs = changeset_from_events([_event("update", {"files": {"a": long_old}}, {"files": {"a": long_new}})])
    text = cs.to_text()
    assert "-line 30" in text and "+line thirty" in text
    assert "line 5\n" not in text, "only the changed region and its context are shown"
    digest = "sha256:" + __import__("hashlib").sha256(long_new.encode()).hexdigest()[:12]
    assert digest in text and text == cs.to_text()


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
def no_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ops.Stacks:
    monkeypatch.setenv("PATH", str(tmp_path))
    pp = tmp_path / "passphrase"
    pp.write_text("pw")
    return ops.Stacks(
        ops.Backend(
            url=f"file://{tmp_path}/state",
            secrets_provider="passphrase",
            state_dir=tmp_path / "ws",
            env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(pp)},
        )
    )


def test_every_cli_operation_fails_fast_with_the_install_message(no_cli: ops.Stacks) -> None:
    for call in (
        lambda: ops.preview(tenant(), no_cli),
        lambda: ops.apply(tenant(), "sha256:x", no_cli),
        lambda: ops.destroy(tenant(), "acme", no_cli),
    ):
        with pytest.raises(ops.PulumiCliMissing, match="install it"):
            call()


def test_checks_that_need_no_cli_come_first(no_cli: ops.Stacks) -> None:
    with pytest.raises(ops.AutomationError) as err:
        ops.preview(tenant(id="Not Valid"), no_cli)
    assert err.value.kind == "invalid-tenant"


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


def test_every_typed_error_has_its_own_exit_code() -> None:
    codes = [cls.exit_code for cls in ops.ERRORS]
    kinds = [cls.kind for cls in ops.ERRORS]
    assert len(set(codes)) == len(codes) and len(set(kinds)) == len(kinds)
    assert 0 not in codes and 2 not in codes, "0 is success, 2 is argparse's usage error"


def test_run_many_runs_in_parallel_and_types_every_failure() -> None:
    from pulumi.automation._cmd import CommandResult

    barrier = threading.Barrier(3, timeout=5)

    def operation(target: Tenant) -> str:
        barrier.wait()  # only passes when three tenants run at once
        name = target.id
        if name == "busy":
            raise ConcurrentUpdateError(CommandResult("", "Another update is currently in progress", 255))
        if name == "nocli":
            raise ops.PulumiCliMissing(ops.INSTALL_CLI)
        if name == "boom":
            raise RuntimeError("provider crashed")
        return f"done {name}"

    names = ["ok1", "busy", "nocli", "boom", "ok2", "ok3"]
    results = ops.run_many([tenant(id=n) for n in names], operation, max_workers=3)
    assert [(r.tenant, r.ok, r.error_kind) for r in results] == [
        ("ok1", True, ""),
        ("busy", False, "stack-busy"),
        ("nocli", False, "cli-missing"),
        ("boom", False, "failed"),
        ("ok2", True, ""),
        ("ok3", True, ""),
    ]
    assert results[0].value == "done ok1" and "provider crashed" in results[3].message


def test_destroy_view_lists_what_goes_and_what_is_kept() -> None:
    deployment = {
        "resources": [
            {"urn": "u::scoutflo/a", "type": "aws:ecr/repository:Repository", "retainOnDelete": True},
            {"urn": "u::a", "type": "github:index/repository:Repository", "inputs": {"archiveOnDestroy": True}},
            {"urn": "u::b", "type": "pulumi-python:dynamic/scoutflo:AppRepository", "inputs": {"name": "b"}},
            {"urn": "u::p", "type": "aws:iam/role:Role", "protect": True},
            {"urn": "u::r", "type": "aws:iam/role:Role"},
            {"urn": "u::c", "type": "scoutflo:index:ChartRepo", "custom": False},
            {"urn": "u::default", "type": "pulumi:providers:aws"},
        ]
    }
    view = ops.destroy_view(deployment, "acme")
    assert view.goes == (("aws:iam/role:Role", "r"),)
    assert [(t, n, w.split(":")[0]) for t, n, w in view.kept] == [
        ("aws:ecr/repository:Repository", "scoutflo/a", "retained"),
        ("aws:iam/role:Role", "p", "protected"),
        ("github:index/repository:Repository", "a", "archived on GitHub, not deleted"),
        ("pulumi-python:dynamic/scoutflo:AppRepository", "b", "archived on GitHub, not deleted"),
    ]
    assert "1 resources go, 4 are kept" in view.to_text()


def test_render_reports_an_unwritable_output_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the render's directory goes")
    assert cli(["render", "--stack", "dev", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "cannot write the render to" in err and "Traceback" not in err


# ---------------------------------------------------------------- the approval diff against the plan file

SIG = "4dabf18193072939515e22adb298388d"
URN = "urn:pulumi:acme::scoutflo::scoutflo:index:ArgoApp$kubernetes:argoproj.io/v1alpha1:Application::shop-app"
PARENT = "urn:pulumi:acme::scoutflo::scoutflo:index:ArgoApp::shop"


def _plan(inputs_diff: dict[str, Any], steps: list[str] | None = None) -> dict[str, Any]:
    """A plan as plan.Write writes it (sdk/go/common/apitype/plan.go L26-L103)."""
    goal = {"type": "kubernetes:argoproj.io/v1alpha1:Application", "name": "shop-app", "custom": True}
    return {
        "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": "v3.206.0"},
        "resourcePlans": {
            PARENT: {"goal": {"type": "scoutflo:index:ArgoApp", "name": "shop", "custom": False}, "steps": ["same"]},
            URN: {"goal": {**goal, "parent": PARENT, "inputDiff": inputs_diff}, "steps": steps or ["update"]},
        },
    }


def _shown(*props: tuple[str, Any, Any], op: str = "update") -> Any:
    from automation.changeset import ChangeSet, PropertyChange, ResourceChange

    changes = tuple(PropertyChange(path, "update", old, new) for path, old, new in props)
    app = ResourceChange("shop", "kubernetes:argoproj.io/v1alpha1:Application", "shop-app", URN, op, changes)
    return ChangeSet("acme", (app,))


def test_plan_values_are_compared_as_the_engine_serializes_them() -> None:
    from automation.plan_check import verify_against_plan

    secret = {SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:abc"}
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # stack/deployment.go L66
    plan = _plan({"updates": {"spec": {"replicas": 2, "token": secret, "id": unknown, "on": True, "note": "k=ghp_X1"}}})
    honest = _shown(
        ("spec.replicas", 1, 2.0),  # a double off the gRPC stream
        ("spec.token", "[secret]", "[secret]"),
        ("spec.id", "a", "(known after apply)"),
        ("spec.on", False, True),
        ("spec.note", "k=", "k=[secret]"),  # the engine hides secret config text in event strings
    )
    assert verify_against_plan(honest, plan, secrets=["ghp_X1"]) == []
    assert verify_against_plan(honest, plan) == [
        'shop-app: the preview shows spec.note = "k=[secret]", the plan sets "k=ghp_X1"'
    ]
    forged = _shown(("spec.replicas", 1, 3), ("spec.token", "[secret]", "plain"), ("spec.on", False, 1))
    assert verify_against_plan(forged, plan) == [
        "shop-app: the preview shows spec.replicas = 3, the plan sets 2",
        'shop-app: the preview shows spec.token = "plain", the plan sets "[secret]"',
        "shop-app: the preview shows spec.on = 1, the plan sets true",
    ]
    # A key the plan leaves alone must not be shown changing; a planned delete shows no new value.
    plan = _plan({"deletes": ["labels"], "updates": {"spec": {"replicas": 2}}})
    assert verify_against_plan(_shown(("labels.a", "x", None), ("spec.replicas", 1, 2)), plan) == []
    assert verify_against_plan(_shown(("metadata.name", "a", "b")), plan) == [
        "shop-app: the preview shows metadata.name changing, the plan does not change it"
    ]


def test_plan_steps_are_compared_with_the_shown_operation() -> None:
    from automation.changeset import ChangeSet
    from automation.plan_check import verify_against_plan

    replace = _plan({"updates": {"spec": {"replicas": 2}}}, ["create-replacement", "replace", "delete-replaced"])
    assert verify_against_plan(_shown(("spec.replicas", 1, 2), op="replace"), replace) == []
    assert verify_against_plan(_shown(("spec.replicas", 1, 2)), replace) == [
        "shop-app (kubernetes:argoproj.io/v1alpha1:Application): the preview shows update, the plan will replace"
    ]
    assert verify_against_plan(ChangeSet("acme", ()), replace)[0].endswith("shows no change, the plan will replace")
    # A custom resource passed off as a quiet component, or listed under another app.
    from dataclasses import replace as changed

    plan = _plan({"updates": {"spec": {"replicas": 2}}})
    (app,) = _shown(("spec.replicas", 1, 2)).resources
    assert verify_against_plan(ChangeSet("acme", (changed(app, custom=False),)), plan) == [
        "shop-app: the preview shows a component kubernetes:argoproj.io/v1alpha1:Application, the plan a custom "
        "kubernetes:argoproj.io/v1alpha1:Application"
    ]
    assert verify_against_plan(ChangeSet("acme", (changed(app, app="admin"),)), plan) == [
        "shop-app: the preview lists it under admin, the plan under shop"
    ]
    assert verify_against_plan(_shown(), {"resourcePlans": []}) == [
        "the saved plan is not a Pulumi deployment plan (no resourcePlans object)"
    ]


def test_an_import_is_not_a_plan_step() -> None:
    # The first adoption of an ECR repository or the OIDC provider (components/chart_registry.py,
    # github_oidc.py: `import_`) shows `import` in the events, but the real engine never records
    # an import in the plan: GenerateSteps returns the ImportStep as async work and only non-async
    # results go through validateSteps, which appends ops to the plan (pulumi/pulumi
    # pkg/resource/deploy/step_generator.go L1114-L1201, L398-L412, L459-L468). The plan holds the
    # goal (L1119-L1126, L1364-L1373) and the steps after the import: none when the resource
    # matches the program (L1901-L1906), an update when it does not.
    from dataclasses import replace as changed

    from automation.changeset import ChangeSet
    from automation.plan_check import verify_against_plan

    plan = _plan({})
    plan["resourcePlans"][URN] = {"goal": plan["resourcePlans"][URN]["goal"], "state": None, "seed": "AA=="}
    (app,) = _shown(op="import").resources
    assert verify_against_plan(ChangeSet("acme", (app,)), plan) == []
    # Imported, then updated to the program's inputs: the plan holds only the update.
    updated = _plan({"updates": {"spec": {"replicas": 2}}}, ["update"])
    (update,) = _shown(("spec.replicas", 1, 2)).resources
    assert verify_against_plan(ChangeSet("acme", (app, update)), updated) == []
    forged = _shown(("spec.replicas", 1, 3)).resources[0]
    assert verify_against_plan(ChangeSet("acme", (app, forged)), updated) == [
        "shop-app: the preview shows spec.replicas = 3, the plan sets 2"
    ]
    # An import-replacement comes with a ReplaceStep (L1195-L1199); neither is in the plan.
    swapped = (changed(app, op="import-replacement"), changed(app, op="replace"))
    assert verify_against_plan(ChangeSet("acme", swapped), plan) == []
    # An import never hides a planned change, and is never shown for a resource the plan lacks.
    created = _plan({"adds": {"spec": {"replicas": 2}}}, ["create"])
    assert verify_against_plan(ChangeSet("acme", (app,)), created) == [
        "shop-app (kubernetes:argoproj.io/v1alpha1:Application): the preview shows no change, the plan will create"
    ]
    del plan["resourcePlans"][URN]
    assert verify_against_plan(ChangeSet("acme", (app,)), plan) == [
        "shop-app (kubernetes:argoproj.io/v1alpha1:Application): the preview imports it, the plan has no goal for it"
    ]


def test_a_recreated_replacement_may_drop_an_input() -> None:
    # A dependent of a delete-before-replace (or a taken-over external resource) is replaced with
    # its goal diffed against no prior inputs (pulumi/pulumi step_generator.go L1359-L1361: every
    # input an add, no deletes) and a ReplaceStep without a detailed diff (L1495-L1505), so the
    # ChangeSet lists the inputs leaf by leaf: a label the program dropped shows old -> absent.
    from automation.changeset import changeset_from_events
    from automation.plan_check import verify_against_plan

    old = {"repo": "shop", "files": {"a": "1"}, "labels": {"team": "x"}}
    new = {"repo": "shop", "files": {"a": "2"}}
    changes = changeset_from_events([_event("replace", old, new)])
    urn = changes.resources[0].urn
    goal = {"type": "pulumi-python:dynamic:Resource", "name": "shop-initial", "custom": True}
    steps = ["delete-replaced", "replace", "create-replacement"]
    plan = {"resourcePlans": {urn: {"goal": {**goal, "inputDiff": {"adds": new}}, "steps": steps}}}
    assert verify_against_plan(changes, plan) == []
    # Diffed against the prior inputs, an unlisted key is kept: showing it dropped is a lie.
    kept = {"resourcePlans": {urn: {"goal": {**goal, "inputDiff": {"updates": {"files": {"a": "2"}}}}, "steps": steps}}}
    assert verify_against_plan(changes, kept) == [
        "shop-initial: the preview shows labels changing, the plan does not change it"
    ]


def test_an_import_is_listed_for_the_approver() -> None:
    # The first adoption of an ECR repository shows op "import" (OpImport, pulumi/pulumi
    # pkg/resource/deploy/step.go L1916-L1921), marked "=" as the CLI marks it (RawPrefix L2362).
    cs = changeset_from_events([_event("import", None, {"repo": "shop"})])
    text = cs.to_text()
    assert "total: 1 to import" in text and "\n   = pulumi-python:dynamic:Resource  shop-initial" in text
