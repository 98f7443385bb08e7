"""Real upstream charts, as their projects released them, imported end to end.

tests/data/upstream/ holds packaged charts written by their upstream projects (zenml 0.72.0 and
0.73.0, two consecutive releases; dask-kubernetes-operator with four CRDs), taken from the PyPI
packages that ship them, with versions, sources, licences and sha256 in its README.md. Each is
served on loopback as a Helm repository and from an OCI registry, imported in both modes, then
checked with the real helm and released by the app repo's own `ci/release`, as the project-own
corpus of tests/test_import_corpus.py is. Nothing outside the repository is read, so CI runs it.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoutflo.charts.plan import ANNOTATION_SOURCE
from tests import corpus
from tests.loopback import oci_registry, static_http
from tests.test_import_corpus import env_for, import_chart, run

UPSTREAM = Path(__file__).resolve().parent / "data" / "upstream"
ZENML = {"0.72.0": "zenml-0.72.0.tgz", "0.73.0": "zenml-0.73.0.tgz"}
DASK = ("dask-kubernetes-operator", "0.0.1-set.by.chartpress")
# The committed archives are the ones the README describes: a changed byte fails here first.
SHA256 = {
    "zenml-0.72.0.tgz": "235cac64184b5ace6e8434b9958207ad12630f275f1d213fa8061ea0c11d0c68",
    "zenml-0.73.0.tgz": "3d6c6a1c01317be3a30c620b4065bb09a0f2e36a0dbf3726f0d0684208a183f7",
    "dask-kubernetes-operator-0.0.1-set.by.chartpress.tgz": (
        "001e03a96fd19385e1ea359d5cb76d2cf54758a6bbd42ee985d02b885a7b3de0"
    ),
}


def members(archive: Path) -> dict[str, bytes]:
    """An archive's regular files, by path below the chart's own directory."""
    out: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isfile() else None
            if handle is not None:
                out[info.name.split("/", 1)[1]] = handle.read()
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("upstream")
    repo = work / "repo"
    repo.mkdir()
    for archive in SHA256:
        shutil.copy(UPSTREAM / archive, repo / archive)
    corpus.helm("repo", "index", str(repo))
    home = env_for(work / "home")
    with oci_registry(work / "oci") as host, static_http(repo) as url:
        for archive in SHA256:
            run(["helm", "push", "--plain-http", str(repo / archive), f"oci://{host}/charts"], work, home)
        yield {"http": url, "oci": f"oci://{host}/charts", "host": host}


def test_the_committed_archives_are_the_documented_ones() -> None:
    for archive, digest in SHA256.items():
        assert hashlib.sha256((UPSTREAM / archive).read_bytes()).hexdigest() == digest, archive
        assert digest in (UPSTREAM / "README.md").read_text(), f"{archive}'s sha256 is noted"
    for licence in ("LICENSE-zenml", "LICENSE-dask-kubernetes"):
        assert (UPSTREAM / licence).stat().st_size > 0


@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
@pytest.mark.parametrize("source", ["http", "oci"])
def test_zenml_the_newest_in_range_byte_for_byte(
    served: dict[str, Any], source: str, mode: str, tmp_path: Path
) -> None:
    files, rendered, app = import_chart(
        "zenml", ">=0.72.0 <0.74.0", {}, served[source], mode, served["host"], tmp_path, plain=source == "oci"
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert any(d["kind"] == "Deployment" for d in docs), "upstream's templates render"
    chart = yaml.safe_load((app / "chart" / "Chart.yaml").read_text())
    if mode == "umbrella":
        assert chart["dependencies"][0]["version"] == "0.73.0"
        return
    assert chart["annotations"][ANNOTATION_SOURCE].endswith("/zenml:0.73.0")
    upstream = members(UPSTREAM / ZENML["0.73.0"])
    planned = {p.removeprefix("chart/"): v for p, v in files.items() if p.startswith("chart/")}
    assert set(upstream) <= set(planned), "every upstream file is committed"
    for path, data in upstream.items():
        if path != "Chart.yaml":
            got = planned[path]
            assert (got if isinstance(got, bytes) else got.encode()) == data, f"{path} as upstream released it"
    assert "pro" in yaml.safe_load(io.BytesIO(upstream["values.yaml"]))["zenml"], "0.73.0's own values"


def test_zenml_an_app_pinned_to_the_previous_release(served: dict[str, Any], tmp_path: Path) -> None:
    files, _rendered, _app = import_chart(
        "zenml", "0.72.0", {}, served["http"], "vendor", served["host"], tmp_path, plain=False
    )
    values = files["chart/values.yaml"]
    assert isinstance(values, str)
    assert "pro" not in yaml.safe_load(values)["zenml"], "0.72.0 has no zenml.pro block"
    assert values.encode() == members(UPSTREAM / ZENML["0.72.0"])["values.yaml"]


@pytest.mark.parametrize("mode", ["vendor", "umbrella"])
def test_dask_operator_with_its_crds(served: dict[str, Any], mode: str, tmp_path: Path) -> None:
    """A prerelease version (upstream's placeholder, as shipped) pinned exactly, and CRDs under
    crds/, which Helm installs before the templates and never upgrades (helm.sh "Custom Resource
    Definitions"): they must arrive intact in the app repo and in the released chart."""
    name, version = DASK
    files, _rendered, app = import_chart(name, version, {}, served["oci"], mode, served["host"], tmp_path, True)
    env = env_for(tmp_path / "home2")
    with_crds = run(["helm", "template", "app", "chart", "--include-crds"], app, env)
    kinds = [d["kind"] for d in yaml.safe_load_all(with_crds) if d]
    assert kinds.count("CustomResourceDefinition") == 4, kinds
    if mode == "vendor":
        upstream = members(UPSTREAM / f"{name}-{version}.tgz")
        crds = {p: v for p, v in upstream.items() if p.startswith("crds/")}
        assert len(crds) == 4
        for path, data in crds.items():
            got = files[f"chart/{path}"]
            assert (got if isinstance(got, bytes) else got.encode()) == data, path
