"""A corpus of catalog charts for the import tests, built at test time; nothing fetched is committed.

`synthetic(root)` writes small charts that reproduce the structure of the real ones the catalog
offers, as found in their sources:
- kube-prometheus-stack (prometheus-community/helm-charts charts/kube-prometheus-stack): a
  directory subchart `charts/crds/` whose `files/crds.bz2` is bzip2 (made here with Python's bz2)
  and read by `templates/upgrade/crds.yaml` as `{{ .Files.Get "files/crds.bz2" | b64enc }}`, plus
  dependencies from a Helm repository vendored as `charts/<name>-<version>.tgz` by `helm package`;
- cert-manager (cert-manager/cert-manager deploy/charts/cert-manager): `version: v0.0.0` and
  `appVersion: v0.0.0` set to the release's `v`-prefixed version by its release tooling
  (make/manifests.mk:119), CRDs behind `crds.enabled`.

`from_mirror(root)` assembles the real charts from /work/.mirror snapshots when present (a
developer machine after `fetch`), so the same tests also run on upstream's own files.
"""

from __future__ import annotations

import bz2
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

MIRROR = Path("/work/.mirror")
KPS_VERSION = "77.0.0"
CERT_MANAGER_VERSION = "v1.17.2"

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, plural: servicemonitors}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def helm(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["helm", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"helm {args}: {result.stdout}\n{result.stderr}")
    return result.stdout


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())


def crds_bz2() -> bytes:
    return bz2.compress(CRD.encode() * 20, 9)


def synthetic(root: Path) -> dict[str, Path]:
    """Chart directories by catalog name."""
    kps, ksm, cm = root / "kube-prometheus-stack", root / "kube-state-metrics", root / "cert-manager"
    _write(
        ksm,
        {
            "Chart.yaml": "apiVersion: v2\nname: kube-state-metrics\nversion: 6.1.0\nappVersion: 2.16.0\n",
            "values.yaml": "replicas: 1\n",
            "templates/deployment.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-kube-state-metrics\n"
                "spec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: ksm}}\n"
                "  template:\n    metadata: {labels: {app: ksm}}\n    spec:\n      containers:\n"
                "        - name: ksm\n"
                "          image: registry.k8s.io/kube-state-metrics/kube-state-metrics:v{{ .Chart.AppVersion }}\n"
            ),
        },
    )
    _write(
        kps,
        {
            "Chart.yaml": (
                "apiVersion: v2\ndescription: kube-prometheus-stack collects Kubernetes manifests\n"
                "type: application\nname: kube-prometheus-stack\n"
                f"version: {KPS_VERSION}\n# renovate: github=prometheus-operator/prometheus-operator\n"
                'appVersion: v0.85.0\nkubeVersion: ">=1.25.0-0"\nannotations:\n'
                '  "artifacthub.io/license": Apache-2.0\n  "artifacthub.io/links": |\n'
                "    - name: Chart Source\n      url: https://github.com/prometheus-community/helm-charts\n"
                'dependencies:\n  - name: crds\n    version: "0.0.0"\n    condition: crds.enabled\n'
                '  - name: kube-state-metrics\n    version: "6.1.0"\n'
                "    repository: https://prometheus-community.github.io/helm-charts\n"
                "    condition: kubeStateMetrics.enabled\n"
            ),
            "values.yaml": (
                "crds:\n  enabled: true\n  upgradeJob:\n    enabled: true\nkubeStateMetrics:\n  enabled: true\n"
                "grafana:\n  enabled: true\n"
            ),
            "templates/prometheus.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-prometheus\n"
                "data:\n  grafana: {{ .Values.grafana.enabled | quote }}\n"
            ),
            "charts/crds/Chart.yaml": "apiVersion: v2\nname: crds\nversion: 0.0.0\n",
            "charts/crds/values.yaml": "upgradeJob:\n  enabled: false\n",
            "charts/crds/crds/crd-servicemonitors.yaml": CRD,
            "charts/crds/files/crds.bz2": crds_bz2(),
            "charts/crds/templates/upgrade/crds.yaml": (
                "{{- if .Values.upgradeJob.enabled }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                "  name: {{ .Release.Name }}-crds-upgrade\nbinaryData:\n"
                '  crds.bz2: {{ .Files.Get "files/crds.bz2" | b64enc }}\n{{- end }}\n'
            ),
        },
    )
    helm("package", str(ksm), "-d", str(kps / "charts"))
    _write(
        cm,
        {
            "Chart.yaml": (
                "apiVersion: v2\n\nname: cert-manager\ndescription: A Helm chart for cert-manager\n"
                'kubeVersion: ">= 1.22.0-0"\n\n'
                "# The version and appVersion fields are set automatically by the release tool\n"
                f"version: {CERT_MANAGER_VERSION}\nappVersion: {CERT_MANAGER_VERSION}\n"
            ),
            "values.yaml": "crds:\n  enabled: false\nimage:\n  repository: quay.io/jetstack/cert-manager-controller\n",
            "templates/deployment.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n"
                "  selector: {matchLabels: {app: cert-manager}}\n"
                "  template:\n    metadata: {labels: {app: cert-manager}}\n"
                "    spec:\n      containers:\n        - name: controller\n"
                "          image: {{ .Values.image.repository }}:{{ .Chart.AppVersion }}\n"
            ),
            "templates/crds.yaml": "{{- if .Values.crds.enabled }}\n"
            + CRD.replace("servicemonitors.monitoring.coreos.com", "certificates.cert-manager.io")
            + "{{- end }}\n",
        },
    )
    return {"kube-prometheus-stack": kps, "cert-manager": cm}


def package(charts: dict[str, Path], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    packaged = {}
    for name, chart in charts.items():
        before = set(out.glob("*.tgz"))
        helm("package", str(chart), "-d", str(out))
        (new,) = set(out.glob("*.tgz")) - before
        packaged[name] = new
    return packaged


def _export(git_dir: Path, path: str, dest: Path) -> Path:
    """`git archive` of one directory of a bare mirror, unpacked into dest (fetched code stays in tmp)."""
    data = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", "--format=tar", "HEAD", path],
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / path


def mirror_available() -> bool:
    return all(
        (MIRROR / name / "repo").is_dir()
        for name in ("prometheus-community+helm-charts", "grafana-community+helm-charts", "cert-manager+cert-manager")
    )


def from_mirror(root: Path) -> dict[str, Path]:
    """The real kube-prometheus-stack (with its dependencies vendored from the same snapshots, as
    `helm dependency build` would) and cert-manager (version templated as its release does)."""
    prom = MIRROR / "prometheus-community+helm-charts" / "repo"
    graf = MIRROR / "grafana-community+helm-charts" / "repo"
    cmgr = MIRROR / "cert-manager+cert-manager" / "repo"
    kps = _export(prom, "charts/kube-prometheus-stack", root / "prom")
    for dep in ("kube-state-metrics", "prometheus-node-exporter", "prometheus-windows-exporter"):
        helm("package", str(_export(prom, f"charts/{dep}", root / "prom")), "-d", str(kps / "charts"))
    helm("package", str(_export(graf, "charts/grafana", root / "graf")), "-d", str(kps / "charts"))
    cm = _export(cmgr, "deploy/charts/cert-manager", root / "cm")
    chart_yaml = cm / "Chart.yaml"
    text = chart_yaml.read_text()
    text = re.sub(r"^version: .*$", f"version: {CERT_MANAGER_VERSION}", text, flags=re.M)
    text = re.sub(r"^appVersion: .*$", f"appVersion: {CERT_MANAGER_VERSION}", text, flags=re.M)
    chart_yaml.write_text(text)
    # Helm packages what .helmignore lets through; the chart's own README template is not needed.
    shutil.rmtree(cm / "tests", ignore_errors=True)
    return {"kube-prometheus-stack": kps, "cert-manager": cm}
