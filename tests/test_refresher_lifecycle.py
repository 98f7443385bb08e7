"""The registry credential's life around the refresher: tokenRefreshMode none (the EKS Argo CD
capability), a Secret created again gets a token at once, several tenants in one Argo CD
namespace, and the refresher pods fenced by a NetworkPolicy."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from automation import render
from scoutflo import naming
from scoutflo.aws.policies import ECR_PULL_ACTIONS
from scoutflo.cluster import manifests
from scoutflo.config import ConfigError, StackConfig, parse_config
from tests.conftest import of_type, run_main

K8S_VERSION = "1.35"
ACCT = render.FAKE_ACCOUNT
CAPABILITY_ARN = f"arn:aws:iam::{ACCT}:role/ArgoCDCapabilityRole"
CLUSTER_ARN = f"arn:aws:eks:eu-west-1:{ACCT}:cluster/prod"
NONE_MODE = {
    "scoutflo:tokenRefreshMode": "none",
    "scoutflo:argocdCapabilityRoleArn": CAPABILITY_ARN,
    "scoutflo:argocdDestination": CLUSTER_ARN,
}
STATIC = {
    "scoutflo:tokenRefreshMode": "static",
    "scoutflo:refresherAccessKeyId": "AKIAEXAMPLE",
    "scoutflo:refresherSecretAccessKey": "wJalrEXAMPLE",
}
JOB, CRON, NETPOL = (
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
)
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"


# ---------------------------------------------------------------- tokenRefreshMode none


def test_none_mode_creates_no_credential_or_refresher_and_grants_the_capability_role() -> None:
    rec = run_main(NONE_MODE)
    kinds = {r.type for r in rec.resources if r.parent.endswith("RegistryAccess::registry-access")}
    assert kinds == {"aws:iam/rolePolicy:RolePolicy"}, kinds
    assert not of_type(rec, "aws:iam/role:Role") or all(
        not r.name.startswith("registry-access") for r in of_type(rec, "aws:iam/role:Role")
    )
    (grant,) = [r for r in of_type(rec, "aws:iam/rolePolicy:RolePolicy") if r.name == "registry-access-capability-ecr"]
    # On the capability's role, under a name of this tenant's: other tenants' grants and the
    # role owner's policies are other names.
    assert grant.inputs["role"] == "ArgoCDCapabilityRole"
    assert grant.inputs["name"] == "scoutflo-acme-ecr-read"
    doc = json.loads(grant.inputs["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["Token"] == {
        "Sid": "Token",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert by_sid["Repositories"]["Action"] == ECR_PULL_ACTIONS
    repos = {r.inputs["name"] for r in of_type(rec, "aws:ecr/repository:Repository")}
    assert by_sid["Repositories"]["Resource"] == sorted(
        f"arn:aws:ecr:eu-west-1:{ACCT}:repository/{name}" for name in repos
    )
    assert not [
        a for a in ECR_PULL_ACTIONS if not a.startswith(("ecr:BatchGet", "ecr:Get", "ecr:Describe", "ecr:List"))
    ]


def test_none_mode_apps_wait_for_the_grant() -> None:
    rec = run_main(NONE_MODE)
    for app in of_type(rec, "scoutflo:index:ArgoApp"):
        # The SDK expands a dependency on the component into its custom children.
        assert any(urn.endswith("::registry-access-capability-ecr") for urn in app.depends_on), app.name


def _parse(overrides: dict[str, Any]) -> StackConfig:
    from charts_catalog import load_catalog

    config, _ = render.stack_config("dev")
    raw: dict[str, Any] = {**config, "github:token": "t", **overrides}
    return parse_config(raw, load_catalog(raw.get("scoutflo:catalogPath") or None))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"scoutflo:argocdCapabilityRoleArn": ""}, "argocdCapabilityRoleArn"),
        ({"scoutflo:argocdCapabilityRoleArn": "ArgoCDCapabilityRole"}, "argocdCapabilityRoleArn"),
        ({"scoutflo:argocdCapabilityRoleArn": f"arn:aws:iam::{ACCT}:user/argocd"}, "argocdCapabilityRoleArn"),
        ({"scoutflo:argocdCapabilityRoleArn": "arn:aws:iam::12:role/x"}, "argocdCapabilityRoleArn"),
        ({"scoutflo:argocdDestination": None}, "argocdDestination"),
        ({"scoutflo:argocdDestination": "https://kubernetes.default.svc"}, "argocdDestination"),
        ({"scoutflo:argocdDestination": "https://kubernetes.default.svc/"}, "argocdDestination"),
        ({"scoutflo:argocdDestination": "kubernetes.default.svc"}, "argocdDestination"),
        # Mode none has no Secret to adopt: the key did nothing, silently.
        ({"scoutflo:adoptCredentialSecret": True}, "adoptCredentialSecret"),
    ],
)
def test_none_mode_config_is_refused_naming_the_key(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"'scoutflo:{named}'"):
        _parse({**NONE_MODE, **overrides})


@pytest.mark.parametrize("name", ["in-cluster", "local-cluster"])
def test_none_mode_takes_the_name_the_local_cluster_is_registered_under(name: str) -> None:
    """AWS's guide registers the capability's own cluster under a name, `in-cluster` among them
    (argocd-register-clusters.html): the Application's destination.name, which the capability
    supports, unlike the kubernetes.default.svc address. `in-cluster` was refused."""
    cfg = _parse({**NONE_MODE, "scoutflo:argocdDestination": name})
    assert cfg.argocd_destination == name


def test_none_mode_config_accepts_a_role_with_a_path() -> None:
    cfg = _parse({**NONE_MODE, "scoutflo:argocdCapabilityRoleArn": f"arn:aws:iam::{ACCT}:role/eks/Argo-CD.cap"})
    assert cfg.token_refresh_mode == "none"
    assert cfg.argocd_capability_role_arn.endswith("role/eks/Argo-CD.cap")


def test_the_capability_role_is_refused_in_other_modes() -> None:
    with pytest.raises(ConfigError, match="only for tokenRefreshMode=none"):
        _parse({"scoutflo:argocdCapabilityRoleArn": CAPABILITY_ARN})


# ---------------------------------------------------------------- a Secret created again is seeded at once


def _with_secret_uid(monkeypatch: pytest.MonkeyPatch, uid: str) -> None:
    """The API server gives every object a new uid; the fake cluster gives the Secret `uid`."""
    steady = render.fake_outputs

    def outputs(type_: str, name: str, inputs: Any, region: str) -> dict[str, Any]:
        out = steady(type_, name, inputs, region)
        if type_ == "kubernetes:core/v1:Secret":
            out["metadata"] = {**out.get("metadata", {}), "uid": uid}
        return out

    monkeypatch.setattr(render, "fake_outputs", outputs)


def _seed_and_annotation(monkeypatch: pytest.MonkeyPatch, uid: str) -> tuple[str, str]:
    _with_secret_uid(monkeypatch, uid)
    (job,) = of_type(run_main(), JOB)
    (es,) = of_type(run_main({"scoutflo:tokenRefreshMode": "eso"}), EXTERNAL_SECRET)
    return job.inputs["metadata"]["name"], es.inputs["metadata"]["annotations"][
        manifests.CREDENTIAL_IDENTITY_ANNOTATION
    ]


def test_a_secret_created_again_is_seeded_again_and_an_unchanged_one_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _seed_and_annotation(monkeypatch, "0f9a6c1e-0000-4000-8000-000000000001")
    again = _seed_and_annotation(monkeypatch, "0f9a6c1e-0000-4000-8000-000000000001")
    recreated = _seed_and_annotation(monkeypatch, "5d2b7e40-0000-4000-8000-000000000002")
    assert again == first, "an up with no change keeps the Job and the annotation: no replacement"
    assert recreated[0] != first[0], "a new Secret (new uid) gets a new seed Job, which runs"
    assert recreated[1] != first[1], "and ESO sees a changed annotation and syncs at once"


# ---------------------------------------------------------------- one namespace, several tenants


def _refresher_objects(rec: render.Recording) -> dict[tuple[str, str], str]:
    return {
        (r.type, r.inputs["metadata"]["name"]): r.name
        for r in rec.resources
        if r.type.startswith("kubernetes:") and r.custom and r.parent.endswith("RegistryAccess::registry-access")
    }


@pytest.mark.parametrize("mode", [{}, STATIC, {"scoutflo:tokenRefreshMode": "eso"}])
def test_two_tenants_share_no_object_in_the_argocd_namespace(mode: dict[str, Any]) -> None:
    acme = _refresher_objects(run_main(mode))
    globex = _refresher_objects(run_main({**mode, "scoutflo:tenant": "globex"}))
    assert acme and globex
    assert not set(acme) & set(globex), sorted(set(acme) & set(globex))


def test_the_irsa_trust_names_the_tenants_service_account() -> None:
    rec = run_main()
    (role,) = [r for r in of_type(rec, "aws:iam/role:Role") if r.name == "registry-access-reader"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (sub,) = [v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    (sa,) = of_type(rec, "kubernetes:core/v1:ServiceAccount")
    assert sub == f"system:serviceaccount:argocd:{sa.inputs['metadata']['name']}"
    assert sa.inputs["metadata"]["name"] == "scoutflo-ecr-refresher-acme"


@pytest.mark.parametrize(
    "tenant", ["a", "acme", "t" * 13, "t" * 14, "x" * 40, "long-tenant-name-that-ends-in-a-dash-x"]
)
def test_refresher_names_fit_every_kind_and_differ_per_tenant(tenant: str) -> None:
    name = manifests.refresher_name(tenant)
    assert len(name) <= 47 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    # CronJob names at most 52; the seed Job's name is a label value, at most 63.
    seed = manifests.seed_job_name({"spec": {"serviceAccountName": name}}, "identity")
    assert len(seed) <= 63
    other = tenant[:-1] + ("c" if tenant.endswith("b") else "b")
    assert manifests.refresher_name(other) != name


def test_two_tenants_in_one_namespace_never_share_refresher_names() -> None:
    """These two tenants' names were one (a cut id and a 24-bit hash that collide: found in 870
    tries), so each stack would have taken the other's ServiceAccount, Role, CronJob and seed Job.
    The whole id is in the name now; the two forms start differently, so they never meet either."""
    a, b = "shared-namespace-tenant-557", "shared-namespace-tenant-869"
    assert manifests.refresher_name(a) != manifests.refresher_name(b)
    assert manifests.refresher_name(a) == "sf-ecr-shared-namespace-tenant-557"
    short = {manifests.refresher_name("t" * n) for n in range(1, 41)}
    assert len(short) == 40
    # Tenants that fit keep the names #17 first deployed: no second replace of their objects.
    assert manifests.refresher_name("acme") == "scoutflo-ecr-refresher-acme"
    assert manifests.refresher_name("t" * 13) == "scoutflo-ecr-refresher-" + "t" * 13
    assert manifests.refresher_name("t" * 14) == "sf-ecr-" + "t" * 14


# ---------------------------------------------------------------- the refresher pods are fenced


@pytest.mark.parametrize("mode", [{}, STATIC])
def test_the_refresher_pods_have_a_network_policy(mode: dict[str, Any]) -> None:
    rec = run_main(mode)
    (policy,) = of_type(rec, NETPOL)
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **policy.inputs}
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    spec = policy.inputs["spec"]
    # No ingress rule under policyType Ingress: nothing connects to the pods.
    assert spec["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in spec
    ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}
    assert ("TCP", 80) not in ports, "instance metadata stays out of reach"
    selector = spec["podSelector"]["matchLabels"]
    (job,) = of_type(rec, JOB)
    (cron,) = of_type(rec, CRON)
    for pod in (job.inputs["spec"]["template"], cron.inputs["spec"]["jobTemplate"]["spec"]["template"]):
        assert selector.items() <= pod["metadata"]["labels"].items()
    # It exists before the seed's pod does.
    assert any(urn.endswith("::registry-access-netpol") for urn in job.depends_on)
    # And it selects no other tenant's pods.
    (other,) = of_type(run_main({**mode, "scoutflo:tenant": "globex"}), NETPOL)
    assert other.inputs["spec"]["podSelector"] != spec["podSelector"]


@pytest.mark.parametrize("mode", [{"scoutflo:tokenRefreshMode": "eso"}, NONE_MODE])
def test_no_refresher_pods_no_network_policy(mode: dict[str, Any]) -> None:
    rec = run_main(mode)
    assert not of_type(rec, NETPOL) and not of_type(rec, JOB) and not of_type(rec, CRON)


# ---------------------------------------------------------------- an eso-mode Secret from before


@pytest.mark.parametrize("mode", [{"scoutflo:tokenRefreshMode": "eso"}, {}])
def test_adopt_credential_secret_imports_the_existing_secret_by_namespace_and_name(mode: dict[str, Any]) -> None:
    """pulumi-kubernetes >= 4.29 creates client-side (provider/pkg/await/await.go:190): a Secret
    ESO made under the old design fails the create; the key imports it by the provider's id."""
    adopted = run_main({**mode, "scoutflo:adoptCredentialSecret": True})
    (secret,) = [r for r in of_type(adopted, "kubernetes:core/v1:Secret") if r.name == "registry-access-secret"]
    assert secret.import_id == "argocd/scoutflo-ecr-acme"
    # Nothing else is imported, and without the key (a fresh stack) nothing is.
    assert [r.name for r in adopted.resources if r.import_id] == ["registry-access-secret"]
    assert not [r.name for r in run_main(mode).resources if r.import_id]


def test_adopt_credential_secret_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="'scoutflo:adoptCredentialSecret' must be true or false"):
        _parse({"scoutflo:adoptCredentialSecret": "yes"})


def test_a_capability_role_of_another_account_is_refused_naming_the_key() -> None:
    other = f"arn:aws:iam::{'9' * 12}:role/ArgoCDCapabilityRole"
    assert other.split(":")[4] != ACCT
    with pytest.raises(Exception, match="'scoutflo:argocdCapabilityRoleArn' names a role in account 999999999999"):
        run_main({**NONE_MODE, "scoutflo:argocdCapabilityRoleArn": other})


def test_no_tenants_credential_secret_is_another_tenants_static_keys() -> None:
    """Tenant `refresher-acme-aws`'s credential Secret was `scoutflo-ecr-refresher-acme-aws`, the
    name of acme's static AWS keys in the same namespace: its create failed on them, or, with
    adoptCredentialSecret, imported them into its own stack (and its destroy deleted them)."""
    keys = manifests.static_credentials_name(manifests.refresher_name("acme"))
    assert keys != naming.registry_secret_name("refresher-acme-aws")
    for tenant in ("acme", "refresher-acme-aws", "t" * 14, "x" * 40):
        name = manifests.static_credentials_name(manifests.refresher_name(tenant))
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) and len(name) <= 253, name
        # A credential Secret's name is a prefix and a DNS label: it never holds a dot.
        assert "." in name and "." not in naming.registry_secret_name(tenant)


def test_the_static_refresher_reads_the_keys_secret_it_is_given() -> None:
    rec = run_main(STATIC)
    (keys,) = [r for r in of_type(rec, "kubernetes:core/v1:Secret") if r.name == "registry-access-aws-keys"]
    (cron,) = of_type(rec, CRON)
    container = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    refs = [e["secretRef"]["name"] for c in container for e in c.get("envFrom", [])]
    init = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("initContainers", [])
    refs += [e["secretRef"]["name"] for c in init for e in c.get("envFrom", [])]
    assert refs == [keys.inputs["metadata"]["name"]] == ["scoutflo-ecr-refresher-acme.aws"]
