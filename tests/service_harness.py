"""The service run for real: PostgreSQL from tests/postgres.py, workers as `python -m automation worker`
subprocesses, each with a state dir of its own (a "host"), all sharing one file:// state backend and
one plan store, over the stand-in CLI (tests/fake_pulumi).

The stand-in is reached through a wrapper `pulumi` that takes an exclusive flock on a file named
after the stack for the life of each CLI process (it execs the stand-in, which keeps the open file
and so the lock): a second CLI process of the same tenant while one runs writes a line to
`overlaps`. `exec` keeps one process, so PR_SET_PDEATHSIG and the process group are the CLI's own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from service import jobs
from service.api import ServiceApi
from service.tenants import DirectoryTenantSource
from tests.kubeconfigs import kubeconfig_text
from tests.program_copy import program_copy

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_pulumi"
STALE = 6.0
"""SCOUTFLO_HEARTBEAT_STALE_SECONDS of the tests: a killed worker is reaped within seconds, and a
live one (heartbeat every 0.5 s; its watchdog fires at half this) is never taken for dead on a
loaded machine."""

WRAPPER = """#!/bin/sh
# The stand-in pulumi under an flock per stack (tests/service_harness.py).
stack=none
prev=
for arg in "$@"; do
  if [ "$prev" = "--stack" ]; then stack=$arg; fi
  prev=$arg
done
if [ "$stack" != none ]; then
  exec 9>>"{locks}/$stack.lock"
  flock -n 9 || echo "$stack $*" >> "{locks}/overlaps"
fi
exec "{fake}/pulumi" "$@"
"""


def tenant_spec(tenant: str, apps: list[str] | None = None) -> dict[str, Any]:
    """A tenant spec with credentials of its own (each a string no table may ever hold)."""
    return {
        "id": tenant,
        "github": {"owner": f"{tenant}-gitops", "token": f"ghp_SECRET_{tenant}_gh"},
        "aws": {
            "region": "eu-west-1",
            "accessKeyId": f"AKIA{tenant.upper().replace('-', '')}",
            "secretAccessKey": f"AWS-SECRET-{tenant}",
        },
        "cluster": {"kubeconfig": kubeconfig_text(token=f"KUBE-SECRET-{tenant}")},
        "apps": [{"name": app, "chart": "webapp"} for app in (apps or ["storefront"])],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X"},
    }


def secrets_of(spec: dict[str, Any]) -> list[str]:
    return [spec["github"]["token"], spec["aws"]["secretAccessKey"], f"KUBE-SECRET-{spec['id']}"]


@dataclass
class Service:
    root: Path
    url: str
    secrets_provider: str = "passphrase"
    stale: float = STALE
    extra_env: dict[str, str] = field(default_factory=dict)
    """The engine backend's own access (e.g. the KMS key's AWS credentials), passed to the CLI."""
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("state", "plans", "locks", "bin", "logs"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "plans").chmod(0o700)  # the plan store is private (automation/plans.py)
        self.tenants = self.root / "tenants"
        self.tenants.mkdir(mode=0o700, exist_ok=True)
        key = self.root / "digest.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(32))
            key.chmod(0o600)
        passphrase = self.root / "passphrase"
        passphrase.write_text("correct horse battery staple\n")
        passphrase.chmod(0o600)
        # The workers' program: a private copy, so an edit of the shared checkout mid-test does
        # not change the program's identity between a preview and its apply.
        if not (self.root / "program").exists():
            program_copy(self.root / "program")
        wrapper = self.root / "bin" / "pulumi"
        wrapper.write_text(WRAPPER.format(locks=self.root / "locks", fake=FAKE))
        wrapper.chmod(0o755)
        self.specs: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ settings and processes

    def env(self, host: str) -> dict[str, str]:
        return {
            "PATH": f"{self.root / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(self.root / host / "home"),
            "LANG": "C.UTF-8",
            "SCOUTFLO_DATABASE_URL": self.url,
            "SCOUTFLO_STATE_URL": f"file://{self.root / 'state'}",
            "SCOUTFLO_SECRETS_PROVIDER": self.secrets_provider,
            "SCOUTFLO_STATE_DIR": str(self.root / host),
            "SCOUTFLO_PLAN_STORE": f"file://{self.root / 'plans'}",
            "SCOUTFLO_DIGEST_KEY_FILE": str(self.root / "digest.key"),
            "SCOUTFLO_TENANT_SOURCE": f"dir:{self.tenants}",
            "SCOUTFLO_HEARTBEAT_STALE_SECONDS": str(self.stale),
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(self.root / "passphrase"),
            **self.extra_env,
        }

    def start_worker(
        self,
        host: str,
        *,
        concurrency: int = 2,
        sweep_every: int = 300,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 0.5,
        reap_every: int = 1,
    ) -> subprocess.Popen[bytes]:
        (self.root / host / "home").mkdir(parents=True, exist_ok=True)
        log = (self.root / "logs" / f"{host}.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "automation",
                "worker",
                "--name",
                host,
                "--concurrency",
                str(concurrency),
                "--poll-interval",
                str(poll_interval),
                "--heartbeat-interval",
                str(heartbeat_interval),
                "--reap-every",
                str(reap_every),
                "--sweep-every",
                str(sweep_every),
                "--program-dir",
                str(self.root / "program"),
                "--chart-cache-dir",
                str(self.root / "charts"),
            ],
            cwd=ROOT,
            env=self.env(host),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[host] = process
        return process

    def stop_worker(self, host: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        process = self.workers.pop(host)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for host in list(self.workers):
            self.stop_worker(host, signal.SIGKILL if self.workers[host].poll() is None else signal.SIGTERM)

    def fake_settings(self, **values: Any) -> None:
        """The stand-in CLI's behaviour for what follows (tests/fake_pulumi: delays, drift)."""
        folder = self.root / "state" / ".fake-pulumi"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(values))

    def log(self, host: str) -> str:
        path = self.root / "logs" / f"{host}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    # ------------------------------------------------------------ tenants and the backend's calls

    def add_tenant(self, tenant: str, apps: list[str] | None = None) -> dict[str, Any]:
        spec = tenant_spec(tenant, apps)
        path = self.tenants / f"{tenant}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        self.specs[tenant] = spec
        return spec

    def api(self) -> ServiceApi:
        return ServiceApi(
            database_url=self.url,
            tenants=DirectoryTenantSource(self.tenants),
            defer_preview=jobs.defer_preview,
            defer_apply=jobs.defer_apply,
        )

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row)

    def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return list(conn.execute(query, args).fetchall())

    def preview(self, preview_id: int) -> dict[str, Any]:
        return self.rows("SELECT * FROM previews WHERE id = %s", preview_id)[0]

    def apply(self, apply_id: int) -> dict[str, Any]:
        return self.rows("SELECT * FROM applies WHERE id = %s", apply_id)[0]

    def wait_preview(self, preview_id: int, timeout: float = 60) -> dict[str, Any]:
        return wait(lambda: _done(self.preview(preview_id), ("ready", "empty", "failed", "superseded")), timeout, self)

    def wait_next_preview(self, tenant: str, after: int, timeout: float = 30) -> dict[str, Any]:
        """The tenant's first preview newer than `after` (a recovery queues one), once finished."""
        query = "SELECT * FROM previews WHERE tenant = %s AND id > %s ORDER BY id"
        first = wait(lambda: self.rows(query, tenant, after), timeout, self)[0]
        return self.wait_preview(first["id"], timeout=max(timeout, 60))

    def wait_apply(self, apply_id: int, timeout: float = 60) -> dict[str, Any]:
        return wait(lambda: _done(self.apply(apply_id), ("succeeded", "failed", "interrupted")), timeout, self)

    # ------------------------------------------------------------ what the stand-in saw

    def ups(self, tenant: str | None = None) -> list[dict[str, Any]]:
        path = self.root / "state" / ".fake-pulumi" / "ups.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        found = [json.loads(line) for line in lines if line.strip()]
        return [u for u in found if tenant is None or u["stack"] == tenant]

    def overlaps(self) -> list[str]:
        path = self.root / "locks" / "overlaps"
        return path.read_text().splitlines() if path.exists() else []

    def calls(self) -> Iterator[dict[str, Any]]:
        for path in sorted((self.root / "state" / ".fake-pulumi" / "calls").glob("*.json")):
            yield json.loads(path.read_text())


def _done(row: dict[str, Any], final: tuple[str, ...]) -> dict[str, Any] | None:
    return row if row["status"] in final else None


def wait(check: Callable[[], Any], timeout: float, service: Service | None = None, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {host}\n{service.log(host)}" for host in service.workers) if service else ""
            raise AssertionError(f"timed out after {timeout}s{logs}")
        time.sleep(every)


def alive(pid: int) -> bool:
    """A process that runs (a zombie waiting for its parent to reap it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def service(tmp_path: Path, migrated_database: str) -> Iterator[Service]:
    """A service of its own per test: database, state, tenants and workers, all stopped after."""
    svc = Service(tmp_path, migrated_database)
    try:
        yield svc
    finally:
        svc.stop_all()
