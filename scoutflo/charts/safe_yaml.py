"""Loading YAML that came from outside (index files, fetched charts, catalog files).

PyYAML's SafeLoader still expands aliases: a 600-byte document of nested aliases ("billion
laughs") becomes gigabytes as soon as anything walks it. Untrusted documents here have no use for
aliases, so one is refused when the parser meets it, before anything is built. Duplicate keys are
refused too: PyYAML keeps the last value, Go's yaml (Helm) may keep another or fail, and the two
readers must never disagree on a chart's name or version.

With libyaml (PyYAML's wheels carry it) the events are first scanned by the C parser for aliases,
then the document is built by the C loader: a 4 MB index.yaml loads in about 2.5 s instead of
10 s with the pure-Python loader, which remains the fallback.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

_ALIAS = "aliases (*name) are not accepted in this file"


class UntrustedYamlError(ValueError):
    """Untrusted YAML that is invalid or uses a refused feature; the message says which."""


class _NoDuplicates(SafeConstructor):
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


class _PyLoader(yaml.SafeLoader, _NoDuplicates):
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            raise ComposerError(None, None, _ALIAS, self.peek_event().start_mark)
        return super().compose_node(parent, index)


_CLoader: type | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoaderNoDuplicates(yaml.CSafeLoader, _NoDuplicates):
        pass

    _CLoader = _CLoaderNoDuplicates


def load(data: bytes | str, source: str) -> Any:
    """One YAML document without aliases or duplicate keys; `source` names it in errors."""
    try:
        if _CLoader is None:
            return yaml.load(data, Loader=_PyLoader)
        for event in yaml.parse(data, Loader=yaml.CSafeLoader):
            if isinstance(event, AliasEvent):
                mark = event.start_mark
                raise UntrustedYamlError(f"{source}: not valid YAML: {_ALIAS} (line {mark.line + 1 if mark else '?'})")
        return yaml.load(data, Loader=_CLoader)
    except yaml.YAMLError as err:
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line(err)}") from None
    except RecursionError:
        raise UntrustedYamlError(f"{source} is nested too deeply") from None


def _one_line(err: yaml.YAMLError) -> str:
    return " ".join(str(err).split())
