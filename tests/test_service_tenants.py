"""Where a worker gets tenants' specs (service/tenants.py) and the service's CLI commands
(automation/__main__.py) against a real PostgreSQL: typed errors, JSON, the exit-code table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from automation.__main__ import main as cli
from automation.operations import InvalidSetup, InvalidTenant
from service.tenants import DirectoryTenantSource, load_source
from tests.service_harness import tenant_spec


def write(path: Path, data: object, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    folder = tmp_path / "tenants"
    folder.mkdir(mode=0o700)
    write(folder / "acme.json", tenant_spec("acme"))
    return folder


def test_a_directory_source_reads_0600_specs_of_its_user(tenants: Path) -> None:
    source = DirectoryTenantSource(tenants)
    assert source.get("acme").id == "acme"
    assert source.ids() == ["acme"]


def test_other_modes_links_and_foreign_ids_are_refused(tenants: Path, tmp_path: Path) -> None:
    source = DirectoryTenantSource(tenants)
    write(tenants / "open.json", tenant_spec("open"), 0o644)
    with pytest.raises(InvalidTenant, match="mode 0600"):
        source.get("open")
    outside = write(tmp_path / "elsewhere.json", tenant_spec("linked"))
    (tenants / "linked.json").symlink_to(outside)
    with pytest.raises(InvalidTenant, match="not a link"):
        source.get("linked")
    write(tenants / "other.json", tenant_spec("acme"))
    with pytest.raises(InvalidTenant, match="names tenant 'acme', not 'other'"):
        source.get("other")
    for bad in ("../acme", "ACME", "a" * 41, "", "acme.json"):
        with pytest.raises(InvalidTenant, match="DNS-1123"):
            source.get(bad)
    with pytest.raises(InvalidTenant, match="unknown tenant 'nobody'"):
        source.get("nobody")
    write(tenants / "broken.json", {"id": "broken"})
    with pytest.raises(InvalidTenant, match=r"broken\.json: tenant spec is missing 'github'"):
        source.get("broken")
    os.chmod(tenants, 0o777)
    with pytest.raises(InvalidSetup, match="chmod 700"):
        source.get("acme")


def test_the_operator_names_the_source(tenants: Path) -> None:
    assert isinstance(load_source(f"dir:{tenants}"), DirectoryTenantSource)
    for spec, message in (
        ("", "required"),
        ("dir:relative/dir", "absolute"),
        ("os:system('x')", "module:callable"),
        ("no_such_module_here:factory", "cannot import"),
        ("json:dumps", "without arguments"),
        ("os:getcwd", "not a TenantSource"),
    ):
        with pytest.raises(InvalidSetup, match=message):
            load_source(spec)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    try:
        code = cli(list(argv))
    except SystemExit as exit_:  # argparse's own exit (bad arguments)
        code = int(exit_.code or 0)
    return code, json.loads(capsys.readouterr().out)


def test_the_service_commands_answer_in_json_with_the_exit_table(
    tenants: Path, migrated_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SCOUTFLO_DATABASE_URL", raising=False)
    code, out = run(capsys, "status", "--tenant-id", "acme", "--json")
    assert (code, out["error"]) == (8, "invalid-setup")
    monkeypatch.setenv("SCOUTFLO_DATABASE_URL", migrated_database)
    monkeypatch.setenv("SCOUTFLO_TENANT_SOURCE", f"dir:{tenants}")
    code, out = run(capsys, "migrate", "--json")
    assert (code, out) == (0, {"applied": []})
    code, out = run(capsys, "request-preview", "--tenant-id", "acme", "--json")
    assert code == 0 and out["tenant"] == "acme" and isinstance(out["preview"], int)
    code, again = run(capsys, "request-preview", "--tenant-id", "acme", "--json")
    assert again == out  # one preview waits per tenant: the same one is returned
    code, latest = run(capsys, "latest", "--tenant-id", "acme", "--json")
    assert (code, latest["id"], latest["status"]) == (0, out["preview"], "running")
    code, err = run(
        capsys, "approve", "--preview", str(out["preview"]), "--fingerprint", "x", "--approver", "a", "--json"
    )
    assert (code, err["error"]) == (15, "preview-not-ready")
    code, err = run(capsys, "approve", "--preview", "999", "--fingerprint", "x", "--approver", "a", "--json")
    assert (code, err["error"]) == (12, "unknown-preview")
    code, err = run(capsys, "request-preview", "--tenant-id", "nobody", "--json")
    assert (code, err["error"]) == (6, "invalid-tenant")
    code, err = run(capsys, "approve", "--preview", "0", "--fingerprint", "x", "--approver", "a", "--json")
    assert (code, err["error"]) == (2, "bad-arguments")
    code, history = run(capsys, "history", "--tenant-id", "acme", "--json")
    assert code == 0 and [h["id"] for h in history] == [out["preview"]]
    code, status = run(capsys, "status", "--tenant-id", "acme", "--json")
    assert code == 0 and status["preview"]["id"] == out["preview"] and status["openApplies"] == []
    monkeypatch.setenv("SCOUTFLO_DATABASE_URL", "host=/nonexistent dbname=x connect_timeout=1")
    code, err = run(capsys, "status", "--tenant-id", "acme", "--json")
    assert (code, err["error"]) == (11, "database-unavailable")


def test_worker_settings_are_checked_before_it_starts(
    tenants: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    env = {
        "SCOUTFLO_DATABASE_URL": "host=/nonexistent dbname=x",
        "SCOUTFLO_STATE_URL": f"file://{tmp_path}/state",
        "SCOUTFLO_SECRETS_PROVIDER": "passphrase",
        "SCOUTFLO_STATE_DIR": str(tmp_path / "ws"),
        "SCOUTFLO_PLAN_STORE": f"file://{tmp_path}/plans",
        "SCOUTFLO_DIGEST_KEY_FILE": str(key),
        "SCOUTFLO_TENANT_SOURCE": f"dir:{tenants}",
        "SCOUTFLO_HEARTBEAT_STALE_SECONDS": "12",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, err = run(capsys, "worker", "--heartbeat-interval", "5", "--json")
    assert (code, err["error"]) == (8, "invalid-setup") and "at most a third" in err["message"]
    code, err = run(capsys, "worker", "--heartbeat-interval", "4", "--reap-every", "7", "--json")
    assert (code, err["error"]) == (8, "invalid-setup") and "--reap-every" in err["message"]
    monkeypatch.delenv("SCOUTFLO_PLAN_STORE")
    code, err = run(capsys, "worker", "--heartbeat-interval", "4", "--json")
    assert (code, err["error"]) == (8, "invalid-setup") and "SCOUTFLO_PLAN_STORE" in err["message"]


def test_the_service_pages_cli_lines_parse() -> None:
    """Every `python -m automation …` line of docs/service.md and README.md's sh blocks is one the
    CLI's parser takes (a renamed flag fails here, not on the backend's machine)."""
    import re
    import shlex

    from automation.__main__ import SERVICE_COMMANDS, _parser

    root = Path(__file__).resolve().parent.parent
    seen = set()
    for page in (root / "docs" / "service.md", root / "README.md"):
        for block in re.findall(r"^```sh\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if words[:3] == ["python", "-m", "automation"] and words[3] in SERVICE_COMMANDS:
                    _parser().parse_args(words[3:])
                    seen.add(words[3])
    assert seen == set(SERVICE_COMMANDS)
