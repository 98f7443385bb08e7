"""preview / apply / destroy / run_many through the Automation API SDK and the stand-in CLI
(tests/fake_pulumi), which records every call and enforces the real CLI's rules."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from automation import operations as ops
from automation.__main__ import main as cli
from automation.tenant import Tenant
from tests.fake_pulumi import rules
from tests.program_copy import program_copy

ROOT = Path(__file__).resolve().parent.parent
FAKE = Path(__file__).resolve().parent / "fake_pulumi"
BACKEND_OWN = {
    "AWS_ACCESS_KEY_ID": "AKIABACKENDOWN",
    "AWS_SECRET_ACCESS_KEY": "BACKEND-OWN-SECRET",
    "GITHUB_TOKEN": "ghp_BACKENDOWN",
    "KUBECONFIG": "/backend/own/kubeconfig",
}


@dataclass
class Harness:
    stacks: ops.Stacks
    state: Path
    tmp: Path

    def calls(self) -> list[dict[str, Any]]:
        folder = self.state / ".fake-pulumi" / "calls"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def settings(self, **values: Any) -> None:
        (self.state / ".fake-pulumi").mkdir(parents=True, exist_ok=True)
        (self.state / ".fake-pulumi" / "settings.json").write_text(json.dumps(values))

    def resources(self, stack: str) -> dict[str, dict[str, Any]]:
        data = json.loads((self.state / ".pulumi" / "stacks" / "scoutflo" / f"{stack}.json").read_text())
        return {r["urn"].rsplit("::", 1)[-1]: r for r in data["deployment"]["resources"]}

    def tenant_dir(self, stack: str) -> Path:
        return self.stacks.tenant_dir(stack)


@pytest.fixture(scope="session")
def program_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the program for the session (tests/program_copy.py says why)."""
    return program_copy(tmp_path_factory.mktemp("program"))


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program_dir: Path) -> Harness:
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    for key, value in BACKEND_OWN.items():
        monkeypatch.setenv(key, value)  # the backend's own identity: must never reach a tenant's CLI
    state = tmp_path / "state"
    state.mkdir()
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    backend = ops.Backend(
        url=f"file://{state}",
        secrets_provider="passphrase",
        state_dir=tmp_path / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
    )
    return Harness(ops.Stacks(backend, project_dir=program_dir), state, tmp_path)


# An inline kubeconfig of one cluster, user and context, data only (what a tenant may give).
CA_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\n"
    f"clusters: [{{name: c, cluster: {{server: 'https://k8s.example.test', certificate-authority-data: {CA_DATA}}}}}]\n"
    "users: [{name: u, user: {token: KUBE-S3CRET}}]\n"
    "contexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n"
)


def spec(tenant_id: str = "acme", apps: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tenant_id,
        "github": {"owner": f"{tenant_id}-gitops", "token": f"ghp_TOKEN_{tenant_id}_SECRET"},
        "aws": {"region": "eu-west-1", "accessKeyId": f"AKIA{tenant_id.upper()}KEY", "secretAccessKey": "AWS-S3CRET"},
        "cluster": {"kubeconfig": KUBECONFIG},
        "apps": apps or [{"name": "storefront", "chart": "webapp"}, {"name": "admin", "chart": "webapp"}],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X"},
    }
    data.update(changes)
    return data


def tenant(*args: Any, **kwargs: Any) -> Tenant:
    return Tenant.from_dict(spec(*args, **kwargs))


def secrets_of(data: dict[str, Any]) -> list[str]:
    found = [data["github"]["token"], data["aws"]["accessKeyId"], data["aws"]["secretAccessKey"]]
    found += [data["cluster"]["kubeconfig"], "KUBE-S3CRET"]
    config = data.get("config") or {}
    found += [str(config[k]) for k in ("refresherAccessKeyId", "refresherSecretAccessKey") if k in config]
    if "chartRegistryCredentials" in config:
        found.append("CHART-REGISTRY-PW")
    return found


# ---------------------------------------------------------------- the approved plan is what runs


def test_preview_saves_its_own_private_plan_and_apply_runs_exactly_it(h: Harness) -> None:
    first = ops.preview(tenant(), h.stacks)
    second = ops.preview(tenant(), h.stacks)
    assert first.plan_path != second.plan_path, "each preview writes its own plan"
    for cs in (first, second):
        plan = Path(str(cs.plan_path))
        assert stat.S_IMODE(plan.stat().st_mode) == 0o600
        assert cs.plan_sha256 == ops.sha256_file(plan)
        assert not plan.is_relative_to(ROOT), "plans live outside the checkout"
    assert first.fingerprint == second.fingerprint, "same changes under the same config"
    h.stacks.KEEP_PLANS = 2
    third = ops.preview(tenant(), h.stacks)
    assert len(list((h.tenant_dir("acme") / "plans").glob("*.plan.json"))) == 2, "old previews are pruned"
    assert not Path(str(first.plan_path)).exists()
    result = ops.apply(tenant(), first.fingerprint, h.stacks)
    assert result["summary"]["create"] > 0
    ups = [c["argv"] for c in h.calls() if "up" in c["argv"]]
    assert len(ups) == 1 and ups[0][ups[0].index("--plan") + 1] in (second.plan_path, third.plan_path)
    assert not any("preview" in c["argv"] for c in h.calls()[-3:]), "apply does not preview again"
    assert not ops.preview(tenant(), h.stacks).has_changes, "a second run is a no-op"


def test_draft_preview_during_apply_is_serialized_and_never_applied(h: Harness) -> None:
    approved = tenant(apps=[{"name": "shop", "chart": "webapp", "values": {"replicaCount": 2}}])
    draft = tenant(apps=[{"name": "shop", "chart": "webapp", "values": {"replicaCount": 9}}])
    fingerprint = ops.preview(approved, h.stacks).fingerprint
    h.settings(delay={"up": 1.0})
    results: dict[str, Any] = {}

    def run_apply() -> None:
        results["apply"] = ops.apply(approved, fingerprint, h.stacks)

    worker = threading.Thread(target=run_apply)
    worker.start()
    lock_dir = h.state / ".pulumi" / "locks" / "organization" / "scoutflo" / "acme"
    deadline = time.monotonic() + 20
    while not (lock_dir.exists() and any(lock_dir.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.02)  # the apply's `up` is running now
    draft_changes = ops.preview(draft, h.stacks)
    worker.join()
    assert results["apply"]["fingerprint"] == fingerprint
    app = h.resources("acme")["shop-application"]
    assert app["inputs"]["spec"]["source"]["helm"]["valuesObject"] == {"replicaCount": 2}, "the approved spec ran"
    # The draft waited for the apply and was previewed against its result.
    (update,) = [r for r in draft_changes.resources if r.name == "shop-application"]
    assert update.op == "update"
    assert {p.path: (p.old, p.new) for p in update.properties}["spec.source.helm.valuesObject.replicaCount"] == (2, 9)
    argv = [c["argv"] for c in h.calls()]
    up_at = max(i for i, a in enumerate(argv) if "up" in a)
    assert max(i for i, a in enumerate(argv) if "preview" in a) > up_at
    with pytest.raises(ops.ChangesDiffer, match="superseded or applied"):
        ops.apply(approved, fingerprint, h.stacks)


def test_concurrent_previews_of_one_tenant_each_get_their_own_changes(h: Harness) -> None:
    one = tenant(apps=[{"name": "shop", "chart": "webapp", "values": {"replicaCount": 1}}])
    two = tenant(apps=[{"name": "shop", "chart": "webapp", "values": {"replicaCount": 7}}])
    out: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda t=t, k=k: out.__setitem__(k, ops.preview(t, h.stacks)))
        for k, t in (("one", one), ("two", two))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, replicas in (("one", 1), ("two", 7)):
        (app,) = [r for r in out[key].resources if r.name == "shop-application"]
        assert {p.path: p.new for p in app.properties}["spec.source.helm.valuesObject.replicaCount"] == replicas
    assert out["one"].fingerprint != out["two"].fingerprint
    assert ops.apply(two, out["two"].fingerprint, h.stacks)["stack"] == "acme"


def test_a_stale_approval_is_refused(h: Harness) -> None:
    approved = ops.preview(tenant(), h.stacks)
    # The config changed since (a rotated token alone is enough; the fingerprint never shows it).
    rotated = tenant(github={"owner": "acme-gitops", "token": "ghp_ROTATED"})
    with pytest.raises(ops.ChangesDiffer, match="config changed"):
        ops.apply(rotated, approved.fingerprint, h.stacks)
    # The plan file was altered.
    plan = Path(str(approved.plan_path))
    saved = plan.read_bytes()
    plan.write_bytes(saved.replace(b'"create"', b'"same"'))
    with pytest.raises(ops.ChangesDiffer, match="altered"):
        ops.apply(tenant(), approved.fingerprint, h.stacks)
    plan.write_bytes(saved)
    # The state moved on: another replica still holds the old plan after this one applied it.
    plans = h.tenant_dir("acme") / "plans"
    copy = h.tmp / "plans-copy"
    shutil.copytree(plans, copy)
    ops.apply(tenant(), approved.fingerprint, h.stacks)
    shutil.rmtree(plans)
    shutil.copytree(copy, plans)
    with pytest.raises(ops.ChangesDiffer, match="state moved on") as err:
        ops.apply(tenant(), approved.fingerprint, h.stacks)
    assert err.value.kind == "changes-differ"
    ups = [c for c in h.calls() if "up" in c["argv"]]
    assert len(ups) == 1, "refused before any `up --plan` ran (the state digest, not the engine)"


def test_a_secret_change_changes_the_fingerprint_without_revealing_it(h: Harness) -> None:
    one = ops.preview(tenant(), h.stacks)
    two = ops.preview(tenant(github={"owner": "acme-gitops", "token": "ghp_OTHER"}), h.stacks)
    assert one.fingerprint != two.fingerprint
    blob = json.dumps(two.to_json()) + two.to_text()
    assert "ghp_OTHER" not in blob and two.config_digest.startswith("hmac-sha256:")


# ---------------------------------------------------------------- events that are not the plan

SHOP = {"name": "shop", "chart": "webapp", "targetRevision": "9.9.9"}
TWO_APPS = [SHOP, {"name": "admin", "chart": "webapp"}]
ECR = "aws:ecr/repository:Repository::shop"


@pytest.mark.parametrize(
    ("applied", "forge", "shown"),
    [
        # The approver would read 0.1.0 while the plan sets 9.9.9.
        (None, [{"set": ["shop-application", "spec.source.targetRevision", "0.1.0"]}],
         'shop-application: the preview shows spec.source.targetRevision = "0.1.0", the plan sets "9.9.9"'),
        # Deletes hidden: shown as unchanged, or left out of the events.
        (TWO_APPS, [{"op": ["admin-main", "same"]}], "admin-main (github:index/branchProtection:BranchProtection): "
         "the preview shows no change, the plan will delete"),
        (TWO_APPS, [{"drop": "admin-application"}], "admin-application (kubernetes:argoproj.io/v1alpha1:Application): "
         "the preview shows no change, the plan will delete"),
        # A resource the plan does not have.
        (None, [{"extra": "backdoor"}], "backdoor (kubernetes:core/v1:Secret): the preview shows create, "
         "the plan will leave it unchanged (it is not in the plan)"),
        # A replace shown as an in-place update.
        ([SHOP], [{"op": [ECR, "update"]}], "shop (aws:ecr/repository:Repository): the preview shows update, "
         "the plan will replace"),
    ],
)  # fmt: skip
def test_forged_events_that_disagree_with_the_plan_are_refused(
    h: Harness, applied: list[dict[str, Any]] | None, forge: list[dict[str, Any]], shown: str
) -> None:
    config = {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X"}
    if applied:
        ops.apply(tenant(apps=applied), ops.preview(tenant(apps=applied), h.stacks).fingerprint, h.stacks)
    wanted = tenant(apps=[SHOP], config={**config, "ecrPrefix": "team"} if applied == [SHOP] else config)
    honest = ops.preview(wanted, h.stacks)  # the same run, events as the engine sent them, passes
    h.settings(forge=forge)
    with pytest.raises(ops.PlanMismatch) as err:
        ops.preview(wanted, h.stacks)
    assert shown in str(err.value) and "nothing was saved for approval" in str(err.value)
    assert err.value.kind == "plan-mismatch" and err.value.exit_code == 9
    plans = sorted(p.name for p in (h.tenant_dir("acme") / "plans").iterdir())
    assert plans == sorted([Path(str(honest.plan_path)).name, Path(str(honest.plan_path)).with_suffix(".meta").name])
    h.settings()
    ops.apply(wanted, honest.fingerprint, h.stacks)  # the honest preview still applies
    assert not ops.preview(wanted, h.stacks).has_changes


def test_honest_previews_with_awkward_keys_agree_with_their_plan(h: Harness) -> None:
    values = {'a"b': 1, "x.y": {"back\\slash": [1, 2]}, "ключ": "значение"}
    app = {"name": "shop", "chart": "webapp", "values": values}
    changes = ops.preview(tenant(apps=[app]), h.stacks)
    (shown,) = [r for r in changes.resources if r.name == "shop-application"]
    paths = {p.path for p in shown.properties}
    assert (
        'spec.source.helm.valuesObject["a\\"b"]' in paths
        and 'spec.source.helm.valuesObject["x.y"]["back\\slash"]' in paths
    )
    ops.apply(tenant(apps=[app]), changes.fingerprint, h.stacks)
    app["values"] = {**values, 'a"b': 2}
    (shown,) = [r for r in ops.preview(tenant(apps=[app]), h.stacks).resources if r.name == "shop-application"]
    assert [(p.path, p.old, p.new) for p in shown.properties] == [('spec.source.helm.valuesObject["a\\"b"]', 1, 2)]


def test_the_saved_plan_has_the_real_format(h: Harness) -> None:
    """What pulumi writes (sdk/go/common/apitype/plan.go, pkg/resource/stack/plan.go): the stand-in's
    plan is read the way the check reads a real one."""
    plan = json.loads(Path(str(ops.preview(tenant(apps=[SHOP]), h.stacks).plan_path)).read_text())
    assert (
        set(plan) == {"manifest", "resourcePlans"} and plan["manifest"]["version"] == f"v{ops.required_cli_version()}"
    )
    plans = {urn.rsplit("::", 1)[-1]: rp for urn, rp in plan["resourcePlans"].items()}
    app = plans["shop-application"]
    assert app["steps"] == ["create"] and app["goal"]["type"] == "kubernetes:argoproj.io/v1alpha1:Application"
    assert app["goal"]["inputDiff"]["adds"]["spec"]["source"]["targetRevision"] == "9.9.9"
    token = plans["shop-repo"]["goal"]["inputDiff"]["adds"]["token"]
    assert set(token) == {"4dabf18193072939515e22adb298388d", "ciphertext"}
    assert "ghp_TOKEN_acme_SECRET" not in json.dumps(plan)
    assert plans["shop-main"]["goal"]["inputDiff"]["adds"]["repositoryId"] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    # A replace is recorded as all its steps (step_generator.go L2158-L2164, L2423); a delete has no goal.
    ops.apply(tenant(apps=TWO_APPS), ops.preview(tenant(apps=TWO_APPS), h.stacks).fingerprint, h.stacks)
    config = {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X", "ecrPrefix": "team"}
    plan = json.loads(Path(str(ops.preview(tenant(apps=[SHOP], config=config), h.stacks).plan_path)).read_text())
    plans = {urn.split("::", 2)[2]: rp for urn, rp in plan["resourcePlans"].items()}
    assert plans[f"scoutflo:index:ChartRegistry${ECR}"]["steps"] == ["create-replacement", "replace", "delete-replaced"]
    assert plans[f"scoutflo:index:ChartRegistry${ECR}"]["goal"]["inputDiff"] == {"updates": {"name": "team/shop"}}
    assert plans["scoutflo:index:ArgoApp$kubernetes:argoproj.io/v1alpha1:Application::admin-application"] == {
        "steps": ["delete"],
        "state": None,
    }


# ---------------------------------------------------------------- config the CLI accepts


def test_stack_config_passes_the_cli_type_check_and_secrets_are_encrypted(h: Harness) -> None:
    data = spec(
        config={
            "clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X",
            "revisionHistoryLimit": 5,
            "chartRegistryCredentials": {"r.example.com": {"username": "u", "password": "CHART-REGISTRY-PW"}},
        }
    )
    ops.preview(Tenant.from_dict(data), h.stacks)
    directory = h.tenant_dir("acme")
    assert not directory.is_relative_to(ROOT)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "Pulumi.acme.yaml").stat().st_mode) == 0o600
    stack_file = yaml.safe_load((directory / "Pulumi.acme.yaml").read_text())
    config = stack_file["config"]
    assert config["scoutflo:apps"] == [{"chart": "webapp", "name": "storefront"}, {"chart": "webapp", "name": "admin"}]
    assert config["scoutflo:revisionHistoryLimit"] == 5
    for key in (
        "github:token",
        "aws:accessKey",
        "aws:secretKey",
        "kubernetes:kubeconfig",
        "scoutflo:chartRegistryCredentials",
    ):
        assert rules.is_secure(config[key]), key
    text = (directory / "Pulumi.acme.yaml").read_text()
    assert not any(s in text for s in secrets_of(data))
    project = rules.load_yaml(directory / "Pulumi.yaml")
    rules.validate_project(project)
    rules.validate_stack_config("acme", project, config)
    program = h.stacks.project_dir
    assert project["main"] == str(program) and project["config"] == rules.load_yaml(ROOT / "Pulumi.yaml")["config"]


def test_removed_keys_leave_the_stack_config(h: Harness) -> None:
    with_keys = spec(
        config={"tokenRefreshMode": "static", "refresherAccessKeyId": "AKIAREFRESH", "refresherSecretAccessKey": "RS"},
        aws={"region": "eu-west-1", "accessKeyId": "AKIAX", "secretAccessKey": "S", "sessionToken": "SESSION"},
    )
    ops.preview(Tenant.from_dict(with_keys), h.stacks)
    stack_file = h.tenant_dir("acme") / "Pulumi.acme.yaml"
    before = yaml.safe_load(stack_file.read_text())["config"]
    assert {"scoutflo:refresherAccessKeyId", "aws:token", "scoutflo:tokenRefreshMode"} <= set(before)
    ops.preview(tenant(), h.stacks)
    after = yaml.safe_load(stack_file.read_text())
    assert not {
        "scoutflo:refresherAccessKeyId",
        "scoutflo:refresherSecretAccessKey",
        "aws:token",
        "scoutflo:tokenRefreshMode",
    } & set(after["config"])
    assert after["encryptionsalt"], "the stack's own encryption settings are kept"


def test_the_cli_environment_is_built_from_the_tenant_only(h: Harness) -> None:
    ops.apply(tenant(), ops.preview(tenant(), h.stacks).fingerprint, h.stacks)
    calls = h.calls()
    assert calls
    allowed = {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PULUMI_HOME",
        "PULUMI_BACKEND_URL",
        "PULUMI_SKIP_UPDATE_CHECK",
        "PULUMI_CONFIG_PASSPHRASE_FILE",
        "PULUMI_AUTOMATION_API",
        "PULUMI_DEBUG_COMMANDS",
        "PWD",  # set by the stand-in's own sh wrapper
    }
    for call in calls:
        assert set(call["env"]) <= allowed, set(call["env"]) - allowed
        assert not set(BACKEND_OWN.values()) & set(call["env"].values())
        assert call["env"]["HOME"].startswith(str(h.tenant_dir("acme")))
        # pulumi-kubernetes writes the kubeconfig to a temp file and never removes it.
        assert call["env"]["TMPDIR"].startswith(str(h.tenant_dir("acme")))


def test_no_secret_on_any_argv(h: Harness) -> None:
    data = spec(
        config={
            "tokenRefreshMode": "static",
            "refresherAccessKeyId": "AKIAREFRESHER",
            "refresherSecretAccessKey": "REFRESHER-S3CRET",
            "chartRegistryCredentials": {"r.example.com": {"username": "u", "password": "CHART-REGISTRY-PW"}},
        }
    )
    t = Tenant.from_dict(data)
    ops.apply(t, ops.preview(t, h.stacks).fingerprint, h.stacks)
    with pytest.raises(ops.ConfirmationRequired):
        ops.destroy(t, None, h.stacks)
    ops.destroy(t, "acme", h.stacks)
    secrets = secrets_of(data)
    assert len(secrets) == 8
    calls = h.calls()
    assert {c["argv"][1] for c in calls} >= {"stack", "config", "preview", "up", "destroy"}
    for call in calls:
        line = "\0".join(call["argv"])
        assert not [s for s in secrets if s in line], call["argv"][:6]
        assert not [s for s in secrets if any(s in value for value in call["env"].values())], "nor in its env"
        if "export" in call["argv"]:
            assert "--show-secrets" not in call["argv"], "listing what a destroy removes decrypts nothing"


# ---------------------------------------------------------------- scale and isolation


def test_twenty_tenants_at_once(h: Harness) -> None:
    tenants = [tenant(f"t{i:02d}", apps=[{"name": f"app{i}", "chart": "webapp"}]) for i in range(20)]
    results = ops.run_many(tenants, lambda t: ops.preview(t, h.stacks), max_workers=20)
    assert [r.error_kind for r in results] == [""] * 20, [r.message for r in results if not r.ok]
    for i, result in enumerate(results):
        names = {r.name for r in result.value.resources}
        assert f"app{i}-application" in names and not any(f"app{j}-application" in names for j in range(20) if j != i)
        config = yaml.safe_load((h.tenant_dir(f"t{i:02d}") / f"Pulumi.t{i:02d}.yaml").read_text())["config"]
        assert config["scoutflo:tenant"] == f"t{i:02d}"


def test_three_hundred_apps(h: Harness) -> None:
    apps = [{"name": f"app-{i:03d}", "chart": "webapp", "values": {"replicaCount": i % 5}} for i in range(300)]
    t = tenant(apps=apps)
    changes = ops.preview(t, h.stacks)
    assert len([r for r in changes.resources if r.type.startswith("kubernetes:")]) == 300
    ops.apply(t, changes.fingerprint, h.stacks)
    assert max(len(a) for c in h.calls() for a in c["argv"]) < 4096, "no large value on argv"


def test_a_busy_stack_is_typed(h: Harness) -> None:
    changes = ops.preview(tenant(), h.stacks)
    lock_dir = h.state / ".pulumi" / "locks" / "organization" / "scoutflo" / "acme"
    lock_dir.mkdir(parents=True)
    (lock_dir / "other-process.json").write_text(json.dumps({"pid": 1}))
    with pytest.raises(ops.StackBusy, match="locked by 1 lock"):
        ops.apply(tenant(), changes.fingerprint, h.stacks)


def test_the_backend_is_checked_at_start(h: Harness, tmp_path: Path) -> None:
    no_passphrase = ops.Stacks(
        ops.Backend(url=h.stacks.backend.url, secrets_provider="passphrase", state_dir=tmp_path / "t")
    )
    with pytest.raises(ops.InvalidSetup, match="PULUMI_CONFIG_PASSPHRASE_FILE"):
        ops.preview(tenant(), no_passphrase)
    inside = ops.Stacks(
        ops.Backend(
            url=h.stacks.backend.url, secrets_provider="passphrase", state_dir=ROOT / "out", env=h.stacks.backend.env
        )
    )
    with pytest.raises(ops.InvalidSetup, match="inside the source checkout"):
        ops.preview(tenant(), inside)
    with pytest.raises(ops.InvalidSetup, match="secrets provider"):
        ops.preview(tenant(), ops.Stacks(ops.Backend(url="s3://b", secrets_provider="", state_dir=tmp_path)))
    assert h.calls() == [], "refused before any CLI call"


# ---------------------------------------------------------------- destroy


def test_destroy_shows_what_goes_and_what_is_kept_before_confirmation(h: Harness) -> None:
    with pytest.raises(ops.OperationFailed, match="no stack"):
        ops.destroy(tenant(), None, h.stacks)
    ops.apply(tenant(), ops.preview(tenant(), h.stacks).fingerprint, h.stacks)
    with pytest.raises(ops.ConfirmationRequired) as err:
        ops.destroy(tenant(), None, h.stacks)
    text = str(err.value)
    assert "aws:ecr/repository:Repository  storefront  (retained)" in text
    assert "pulumi-python:dynamic/scoutflo:AppRepository  admin-repo  (archived on GitHub, not deleted)" in text
    assert "- kubernetes:argoproj.io/v1alpha1:Application  admin-application" in text
    assert h.resources("acme"), "nothing destroyed yet"
    result = ops.destroy(tenant(), "acme", h.stacks)
    assert result["summary"]["delete"] > 0 and not h.resources("acme")


# ---------------------------------------------------------------- python -m automation


def test_cli_exit_codes_and_tenant_file_errors(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    env = h.stacks.backend
    base = ["--backend", env.url, "--secrets-provider", "passphrase", "--state-dir", str(env.state_dir)]
    os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = env.env["PULUMI_CONFIG_PASSPHRASE_FILE"]
    try:
        bad = h.tmp / "bad.json"
        bad.write_text("{not json")
        assert cli(["preview", "--tenant", str(bad), *base]) == 6
        assert "bad.json: not JSON (line 1" in capsys.readouterr().err
        assert cli(["preview", "--tenant", str(h.tmp / "missing.json"), *base]) == 6
        assert "missing.json: cannot read it" in capsys.readouterr().err
        good = h.tmp / "acme.json"
        good.write_text(json.dumps(spec()))
        assert cli(["preview", "--tenant", str(good), *base, "--json"]) == 0
        fingerprint = json.loads(capsys.readouterr().out)["fingerprint"]
        assert cli(["apply", "--tenant", str(good), *base, "--fingerprint", "sha256:nope"]) == 3
        assert cli(["destroy", "--tenant", str(good), *base]) == 4
        assert "confirm" in capsys.readouterr().err
        assert cli(["apply", "--tenant", str(good), *base, "--fingerprint", fingerprint]) == 0
        capsys.readouterr()
        h.settings(forge=[{"extra": "backdoor"}])
        assert cli(["preview", "--tenant", str(good), *base, "--json"]) == 9
        assert json.loads(capsys.readouterr().out)["error"] == "plan-mismatch"
        h.settings()
        assert cli(["preview", "--tenant", str(good), "--backend", env.url, "--secrets-provider", "passphrase"]) == 8
    finally:
        del os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"]
