"""Kubeconfigs as tenants give them: the accepted form, built the way `kubectl config view
--minify --flatten --raw` writes it, and variations of it (tests of automation/kubeconfig.py)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import yaml

FAKE_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUdGVzdA==\n-----END CERTIFICATE-----\n"
FAKE_KEY = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIHRlc3Q=\n-----END EC PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_data(
    token: str = "KUBE-SECRET",
    server: str = "https://ABCDEF0123.gr7.eu-west-1.eks.amazonaws.com",
    context: str = "prod",
    ca: bytes = FAKE_PEM,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "acme-cluster", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "contexts": [{"name": context, "context": {"cluster": "acme-cluster", "user": "deployer"}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": "deployer", "user": {"token": token}}],
    }


def kubeconfig_text(**kwargs: Any) -> str:
    return yaml.safe_dump(kubeconfig_data(**kwargs), sort_keys=False)


def changed(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`data` with `value` at a dotted path (`users.0.user.exec`); `...` as value deletes the key."""
    out = copy.deepcopy(data)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return out


def tenant_spec(*, token: str | None = None, **changes: Any) -> dict[str, Any]:
    """A tenant spec the backend accepts (the program refuses irsa mode without an OIDC issuer,
    scoutflo/config.py), around a kubeconfig with `token` when given; `changes` replace its keys."""
    kubeconfig = kubeconfig_text(token=token) if token is not None else kubeconfig_text()
    data: dict[str, Any] = {
        "id": "acme",
        "github": {"owner": "acme-gitops", "token": "ghp_TOKEN"},
        "aws": {"region": "eu-west-1", "accessKeyId": "AKIAACME", "secretAccessKey": "AWS-S3CRET"},
        "cluster": {"kubeconfig": kubeconfig},
        "apps": [{"name": "storefront", "chart": "webapp"}],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X"},
    }
    return data | changes
