"""Hostile review of the Automation layer: what an approver's terminal, a second local user, a
crashed process or the real CLI's own rules do to it."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import EngineEvent

from automation import operations as ops
from automation.changeset import changeset_from_events
from tests.fake_pulumi import cli as fake_cli

# C0/C1 controls drive the approver's terminal (cursor up, erase line, carriage return); bidi
# controls reorder what is shown (CVE-2021-42574, "Trojan Source").
HOSTILE = "replicas: 1\x1b[1A\x1b[2K\r\u202e\x9b2K\x07"


def _shown_unsafely(text: str) -> list[str]:
    return [
        repr(ch) for ch in text if ch != "\n" and (unicodedata.category(ch) in ("Cc", "Cf") or ch in "\u2028\u2029")
    ]


def _event(op: str, old: dict[str, Any] | None, new: dict[str, Any] | None, name: str = "shop") -> EngineEvent:
    urn = f"urn:pulumi:acme::scoutflo::pulumi-python:dynamic:Resource::{name}"

    def state(inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        if inputs is None:
            return None
        return {"type": "pulumi-python:dynamic:Resource", "urn": urn, "id": "", "parent": "", "provider": "",
                "custom": True, "inputs": inputs}  # fmt: skip

    meta: dict[str, Any] = {"op": op, "urn": urn, "type": "pulumi-python:dynamic:Resource", "provider": ""}
    meta |= {"old": state(old), "new": state(new), "diffs": [], "keys": [], "detailedDiff": None}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 1, "resourcePreEvent": {"metadata": meta}})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"v": "replicas: 1"}, {"v": HOSTILE}),  # short, one line
        ({"v": "a\n" * 3}, {"v": "a\n" + HOSTILE + "\n"}),  # multi-line diff
        ({"v": "x" * 200}, {"v": "x" * 150 + HOSTILE}),  # long, one line
    ],
)
def test_text_never_sends_control_or_bidi_characters_to_the_approvers_terminal(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    for events in ([_event("update", old, new)], [_event("create", None, new, name="shop\x1b[2K\u202e")]):
        text = changeset_from_events(events, stack="acme").to_text()
        assert _shown_unsafely(text) == [], text
        assert "\\x1b" in text or "\\u001b" in text, "the escape is shown, not dropped"


def test_destroy_listing_never_sends_control_characters() -> None:
    deployment = {
        "resources": [
            {"type": "github:index/repository:Repository", "custom": True,
             "urn": "urn:pulumi:acme::scoutflo::github:index/repository:Repository::shop\x1b[1A\u202e"},
        ]
    }  # fmt: skip
    text = ops.destroy_view(deployment, "acme").to_text()
    assert _shown_unsafely(text) == [] and "\\x1b" in text


# ---------------------------------------------------------------- the passphrase the CLI really uses


def _backend(tmp_path: Path, env: dict[str, str]) -> ops.Backend:
    return ops.Backend(url=f"file://{tmp_path}/state", secrets_provider="passphrase", state_dir=tmp_path / "t", env=env)


def test_an_empty_passphrase_variable_is_refused_even_with_a_file(tmp_path: Path) -> None:
    # pkg/secrets/passphrase/manager.go L380-L382: a set PULUMI_CONFIG_PASSPHRASE wins, even empty,
    # over PULUMI_CONFIG_PASSPHRASE_FILE: every secret would be encrypted with "".
    file = tmp_path / "pp"
    file.write_text("long passphrase\n")
    with pytest.raises(ops.InvalidSetup, match="PULUMI_CONFIG_PASSPHRASE is set but empty"):
        _backend(tmp_path, {"PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_CONFIG_PASSPHRASE_FILE": str(file)}).check()


def test_a_relative_passphrase_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # manager.go L384: filepath.Abs against the CLI's cwd (the tenant's directory), not ours.
    monkeypatch.chdir(tmp_path)
    Path("pp").write_text("long passphrase\n")
    with pytest.raises(ops.InvalidSetup, match="absolute path"):
        _backend(tmp_path, {"PULUMI_CONFIG_PASSPHRASE_FILE": "pp"}).check()


def test_the_stand_in_reads_the_passphrase_as_the_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "pp"
    file.write_text("  from the file \n")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(file))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    assert fake_cli.Ctx.passphrase(None) == "", "manager.go L380: a set variable wins, even empty"  # type: ignore[arg-type]
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    assert fake_cli.Ctx.passphrase(None) == "from the file"  # type: ignore[arg-type]


# ---------------------------------------------------------------- flags the real CLI does not have


@pytest.mark.parametrize(
    "argv",
    [
        ["--non-interactive", "config", "set", "k", "--secret", "--from-stdin", "--stack", "s"],
        ["--non-interactive", "preview", "--plan", "p.json", "--stack", "s"],  # preview saves with --save-plan
        ["--non-interactive", "up", "--yes", "--save-plan", "p.json", "--stack", "s"],
        ["--non-interactive", "stack", "select", "--secrets-provider-x", "y", "--stack", "s"],
        ["--non-interactive", "destroy", "--yes", "--plan", "p.json", "--stack", "s"],
    ],
)
def test_the_stand_in_refuses_flags_the_real_command_lacks(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert fake_cli.main(argv) == 255
    assert "unknown flag" in capsys.readouterr().err


# ---------------------------------------------------------------- the digest key and the tenant's directory


def test_a_digest_key_left_empty_by_a_crash_is_refused(tmp_path: Path) -> None:
    backend = _backend(tmp_path, {})
    backend.state_dir.mkdir(mode=0o700)
    (backend.state_dir / "digest.key").write_bytes(b"")
    (backend.state_dir / "digest.key").chmod(0o600)
    with pytest.raises(ops.InvalidSetup, match=r"digest\.key"):
        backend.digest_key()


def test_a_digest_key_others_can_read_is_refused(tmp_path: Path) -> None:
    backend = _backend(tmp_path, {})
    key = backend.digest_key()
    assert len(key) == 32 and backend.digest_key() == key
    (backend.state_dir / "digest.key").chmod(0o644)
    with pytest.raises(ops.InvalidSetup, match=r"digest\.key"):
        backend.digest_key()


@pytest.mark.parametrize("where", ["state", "tenant"])
def test_a_directory_another_user_can_write_is_refused(tmp_path: Path, where: str) -> None:
    # Another local user who can write the tenant's directory could swap a saved plan and its
    # record between approval and apply; one who can read it reads the stack file.
    stacks = ops.Stacks(_backend(tmp_path, {}))
    target = stacks.backend.state_dir if where == "state" else stacks.tenant_dir("acme")
    target.mkdir(parents=True)
    target.chmod(0o777 if where == "state" else 0o755)
    with pytest.raises(ops.InvalidSetup, match=re.escape(str(target))), stacks.locked("acme"):
        pass
    target.chmod(0o700)
    with stacks.locked("acme") as directory:
        assert directory == stacks.tenant_dir("acme")
    assert os.stat(stacks.tenant_dir("acme")).st_mode & 0o777 == 0o700


# ---------------------------------------------------------------- a crash mid-preview


def test_a_plan_record_cut_short_by_a_crash_does_not_block_the_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_operations import FAKE, tenant

    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    passphrase = tmp_path / "pp"
    passphrase.write_text("correct horse battery staple\n")
    stacks = ops.Stacks(
        ops.Backend(
            url=f"file://{tmp_path}/state",
            secrets_provider="passphrase",
            state_dir=tmp_path / "t",
            env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
        )
    )
    (tmp_path / "state").mkdir()
    changes = ops.preview(tenant(), stacks)
    # A preview killed between creating its record and writing it leaves an empty one behind.
    (stacks.tenant_dir("acme") / "plans" / "0000.plan.meta").write_text("")
    assert ops.apply(tenant(), changes.fingerprint, stacks)["fingerprint"] == changes.fingerprint


def test_an_approval_is_refused_once_the_state_moved_on_even_where_the_engine_would_accept_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's `up --plan` compares the diff from the state *now* with the planned diff, not
    # the prior state (pkg/resource/deploy/plan.go checkDiff L373-L470): approved "replicas 1 → 2",
    # then someone sets 5 out of band; the plan still fits ("5 → 2") and the real engine applies
    # a change nobody saw. The approval must be bound to the state it was previewed against.
    import json

    from tests.test_operations import FAKE, tenant

    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    passphrase = tmp_path / "pp"
    passphrase.write_text("correct horse battery staple\n")
    state = tmp_path / "state"
    state.mkdir()
    stacks = ops.Stacks(
        ops.Backend(
            url=f"file://{state}",
            secrets_provider="passphrase",
            state_dir=tmp_path / "t",
            env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
        )
    )
    apps = [{"name": "shop", "chart": "webapp", "values": {"replicas": 1}}]
    first = ops.preview(tenant(apps=apps), stacks)
    ops.apply(tenant(apps=apps), first.fingerprint, stacks)
    apps2 = [{"name": "shop", "chart": "webapp", "values": {"replicas": 2}}]
    approved = ops.preview(tenant(apps=apps2), stacks)
    assert "replicas: 1" in approved.to_text() and "replicas: 2" in approved.to_text()
    # Out of band (another operator's `pulumi up`, a refresh): the state now says replicas 5.
    path = state / ".pulumi" / "stacks" / "scoutflo" / "acme.json"
    data = json.loads(path.read_text())
    for res in data["deployment"]["resources"]:
        if res["urn"].endswith("::shop-initial"):
            res["inputs"]["files"]["values.yaml"] = "replicas: 5\n"
    path.write_text(json.dumps(data))
    with pytest.raises(ops.ChangesDiffer, match="state moved on"):
        ops.apply(tenant(apps=apps2), approved.fingerprint, stacks)
    after = json.loads(path.read_text())
    shop = [r for r in after["deployment"]["resources"] if r["urn"].endswith("::shop-initial")]
    assert shop[0]["inputs"]["files"]["values.yaml"] == "replicas: 5\n", "nothing was applied"
