"""Loading YAML that came from outside (index files, fetched charts, catalog files).

PyYAML's SafeLoader still expands aliases: a 600-byte document of nested aliases ("billion
laughs") becomes gigabytes of Python objects. Untrusted documents here have no use for them, so
an alias is refused when the composer meets it, before anything is expanded. Duplicate keys are
refused too: PyYAML keeps the last value, Go's yaml (Helm) may keep another or fail, and the two
readers must never disagree on a chart's name or version.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node


class UntrustedYamlError(ValueError):
    """Untrusted YAML that is invalid or uses a refused feature; the message says which."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "aliases (*name) are not accepted in this file", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key fails in the base constructor with its own message
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(data: bytes | str, source: str) -> Any:
    """One YAML document without aliases or duplicate keys; `source` names it in errors."""
    try:
        return yaml.load(data, Loader=_NoAliasLoader)
    except yaml.YAMLError as err:
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line(err)}") from None
    except RecursionError:
        raise UntrustedYamlError(f"{source} is nested too deeply") from None


def _one_line(err: yaml.YAMLError) -> str:
    return " ".join(str(err).split())
