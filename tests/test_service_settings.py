"""service.settings: the service's environment, each problem an InvalidSetup naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from automation import operations as ops
from service.settings import ServiceSettings

BASE = {
    "SCOUTFLO_DATABASE_URL": "postgresql://scoutflo:db-pa55word@db.internal/scoutflo",
    "SCOUTFLO_STATE_URL": "s3://scoutflo-state",
    "SCOUTFLO_SECRETS_PROVIDER": "awskms://alias/scoutflo",
    "SCOUTFLO_STATE_DIR": "/var/lib/scoutflo/tenants",
    "SCOUTFLO_PLAN_STORE": "s3://scoutflo-plans/plans",
    "SCOUTFLO_DIGEST_KEY_FILE": "/run/scoutflo/digest.key",
    "SCOUTFLO_TENANT_SOURCE": "backend.tenants:source",
}


def test_from_env_reads_every_setting_and_passes_only_the_backends_access() -> None:
    env = {
        **BASE,
        "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": "arn:aws:iam::1:role/worker",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/run/pass",
        "GITHUB_TOKEN": "ghp_NOT_FOR_TENANTS",
        "SCOUTFLO_PLAN_RETENTION_DAYS": "30",
        "SCOUTFLO_HEARTBEAT_STALE_SECONDS": "15.5",
    }
    settings = ServiceSettings.from_env(env)
    assert settings.database_url == BASE["SCOUTFLO_DATABASE_URL"]
    assert (settings.backend.url, settings.backend.secrets_provider) == (
        "s3://scoutflo-state",
        "awskms://alias/scoutflo",
    )
    assert settings.backend.state_dir == Path("/var/lib/scoutflo/tenants")
    assert settings.backend.digest_key_file == settings.digest_key_file == Path("/run/scoutflo/digest.key")
    assert dict(settings.backend.env) == {
        "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": "arn:aws:iam::1:role/worker",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/run/pass",
    }
    assert (settings.plan_retention_days, settings.heartbeat_stale_seconds, settings.drift_interval_hours) == (
        30,
        15.5,
        24,
    )
    assert "db-pa55word" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SCOUTFLO_DATABASE_URL", "", "SCOUTFLO_DATABASE_URL is not set"),
        ("SCOUTFLO_TENANT_SOURCE", " ", "SCOUTFLO_TENANT_SOURCE is not set"),
        ("SCOUTFLO_DIGEST_KEY_FILE", "digest.key", "must be an absolute path"),
        ("SCOUTFLO_STATE_DIR", "tenants", "must be an absolute path"),
        ("SCOUTFLO_PLAN_STORE", "/plans", "use file:///absolute/dir or s3://"),
        ("SCOUTFLO_PLAN_RETENTION_DAYS", "0", "at least 1"),
        ("SCOUTFLO_HEARTBEAT_STALE_SECONDS", "nan", "at least 1"),
        ("SCOUTFLO_DRIFT_INTERVAL_HOURS", "daily", "not a number"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ops.InvalidSetup, match=message) as bad:
        ServiceSettings.from_env({**BASE, name: value})
    assert name in str(bad.value) and bad.value.exit_code == 8
