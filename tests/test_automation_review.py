"""Hostile review of the Automation layer: what an approver's terminal, a second local user, a
crashed process or the real CLI's own rules do to it."""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import EngineEvent

from automation import operations as ops
from automation.__main__ import main
from automation.changeset import EventLogError, changeset_from_events, events_from_log
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


# ---------------------------------------------------------------- typed errors, never a traceback


def _tenant_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "tenant.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _spec(**changes: Any) -> dict[str, Any]:
    from tests.kubeconfigs import kubeconfig_text

    data: dict[str, Any] = {
        "id": "acme",
        "github": {"owner": "acme-gitops", "token": "ghp_T"},
        "aws": {"region": "eu-west-1", "accessKeyId": "AKIA", "secretAccessKey": "S"},
        "cluster": {"kubeconfig": kubeconfig_text()},
        "apps": [{"name": "shop", "chart": "webapp"}],
    }
    return data | changes


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, r"tenant\.json: not a tenant spec \(nested too deeply\)"),
        ('{"id": ' + "7" * 4301 + "}", r"tenant\.json: not a tenant spec \(Exceeds the limit \(4300 digits\)"),
        ('{"id": NaN}', r"tenant\.json: not a tenant spec \(NaN is not a JSON value\)"),
        ('{"id": -Infinity}', r"not a tenant spec \(-Infinity is not a JSON value\)"),
        (b"\xff\xfe{}", r"tenant\.json: cannot read it"),
        ("{not json", r"tenant\.json: not JSON \(line 1, column 2"),
        ("[]", r"tenant\.json: a tenant spec is a JSON object, not list"),
        (json.dumps(_spec(apps=[{"name": "shop", "values": _nested(70)}])), r"'apps' is nested deeper than 64"),
        (json.dumps(_spec(config={"x": _nested(900)})), r"'config' is nested deeper than 64"),
        (json.dumps(_spec(apps=[{"name": "shop", "values": {"x": "INF"}}])).replace('"INF"', "1e999"), "NaN or Inf"),
    ],
    ids=[
        "deep",
        "huge-int",
        "nan",
        "infinity",
        "not-utf8",
        "not-json",
        "not-object",
        "deep-apps",
        "deep-config",
        "inf",
    ],
)
def test_a_bad_tenant_file_is_a_typed_error_naming_it(
    text: str | bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _tenant_file(tmp_path, text)
    assert main(["preview", "--tenant", str(path)]) == 6
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert main(["preview", "--tenant", str(path), "--json"]) == 6
    assert json.loads(capsys.readouterr().out)["error"] == "invalid-tenant"


def _event_line(**metadata: Any) -> str:
    meta = {"op": "create", "urn": "urn:pulumi:acme::scoutflo::t::x", "type": "t", "provider": ""} | metadata
    return json.dumps({"sequence": 1, "timestamp": 1, "resourcePreEvent": {"metadata": meta}})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"a":' * 100_000, r"events\.jsonl:2: not an engine event \(nested too deeply\)"),
        ('{"sequence": ' + "9" * 4301 + "}", r"events\.jsonl:2: not an engine event \(Exceeds the limit \(4300"),
        ("[1, 2]", r"events\.jsonl:2: not an engine event \('list' object has no attribute 'get'\)"),
        ('{"resourcePreEvent": {"metadata": []}}', r"events\.jsonl:2: not an engine event"),
        (_event_line(op="explode"), r"events\.jsonl:2: not an engine event \('explode' is not a valid OpType\)"),
        (_event_line(urn=5), r"events\.jsonl:2: .*metadata\.urn must be a non-empty string"),
        (_event_line(type=["x"]), r"type must be a string"),
        (_event_line(keys="spec"), r"keys must be a list of strings"),
        (_event_line(new={"urn": "u", "inputs": [1]}), r"new\.inputs must be an object"),
        (_event_line(new={"urn": "u", "parent": 3}), r"new\.parent must be a string"),
        (_event_line(new={"urn": "u", "inputs": _nested(150)}), r"new\.inputs are nested deeper than 100 levels"),
        (_event_line(detailedDiff={"a": {"diffKind": "boom"}}), r"'boom' is not a valid DiffKind"),
        ('{"stdoutEvent": {"message": "m", "color": "c", "extra": 1}}', r"events\.jsonl:2: not an engine event"),
    ],
)
def test_a_malformed_event_log_is_a_typed_error_naming_file_and_line(
    line: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(_event_line() + "\n" + line + "\n")
    assert main(["diff", "--events", str(log)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    with pytest.raises(EventLogError):
        events_from_log(log)


def test_an_unreadable_event_log_is_a_typed_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"\xff\n")
    assert main(["diff", "--events", str(log)]) == 2
    assert "events.jsonl: not UTF-8 text" in capsys.readouterr().err
    assert main(["diff", "--events", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: cannot read it (No such file or directory)" in capsys.readouterr().err


def test_forged_live_events_are_typed_too() -> None:
    # The live path (operations.preview) gets events from the SDK, not from a file: same check.
    event = EngineEvent.from_json(json.loads(_event_line(new={"urn": "u", "inputs": "x"})))
    with pytest.raises(EventLogError, match=r"new\.inputs must be an object"):
        changeset_from_events([event])


# ---------------------------------------------------------------- printed errors are escaped too


def test_render_failure_messages_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--stack", "nope\x1b[2K\u202e", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert _shown_unsafely(err.rstrip("\n")) == [] and "\\x1b[2K\\u202e" in err


def test_preview_failure_messages_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.kubeconfigs import changed, kubeconfig_data

    # A kubeconfig key is named in the refusal as the tenant wrote it.
    hostile = changed(kubeconfig_data(), "users.0.user.\x1b[1A\x1b[2Kfine\u202e", "x")
    path = _tenant_file(tmp_path, json.dumps(_spec(cluster={"kubeconfig": json.dumps(hostile)})))
    assert main(["preview", "--tenant", str(path)]) == 6
    err = capsys.readouterr().err
    assert _shown_unsafely(err.rstrip("\n")) == [] and "users[0].user.\\x1b[1A\\x1b[2Kfine\\u202e" in err
    missing = tmp_path / "gone\x1b]0;title\x07.json"
    assert main(["apply", "--tenant", str(missing), "--fingerprint", "x"]) == 6
    err = capsys.readouterr().err
    assert _shown_unsafely(err.rstrip("\n")) == [] and "gone\\x1b]0;title\\x07.json: cannot read it" in err


# ---------------------------------------------------------------- the approval diff is bounded


def _update(old: str, new: str) -> str:
    return changeset_from_events([_event("update", {"files": {"big": old}}, {"files": {"big": new}})]).to_text()


def test_a_large_file_changed_everywhere_is_summarized_not_diffed() -> None:
    # Every other line changed over ~466 KB: difflib took 104 s on this shape.
    old_lines = [f"      - key{i % 97}: value {i % 89}" for i in range(20_000)]
    new_lines = [line if i % 2 else f"      - key{i % 97}: other {i % 89}" for i, line in enumerate(old_lines)]
    old, new = "\n".join(old_lines) + "\n", "\n".join(new_lines) + "\n"
    assert len(old) > 466_000
    text = _update(old, new)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("files.big: sha256:"))
    assert lines[at + 1].strip() == "@@ -1,19999 +1,19999 @@"
    assert lines[at + 2].strip() == (
        "… 19999 lines removed and 19999 added (20000 → 20000 lines): too large to show (whole values hashed above)"
    )
    assert text == _update(old, new), "deterministic"


def test_a_small_change_in_a_large_file_is_diffed_with_its_line_numbers() -> None:
    old_lines = [f"line {i}" for i in range(20_000)]
    new_lines = [*old_lines[:12_345], "line twelve thousand", *old_lines[12_346:]]
    text = _update("\n".join(old_lines) + "\n", "\n".join(new_lines) + "\n")
    assert "\n          @@ -12345,3 +12345,3 @@\n           line 12343\n          -line 12344\n" not in text
    body = [line.strip() for line in text.splitlines()]
    at = body.index("@@ -12345,3 +12345,3 @@")
    assert body[at + 1 : at + 5] == ["line 12344", "-line 12345", "+line twelve thousand", "line 12346"]


def test_a_one_line_file_is_cut_for_the_terminal() -> None:
    text = _update("x" * 466_000 + "\n", "x" * 200_000 + "y" + "x" * 265_999 + "\n")
    assert max(len(line) for line in text.splitlines()) < 300
    assert f"… ({466_001 - 240} more characters)" in text


def test_the_shown_hunks_turn_the_old_value_into_the_new() -> None:
    # The changed region is matched alone (the shared start and end are not given to difflib):
    # the hunks must still be a correct diff of the whole values.
    from automation.changeset import _change_lines

    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        old = [rng.choice("abcde") for _ in range(rng.randrange(0, 12))]
        new = [rng.choice("abcde") if rng.random() < 0.4 else x for x in old] + rng.choices("ab", k=rng.randrange(3))
        if old == new or not old or not new:  # "" + "\n" is one empty line, not none
            continue
        shown = [line[10:] for line in _change_lines("p", "\n".join(old) + "\n", "\n".join(new) + "\n", "")[1:]]
        if any(line.startswith("…") for line in shown):
            continue
        result, pos = [], 0
        for line in shown:
            if line.startswith("@@"):
                start = int(line.split()[1][1:].split(",")[0])
                count = int(line.split()[1].split(",")[1]) if "," in line.split()[1] else 1
                start = start if count else start + 1
                result += old[pos : start - 1]
                pos = start - 1
            elif line.startswith("+"):
                result.append(line[1:])
            else:
                assert old[pos] == line[1:]
                pos += 1
                if line.startswith(" "):
                    result.append(line[1:])
        assert result + old[pos:] == new, (old, new, shown)
        checked += 1
    assert checked > 300
