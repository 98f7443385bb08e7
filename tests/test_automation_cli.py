"""The CLI's edges (issue 17 §3): a tenant the program would refuse is `invalid-tenant` naming the
field before any Pulumi CLI call; under --json every error is JSON; every record the automation
writes is written aside and renamed. Previews run against the stand-in CLI (tests/fake_pulumi)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from automation import operations as ops
from automation.__main__ import main as cli
from tests.kubeconfigs import tenant_spec


def spec(**changes: Any) -> dict[str, Any]:
    return tenant_spec(**changes)


@pytest.mark.parametrize(
    ("apps", "named"),
    [
        ([{"name": "storefront", "chart": "no-such-chart"}], ["'apps[0]' (app 'storefront') 'chart'", "no-such-chart"]),
        ([{"name": "Store_Front", "chart": "webapp"}], ["'apps[0]'", "'name'"]),
        ([{"name": "a", "chart": "webapp"}, {"name": "a", "chart": "webapp"}], ["'apps[1]'", "unique"]),
        ([{"name": "a", "chart": "webapp", "colour": "red"}], ["'apps[0]'", "'colour'"]),
    ],
)
def test_a_tenant_the_program_would_refuse_is_invalid_before_any_cli_call(
    apps: list[dict[str, Any]], named: list[str], backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec(apps=apps)))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 6
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "invalid-tenant", out
    assert all(part in out["message"] for part in named), out["message"]
    assert not (tmp_path / "state" / ".fake-pulumi").exists(), "the stand-in CLI was never started"
    assert not (tmp_path / "t" / "tenants" / "acme").exists(), "no stack workspace was made"


def test_a_config_the_program_would_refuse_names_the_tenant_field(
    backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec(config={"tokenRefreshMode": "irsa"})))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 6
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "invalid-tenant" and "'config.clusterOidcIssuer'" in out["message"], out


@pytest.mark.parametrize(
    "argv",
    [
        ["preview", "--json"],  # --tenant missing
        ["apply", "--tenant", "t.json", "--json"],  # --fingerprint missing
        ["diff", "--events", "x.jsonl", "--json", "--colour", "\x1b[2J"],
        ["nonsense", "--json"],
    ],
)
def test_argument_errors_under_json_are_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["error"] == "bad-arguments" and out["message"], out
    assert "\x1b" not in captured.out and captured.err == ""


def test_argument_errors_without_json_stay_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["preview"])
    captured = capsys.readouterr()
    assert captured.out == "" and "usage:" in captured.err


def test_an_unreadable_event_log_under_json_is_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "events.jsonl"
    bad.write_text("{not json\n")
    assert cli(["diff", "--events", str(bad), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "bad-event-log" and f"{bad}:1" in out["message"], out
    assert cli(["diff", "--events", str(tmp_path / "missing.jsonl"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "bad-event-log"


def test_every_record_is_written_aside_and_renamed(
    backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name linked to the record before a second preview still holds the first one's content:
    # the record was replaced by a new file, not truncated and rewritten in place (which a crash
    # could leave empty or cut short).
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec()))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 0, capsys.readouterr()
    workspace = tmp_path / "t" / "tenants" / "acme"
    records = [workspace / "secrets.hmac.json", workspace / "Pulumi.acme.yaml", workspace / "Pulumi.yaml"]
    before = {}
    for record in records:
        os.link(record, record.with_name(record.name + ".before"))
        before[record] = record.read_bytes()
    path.write_text(json.dumps(spec(github={"owner": "acme-gitops", "token": "ghp_NEW"})))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 0, capsys.readouterr()
    for record in records:
        assert record.with_name(record.name + ".before").read_bytes() == before[record], record
        assert record.stat().st_ino != record.with_name(record.name + ".before").stat().st_ino, record
        assert record.stat().st_mode & 0o077 == 0, record
    assert json.loads((workspace / "secrets.hmac.json").read_text()) != json.loads(before[records[0]])
    assert not list(workspace.glob(".*.tmp")), "nothing left aside"


def test_a_write_that_fails_leaves_the_record_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "secrets.hmac.json"
    record.write_text('{"github:token": "mac"}')

    def no_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_disk)
    with pytest.raises(OSError, match="No space"):
        ops.write_aside(record, b'{"github:token": "new mac", "aws:secretKey": "mac"}')
    assert record.read_text() == '{"github:token": "mac"}'
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.hmac.json"], "the aside file is gone"
