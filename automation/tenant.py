"""A tenant as the backend knows it, and its mapping onto the stack's config (pure).

The mapping follows what the Pulumi CLI accepts (read in pulumi/pulumi at 1b5949891b3c):
- structured keys are written as YAML objects, because a key declared `type: array` only accepts
  a list (`sdk/go/common/workspace/project.go` ValidateConfigValue, L771-L833; a JSON *string*
  fails `pkg/workspace/config.go` validateStackConfigValue, L119-L163);
- a key declared `secret: true` in Pulumi.yaml must be stored encrypted (config.go L126-L133), so
  which keys are secret is read from Pulumi.yaml, not from a list kept here;
- every credential the providers need is a secret config value set through the CLI's stdin
  (`pkg/cmd/pulumi/config/config.go` L808-L822 reads the value from a non-terminal stdin), never
  a command-line argument.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automation.kubeconfig import Kubeconfig, KubeconfigError, restrict
from scoutflo.naming import dns_label_problem

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "scoutflo"

# `scoutflo:*` keys a tenant spec may set. Everything else is either derived from the tenant's own
# fields (tenant, apps) or belongs to the backend machine (catalogPath, chartCacheDir name paths
# on it): a tenant naming them could read or poison the backend's files.
TENANT_KEYS = frozenset(
    {
        "argocdNamespace",
        "argocdProject",
        "argocdDestination",
        "ecrPrefix",
        "tokenRefreshMode",
        "argocdCapabilityRoleArn",
        "adoptCredentialSecret",
        "refreshSchedule",
        "clusterOidcIssuer",
        "githubOidcProviderArn",
        "awsCliImage",
        "kubectlImage",
        "revisionHistoryLimit",
        "branchProtection",
        "chartRegistryCredentials",
        "refresherAccessKeyId",
        "refresherSecretAccessKey",
    }
)
BACKEND_KEYS = frozenset({"tenant", "apps", "catalogPath", "chartCacheDir"})


class TenantError(ValueError):
    """A tenant spec that cannot become a stack; the message names the field."""


MAX_VALUE_DEPTH = 64
"""Nesting of a tenant's apps and config values. Deeper values would fail later as a
RecursionError (json.dumps for the config digest, PyYAML's recursive representer for the stack
file) instead of as a TenantError naming the field."""


def value_problem(value: Any, limit: int = MAX_VALUE_DEPTH) -> str:
    """Why `value` (parsed JSON) cannot be a config value, or "". Iterative: a value nested deeper
    than Python's recursion limit is measured without recursing."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list):
            if depth > limit:
                return f"is nested deeper than {limit} levels"
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
            if isinstance(item, Mapping):
                stack.extend((key, depth) for key in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds NaN or Infinity, which JSON and the Pulumi CLI do not accept"
        elif isinstance(item, str) and not _is_text(item):
            return _SURROGATE
    return ""


_SURROGATE = (
    "holds a lone surrogate (a \\ud800-\\udfff escape in JSON), which is no Unicode text: the Pulumi CLI "
    "cannot store it"
)


def _is_text(value: str) -> bool:
    """False for a string holding a lone surrogate: JSON's `"\\ud800"` reads as one, and neither
    UTF-8 (the CLI's stdin, the stack file) nor the CLI's YAML can carry it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def kubeconfig_of(tenant: Tenant) -> Kubeconfig:
    """The tenant's kubeconfig as the provider gets it (checked, rewritten as JSON), or TenantError."""
    try:
        return restrict(tenant.kubeconfig, tenant.kube_context)
    except KubeconfigError as err:
        raise TenantError(f"tenant spec 'cluster.kubeconfig': {err}") from None


@dataclass(frozen=True)
class KeyDecl:
    type: str | None
    items: Mapping[str, Any] | None
    secret: bool


def project_keys(project_dir: Path = PROJECT_DIR) -> dict[str, KeyDecl]:
    """`scoutflo:<key>` -> its declaration in Pulumi.yaml (type, items, secret)."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
    out = {}
    for key, decl in (project.get("config") or {}).items():
        decl = decl if isinstance(decl, Mapping) else {}
        full = key if ":" in key else f"{project['name']}:{key}"
        out[full] = KeyDecl(decl.get("type"), decl.get("items"), bool(decl.get("secret")))
    return out


def shipped_stacks(project_dir: Path = PROJECT_DIR) -> set[str]:
    """Stacks whose files live in the checkout (dev, example): a tenant may not take their names."""
    return {p.name.removeprefix("Pulumi.").rsplit(".", 1)[0] for p in project_dir.glob("Pulumi.*.yaml")}


def value_matches(type_: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """Port of ValidateConfigValue (sdk/go/common/workspace/project.go L771-L833)."""
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
            except ValueError:
                return False
            return True
        return False
    if type_ == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_ == "object":
        return isinstance(value, Mapping)
    if not isinstance(value, list) or items is None:
        return False
    return all(value_matches(str(items.get("type")), items.get("items"), v) for v in value)


@dataclass(frozen=True, kw_only=True)
class Tenant:
    id: str
    """Tenant id: the stack name and `scoutflo:tenant`."""
    github_owner: str
    github_token: str = field(repr=False)
    aws_region: str
    aws_access_key_id: str = field(repr=False)
    aws_secret_access_key: str = field(repr=False)
    aws_session_token: str = field(default="", repr=False)
    aws_role_arn: str = ""
    """Assumed with the tenant's keys (aws:assumeRoles)."""
    kubeconfig: str = field(repr=False)
    """The tenant cluster's kubeconfig (secret): inline, one cluster/user/context, data only
    (automation/kubeconfig.py); the provider gets it rewritten as JSON."""
    kube_context: str = ""
    """When given, must be the kubeconfig's one context."""
    apps: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    """Further `scoutflo:*` keys from TENANT_KEYS, without the namespace."""

    def __post_init__(self) -> None:
        # However a Tenant is built (from_dict, or the backend's own code), it names its own
        # credentials: the CLI hands Backend.env (the state bucket's and KMS key's AWS
        # credentials) to every provider, and pulumi-aws given an empty aws:accessKey takes the
        # environment's (hashicorp/aws-sdk-go-base at 71dcf8ad2f4d, aws_config.go L91-L117: static
        # credentials only when one is set, else credentials.go L24-L70, config.LoadDefaultConfig).
        # Its strings are Unicode text the CLI can store.
        for name, path in _FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TenantError(f"tenant spec {path!r} (Tenant.{name}) must be a string")
            if name in _REQUIRED and not value:
                raise TenantError(f"tenant spec {path!r} (Tenant.{name}) is empty: a tenant names its own credentials")
            if not _is_text(value):
                raise TenantError(f"tenant spec {path!r} {_SURROGATE}")
        # Nor a kubeconfig that could run code or name a backend file (automation/kubeconfig.py
        # says why).
        kubeconfig_of(self)
        for name, value in (("apps", list(self.apps)), ("config", self.config)):
            if problem := value_problem(value):
                raise TenantError(f"tenant spec {name!r} {problem}")

    @classmethod
    def from_dict(cls, data: Any) -> Tenant:
        """From the backend's JSON: {id, github: {owner, token}, aws: {region, accessKeyId,
        secretAccessKey, sessionToken?, roleArn?}, cluster: {kubeconfig, context?}, apps, config}.
        Every credential is named: nothing falls back to the backend machine's own identity."""
        if not isinstance(data, Mapping):
            raise TenantError(f"a tenant spec is a JSON object, not {type(data).__name__}")

        def need(path: str) -> Any:
            value: Any = data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value in (None, ""):
                raise TenantError(f"tenant spec is missing {path!r}")
            if not isinstance(value, str):
                raise TenantError(f"tenant spec {path!r} must be a string")
            return value

        def opt(path: str) -> str:
            section, key = path.split(".")
            value = (data.get(section) or {}).get(key, "")
            if not isinstance(value, str):
                raise TenantError(f"tenant spec {path!r} must be a string")
            return value

        for section in ("github", "aws", "cluster"):
            if not isinstance(data.get(section), Mapping):
                raise TenantError(
                    f"tenant spec is missing {section!r}: a tenant names its own {section} credentials "
                    "(nothing is taken from the backend's environment)"
                )
        apps, config = data.get("apps") or [], data.get("config") or {}
        if not isinstance(apps, list) or not all(isinstance(a, Mapping) for a in apps):
            raise TenantError("tenant spec 'apps' must be a list of objects")
        if not isinstance(config, Mapping):
            raise TenantError("tenant spec 'config' must be an object")
        return cls(
            id=need("id"),
            github_owner=need("github.owner"),
            github_token=need("github.token"),
            aws_region=need("aws.region"),
            aws_access_key_id=need("aws.accessKeyId"),
            aws_secret_access_key=need("aws.secretAccessKey"),
            aws_session_token=opt("aws.sessionToken"),
            aws_role_arn=opt("aws.roleArn"),
            kubeconfig=need("cluster.kubeconfig"),
            kube_context=opt("cluster.context"),
            apps=tuple(apps),
            config=dict(config),
        )


_FIELDS = {
    "id": "id",
    "github_owner": "github.owner",
    "github_token": "github.token",
    "aws_region": "aws.region",
    "aws_access_key_id": "aws.accessKeyId",
    "aws_secret_access_key": "aws.secretAccessKey",
    "aws_session_token": "aws.sessionToken",
    "aws_role_arn": "aws.roleArn",
    "kubeconfig": "cluster.kubeconfig",
    "kube_context": "cluster.context",
}
"""Tenant's string fields and where the spec holds them."""
_REQUIRED = frozenset(
    {"id", "github_owner", "github_token", "aws_region", "aws_access_key_id", "aws_secret_access_key", "kubeconfig"}
)


@dataclass(frozen=True)
class StackSettings:
    """What the tenant's stack file holds: plain values (YAML objects) and secrets (encrypted by the CLI)."""

    plain: Mapping[str, Any]
    secrets: Mapping[str, str] = field(repr=False)

    def digest(self, key: bytes) -> str:
        """HMAC-SHA256 over every value, secrets included: equal for equal config, and reveals nothing."""
        blob = json.dumps({"plain": self.plain, "secrets": self.secrets}, sort_keys=True, separators=(",", ":"))
        return "hmac-sha256:" + hmac.new(key, blob.encode(), hashlib.sha256).hexdigest()


def project_refusal(tenant_id: str, value: Any) -> str:
    """Why a tenant may not name Argo CD project `value`. An Application in Argo CD's own
    namespace may name any project (argoproj/argo-cd 37ee0097cf pkg/apis/application/v1alpha1/
    app_project_types.go L620-L631 IsAppNamespacePermitted: "Applications in the installation
    namespace are always permitted"), and the project's destinations are then what fences where
    it deploys (util/argo/argo.go L705-L727, IsDestinationPermitted L483-L505): in an Argo CD
    shared by tenants, naming another tenant's project would deploy into that tenant's clusters
    and namespaces. So a tenant's project is its own, named after its id, or `default` (which a
    shared Argo CD restricts to nothing: docs/design.md)."""
    return (
        f"tenant config key 'argocdProject' is {value!r}: a tenant's Applications use the Argo CD project "
        f"named after it ({tenant_id!r}) or 'default': another project's destinations would take this tenant's "
        "charts into clusters and namespaces that are not its own"
    )


def tenant_settings(tenant: Tenant, project_dir: Path = PROJECT_DIR) -> StackSettings:
    """The stack config for `tenant`, checked against Pulumi.yaml the way the CLI checks it."""
    if problem := dns_label_problem(tenant.id, 40):
        raise TenantError(f"tenant id {tenant.id!r} {problem}")
    if tenant.id in shipped_stacks(project_dir):
        raise TenantError(
            f"tenant id {tenant.id!r} is a stack shipped in the repository (Pulumi.{tenant.id}.yaml); choose another id"
        )
    if not tenant.apps:
        raise TenantError("tenant apps: at least one app is required")
    decls = project_keys(project_dir)
    kube = kubeconfig_of(tenant)
    plain: dict[str, Any] = {
        "scoutflo:tenant": tenant.id,
        "scoutflo:apps": [dict(app) for app in tenant.apps],
        "github:owner": tenant.github_owner,
        "aws:region": tenant.aws_region,
    }
    secrets: dict[str, str] = {
        "github:token": tenant.github_token,
        "aws:accessKey": tenant.aws_access_key_id,
        "aws:secretKey": tenant.aws_secret_access_key,
        "kubernetes:kubeconfig": kube.document,
    }
    if tenant.aws_session_token:
        secrets["aws:token"] = tenant.aws_session_token
    if tenant.aws_role_arn:
        plain["aws:assumeRoles"] = [{"roleArn": tenant.aws_role_arn, "sessionName": f"scoutflo-{tenant.id}"}]
    # The kubeconfig's one context, named explicitly: the provider's override of current-context
    # (pulumi-kubernetes provider.go L610).
    plain["kubernetes:context"] = kube.context
    for key, value in sorted(tenant.config.items()):
        if ":" in key:
            raise TenantError(f"tenant config key {key!r}: give scoutflo keys without a namespace")
        if key in BACKEND_KEYS:
            raise TenantError(
                f"tenant config key {key!r} is not tenant-settable (it is set from the tenant's own fields "
                "or names a path on the backend)"
            )
        if key not in TENANT_KEYS:
            raise TenantError(f"tenant config key {key!r} is unknown; tenant-settable keys: {sorted(TENANT_KEYS)}")
        full = f"{PROJECT}:{key}"
        decl = decls.get(full, KeyDecl(None, None, False))
        if decl.type == "string" and decl.secret and isinstance(value, Mapping):
            # chartRegistryCredentials: a secret object travels as JSON in a secret string (the
            # CLI encrypts a string from stdin; config.py parses it).
            value = json.dumps(value, sort_keys=True)
        if decl.type and not value_matches(decl.type, decl.items, value):
            raise TenantError(f"tenant config key {key!r} must be of type {decl.type!r} (Pulumi.yaml)")
        if key == "argocdProject" and value not in ("default", tenant.id):
            raise TenantError(project_refusal(tenant.id, value))
        if decl.secret:
            secrets[full] = value if isinstance(value, str) else json.dumps(value)
        else:
            plain[full] = value
    for full, value in plain.items():
        found = decls.get(full)
        if found and found.type and not value_matches(found.type, found.items, value):
            raise TenantError(f"tenant value for {full!r} must be of type {found.type!r} (Pulumi.yaml)")
    check_program_config(plain, secrets, project_dir)
    return StackSettings(plain=plain, secrets=secrets)


def check_program_config(plain: Mapping[str, Any], secrets: Mapping[str, str], project_dir: Path = PROJECT_DIR) -> None:
    """TenantError naming the field when the program would refuse this config: the program's own
    validation (scoutflo/config.py parse_config against the chart catalog, charts_catalog), run
    here before any CLI call, so an unknown chart or a bad app name is `invalid-tenant` and not a
    failed preview. The values are those the program reads (scoutflo/config.py load_config):
    Pulumi.yaml's defaults, then the stack's values, secrets included (parsed in-process only;
    parse_config names keys and app fields in its messages, never a secret's value)."""
    from charts_catalog import CatalogError, load_catalog
    from scoutflo.config import ConfigError, parse_config

    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
    raw: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, Mapping) and "default" in decl:
            raw[key if ":" in key else f"{project['name']}:{key}"] = decl["default"]
    raw.update(plain)
    raw.update(secrets)
    try:
        parse_config(raw, load_catalog(raw.get(f"{PROJECT}:catalogPath") or None))
    except (ConfigError, CatalogError) as err:
        raise TenantError(_tenant_field(str(err))) from None


def _tenant_field(message: str) -> str:
    """parse_config's message with its config key as the tenant spec's field: `scoutflo:apps[0]`
    is the spec's `apps[0]`, `scoutflo:ecrPrefix` its `config.ecrPrefix`."""
    message = message.replace("config 'scoutflo:apps", "tenant spec 'apps")
    message = message.replace("config 'scoutflo:tenant'", "tenant spec 'id'")
    return message.replace("config 'scoutflo:", "tenant spec 'config.")


MAX_TENANT_FILE = 16 * 1024 * 1024
"""A tenant spec's size limit, read or received: a few apps' values, far below this."""


def tenant_from_json(raw: bytes, where: str) -> Tenant:
    """A tenant spec from JSON bytes, or a TenantError naming `where` and what is wrong (never a
    traceback): the CLI's `--tenant` file and the service's tenant sources read them alike."""
    if len(raw) > MAX_TENANT_FILE:
        raise TenantError(f"{where}: larger than {MAX_TENANT_FILE} bytes")

    def no_constant(name: str) -> Any:
        # Python's json reads NaN and Infinity, which are not JSON and which the CLI refuses.
        raise ValueError(f"{name} is not a JSON value")

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except UnicodeDecodeError:
        raise TenantError(f"{where}: cannot read it (not UTF-8)") from None
    except json.JSONDecodeError as err:
        raise TenantError(f"{where}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except RecursionError:
        raise TenantError(f"{where}: not a tenant spec (nested too deeply)") from None
    except ValueError as err:
        # An integer of more than 4300 digits (int's str-conversion limit), NaN, Infinity.
        raise TenantError(f"{where}: not a tenant spec ({' '.join(str(err).split())[:200]})") from None
    try:
        return Tenant.from_dict(data)
    except TenantError as err:
        raise TenantError(f"{where}: {err}") from None
