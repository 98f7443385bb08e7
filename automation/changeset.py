"""The approval diff: built from the engine's events (not the summary counts), per resource and
app, with old -> new values per changed property path, secrets masked, and a stable fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pulumi.automation import EngineEvent

SECRET = "[secret]"
UNKNOWN = "(known after apply)"
_UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
APP_COMPONENTS = {"scoutflo:index:ChartRepo", "scoutflo:index:ChartRegistry", "scoutflo:index:ArgoApp"}
# A replacement arrives as three steps; "replace" stands for all of them.
_HIDDEN_STEPS = {"create-replacement", "delete-replaced", "discard-replaced"}
_OPS = {"same", "create", "update", "replace", "delete"}


@dataclass(frozen=True)
class PropertyChange:
    path: str
    kind: str
    """add | update | delete, with `-replace` when it forces a replacement."""
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class ResourceChange:
    app: str
    type: str
    name: str
    urn: str
    op: str
    properties: tuple[PropertyChange, ...] = ()


@dataclass(frozen=True)
class ChangeSet:
    stack: str
    resources: tuple[ResourceChange, ...]
    plan_path: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """sha256 of every change (not the unchanged), canonical: same changes, same fingerprint."""
        changes = [asdict(r) for r in self.resources if r.op != "same"]
        return "sha256:" + hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def has_changes(self) -> bool:
        return any(r.op != "same" for r in self.resources)

    def by_app(self) -> dict[str, list[ResourceChange]]:
        groups: dict[str, list[ResourceChange]] = {}
        for r in self.resources:
            groups.setdefault(r.app, []).append(r)
        return dict(sorted(groups.items(), key=lambda kv: (kv[0] != "shared", kv[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "fingerprint": self.fingerprint,
            "planPath": self.plan_path,
            "counts": dict(self.counts),
            "apps": {app: [asdict(r) for r in rs] for app, rs in self.by_app().items()},
        }

    def to_text(self) -> str:
        marks = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}
        summary = ", ".join(f"{n} {op}" for op, n in sorted(self.counts.items()) if n)
        lines = [f"stack {self.stack}: {summary or 'no resources'}", f"fingerprint {self.fingerprint}"]
        for app, resources in self.by_app().items():
            changed = [r for r in resources if r.op != "same"]
            lines.append(f"\n{app}: {len(changed)} to change, {len(resources) - len(changed)} unchanged")
            for r in changed:
                lines.append(f"  {marks.get(r.op, '?'):>2} {r.op:<8} {r.type}  {r.name}")
                for p in r.properties:
                    if r.op == "create":
                        lines.append(f"        {p.path}: {_show(p.new)}")
                    else:
                        forced = "  (forces replacement)" if "replace" in p.kind else ""
                        lines.append(f"        {p.path}: {_show(p.old)} → {_show(p.new)}{forced}")
        return "\n".join(lines)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def mask(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            return SECRET
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if value == _UNKNOWN_SENTINEL:
        return UNKNOWN
    return value


_SEGMENT = re.compile(r'\.?([^.\[\]"]+)|\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]')


def parse_path(path: str) -> list[str | int]:
    """Pulumi property paths: `a.b`, `a["x.y"]`, `a[0]`."""
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m:
            return [path]
        name, quoted, index = m.groups()
        out.append(int(index) if index is not None else (json.loads(f'"{quoted}"') if quoted is not None else name))
        pos = m.end()
    return out


def lookup(obj: Any, path: str) -> Any:
    for part in parse_path(path):
        if isinstance(part, int) and isinstance(obj, list) and part < len(obj):
            obj = obj[part]
        elif isinstance(part, str) and isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return None
    return obj


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def changeset_from_events(events: Iterable[EngineEvent], stack: str = "", plan_path: str | None = None) -> ChangeSet:
    steps = []
    parents: dict[str, str] = {}
    types: dict[str, str] = {}
    for event in events:
        pre = event.resource_pre_event
        if pre is None:
            continue
        meta = pre.metadata
        for state in (meta.old, meta.new):
            if state is not None:
                parents[state.urn] = state.parent
        types[meta.urn] = meta.type
        steps.append(meta)

    def app_of(urn: str) -> str:
        seen = set()
        while urn and urn not in seen:
            seen.add(urn)
            if types.get(urn) in APP_COMPONENTS:
                return _name(urn)
            urn = parents.get(urn, "")
        return "shared"

    resources = []
    counts: dict[str, int] = {}
    for meta in steps:
        op = str(getattr(meta.op, "value", meta.op))
        if op in _HIDDEN_STEPS or meta.type == "pulumi:pulumi:Stack":
            continue
        old = mask(dict(meta.old.inputs or {})) if meta.old else {}
        new = mask(dict(meta.new.inputs or {})) if meta.new else {}
        props: list[PropertyChange] = []
        if op == "create":
            props = [PropertyChange(k, "add", None, v) for k, v in sorted(new.items()) if not k.startswith("__")]
        elif op in ("update", "replace"):
            detailed = meta.detailed_diff or {}
            if detailed:
                for path, diff in sorted(detailed.items()):
                    kind = str(getattr(diff.diff_kind, "value", diff.diff_kind))
                    props.append(PropertyChange(path, kind, lookup(old, path), lookup(new, path)))
            else:
                replace_keys = set(meta.keys or [])
                for key in sorted(meta.diffs or []):
                    kind = "update-replace" if key in replace_keys else "update"
                    props.append(PropertyChange(key, kind, lookup(old, key), lookup(new, key)))
        counts[op] = counts.get(op, 0) + 1
        resources.append(
            ResourceChange(
                app=app_of(meta.urn), type=meta.type, name=_name(meta.urn), urn=meta.urn, op=op, properties=tuple(props)
            )
        )
    resources.sort(key=lambda r: (r.app, r.urn, r.op))
    return ChangeSet(stack=stack, resources=tuple(resources), plan_path=plan_path, counts=counts)


def events_from_log(path: Path) -> list[EngineEvent]:
    """The JSON lines `pulumi preview --event-log FILE` writes, as the SDK's EngineEvent objects."""
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(EngineEvent.from_json(json.loads(line)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}:{number}: not an engine event ({err})") from None
    return events
