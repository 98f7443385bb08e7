"""The Application's sync options and destination, from the catalog and the stack config, rendered by
the real program and validated against Argo CD's Application CRD (closed, so a misspelt field fails)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts_catalog import BUILTIN_DIR, load_catalog
from scoutflo.cluster import manifests
from scoutflo.config import ConfigError, parse_config
from tests.conftest import of_type, run_main
from tests.test_config import BASE
from tests.test_manifests import validate_application

APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
EKS_ARN = "arn:aws:eks:eu-west-1:123456789012:cluster/prod"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template chart offered twice: once with serverSideApply (as kube-prometheus-stack is), once
    without; the template keeps the program off the network."""
    root = tmp_path_factory.mktemp("catalog")
    shutil.copytree(BUILTIN_DIR / "templates" / "webapp", root / "templates" / "big")
    source = {"repo": "template:big"}
    sync = {"prune": False, "serverSideApply": True}
    (root / "crds.yaml").write_text(yaml.safe_dump({"name": "crds", "source": source, "sync": sync}))
    (root / "plain.yaml").write_text(yaml.safe_dump({"name": "plain", "source": source}))
    return root


def applications(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    recording = run_main(overrides)
    docs = {}
    for app in of_type(recording, APPLICATION):
        doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **app.inputs}
        validate_application(doc)
        docs[doc["metadata"]["name"]] = doc
    return docs


def test_kube_prometheus_stack_applies_server_side_and_no_other_builtin_does() -> None:
    catalog = load_catalog()
    assert catalog["kube-prometheus-stack"].sync.server_side_apply is True
    assert [name for name, entry in catalog.items() if entry.sync.server_side_apply] == ["kube-prometheus-stack"]
    entry = catalog["kube-prometheus-stack"]
    doc = manifests.application(
        name="monitoring",
        argocd_namespace="argocd",
        project="default",
        repo_url="123456789012.dkr.ecr.eu-west-1.amazonaws.com/scoutflo",
        target_revision="*",
        destination_namespace="monitoring",
        values=entry.values,
        revision_history_limit=10,
        prune=entry.sync.prune,
        server_side_apply=entry.sync.server_side_apply,
    )
    validate_application(doc)
    assert doc["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true", "Prune=false", "ServerSideApply=true"]


def test_the_program_puts_server_side_apply_only_on_the_entry_that_asks(catalog: Path) -> None:
    apps = applications(
        {
            "scoutflo:catalogPath": str(catalog),
            "scoutflo:apps": [{"name": "metrics", "chart": "crds"}, {"name": "shop", "chart": "plain"}],
        }
    )
    assert apps["metrics"]["spec"]["syncPolicy"]["syncOptions"] == [
        "CreateNamespace=true",
        "Prune=false",
        "ServerSideApply=true",
    ]
    # Unchanged for every other chart: a second `up` with no input change is a no-op.
    assert apps["shop"]["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]


def test_default_destination_is_unchanged(dev_recording: Any) -> None:
    """The stacks from before the key: the Application's destination is byte-for-byte the old one."""
    for app in of_type(dev_recording, APPLICATION):
        name = app.inputs["metadata"]["name"]
        assert app.inputs["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": name}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EKS_ARN, {"server": EKS_ARN}),
        ("https://10.0.0.1:6443", {"server": "https://10.0.0.1:6443"}),
        ("in-cluster", {"name": "in-cluster"}),
        ("local-cluster", {"name": "local-cluster"}),
    ],
)
def test_destination_is_a_server_or_a_registered_name(value: str, expected: dict[str, str]) -> None:
    apps = applications({"scoutflo:argocdDestination": value})
    assert apps
    for name, doc in apps.items():
        assert doc["spec"]["destination"] == {**expected, "namespace": name}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is not a cluster name"),
        ("http://10.0.0.1", "must be an https:// URL"),
        ("https://", "is not a usable https:// URL"),
        ("https://user:pw@10.0.0.1", "no user or password"),
        ("https://10.0.0.1:99999", "has an invalid port"),
        ("arn:aws:iam::123456789012:role/x", "is not an EKS cluster ARN"),
        ("arn:aws:eks:eu-west-1:1234:cluster/prod", "is not an EKS cluster ARN"),
        ("my cluster", "is not a cluster name"),
        ("../x", "is not a cluster name"),
        (["in-cluster"], "must be a string"),
    ],
)
def test_a_bad_destination_is_a_config_error_naming_the_key(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "scoutflo:argocdDestination": value}, load_catalog())
    assert "'scoutflo:argocdDestination'" in str(err.value)
    assert problem in str(err.value)


def test_a_good_destination_is_kept() -> None:
    catalog = load_catalog()
    assert parse_config(BASE, catalog).argocd_destination == "https://kubernetes.default.svc"
    assert parse_config({**BASE, "scoutflo:argocdDestination": EKS_ARN}, catalog).argocd_destination == EKS_ARN
