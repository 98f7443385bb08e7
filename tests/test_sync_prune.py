"""Data survives chart upgrades and downgrades: a chart version that stops rendering a
PersistentVolumeClaim must not make Argo CD delete it, for catalog entries marked stateful.

The chart is rendered twice with the real helm (a version with the claim, the next without), and
what Argo CD does with the claim is decided by a port of its rules, applied to the Application
the real program renders from the catalog entry."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts_catalog import BUILTIN_DIR
from tests.conftest import of_type, run_main

PVC = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .Release.Name }}-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


def option(options: list[str], key: str) -> str | None:
    """gitops-engine resourceutil GetAnnotationOptionValue / SyncOptions.GetOptionValue."""
    for item in options:
        name, _, value = item.partition("=")
        if name.strip() == key:
            return value.strip()
    return None


def argocd_prune_outcome(
    obj: dict[str, Any], sync_policy: dict[str, Any], *, automated: bool, argocd: tuple[int, int] = (3, 4)
) -> str:
    """What a sync does with a live object the target revision no longer renders.

    Port of argoproj/argo-cd: an automated sync runs with `Prune: automated.prune` and the
    Application's syncOptions (controller/appcontroller.go autoSync); a manual sync here is one
    with the Prune box ticked. gitops-engine/pkg/sync/sync_context.go pruneObject: not `prune` ->
    "ignored (requires pruning)"; isPruningDisabled (the object's `Prune=` sync-option annotation,
    else the Application's default from controller/sync.go WithDefaultPruneOption) -> "ignored (no
    prune)"; objRequiresPruneConfirmation (`Prune=confirm`) -> waits for approval.

    `argocd` is the (major, minor) version: the Application's default is read from 3.4.0 only
    (commit b7e2027; v3.3.14 controller/sync.go passes no WithDefaultPruneOption, and its
    gitops-engine/pkg/sync/sync_context.go:1273 reads `Prune=false` from the object's annotation
    alone, as v2.14.21's gitops-engine does); automated syncs take `automated.prune` on every
    version (v2.14.21 controller/appcontroller.go:2108, v3.4.0 :2235).
    """
    prune = bool(sync_policy["automated"]["prune"]) if automated else True
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = option(annotations.get(SYNC_OPTIONS, "").split(","), "Prune")
    if value is None and argocd >= (3, 4):
        value = option(sync_policy.get("syncOptions", []), "Prune")
    if not prune:
        return "ignored (requires pruning)"
    if value == "false":
        return "ignored (no prune)"
    if value == "confirm":
        return "waits for confirmation"
    return "pruned"


def helm_template(chart: Path, home: Path) -> list[dict[str, Any]]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HELM_CONFIG_HOME": str(home / "c")}
    result = subprocess.run(
        ["helm", "template", "shop", str(chart)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog with two entries of one chart that renders a claim: one stateful, one not."""
    root = tmp_path_factory.mktemp("catalog")
    chart = root / "templates" / "store"
    shutil.copytree(BUILTIN_DIR / "templates" / "webapp", chart)
    (chart / "templates" / "pvc.yaml").write_text(PVC)
    source = {"repo": "template:store"}
    (root / "store.yaml").write_text(yaml.safe_dump({"name": "store", "source": source, "sync": {"prune": False}}))
    (root / "cache.yaml").write_text(yaml.safe_dump({"name": "cache", "source": source}))
    return root


def application(catalog: Path, chart: str) -> dict[str, Any]:
    recording = run_main({"scoutflo:catalogPath": str(catalog), "scoutflo:apps": [{"name": "shop", "chart": chart}]})
    (app,) = of_type(recording, "kubernetes:argoproj.io/v1alpha1:Application")
    return dict(app.inputs["spec"])


def dropped_between_versions(catalog: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Objects chart version 1 renders and version 2 (the claim's template removed) does not:
    on an upgrade, the live objects Argo CD would prune. A downgrade from 2 to 1 drops nothing
    here; from a version that adds a claim back to one without, it is the same case."""
    chart = catalog / "templates" / "store"
    v1 = helm_template(chart, tmp_path)
    v2_chart = tmp_path / "store-v2"
    shutil.copytree(chart, v2_chart)
    (v2_chart / "templates" / "pvc.yaml").unlink()
    v2 = helm_template(v2_chart, tmp_path)
    gone = {key(o) for o in v1} - {key(o) for o in v2}
    return [o for o in v1 if key(o) in gone]


def test_a_stateful_entry_keeps_the_claim_a_new_chart_version_drops(catalog: Path, tmp_path: Path) -> None:
    dropped = dropped_between_versions(catalog, tmp_path)
    assert [key(o) for o in dropped] == [("PersistentVolumeClaim", "shop-data")]
    spec = application(catalog, "store")
    (claim,) = dropped
    # Automated syncs do not prune at all; a person's sync with "prune" ticked skips it too.
    assert argocd_prune_outcome(claim, spec["syncPolicy"], automated=True) == "ignored (requires pruning)"
    assert argocd_prune_outcome(claim, spec["syncPolicy"], automated=False) == "ignored (no prune)"
    assert spec["syncPolicy"]["automated"] == {"prune": False, "selfHeal": True}
    assert "Prune=false" in spec["syncPolicy"]["syncOptions"]


def test_a_stateless_entry_still_prunes(catalog: Path, tmp_path: Path) -> None:
    """The port can say "pruned": without the catalog setting the claim would go."""
    (claim,) = dropped_between_versions(catalog, tmp_path)
    spec = application(catalog, "cache")
    assert argocd_prune_outcome(claim, spec["syncPolicy"], automated=True) == "pruned"


def test_confirm_waits_for_a_person() -> None:
    from scoutflo.cluster.manifests import sync_policy

    claim = {"kind": "PersistentVolumeClaim", "metadata": {"name": "x"}}
    # Automated syncs leave it (OutOfSync, "requires pruning"); a person's sync with Prune ticked
    # waits for that person's confirmation.
    assert argocd_prune_outcome(claim, sync_policy("confirm"), automated=True) == "ignored (requires pruning)"
    assert argocd_prune_outcome(claim, sync_policy("confirm"), automated=False) == "waits for confirmation"
    assert sync_policy("confirm")["automated"]["prune"] is False
    # An object's own annotation wins over the Application's default (sync_context.go).
    kept = {**claim, "metadata": {"name": "x", "annotations": {SYNC_OPTIONS: "Prune=false"}}}
    assert argocd_prune_outcome(kept, sync_policy("true"), automated=True) == "ignored (no prune)"


@pytest.mark.parametrize("argocd", [(2, 14), (3, 0), (3, 3)])
def test_before_argocd_3_4_a_stateful_entry_is_safe_from_automated_syncs_only(
    catalog: Path, tmp_path: Path, argocd: tuple[int, int]
) -> None:
    """What docs/design.md promises for Argo CD < 3.4: automated syncs never prune a stateful entry's
    objects (automated.prune is false), but a person's sync with Prune ticked does. `confirm`
    is not read there: its objects are as safe as `false`'s (it once left automated.prune on,
    and every automated sync pruned without asking)."""
    from scoutflo.cluster.manifests import sync_policy

    (claim,) = dropped_between_versions(catalog, tmp_path)
    spec = application(catalog, "store")
    assert (
        argocd_prune_outcome(claim, spec["syncPolicy"], automated=True, argocd=argocd) == "ignored (requires pruning)"
    )
    assert argocd_prune_outcome(claim, spec["syncPolicy"], automated=False, argocd=argocd) == "pruned"
    confirm = sync_policy("confirm")
    assert argocd_prune_outcome(claim, confirm, automated=True, argocd=argocd) == "ignored (requires pruning)"
    assert argocd_prune_outcome(claim, confirm, automated=False, argocd=argocd) == "pruned"
    # The object's own annotation is read by every version.
    kept = {**claim, "metadata": {**claim["metadata"], "annotations": {SYNC_OPTIONS: "Prune=false"}}}
    assert argocd_prune_outcome(kept, spec["syncPolicy"], automated=False, argocd=argocd) == "ignored (no prune)"
