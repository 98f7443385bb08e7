"""Upstream upgrades that keep the user's edits (issue 19): two consecutive versions of corpus
charts (tests/data/charts: cert-manager v1.17.2 -> v1.17.3, redis 21.0.0 -> 21.0.1), packaged with
the real helm and prepared by the import's own plan, imported through the GitHub stand-in, merged,
edited on main as a user would, then upgraded: one pull request holding libgit2's three-way merge.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.repo_commit import RepoCommitProvider, encode_binary
from scoutflo.charts.fetch import FetchedChart
from scoutflo.charts.merge import merge_charts
from scoutflo.charts.plan import plan_import
from scoutflo.github.api import GitHub, GitHubError, Pacer
from scoutflo.github.upgrade import git_blob_id, import_or_upgrade, upgrade_branch
from tests import corpus
from tests.github_stub import Fault, GitHubState, github_stub

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "https://charts.example.test/stable"
APP = "certs"
pytestmark = pytest.mark.skipif(shutil.which("helm") is None, reason="needs helm (make test installs it)")


def _fetched(root: Path, name: str, version: str) -> FetchedChart:
    chart = corpus.build(root / version, name, version)
    (archive,) = corpus.package({name: chart}, root / "out" / version).values()
    data = archive.read_bytes()
    return FetchedChart(name, version, "sha256:" + hashlib.sha256(data).hexdigest(), SOURCE, data)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("charts")
    out = {}
    for name, version in (
        ("cert-manager", "v1.17.2"),
        ("cert-manager", "v1.17.3"),
        ("redis", "21.0.0"),
        ("redis", "21.0.1"),
    ):
        mode = "umbrella" if name == "redis" else "vendor"
        app = "cache" if name == "redis" else APP
        out[f"{name} {version}"] = plan_import(
            app=app, mode=mode, fetched=_fetched(root, name, version), constraint="*", description=name
        )
    return out


def _version3(plans: dict[str, Any]) -> dict[str, str | bytes]:
    """A next cert-manager release, v1.17.4, derived from v1.17.3's prepared files (the corpus
    holds two versions): a new appVersion and a new value."""
    files = dict(plans["cert-manager v1.17.3"].files)
    files["chart/Chart.yaml"] = str(files["chart/Chart.yaml"]).replace("v1.17.3", "v1.17.4")
    files["chart/values.yaml"] = str(files["chart/values.yaml"]) + "webhook:\n  timeoutSeconds: 10\n"
    return files


def _client(url: str, **kwargs: Any) -> GitHub:
    # A pacer of its own: the sweep's writes must not fill the process-wide window of the token,
    # which the provider's create (its own client) paces against.
    return GitHub("t0ken", api=url, sleep=lambda _s: None, pacer=Pacer(), **kwargs)


def _run(url: str, plan: Any, files: dict[str, str | bytes] | None = None, **kwargs: Any) -> tuple[Any, int]:
    gh = _client(url, **kwargs)
    result = import_or_upgrade(
        gh,
        owner="o",
        repo="r",
        files=files or plan.files,
        message=plan.title,
        branch=plan.branch,
        pr_title=plan.title,
        pr_body=plan.body,
    )
    return result, gh.writes


def _text(state: GitHubState, ref: str) -> dict[str, str]:
    return {p: d.decode() for p, d in state.files(ref).items()}


def _user_commit(state: GitHubState, changes: dict[str, str], deleted: tuple[str, ...] = ()) -> None:
    head = state.refs["main"]
    tree = dict(state.objects[state.objects[head]["tree"]]["entries"])
    tree.update({p: ("100644", state.blob(d.encode())) for p, d in changes.items()})
    for path in deleted:
        del tree[path]
    state.refs["main"] = state.commit(tree, [head], "user edit")


@pytest.fixture
def imported(plans: dict[str, Any]) -> Iterator[tuple[GitHubState, str]]:
    """cert-manager v1.17.2 imported (one PR, squash-merged, branch deleted) and edited on main:
    a values.yaml change, a template change, a file deleted."""
    state = GitHubState()
    with github_stub(state) as url:
        result, writes = _run(url, plans["cert-manager v1.17.2"])
        assert writes == 4 and result.pull_request == 1
        state.merge_pull(1)
        main = _text(state, "main")
        values = main["chart/values.yaml"].replace("enabled: false", "enabled: true")
        template = main["chart/templates/deployment.yaml"].replace(
            "  name: {{ .Release.Name }}\n", "  name: {{ .Release.Name }}\n  annotations: {team: mine}\n"
        )
        assert values != main["chart/values.yaml"] and template != main["chart/templates/deployment.yaml"]
        deleted = sorted(p for p in main if p.startswith("chart/templates/") and "deployment" not in p)[0]
        _user_commit(
            state, {"chart/values.yaml": values, "chart/templates/deployment.yaml": template}, deleted=(deleted,)
        )
        state.deleted = deleted  # type: ignore[attr-defined]
        yield state, url


def test_an_upgrade_keeps_the_users_edits_and_takes_upstreams_in_one_pr_of_six_writes(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    before = _text(state, "main")
    result, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 6, state.requests
    branch = upgrade_branch("cert-manager")
    assert result.branch == branch and result.pull_request == 2
    merged = _text(state, branch)
    # The user's edits stay, upstream's changes arrive in the same files.
    assert (
        "enabled: true" in merged["chart/values.yaml"] and "maxConcurrentChallenges: 60" in merged["chart/values.yaml"]
    )
    deployment = merged["chart/templates/deployment.yaml"]
    assert "annotations: {team: mine}" in deployment and "--max-concurrent-challenges=" in deployment
    assert "appVersion: v1.17.3" in merged["chart/Chart.yaml"] and "cert-manager:v1.17.3" in merged["chart/Chart.yaml"]
    # A file the user deleted stays deleted; everything outside chart/ is main's.
    assert state.deleted not in merged  # type: ignore[attr-defined]
    assert {p: t for p, t in merged.items() if not p.startswith("chart/")} == {
        p: t for p, t in before.items() if not p.startswith("chart/")
    }
    assert not any("<<<<<<<" in t for t in merged.values())
    # Two commits on main: U (upstream as imported, the next base) and M (the merge).
    m, u, main_head = state.history(branch)[:3]
    assert main_head == state.refs["main"]
    upstream = _text(state, u)
    assert {p: t for p, t in upstream.items() if p.startswith("chart/")} == plans["cert-manager v1.17.3"].files
    pr = state.pulls[1]
    assert pr["title"] == "Upgrade cert-manager v1.17.2 → v1.17.3" and not pr["draft"]
    body = pr["body"]
    for expected in (
        "from v1.17.2 to **v1.17.3**",
        "appVersion v1.17.2 → v1.17.3",
        f"<{SOURCE}>",
        "`chart/values.yaml`",
        "**conflicts (0)**: none",
        "values keys added upstream: `maxConcurrentChallenges`",
        "values keys removed upstream: none",
        "merged cleanly with your changes: `chart/templates/deployment.yaml`, `chart/values.yaml`",
    ):
        assert expected in body, (expected, body)
    # Repeating the same upgrade writes nothing (the PR is found).
    again, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0 and again.pull_request == 2 and len(state.pulls) == 2
    del m


def test_an_upstream_change_on_the_lines_the_user_edited_is_a_marked_conflict_in_a_draft(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    main = _text(state, "main")
    # Upstream v1.17.3 adds an argument right after `--v=2`; the user changed that very line.
    _user_commit(
        state, {"chart/templates/deployment.yaml": main["chart/templates/deployment.yaml"].replace("--v=2", "--v=4")}
    )
    result, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 6
    merged = _text(state, upgrade_branch("cert-manager"))["chart/templates/deployment.yaml"]
    assert "<<<<<<< main\n" in merged and "=======\n" in merged and ">>>>>>> upstream v1.17.3\n" in merged
    assert "--v=4" in merged and "--max-concurrent-challenges=" in merged
    pr = state.pulls[result.pull_request - 1]
    assert pr["draft"] and pr["title"].endswith("(1 conflict)")
    assert "**conflicts (1)**: `chart/templates/deployment.yaml` (both changed)" in pr["body"]


def test_a_file_the_user_deleted_and_upstream_changed_is_a_conflict(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    _user_commit(state, {}, deleted=("chart/values.yaml",))
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    merged = _text(state, upgrade_branch("cert-manager"))["chart/values.yaml"]
    assert merged.startswith("<<<<<<<") and "maxConcurrentChallenges: 60" in merged
    pr = state.pulls[result.pull_request - 1]
    assert pr["draft"] and "`chart/values.yaml` (deleted on main, changed upstream)" in pr["body"]


def test_a_repository_without_a_recorded_import_gets_every_differing_file_as_a_conflict(plans: dict[str, Any]) -> None:
    """The chart reached main without a merged import pull request (committed by hand, or the
    import's PR history lost): there is no base, so nothing of the user's is overwritten: every
    file that differs from upstream is a conflict to review, files only upstream has are added."""
    state = GitHubState()
    with github_stub(state) as url:
        old = {p: str(c) for p, c in plans["cert-manager v1.17.2"].files.items()}
        old["chart/values.yaml"] += "mine: true\n"
        _user_commit(state, old)
        result, writes = _run(url, plans["cert-manager v1.17.3"])
        assert writes == 6
        merged = _text(state, result.branch)
        pr = state.pulls[0]
        assert pr["draft"] and pr["title"] == "Propose cert-manager v1.17.3 (no recorded base) (3 conflicts)"
        assert "**none recorded**" in pr["body"]
        for path in ("chart/Chart.yaml", "chart/values.yaml", "chart/templates/deployment.yaml"):
            # libgit2 merges an add/add against an empty base: lines both sides hold stay shared.
            assert "\n<<<<<<< main\n" in f"\n{merged[path]}" and ">>>>>>> upstream v1.17.3\n" in merged[path], path
            assert f"`{path}` (added on both)" in pr["body"]
        unchanged = [
            p for p in old if p not in ("chart/Chart.yaml", "chart/values.yaml", "chart/templates/deployment.yaml")
        ]
        assert unchanged and all(merged[p] == old[p] for p in unchanged)


def test_a_newer_version_updates_the_open_upgrade_pr_and_a_declined_one_is_not_proposed_again(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    first, _ = _run(url, plans["cert-manager v1.17.3"])
    old_m = state.refs[upgrade_branch("cert-manager")]
    _user_commit(state, {"OWNERS": "ops\n"})  # main moves meanwhile
    v4 = _version3(plans)
    second, writes = _run(url, plans["cert-manager v1.17.3"], files=v4)
    assert writes == 6 and second.pull_request == first.pull_request
    # A fast-forward, never forced: the new U joins main's head (first: the PR's diff is against
    # main) and the older version's merge.
    u = state.objects[state.refs[upgrade_branch("cert-manager")]]["parents"][0]
    assert state.objects[u]["parents"] == [state.refs["main"], old_m]
    assert _text(state, upgrade_branch("cert-manager"))["OWNERS"] == "ops\n"
    assert [p["state"] for p in state.pulls] == ["closed", "open"]
    pr = state.pulls[1]
    assert pr["title"] == "Upgrade cert-manager v1.17.2 → v1.17.4"
    merged = _text(state, upgrade_branch("cert-manager"))
    assert "timeoutSeconds: 10" in merged["chart/values.yaml"] and "enabled: true" in merged["chart/values.yaml"]
    # Closed without merging: that version is declined, never proposed again.
    state.close_pull(2)
    declined, writes = _run(url, plans["cert-manager v1.17.3"], files=v4)
    assert writes == 0 and declined.pull_request == 2 and not declined.created and len(state.pulls) == 2


def test_the_users_commits_on_the_open_upgrade_branch_are_built_on_not_overwritten(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    branch = upgrade_branch("cert-manager")
    notes = "chart/NOTES-mine.txt"
    state.user_commit(branch, {notes: b"resolved by me\n"})
    mine = state.refs[branch]
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 6
    assert mine in state.history(branch)  # a fast-forward: nothing of the user's is dropped
    merged = _text(state, branch)
    assert merged[notes] == "resolved by me\n" and "timeoutSeconds: 10" in merged["chart/values.yaml"]
    pr = state.pulls[1]
    assert pr["state"] == "open" and pr["title"] == "Upgrade cert-manager v1.17.2 → v1.17.4"
    assert "values keys added upstream: `maxConcurrentChallenges`, `webhook`" in pr["body"]
    assert "upstream files of v1.17.3 as imported (the first commit of this branch" in pr["body"]
    # The user goes on committing on the branch: the same version is not merged again.
    state.user_commit(branch, {notes: b"resolved again\n"})
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 0 and len(state.pulls) == 2


def test_a_merged_upgrade_is_the_base_of_the_next(imported: tuple[GitHubState, str], plans: dict[str, Any]) -> None:
    state, url = imported
    result, _ = _run(url, plans["cert-manager v1.17.3"])
    state.merge_pull(result.pull_request)
    assert upgrade_branch("cert-manager") not in state.refs
    main = _text(state, "main")
    _user_commit(state, {"chart/values.yaml": main["chart/values.yaml"].replace("quay.io/", "mirror.example/")})
    again, writes = _run(url, plans["cert-manager v1.17.3"])
    assert writes == 0 and not again.created  # v1.17.3 is main's now
    nxt, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 6
    pr = state.pulls[nxt.pull_request - 1]
    assert pr["title"] == "Upgrade cert-manager v1.17.3 → v1.17.4" and not pr["draft"], pr["body"]
    values = _text(state, nxt.branch)["chart/values.yaml"]
    assert "mirror.example/jetstack" in values and "timeoutSeconds: 10" in values


def test_umbrella_mode_stays_a_dependency_bump(plans: dict[str, Any]) -> None:
    state = GitHubState()
    with github_stub(state) as url:
        _run(url, plans["redis 21.0.0"])
        state.merge_pull(1)
        main = _text(state, "main")
        _user_commit(
            state, {"chart/values.yaml": main["chart/values.yaml"].replace("redis: {}", "redis:\n  replica: 2")}
        )
        result, writes = _run(url, plans["redis 21.0.1"])
        assert writes == 6
        merged = _text(state, result.branch)
        changed = sorted(p for p in merged if merged[p] != _text(state, "main").get(p))
        assert changed == ["chart/Chart.lock", "chart/Chart.yaml", "chart/dependencies.sha256"]
        assert "version: 21.0.1" in merged["chart/Chart.yaml"] and "replica: 2" in merged["chart/values.yaml"]
        body = state.pulls[1]["body"]
        assert "from 21.0.0 to **21.0.1**" in body and "(umbrella mode)" in body and "appVersion 7.4.2 → 7.4.3" in body


FAULTS = {
    "502 before": Fault("status", 502, message="bad gateway"),
    "dropped after": Fault("drop-after"),
    "502 after": Fault("status-after", 502, message="bad gateway"),
}


def each_write_failing_once(
    state: GitHubState, prepared: GitHubState, attempt: Callable[..., tuple[Any, int]]
) -> Iterator[str]:
    """Each of the six writes of `attempt` fails once in each way (nothing done, done but the
    answer lost), from the state `prepared`; the engine re-runs the create, and one more run then
    writes nothing. Yields where it is, after each case, for the caller's own checks."""
    for name, fault in FAULTS.items():
        for n in range(6):
            vars(state).update(vars(copy.deepcopy(prepared)))
            state.write_faults = {prepared.writes + n: fault}
            try:
                attempt(max_attempts=1)
            except GitHubError:
                attempt()
            _, writes = attempt()
            where = f"write {n} {name}"
            assert writes == 0, where
            yield where


def test_every_upgrade_write_failing_once_in_turn_ends_in_one_pr(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    """Each of the six writes fails once in each way (nothing done, done but the answer lost);
    the engine re-runs the create; the end is always the same single pull request and tree."""
    state, url = imported
    prepared = copy.deepcopy(state)
    _run(url, plans["cert-manager v1.17.3"])
    expected = _text(state, upgrade_branch("cert-manager"))
    for where in each_write_failing_once(state, prepared, lambda **kw: _run(url, plans["cert-manager v1.17.3"], **kw)):
        assert [p["state"] for p in state.pulls] == ["closed", "open"], where
        assert _text(state, upgrade_branch("cert-manager")) == expected, where


def test_the_provider_proposes_the_upgrade_in_pulumi_up(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    """What `pulumi up` runs: the import's RepoCommit, replaced because its branch names the new
    version (the preview shows branch and title from -> to), creates the upgrade PR."""
    state, url = imported
    plan = plans["cert-manager v1.17.3"]
    text, binary = encode_binary(plan.files)
    props = {
        "owner": "o",
        "repo": "r",
        "files": text,
        "binary_files": binary,
        "executable": [],
        "message": plan.title,
        "token": "t0ken",
        "base": "main",
        "branch": plan.branch,
        "pr_title": plan.title,
        "pr_body": plan.body,
        "api_url": url,
        "upgrade": True,
    }
    provider = RepoCommitProvider()
    olds = {**props, "branch": plans["cert-manager v1.17.2"].branch, "pr_title": plans["cert-manager v1.17.2"].title}
    diff = provider.diff("id", olds, props)
    assert diff.changes and diff.replaces == ["branch"]
    outs = provider.create(props).outs
    assert outs is not None and outs["github_writes"] == 6 and outs["pull_request_url"] == state.pulls[1]["html_url"]


def test_merge_charts_with_an_empty_base_never_chooses() -> None:
    result = merge_charts({}, {"a": "mine\n", "b": "same\n"}, {"a": "theirs\n", "b": "same\n", "c": "new\n"})
    assert (
        [c.path for c in result.conflicts] == ["a"] and result.files["b"] == "same\n" and result.files["c"] == "new\n"
    )


def test_an_upgrade_needs_a_chart_yaml_that_names_its_upstream(imported: tuple[GitHubState, str]) -> None:
    _, url = imported
    with pytest.raises(GitHubError, match=r"scoutflo\.io/upstream"):
        import_or_upgrade(
            _client(url),
            owner="o",
            repo="r",
            files={"chart/Chart.yaml": "name: x\n"},
            message="m",
            branch="scoutflo/import-x-1",
        )


def _lint_step() -> str:
    workflow = yaml.safe_load((ROOT / "scoutflo/scaffold/.github/workflows/pr.yaml").read_text())
    steps = workflow["jobs"]["lint"]["steps"]
    names = [s.get("name") for s in steps]
    assert names.index("No merge conflict markers") < names.index("Lint")
    return str(steps[names.index("No merge conflict markers")]["run"])


def test_shellcheck_passes_the_conflict_step() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("needs shellcheck (make test installs it)")
    result = subprocess.run(
        ["shellcheck", "-s", "bash", "-"], input=_lint_step(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_pr_check_fails_on_conflict_markers_naming_the_files(tmp_path: Path) -> None:
    """The app repo's `pr` workflow step, run with bash (GitHub's `bash -e {0}`) in a checkout of a
    merge with one conflict: it fails and names the file; resolved, it passes."""
    result = merge_charts(
        {"chart/values.yaml": "a: 1\n", "chart/README.md": "Title\n=======\n"},
        {"chart/values.yaml": "a: 2\n", "chart/README.md": "Title\n=======\n"},
        {"chart/values.yaml": "a: 3\n", "chart/README.md": "Title\n=======\nmore\n"},
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    (tmp_path / "step.sh").write_text(_lint_step())

    def check(files: dict[str, str | bytes]) -> subprocess.CompletedProcess[str]:
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        for path, data in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_bytes(data if isinstance(data, bytes) else data.encode())
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], cwd=work, env=env, check=True)
        subprocess.run([*git, "add", "."], cwd=work, env=env, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "m"], cwd=work, env=env, check=True)
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", str(tmp_path / "step.sh")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    failed = check(result.files)
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [
        "::error file=chart/values.yaml::unresolved merge conflict markers (<<<<<<< / >>>>>>>): keep the version"
        " you want, delete the markers, commit"
    ]
    assert check({**result.files, "chart/values.yaml": "a: 2\n"}).returncode == 0


def test_every_write_of_an_update_of_the_open_pr_failing_once_in_turn_ends_in_one_pr(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    """The same for a newer version while the upgrade PR is open: the branch moved (forced over
    Scoutflo's own commits) and the PR's title and body replaced, never a second PR."""
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    prepared = copy.deepcopy(state)
    v4 = _version3(plans)
    _run(url, plans["cert-manager v1.17.3"], files=v4)
    expected, title = _text(state, upgrade_branch("cert-manager")), state.pulls[1]["title"]
    attempt = functools.partial(_run, url, plans["cert-manager v1.17.3"], files=v4)
    for where in each_write_failing_once(state, prepared, attempt):
        assert [p["state"] for p in state.pulls] == ["closed", "open"], where
        assert state.pulls[1]["title"] == title, where
        assert _text(state, upgrade_branch("cert-manager")) == expected, where


def test_text_from_a_chart_reaches_the_pr_only_when_plain(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    """Upstream's appVersion is the chart author's text: a mention, a link or a line break (which
    would forge a trailer line of the body) never reaches the title or the body."""
    state, url = imported
    files = dict(plans["cert-manager v1.17.3"].files)
    files["chart/Chart.yaml"] = str(files["chart/Chart.yaml"]).replace(
        "appVersion: v1.17.3", 'appVersion: "@evil [x](https://e.test)\\nScoutflo-Commit: forged"'
    )
    result, _ = _run(url, plans["cert-manager v1.17.3"], files=files)
    pr = state.pulls[result.pull_request - 1]
    assert "@evil" not in pr["body"] and "forged" not in pr["body"] and "@evil" not in pr["title"]
    assert "appVersion v1.17.2 → (not plain text: see Chart.yaml)" in pr["body"]


UPSTREAM = ROOT / "tests" / "data" / "upstream"


def _real(version: str) -> Any:
    """zenml's own chart as its PyPI wheel ships it (tests/data/upstream/README.md), prepared by
    the import's plan as it would be from the registry."""
    data = (UPSTREAM / f"zenml-{version}.tgz").read_bytes()
    fetched = FetchedChart("zenml", version, "sha256:" + hashlib.sha256(data).hexdigest(), SOURCE, data)
    return plan_import(app="mlops", mode="vendor", fetched=fetched, constraint="*", description="zenml")


def test_two_real_upstream_releases_merge_with_the_users_edits() -> None:
    """zenml 0.72.0 -> 0.73.0 (consecutive releases): upstream adds a `zenml.pro` block to
    values.yaml, rewrites parts of NOTES.txt and _environment.tpl. The user raised replicaCount,
    annotated a template upstream did not change, edited the head of one upstream changed, and
    deleted hpa.yaml; then set serverURL, on the line upstream's new comment lands against."""
    old, new = _real("0.72.0"), _real("0.73.0")
    state = GitHubState()
    with github_stub(state) as url:
        _run(url, old)
        state.merge_pull(1)
        main = _text(state, "main")
        edits = {
            "chart/values.yaml": main["chart/values.yaml"].replace("replicaCount: 1", "replicaCount: 3"),
            "chart/templates/server-deployment.yaml": "# reviewed by ops\n"
            + main["chart/templates/server-deployment.yaml"],
            "chart/templates/_environment.tpl": main["chart/templates/_environment.tpl"].replace(
                "Helpers for environment variables", "Helpers (ours) for environment variables"
            ),
        }
        assert all(edits[p] != main[p] for p in edits)
        _user_commit(state, edits, deleted=("chart/templates/hpa.yaml",))
        prepared = copy.deepcopy(state)
        result, writes = _run(url, new)
        assert writes == 6
        merged = _text(state, result.branch)
        assert "replicaCount: 3" in merged["chart/values.yaml"] and "  pro:\n" in merged["chart/values.yaml"]
        assert merged["chart/templates/server-deployment.yaml"] == edits["chart/templates/server-deployment.yaml"]
        env = merged["chart/templates/_environment.tpl"]
        assert "Helpers (ours)" in env and "pro_api_url" in env
        assert "ZenML Pro server API is now active" in merged["chart/templates/NOTES.txt"]
        assert "chart/templates/hpa.yaml" not in merged
        assert not any("<<<<<<<" in t for t in merged.values())
        body = state.pulls[1]["body"]
        assert "from 0.72.0 to **0.73.0**" in body and "**conflicts (0)**" in body
        assert "`zenml.pro.enabled`" in body and "values keys removed upstream" in body
        # The same upgrade over a serverURL the user set: upstream's new comment lines end on
        # the line before it, a conflict to review.
        vars(state).update(vars(prepared))
        values = _text(state, "main")["chart/values.yaml"]
        _user_commit(
            state, {"chart/values.yaml": values.replace("  serverURL:\n", "  serverURL: https://ml.example\n")}
        )
        result, writes = _run(url, new)
        merged = _text(state, result.branch)["chart/values.yaml"]
        pr = state.pulls[result.pull_request - 1]
        assert writes == 6 and pr["draft"] and "<<<<<<< main\n" in merged and "https://ml.example" in merged
        assert "`chart/values.yaml` (both changed)" in pr["body"]


def test_a_commit_pushed_to_the_upgrade_branch_during_an_update_is_never_dropped(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    """The branch moves only as a fast-forward: a push landing between the run's read of the
    head and its move makes the move fail, and the next run builds on that commit. Main moved
    meanwhile too: the new U has main's head as first parent (the PR's diff is against main)."""
    state, url = imported
    _run(url, plans["cert-manager v1.17.3"])
    branch = upgrade_branch("cert-manager")
    old_m = state.refs[branch]
    _user_commit(state, {"OWNERS": "ops\n"})

    class Racing(GitHub):
        def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
            if method == "PATCH" and path.endswith(f"/git/refs/heads/{branch}") and state.refs[branch] == old_m:
                state.user_commit(branch, {"chart/NOTES-mine.txt": b"pushed meanwhile\n"})
            return super().call(method, path, body, **kwargs)

    gh = Racing("t0ken", api=url, sleep=lambda _s: None, pacer=Pacer())
    kwargs = {"owner": "o", "repo": "r", "message": "m", "branch": plans["cert-manager v1.17.3"].branch}
    with pytest.raises(GitHubError, match="not a fast forward"):
        import_or_upgrade(gh, files=_version3(plans), **kwargs)
    pushed = state.refs[branch]
    _, writes = _run(url, plans["cert-manager v1.17.3"], files=_version3(plans))
    assert writes == 6 and pushed in state.history(branch)
    merged = _text(state, branch)
    assert (
        merged["chart/NOTES-mine.txt"] == "pushed meanwhile\n" and "timeoutSeconds: 10" in merged["chart/values.yaml"]
    )


def test_merge_charts_names_every_kind_of_conflict_and_never_merges_a_binary() -> None:
    base = {"edited": "a\nb\n", "gone-upstream": "x\n", "gone-here": "y\n", "bin": b"\0old", "kept": "k\n"}
    ours = {"edited": "a\nmine\n", "gone-upstream": "x mine\n", "bin": b"\0mine", "kept": "k\n"}
    theirs = {"edited": "a\ntheirs\n", "gone-here": "y new\n", "bin": b"\0new", "kept": "k\n", "new": "n\n"}
    result = merge_charts(base, ours, theirs, their_label="upstream 2.0.0")
    assert {c.path: c.kind for c in result.conflicts} == {
        "edited": "both changed",
        "gone-upstream": "changed on main, deleted upstream",
        "gone-here": "deleted on main, changed upstream",
        "bin": "binary changed on both",
    }
    assert result.files["edited"] == "a\n<<<<<<< main\nmine\n=======\ntheirs\n>>>>>>> upstream 2.0.0\n"
    assert result.files["gone-upstream"] == "<<<<<<< main\nx mine\n=======\n>>>>>>>\n"
    assert result.files["gone-here"] == "<<<<<<<\n=======\ny new\n>>>>>>> upstream 2.0.0\n"
    assert result.files["bin"] == b"\0mine" and result.files["kept"] == "k\n" and result.files["new"] == "n\n"
    assert result.taken == ("new",) and result.kept_deleted == ()


def test_a_file_on_main_beyond_helms_cap_is_a_typed_error_before_any_write(
    imported: tuple[GitHubState, str], plans: dict[str, Any]
) -> None:
    state, url = imported
    huge = b"x" * (5 * 1024 * 1024 + 1)
    _user_commit(state, {"chart/files/huge.txt": huge.decode()})
    writes = state.writes
    with pytest.raises(GitHubError, match=r"chart/files/huge\.txt is 5242881 bytes; an upgrade reads at most"):
        _run(url, plans["cert-manager v1.17.3"])
    # Refused on the tree's sizes: nothing written, the file itself never read.
    assert state.writes == writes
    assert not any(path.endswith(git_blob_id(huge)) for _m, path, _b in state.requests)
