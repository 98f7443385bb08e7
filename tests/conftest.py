"""Shared fixtures: the program run under recording mocks, with the dev stack's config as a base."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automation import render
from tests.postgres import database, migrated_database, migrated_template, postgres  # noqa: F401 (fixtures)
from tests.service_harness import service  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "__main__.py")
FAKE_PULUMI = Path(__file__).resolve().parent / "fake_pulumi"


def dev_config() -> tuple[dict[str, str], list[str]]:
    return render.stack_config("dev")


def run_main(
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    recording: render.Recording | None = None,
    cloud: dict[str, Callable[[Any], dict[str, Any]]] | None = None,
) -> render.Recording:
    """Run __main__.py with the dev stack's config, changed by `overrides` (values JSON-encoded
    like the CLI does) and without the keys in `drop`; `recording` keeps what a failed run left;
    `cloud` answers look-ups per invoke token (see render.fake_invoke for the empty world)."""
    config, secrets = dev_config()
    for key, value in (overrides or {}).items():
        config[key] = value if isinstance(value, str) else json.dumps(value)
    for key in drop:
        config.pop(key, None)
    return render.run(
        lambda: runpy.run_path(MAIN, run_name="__main__"), config, secrets, recording=recording, cloud=cloud
    )


def of_type(recording: render.Recording, type_: str) -> list[render.Registered]:
    return [r for r in recording.resources if r.type == type_]


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`python -m automation` arguments for a passphrase stack on a file backend in tmp_path,
    with the stand-in `pulumi` first on PATH."""
    monkeypatch.setenv("PATH", f"{FAKE_PULUMI}{os.pathsep}{os.environ['PATH']}")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(passphrase))
    (tmp_path / "state").mkdir()
    state, workspaces = f"file://{tmp_path}/state", str(tmp_path / "t")
    return ["--backend", state, "--secrets-provider", "passphrase", "--state-dir", workspaces]


@pytest.fixture
def program() -> Callable[..., render.Recording]:
    return run_main


@pytest.fixture(scope="session")
def dev_recording() -> render.Recording:
    return run_main()


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """Real binaries the loopback tests use; the project's setup installs them."""
    found = {name: shutil.which(name) for name in ("helm", "docker-registry", "actionlint")}
    missing = [name for name, path in found.items() if not path]
    if missing:
        pytest.fail(f"missing {missing}: run `make setup-dev` (scripts/setup.sh --dev) first")
    return {k: v for k, v in found.items() if v}


# ---------------------------------------------------------------- a cloud that answers differently


def _unwrap_secrets(value: Any) -> Any:
    """Wire-format property values to plain JSON with every secret's value kept (not masked)."""
    if isinstance(value, dict):
        if value.get(render._SIG) == render._SECRET_SIG:
            return _unwrap_secrets(value.get("value"))
        return {k: _unwrap_secrets(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run_main_volatile(overrides: dict[str, Any] | None = None) -> tuple[render.Recording, list[str]]:
    """Run the program with secrets unmasked and cloud look-ups that change on every call, as STS
    does (a new session each run); returns the invokes made. An ECR token look-up has no answer
    at all (render.fake_invoke refuses it): the program must never ask for one."""
    invoked: list[str] = []
    steady = render.fake_invoke

    def volatile(token: str, args: Any, region: str) -> dict[str, Any]:
        invoked.append(token)
        answer = dict(steady(token, args, region))
        run = uuid.uuid4().hex
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            answer["arn"] = f"arn:aws:sts::{answer['accountId']}:assumed-role/deployer/{run}"
            answer["userId"] = f"AROADEPLOYER:{run}"
        return answer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "fake_invoke", volatile)
        patch.setattr(render, "mask_secrets", _unwrap_secrets)
        return run_main(overrides), invoked
