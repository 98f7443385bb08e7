"""docs/backend.md and the README's configuration table say what the code does: the exit-code
table is the CLI's error kinds, the CLI lines parse with the CLI's own parser, the Python example
calls functions that exist with arguments they take, and the configuration table names every key
Pulumi.yaml declares and no other. (docs/deploy.md's walkthrough: tests/test_readme_walkthrough.py.)"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from typing import Any

import pytest
import yaml

from automation import operations as ops
from automation.__main__ import EXIT_USAGE, _parser
from automation.tenant import Tenant
from tests.conftest import ROOT


def backend_page() -> str:
    return (ROOT / "docs" / "backend.md").read_text(encoding="utf-8")


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def error_kinds(cls: type[ops.AutomationError] = ops.AutomationError) -> set[tuple[int, str]]:
    kinds = {(cls.exit_code, cls.kind)}
    for sub in cls.__subclasses__():
        kinds |= error_kinds(sub)
    return kinds


def test_the_exit_table_is_the_cli_error_kinds() -> None:
    rows = re.findall(r"^\| *(\d+) *\|([^|]*)\|", backend_page(), re.M)
    table = {(int(code), kind) for code, kinds in rows for kind in re.findall(r"`([a-z-]+)`", kinds) or [""]}
    # Exit 2's kinds are the CLI's own JSON errors (arguments, event log), written in __main__.py.
    usage = re.findall(r'"error": "([a-z-]+)"', (ROOT / "automation" / "__main__.py").read_text(encoding="utf-8"))
    assert usage, "the CLI writes its argument errors as JSON"
    assert table == {(0, "")} | {(EXIT_USAGE, kind) for kind in usage} | error_kinds()


def cli_lines() -> list[list[str]]:
    lines = []
    for block in blocks(backend_page(), "sh"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "automation"]:
                # `[--json]` is an optional argument: the line is checked with it.
                lines.append([w.strip("[]") for w in words[3:]])
    return lines


def test_the_cli_lines_parse() -> None:
    lines = cli_lines()
    assert {line[0] for line in lines} == {"preview", "apply", "destroy", "diff"}
    for line in lines:
        _parser().parse_args(line)


def test_a_cli_line_the_parser_refuses_fails_the_check() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["apply", "--tenant", "acme.json"])  # no --fingerprint


NAMES: dict[str, Any] = {"ops": ops, "Tenant": Tenant}


def calls() -> list[tuple[str, Any, ast.Call]]:
    """Every `ops.f(...)` and `Tenant.f(...)` call of the page's Python example, with its target."""
    (source,) = blocks(backend_page(), "python")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in NAMES:
                name = f"{owner.id}.{node.func.attr}"
                assert hasattr(NAMES[owner.id], node.func.attr), f"docs/backend.md calls {name}, which does not exist"
                found.append((name, getattr(NAMES[owner.id], node.func.attr), node))
    return found


def test_the_python_example_calls_what_exists_as_it_is_called() -> None:
    found = calls()
    assert {name for name, _, _ in found} >= {
        "ops.Backend",
        "ops.Stacks",
        "ops.preview",
        "ops.apply",
        "ops.destroy",
        "ops.run_many",
        "Tenant.from_dict",
    }
    for name, target, node in found:
        args = [None] * len(node.args)
        kwargs = {kw.arg: None for kw in node.keywords if kw.arg}
        try:
            inspect.signature(target).bind(*args, **kwargs)
        except TypeError as err:
            raise AssertionError(f"docs/backend.md: {name}({ast.unparse(node)}) does not fit: {err}") from None


def test_the_configuration_table_names_every_declared_key() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Configuration")
    section = text[start : text.index("\n## ", start + 1)]
    declared = set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"])
    # A row names `scoutflo:key` or, after a slash, a sibling `key`.
    rows = re.findall(r"^\| `scoutflo:(\w+)`(?: / `(\w+)`)? \|", section, re.M)
    in_table = {key for row in rows for key in row if key}
    assert in_table <= declared, in_table - declared
    assert all(f"`{key}`" in section or f"`scoutflo:{key}`" in section for key in declared), [
        key for key in declared if f"`{key}`" not in section and f"`scoutflo:{key}`" not in section
    ]
