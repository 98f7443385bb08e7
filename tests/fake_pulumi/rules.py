"""The Pulumi CLI's checks of a project and a stack's config, ported from pulumi/pulumi (commit
1b5949891b3c). Used by the stand-in CLI before every command and by the tests on the shipped files.
Independent of automation/ on purpose: the stand-in must not share the code it judges."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "pulumi-project.json"


class CliError(Exception):
    """What the real CLI prints after `error: ` before exiting 255."""


def validate_project(raw: Any) -> None:
    """LoadProject: `ValidateProject` (JSON schema, project.go L569-L640) then `Project.Validate`
    (project.go L837-L891), both called from sdk/go/common/workspace/loaders.go L116 and L141."""
    if not isinstance(raw, Mapping):
        raise CliError(f"expected project to be an object, was '{type(raw).__name__}'")
    name = raw.get("name")
    if not isinstance(name, str) or not name:  # project.go L575-L591
        raise CliError("project is missing a non-empty string 'name' attribute")
    import jsonschema  # here: the stand-in imports it only for a project it has not seen yet

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        raise CliError("; ".join(f"#/{'/'.join(map(str, e.path))}: {e.message}" for e in errors))
    for key, decl in (raw.get("config") or {}).items():
        decl = decl if isinstance(decl, Mapping) else {"value": decl}
        if "default" in decl and "value" in decl:  # L844-L846
            raise CliError(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        typed = "type" in decl
        if ":" not in key or key.startswith(f"{name}:"):
            if typed and decl["type"] == "array" and decl.get("items") is None:  # L851-L855
                raise CliError(
                    f"The configuration key '{key}' declares an array "
                    "but does not specify the underlying type via the 'items' attribute"
                )
            if typed and "default" in decl and not value_matches(decl["type"], decl.get("items"), decl["default"]):
                raise CliError(  # L858-L865
                    f"The default value specified for configuration key '{key}' is not of the expected type "
                    f"'{full_type_name(decl['type'], decl.get('items'))}'"
                )
        else:
            if typed:  # L868-L871
                raise CliError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a type"
                )
            if "default" in decl:  # L875-L880
                raise CliError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a default value."
                )
            if "value" not in decl:  # L883-L885
                raise CliError(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")


def full_type_name(type_: str, items: Mapping[str, Any] | None) -> str:
    """InferFullTypeName, project.go L760-L766."""
    if items is not None:
        return f"array<{full_type_name(str(items.get('type')), items.get('items'))}>"
    return type_


def value_matches(type_: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """ValidateConfigValue, project.go L771-L833."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        if isinstance(value, str):
            try:
                int(value, 10)
                return True
            except ValueError:
                return False
        return False
    if type_ == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_ == "object":
        return isinstance(value, Mapping)
    if not isinstance(value, list) or items is None:
        return False
    return all(value_matches(str(items.get("type")), items.get("items"), v) for v in value)


def is_secure(value: Any) -> bool:
    """A `secure:` value as the stack file stores it (sdk/go/common/resource/config/value.go)."""
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def validate_stack_config(
    stack: str, project: Mapping[str, Any], stack_config: Mapping[str, Any], decrypt: Any = None
) -> None:
    """validateStackConfigValues / validateStackConfigValue (pkg/workspace/config.go L66-L163):
    every explicitly typed project key's stack value must match its type, and `secret: true` keys
    must be stored encrypted. Stack values are the YAML as written: a JSON text is a string."""
    name = project["name"]
    for key, decl in sorted((project.get("config") or {}).items()):
        if not isinstance(decl, Mapping) or "type" not in decl:
            continue
        full = key if ":" in key else f"{name}:{key}"
        if full not in stack_config:
            continue
        value = stack_config[full]
        if decl.get("secret") and not is_secure(value):  # L126-L133
            raise CliError(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
        if is_secure(value):
            if decrypt is None:
                continue
            value = decrypt(value["secure"])
        if not value_matches(decl["type"], decl.get("items"), value):  # L144-L153
            raise CliError(
                f"Stack '{stack}' with configuration key '{key}' must be of type "
                f"'{full_type_name(decl['type'], decl.get('items'))}'"
            )


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
