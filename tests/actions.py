"""The app repo's workflows run as GitHub Actions runs them, on loopback git repositories.

`Hosting` keeps bare repositories as GitHub does for one base repository and its forks: pull
requests with `refs/pull/N/head` in the base repository (GitHub keeps it there, so a PR's commits
stay fetchable from the base even when the fork is deleted), squash merges, "update branch".
`run_workflow` runs a workflow's jobs in `needs` order (job `if`, `needs.<job>.outputs`);
`run_job` executes one job step by step: `run:` steps in `bash -e` with the step's `env`
and GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files, `${{ }}` expressions over the event payload, and
actions/checkout emulated from its source (v7.0.1, the pinned commit): the inputs `ref`,
`repository`, `fetch-depth`, `persist-credentials` and the fetch and checkout it does with them.
Expressions or actions it does not know raise, so a workflow change cannot silently bypass it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"


class Conflict(Exception):
    pass


def sh(cmd: list[str], cwd: Path | None, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class PullRequest:
    number: int
    head_repo: str
    head_ref: str
    base_ref: str = "main"
    merged: bool = False


@dataclass
class Hosting:
    """Bare repositories named `owner/name` under `root`; `base` is the app's repository."""

    root: Path
    env: dict[str, str]
    base: str = "acme/storefront"
    pulls: list[PullRequest] = field(default_factory=list)

    def path(self, full_name: str) -> Path:
        return self.root / "hosted" / f"{full_name}.git"

    def url(self, full_name: str) -> str:
        return self.path(full_name).as_uri()

    def git(self, full_name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(["git", "--git-dir", str(self.path(full_name)), *args], None, self.env, check=check)

    def create(self, scaffold: Path) -> str:
        """The base repository with `scaffold` as its first commit on main; returns its sha."""
        bare = self.path(self.base)
        bare.parent.mkdir(parents=True, exist_ok=True)
        sh(["git", "init", "-q", "--bare", "-b", "main", str(bare)], None, self.env)
        # GitHub serves any commit reachable from a ref, refs/pull/* included.
        self.git(self.base, "config", "uploadpack.allowReachableSHA1InWant", "true")
        work = self.clone(self.base, "scaffold")
        for item in scaffold.iterdir():
            if item.is_dir():
                shutil.copytree(item, work / item.name)
            else:
                shutil.copy2(item, work / item.name)
        return self.commit_all(work, "scaffold", push="main")

    def fork(self, owner: str) -> str:
        name = f"{owner}/{self.base.split('/')[1]}"
        sh(["git", "clone", "-q", "--bare", str(self.path(self.base)), str(self.path(name))], None, self.env)
        return name

    def delete(self, full_name: str) -> None:
        shutil.rmtree(self.path(full_name))

    def clone(self, full_name: str, label: str) -> Path:
        work = Path(tempfile.mkdtemp(prefix=f"{label.replace('/', '-')}-", dir=self.root))
        sh(["git", "clone", "-q", self.url(full_name), str(work)], None, self.env)
        return work

    def commit_all(self, work: Path, message: str, push: str | None = None, author: str | None = None) -> str:
        env = dict(self.env)
        if author:
            env.update(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=f"{author}@example.com")
        sh(["git", "add", "-A"], work, env)
        sh(["git", "commit", "-q", "-m", message], work, env)
        if push:
            sh(["git", "push", "-q", "origin", f"HEAD:refs/heads/{push}"], work, env)
        return sh(["git", "rev-parse", "HEAD"], work, env).stdout.strip()

    def sha(self, full_name: str, ref: str) -> str:
        return self.git(full_name, "rev-parse", ref).stdout.strip()

    def open_pr(self, head_repo: str, head_ref: str, base_ref: str = "main") -> PullRequest:
        pr = PullRequest(len(self.pulls) + 1, head_repo, head_ref, base_ref)
        self.pulls.append(pr)
        self.sync(pr)
        return pr

    def sync(self, pr: PullRequest) -> None:
        """What GitHub does on every push to the head branch: refs/pull/N/head follows it."""
        if self.path(pr.head_repo).exists():
            self.git(
                self.base,
                "fetch",
                "-q",
                self.url(pr.head_repo),
                f"+refs/heads/{pr.head_ref}:refs/pull/{pr.number}/head",
            )

    def event(self, pr: PullRequest, action: str = "synchronize", **extra: Any) -> dict[str, Any]:
        """The pull_request payload; `head.repo` is null once the head repository is deleted."""
        alive = self.path(pr.head_repo).exists()
        return {
            "action": action,
            "number": pr.number,
            "pull_request": {
                "number": pr.number,
                "head": {
                    "sha": self.sha(self.base, f"refs/pull/{pr.number}/head"),
                    "ref": pr.head_ref,
                    "repo": {"full_name": pr.head_repo} if alive else None,
                },
                "base": {"ref": pr.base_ref, "repo": {"full_name": self.base}},
            },
            "repository": {"full_name": self.base},
            **extra,
        }

    def head_tip(self, pr: PullRequest) -> str:
        return self.sha(pr.head_repo, f"refs/heads/{pr.head_ref}")

    def update_branch(self, pr: PullRequest) -> str:
        """GitHub's "Update branch": merges the base into the head branch (a merge commit)."""
        work = self.clone(pr.head_repo, "update")
        sh(["git", "checkout", "-q", pr.head_ref], work, self.env)
        sh(
            ["git", "fetch", "-q", self.url(self.base), f"+refs/heads/{pr.base_ref}:refs/remotes/base/{pr.base_ref}"],
            work,
            self.env,
        )
        merged = sh(["git", "merge", "-q", "--no-edit", f"base/{pr.base_ref}"], work, self.env, check=False)
        if merged.returncode != 0:
            raise Conflict(f"PR #{pr.number} conflicts with {pr.base_ref}:\n{merged.stdout}{merged.stderr}")
        sh(["git", "push", "-q", "origin", f"HEAD:refs/heads/{pr.head_ref}"], work, self.env)
        self.sync(pr)
        return self.head_tip(pr)

    def squash_merge(self, pr: PullRequest) -> tuple[str, str]:
        """Squash-merges the PR into its base; returns (before, after) of the base branch."""
        before = self.sha(self.base, pr.base_ref)
        head = self.sha(self.base, f"refs/pull/{pr.number}/head")
        tree = self.git(self.base, "merge-tree", "--write-tree", before, head, check=False)
        if tree.returncode != 0:
            raise Conflict(f"PR #{pr.number} conflicts with {pr.base_ref}:\n{tree.stdout}")
        after = self.git(
            self.base, "commit-tree", tree.stdout.split()[0], "-p", before, "-m", f"PR #{pr.number}"
        ).stdout.strip()
        self.git(self.base, "update-ref", f"refs/heads/{pr.base_ref}", after, before)
        pr.merged = True
        return before, after

    def changed(self, before: str, after: str) -> list[str]:
        return self.git(self.base, "diff", "--name-only", before, after).stdout.split()


# ---------------------------------------------------------------- workflow semantics


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as true
    return doc


def triggers(
    workflow: dict[str, Any], event: str, *, action: str = "", branch: str = "main", paths: Sequence[str] = ()
) -> bool:
    """Whether GitHub starts this workflow. pull_request without `types` means opened,
    synchronize, reopened; `branches` filters the base (pull_request) or pushed branch; `paths`
    needs at least one changed file matching (GitHub docs, "Events that trigger workflows")."""
    spec = workflow["on"].get(event)
    if spec is None and event not in workflow["on"]:
        return False
    spec = spec or {}
    if event == "pull_request" and action not in spec.get("types", ["opened", "synchronize", "reopened"]):
        return False
    if "branches" in spec and not any(fnmatch.fnmatch(branch, b) for b in spec["branches"]):
        return False
    if "paths" in spec and not any(_glob(p, pattern) for p in paths for pattern in spec["paths"]):
        return False
    return True


def _glob(path: str, pattern: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(regex, path) is not None


def surviving_runs(workflow: dict[str, Any], runs: list[Any]) -> list[Any]:
    """Runs of one concurrency group queued while the first is running: by default a group holds
    one running and one pending run and a newer run cancels the pending one; `queue: max` keeps
    every pending run in order (GitHub docs "Control the concurrency of workflows and jobs";
    changelog 2026-05-07)."""
    concurrency = workflow.get("concurrency") or {}
    if not concurrency or concurrency.get("queue") == "max" or len(runs) <= 2:
        return list(runs)
    return [runs[0], runs[-1]]


# ---------------------------------------------------------------- job runner


@dataclass
class JobResult:
    ok: bool
    failed_step: str = ""
    log: str = ""
    summary: str = ""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    workspace: Path | None = None
    job_outputs: dict[str, str] = field(default_factory=dict)
    """The job's `outputs:`, what later jobs read as `needs.<job>.outputs`."""


_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _lookup(path: str, ctx: dict[str, Any]) -> Any:
    # A missing property is null, as in GitHub's expressions (e.g. head.repo of a deleted fork).
    value: Any = ctx
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def evaluate(expr: str, ctx: dict[str, Any]) -> Any:
    def operand(text: str) -> Any:
        text = text.strip()
        if text.startswith("'") and text.endswith("'"):
            return text[1:-1]
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", text):
            raise NotImplementedError(f"expression {expr!r}")
        if text.split(".")[0] not in ("github", "steps", "vars", "needs"):
            raise NotImplementedError(f"context of {expr!r}")
        return _lookup(text, ctx)

    for op in ("==", "!="):
        if op in expr:
            left, right = expr.split(op, 1)
            same = str(operand(left)).lower() == str(operand(right)).lower()
            return same if op == "==" else not same
    return operand(expr)


def render(text: str, ctx: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        value = evaluate(m[1], ctx)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _EXPR.sub(one, text)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass
class Runner:
    hosting: Hosting
    env: dict[str, str]
    skip_steps: tuple[str, ...] = ()
    """Step names replaced by nothing (cloud log-ins the loopback registry does not need)."""
    variables: dict[str, str] = field(default_factory=dict)
    """The `vars` context (Actions variables), for workflows that still read them."""

    def run_workflow(self, workflow: dict[str, Any], github: dict[str, Any]) -> dict[str, JobResult | None]:
        """Every job of the run in `needs` order, None for a job that did not run. A job runs when
        every job it needs succeeded (the implicit `success()` of a job's `if`) and its `if`
        holds; it reads their outputs as `needs.<job>.outputs` (GitHub docs, "Using jobs in a
        workflow", jobs.<job_id>.needs and jobs.<job_id>.outputs)."""
        jobs = workflow["jobs"]
        results: dict[str, JobResult | None] = {}
        while len(results) < len(jobs):
            ready = [j for j in jobs if j not in results and all(n in results for n in _needs(jobs[j]))]
            if not ready:
                raise ValueError(f"jobs {sorted(set(jobs) - set(results))} need each other")
            for job in ready:
                needed = {n: results[n] for n in _needs(jobs[job])}
                needs = {n: {"outputs": r.job_outputs if r else {}} for n, r in needed.items()}
                condition = str(jobs[job].get("if", "true")).removeprefix("${{").removesuffix("}}").strip()
                runs = all(r is not None and r.ok for r in needed.values()) and (
                    condition == "true" or evaluate(condition, {"github": github, "needs": needs})
                )
                results[job] = self.run_job(workflow, job, github, needs) if runs else None
        return results

    def run_job(
        self, workflow: dict[str, Any], job: str, github: dict[str, Any], needs: dict[str, Any] | None = None
    ) -> JobResult:
        tmp = Path(tempfile.mkdtemp(prefix="run-", dir=self.hosting.root))
        workspace = tmp / "workspace"
        workspace.mkdir()
        summary = tmp / "summary.md"
        summary.touch()
        ctx: dict[str, Any] = {"github": github, "steps": {}, "vars": self.variables, "needs": needs or {}}
        result = JobResult(ok=True, workspace=workspace)
        env = dict(self.env)
        for index, step in enumerate(workflow["jobs"][job]["steps"]):
            name = step.get("name") or step.get("uses", "") or f"step {index}"
            if "if" in step and not evaluate(str(step["if"]).removeprefix("${{").removesuffix("}}").strip(), ctx):
                continue
            if name in self.skip_steps:
                continue
            # Inputs reach an action as strings; YAML's booleans as "true"/"false".
            inputs = {k: render(_text(v), ctx) for k, v in (step.get("with") or {}).items()}
            result.inputs[name] = inputs
            outputs: dict[str, str] = {}
            if "uses" in step:
                ok, log = self._action(step["uses"], inputs, github, workspace, env)
            else:
                step_env = {k: render(_text(v), ctx) for k, v in (step.get("env") or {}).items()}
                output = tmp / f"output-{index}"
                output.touch()
                script = tmp / f"step-{index}.sh"
                script.write_text(render(step["run"], ctx))
                full = {
                    **env,
                    **step_env,
                    "GITHUB_ACTIONS": "true",
                    "GITHUB_OUTPUT": str(output),
                    "GITHUB_STEP_SUMMARY": str(summary),
                    "GITHUB_REPOSITORY": github["repository"],
                    "GITHUB_SHA": github["sha"],
                    "GITHUB_REF": github["ref"],
                    "GITHUB_BASE_REF": github.get("base_ref", ""),
                    "GITHUB_WORKSPACE": str(workspace),
                    "RUNNER_TEMP": str(tmp),
                }
                # GitHub's default shell on Linux: bash -e {0}
                proc = sh(["bash", "--noprofile", "--norc", "-e", str(script)], workspace, full, check=False)
                ok, log = proc.returncode == 0, proc.stdout + proc.stderr
                for line in output.read_text().splitlines():
                    if "=" in line:
                        k, v = line.split("=", 1)
                        outputs[k] = v
            result.log += f"--- {name}\n{log}"
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs}
                result.outputs[step["id"]] = outputs
            if "aws-actions/configure-aws-credentials" in step.get("uses", ""):
                env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = inputs["aws-region"]
            if not ok:
                result.ok, result.failed_step = False, name
                break
        result.summary = summary.read_text()
        if result.ok:
            outputs_spec = workflow["jobs"][job].get("outputs") or {}
            result.job_outputs = {k: render(_text(v), ctx) for k, v in outputs_spec.items()}
        return result

    def _action(
        self, uses: str, inputs: dict[str, str], github: dict[str, Any], workspace: Path, env: dict[str, str]
    ) -> tuple[bool, str]:
        if uses == CHECKOUT:
            try:
                return True, self._checkout(inputs, github, workspace, env)
            except AssertionError as err:
                return False, str(err)
        if uses.startswith("aws-actions/configure-aws-credentials@"):
            return True, ""  # the loopback registry needs no AWS credentials
        raise NotImplementedError(f"no emulation of {uses}")

    def _checkout(self, inputs: dict[str, str], github: dict[str, Any], workspace: Path, env: dict[str, str]) -> str:
        """actions/checkout v7.0.1 (3d3c42e): src/input-helper.ts:73-95 (ref/commit from the
        inputs or the event), src/git-source-provider.ts:188-230 (fetch), src/ref-helper.ts
        getRefSpecForAllHistory/getRefSpec/testRef/getCheckoutInfo (what and how)."""
        repository = inputs.get("repository") or github["repository"]
        ref, commit = inputs.get("ref", ""), ""
        if not ref and repository == github["repository"]:
            ref, commit = github["ref"], github["sha"]
        elif re.fullmatch(r"[0-9a-fA-F]{40}", ref):
            ref, commit = "", ref
        if not self.hosting.path(repository).exists():
            raise AssertionError(f"remote: Repository not found: {repository}")
        git = ["git", "-C", str(workspace)]
        sh([*git, "init", "-q"], None, env)
        sh([*git, "remote", "add", "origin", self.hosting.url(repository)], None, env)

        def has(sha: str) -> bool:
            return sh([*git, "cat-file", "-e", f"{sha}^{{commit}}"], None, env, check=False).returncode == 0

        def test_ref() -> bool:
            if not commit:
                return True
            if not ref:
                return has(commit)
            if ref.startswith("refs/heads/"):
                tip = sh(
                    [*git, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{ref[11:]}"], None, env, check=False
                )
                return tip.stdout.strip() == commit
            return True

        def refspec() -> list[str]:
            if commit and ref.startswith("refs/heads/"):
                return [f"+{commit}:refs/remotes/origin/{ref[11:]}"]
            if commit and ref.startswith("refs/pull/"):
                return [f"+{commit}:refs/remotes/pull/{ref[10:]}"]
            if commit:
                return [commit]
            if ref.startswith("refs/heads/"):
                return [f"+{ref}:refs/remotes/origin/{ref[11:]}"]
            if ref.startswith("refs/"):
                return [f"+{ref}:{ref}"]
            return [f"+refs/heads/{ref}*:refs/remotes/origin/{ref}*", f"+refs/tags/{ref}*:refs/tags/{ref}*"]

        log = ""
        if inputs.get("fetch-depth", "1") == "0":
            specs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
            if ref.startswith("refs/pull/"):
                specs.append(f"+{commit or ref}:refs/remotes/pull/{ref[10:]}")
            log += sh([*git, "fetch", "-q", "--prune", "origin", *specs], None, env).stderr
            if not test_ref():
                log += sh([*git, "fetch", "-q", "origin", *refspec()], None, env).stderr
        else:
            log += sh([*git, "fetch", "-q", "--no-tags", "origin", *refspec()], None, env).stderr
        if not test_ref():
            raise AssertionError(f"The ref '{ref}' does not point to the expected commit '{commit}'")
        # getCheckoutInfo
        if not ref:
            target = ["--detach", commit]
        elif ref.startswith("refs/heads/"):
            target = ["-B", ref[11:], f"refs/remotes/origin/{ref[11:]}"]
        elif ref.startswith("refs/"):
            target = ["--detach", commit or ref]
        elif (
            sh([*git, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{ref}"], None, env, check=False).returncode
            == 0
        ):
            target = ["-B", ref, f"refs/remotes/origin/{ref}"]
        else:
            raise AssertionError(f"A branch or tag with the name '{ref}' could not be found")
        sh([*git, "checkout", "-q", "--force", *target], None, env)
        if inputs.get("persist-credentials", "true") != "false":
            # What the action leaves in .git/config for later steps (src/git-auth-helper.ts).
            sh(
                [*git, "config", "--local", "http.https://github.com/.extraheader", "AUTHORIZATION: basic ***"],
                None,
                env,
            )
        return log


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def git_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
