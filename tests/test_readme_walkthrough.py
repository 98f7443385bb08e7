"""The operator's walkthrough (docs/deploy.md, "Deploy a tenant") works as written: its `pulumi config set` commands,
applied the way the CLI applies them, give a config the program accepts, and name only keys
that exist."""

from __future__ import annotations

import itertools
import re
import shlex
from typing import Any

import yaml

from charts_catalog import load_catalog
from scoutflo.config import parse_config
from tests.conftest import ROOT

PROVIDER_NAMESPACES = {"github", "aws", "kubernetes"}


def walkthrough() -> str:
    return (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def config_commands() -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", walkthrough(), re.S)
    assert block, "the walkthrough has a shell block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["pulumi", "config", "set"]:
            commands.append(words[3:])
    return commands


def set_path(target: dict[str, Any], path: str, value: str) -> None:
    """`pulumi config set --path`: `a[0].b` creates the list and the map on the way."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    node: Any = target
    for part, nxt in itertools.pairwise(parts):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(part, int):
            while len(node) <= part:
                node.append(None)
            node[part] = node[part] if node[part] is not None else empty
        else:
            node.setdefault(part, empty)
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def raw_config() -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for args in config_commands():
        flags = {a for a in args if a.startswith("--")}
        key, value = [a for a in args if not a.startswith("--")]
        full = key if ":" in key.split(".")[0].split("[")[0] else f"scoutflo:{key}"
        if "--path" in flags:
            root = re.split(r"[.\[]", full, maxsplit=1)[0]
            set_path(raw, full, value)
            assert root in raw
        else:
            raw[full] = value
    return raw


def test_walkthrough_sets_only_declared_keys() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    for key in raw_config():
        namespace, name = key.split(":")
        assert namespace in PROVIDER_NAMESPACES or name in declared, key


def test_walkthrough_config_is_accepted_by_the_program() -> None:
    raw = raw_config()
    cfg = parse_config(raw, load_catalog())
    assert [app.name for app in cfg.apps] == ["storefront", "mongodb"]
    assert cfg.branch_protection is False and cfg.github_token
    assert {"github:owner", "github:token", "aws:region", "scoutflo:tenant", "scoutflo:apps"} <= set(raw)


def test_walkthrough_points_at_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#:]+)[)#]", walkthrough())
    assert "../deploy/deployer-iam-policy.json" in links
    for link in links:
        assert (ROOT / "docs" / link).resolve().is_file(), link
