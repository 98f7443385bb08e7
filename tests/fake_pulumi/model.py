"""The stand-in's engine: a model of the resources the real program registers for a config, the
steps between two states, update plans and engine events (JSON shapes as the Automation API
parses them: sdk/python/lib/pulumi/automation/events.py)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DYNAMIC = "pulumi-python:dynamic:Resource"
REPOSITORY = "pulumi-python:dynamic/scoutflo:AppRepository"


@dataclass(frozen=True)
class Secret:
    value: str


def _secret(value: str) -> dict[str, Any]:
    return {SIG: SECRET_SIG, "value": value}


def goals(stack: str, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the program would register: a stack, default providers, one set per app."""
    root = f"urn:pulumi:{stack}::scoutflo::pulumi:pulumi:Stack::scoutflo-{stack}"
    token = config.get("github:token")
    token_value = token.value if isinstance(token, Secret) else ""
    region = config.get("aws:region", "")
    prefix = config.get("scoutflo:ecrPrefix", "")
    out: list[dict[str, Any]] = [
        {"urn": root, "type": "pulumi:pulumi:Stack", "custom": False, "parent": "", "inputs": {}},
        {
            "urn": f"urn:pulumi:{stack}::scoutflo::pulumi:providers:aws::default_7_51_1",
            "type": "pulumi:providers:aws",
            "custom": True,
            "parent": "",
            "inputs": {"region": region, "version": "7.51.1"},
        },
    ]
    apps = config.get("scoutflo:apps") or []
    for app in apps:
        name = app["name"]
        base = f"urn:pulumi:{stack}::scoutflo::"
        comp = f"{base}scoutflo:index:ChartRepo::{name}"
        argo = f"urn:pulumi:{stack}::scoutflo::scoutflo:index:ArgoApp::{name}"
        values = app.get("values") or {}
        out += [
            {"urn": comp, "type": "scoutflo:index:ChartRepo", "custom": False, "parent": root, "inputs": {}},
            {
                "urn": f"{base}scoutflo:index:ChartRepo${REPOSITORY}::{name}-repo",
                "type": REPOSITORY,
                "custom": True,
                "parent": comp,
                "inputs": {
                    "owner": f"{stack}-gitops",
                    "name": name,
                    "tenant": stack,
                    "description": f"{name} - Helm chart deployed by Argo CD (Scoutflo tenant {stack})",
                    "token": _secret(token_value),
                },
                "replaceOn": ["owner", "name"],
                "noDetailedDiff": True,
            },
            {
                "urn": f"urn:pulumi:{stack}::scoutflo::scoutflo:index:ChartRepo${DYNAMIC}::{name}-initial",
                "type": DYNAMIC,
                "custom": True,
                "parent": comp,
                "inputs": {
                    "repo": name,
                    "files": {"values.yaml": "".join(f"{k}: {json.dumps(v)}\n" for k, v in sorted(values.items()))},
                    "token": _secret(token_value),
                },
                "noDetailedDiff": True,  # a dynamic provider's diff has no detailed form
            },
            {
                "urn": f"{base}scoutflo:index:ChartRepo$github:index/branchProtection:BranchProtection::{name}-main",
                "type": "github:index/branchProtection:BranchProtection",
                "custom": True,
                "parent": comp,
                # The repository's node id is known only once it exists (components/chart_repo.py).
                "inputs": {"pattern": "main", "repositoryId": UNKNOWN},
            },
            {
                "urn": f"{base}scoutflo:index:ChartRegistry::{name}",
                "type": "scoutflo:index:ChartRegistry",
                "custom": False,
                "parent": root,
                "inputs": {},
            },
            {
                "urn": f"{base}scoutflo:index:ChartRegistry$aws:ecr/repository:Repository::{name}",
                "type": "aws:ecr/repository:Repository",
                "custom": True,
                "parent": f"{base}scoutflo:index:ChartRegistry::{name}",
                "inputs": {"name": f"{prefix}/{name}" if prefix else name},
                "retainOnDelete": True,
                "replaceOn": ["name"],
            },
            {"urn": argo, "type": "scoutflo:index:ArgoApp", "custom": False, "parent": root, "inputs": {}},
            {
                "urn": f"{base}scoutflo:index:ArgoApp$kubernetes:argoproj.io/v1alpha1:Application::{name}-application",
                "type": "kubernetes:argoproj.io/v1alpha1:Application",
                "custom": True,
                "parent": argo,
                "inputs": {
                    "metadata": {"name": name},
                    "spec": {
                        "destination": {"namespace": app.get("namespace", name)},
                        "source": {"targetRevision": app.get("targetRevision", "*"), "helm": {"valuesObject": values}},
                    },
                },
            },
        ]
    return out


def _plain(value: Any, decrypt: Callable[[str], str]) -> Any:
    """Inputs with every secret in plain text, for comparison."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            if "ciphertext" in value:
                return {"secret": decrypt(value["ciphertext"])}
            return {"secret": value.get("value")}
        return {k: _plain(v, decrypt) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, decrypt) for v in value]
    return value


def _masked(value: Any) -> Any:
    """Inputs as engine events show them: a secret is made `[secret]` (pkg/engine/events.go L848-L849)
    and serialized with the blinding crypter, whose ciphertext is `[secret]` too
    (pkg/backend/display/events.go L333-L343)."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return {SIG: SECRET_SIG, "ciphertext": "[secret]"}
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _path(path: str, key: str) -> str:
    """PropertyPath.String (sdk/go/common/resource/properties_path.go L578-L612): a key with any
    character outside [A-Za-z0-9_] is quoted, only `"` escaped; the providers' detailed diff keys."""
    if re.fullmatch(r"[A-Za-z0-9_]+", key):
        return f"{path}.{key}" if path else key
    quoted = key.replace('"', '\\"')
    return f'{path}["{quoted}"]'


def _leaf_diffs(old: Any, new: Any, path: str = "") -> dict[str, str]:
    if isinstance(old, dict) and isinstance(new, dict) and old.get(SIG) is None and new.get(SIG) is None:
        out: dict[str, str] = {}
        for key in sorted(set(old) | set(new)):
            sub = _path(path, key)
            if key not in old:
                out[sub] = "add"
            elif key not in new:
                out[sub] = "delete"
            else:
                out.update(_leaf_diffs(old[key], new[key], sub))
        return out
    return {} if old == new else {path: "update"}


def steps(olds: Mapping[str, Any], goals: list[dict[str, Any]], decrypt: Callable[[str], str]) -> list[dict[str, Any]]:
    out = []
    seen = set()
    for goal in goals:
        seen.add(goal["urn"])
        old = olds.get(goal["urn"])
        new_plain = _plain(goal["inputs"], decrypt)
        if old is None:
            op, diffs = "create", {}
        else:
            old_plain = _plain(old["inputs"], decrypt)
            diffs = _leaf_diffs(old_plain, new_plain)
            replace = any(p.split(".")[0] in goal.get("replaceOn", []) for p in diffs)
            op = ("replace" if replace else "update") if diffs else "same"
        out.append(
            {
                "op": op,
                "old": old,
                "new": goal,
                "diffs": diffs,
            }
        )
    for urn, old in olds.items():
        if urn not in seen:
            out.append(
                {
                    "op": "delete",
                    "old": old,
                    "new": None,
                    "diffs": {},
                }
            )
    return out


# The steps the engine records in a resource's plan for each operation this model produces: every
# step it generates for the URN is appended (pkg/resource/deploy/step_generator.go L459-L468, and
# L2497-L2507 for deletes). A create-before-delete replace is CreateReplacement, Replace
# (L2158-L2164) and later the DeleteReplaced of the old resource (GenerateDeletes L2423). The
# strings are display.StepOp / apitype.OpType values (pkg/resource/stack/plan.go L92-L95).
PLAN_STEPS = {
    "same": ["same"],
    "create": ["create"],
    "update": ["update"],
    "replace": ["create-replacement", "replace", "delete-replaced"],
    "delete": ["delete"],
}
OP_TYPES = {
    "same", "create", "update", "delete", "replace", "create-replacement", "delete-replaced", "read",
    "read-replacement", "refresh", "discard", "discard-replaced", "remove-pending-replace", "import",
    "import-replacement",
}  # fmt: skip


def _object_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """PropertyMap.Diff (sdk/go/common/resource/properties_diff.go L187-L245) on top-level keys:
    a key whose value is null counts as absent (HasValue); updates keep the new value only
    (NewPlanDiff, pkg/resource/deploy/plan.go L167-L190). Values are compared in plain text."""
    adds = {k: v for k, v in new.items() if v is not None and old.get(k) is None}
    updates = {k: v for k, v in new.items() if v is not None and old.get(k) is not None and old[k] != v}
    deletes = sorted(k for k, v in old.items() if v is not None and new.get(k) is None)
    return {"adds": adds, "updates": updates, "deletes": deletes}


def _serialize(value: Any, encrypt: Callable[[str], str]) -> Any:
    """stack.SerializePropertyValue (pkg/resource/stack/deployment.go L774-L880): a secret is the
    signature object with the ciphertext of its value's JSON (`plaintext` only with
    --show-secrets); an unknown is the sentinel string (L785-L787)."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return {SIG: SECRET_SIG, "ciphertext": encrypt(json.dumps(value.get("secret")))}
        return {k: _serialize(v, encrypt) for k, v in value.items()}
    if isinstance(value, list):
        return [_serialize(v, encrypt) for v in value]
    return value


def _as_secret_objects(value: Any) -> Any:
    """_plain's {"secret": v} as the engine's secret (for serialization)."""
    if isinstance(value, dict):
        if set(value) == {"secret"}:
            return {SIG: SECRET_SIG, "secret": value["secret"]}
        return {k: _as_secret_objects(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_secret_objects(v) for v in value]
    return value


def _deserialize(value: Any, decrypt: Callable[[str], str]) -> Any:
    """stack.DeserializePropertyValue (deployment.go L1005-L1110), into _plain's shape; exactly
    one of ciphertext or plaintext (L1012-L1016)."""
    from rules import CliError

    if isinstance(value, dict):
        if SIG in value:
            if value[SIG] != SECRET_SIG:
                raise CliError(f"unsupported signature {value[SIG]!r} in plan")
            if ("ciphertext" in value) == ("plaintext" in value):
                raise CliError("malformed secret value: exactly one of `ciphertext` or `plaintext` must be supplied")
            text = decrypt(value["ciphertext"]) if "ciphertext" in value else value["plaintext"]
            return {"secret": json.loads(text)}
        return {k: _deserialize(v, decrypt) for k, v in value.items()}
    if isinstance(value, list):
        return [_deserialize(v, decrypt) for v in value]
    return value


def plan(
    steps: list[dict[str, Any]], version: str, decrypt: Callable[[str], str], encrypt: Callable[[str], str]
) -> dict[str, Any]:
    """The file `preview --save-plan` writes: apitype.DeploymentPlanV1 (sdk/go/common/apitype/plan.go
    L93-L103) as plan.Write encodes it (pkg/cmd/pulumi/plan/plan.go L28-L43, 4-space indent). Per
    resource a ResourcePlanV1 (L74-L83): a registered resource's goal (GoalV1 L36-L71, from
    NewGoalPlan, deploy/plan.go L192-L222) holds inputDiff = the prior state's inputs diffed with
    the checked new ones (step_generator.go L1357-L1380; for a create the olds are nil, so every
    input is an add); a delete has no goal, only its step (L2497-L2506). Config is left out (this
    model's program reads it from the stack file; `config` is omitempty)."""
    resource_plans: dict[str, Any] = {}
    for s in steps:
        res = s["new"] or s["old"]
        rp: dict[str, Any] = {"steps": PLAN_STEPS[s["op"]], "state": None}
        if s["new"] is not None:
            old = _plain(s["old"]["inputs"], decrypt) if s["old"] else {}
            diff = _object_diff(old, _plain(s["new"]["inputs"], decrypt))
            # SerializePlanDiff (stack/plan.go L27-L53) with omitempty maps and slices (apitype/plan.go L26-L33)
            input_diff = {
                k: _serialize(_as_secret_objects(v), encrypt) if k != "deletes" else v for k, v in diff.items() if v
            }
            goal: dict[str, Any] = {
                "type": res["type"],
                "name": res["urn"].split("::", 3)[3],
                "custom": res.get("custom", True),
                "inputDiff": input_diff,
                "outputDiff": {},
                "protect": False,
            }
            if res.get("parent"):
                goal["parent"] = res["parent"]
            rp = {"goal": goal, **rp, "seed": base64.b64encode(secrets.token_bytes(32)).decode()}
        resource_plans[res["urn"]] = rp
    return {
        "manifest": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "magic": hashlib.sha256(version.encode()).hexdigest(),  # Manifest.NewMagic (deploy/manifest.go L84-L89)
            "version": version,
        },
        "resourcePlans": resource_plans,
    }


def _planned_matches(expected: Any, actual: Any) -> bool:
    """DeepEqualsIncludeUnknowns as checkDiff uses it: an unknown in the plan accepts any value
    (deploy/plan.go L38-L43, L398-L401)."""
    return expected == UNKNOWN or expected == actual


def _check_diff(old: Mapping[str, Any], new: Mapping[str, Any], planned: Mapping[str, Any]) -> list[str]:
    """checkDiff (plan.go L373-L527): the diff between the state's inputs *now* and the program's
    must fit the planned diff; the prior state itself is not compared, so a state that moved on
    passes when its new diff fits (an add planned and already present counts as an update)."""
    adds, updates, deletes = planned.get("adds", {}), planned.get("updates", {}), planned.get("deletes", [])
    diff = _object_diff(old, new)
    bad = [f"+{k}" for k, v in diff["adds"].items() if k not in adds or not _planned_matches(adds[k], v)]
    bad += [f"-{k}" for k in diff["deletes"] if k not in deletes and updates.get(k) != UNKNOWN]
    bad += [
        f"~{k}"
        for k, v in diff["updates"].items()
        if (k not in updates and k not in adds) or not _planned_matches({**adds, **updates}[k], v)
    ]
    # the symmetric check (L439-L518): what was planned must be in the new inputs
    for k, v in {**adds, **updates}.items():
        if k in new and new[k] is not None:
            if not _planned_matches(v, new[k]):
                bad.append(f"={k}")
        elif v != UNKNOWN:
            bad.append(f"-{k}")
    bad += [f"={k}" for k in deletes if new.get(k) is not None]
    return sorted(set(bad))


def check_plan(plan: Mapping[str, Any], steps: list[dict[str, Any]], decrypt: Callable[[str], str]) -> None:
    """`up --plan`: pkg/resource/deploy/step_generator.go L1383-L1398 (a goal must conform to its
    resource plan, plan.go checkGoal L539-L669; a resource without plan must not change,
    checkMissingPlan L344ff), L434-L455 (each step must be the next planned one) and
    deployment_executor.go L365-L395 (planned operations must be seen). Like the real engine, the
    prior state is not compared, only the diff from it (checkDiff). Stricter than it: the plan must
    have the real shape (a plan in another format is refused, not half-read), a resource's steps
    must be exactly the planned ones (the engine lets a same stand in for an update, ConstrainedTo),
    and the goal's type and name are checked as errors (the engine asserts them, L546-L551)."""
    from rules import CliError

    planned = dict(plan.get("resourcePlans") or {})
    for urn, rp in planned.items():
        goal = rp.get("goal")
        if not isinstance(rp, dict) or not set(rp) <= {"goal", "steps", "state", "seed"}:
            raise CliError(f"plan for {urn} is not a ResourcePlanV1 (keys {sorted(rp)})")
        if any(step not in OP_TYPES for step in rp.get("steps") or []):
            raise CliError(f"plan for {urn} has unknown steps {rp.get('steps')}")
        if goal is not None and not {"type", "name", "custom", "inputDiff"} <= set(goal):
            raise CliError(f"plan for {urn} has a goal without type, name, custom or inputDiff")
    for s in steps:
        urn = (s["new"] or s["old"])["urn"]
        rp = planned.pop(urn, None)
        if rp is None:
            if s["op"] != "same":
                raise CliError(f"resource {urn} violates plan: resource has no plan but would {s['op']}")
            continue
        goal = rp.get("goal")
        if goal is None and s["new"] is not None:
            raise CliError(f"resource {urn} violates plan: resource unexpectedly not deleted")
        if goal is not None and s["new"] is not None:
            new = s["new"]
            if goal["type"] != new["type"] or goal["name"] != urn.split("::", 3)[3]:
                raise CliError(f"resource {urn} violates plan: type or name changed")
            if goal["custom"] != new.get("custom", True):
                raise CliError(f"resource {urn} violates plan: resource kind changed")
            if goal.get("parent", "") != new.get("parent", ""):
                raise CliError(f"resource {urn} violates plan: parent changed (expected {goal.get('parent', '')})")
            old = _plain(s["old"]["inputs"], decrypt) if s["old"] else {}
            wanted = {k: _deserialize(v, decrypt) if k != "deletes" else v for k, v in goal["inputDiff"].items()}
            if bad := _check_diff(old, _plain(new["inputs"], decrypt), wanted):
                raise CliError(f"resource {urn} violates plan: properties changed: {', '.join(bad)}")
        if (rp.get("steps") or []) != PLAN_STEPS[s["op"]]:
            raise CliError(
                f"resource {urn} violates plan: expected {rp.get('steps')} but the state now needs {s['op']}"
            )
    for urn, rp in planned.items():
        if any(step != "same" for step in rp.get("steps") or []):
            raise CliError(f"expected resource operations for {urn} but none were seen")


def apply(steps: list[dict[str, Any]], encrypt: Callable[[str], str]) -> list[dict[str, Any]]:
    """The new state: secrets stored encrypted, as the real state file keeps them."""

    def seal(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(SIG) == SECRET_SIG:
                return {SIG: SECRET_SIG, "ciphertext": encrypt(str(value.get("value")))} if "value" in value else value
            return {k: seal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [seal(v) for v in value]
        return value

    out = []
    for s in steps:
        if s["new"] is None:
            if (s["old"] or {}).get("retainOnDelete"):
                continue
            continue
        if s["op"] == "same":
            out.append(s["old"])
            continue
        res = dict(s["new"])
        res["inputs"] = seal(res["inputs"])
        res["id"] = f"{res['urn'].rsplit('::', 1)[-1]}-id"
        out.append(res)
    return out


def reveal(state: Any, decrypt: Callable[[str], str]) -> Any:
    if isinstance(state, dict):
        if state.get(SIG) == SECRET_SIG and "ciphertext" in state:
            return {SIG: SECRET_SIG, "value": decrypt(state["ciphertext"])}
        return {k: reveal(v, decrypt) for k, v in state.items()}
    if isinstance(state, list):
        return [reveal(v, decrypt) for v in state]
    return state


def _state(res: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if res is None:
        return None
    return {
        "type": res["type"],
        "urn": res["urn"],
        "id": res.get("id", ""),
        "parent": res.get("parent", ""),
        "provider": "",
        "custom": res.get("custom", True),
        "inputs": _masked(res["inputs"]),
        "outputs": {},
    }


def events(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"preludeEvent": {"config": {}}}]
    counts: dict[str, int] = {}
    for s in steps:
        res = s["new"] or s["old"]
        counts[s["op"]] = counts.get(s["op"], 0) + 1
        detailed = None
        if s["op"] in ("update", "replace") and not res.get("noDetailedDiff"):
            replace_on = res.get("replaceOn", [])
            detailed = {
                p: {"diffKind": f"{k}-replace" if p.split(".")[0] in replace_on else k, "inputDiff": True}
                for p, k in s["diffs"].items()
            }
        top = sorted({p.split(".")[0] for p in s["diffs"]})
        out.append(
            {
                "resourcePreEvent": {
                    "metadata": {
                        "op": s["op"],
                        "urn": res["urn"],
                        "type": res["type"],
                        "provider": "",
                        "old": _state(s["old"]),
                        "new": _state(s["new"]),
                        "diffs": top,
                        "keys": [k for k in top if k in res.get("replaceOn", [])],
                        "detailedDiff": detailed,
                    }
                }
            }
        )
    out.append(
        {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": counts, "PolicyPacks": {}}}
    )
    # The engine ends every event stream with a cancel event; the Automation API stops reading
    # the log there (automation/_stack.py L1749-L1751), otherwise only after a 5 s timeout.
    out.append({"cancelEvent": {}})
    return out


def forge(steps: list[dict[str, Any]], edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps as a local attacker would report them to the Automation API: with CLIs after
    3.205 the SDK takes engine events from an unauthenticated loopback gRPC port, so the events
    need not be the plan's. Edits (settings.json "forge"): {"set": [name, dotted path, value]}
    changes a shown new input, {"op": [name, op]} shows another operation, {"drop": name} leaves
    a resource out, {"extra": name} adds a create of a resource the plan does not have."""
    out = copy.deepcopy(steps)

    def find(key: str) -> dict[str, Any]:
        """The one step whose URN ends with `::key` (a name, or `type::name` where names repeat)."""
        urn = lambda s: (s["new"] or s["old"])["urn"]  # noqa: E731
        (found,) = [s for s in out if urn(s).endswith((f"::{key}", f"${key}"))]
        return found

    for edit in edits:
        if "set" in edit:
            name, path, value = edit["set"]
            target = find(name)["new"]["inputs"]
            *parents, last = path.split(".")
            for part in parents:
                target = target[part]
            target[last] = value
        elif "op" in edit:
            find(edit["op"][0])["op"] = edit["op"][1]
        elif "drop" in edit:
            out.remove(find(edit["drop"]))
        elif "extra" in edit:
            stack = out[0]["new"]["urn"]
            urn = f"{stack.split('::')[0]}::scoutflo::kubernetes:core/v1:Secret::{edit['extra']}"
            res = {"urn": urn, "type": "kubernetes:core/v1:Secret", "custom": True, "parent": stack, "inputs": {}}
            out.append({"op": "create", "old": None, "new": res, "diffs": {}})
    return out


def write_events(path: str | None, steps: list[dict[str, Any]]) -> None:
    """The engine's events as the CLI delivers them (pkg/backend/display/display.go L197-L250):
    `--event-log tcp://HOST:PORT` (the SDK's choice for CLIs after 3.205.0, automation/_stack.py
    L290-L310) is one client stream of `pulumirpc.Events/StreamEvents`, one EventRequest per event
    holding its JSON line, closed with CloseAndRecv; any other value is a file of JSON lines."""
    if not path:
        return
    lines = [
        json.dumps({"sequence": seq, "timestamp": int(time.time()), **event}) + "\n"
        for seq, event in enumerate(events(steps))
    ]
    if path.startswith("tcp://"):
        import grpc  # only here: a stand-in call without events starts faster
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc

        with grpc.insecure_channel(path.removeprefix("tcp://")) as channel:
            stub = events_pb2_grpc.EventsStub(channel)
            stub.StreamEvents(iter([events_pb2.EventRequest(event=line) for line in lines]), timeout=60)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(lines)
