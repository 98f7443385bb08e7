"""The app repo's CI pipeline, run for real: actionlint and zizmor on the workflows; ci/version,
ci/settings and ci/release with real git and helm against a real OCI registry (docker-registry)
on 127.0.0.1. Whole workflows on several PRs, forks and merges: tests/test_pipeline_flow.py."""

from __future__ import annotations

import hashlib
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


# Helm v4.2.4 for linux-amd64 and the sha256 Helm publishes beside it (helm/helm release notes of
# v4.2.4: helm-v4.2.4-linux-amd64.tar.gz.sha256sum).
HELM_URL = "https://get.helm.sh/helm-v4.2.4-linux-amd64.tar.gz"
HELM_SHA256 = "c306b46f719b0a4da32d0f78ee21bf90ce8d602f15b22ab753f0674d1670a7f3"


def chart_version(repo: Path) -> str:
    return str(yaml.safe_load((repo / "chart" / "Chart.yaml").read_text())["version"])


def test_release_version_tag_release_end_to_end(app_repo: tuple[Path, dict[str, str]], registry: str) -> None:
    repo, env = app_repo
    for script in ("release", "version", "settings", "dependencies"):
        assert os.access(repo / "ci" / script, os.X_OK), script
    origin = repo.parent / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], repo.parent, env)
    git(repo, env, "remote", "add", "origin", str(origin))

    first = run(["ci/release"], repo, env)
    assert first.stdout.startswith("pushed storefront 0.1.0 sha256:"), first.stdout
    assert tags(registry, "scoutflo/storefront") == ["0.1.0"]
    assert git(repo, env, "ls-remote", "--tags", "origin").endswith("refs/tags/v0.1.0"), "the release is tagged"

    again = run(["ci/release"], repo, env)
    assert "nothing to release" in again.stdout and "already released in v0.1.0" in again.stderr
    assert tags(registry, "scoutflo/storefront") == ["0.1.0"]

    git(repo, env, "checkout", "-q", "-b", "more-replicas")
    values = repo / "chart" / "values.yaml"
    values.write_text(values.read_text().replace("replicaCount: 1", "replicaCount: 2"))
    git(repo, env, "commit", "-qam", "more replicas")
    chart_text = (repo / "chart" / "Chart.yaml").read_text()
    check = run(["ci/version", "check", "main"], repo, env)
    assert "releases the chart as version 0.1.1" in check.stdout
    assert (repo / "chart" / "Chart.yaml").read_text() == chart_text, "the check never writes"
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "0.1.1"

    second = run(["ci/release"], repo, env)
    assert second.stdout.startswith("pushed storefront 0.1.1 sha256:")
    listed = tags(registry, "scoutflo/storefront")
    assert listed == ["0.1.0", "0.1.1"]
    # What Argo CD's targetRevision "*" resolves to over that tag list:
    assert highest_match(listed, "*") == "0.1.1"
    assert (repo / "chart" / "Chart.yaml").read_text() == chart_text, "packaged with the version, not rewritten"


def test_version_rules(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    assert run(["ci/version", "bump", "1.0.0-rc.2"], repo, env).stdout.strip() == "1.0.0-rc.3"
    assert run(["ci/version", "bump", "1.0.0-beta"], repo, env).stdout.strip() == "1.0.0-beta.1"
    assert run(["ci/version", "bump", "1.2.9"], repo, env).stdout.strip() == "1.2.10"
    git(repo, env, "tag", "v0.3.0")
    git(repo, env, "tag", "v-not-a-version")  # other tags are ignored
    git(repo, env, "checkout", "-q", "-b", "x")
    chart.write_text(chart.read_text() + "# touched\n")
    git(repo, env, "commit", "-qam", "x")
    # Above every released version: the tag wins over Chart.yaml's 0.1.0 ...
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "0.3.1"
    # ... and Chart.yaml wins when it is higher.
    chart.write_text(chart.read_text().replace("version: 0.1.0", "version: 2.0.0-rc.1  # ours"))
    git(repo, env, "commit", "-qam", "rc")
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "2.0.0-rc.1"
    # Released as 2.0.0-rc.1, the next merge touching chart/ goes on as a prerelease (issue 17 §2):
    # 2.0.0 is released only once Chart.yaml names it.
    git(repo, env, "tag", "v2.0.0-rc.1")
    (repo / "chart" / "values.yaml").write_text((repo / "chart" / "values.yaml").read_text() + "# fix\n")
    git(repo, env, "commit", "-qam", "fix")
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "2.0.0-rc.2"
    git(repo, env, "tag", "v2.0.0-rc.2")
    chart.write_text(chart.read_text().replace("2.0.0-rc.1", "2.0.0"))
    git(repo, env, "commit", "-qam", "final")
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "2.0.0"
    chart.write_text(chart.read_text().replace("2.0.0", "two"))
    git(repo, env, "commit", "-qam", "two")
    bad = run(["ci/version", "check", "main"], repo, env, check=False)
    assert bad.returncode == 1 and "'two' is not a semantic version" in bad.stderr
    missing = run(["ci/version", "check", "origin/main"], repo, env, check=False)
    assert missing.returncode == 1 and "fetch the base branch from the base repository" in missing.stderr
    assert run(["ci/version"], repo, env, check=False).returncode == 2


def test_settings_file_is_read_strictly(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    out = run(["ci/settings", "--github-output"], repo, env).stdout.splitlines()
    assert out == [
        "chart_registry=oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/scoutflo",
        "aws_region=eu-west-1",
        "aws_role_arn=arn:aws:iam::123456789012:role/scoutflo-acme-storefront-ci",
    ]
    settings = repo / "ci" / "settings.env"
    settings.write_text(
        settings.read_text().replace("AWS_REGION=eu-west-1", "AWS_REGION=eu west") + "BASH_ENV=/tmp/x\n"
    )
    bad = run(["ci/settings", "--github-output"], repo, env, check=False)
    assert bad.returncode == 1 and "needs a valid AWS_REGION= line" in bad.stderr
    assert run(["ci/settings", "BASH_ENV"], repo, env, check=False).returncode == 2


def test_release_refuses_a_bad_registry_setting(app_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = app_repo
    result = run(["ci/release"], repo, {**env, "CHART_REGISTRY": "https://x"}, check=False)
    assert result.returncode == 2 and "oci://" in result.stderr


def test_release_writes_the_job_summary(app_repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 0.1.0", "version: 0.9.0"))
    git(repo, env, "commit", "-qam", "0.9.0")
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    git(repo, env, "remote", "add", "origin", str(origin))
    summary = tmp_path / "summary.md"
    out = run(["ci/release"], repo, {**env, "GITHUB_STEP_SUMMARY": str(summary)})
    digest = out.stdout.split()[-1]
    assert digest.startswith("sha256:")
    assert "Released `storefront` 0.9.0" in summary.read_text() and digest in summary.read_text()
    assert "tag `v0.9.0`" in summary.read_text()


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
    assert pr["jobs"]["lint"]["name"] == "lint"  # the check branch protection requires
    # Read-only: the PR job pushes nothing, so `lint` is its own check run on the PR head.
    assert pr["jobs"]["lint"]["permissions"] == {"contents": "read"}
    assert "if" not in pr["jobs"]["lint"], "a skipped job reports `lint` as skipped, which protection accepts"
    assert set(pr[True]["pull_request"]["types"]) >= {"opened", "synchronize", "reopened", "edited"}
    # Issue 17 §2: only the step that pushes the tag holds `contents: write`. Permissions are per
    # job, so that step is the `tag` job's only one; it runs no action and checks nothing out.
    assert release["jobs"]["release"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert release["jobs"]["tag"]["permissions"] == {"contents": "write"}
    assert release["jobs"]["tag"]["needs"] == "release"
    [push_tag] = release["jobs"]["tag"]["steps"]
    assert "uses" not in push_tag and "git push" in push_tag["run"]
    for doc in (pr, release):
        for job in doc["jobs"].values():
            # No action receives the job's token by an input's default (azure/setup-helm's `token`).
            assert not any(s.get("uses", "").startswith("azure/setup-helm") for s in job["steps"])
    installs = [
        s for doc in (pr, release) for j in doc["jobs"].values() for s in j["steps"] if s.get("name") == "Install Helm"
    ]
    assert len(installs) == 2 and installs[0] == installs[1]
    assert installs[0]["env"] == {"HELM_URL": HELM_URL, "HELM_SHA256": HELM_SHA256}
    assert release["concurrency"] == {"group": "release", "cancel-in-progress": False, "queue": "max"}
    assert release[True]["push"] == {"branches": ["main"], "paths": ["chart/**"]}  # YAML 1.1: `on` is true
    for doc in (pr, release):
        for name, job in doc["jobs"].items():
            if name == "tag":
                continue
            checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
            assert checkout["with"]["persist-credentials"] is False and checkout["with"]["fetch-depth"] == 0
    assert "vars." not in (wf / "release.yaml").read_text(), "settings come from ci/settings.env"


def test_workflows_pass_zizmor_offline(rendered: Path, tmp_path: Path) -> None:
    zizmor = shutil.which("zizmor")
    assert zizmor, "zizmor comes with requirements-dev.txt"
    workflows = sorted(str(p) for p in (rendered / "repos" / "admin" / ".github" / "workflows").glob("*.yaml"))
    cmd = [zizmor, "--offline", "--persona=pedantic", "--no-progress"]
    result = subprocess.run([*cmd, *workflows], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # Not blind: the checkout default (credentials persisted) and an unnamed job are reported.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\non: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1\n"
    )
    found = subprocess.run([*cmd, str(bad)], capture_output=True, text=True)
    assert "artipacked" in found.stdout and "anonymous-definition" in found.stdout, found.stdout


def test_app_repo_readme_explains_release_race_and_rollback(rendered: Path) -> None:
    readme = (rendered / "repos" / "admin" / "README.md").read_text()
    assert readme.startswith("# admin")
    for needle in (
        "template:webapp",
        "targetRevision",
        "## Versions",
        "lower than main",
        "gitIgnoredAuthors",
        "README-only",
        "queue",
        "fork",
        "re-run",
        # GitHub skips push runs on a commit message with [skip ci] (a squash merge lists every
        # commit's message), and repositories created before 15 July 2026 send the name-only OIDC
        # subject (github/docs#45221), which the CI role does not trust: both say what to do.
        "[skip ci]",
        "AssumeRoleWithWebIdentity",
        "15 July 2026",
        # Issue 17 §2: what a PR's own pr.yaml can change, fork PRs of private repositories, the
        # prerelease line, a lost tag push, where the release version is stated.
        "can change, or skip, its own check",
        "Run workflows from fork pull requests",
        "`2.0.0-rc.1` -> `2.0.0-rc.2`",
        "Re-run jobs",
        "notice on the `lint` check",
        "releases nothing",
    ):
        assert needle in readme, needle


def test_a_chart_rename_is_refused_before_merge_and_before_release(app_repo: tuple[Path, dict[str, str]]) -> None:
    """ci/release pushes to <registry>/<Chart.yaml name>, and the CI role may push to the app's one
    ECR repository only (components/ci_role.py), which Argo CD's Application also names: a renamed
    chart would fail at the push with AccessDenied, after merge. The PR check and the release
    refuse it first, saying which name to keep."""
    repo, env = app_repo
    chart = repo / "chart" / "Chart.yaml"
    git(repo, env, "tag", "v0.1.0")
    git(repo, env, "checkout", "-q", "-b", "rename")
    text = chart.read_text()
    assert "\nname: storefront\n" in text
    chart.write_text(text.replace("\nname: storefront\n", "\nname: 'shop'  # new\n"))
    git(repo, env, "commit", "-qam", "rename")
    check = run(["ci/version", "check", "main"], repo, env, check=False)
    assert check.returncode == 1, check.stdout
    assert "name 'shop'" in check.stderr and "'storefront'" in check.stderr
    release = run(["ci/version", "next"], repo, env, check=False)
    assert release.returncode == 1, release.stdout
    assert "name 'shop'" in release.stderr and "v0.1.0" in release.stderr
    # The same name written differently (quoted, CRLF) is no rename.
    chart.write_bytes(text.replace("\nname: storefront\n", '\nname: "storefront"\n').replace("\n", "\r\n").encode())
    git(repo, env, "commit", "-qam", "quoted")
    assert run(["ci/version", "check", "main"], repo, env).returncode == 0
    assert run(["ci/version", "next"], repo, env).stdout.strip() == "0.1.1"


def test_the_release_token_is_offered_to_github_only(rendered: Path, tmp_path: Path) -> None:
    """The tag job's step lets `git push` authenticate through a credential helper in its env (no
    token in .git/config). An unscoped `credential.helper` answers every host git asks about, so
    anything in that step reaching another HTTPS git host would be handed the contents: write token;
    `credential.<url>.helper` applies to that URL only (git-config(1), credential.<url>.*)."""
    from tests.actions import load, render

    workflow = load(rendered / "repos" / "storefront" / ".github" / "workflows" / "release.yaml")
    release = next(s for s in workflow["jobs"]["release"]["steps"] if s.get("name") == "Release")
    assert "github.token" not in str(release), "the release job pushes no tag and holds no write token"
    step = next(s for s in workflow["jobs"]["tag"]["steps"] if s.get("name") == "Push the release tag")
    ctx = {"github": {"token": "ghs_secret", "server_url": "https://github.com"}, "steps": {}, "needs": {}}
    step_env = {k: render(str(v), ctx) for k, v in step["env"].items()}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        **step_env,
    }

    def fill(host: str) -> str:
        asked = f"protocol=https\nhost={host}\npath=acme/storefront.git\n\n"
        result = subprocess.run(
            ["git", "credential", "fill"], input=asked, env=env, capture_output=True, text=True, timeout=30
        )
        return result.stdout

    assert "password=ghs_secret" in fill("github.com")
    assert "ghs_secret" not in fill("charts.example.com")


def test_helm_is_installed_only_with_the_pinned_checksum(rendered: Path, tmp_path: Path) -> None:
    """The workflows' `Install Helm` step, run as written against a loopback download: an archive
    with other bytes than the pinned sha256 fails the step and puts nothing on the PATH; one
    with the pinned digest is unpacked and its helm put on the PATH. (The real archive cannot be
    downloaded here: the step's own digest is checked against Helm's published one above.)"""
    from tests.actions import load, render
    from tests.loopback import static_http

    workflow = load(rendered / "repos" / "storefront" / ".github" / "workflows" / "release.yaml")
    step = next(s for s in workflow["jobs"]["release"]["steps"] if s.get("name") == "Install Helm")
    served = tmp_path / "served"
    (served / "pack" / "linux-amd64").mkdir(parents=True)
    helm = served / "pack" / "linux-amd64" / "helm"
    helm.write_text("#!/bin/sh\necho fake helm\n")
    helm.chmod(0o755)
    archive = served / "helm.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(served / "pack"), "linux-amd64"], check=True)

    def install(sha256: str, label: str) -> tuple[subprocess.CompletedProcess[str], str]:
        runner_temp = tmp_path / label
        runner_temp.mkdir()
        github_path = runner_temp / "path"
        github_path.touch()
        env = {
            "PATH": os.environ["PATH"],
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_PATH": str(github_path),
            "HELM_URL": f"{base}/helm.tar.gz",
            "HELM_SHA256": sha256,
        }
        script = runner_temp / "step.sh"
        script.write_text(render(step["run"], {"github": {}, "steps": {}}))
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        return result, github_path.read_text()

    with static_http(served) as base:
        refused, path = install(HELM_SHA256, "pinned")  # the fake is not Helm's archive
        assert refused.returncode != 0 and "FAILED" in refused.stdout + refused.stderr
        assert path == "" and not (tmp_path / "pinned" / "helm").exists()
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        accepted, path = install(digest, "matching")
        assert accepted.returncode == 0, accepted.stderr
        assert path.strip() == str(tmp_path / "matching" / "helm" / "linux-amd64")
        assert subprocess.run([f"{path.strip()}/helm"], capture_output=True, text=True).stdout == "fake helm\n"


def test_check_counts_main_merges_not_yet_released_as_the_release_workflow_runs_them(
    app_repo: tuple[Path, dict[str, str]],
) -> None:
    """`ci/version check` numbers a PR after main's merges whose release runs are still queued:
    one release per merge touching chart/; none for a merge GitHub starts no run for ([skip ci],
    GitHub docs "Skipping workflow runs") or one outside chart/ (the workflow's `paths`)."""
    repo, env = app_repo
    env = {k: v for k, v in env.items() if k != "GITHUB_ACTIONS"}  # this test may itself run on GitHub
    values = repo / "chart" / "values.yaml"
    git(repo, env, "tag", "v0.1.0")

    def commit(message: str, path: Path, line: str) -> None:
        path.write_text(path.read_text() + line)
        git(repo, env, "commit", "-qam", message)

    commit("queued A", values, "# a\n")
    commit("squash of x\n\n* wip [skip ci]", values, "# skipped\n")
    (repo / "README.md").write_text("docs\n")
    git(repo, env, "add", "README.md")
    git(repo, env, "commit", "-qm", "docs only")
    commit("queued B", values, "# b\n")
    git(repo, env, "checkout", "-q", "-b", "pr", "HEAD")
    commit("the PR", values, "# pr\n")
    summary = repo.parent / "summary.md"
    out = run(["ci/version", "check", "main"], repo, {**env, "GITHUB_STEP_SUMMARY": str(summary)}).stdout
    assert "releases the chart as version 0.1.3." in out, out
    assert "come first: 0.1.1, 0.1.2." in out
    assert "::notice" not in out, "annotations only on GitHub"
    out = run(["ci/version", "check", "main"], repo, {**env, "GITHUB_ACTIONS": "true"}).stdout
    assert "::notice title=Release::Merging this pull request now releases the chart as version 0.1.3." in out
    # Once main's releases are tagged, the same PR is numbered after them.
    git(repo, env, "tag", "v0.1.1", "main~3")
    git(repo, env, "tag", "v0.1.2", "main")
    assert "releases the chart as version 0.1.3." in run(["ci/version", "check", "main"], repo, env).stdout
    assert "come first" not in run(["ci/version", "check", "main"], repo, env).stdout


def test_check_ignores_history_from_before_the_release_workflow(
    app_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """An adopted repository: chart commits from before the pipeline was added started no release
    run, so they are no queued releases; the first release is Chart.yaml's version."""
    scaffold, env = app_repo
    repo = tmp_path / "adopted"
    (repo / "chart").mkdir(parents=True)
    shutil.copytree(scaffold / "chart", repo / "chart", dirs_exist_ok=True)
    git(repo, env, "init", "-q", "-b", "main")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "the user's chart")
    values = repo / "chart" / "values.yaml"
    values.write_text(values.read_text() + "# older work\n")
    git(repo, env, "commit", "-qam", "older work")
    for part in ("ci", ".github"):
        shutil.copytree(scaffold / part, repo / part)
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "Scoutflo pipeline")
    git(repo, env, "checkout", "-q", "-b", "pr")
    values.write_text(values.read_text() + "# the PR\n")
    git(repo, env, "commit", "-qam", "the PR")
    out = run(["ci/version", "check", "main"], repo, env).stdout
    assert "releases the chart as version 0.1.0." in out and "come first" not in out, out


def test_release_by_hand_after_a_lost_tag_push_tags_the_pushed_chart(
    app_repo: tuple[Path, dict[str, str]], registry: str, tmp_path: Path
) -> None:
    repo, env = app_repo
    env = {**env, "CHART_REGISTRY": f"oci://{registry}/by-hand"}
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    git(repo, env, "remote", "add", "origin", str(origin))
    hook = origin / "hooks" / "pre-receive"
    hook.write_text('#!/bin/sh\necho "tags are refused" >&2\nexit 1\n')
    hook.chmod(0o755)
    lost = run(["ci/release"], repo, env, check=False)
    assert lost.returncode == 1 and "a re-run finds it there and tags it" in lost.stderr
    assert tags(registry, "by-hand/storefront") == ["0.1.0"]
    assert git(repo, env, "tag") == "", "no local tag left to make the re-run think HEAD is released"
    hook.unlink()
    again = run(["ci/release"], repo, env)
    assert again.stdout.startswith("found storefront 0.1.0 sha256:"), again.stdout + again.stderr
    assert tags(registry, "by-hand/storefront") == ["0.1.0"], "not released again as 0.1.1"
    assert git(repo, env, "ls-remote", "--tags", "origin").endswith("refs/tags/v0.1.0")
