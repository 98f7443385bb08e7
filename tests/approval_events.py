"""Engine events of a tenant's preview, produced from the real program run under Pulumi's mock
engine (automation/render.py): what a first deploy of N apps, or a one-field change to one of
them, hands the approval diff. Used by bench/approval_lines.py and tests/test_automation_approval.py.

The events have the shape `pulumi preview --event-log` writes (StepEventMetadata and
StepEventStateMetadata, pulumi sdk/python/lib/pulumi/automation/events.py): each registered
resource's inputs as the program sent them, with its protect and retainOnDelete options. A
create carries `new` only; an update both states and no detailed diff (what a dynamic provider
gives; the approval diff then compares the inputs leaf by leaf).
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from unittest import mock

from pulumi.automation import EngineEvent

from automation import render


def apps(count: int) -> list[dict[str, Any]]:
    """`count` webapp apps svc00…, replicaCount 1/2/3 in turn."""
    return [{"name": f"svc{i:02d}", "chart": "webapp", "values": {"replicaCount": i % 3 + 1}} for i in range(count)]


UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The wire form of an unknown value (pulumi sdk/python/lib/pulumi/runtime/rpc.py UNKNOWN)."""


@contextmanager
def _previewing() -> Iterator[None]:
    """render's mocks answer every create with the cloud's ids (render.fake_outputs); a preview
    has none yet: the engine hands the program unknowns for every output that is not an input
    (pkg/resource/deploy/step.go CreateStep, preview), and anything computed from them (a trust
    policy naming the new repository's id) is unknown too. The real program sees exactly that."""
    real = render.fake_outputs

    def outputs(type_: str, name: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
        return {k: (v if k in inputs else UNKNOWN) for k, v in real(type_, name, inputs, region).items()}

    with mock.patch.object(render, "fake_outputs", outputs):
        yield


def record(app_list: Sequence[Mapping[str, Any]], preview: bool = True) -> render.Recording:
    """The program's resources for `app_list`; with `preview`, as a first deploy's preview sees them."""
    config, secrets = render.stack_config("dev")
    config["scoutflo:apps"] = json.dumps(list(app_list))
    main = str(render.PROJECT_DIR / "__main__.py")
    if not preview:
        return render.run(lambda: runpy.run_path(main, run_name="__main__"), config, secrets)
    with _previewing():
        return render.run(lambda: runpy.run_path(main, run_name="__main__"), config, secrets, preview=True)


def _state(r: render.Registered) -> dict[str, Any]:
    return {
        "type": r.type,
        "urn": r.urn,
        "id": "",
        "parent": r.parent,
        "provider": "",
        "custom": r.custom,
        "protect": r.protect,
        "retainOnDelete": r.retain_on_delete,
        "inputs": r.inputs,
        "outputs": {},
    }


def _event(op: str, old: render.Registered | None, new: render.Registered | None) -> dict[str, Any]:
    ref = new or old
    assert ref is not None
    meta: dict[str, Any] = {"op": op, "urn": ref.urn, "type": ref.type, "provider": ""}
    if old is not None:
        meta["old"] = _state(old)
    if new is not None:
        meta["new"] = _state(new)
    return {"resourcePreEvent": {"metadata": meta}}


def diff_events(before: render.Recording | None, after: render.Recording) -> list[dict[str, Any]]:
    """The preview's resource steps going from `before` (None: an empty stack) to `after`."""
    old = {r.urn: r for r in (before.resources if before else [])}
    new = {r.urn: r for r in after.resources}
    events = []
    for urn in sorted(set(old) | set(new)):
        a, b = old.get(urn), new.get(urn)
        if a is None:
            events.append(_event("create", None, b))
        elif b is None:
            events.append(_event("delete", a, None))
        else:
            events.append(_event("same" if a.inputs == b.inputs else "update", a, b))
    return events


def as_engine_events(raw: Sequence[Mapping[str, Any]]) -> list[EngineEvent]:
    return [EngineEvent.from_json(dict(e)) for e in raw]


def first_deploy(count: int) -> list[EngineEvent]:
    return as_engine_events(diff_events(None, record(apps(count))))


def one_field_change(count: int) -> list[EngineEvent]:
    """svc00's replicaCount changed, every other app the same."""
    before = apps(count)
    after = [dict(a) for a in before]
    after[0] = {**after[0], "values": {"replicaCount": 7}}
    return as_engine_events(diff_events(record(before, preview=False), record(after, preview=False)))
