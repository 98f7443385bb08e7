"""Loading YAML that came from outside (index files, fetched charts, catalog files).

PyYAML's SafeLoader still expands aliases: a 600-byte document of nested aliases ("billion
laughs") becomes gigabytes as soon as anything walks it. Untrusted documents here have no use for
aliases, so one is refused when the parser meets it, before anything is built. Duplicate keys are
refused too: PyYAML keeps the last value, Go's yaml (Helm) may keep another or fail, and the two
readers must never disagree on a chart's name or version.

With libyaml (PyYAML's wheels carry it) the events are first scanned by the C parser for aliases,
then the document is built by the C loader: a 4 MB index.yaml loads in about 2.5 s instead of
10 s with the pure-Python loader, which remains the fallback.

What is built is bounded, not only what is read (issue 16):
- nesting: more than `MAX_DEPTH` open collections (flow or block) is refused while the events
  stream, before anything is composed. PyYAML's C composer recurses once per level without a
  limit (`yaml/_yaml.pyx` `_compose_sequence_node` line 807, `_compose_mapping_node` 845-846): an
  80 KB document of nested sequences overflows the C stack (SIGSEGV). libyaml's scanner walks its
  whole simple-key stack, one entry per flow level, for every token (`src/scanner.c`
  `yaml_parser_fetch_more_tokens` 827-836 and `yaml_parser_stale_simple_keys` 1057-1087, pushed
  by `yaml_parser_increase_flow_level` 1162): quadratic in flow depth. The depth is counted on
  libyaml's own events, so no second lexer can disagree with it about quotes, comments or block
  scalars. The events lag the scanner by a bounded amount: the scanner only reads ahead while
  a simple key may still start at the head token, and a key is stale once it is more than 1024
  characters behind or on an earlier line (`yaml_parser_stale_simple_keys` 1074-1075). So when
  the first too-deep event arrives the scanner's flow level is at most `MAX_DEPTH` + 1025, and
  the work done is linear in the bytes read until then (at most that many stack entries per
  token): a 10 000-deep document is refused in milliseconds (bench/yaml_bounds.py). The
  pure-Python scanner, the fallback, has the same staleness rule (`lib/yaml/scanner.py` 286-289);
- integers: a scalar resolved as an integer longer than `MAX_INT_CHARS` is refused (Python's
  int() raises a bare ValueError past 4300 digits; a sexagesimal `1:2:3...` is built by repeated
  multiplication, `yaml/constructor.py` `construct_yaml_int` 253-260, quadratic in its length);
- `load_at` builds one item of a list at a time, can keep only some keys of each item, and
  stops after `max_items` items and `max_nodes` kept events: an index.yaml of 1.6 M entries under
  one chart (81 KB gzipped) no longer becomes 4 GiB of nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

_ALIAS = "aliases (*name) are not accepted in this file"
MAX_DEPTH = 64
"""Open collections at once. Chart.yaml and index.yaml need 5; a values file rarely 15."""
MAX_INT_CHARS = 4300
"""Python's own limit for decimal digits (sys.int_info.default_max_str_digits)."""


class UntrustedYamlError(ValueError):
    """Untrusted YAML that is invalid or uses a refused feature; the message says which."""


class _NoDuplicates(SafeConstructor):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            # `!!map [1]`: PyYAML's generator unpacks the node's items as pairs (a TypeError,
            # raised outside construct_object, from construct_document's loop).
            raise ConstructorError(None, None, f"expected a mapping node, but found {node.id}", node.start_mark)
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

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # PyYAML's own constructors fail with whatever their code hits on a value their tag does
        # not fit: `!!timestamp x` an AttributeError (constructor.py construct_yaml_timestamp:
        # `match.groupdict()` on no match), `!!bool maybe` a KeyError (bool_values[...]),
        # `!!map [1]` a TypeError. Each is the document's fault: a typed error naming the tag.
        try:
            return super().construct_object(node, deep=deep)
        except (ConstructorError, RecursionError):
            raise
        except (AttributeError, KeyError, TypeError, IndexError) as err:
            raise ConstructorError(
                None, None, f"a value its tag {node.tag} does not fit ({type(err).__name__})", node.start_mark
            ) from None

    def construct_refused(self, node: Node) -> Any:
        # Types JSON (and Helm, which turns YAML into JSON: sigs.k8s.io/yaml) has no form for.
        raise ConstructorError(None, None, f"the tag {node.tag} is not accepted", node.start_mark)

    def construct_bounded_int(self, node: ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise ConstructorError(
                None, None, f"an integer of {len(node.value)} characters; at most {MAX_INT_CHARS}", node.start_mark
            )
        return int(SafeConstructor.construct_yaml_int(self, node))


# add_constructor copies the table into this class (yaml/constructor.py `add_constructor`); the
# subclasses below and `_Replay` inherit it.
# (types-PyYAML binds add_constructor to loader classes; a constructor mixin is one too at run time.)
_NoDuplicates.add_constructor("tag:yaml.org,2002:int", _NoDuplicates.construct_bounded_int)  # type: ignore[type-var]
for _tag in ("set", "omap", "pairs", "binary"):
    _NoDuplicates.add_constructor(f"tag:yaml.org,2002:{_tag}", _NoDuplicates.construct_refused)  # type: ignore[type-var]


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


def _events(data: bytes | str, source: str) -> Iterator[Event]:
    """The parser's events, refusing an alias or a collection `MAX_DEPTH` + 1 deep as it arrives."""
    depth = 0
    for event in yaml.parse(data, Loader=yaml.CSafeLoader if _CLoader is not None else yaml.SafeLoader):
        if isinstance(event, AliasEvent):
            raise UntrustedYamlError(f"{source}: not valid YAML: {_ALIAS}{_line(event)}")
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise UntrustedYamlError(
                    f"{source}: nested more than {MAX_DEPTH} collections deep{_line(event)}; refused before it is built"
                )
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        yield event


def _line(event: Event) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1})" if mark else ""


def load(data: bytes | str, source: str) -> Any:
    """One YAML document without aliases or duplicate keys; `source` names it in errors."""
    try:
        # The events first: aliases and depth are refused before the composer (C: recursive) runs.
        for _ in _events(data, source):
            pass
        return yaml.load(data, Loader=_CLoader or _PyLoader)
    except UntrustedYamlError:
        raise
    except yaml.YAMLError as err:
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line(err)}") from None
    except (ValueError, OverflowError) as err:
        # A constructor's own failure (a timestamp of year 0): a typed error, not a traceback.
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line_text(str(err))}") from None
    except RecursionError:
        raise UntrustedYamlError(f"{source} is nested too deeply") from None


def _one_line(err: yaml.YAMLError) -> str:
    return _one_line_text(str(err))


def _one_line_text(text: str) -> str:
    return " ".join(text.split())[:500]


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


def load_at(
    data: bytes | str,
    source: str,
    path: tuple[str, ...],
    *,
    max_items: int | None = None,
    fields: Sequence[str] | None = None,
    max_nodes: int | None = None,
) -> tuple[int, Any]:
    """(how many keys of `path` were found, the value there or None) of one YAML document.

    Only the value at `path` is built; everything else is parsed and dropped as it streams by.
    An index.yaml is mostly other charts and versions, and PyYAML's nodes cost ~150 bytes per
    byte of a dense document. Aliases are refused anywhere, duplicate keys along the path and
    inside what is kept. A container along the path that is not a mapping raises, naming it.

    A list at `path` is built one item at a time: more than `max_items` items is refused as soon
    as the next one starts, a mapping item keeps only the keys in `fields` (when given; the other
    values stream by), and more than `max_nodes` kept events (scalars and collections) is refused.
    """
    where_value = ".".join(path) or "the document"
    kept_nodes = 0
    try:
        events: Iterator[Event] = _events(data, source)

        def pull() -> Event:
            return next(events)

        def record(keep: list[Event], event: Event) -> None:
            nonlocal kept_nodes
            keep.append(event)
            if not isinstance(event, CollectionEndEvent):
                kept_nodes += 1
                if max_nodes is not None and kept_nodes > max_nodes:
                    raise UntrustedYamlError(f"{source}: {where_value} holds more than {max_nodes} values; refused")

        def node(first: Event, keep: list[Event] | None) -> None:
            """Consume the node starting at `first`, recording its events into `keep`."""
            depth = 0
            event = first
            while True:
                if keep is not None:
                    record(keep, event)
                if isinstance(event, CollectionStartEvent):
                    depth += 1
                elif isinstance(event, CollectionEndEvent):
                    depth -= 1
                if depth == 0:
                    return
                event = pull()

        def build(first: Event) -> Any:
            kept: list[Event] = []
            if fields is None or not isinstance(first, MappingStartEvent):
                node(first, kept)
                return _Replay(kept).get_single_data()
            # A mapping item: only the wanted keys' values are recorded, every key still checked
            # for duplicates (PyYAML would keep the last value, Go's yaml may keep another).
            record(kept, first)
            seen: set[str] = set()
            while not isinstance(key := pull(), MappingEndEvent):
                value = pull()
                if isinstance(key, ScalarEvent) and key.value in fields:
                    if key.value in seen:
                        raise UntrustedYamlError(f"{source}: not valid YAML: duplicate key {key.value!r}{_line(key)}")
                    seen.add(key.value)
                    node(key, kept)
                    node(value, kept)
                else:
                    node(key, None)
                    node(value, None)
            kept.append(key)
            return _Replay(kept).get_single_data()

        def value_at(first: Event) -> Any:
            if not isinstance(first, SequenceStartEvent) or (max_items is None and fields is None):
                return build(first)
            items: list[Any] = []
            while not isinstance(item := pull(), SequenceEndEvent):
                if max_items is not None and len(items) >= max_items:
                    raise UntrustedYamlError(f"{source}: {where_value} lists more than {max_items} items; refused")
                items.append(build(item))
            return items

        def find(first: Event, level: int) -> tuple[int, Any]:
            if level == len(path):
                return level, value_at(first)
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
    except UntrustedYamlError:
        raise
    except yaml.YAMLError as err:
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line(err)}") from None
    except (ValueError, OverflowError) as err:
        # A constructor's own failure (a timestamp of year 0): a typed error, not a traceback.
        raise UntrustedYamlError(f"{source}: not valid YAML: {_one_line_text(str(err))}") from None
    except RecursionError:
        raise UntrustedYamlError(f"{source} is nested too deeply") from None
