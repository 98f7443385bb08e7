"""The layers a newcomer reads in the tree hold in the imports: config and catalog → charts →
github / cluster / aws → components → program → automation (scoutflo/__init__.py). A module
importing from a layer above its own is a layering inversion (config once imported GitHub's
description rule from scoutflo/github/adoption.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOTTOM = ("scoutflo.config", "scoutflo.naming", "scoutflo.description", "charts_catalog")
# The grammar modules of charts/ (versions, YAML, Chart.yaml names, their errors) import nothing
# above them, and config and the catalog validate with them: the bottom layer's, where they live.
GRAMMAR = (
    "scoutflo.charts.versions",
    "scoutflo.charts.safe_yaml",
    "scoutflo.charts.chart_yaml",
    "scoutflo.charts.errors",
)
LAYER = {
    **dict.fromkeys(BOTTOM + GRAMMAR, 0),
    "scoutflo.charts": 1,
    "scoutflo.github": 2,
    "scoutflo.cluster": 2,
    "scoutflo.aws": 2,
    "scoutflo.adoption": 2,
    "components": 3,
    "__main__": 4,
    "automation": 5,
}


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name: its longest prefix in LAYER."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if (found := LAYER.get(".".join(parts[:n]))) is not None:
            return found
    return None


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, lazily inside a function too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from scoutflo.charts import safe_yaml` imports the module scoutflo.charts.safe_yaml.
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


SOURCES = sorted(
    p
    for top in ("scoutflo", "charts_catalog", "components")
    for p in (ROOT / top).rglob("*.py")
    if "scaffold" not in p.parts and p != ROOT / "scoutflo" / "__init__.py"
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_a_layer_above_its_own(path: Path) -> None:
    own = layer_of(module_of(path))
    assert own is not None, f"{path}: no layer; add its package to LAYER"
    above = sorted(m for m in imports(path) if (layer := layer_of(m)) is not None and layer > own)
    assert above == [], f"{module_of(path)} (layer {own}) imports {above}"


def test_the_walk_sees_the_inversion_it_guards_against(tmp_path: Path) -> None:
    """The check reads `from scoutflo.github.adoption import ...` as a layer-2 import."""
    source = tmp_path / "config.py"
    source.write_text("from scoutflo.github.adoption import app_description\n")
    assert {layer_of(m) for m in imports(source)} == {2}
    assert layer_of("scoutflo.config") == 0
