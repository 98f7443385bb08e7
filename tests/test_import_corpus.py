"""Catalog charts imported end to end: a corpus built at test time (tests/corpus.py) with the
structure of kube-prometheus-stack (binary files/crds.bz2, a directory subchart, a vendored .tgz
dependency) and cert-manager (`v`-prefixed versions), served on loopback as a Helm repository
and as an OCI registry (docker-registry), imported in both modes, then `helm lint`, `helm
template` with the catalog's default values, and the app repo's own `ci/release` into a registry.
The same runs on the real upstream charts when their snapshots are in /work/.mirror."""

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
    """The synthetic corpus as a Helm repository and in an OCI registry; the registry also
    receives what ci/release pushes."""
    work = tmp_path_factory.mktemp("corpus")
    packages = corpus.package(corpus.synthetic(work / "src"), work / "repo")
    corpus.helm("repo", "index", str(work / "repo"))
    home = env_for(work / "home")
    with oci_registry(work / "oci") as host, static_http(work / "repo") as url:
        for path in packages.values():
            run(["helm", "push", "--plain-http", str(path), f"oci://{host}/charts"], work, home)
        yield {"http": url, "oci": f"oci://{host}/charts", "host": host, "sources": work / "src"}


def write_tree(files: Mapping[str, str | bytes], root: Path) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
    shutil.copytree(CI, root / "ci")


def import_and_check(
    name: str, repo: str, mode: str, registry_host: str, tmp_path: Path, plain: bool
) -> tuple[dict[str, str | bytes], str, Path]:
    """Fetch with the catalog's range, plan, lint, template with the catalog's values, ci/release."""
    entry = load_catalog()[name]
    fetcher = ChartFetcher(tmp_path / "cache", http=Http(attempts=2, sleep=lambda _s: None))
    fetched = fetcher.fetch(repo, name, entry.source.version, plain_http=plain)
    plan = plan_import(app="app", mode=mode, fetched=fetched, constraint=entry.source.version, description="d")
    app = tmp_path / "app"
    write_tree(plan.files, app)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(application_values(mode, name, entry.values)))
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
    crds = (served["sources"] / "kube-prometheus-stack" / "charts" / "crds" / "files" / "crds.bz2").read_bytes()
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
    assert image.endswith(":v1.17.2"), "appVersion kept as upstream wrote it"
    assert any(d["kind"] == "CustomResourceDefinition" for d in docs), "crds.enabled from the catalog's values"
    chart = yaml.safe_load((app / "chart" / "Chart.yaml").read_text())
    if mode == "umbrella":
        assert chart["dependencies"][0]["version"] == "v1.17.2"
    else:
        assert chart["annotations"]["scoutflo.io/upstream"].endswith("/cert-manager:v1.17.2")
    assert isinstance(files["chart/Chart.yaml"], str)


@pytest.mark.skipif(not corpus.mirror_available(), reason="upstream snapshots are not in /work/.mirror")
@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
def test_real_upstream_charts_from_the_mirror(
    tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str], mode: str
) -> None:
    """The real kube-prometheus-stack and cert-manager, packaged from their upstream sources."""
    work = tmp_path_factory.mktemp("real")
    packages = corpus.package(corpus.from_mirror(work / "src"), work / "repo")
    corpus.helm("repo", "index", str(work / "repo"))
    with oci_registry(work / "oci") as host, static_http(work / "repo") as url:
        for path in packages.values():
            run(["helm", "push", "--plain-http", str(path), f"oci://{host}/charts"], work, env_for(work / "home"))
        for name in packages:
            for source, repo in (("http", url), ("oci", f"oci://{host}/charts")):
                tmp = work / f"{name}-{mode}-{source}"
                tmp.mkdir()
                files, rendered, _app = import_and_check(name, repo, mode, host, tmp, plain=source == "oci")
                if name == "kube-prometheus-stack" and mode == "vendor":
                    bz = files["chart/charts/crds/files/crds.bz2"]
                    assert isinstance(bz, bytes) and bz.startswith(b"BZh")
                assert "kind: Deployment" in rendered
