"""Is the approval diff the saved plan? The ChangeSet an approver reads is built from engine events;
what `up --plan` applies is the plan file. With Pulumi CLIs after 3.205 the Automation SDK takes
those events from a loopback gRPC port anyone on the host can reach, so the events may be forged
(show `targetRevision: 0.1.0` while the plan sets 9.9.9, or hide a delete). `verify_against_plan`
reads the plan the CLI wrote and lists every way the ChangeSet disagrees with it.

The plan file (pulumi/pulumi at 1b5949891b3c): apitype.DeploymentPlanV1 written as JSON by
plan.Write (pkg/cmd/pulumi/plan/plan.go L28-L43; sdk/go/common/apitype/plan.go L93-L103):
`resourcePlans[urn]` is a ResourcePlanV1 (L74-L83): `steps`, every step the engine generated for
the URN in order (pkg/resource/deploy/step_generator.go L459-L468 and L2497-L2507 for deletes),
and for a registered resource a `goal` (GoalV1, L36-L71: type, name, custom, parent, inputDiff).
`goal.inputDiff` is the diff of the prior state's inputs with the checked new ones per top-level
key (step_generator.go L1357-L1380 `oldInputs.Diff(inputs)`; nil olds for a create, so every
input is an add), adds and updates holding the new value (deploy/plan.go NewPlanDiff L167-L190).
Values are serialized like state (pkg/resource/stack/plan.go L27-L53 -> stack/deployment.go
SerializePropertyValue L774-L880): a secret as the signature object with a ciphertext, an unknown
as the sentinel string (L66, L785-L787). Events serialize inputs the same way, but a secret's
ciphertext is `[secret]` (pkg/backend/display/events.go L333-L343, pkg/engine/events.go L848-L849)
and every string has the stack's secret config values replaced by `[secret]` (events.go
L419-L439, L823-L825; sdk/go/common/util/logging/log.go L448-L504), asset text elided (L865-L889).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from automation.changeset import (
    _HIDDEN_STEPS,
    _SECRET_SIG,
    APP_COMPONENTS,
    ChangeSet,
    ResourceChange,
    mask,
    parse_path,
    terminal_safe,
    walk,
)

_ASSET_SIGS = {"c44067f5952c0a294b673a41bacd8c17", "0def7320c3a5731c473e5ecbe6d01bc7"}
"""asset and archive signatures (sdk/go/common/resource/asset/asset.go, archive/archive.go)."""
_MISSING = object()


def _urn_parts(urn: str) -> tuple[str, str]:
    """(type, name) of `urn:pulumi:<stack>::<project>::<parent$type>::<name>`; the name may hold `::`."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], parts[3]


def _shown_ops(steps: Iterable[str]) -> list[str]:
    """A plan's steps as the ChangeSet shows them: the replacement's create and delete steps are
    one `replace` (automation/changeset.py _HIDDEN_STEPS), `same` is not a change."""
    return sorted(s for s in steps if s not in _HIDDEN_STEPS and s != "same")


_IMPORT_STEPS = {"import", "import-replacement"}


def _unplanned_removed(ops: list[str]) -> list[str]:
    """The shown operations a plan records. An import (and an import-replacement with its
    companion `replace` step) is returned by GenerateSteps as async work, and validateSteps, which
    appends each step's op to the plan, runs only for non-async results (pulumi/pulumi
    pkg/resource/deploy/step_generator.go L1114-L1201 and L398-L412 vs L459-L468;
    ContinueStepsFromImport L1223-L1239 the same). The plan keeps only the goal set at L1119-L1126
    and completed at L1364-L1373, and the steps after the import (an update when the resource
    differs from the program; nothing when it matches, L1901-L1906). `up --plan` skips the import
    the same way, so no plan ever holds these ops."""
    if not _IMPORT_STEPS & set(ops):
        return ops
    out = [op for op in ops if op not in _IMPORT_STEPS]
    for _ in range(ops.count("import-replacement")):
        if "replace" in out:
            out.remove("replace")  # NewReplaceStep returned beside NewImportReplacementStep (L1195-L1199)
    return out


def _replacer(secrets: Iterable[str]) -> list[str]:
    """logging.replacements (log.go L448-L473): secrets of 3+ characters other than true/false,
    and their JSON-escaped form, longest first."""
    found = set()
    for secret in secrets:
        if len(secret.encode()) < 3 or secret.lower() in ("true", "false"):
            continue
        found.add(secret)
        # json.Marshal's form: HTML characters and U+2028/9 escaped too (encoding/json HTMLEscape).
        escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
        for ch, code in (
            ("<", "\\u003c"),
            (">", "\\u003e"),
            ("&", "\\u0026"),
            ("\u2028", "\\u2028"),
            ("\u2029", "\\u2029"),
        ):
            escaped = escaped.replace(ch, code)
        found.add(escaped)
    return sorted(found, key=len, reverse=True)


def _filter(text: str, secrets: list[str]) -> str:
    if not secrets or not any(s in text for s in secrets):
        return text
    out, pos = [], 0
    while pos < len(text):
        hit = next((s for s in secrets if text.startswith(s, pos)), None)
        if hit is None:
            out.append(text[pos])
            pos += 1
        else:
            out.append("[secret]")
            pos += len(hit)
    return "".join(out)


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]


def _as_shown(value: Any, secrets: list[str]) -> Any:
    """A plan value as an honest event would carry it, after the ChangeSet's masking."""

    def visit(v: Any) -> Any:
        if isinstance(v, dict):
            return v if _is_secret(v) else {k: visit(x) for k, x in v.items()}
        if isinstance(v, list):
            return [visit(x) for x in v]
        return _filter(v, secrets) if isinstance(v, str) else v

    return _canonical(mask(visit(value)))


def _canonical(value: Any) -> Any:
    """Assets and archives by signature and hash only: events elide their text."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) in _ASSET_SIGS:
            return {_SECRET_SIG[0]: value[_SECRET_SIG[0]], "hash": value.get("hash")}
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0 (the gRPC event stream carries numbers as doubles), true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _navigate(value: Any, parts: list[str | int]) -> Any:
    # Inside a secret the event shows only `[secret]` above it: nothing to compare there.
    return walk(value, parts, _MISSING, _is_secret)


def _brief(value: Any) -> str:
    """JSON, cut short: strings quoted, numbers and booleans bare (3 is not "3")."""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _check_properties(r: ResourceChange, goal: Mapping[str, Any], secrets: list[str]) -> list[str]:
    diff = goal.get("inputDiff") or {}
    adds, updates = diff.get("adds") or {}, diff.get("updates") or {}
    deletes = set(diff.get("deletes") or [])
    problems = []
    shown_tops = set()
    for p in r.properties:
        parts = parse_path(p.path)
        if not parts:
            # The whole inputs as one value: a create of a resource whose inputs are empty.
            whole = {k: v for k, v in {**adds, **updates}.items() if not k.startswith("__")}
            if not _equal(_canonical(p.new), _as_shown(whole, secrets)):
                problems.append(
                    f"{r.name}: the preview shows inputs {_brief(p.new)}, the plan {_brief(_as_shown(whole, secrets))}"
                )
            continue
        top = parts[0]
        shown_tops.add(top)
        if isinstance(top, str) and (top in adds or top in updates):
            found = _navigate(adds[top] if top in adds else updates[top], parts[1:])
            planned = None if found is _MISSING else _as_shown(found, secrets)
        elif isinstance(top, str) and top in deletes:
            planned = None
        else:
            # The plan keeps this key as the prior state has it: nothing under it may change. Except
            # in a replacement whose goal was diffed against no prior inputs (a dependent of a
            # delete-before-replace recreated, an external resource taken over: pulumi/pulumi
            # step_generator.go L1359-L1361 sets oldInputs nil, L1495-L1505 / L1516-L1520 give the
            # ReplaceStep no detailed diff, so the preview lists old -> new leaf by leaf): there
            # every kept input is an add, and a key the program dropped is simply absent.
            from_nothing = r.op == "replace" and bool(adds) and not updates and not deletes
            if p.new is None and from_nothing:
                continue
            if not _equal(_canonical(p.new), _canonical(p.old)):
                problems.append(f"{r.name}: the preview shows {p.path} changing, the plan does not change it")
            continue
        if not _equal(_canonical(p.new), planned):
            problems.append(f"{r.name}: the preview shows {p.path} = {_brief(p.new)}, the plan sets {_brief(planned)}")
    if r.op == "create":
        # A create shows every input the program gave (changeset.py _flatten): none may be hidden.
        hidden = sorted(k for k in adds if not k.startswith("__") and k not in shown_tops)
        if hidden:
            problems.append(f"{r.name}: the plan creates it with {', '.join(hidden)}, which the preview does not show")
    return problems


def verify_against_plan(changes: ChangeSet, plan: Any, secrets: Iterable[str] = ()) -> list[str]:
    """Every disagreement between the approval diff and the plan `up --plan` will apply: the
    operation of each resource (both ways), its type, kind and app, and each shown new value.
    `secrets`: the stack's secret config values (the engine hides them in event strings)."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("resourcePlans", {}), Mapping):
        return ["the saved plan is not a Pulumi deployment plan (no resourcePlans object)"]
    plans: Mapping[str, Any] = plan.get("resourcePlans") or {}  # omitempty: absent when empty
    filtered = _replacer(secrets)
    shown: dict[str, list[ResourceChange]] = {}
    for r in changes.resources:
        shown.setdefault(r.urn, []).append(r)

    def planned_app(urn: str) -> str:
        seen = set()
        while urn and urn not in seen:
            seen.add(urn)
            goal = (plans.get(urn) or {}).get("goal") or {}
            if goal.get("type") in APP_COMPONENTS:
                return _urn_parts(urn)[1]
            urn = goal.get("parent", "")
        return "shared"

    problems: list[str] = []
    for urn in sorted(set(shown) | set(plans)):
        type_, name = _urn_parts(urn)
        if type_ == "pulumi:pulumi:Stack":
            continue  # the ChangeSet never shows the stack itself (changeset_from_events)
        rp = plans.get(urn)
        if rp is not None and not isinstance(rp, Mapping):
            problems.append(f"{name}: its plan entry is not an object")
            continue
        planned = _shown_ops((rp or {}).get("steps") or [])
        got = _unplanned_removed(sorted(r.op for r in shown.get(urn, []) if r.op != "same"))
        got_all = {r.op for r in shown.get(urn, [])}
        imported = bool(got_all & _IMPORT_STEPS)
        if imported and not (isinstance(rp, Mapping) and isinstance(rp.get("goal"), Mapping)):
            # An import always records the resource's goal before its step runs (L1119-L1126).
            problems.append(f"{name} ({type_}): the preview imports it, the plan has no goal for it")
            continue
        if got != planned:
            problems.append(
                f"{name} ({type_}): the preview shows {', '.join(got) or 'no change'}, "
                f"the plan will {', '.join(planned) or 'leave it unchanged'}"
                + ("" if rp is not None else " (it is not in the plan)")
            )
            continue
        goal = (rp or {}).get("goal")
        for r in shown.get(urn, []):
            if r.op == "same" or not isinstance(goal, Mapping):
                continue
            if r.type != goal.get("type") or bool(r.custom) != bool(goal.get("custom")):
                problems.append(
                    f"{name}: the preview shows a {'custom' if r.custom else 'component'} {r.type}, the plan a "
                    f"{'custom' if goal.get('custom') else 'component'} {goal.get('type')}"
                )
            elif r.app != planned_app(urn):
                problems.append(f"{name}: the preview lists it under {r.app}, the plan under {planned_app(urn)}")
            elif not (r.op in _IMPORT_STEPS or (r.op == "replace" and "import-replacement" in got_all)):
                # An import's values are the provider's read, and its companion replace carries no
                # detailed diff (L1197): the goal's inputDiff is against the imported state instead.
                problems += _check_properties(r, goal, filtered)
    return [terminal_safe(p) for p in problems]
