"""Pulumi.yaml, the shipped stack files and what the Automation layer writes, checked the way the
Pulumi CLI checks them (rules ported in tests/fake_pulumi/rules.py, each citing its source)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from automation import render
from automation.tenant import BACKEND_KEYS, TENANT_KEYS, Tenant, tenant_settings, value_matches
from tests.fake_pulumi import rules
from tests.kubeconfigs import kubeconfig_text

ROOT = Path(__file__).resolve().parent.parent
PROJECT = rules.load_yaml(ROOT / "Pulumi.yaml")


def test_the_project_file_is_valid_for_the_cli() -> None:
    rules.validate_project(PROJECT)


def test_an_array_without_items_is_refused_as_the_cli_does() -> None:
    old = copy.deepcopy(PROJECT)
    del old["config"]["apps"]["items"]
    with pytest.raises(rules.CliError, match="'apps' declares an array but does not specify the underlying type"):
        rules.validate_project(old)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revisionHistoryLimit": {"type": "integer", "default": "ten"}}, "not of the expected type 'integer'"),
        ({"aws:region": {"type": "string", "value": "x"}}, "should not define a type"),
        ({"aws:region": {"default": "x"}}, "should not define a default value"),
        ({"tenant": {"type": "strin"}}, "#/config/tenant"),
    ],
)
def test_other_project_rules(change: dict[str, Any], message: str) -> None:
    broken = copy.deepcopy(PROJECT)
    broken["config"].update(change)
    with pytest.raises(rules.CliError, match=message):
        rules.validate_project(broken)


@pytest.mark.parametrize("stack", ["dev", "example"])
def test_shipped_stack_files_pass_the_cli_type_check(stack: str) -> None:
    config = rules.load_yaml(ROOT / f"Pulumi.{stack}.yaml")["config"]
    rules.validate_stack_config(stack, PROJECT, config)


def test_stack_values_of_the_wrong_form_are_refused() -> None:
    # What LocalWorkspace.set_all_config wrote: the apps as a JSON string.
    with pytest.raises(rules.CliError, match="must be of type 'array<object>'"):
        rules.validate_stack_config("t", PROJECT, {"scoutflo:apps": '[{"name": "a", "chart": "webapp"}]'})
    with pytest.raises(rules.CliError, match="must be encrypted as it's secret"):
        rules.validate_stack_config("t", PROJECT, {"scoutflo:chartRegistryCredentials": '{"h": {}}'})


def test_what_the_automation_layer_writes_passes() -> None:
    spec = {
        "id": "acme",
        "github": {"owner": "o", "token": "t"},
        "aws": {"region": "eu-west-1", "accessKeyId": "AKIA", "secretAccessKey": "s"},
        "cluster": {"kubeconfig": kubeconfig_text()},
        "apps": [{"name": "a", "chart": "webapp", "values": {"x": [1, 2]}}],
        "config": {
            "revisionHistoryLimit": 3,
            "tokenRefreshMode": "static",
            "refresherAccessKeyId": "AKIA2",
            "refresherSecretAccessKey": "S2",
        },
    }
    settings = tenant_settings(Tenant.from_dict(spec))
    written = {**settings.plain, **{k: {"secure": "v1:ciphertext"} for k in settings.secrets}}
    rules.validate_stack_config("acme", PROJECT, written, decrypt=lambda _: "plain")


def test_every_declared_key_is_tenant_settable_or_the_backends() -> None:
    declared = set(PROJECT["config"])
    assert declared <= TENANT_KEYS | BACKEND_KEYS, declared - TENANT_KEYS - BACKEND_KEYS
    assert not TENANT_KEYS & BACKEND_KEYS


@pytest.mark.parametrize(
    ("type_", "items", "value"),
    [
        ("string", None, "x"),
        ("string", None, 1),
        ("integer", None, 3),
        ("integer", None, 3.0),
        ("integer", None, "12"),
        ("integer", None, "1.5"),
        ("integer", None, True),
        ("boolean", None, "true"),
        ("boolean", None, "yes"),
        ("object", None, {}),
        ("array", {"type": "object"}, [{}]),
        ("array", {"type": "object"}, ["x"]),
        ("array", None, []),
    ],
)
def test_the_automation_layers_type_check_agrees_with_the_cli(type_: str, items: Any, value: Any) -> None:
    assert value_matches(type_, items, value) == rules.value_matches(type_, items, value)


def test_render_write_errors_are_typed(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the render's directory goes")
    recording = render.Recording(region="eu-west-1")
    with pytest.raises(render.RenderError, match="cannot write the render to"):
        render.write(recording, blocker)
