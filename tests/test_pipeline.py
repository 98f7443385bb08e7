"""The app repo's CI pipeline, run for real: actionlint on the workflows; ci/bump-version and
ci/release with real helm against a real OCI registry (docker-registry) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from automation import render
from scoutflo.charts.versions import highest_match
from tests.loopback import oci_registry, tags


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render")
    render.write(render.run_program("dev"), out)
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> Iterator[str]:
    with oci_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *args], repo, env).stdout.strip()


@pytest.fixture
def app_repo(rendered: Path, tmp_path: Path, registry: str) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "storefront"
    shutil.copytree(rendered / "repos" / "storefront", repo)
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm" / "config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm" / "admin"),
        "HELM_DATA_HOME": str(tmp_path / "helm" / "data"),
        "CHART_REGISTRY": f"oci://{registry}/scoutflo",
        "HELM_PLAIN_HTTP": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    git(repo, env, "init", "-q", "-b", "main")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", "scaffold")
    return repo, env


def chart_version(repo: Path) -> str:
    return str(yaml.safe_load((repo / "chart" / "Chart.yaml").read_text())["version"])


def test_release_bump_release_end_to_end(app_repo: tuple[Path, dict[str, str]], registry: str) -> None:
    repo, env = app_repo
    assert os.access(repo / "ci" / "release", os.X_OK) and os.access(repo / "ci" / "bump-version", os.X_OK)

    first = run(["ci/release"], repo, env)
    assert first.stdout.startswith("pushed storefront 0.1.0 sha256:"), first.stdout
    assert tags(registry, "scoutflo/storefront") == ["0.1.0"]

    again = run(["ci/release"], repo, env, check=False)
    assert again.returncode == 1
    assert "already in" in again.stderr and "Nothing was pushed" in again.stderr
    assert tags(registry, "scoutflo/storefront") == ["0.1.0"]

    git(repo, env, "checkout", "-q", "-b", "more-replicas")
    values = repo / "chart" / "values.yaml"
    values.write_text(values.read_text().replace("replicaCount: 1", "replicaCount: 2"))
    git(repo, env, "commit", "-qam", "more replicas")
    assert run(["ci/bump-version", "--check", "main"], repo, env, check=False).returncode == 1
    assert run(["ci/bump-version", "main"], repo, env).stdout.strip() == "0.1.1"
    chart_text = (repo / "chart" / "Chart.yaml").read_text()
    assert run(["ci/bump-version", "main"], repo, env).stdout.strip() == "0.1.1"
    assert (repo / "chart" / "Chart.yaml").read_text() == chart_text, "a second run must change nothing"
    assert run(["ci/bump-version", "--check", "main"], repo, env).returncode == 0
    git(repo, env, "commit", "-qam", "bump")

    second = run(["ci/release"], repo, env)
    assert second.stdout.startswith("pushed storefront 0.1.1 sha256:")
    listed = tags(registry, "scoutflo/storefront")
    assert listed == ["0.1.0", "0.1.1"]
    # What Argo CD's targetRevision "*" resolves to over that tag list:
    assert highest_match(listed, "*") == "0.1.1"


def test_bump_keeps_the_rest_of_chart_yaml(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    git(repo, env, "checkout", "-q", "-b", "lower")
    before = chart.read_text()
    chart.write_text(before.replace("version: 0.1.0", "version: 0.0.9  # ours"))
    assert run(["ci/bump-version", "main"], repo, env).stdout.strip() == "0.1.1"
    assert chart.read_text() == before.replace("version: 0.1.0", "version: 0.1.1  # ours")


def test_bump_from_a_prerelease_base_and_a_new_chart(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 0.1.0", "version: 1.0.0-rc.2"))
    git(repo, env, "commit", "-qam", "rc")
    git(repo, env, "checkout", "-q", "-b", "final")
    assert run(["ci/bump-version", "main"], repo, env).stdout.strip() == "1.0.0"
    # A base without the chart (first import) has nothing to be greater than.
    assert run(["ci/bump-version", "no-such-branch"], repo, env).stdout.strip() == "1.0.0"


def test_release_refuses_a_bad_registry_setting(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    result = run(["ci/release"], repo, {**env, "CHART_REGISTRY": "https://x"}, check=False)
    assert result.returncode == 2 and "oci://" in result.stderr


def test_release_writes_the_job_summary(app_repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 0.1.0", "version: 0.9.0"))
    summary = tmp_path / "summary.md"
    out = run(["ci/release"], repo, {**env, "GITHUB_STEP_SUMMARY": str(summary)})
    digest = out.stdout.split()[-1]
    assert digest.startswith("sha256:")
    assert "Released `storefront` 0.9.0" in summary.read_text() and digest in summary.read_text()


def test_workflows_pass_actionlint(rendered: Path, tools: dict[str, str]) -> None:
    for app in ("storefront", "admin"):
        workflows = sorted((rendered / "repos" / app / ".github" / "workflows").glob("*.yaml"))
        assert [w.name for w in workflows] == ["pr.yaml", "release.yaml"]
        result = subprocess.run([tools["actionlint"], *map(str, workflows)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_not_blind(tmp_path: Path, tools: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ githb.sha }}\n"
    )
    assert subprocess.run([tools["actionlint"], str(bad)], capture_output=True).returncode != 0


def test_workflow_permissions_and_pins(rendered: Path) -> None:
    wf = rendered / "repos" / "admin" / ".github" / "workflows"
    pr = yaml.safe_load((wf / "pr.yaml").read_text())
    release = yaml.safe_load((wf / "release.yaml").read_text())
    for doc in (pr, release):
        assert doc["permissions"] == {}
        for job in doc["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    ref = step["uses"].split("@", 1)[1]
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]
                if step.get("uses", "").startswith("azure/setup-helm"):
                    assert step["with"]["version"].startswith("v") and step["with"]["version"] != "latest"
    assert pr["jobs"]["lint"]["name"] == "lint"  # the check branch protection requires
    assert "id-token" not in pr["jobs"]["lint"]["permissions"]
    assert release["jobs"]["release"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert release[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as true
    text = (wf / "pr.yaml").read_text()
    assert "context=lint" in text, "the bump commit must get the required check as a status"


def test_app_repo_readme_explains_release_race_and_rollback(rendered: Path) -> None:
    readme = (rendered / "repos" / "admin" / "README.md").read_text()
    assert readme.startswith("# admin")
    for needle in ("GITHUB_TOKEN", "race", "targetRevision", "template:webapp"):
        assert needle in readme
