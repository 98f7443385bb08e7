"""Rendered Kubernetes objects against real schemas: Kubernetes 1.35 and Argo CD's Application CRD."""

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from automation import render
from scoutflo.cluster import manifests
from tests.conftest import run_main

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "argocd-application-v1alpha1.json").read_text())
K8S_VERSION = "1.35"


def closed(schema: Any) -> Any:
    """Kubernetes prunes unknown fields silently; close every declared object to catch typos."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [closed(v) for v in schema]
    return schema


STRICT = closed(SCHEMA)


def validate_application(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, STRICT)


def objects(recording: render.Recording) -> list[dict[str, Any]]:
    return render.k8s_objects(recording)


@pytest.mark.parametrize("mode", ["irsa", "static"])
def test_core_objects_validate_against_kubernetes(mode: str) -> None:
    overrides = {"scoutflo:tokenRefreshMode": mode}
    if mode == "static":
        overrides |= {"scoutflo:refresherAccessKeyId": "id", "scoutflo:refresherSecretAccessKey": "key"}
    recording = run_main(overrides)
    core = [o for o in objects(recording) if not o["apiVersion"].startswith("argoproj.io")]
    assert {o["kind"] for o in core} >= {"Secret", "ServiceAccount", "Role", "RoleBinding", "CronJob", "Job"}
    for obj in core:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_applications_validate_against_the_crd(dev_recording: render.Recording) -> None:
    apps = [o for o in objects(dev_recording) if o["kind"] == "Application"]
    assert len(apps) == 2
    for app in apps:
        validate_application(app)


def test_strict_crd_schema_catches_a_misspelt_field() -> None:
    doc = manifests.application(
        name="x",
        argocd_namespace="argocd",
        project="default",
        repo_url="1.dkr.ecr.eu-west-1.amazonaws.com",
        target_revision="*",
        destination_namespace="x",
        values={},
        revision_history_limit=10,
    )
    validate_application(doc)
    bad = copy.deepcopy(doc)
    bad["spec"]["syncPolicy"]["automated"]["selfheal"] = True
    with pytest.raises(jsonschema.ValidationError):
        validate_application(bad)


def test_application_tracks_the_ecr_chart(dev_recording: render.Recording) -> None:
    apps = {o["metadata"]["name"]: o for o in objects(dev_recording) if o["kind"] == "Application"}
    spec = apps["storefront"]["spec"]
    assert spec["source"] == {
        "repoURL": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scoutflo",
        "chart": "storefront",
        "targetRevision": "*",
        "helm": {"releaseName": "storefront", "valuesObject": {"replicaCount": 3}},
    }
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    assert spec["revisionHistoryLimit"] == 10
    # The app's own name: two apps of the webapp chart do not share a namespace.
    assert spec["destination"]["namespace"] == "storefront"
    assert "finalizers" not in apps["storefront"]["metadata"]
    # An exact targetRevision pins the version (the rollback path).
    assert apps["admin"]["spec"]["source"]["targetRevision"] == "0.1.0"
    assert apps["admin"]["spec"]["destination"]["namespace"] == "admin"


def test_registry_secret_is_a_credential_template_without_a_password(dev_recording: render.Recording) -> None:
    (secret,) = [o for o in objects(dev_recording) if o["kind"] == "Secret"]
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repo-creds"
    # Pulumi owns the identity, never the token: no password key is registered at all.
    assert set(secret["stringData"]) == {"type", "name", "url", "enableOCI", "username"}
    doc = manifests.registry_secret(name="s", namespace="argocd", url="h.example/scoutflo")
    assert doc["stringData"] == {
        "type": "helm",
        "name": "s",
        "url": "h.example/scoutflo",
        "enableOCI": "true",
        "username": "AWS",
    }


def test_refresher_is_least_privilege_and_hardened(dev_recording: render.Recording) -> None:
    objs = {o["kind"]: o for o in objects(dev_recording)}
    assert objs["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["scoutflo-ecr-acme"], "verbs": ["get", "patch"]}
    ]
    assert objs["RoleBinding"]["subjects"][0]["name"] == objs["ServiceAccount"]["metadata"]["name"]
    assert objs["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/scoutflo-acme-ecr-reader"
    )
    cron = objs["CronJob"]["spec"]
    assert cron["schedule"] == "0 */6 * * *"
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] == 1 and cron["failedJobsHistoryLimit"] == 3
    job = cron["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 4
    pod = job["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["limits"]
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    # The token goes through a file on a memory volume, never through argv or a log line.
    assert "--patch-file=/work/patch.json" in pod["containers"][0]["command"]
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"


def test_eso_mode_merges_the_password_into_the_pulumi_owned_secret() -> None:
    recording = run_main({"scoutflo:tokenRefreshMode": "eso"})
    objs = {o["kind"]: o for o in objects(recording)}
    assert "CronJob" not in objs and "Job" not in objs and "Role" not in objs
    assert set(objs["Secret"]["stringData"]) == {"type", "name", "url", "enableOCI", "username"}
    gen = objs["ECRAuthorizationToken"]
    assert gen["apiVersion"] == "generators.external-secrets.io/v1alpha1"
    assert gen["spec"] == {
        "region": "eu-west-1",
        "auth": {"jwt": {"serviceAccountRef": {"name": "scoutflo-ecr-refresher-acme"}}},
    }
    es = objs["ExternalSecret"]["spec"]
    assert es["refreshInterval"] == "6h"
    assert es["dataFrom"][0]["sourceRef"]["generatorRef"]["kind"] == "ECRAuthorizationToken"
    # Merge: ESO writes into the existing Secret and never owns, creates or deletes it.
    assert es["target"] == {
        "name": "scoutflo-ecr-acme",
        "creationPolicy": "Merge",
        "deletionPolicy": "Retain",
        "template": {"engineVersion": "v2", "data": {"password": "{{ .password }}"}},
    }
    annotations = objs["ExternalSecret"]["metadata"]["annotations"]
    assert len(annotations[manifests.CREDENTIAL_IDENTITY_ANNOTATION]) == 10
    for kind, schema in (
        ("ExternalSecret", "eso-externalsecret-v1"),
        ("ECRAuthorizationToken", "eso-ecrauthorizationtoken-v1alpha1"),
    ):
        crd = closed(json.loads((Path(__file__).parent / "schemas" / f"{schema}.json").read_text()))
        jsonschema.validate(objs[kind], crd)
    bad = copy.deepcopy(objs["ExternalSecret"])
    bad["spec"]["target"]["creationPolicy"] = "Adopt"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            bad, closed(json.loads((Path(__file__).parent / "schemas" / "eso-externalsecret-v1.json").read_text()))
        )
    kubernetes_validate.validate(objs["ServiceAccount"], K8S_VERSION, strict=True)
    kubernetes_validate.validate(objs["Secret"], K8S_VERSION, strict=True)
