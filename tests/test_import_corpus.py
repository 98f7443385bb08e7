"""Catalog charts imported end to end: the committed corpus (tests/data/charts, packaged by
tests/corpus.py with the real helm) with the structure of kube-prometheus-stack (binary
files/crds.bz2, a directory subchart, a vendored .tgz dependency), cert-manager (`v`-prefixed
versions) and a Bitnami chart (a vendored `common` library, the substituted-image check the
catalog's values answer), two versions of the last two; served on loopback as a Helm repository
and as an OCI registry (docker-registry), imported in both modes, then `helm lint`, `helm
template` with the catalog's default values, and the app repo's own `ci/release` into a registry.
Nothing outside the repository is read, so CI runs all of it."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts_catalog import load_catalog
from scoutflo.charts.fetch import ChartFetcher
from scoutflo.charts.http import Http
from scoutflo.charts.plan import application_values, plan_import
from tests import corpus
from tests.loopback import oci_registry, static_http

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "scoutflo" / "scaffold" / "ci"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        **extra,
    }


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every version of the corpus's catalog charts as a Helm repository and in an OCI registry;
    the registry also receives what ci/release pushes."""
    work = tmp_path_factory.mktemp("corpus")
    packages = corpus.package_all(work / "src", work / "repo")
    corpus.helm("repo", "index", str(work / "repo"))
    home = env_for(work / "home")
    with oci_registry(work / "oci") as host, static_http(work / "repo") as url:
        for path in packages.values():
            run(["helm", "push", "--plain-http", str(path), f"oci://{host}/charts"], work, home)
        yield {"http": url, "oci": f"oci://{host}/charts", "host": host, "packages": packages}


def write_tree(files: Mapping[str, str | bytes], root: Path) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
    shutil.copytree(CI, root / "ci")


def import_and_check(
    name: str, repo: str, mode: str, registry_host: str, tmp_path: Path, plain: bool, version: str = ""
) -> tuple[dict[str, str | bytes], str, Path]:
    """Fetch with the catalog's range (or an app's pinned version), plan, lint, template with the
    catalog's values, ci/release."""
    entry = load_catalog()[name]
    return import_chart(name, version or entry.source.version, entry.values, repo, mode, registry_host, tmp_path, plain)


def import_chart(
    name: str,
    constraint: str,
    catalog_values: Mapping[str, Any],
    repo: str,
    mode: str,
    registry_host: str,
    tmp_path: Path,
    plain: bool,
) -> tuple[dict[str, str | bytes], str, Path]:
    """One chart through the import as the program runs it: fetch (the real client, from a
    loopback source), plan, the app repo's `ci/dependencies`, `helm lint`, `helm template` with
    the given values, and the app repo's own `ci/release` into a registry."""
    fetcher = ChartFetcher(tmp_path / "cache", http=Http(attempts=2, sleep=lambda _s: None))
    fetched = fetcher.fetch(repo, name, constraint, plain_http=plain)
    plan = plan_import(app="app", mode=mode, fetched=fetched, constraint=constraint, description="d")
    app = tmp_path / "app"
    write_tree(plan.files, app)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(application_values(mode, name, catalog_values)))
    env = env_for(tmp_path / "home", HELM_PLAIN_HTTP="1" if plain else "")
    run([str(app / "ci" / "dependencies")], app, env)
    run(["helm", "lint", "chart", "-f", str(values)], app, env)
    rendered = run(["helm", "template", "app", "chart", "-f", str(values)], app, env)
    release_env = {
        **env,
        "CHART_REGISTRY": f"oci://{registry_host}/released/{namespace(tmp_path)}",
        "HELM_PLAIN_HTTP": "1",
    }
    # ci/release releases a commit and tags it on origin: the merged import as main, a bare origin.
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], [*ident, "commit", "-qm", "import"]):
        run(["git", *cmd], app, env)
    run(["git", "remote", "add", "origin", str(origin)], app, env)
    pushed = run([str(app / "ci" / "release")], app, release_env)
    assert pushed.startswith("pushed app 0.1.0 sha256:"), pushed
    return plan.files, rendered, app


def namespace(tmp_path: Path) -> str:
    """A registry namespace per test (OCI repository names hold no underscores)."""
    return tmp_path.name.lower().replace("_", "-")


def pulled_file(registry_host: str, tmp_path: Path, member: str) -> bytes:
    """One file of the chart ci/release pushed, as the registry holds it."""
    env = env_for(tmp_path / "home")
    out = tmp_path / "pulled"
    out.mkdir()
    run(
        ["helm", "pull", "--plain-http", f"oci://{registry_host}/released/{namespace(tmp_path)}/app", "-d", str(out)],
        tmp_path,
        env,
    )
    with tarfile.open(next(out.glob("*.tgz"))) as tar:
        handle = tar.extractfile(f"app/{member}")
        assert handle is not None
        return handle.read()


@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
@pytest.mark.parametrize("source", ["http", "oci"])
def test_kube_prometheus_stack_with_its_binary_crds(
    served: dict[str, Any], source: str, mode: str, tmp_path: Path
) -> None:
    files, rendered, _app = import_and_check(
        "kube-prometheus-stack", served[source], mode, served["host"], tmp_path, plain=source == "oci"
    )
    crds = (corpus.source("kube-prometheus-stack", "77.0.0") / "charts/crds/files/crds.bz2").read_bytes()
    assert crds.startswith(b"BZh"), "the committed binary is bzip2, as upstream's files/crds.bz2"
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    upgrade = next(d for d in docs if d["metadata"]["name"] == "app-crds-upgrade")
    assert base64.b64decode(upgrade["binaryData"]["crds.bz2"]) == crds, "the binary reaches the cluster intact"
    assert any(d["kind"] == "Deployment" and "kube-state-metrics" in d["metadata"]["name"] for d in docs)
    prometheus = next(d for d in docs if d["metadata"]["name"] == "app-prometheus")
    assert prometheus["data"]["grafana"] == "false", "the catalog's default values apply"
    if mode == "vendor":
        assert files["chart/charts/crds/files/crds.bz2"] == crds, "planned byte for byte"
        assert "chart/charts/kube-state-metrics/Chart.yaml" in files, "the vendored .tgz is unpacked"
        assert pulled_file(served["host"], tmp_path, "charts/crds/files/crds.bz2") == crds, "released intact"
    else:
        assert yaml.safe_load(files["chart/values.yaml"]) == {"kube-prometheus-stack": {}}


@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
@pytest.mark.parametrize("source", ["http", "oci"])
def test_cert_manager_with_a_v_prefixed_version(served: dict[str, Any], source: str, mode: str, tmp_path: Path) -> None:
    files, rendered, app = import_and_check(
        "cert-manager", served[source], mode, served["host"], tmp_path, plain=source == "oci"
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    image = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":v1.17.3"), "the newest in the catalog's range; appVersion kept as upstream wrote it"
    assert any(d["kind"] == "CustomResourceDefinition" for d in docs), "crds.enabled from the catalog's values"
    chart = yaml.safe_load((app / "chart" / "Chart.yaml").read_text())
    if mode == "umbrella":
        assert chart["dependencies"][0]["version"] == "v1.17.3"
    else:
        assert chart["annotations"]["scoutflo.io/upstream"].endswith("/cert-manager:v1.17.3")
    assert isinstance(files["chart/Chart.yaml"], str)


@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
@pytest.mark.parametrize("source", ["http", "oci"])
def test_a_bitnami_chart_with_its_vendored_common_library(
    served: dict[str, Any], source: str, mode: str, tmp_path: Path
) -> None:
    """The catalog's Bitnami entries point the image at bitnamilegacy, which Bitnami's common
    library refuses as a substituted image unless global.security.allowInsecureImages: the
    catalog's values must reach the chart in both modes. In an umbrella they sit under `redis:`,
    `global` included, and Helm keeps a subchart section's own `global`, merging the parent's into
    it (helm/helm pkg/chart/common/util/coalesce.go:122-125 and 140-190, coalesceDeps and
    coalesceGlobals, at e9b85e4)."""
    files, rendered, _app = import_and_check("redis", served[source], mode, served["host"], tmp_path, source == "oci")
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    stateful = next(d for d in docs if d["kind"] == "StatefulSet")
    image = stateful["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "docker.io/bitnamilegacy/redis:7.4.3-debian-12-r1", "21.0.1, the newest in range"
    assert stateful["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "redis-data"
    if mode == "vendor":
        assert "chart/charts/common/templates/_errors.tpl" in files, "the vendored library is unpacked"


def test_the_bitnami_check_refuses_the_legacy_image_without_the_catalog_values(
    served: dict[str, Any], tmp_path: Path
) -> None:
    """What the previous test relies on: without allowInsecureImages the same chart fails."""
    archive = served["packages"][("redis", "21.0.1")]
    result = subprocess.run(
        ["helm", "template", "x", str(archive), "--set", "image.repository=bitnamilegacy/redis"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for(tmp_path),
    )
    assert result.returncode != 0 and "substituted" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "older", "image"),
    [
        ("cert-manager", "v1.17.2", "quay.io/jetstack/cert-manager-controller:v1.17.2"),
        ("redis", "21.0.0", "docker.io/bitnamilegacy/redis:7.4.2-debian-12-r0"),
    ],
)
def test_the_previous_version_imports_when_an_app_pins_it(
    served: dict[str, Any], name: str, older: str, image: str, tmp_path: Path
) -> None:
    """Each chart with two consecutive versions in the corpus: an app pinned to the older one gets
    it, not the newest its catalog range admits."""
    files, rendered, _app = import_and_check(name, served["http"], "vendor", served["host"], tmp_path, False, older)
    chart = files["chart/Chart.yaml"]
    assert isinstance(chart, str)
    assert yaml.safe_load(chart)["annotations"]["scoutflo.io/upstream"].endswith(f"/{name}:{older}")
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    workload = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == image
