"""GitHub writes of a first `pulumi up`, per app and per tenant (GitHub's secondary limits: 80
content-generating requests a minute, 500 an hour per token). Asserts nothing; prints figures.

The program runs under mocks with one template app and one public-chart app (served by a loopback
Helm repository). Our dynamic resources' writes are MEASURED: per app, the recorded inputs of its
AppRepository and then of its RepoCommits are replayed through their providers' create against
one GitHub stand-in that starts without the repository. pulumi-github resources are bridged from
terraform-provider-github; their writes on create are read in its source
(integrations/terraform-provider-github at v6.13.0, commit 20728bb: the `upstream` submodule of
pulumi/pulumi-github v6.15.0, the version pinned; github/…, file:line below) and tabulated.
Usage: python bench/github_writes.py [--tenant-apps 40] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automation import render
from bench import _smoke
from components.app_repository import AppRepositoryProvider
from components.repo_commit import RepoCommitProvider
from tests.conftest import run_main
from tests.github_stub import GitHubState, github_stub
from tests.loopback import static_http

REPOSITORY = render.REPOSITORY_TYPE
LEGACY_REPOSITORY_WRITES = (
    "pulumi-github's Repository, which AppRepository replaces, made 5 for the same repository: "
    "resource_github_repository.go:758 create; :771 topics PUT; :785 -> Update: :961 Edit (always), "
    ":994 topics PUT again, :1011 visibility Edit (new resource)"
)


# type -> (writes on create, where the provider makes them)
PROVIDER_WRITES: dict[str, tuple[int, str]] = {
    "github:index/branchDefault:BranchDefault": (
        0,
        "resource_github_branch_default.go:138-165 writes only when the owner's default is not `main` (+1 rename)",
    ),
    "github:index/branchProtection:BranchProtection": (
        1,
        "resource_github_branch_protection.go:263 createBranchProtectionRule mutation",
    ),
}
COMMIT_TYPE = render.DYNAMIC_TYPE


def chart_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        entries = {
            "demo/Chart.yaml": b"apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: '1'\n",
            "demo/values.yaml": b"replicaCount: 1\n",
        }
        for i in range(40):
            entries[f"demo/templates/cm-{i:02}.yaml"] = (
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n".encode()
            )
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def record(tmp: Path) -> render.Recording:
    root = tmp / "repo"
    root.mkdir()
    data = chart_tgz()
    (root / "demo-1.0.0.tgz").write_bytes(data)
    entry = {"version": "1.0.0", "urls": ["demo-1.0.0.tgz"], "digest": hashlib.sha256(data).hexdigest()}
    (root / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": [entry]}}))
    catalog = tmp / "catalog"
    catalog.mkdir()
    with static_http(root) as url:
        (catalog / "demo.yaml").write_text(
            yaml.safe_dump(
                {"name": "demo", "description": "Demo", "source": {"repo": url, "chart": "demo", "version": ">=1.0.0"}}
            )
        )
        return run_main(
            {
                "scoutflo:catalogPath": str(catalog),
                "scoutflo:chartCacheDir": str(tmp / "cache"),
                "scoutflo:apps": [{"name": "template-app", "chart": "webapp"}, {"name": "public-app", "chart": "demo"}],
            }
        )


def measured_writes(recording: render.Recording) -> dict[str, int]:
    """URN -> writes of each AppRepository and RepoCommit, replayed per app in the engine's order
    (repository, scaffold on main, import) against a stand-in that starts without the repository."""
    out: dict[str, int] = {}
    by_repo: dict[str, list[render.Registered]] = defaultdict(list)
    for res in recording.resources:
        if res.type == REPOSITORY:
            by_repo[res.inputs["name"]].append(res)
        elif res.type == COMMIT_TYPE:
            by_repo[res.inputs["repo"]].append(res)
    for resources in by_repo.values():
        owner = next(r.inputs["owner"] for r in resources if r.type == REPOSITORY)
        # The first commit shows a moment after the create: the scaffold waits for it (no write).
        state = GitHubState(repo=None, accounts={owner: "Organization"}, empty_window=2)
        with github_stub(state) as api:
            for res in sorted(resources, key=lambda r: (r.type != REPOSITORY, bool(r.inputs.get("branch")))):
                props: dict[str, Any] = {**res.inputs, "token": "t0ken", "api_url": api}
                provider = AppRepositoryProvider() if res.type == REPOSITORY else RepoCommitProvider()
                out[res.urn] = provider.create(props).outs["github_writes"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant-apps", type=int, default=40)
    args = _smoke.parse(parser, "the same two apps; a tenant of 2", tenant_apps=2)
    with tempfile.TemporaryDirectory() as tmp:
        recording = record(Path(tmp))
    owner = render.app_of(recording, {"template-app", "public-app"})
    measured = measured_writes(recording)
    per_app: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for res in recording.resources:
        app = owner[res.urn]
        if res.type == COMMIT_TYPE:
            per_app[app][f"RepoCommit {res.name.removeprefix(app + '-')}"] += measured[res.urn]
        elif res.type == REPOSITORY:
            per_app[app]["AppRepository"] += measured[res.urn]
        elif res.type in PROVIDER_WRITES:
            per_app[app][res.type.split(":")[-1]] += PROVIDER_WRITES[res.type][0]
        elif res.type.startswith("github:"):
            raise SystemExit(f"no write count for {res.type}: read its create in terraform-provider-github")
    print("GitHub writes of a first `pulumi up` (owner's default branch already `main`)")
    # docs/figures.md's table: one row per app, a column per resource that writes.
    columns = [
        ("AppRepository", "AppRepository"),
        ("BranchDefault", "BranchDefault"),
        ("scaffold commit", "RepoCommit initial"),
        ("BranchProtection", "BranchProtection"),
        ("import commit + PR", "RepoCommit import"),
    ]
    unknown = {k for parts in per_app.values() for k in parts} - {key for _, key in columns}
    if unknown:
        raise SystemExit(f"writes of {sorted(unknown)} have no column in the table")
    print(f"  {'app':<13}" + "".join(f" {title:>{len(title)}}" for title, _ in columns) + f" {'total':>5}")
    totals = {}
    for app, label in (("template-app", "template"), ("public-app", "public chart")):
        parts = per_app[app]
        totals[app] = sum(parts.values())
        cells = "".join(f" {parts[key] if key in parts else '–':>{len(title)}}" for title, key in columns)
        print(f"  {label:<13}{cells} {totals[app]:>5}")
    print("  owner's default branch not `main`: +1 per app (BranchDefault renames it)")
    print("  where the provider writes:")
    for type_, (n, where) in PROVIDER_WRITES.items():
        print(f"    {type_.split(':')[-1]}: {n}  {where}")
    print("  AppRepository, RepoCommit: measured against the stand-in (+1 per distinct binary file)")
    print(f"    ({LEGACY_REPOSITORY_WRITES})")
    n = args.tenant_apps
    for label, share in (("all template", 0), ("half public", n // 2), ("all public", n)):
        total = (n - share) * totals["template-app"] + share * totals["public-app"]
        print(f"  tenant of {n} apps, {label:<12}: {total:>4} writes, {total / 500:.2f} of the hourly 500")


if __name__ == "__main__":
    main()
