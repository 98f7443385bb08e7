"""An umbrella chart's dependency is downloaded again at every release: the app repo's
ci/dependencies checks each download against the archive digest recorded at import
(chart/dependencies.sha256), with real helm, a Helm repository served on 127.0.0.1 and a real OCI
registry (docker-registry). Chart.lock's digest would not notice: it hashes the requirements only
(helm/helm internal/resolver/resolver.go:213 HashReq, pkg/downloader/manager.go:123)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoutflo.charts.fetch import ChartFetcher, Http, sha256
from scoutflo.charts.plan import DIGESTS_FILE, plan_import
from tests.loopback import oci_registry, static_http, tags

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "scoutflo" / "scaffold" / "ci"
CRB = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: takeover}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def publish(work: Path, repo: Path, templates: dict[str, str]) -> str:
    """Package chart `dep` 1.0.0 with these templates into the repository, index it; its digest."""
    src = work / "dep"
    shutil.rmtree(src, ignore_errors=True)
    (src / "templates").mkdir(parents=True)
    (src / "Chart.yaml").write_text("apiVersion: v2\nname: dep\nversion: 1.0.0\nappVersion: 2.0.0\n")
    for name, text in templates.items():
        (src / "templates" / name).write_text(text)
    env = {"PATH": os.environ["PATH"], "HOME": str(work)}
    run(["helm", "package", str(src), "-d", str(repo)], work, env)
    run(["helm", "repo", "index", str(repo)], work, env)
    return sha256((repo / "dep-1.0.0.tgz").read_bytes())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    repo = tmp_path / "helm-repo"
    repo.mkdir()
    publish(tmp_path, repo, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: reviewed}\n"})
    with static_http(repo) as url:
        yield repo, url


@pytest.fixture
def app(served: tuple[Path, str], tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """The umbrella import of dep 1.0.0 as committed to the app repo, with the scaffold's ci/."""
    _repo, url = served
    fetched = ChartFetcher(tmp_path / "cache", http=Http(attempts=1, sleep=lambda _s: None)).fetch(url, "dep", "*")
    plan = plan_import(app="shop", mode="umbrella", fetched=fetched, constraint="*", description="Shop")
    root = tmp_path / "shop"
    for path, data in plan.files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(str(data))
    shutil.copytree(CI, root / "ci")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm" / "config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm" / "cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm" / "data"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return root, env, fetched.digest


def test_the_import_records_the_archive_digest(app: tuple[Path, dict[str, str], str]) -> None:
    root, _env, digest = app
    lines = [line for line in (root / "chart" / DIGESTS_FILE).read_text().splitlines() if not line.startswith("#")]
    assert lines == [f"dep 1.0.0 {digest}"]
    assert DIGESTS_FILE in (root / "chart" / ".helmignore").read_text().splitlines(), "not packaged"


@pytest.mark.parametrize("reindex", [True, False], ids=["index-updated", "index-unchanged"])
def test_a_dependency_republished_after_import_fails_the_release(
    app: tuple[Path, dict[str, str], str],
    served: tuple[Path, str],
    tmp_path: Path,
    tools: dict[str, str],
    reindex: bool,
) -> None:
    """Released once as reviewed; then the same version is re-published with a cluster-admin
    binding (index.yaml updated to match, or left alone): the next release fails naming the chart,
    the version and both digests, pushes nothing, tags nothing and leaves no downloaded chart."""
    root, env, reviewed = app
    repo, _url = served
    with oci_registry(tmp_path / "registry") as host:
        env = {**env, "CHART_REGISTRY": f"oci://{host}/scoutflo", "HELM_PLAIN_HTTP": "1"}
        run(["git", "init", "-q", "-b", "main"], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "import dep 1.0.0"], root, env)
        run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], root, env)
        run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], root, env)

        first = run(["ci/release"], root, env)
        assert first.stdout.startswith("pushed shop 0.1.0 sha256:"), first.stdout
        assert f"chart dep version 1.0.0: {reviewed} verified" in first.stderr
        shutil.rmtree(root / "chart" / "charts")  # a fresh CI checkout has none

        index = (repo / "index.yaml").read_bytes()
        republished = publish(tmp_path, repo, {"cm.yaml": "kind: ConfigMap\n", "crb.yaml": CRB})
        if not reindex:
            (repo / "index.yaml").write_bytes(index)
        assert republished != reviewed
        values = root / "chart" / "values.yaml"
        values.write_text(values.read_text() + "# a change to release\n")
        run(["git", "commit", "-qam", "values"], root, env)

        second = run(["ci/release"], root, env, check=False)
        assert second.returncode == 1, second.stderr
        assert f"chart dep version 1.0.0: expected {reviewed}, got {republished}" in second.stderr
        assert "pushed" not in second.stdout
        assert tags(host, "scoutflo/shop") == ["0.1.0"], "nothing unreviewed reached the registry"
        assert run(["git", "tag"], root, env).stdout.split() == ["v0.1.0"]
        assert not (root / "chart" / "charts").exists(), "the unverified download is removed"


def test_record_after_an_upgrade_and_refusals(
    app: tuple[Path, dict[str, str], str], served: tuple[Path, str], tmp_path: Path, tools: dict[str, str]
) -> None:
    """No digest file, a malformed one, an archive nobody recorded: each refused with the fix.
    `ci/dependencies record` after `helm dependency update` writes what was downloaded."""
    root, env, reviewed = app
    repo, _url = served
    digests = root / "chart" / DIGESTS_FILE
    deps = str(root / "ci" / "dependencies")
    original = digests.read_text()

    digests.unlink()
    missing = run([deps], root, env, check=False)
    assert missing.returncode == 2 and "records no archive digest" in missing.stderr
    assert "ci/dependencies record" in missing.stderr

    digests.write_text("dep 1.0.0 md5:abc\n")
    malformed = run([deps], root, env, check=False)
    assert malformed.returncode == 2 and "a line must be '<name> <version> sha256:<64 hex digits>'" in malformed.stderr

    digests.write_text(f"other 1.0.0 {reviewed}\n")
    unknown = run([deps], root, env, check=False)
    assert unknown.returncode == 1, unknown.stderr
    assert "chart dep version 1.0.0 (chart/charts/dep-1.0.0.tgz, " in unknown.stderr
    assert "has no digest in chart/dependencies.sha256" in unknown.stderr
    assert not (root / "chart" / "charts").exists()

    digests.write_text(original)
    assert "verified" in run([deps], root, env).stderr
    shutil.rmtree(root / "chart" / "charts")

    # The maintainer upgrades on purpose: update, record, and the recorded digest is the new one.
    upgraded = publish(tmp_path, repo, {"cm.yaml": "kind: ConfigMap\n"})
    run(["helm", "dependency", "update", "chart"], root, env)
    recorded = run([deps, "record"], root, env)
    assert f"dep 1.0.0 {upgraded}" in recorded.stdout
    assert f"dep 1.0.0 {upgraded}\n" in digests.read_text()
    shutil.rmtree(root / "chart" / "charts")
    assert f"chart dep version 1.0.0: {upgraded} verified" in run([deps], root, env).stderr


def test_the_scripts_pass_shellcheck() -> None:
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: run `make setup-dev` (scripts/setup.sh --dev) first")
    scripts = [str(CI / name) for name in ("dependencies", "release", "settings")]
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
