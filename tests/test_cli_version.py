"""The minimum Pulumi CLI version, enforced by the Automation layer before any stack operation,
against the stand-in CLI (tests/fake_pulumi) answering `pulumi version` as real builds do."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from semver import Version

from automation import operations as ops
from automation.__main__ import main as cli
from tests.test_operations import FAKE, spec, tenant

ROOT = Path(__file__).resolve().parent.parent


def cli_of(tmp_path: Path, version_line: str) -> Path:
    """A directory whose `pulumi` is the stand-in built as `version_line` (what it prints)."""
    folder = tmp_path / f"bin-{re.sub(r'[^0-9A-Za-z.-]', '_', version_line)}"
    folder.mkdir()
    script = folder / "pulumi"
    script.write_text(f'#!/bin/sh\nFAKE_PULUMI_VERSION="{version_line}" exec "{FAKE / "pulumi"}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ops.Stacks:
    # Set on both sides: the SDK's own check honours either (_cmd.py L84, _local_workspace.py
    # L714-L718); ours must honour neither.
    monkeypatch.setenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", "true")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("pw\n")
    passphrase.chmod(0o600)
    return ops.Stacks(
        ops.Backend(
            url=f"file://{tmp_path / 'state'}",
            secrets_provider="passphrase",
            state_dir=tmp_path / "tenants",
            env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase), "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "1"},
        )
    )


def test_the_minimum_is_the_pinned_sdk_and_at_least_import_then_update() -> None:
    pinned = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned, "requirements.txt pins the pulumi SDK"
    assert ops.required_cli_version() == Version.parse(pinned.group(1)), "one number, read from the installed SDK"
    assert ops.required_cli_version() >= ops.IMPORT_THEN_UPDATE == Version(3, 174, 0)


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("v3.272.0\n", Version(3, 272, 0)),  # a release build (.goreleaser.yml: "v{{.Env.PULUMI_VERSION}}")
        ("3.273.0-dev.0\n", Version(3, 273, 0, "dev.0")),  # a source build (scripts/pulumi-version.sh)
        ("  v3.174.0  \r\n", Version(3, 174, 0)),
        ("v3.272", None),
        ("warning: something\nv3.272.0\n", None),
        ("", None),
        ("v" + "9" * 200, None),
    ],
)
def test_pulumi_version_output_is_read_as_the_cli_prints_it(printed: str, expected: Version | None) -> None:
    assert ops.parse_cli_version(printed) == expected


def test_a_dev_build_counts_as_before_its_release() -> None:
    required = ops.required_cli_version()
    assert Version.parse(f"{required}-dev.0") < required
    assert Version.parse(f"{required.bump_minor()}-dev.0") > required


@pytest.mark.parametrize("printed", ["v3.173.0", "v3.271.9", "3.272.0-dev.0", "v2.99.0", "v4.0.0"])
def test_an_old_cli_is_refused_before_any_stack_operation_and_the_skip_variable_changes_nothing(
    printed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stacks: ops.Stacks
) -> None:
    if printed == "3.272.0-dev.0":
        printed = f"{ops.required_cli_version()}-dev.0"  # just below whatever the pin is
    monkeypatch.setenv("PATH", f"{cli_of(tmp_path, printed)}{os.pathsep}{os.environ['PATH']}")
    for operation in (
        lambda: ops.preview(tenant(), stacks),
        lambda: ops.apply(tenant(), "sha256:x", stacks),
        lambda: ops.destroy(tenant(), "acme", stacks),
    ):
        with pytest.raises(ops.PulumiCliTooOld) as err:
            operation()
        text = str(err.value)
        assert printed.removeprefix("v") in text, "names the version found"
        assert f"needs {ops.required_cli_version()} or newer" in text, "names the version required"
        assert f"get.pulumi.com | sh -s -- --version {ops.required_cli_version()}" in text, "says how to upgrade"
        assert "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK does not skip" in text
        assert err.value.kind == "cli-too-old" and err.value.exit_code == 10
        assert isinstance(err.value, ops.PulumiCliMissing), "an old CLI is a missing CLI to callers that know only that"
    # `version` is the only command the stand-in ran: it records every other one before running it.
    assert not (tmp_path / "state" / ".fake-pulumi" / "calls").exists()


def test_the_sdk_alone_would_run_the_old_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the check is ours: the SDK asks for 3.1.0 (_minimum_version.py L17) and the variable
    switches even that off (_cmd.py L84-L89)."""
    from pulumi.automation import PulumiCommand

    monkeypatch.setenv("PATH", f"{cli_of(tmp_path, 'v3.173.0')}{os.pathsep}{os.environ['PATH']}")
    assert PulumiCommand().version == Version(3, 173, 0)
    assert PulumiCommand(skip_version_check=True).version == Version(3, 173, 0)


def test_a_new_enough_cli_passes_and_its_answer_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newer = ops.required_cli_version().bump_minor()
    folder = cli_of(tmp_path, f"{newer}-dev.0")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    assert ops.require_cli() == (str(folder / "pulumi"), Version.parse(f"{newer}-dev.0"))
    # Replaced in place by an old build: the kept answer is not reused (the binary changed).
    (folder / "pulumi").write_text((folder / "pulumi").read_text().replace(f"{newer}-dev.0", "v3.173.0"))
    with pytest.raises(ops.PulumiCliTooOld, match=r"is version 3\.173\.0"):
        ops.require_cli()


@pytest.mark.parametrize("printed", ["pulumi version unknown", "\x1b]0;owned\x07v3.300.0"])
def test_a_cli_that_does_not_say_its_version_is_refused(
    printed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{cli_of(tmp_path, printed)}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ops.PulumiCliTooOld, match="not a version this program can check") as err:
        ops.require_cli()
    assert "\x1b" not in str(err.value) and "\x07" not in str(err.value), "terminal escapes are not passed on"


def test_the_command_line_exits_10_with_the_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stacks: ops.Stacks
) -> None:
    monkeypatch.setenv("PATH", f"{cli_of(tmp_path, 'v3.173.0')}{os.pathsep}{os.environ['PATH']}")
    spec_file = tmp_path / "acme.json"
    spec_file.write_text(json.dumps(spec()))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", stacks.backend.env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    backend = ["--backend", stacks.backend.url, "--secrets-provider", "passphrase"]
    code = cli(
        ["preview", "--tenant", str(spec_file), *backend, "--state-dir", str(stacks.backend.state_dir), "--json"]
    )
    out = capsys.readouterr().out
    assert code == 10, out
    assert json.loads(out)["error"] == "cli-too-old"


def test_a_binary_replaced_with_the_same_size_and_mtime_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade or downgrade in place that keeps size and modification time (`cp -p`, `install
    -p`, an archive extracted with its mtimes, as package managers do) must not reuse the kept
    answer: the inode's change time, which no caller can set back, is part of the key."""
    newer = ops.required_cli_version().bump_minor()
    folder = cli_of(tmp_path, f"{newer}-dev.0")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    script = folder / "pulumi"
    assert ops.require_cli()[1] == Version.parse(f"{newer}-dev.0")
    before = script.stat()
    old = f"{newer.major}.173.0-dev.0"
    assert len(old) == len(f"{newer}-dev.0")
    script.write_text(script.read_text().replace(f"{newer}-dev.0", old))
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = script.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(ops.PulumiCliTooOld, match=r"is version 3\.173\.0-dev\.0"):
        ops.require_cli()
