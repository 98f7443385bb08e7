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

from collections import deque
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node
from yaml.resolver import Resolver

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


class _Replay(Composer, _NoDuplicates, Resolver):
    """Composes and constructs a node from recorded parser events."""

    def __init__(self, events: list[Event]) -> None:
        self._events: deque[Event] = deque(
            [StreamStartEvent(), DocumentStartEvent(explicit=False), *events, DocumentEndEvent(), StreamEndEvent()]
        )
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)

    def check_event(self, *choices: type) -> bool:
        return bool(self._events) and (not choices or isinstance(self._events[0], choices))

    def peek_event(self) -> Event:
        return self._events[0]

    def get_event(self) -> Event:
        return self._events.popleft()

    def dispose(self) -> None:
        pass


def load_at(data: bytes | str, source: str, path: tuple[str, ...]) -> tuple[int, Any]:
    """(how many keys of `path` were found, the value there or None) of one YAML document.

    Only the value at `path` is built; everything else is parsed and dropped as it streams by.
    An index.yaml is mostly other charts and versions, and PyYAML's nodes cost ~150 bytes per
    byte of a dense document. Aliases are refused anywhere, duplicate keys along the path and
    inside the value. A container along the path that is not a mapping raises, naming it.
    """
    loader = yaml.CSafeLoader if _CLoader is not None else yaml.SafeLoader
    try:
        events: Iterator[Event] = iter(yaml.parse(data, Loader=loader))

        def pull() -> Event:
            event = next(events)
            if isinstance(event, AliasEvent):
                mark = event.start_mark
                raise UntrustedYamlError(f"{source}: not valid YAML: {_ALIAS} (line {mark.line + 1 if mark else '?'})")
            return event

        def node(first: Event, keep: list[Event] | None) -> None:
            """Consume the node starting at `first`, recording its events into `keep`."""
            depth = 0
            event = first
            while True:
                if keep is not None:
                    keep.append(event)
                if isinstance(event, CollectionStartEvent):
                    depth += 1
                elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                    depth -= 1
                if depth == 0:
                    return
                event = pull()

        def find(first: Event, level: int) -> tuple[int, Any]:
            if level == len(path):
                kept: list[Event] = []
                node(first, kept)
                return level, _Replay(kept).get_single_data()
            if not isinstance(first, MappingStartEvent):
                node(first, None)
                where = ".".join(path[:level]) or "the document"
                raise UntrustedYamlError(f"{source}: {where} must be a mapping")
            found: tuple[int, Any] = (level, None)
            seen: set[str] = set()
            while not isinstance(key := pull(), MappingEndEvent):
                value = pull()
                if not isinstance(key, ScalarEvent):
                    node(key, None)
                    node(value, None)
                    continue
                if key.value in seen:
                    raise UntrustedYamlError(f"{source}: not valid YAML: duplicate key {key.value!r}")
                seen.add(key.value)
                if key.value == path[level]:
                    found = find(value, level + 1)
                else:
                    node(value, None)
            return found

        first = pull()
        assert isinstance(first, StreamStartEvent)
        start = pull()
        if isinstance(start, StreamEndEvent):
            return 0, None
        root = pull()
        assert isinstance(start, DocumentStartEvent) and isinstance(root, NodeEvent | CollectionStartEvent)
        result = find(root, 0)
        pull()  # DocumentEndEvent
        if not isinstance(pull(), StreamEndEvent):
            raise UntrustedYamlError(f"{source}: not valid YAML: expected a single document")
        return result
    except yaml.YAMLError as err:
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line(err)}") from None
    except RecursionError:
        raise UntrustedYamlError(f"{source} is nested too deeply") from None
