"""A tenant as the backend knows it, and its mapping onto the stack's config (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scoutflo.naming import dns_label_problem


class TenantError(ValueError):
    """A tenant spec that cannot become a stack; the message names the field."""


@dataclass(frozen=True)
class ConfigEntry:
    value: str
    secret: bool = False


@dataclass(frozen=True, kw_only=True)
class Tenant:
    id: str
    """Tenant id: the stack name and `scoutflo:tenant`."""
    github_owner: str
    github_token: str = field(repr=False)
    aws_region: str
    aws_access_key_id: str = ""
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)
    aws_role_arn: str = ""
    """Assumed by the AWS provider (instead of, or on top of, keys)."""
    kubeconfig: str = field(default="", repr=False)
    """The cluster's kubeconfig (secret); '' uses the machine's."""
    kube_context: str = ""
    apps: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, str] = field(default_factory=dict)
    """Further `scoutflo:*` keys (clusterOidcIssuer, ecrPrefix, ...), without the namespace."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tenant:
        """From the backend's JSON: {id, github: {owner, token}, aws: {...}, cluster: {...}, apps, config}."""

        def need(path: str) -> Any:
            value: Any = data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value in (None, ""):
                raise TenantError(f"tenant spec is missing {path!r}")
            return value

        aws, cluster = data.get("aws") or {}, data.get("cluster") or {}
        return cls(
            id=need("id"),
            github_owner=need("github.owner"),
            github_token=need("github.token"),
            aws_region=need("aws.region"),
            aws_access_key_id=aws.get("accessKeyId", ""),
            aws_secret_access_key=aws.get("secretAccessKey", ""),
            aws_session_token=aws.get("sessionToken", ""),
            aws_role_arn=aws.get("roleArn", ""),
            kubeconfig=cluster.get("kubeconfig", ""),
            kube_context=cluster.get("context", ""),
            apps=tuple(data.get("apps") or ()),
            config=dict(data.get("config") or {}),
        )


def tenant_config(tenant: Tenant) -> dict[str, ConfigEntry]:
    """The stack config for `tenant`; every credential is a secret config value."""
    if problem := dns_label_problem(tenant.id, 40):
        raise TenantError(f"tenant id {tenant.id!r} {problem}")
    if not tenant.github_token:
        raise TenantError("tenant github token is required (repo and workflow scopes)")
    if bool(tenant.aws_access_key_id) != bool(tenant.aws_secret_access_key):
        raise TenantError("tenant aws accessKeyId and secretAccessKey go together")
    if not tenant.apps:
        raise TenantError("tenant apps: at least one app is required")
    cfg = {
        "scoutflo:tenant": ConfigEntry(tenant.id),
        "scoutflo:apps": ConfigEntry(json.dumps(list(tenant.apps), sort_keys=True)),
        "github:owner": ConfigEntry(tenant.github_owner),
        "github:token": ConfigEntry(tenant.github_token, secret=True),
        "aws:region": ConfigEntry(tenant.aws_region),
    }
    if tenant.aws_access_key_id:
        cfg["aws:accessKey"] = ConfigEntry(tenant.aws_access_key_id, secret=True)
        cfg["aws:secretKey"] = ConfigEntry(tenant.aws_secret_access_key, secret=True)
    if tenant.aws_session_token:
        cfg["aws:token"] = ConfigEntry(tenant.aws_session_token, secret=True)
    if tenant.aws_role_arn:
        roles = [{"roleArn": tenant.aws_role_arn, "sessionName": f"scoutflo-{tenant.id}"}]
        cfg["aws:assumeRoles"] = ConfigEntry(json.dumps(roles))
    if tenant.kubeconfig:
        cfg["kubernetes:kubeconfig"] = ConfigEntry(tenant.kubeconfig, secret=True)
    if tenant.kube_context:
        cfg["kubernetes:context"] = ConfigEntry(tenant.kube_context)
    for key, value in tenant.config.items():
        if ":" in key:
            raise TenantError(f"tenant config key {key!r}: give scoutflo keys without a namespace")
        if f"scoutflo:{key}" in cfg:
            raise TenantError(f"tenant config key {key!r} is set from the tenant's own fields")
        cfg[f"scoutflo:{key}"] = ConfigEntry(str(value), secret=key.startswith("refresher"))
    return cfg
