"""The service's settings: where its database is, the engine backend every worker shares, where plans
are kept and the key behind fingerprints. Read once at start (`ServiceSettings.from_env`), each
problem an InvalidSetup naming the variable and the fix."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from automation.operations import Backend, InvalidSetup

PASSED_TO_BACKEND = ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_CONFIG_PASSPHRASE")
"""The engine backend's own access, handed to the CLI through Backend.env (plus every AWS_*
variable: the state bucket's and the KMS key's credentials). Nothing else of the service's
environment reaches a tenant's CLI."""


@dataclass(frozen=True)
class ServiceSettings:
    database_url: str = field(repr=False)
    """libpq conninfo or postgresql:// URL (a password in it stays out of repr and logs)."""
    backend: Backend = field(repr=False)
    """The state backend, secrets provider and workspaces every worker uses."""
    plan_store: str
    """`file:///abs/dir` (a directory every worker mounts) or `s3://bucket/prefix`."""
    digest_key_file: Path
    """32 random bytes, mode 0600, the same on every worker: the HMAC key behind fingerprints.
    Production fetches it from KMS / Secrets Manager at boot and writes it here (docs/service.md)."""
    tenant_source: str
    """Where tenants' specs come from: `dir:/abs/path` or `module:callable` (service/tenants.py)."""
    plan_retention_days: int = 90
    heartbeat_stale_seconds: float = 60
    drift_interval_hours: int = 24

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ

        def need(name: str, what: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise InvalidSetup(f"{name} is not set: {what}")
            return value

        def absolute(name: str, what: str) -> Path:
            path = Path(need(name, what))
            if not path.is_absolute():
                raise InvalidSetup(f"{name}={path} must be an absolute path")
            return path

        def number(name: str, default: float, minimum: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise InvalidSetup(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value) or value < minimum:
                raise InvalidSetup(f"{name}={raw!r} must be a number of at least {minimum}")
            return value

        database_url = need(
            "SCOUTFLO_DATABASE_URL", "the PostgreSQL conninfo, e.g. postgresql://scoutflo@db.internal/scoutflo"
        )
        plan_store = need("SCOUTFLO_PLAN_STORE", "file:///absolute/dir or s3://bucket/prefix, shared by every worker")
        if not (plan_store.startswith("file:///") or plan_store.startswith("s3://")):
            raise InvalidSetup(f"SCOUTFLO_PLAN_STORE={plan_store!r}: use file:///absolute/dir or s3://bucket/prefix")
        digest_key_file = absolute(
            "SCOUTFLO_DIGEST_KEY_FILE", "a 0600 file of 32 random bytes, the same on every worker"
        )
        backend_env = {k: v for k, v in env.items() if k in PASSED_TO_BACKEND or k.startswith("AWS_")}
        backend = Backend(
            url=need("SCOUTFLO_STATE_URL", "the Pulumi state backend, e.g. s3://scoutflo-state"),
            secrets_provider=need("SCOUTFLO_SECRETS_PROVIDER", "awskms://alias/… (production) or passphrase"),
            state_dir=absolute("SCOUTFLO_STATE_DIR", "this worker's scratch directory for tenant workspaces"),
            env=backend_env,
            digest_key_file=digest_key_file,
        )
        return cls(
            database_url=database_url,
            backend=backend,
            plan_store=plan_store,
            digest_key_file=digest_key_file,
            tenant_source=need("SCOUTFLO_TENANT_SOURCE", "dir:/absolute/dir or module:callable"),
            plan_retention_days=int(number("SCOUTFLO_PLAN_RETENTION_DAYS", 90, 1)),
            heartbeat_stale_seconds=number("SCOUTFLO_HEARTBEAT_STALE_SECONDS", 60, 1),
            drift_interval_hours=int(number("SCOUTFLO_DRIFT_INTERVAL_HOURS", 24, 1)),
        )
