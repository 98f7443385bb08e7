"""One chart cache for every tenant (Backend.chart_cache_dir): the backend gives each tenant's
stack the same `scoutflo:chartCacheDir`, and the real program of three tenants, run one after
another as a sweep does, fetches the upstream chart once from a Helm repository on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from automation import operations as ops
from tests.conftest import run_main
from tests.loopback import serve
from tests.program_copy import program_copy
from tests.test_operations import FAKE, tenant


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> Iterator[tuple[str, Counter[str]]]:
    """A Helm repository (made by the real helm) that counts the requests for each path."""
    root = tmp_path_factory.mktemp("repo")
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "HELM_CONFIG_HOME": str(root / ".c")}
    for args in (["create", "demo"], ["package", "demo", "--version", "1.2.0", "-d", "pkg"], ["repo", "index", "pkg"]):
        subprocess.run(["helm", *args], cwd=root, env=env, check=True, capture_output=True, timeout=120)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    class Counting(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                seen[self.path] += 1
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve(functools.partial(Counting, directory=str(root / "pkg"))) as url:
        yield url, seen


def test_three_tenants_share_one_cache_and_fetch_the_chart_once(
    chart_repo: tuple[str, Counter[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = chart_repo
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    (tmp_path / "state").mkdir()
    cache = tmp_path / "chart-cache"
    backend = ops.Backend(
        url=f"file://{tmp_path / 'state'}",
        secrets_provider="passphrase",
        state_dir=tmp_path / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
        chart_cache_dir=cache,
    )
    stacks = ops.Stacks(backend, project_dir=program_copy(tmp_path / "program"))
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "demo.yaml").write_text(
        yaml.safe_dump(
            {"name": "demo", "description": "Demo", "source": {"repo": url, "chart": "demo", "version": ">=1.0.0"}}
        )
    )
    seen.clear()
    for name in ("acme", "globex", "initech"):
        ops.preview(tenant(name), stacks)
        stack_file = yaml.safe_load((stacks.tenant_dir(name) / f"Pulumi.{name}.yaml").read_text())
        given = stack_file["config"]["scoutflo:chartCacheDir"]
        assert given == str(cache.resolve()), "every tenant's stack gets the backend's one cache"
        # The tenant's program, as the CLI runs it with that stack config, importing a public chart.
        recording = run_main(
            {
                "scoutflo:tenant": name,
                "scoutflo:chartCacheDir": given,
                "scoutflo:catalogPath": str(catalog),
                "scoutflo:apps": [{"name": "shop", "chart": "demo", "mode": "vendor"}],
            }
        )
        assert any(r.name == "shop-import" for r in recording.resources)
    assert seen == {"/index.yaml": 1, "/demo-1.2.0.tgz": 1}, f"one fetch for three tenants, got {dict(seen)}"
    assert len(list((cache / "blobs" / "anonymous" / "sha256").iterdir())) == 1
