"""The stand-in's engine: a model of the resources the real program registers for a config, the
steps between two states, update plans and engine events (JSON shapes as the Automation API
parses them: sdk/python/lib/pulumi/automation/events.py)."""

from __future__ import annotations

import hashlib
import json
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
    """Inputs as engine events show them: secrets as `[secret]` (never their value)."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return {SIG: SECRET_SIG, "value": "[secret]"}
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _leaf_diffs(old: Any, new: Any, path: str = "") -> dict[str, str]:
    if isinstance(old, dict) and isinstance(new, dict) and old.get(SIG) is None and new.get(SIG) is None:
        out: dict[str, str] = {}
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else key
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
                "oldDigest": digest(_plain(old["inputs"], decrypt)) if old else "",
                "newDigest": digest(new_plain),
                "oldTop": _top(_plain(old["inputs"], decrypt)) if old else {},
                "newTop": _top(new_plain),
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
                    "oldDigest": digest(_plain(old["inputs"], decrypt)),
                    "newDigest": "",
                    "oldTop": _top(_plain(old["inputs"], decrypt)),
                    "newTop": {},
                }
            )
    return out


def _top(inputs: Mapping[str, Any]) -> dict[str, str]:
    """Top-level input keys -> digest of their value (the engine's ObjectDiff is per top-level key)."""
    return {k: digest(v) for k, v in inputs.items()}


def _input_diff(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, Any]:
    """NewPlanDiff (pkg/resource/deploy/plan.go L167-L190): adds, updates (new values), deletes."""
    return {
        "adds": {k: v for k, v in new.items() if k not in old},
        "updates": {k: v for k, v in new.items() if k in old and old[k] != v},
        "deletes": sorted(k for k in old if k not in new),
    }


def _check_diff(old: Mapping[str, str], new: Mapping[str, str], planned: Mapping[str, Any]) -> list[str]:
    """checkDiff (plan.go L373-L470): the diff between the state's inputs *now* and the program's
    must fit the planned diff; the prior state itself is not compared, so a state that moved on
    passes when its new diff fits (an add planned and already present counts as an update)."""
    diff = _input_diff(old, new)
    bad = [f"+{k}" for k, v in diff["adds"].items() if planned["adds"].get(k) != v]
    bad += [f"-{k}" for k in diff["deletes"] if k not in planned["deletes"]]
    bad += [f"~{k}" for k, v in diff["updates"].items() if planned["updates"].get(k, planned["adds"].get(k)) != v]
    # the symmetric check (L447ff): what was planned must be in the new inputs
    bad += [f"+{k}" for k, v in {**planned["adds"], **planned["updates"]}.items() if new.get(k) != v]
    bad += [f"-{k}" for k in planned["deletes"] if k in new]
    return sorted(set(bad))


def plan(steps: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """An update plan: per resource its goal (a digest of the inputs; the real plan holds the
    inputs, secrets encrypted: pkg/resource/deploy/plan.go) and its expected operations."""
    return {
        "manifest": {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": version},
        "resourcePlans": {
            (s["new"] or s["old"])["urn"]: {
                "goal": None if s["new"] is None else {"type": s["new"]["type"], "inputs": s["newDigest"]},
                "steps": [s["op"]],
                "inputDiff": _input_diff(s["oldTop"], s["newTop"]),
            }
            for s in steps
        },
    }


class PlanViolation(Exception):
    pass


def check_plan(plan: Mapping[str, Any], steps: list[dict[str, Any]]) -> None:
    """`up --plan`: pkg/resource/deploy/step_generator.go L1383-L1398 (a goal must conform to its
    resource plan, plan.go checkGoal L539ff; a resource without plan must not change,
    checkMissingPlan L344ff) and deployment_executor.go L373-L391 (planned operations must be seen).
    Like the real engine, the prior state is not compared, only the diff from it (checkDiff);
    stricter than it: the whole new goal must equal the planned one, and the operation too (the
    engine lets a planned create become an update)."""
    from rules import CliError

    planned = dict(plan.get("resourcePlans") or {})
    for s in steps:
        urn = (s["new"] or s["old"])["urn"]
        rp = planned.pop(urn, None)
        if rp is None:
            if s["op"] != "same":
                raise CliError(f"resource {urn} violates plan: resource has no plan but would {s['op']}")
            continue
        if rp["goal"] is None and s["new"] is not None:
            raise CliError(f"resource {urn} violates plan: resource unexpectedly not deleted")
        if rp["goal"] is not None and s["new"] is not None and rp["goal"]["inputs"] != s["newDigest"]:
            raise CliError(f"resource {urn} violates plan: properties changed")
        if (
            rp["goal"] is not None
            and s["new"] is not None
            and (bad := _check_diff(s["oldTop"], s["newTop"], rp["inputDiff"]))
        ):
            raise CliError(f"resource {urn} violates plan: properties changed: {' '.join(bad)}")
        if rp["steps"] != [s["op"]]:
            raise CliError(f"resource {urn} violates plan: expected {rp['steps']} but the state now needs {s['op']}")
    for urn, rp in planned.items():
        if rp["steps"] != ["same"]:
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


def write_events(path: str | None, steps: list[dict[str, Any]]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for seq, event in enumerate(events(steps)):
            f.write(json.dumps({"sequence": seq, "timestamp": int(time.time()), **event}) + "\n")
