"""The app repo's pipeline as GitHub runs it: several pull requests, a fork (also deleted), re-runs,
bots, a README-only change, quick merges, a protected head branch, a CRLF Chart.yaml.

Real git (bare repositories as the base repository and a fork), real helm, a real OCI registry
(docker-registry on 127.0.0.1); the workflows' own steps run through tests/actions.py. The
scaffold is exactly what the program commits (scoutflo.github.repo_files), with ci/settings.env pointing
at the loopback registry.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scoutflo.github.repo_files import EXECUTABLES, SETTINGS_PATH, initial_files, settings_file
from tests.actions import Hosting, JobResult, PullRequest, Runner, git_env, load, sh, surviving_runs, triggers
from tests.loopback import oci_registry, tags

ROOT = Path(__file__).resolve().parent.parent
WEBAPP = ROOT / "charts_catalog" / "templates" / "webapp"
_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> Iterator[str]:
    with oci_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


def write_scaffold(root: Path, registry_url: str) -> Path:
    files = initial_files(app="storefront", source="template:webapp", template_dir=WEBAPP)
    files[SETTINGS_PATH] = settings_file(
        registry_url=registry_url,
        region="eu-west-1",
        role_arn="arn:aws:iam::123456789012:role/scoutflo-acme-storefront-ci",
    )
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if path in EXECUTABLES:
            target.chmod(0o755)
    return root


@dataclass
class Flow:
    """One app repository on loopback "GitHub": pull requests, merges and the runs they start."""

    hosting: Hosting
    runner: Runner
    registry: str
    namespace: str
    pr_workflow: dict[str, Any]
    release_workflow: dict[str, Any]
    queued: list[dict[str, Any]] = field(default_factory=list)
    runs: list[JobResult] = field(default_factory=list)
    """The `release` job of every release run (and the `lint` job of every check)."""
    tag_runs: list[JobResult | None] = field(default_factory=list)
    """The `tag` job of every release run, None where it did not run (nothing released)."""

    @property
    def base(self) -> str:
        return self.hosting.base

    def branch(
        self,
        name: str,
        edit: Callable[[Path], None],
        repo: str | None = None,
        start: str = "main",
        base_ref: str = "main",
        author: str | None = None,
    ) -> PullRequest:
        repo = repo or self.base
        work = self.hosting.clone(repo, name)
        sh(["git", "checkout", "-q", "-b", name, f"origin/{start}"], work, self.hosting.env)
        edit(work)
        self.hosting.commit_all(work, f"change {name}", push=name, author=author)
        return self.hosting.open_pr(repo, name, base_ref)

    def commit_on(self, pr: PullRequest, edit: Callable[[Path], None]) -> None:
        work = self.hosting.clone(pr.head_repo, "more")
        sh(["git", "checkout", "-q", pr.head_ref], work, self.hosting.env)
        edit(work)
        self.hosting.commit_all(work, "more", push=pr.head_ref)
        self.hosting.sync(pr)

    def check(self, pr: PullRequest, action: str = "synchronize", **extra: Any) -> JobResult | None:
        """The `pr` workflow for this event, or None when GitHub would not start it."""
        if not triggers(self.pr_workflow, "pull_request", action=action, branch=pr.base_ref):
            return None
        event = self.hosting.event(pr, action, **extra)
        head = event["pull_request"]["head"]["sha"]
        github = self._github("pull_request", event, sha=head, ref=f"refs/pull/{pr.number}/merge")
        github["base_ref"] = pr.base_ref
        result = self.runner.run_job(self.pr_workflow, "lint", github)
        self.hosting.sync(pr)  # whatever the run pushed to the head branch is now the PR's head
        self.runs.append(result)
        return result

    def merge(self, pr: PullRequest, run: bool = True) -> str:
        before, after = self.hosting.squash_merge(pr)
        if triggers(self.release_workflow, "push", branch="main", paths=self.hosting.changed(before, after)):
            self.queued.append(
                self._github("push", {"before": before, "after": after}, sha=after, ref="refs/heads/main")
            )
        if run:
            self.drain()
        return after

    def dispatch(self) -> None:
        """workflow_dispatch of the release on main."""
        assert "workflow_dispatch" in self.release_workflow["on"]
        self.queued.append(
            self._github("workflow_dispatch", {}, sha=self.hosting.sha(self.base, "main"), ref="refs/heads/main")
        )
        self.drain()

    def drain(self, ok: bool = True) -> list[JobResult]:
        """Runs the queued release runs of the `release` concurrency group, after GitHub's rules:
        each run's jobs, `release` then `tag`. With ok, every job that runs must succeed."""
        results = []
        for github in surviving_runs(self.release_workflow, self.queued):
            jobs = self.runner.run_workflow(self.release_workflow, github)
            release, tag = jobs["release"], jobs["tag"]
            assert release is not None
            for job in (release, tag):
                if ok and job is not None:
                    assert job.ok, f"release of {github['sha']} failed in {job.failed_step}:\n{job.log}"
            results.append(release)
            self.tag_runs.append(tag)
        self.queued.clear()
        self.runs.extend(results)
        return results

    def released(self) -> list[str]:
        return tags(self.registry, f"{self.namespace}/storefront")

    def release_tags(self) -> dict[str, str]:
        out = self.hosting.git(self.base, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags").stdout
        return dict(line.split() for line in out.splitlines())

    def _github(self, event_name: str, event: dict[str, Any], *, sha: str, ref: str) -> dict[str, Any]:
        return {
            "event_name": event_name,
            "event": event,
            "repository": self.base,
            "sha": sha,
            "ref": ref,
            "token": "ghs_loopback",
            "server_url": "https://github.com",
            "run_id": "1",
        }


@pytest.fixture
def flow(tmp_path: Path, registry: str) -> Flow:
    namespace = f"flow-{next(_namespaces)}-ns"  # no name a prefix of another: see loopback.py
    env = {
        **git_env(tmp_path / "home"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm" / "config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm" / "cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm" / "data"),
        "HELM_PLAIN_HTTP": "1",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    scaffold = write_scaffold(tmp_path / "scaffold", f"oci://{registry}/{namespace}")
    hosting = Hosting(tmp_path, env)
    # The `tag` job reaches the repository at github.server_url as GitHub's runner would: here
    # that URL leads to the loopback bare repositories.
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / ".gitconfig").write_text(
        f'[url "{(tmp_path / "hosted").as_uri()}/"]\n\tinsteadOf = https://github.com/\n'
    )
    first = hosting.create(scaffold)
    workflows = scaffold / ".github" / "workflows"
    settings = dict(
        line.split("=", 1) for line in (scaffold / SETTINGS_PATH).read_text().splitlines() if not line.startswith("#")
    )
    # Helm is on PATH already: its download is tested alone (test_pipeline.py, checksum refused).
    runner = Runner(hosting, env, skip_steps=("Install Helm", "Log Helm in to ECR"), variables=settings)
    f = Flow(hosting, runner, registry, namespace, load(workflows / "pr.yaml"), load(workflows / "release.yaml"))
    # The scaffold's own push to main releases the first version.
    f.queued.append(f._github("push", {"before": "0" * 40, "after": first}, sha=first, ref="refs/heads/main"))
    f.drain()
    assert f.released() == ["0.1.0"]
    return f


def values(replace: str, by: str) -> Callable[[Path], None]:
    def edit(work: Path) -> None:
        path = work / "chart" / "values.yaml"
        text = path.read_text()
        assert replace in text, replace
        path.write_text(text.replace(replace, by, 1))

    return edit


def add_file(rel: str, text: str) -> Callable[[Path], None]:
    def edit(work: Path) -> None:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)

    return edit


def set_version(version: str) -> Callable[[Path], None]:
    def edit(work: Path) -> None:
        chart = work / "chart" / "Chart.yaml"
        chart.write_text(re.sub(r"^version: .*$", f"version: {version}", chart.read_text(), count=1, flags=re.M))

    return edit


def passed(result: JobResult | None) -> JobResult:
    assert result is not None, "GitHub would not run the check: the PR waits forever for `lint`"
    assert result.ok, f"check failed in {result.failed_step}:\n{result.log}"
    return result


def test_three_open_prs_merged_one_after_another_release_three_increasing_versions(flow: Flow) -> None:
    prs = [
        flow.branch("replicas", values("replicaCount: 1", "replicaCount: 2")),
        flow.branch("note", add_file("chart/templates/NOTES.txt", "storefront\n")),
        flow.branch("config", add_file("chart/templates/extra.yaml", "# extra\n")),
    ]
    for pr in prs:
        assert "releases the chart as version 0.1.1" in passed(flow.check(pr, "opened")).summary
    for number, pr in enumerate(prs, start=1):
        if number > 1:
            flow.hosting.update_branch(pr)  # branch protection's `strict`: up to date with main first
            summary = passed(flow.check(pr)).summary
            assert f"releases the chart as version 0.1.{number}" in summary
        merged = flow.merge(pr)
        assert flow.release_tags()[f"v0.1.{number}"] == merged, "the tag records the released commit"
        assert f"Released `storefront` 0.1.{number}" in flow.runs[-1].summary
        assert f"tag `v0.1.{number}`" in flow.runs[-1].summary
    assert flow.released() == ["0.1.0", "0.1.1", "0.1.2", "0.1.3"]
    main_chart = flow.hosting.git(flow.base, "show", "main:chart/Chart.yaml").stdout
    assert "version: 0.1.0" in main_chart, "the release numbers versions; nobody commits bumps"


def test_three_quick_merges_are_all_released_in_order(flow: Flow) -> None:
    prs = [
        flow.branch("a", values("replicaCount: 1", "replicaCount: 3")),
        flow.branch("b", add_file("chart/templates/NOTES.txt", "b\n")),
        flow.branch("c", add_file("chart/templates/extra.yaml", "# c\n")),
    ]
    # Three merges before the first release run finishes: all three runs wait in one group.
    merged = [flow.merge(pr, run=False) for pr in prs]
    flow.drain()
    assert flow.released() == ["0.1.0", "0.1.1", "0.1.2", "0.1.3"]
    assert [flow.release_tags()[f"v0.1.{n}"] for n in (1, 2, 3)] == merged


def test_a_release_run_for_an_already_released_commit_releases_nothing(flow: Flow) -> None:
    first = flow.branch("a", values("replicaCount: 1", "replicaCount: 3"))
    second = flow.branch("b", add_file("chart/templates/NOTES.txt", "b\n"))
    a = flow.merge(first, run=False)
    b = flow.merge(second, run=False)
    # The later commit is released first (a re-run of an older run comes after it): the older
    # one is part of that release and must not be released again above it.
    flow.queued.reverse()
    flow.drain()
    assert flow.released() == ["0.1.0", "0.1.1"]
    assert flow.release_tags()["v0.1.1"] == b
    assert "already released in v0.1.1" in flow.runs[-1].log
    # Re-running the release of the newest commit changes nothing either.
    flow.queued.append(flow._github("push", {}, sha=b, ref="refs/heads/main"))
    flow.drain()
    assert flow.released() == ["0.1.0", "0.1.1"] and a not in flow.release_tags().values()


def test_fork_prs_are_checked_against_the_base_repository_even_once_the_fork_is_deleted(flow: Flow) -> None:
    fork = flow.hosting.fork("alice")  # its main stays at 0.1.0
    flow.merge(flow.branch("minor", set_version("0.2.0")))
    assert flow.released() == ["0.1.0", "0.2.0"]

    stale = flow.branch("old-version", set_version("0.1.5"), repo=fork)
    result = flow.check(stale, "opened")
    assert result is not None and not result.ok
    assert "lower than origin/main's 0.2.0" in result.log

    pr = flow.branch("fork-change", values("replicaCount: 1", "replicaCount: 4"), repo=fork)
    assert "releases the chart as version 0.2.1" in passed(flow.check(pr, "opened")).summary
    flow.hosting.delete(fork)
    assert "releases the chart as version 0.2.1" in passed(flow.check(pr, "reopened")).summary
    flow.merge(pr)
    assert flow.released() == ["0.1.0", "0.2.0", "0.2.1"]


def test_rerun_leaves_the_required_check_on_the_pr_head(flow: Flow) -> None:
    pr = flow.branch("replicas", values("replicaCount: 1", "replicaCount: 2"))
    head = flow.hosting.head_tip(pr)
    for _ in range(2):  # the run, then "Re-run jobs" of the same event
        passed(flow.check(pr))
        # GitHub attaches the job's `lint` check run to pull_request.head.sha: it must still be
        # the head, or the required check never appears on the commit that gets merged.
        assert flow.hosting.head_tip(pr) == head


def test_readme_only_pr_bumps_nothing_and_releases_nothing(flow: Flow) -> None:
    pr = flow.branch("docs", add_file("README.md", "# storefront\n\nMore docs.\n"))
    head = flow.hosting.head_tip(pr)
    assert "merging it releases nothing" in passed(flow.check(pr, "opened")).summary
    assert flow.hosting.head_tip(pr) == head
    runs = len(flow.runs)
    flow.merge(pr)
    assert len(flow.runs) == runs, "a push touching nothing under chart/ starts no release"
    flow.dispatch()  # and a manual run finds nothing to release either
    assert "nothing to release" in flow.runs[-1].log
    assert flow.released() == ["0.1.0"] and list(flow.release_tags()) == ["v0.1.0"]


def test_bot_pull_requests_get_no_foreign_commits(flow: Flow) -> None:
    pr = flow.branch(
        "dependabot/helm/redis-1.2", values("replicaCount: 1", "replicaCount: 2"), author="dependabot[bot]"
    )
    passed(flow.check(pr, "opened"))
    authors = flow.hosting.git(pr.head_repo, "log", "--format=%an", f"main..{pr.head_ref}").stdout.split()
    # Dependabot stops rebasing a PR with anyone else's commit on it; Renovate ignores the PR.
    assert authors == ["dependabot[bot]"]


def test_a_stacked_pr_retargeted_to_main_is_checked(flow: Flow) -> None:
    lower = flow.branch("lower", values("replicaCount: 1", "replicaCount: 2"))
    upper = flow.branch("upper", add_file("chart/templates/NOTES.txt", "x\n"), start="lower", base_ref="lower")
    assert flow.check(upper, "opened") is None, "PRs into other branches are not checked"
    flow.merge(lower)
    flow.hosting.git(flow.base, "update-ref", "-d", "refs/heads/lower")  # delete_branch_on_merge
    upper.base_ref = "main"  # GitHub retargets the PR and sends `edited` with changes.base
    flow.hosting.update_branch(upper)
    result = flow.check(upper, "edited", changes={"base": {"ref": {"from": "lower"}}})
    assert "releases the chart as version 0.1.2" in passed(result).summary


def test_a_protected_head_branch_is_never_pushed_to(flow: Flow) -> None:
    pr = flow.branch("protected", values("replicaCount: 1", "replicaCount: 2"))
    hook = flow.hosting.path(flow.base) / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  [ "$ref" = refs/heads/protected ] && { echo "protected branch" >&2; exit 1; }\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)
    passed(flow.check(pr))


def test_crlf_chart_yaml_is_read_and_never_rewritten(flow: Flow) -> None:
    def crlf(work: Path) -> None:
        chart = work / "chart" / "Chart.yaml"
        chart.write_bytes(chart.read_bytes().replace(b"\n", b"\r\n"))
        values("replicaCount: 1", "replicaCount: 2")(work)

    pr = flow.branch("windows", crlf)
    before = flow.hosting.git(pr.head_repo, "show", f"{pr.head_ref}:chart/Chart.yaml").stdout
    assert "releases the chart as version 0.1.1" in passed(flow.check(pr, "opened")).summary
    assert flow.hosting.git(pr.head_repo, "show", f"{pr.head_ref}:chart/Chart.yaml").stdout == before
    flow.merge(pr)
    assert flow.released() == ["0.1.0", "0.1.1"]
    raw = subprocess.run(
        ["git", "--git-dir", str(flow.hosting.path(flow.base)), "cat-file", "blob", "main:chart/Chart.yaml"],
        capture_output=True,
        check=True,
    ).stdout
    assert b"\r\n" in raw and b"version: 0.1.0\r\n" in raw


def test_a_lower_version_is_refused_and_a_higher_one_released(flow: Flow) -> None:
    low = flow.branch("low", set_version("0.0.9"))
    result = flow.check(low, "opened")
    assert result is not None and not result.ok
    assert "chart/Chart.yaml: version 0.0.9 is lower than origin/main's 0.1.0" in result.log
    high = flow.branch("major", set_version("1.0.0"))
    assert "releases the chart as version 1.0.0" in passed(flow.check(high, "opened")).summary
    flow.merge(high)
    assert flow.released() == ["0.1.0", "1.0.0"]


def test_a_version_in_the_registry_without_its_tag_is_skipped(flow: Flow, tmp_path: Path) -> None:
    # A release that pushed 0.1.1 but could not record its tag: the next release takes 0.1.2.
    work = flow.hosting.clone(flow.base, "manual")
    env = flow.hosting.env
    sh(["helm", "package", "chart", "--version", "0.1.1", "-d", str(tmp_path / "pkg")], work, env)
    sh(
        [
            "helm",
            "push",
            "--plain-http",
            str(tmp_path / "pkg" / "storefront-0.1.1.tgz"),
            f"oci://{flow.registry}/{flow.namespace}",
        ],
        work,
        env,
    )
    flow.merge(flow.branch("next", values("replicaCount: 1", "replicaCount: 2")))
    assert flow.released() == ["0.1.0", "0.1.1", "0.1.2"]
    assert "v0.1.2" in flow.release_tags() and "v0.1.1" not in flow.release_tags()


def test_release_job_reads_the_settings_file_and_persists_no_credentials(flow: Flow) -> None:
    release = flow.runs[0]
    assert release.outputs["settings"]["aws_role_arn"] == "arn:aws:iam::123456789012:role/scoutflo-acme-storefront-ci"
    configure = next(v for k, v in release.inputs.items() if k.startswith("aws-actions/configure-aws-credentials"))
    assert configure == {
        "role-to-assume": "arn:aws:iam::123456789012:role/scoutflo-acme-storefront-ci",
        "aws-region": "eu-west-1",
    }
    assert release.workspace is not None
    config = (release.workspace / ".git" / "config").read_text()
    assert "extraheader" not in config and "ghs_" not in config


def refuse_tags(flow: Flow) -> Path:
    """A pre-receive hook refusing every tag push (a network failure, a tag ruleset)."""
    hook = flow.hosting.path(flow.base) / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  case "$ref" in refs/tags/*) echo "tag refused" >&2; exit 1 ;; esac\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)
    return hook


def test_a_rerun_after_a_lost_tag_push_tags_the_pushed_chart_instead_of_releasing_it_again(flow: Flow) -> None:
    """Issue 17 §2: the chart landed in the registry, the tag push failed. The re-run finds HEAD's
    chart there under the version it would take, and tags it: one commit, one version."""
    hook = refuse_tags(flow)
    merged = flow.merge(flow.branch("replicas", values("replicaCount: 1", "replicaCount: 2")), run=False)
    run = flow.queued[0]
    flow.drain(ok=False)
    tag = flow.tag_runs[-1]
    assert flow.runs[-1].ok and tag is not None and not tag.ok and "tag refused" in tag.log
    assert flow.released() == ["0.1.0", "0.1.1"] and "v0.1.1" not in flow.release_tags()

    hook.unlink()
    flow.queued.append(run)  # "Re-run all jobs" of that run
    flow.drain()
    assert flow.released() == ["0.1.0", "0.1.1"], "the same chart is not released again as 0.1.2"
    assert flow.release_tags()["v0.1.1"] == merged
    assert "with this commit's chart (a run pushed it but could not tag it): tagging it" in flow.runs[-1].log
    assert "only its tag was missing" in flow.runs[-1].summary
    assert f"tagged `{merged}` as `v0.1.1`" in (flow.tag_runs[-1] or JobResult(ok=False)).summary

    # The next merge is numbered above it, as usual.
    flow.merge(flow.branch("more", values("replicaCount: 2", "replicaCount: 3")))
    assert flow.released() == ["0.1.0", "0.1.1", "0.1.2"]


def test_a_rerun_of_the_tag_job_alone_pushes_the_same_tag(flow: Flow) -> None:
    """ "Re-run failed jobs" re-runs `tag` with the release job's outputs: the same version."""
    hook = refuse_tags(flow)
    merged = flow.merge(flow.branch("replicas", values("replicaCount: 1", "replicaCount: 2")), run=False)
    run = flow.queued[0]
    flow.drain(ok=False)
    outputs = flow.runs[-1].job_outputs
    assert outputs == {"tag": "v0.1.1", "commit": merged}
    hook.unlink()
    tag = flow.runner.run_job(flow.release_workflow, "tag", run, {"release": {"outputs": outputs}})
    assert tag.ok, tag.log
    assert flow.release_tags()["v0.1.1"] == merged
    again = flow.runner.run_job(flow.release_workflow, "tag", run, {"release": {"outputs": outputs}})
    assert again.ok, "pushing an existing tag to the same commit changes nothing"


def test_a_prerelease_line_continues_until_chart_yaml_names_the_final_version(flow: Flow) -> None:
    flow.merge(flow.branch("rc", set_version("1.0.0-rc.1")))
    assert flow.released() == ["0.1.0", "1.0.0-rc.1"]
    fix = flow.branch("fix", values("replicaCount: 1", "replicaCount: 2"))
    assert "releases the chart as version 1.0.0-rc.2" in passed(flow.check(fix, "opened")).summary
    flow.merge(fix)
    assert flow.released() == ["0.1.0", "1.0.0-rc.1", "1.0.0-rc.2"], "not 1.0.0 by itself"
    final = flow.branch("final", set_version("1.0.0"))
    assert "releases the chart as version 1.0.0" in passed(flow.check(final, "opened")).summary
    flow.merge(final)
    assert flow.released() == ["0.1.0", "1.0.0", "1.0.0-rc.1", "1.0.0-rc.2"]
    assert flow.release_tags()["v1.0.0"] == flow.hosting.sha(flow.base, "main")


def test_the_version_a_pr_releases_is_right_while_an_earlier_release_is_queued(flow: Flow) -> None:
    first = flow.branch("first", values("replicaCount: 1", "replicaCount: 2"))
    second = flow.branch("second", add_file("chart/templates/NOTES.txt", "second\n"))
    docs = flow.branch("docs", add_file("README.md", "# storefront\n"))
    flow.merge(first, run=False)  # its release is queued: no tag yet
    flow.hosting.update_branch(second)
    result = passed(flow.check(second))
    stated = "Merging this pull request now releases the chart as version 0.1.2."
    assert stated in result.summary and "come first: 0.1.1" in result.summary
    # Shown on the check itself (an annotation in the PR's Checks tab), with no write permission.
    assert f"::notice title=Release::{stated}" in result.log
    flow.hosting.update_branch(docs)
    nothing = passed(flow.check(docs))
    assert "::notice title=Release::This pull request changes nothing under chart/: merging it releases nothing." in (
        nothing.log
    )
    flow.drain()
    flow.merge(second)
    assert flow.released() == ["0.1.0", "0.1.1", "0.1.2"], "the version the check stated"
