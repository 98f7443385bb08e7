"""A tenant's kubeconfig, restricted to data that can neither run code nor name a backend file (pure).

What the provider does with `kubernetes:kubeconfig` (pulumi/pulumi-kubernetes at 94977969d641):
- `parseKubeconfigString` (`provider/pkg/provider/util.go` L135-L168) expands `~/`, then
  `os.Stat`s the string and, when such a file exists, reads *that file* as the kubeconfig
  (L157-L162): a tenant naming a path makes a backend file its cluster;
- the result goes to client-go's `clientcmd.Load` and `NewDefaultClientConfig`
  (`provider/pkg/provider/provider.go` L873-L879), and is also written to a file for Helm (L886).

What client-go then does with it (kubernetes/client-go at 32ce75a7d6bc):
- `exec` runs a command (`plugin/pkg/client/auth/exec/exec.go` L458) with the process's whole
  environment (`os.Environ`, L217): the provider inherits the Pulumi CLI's, i.e. the backend's
  secrets passphrase and cloud credentials (pulumi/pulumi at 1b5949891b3c
  `sdk/go/common/resource/plugin/plugin.go` L500, L601-L602);
- `auth-provider` hands the config to an in-process auth plugin that may refresh tokens over the
  network and write the result back (`rest/plugin.go` L74-L80; `tools/clientcmd/client_config.go`
  L306-L308);
- `tokenFile`, `client-certificate`, `client-key` and `certificate-authority` are read from the
  backend's disk (client_config.go L280-L286, L296-L299, L262); a token read from a backend file is
  then sent to the tenant's server;
- `proxy-url` routes the traffic through a host the tenant picks (L198-L203),
  `insecure-skip-tls-verify` drops the server check (L264), and impersonation (`as`, `as-uid`,
  `as-groups`, `as-user-extra`, L288-L295) and basic auth (`username`/`password`) are not needed;
- `extensions` feed exec plugins (L313); `LocationOfOrigin` is never serialized
  (`tools/clientcmd/api/types.go` L72, `json:"-"`), so it is just an unknown key here.

So the accepted form is an allow-list over `tools/clientcmd/api/v1/types.go` (Config L28-L53,
Cluster L65-L99, AuthInfo L102-L149, Context L152-L163): exactly one cluster (`server` over https,
`certificate-authority-data`, optionally `tls-server-name`), one user (`token`, or
`client-certificate-data` with `client-key-data`), one context joining them (optionally
`namespace`); every other key is refused by name. Nothing of the tenant's text reaches the
provider: the checked values are written out again as JSON (which `clientcmd.Load` reads, its
codec is YAML-or-JSON, `tools/clientcmd/loader.go` L439-L445), so no YAML reader disagreement
between PyYAML and Go can smuggle a field past this check. That JSON is also no path the provider
could `os.Stat` by accident: it starts with `{"apiVersion"` and names a file only if someone who
already writes the backend's disk made one of that name in the provider's working directory.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from scoutflo.charts.safe_yaml import UntrustedYamlError
from scoutflo.charts.safe_yaml import load as load_untrusted

MAX_BYTES = 64 * 1024
"""A kubeconfig with a CA bundle and a client certificate is a few KiB."""
MAX_DEPTH = 8
"""The accepted form nests 4 deep (document > clusters > item > cluster); deeper is refused while
parsing, before libyaml's composer recurses into it (see scoutflo/charts/safe_yaml.py)."""
MAX_STRING = 16 * 1024

_TOP = ("apiVersion", "kind", "clusters", "contexts", "users", "current-context", "preferences")
_CLUSTER = ("server", "certificate-authority-data", "tls-server-name")
_CONTEXT = ("cluster", "user", "namespace")
_USER = ("token", "client-certificate-data", "client-key-data")

_WHY = {
    "exec": "runs a command on the backend with the backend's environment (client-go exec credential plugin)",
    "auth-provider": "runs a client-go auth plugin on the backend",
    "tokenFile": "names a file on the backend",
    "client-certificate": "names a file on the backend; give client-certificate-data",
    "client-key": "names a file on the backend; give client-key-data",
    "certificate-authority": "names a file on the backend; give certificate-authority-data",
    "proxy-url": "sends the backend's traffic through a proxy",
    "insecure-skip-tls-verify": "turns off the server's certificate check",
    "as": "impersonation is not accepted",
    "as-uid": "impersonation is not accepted",
    "as-groups": "impersonation is not accepted",
    "as-user-extra": "impersonation is not accepted",
    "username": "basic auth is not accepted; give a token",
    "password": "basic auth is not accepted; give a token",
    "extensions": "extensions configure exec plugins",
    "disable-compression": "not accepted",
    "LocationOfOrigin": "not accepted",
}


class KubeconfigError(ValueError):
    """A kubeconfig outside the accepted form; the message names the field and the fix."""


@dataclass(frozen=True)
class Kubeconfig:
    context: str
    """The one context's name (what `kubernetes:context` is set to)."""
    server: str
    document: str = field(repr=False)
    """The checked kubeconfig as JSON: what the provider is given, never the tenant's own text."""


def restrict(text: str, context: str = "") -> Kubeconfig:
    """The accepted kubeconfig in `text`, or KubeconfigError naming the first field outside it.
    `context`, when given, must be the kubeconfig's one context."""
    if not isinstance(text, str):
        raise KubeconfigError("the kubeconfig must be a string holding the kubeconfig itself")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise KubeconfigError(
            f"the kubeconfig is larger than {MAX_BYTES} bytes; give one cluster, one user and one context"
        )
    data = _parse(text)
    if not isinstance(data, Mapping):
        kind = "a path or a single value" if isinstance(data, str | int | float) or data is None else "not a mapping"
        raise KubeconfigError(
            f"the kubeconfig is {kind}, not an inline kubeconfig: give the kubeconfig's contents "
            "(`kubectl config view --minify --flatten --raw`), never a file name"
        )
    _keys(data, _TOP, "")
    if data.get("apiVersion", "v1") != "v1":
        raise KubeconfigError("apiVersion must be 'v1'")
    if data.get("kind", "Config") != "Config":
        raise KubeconfigError("kind must be 'Config'")
    if data.get("preferences", {}) != {}:
        raise KubeconfigError("preferences must be empty")
    cluster_name, cluster = _one(data, "clusters", "cluster", _CLUSTER)
    user_name, user = _one(data, "users", "user", _USER)
    context_name, ctx = _one(data, "contexts", "context", _CONTEXT)

    server = _string(cluster, "server", "clusters[0].cluster")
    _check_server(server)
    ca = _pem(cluster, "certificate-authority-data", "clusters[0].cluster", b"-----BEGIN CERTIFICATE-----")
    out_cluster = {"server": server, "certificate-authority-data": ca}
    if "tls-server-name" in cluster:
        out_cluster["tls-server-name"] = _string(cluster, "tls-server-name", "clusters[0].cluster")

    if "token" in user:
        if "client-certificate-data" in user or "client-key-data" in user:
            raise KubeconfigError("users[0].user: give a token or a client certificate, not both")
        out_user = {"token": _string(user, "token", "users[0].user")}
    elif "client-certificate-data" in user or "client-key-data" in user:
        out_user = {
            "client-certificate-data": _pem(
                user, "client-certificate-data", "users[0].user", b"-----BEGIN CERTIFICATE-----"
            ),
            "client-key-data": _pem(user, "client-key-data", "users[0].user", b"PRIVATE KEY-----"),
        }
    else:
        raise KubeconfigError("users[0].user needs a token, or client-certificate-data and client-key-data")

    if _string(ctx, "cluster", "contexts[0].context") != cluster_name:
        raise KubeconfigError(f"contexts[0].context.cluster must be the cluster {cluster_name!r}")
    if _string(ctx, "user", "contexts[0].context") != user_name:
        raise KubeconfigError(f"contexts[0].context.user must be the user {user_name!r}")
    out_ctx = {"cluster": cluster_name, "user": user_name}
    if "namespace" in ctx:
        out_ctx["namespace"] = _string(ctx, "namespace", "contexts[0].context")
    if data.get("current-context") not in (None, "", context_name):
        raise KubeconfigError(f"current-context must be the one context {context_name!r}")
    if context and context != context_name:
        raise KubeconfigError(f"the kubeconfig has the one context {context_name!r}, not {context!r} (cluster.context)")

    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": out_cluster}],
        "users": [{"name": user_name, "user": out_user}],
        "contexts": [{"name": context_name, "context": out_ctx}],
        "current-context": context_name,
    }
    return Kubeconfig(context=context_name, server=server, document=json.dumps(document, sort_keys=True))


def _parse(text: str) -> Any:
    # Checked on the parser's events, which libyaml produces without recursing, before anything
    # is built: depth (the first event past MAX_DEPTH stops it; a 30 000-deep flow sequence is
    # refused in ~1 ms), and what `kubectl config view --raw` never writes. An explicit tag makes
    # PyYAML's constructors crash (`!!timestamp x`: AttributeError, yaml/constructor.py L325) or
    # quote the scalar, the token, in their message (`!!int`: "invalid literal for int()"); an
    # anchor or alias could grow the document; a key that is a collection is no field name.
    # Only then does safe_yaml build the document (no aliases, no duplicate keys).
    try:
        depth = 0
        keys: list[set[str] | None] = []  # per open collection: a mapping's keys so far, or None
        at_key: list[bool] = []
        loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
        # A stream, not the string: PyYAML's pure-Python reader then keeps no buffer in its marks
        # (yaml/reader.py get_mark), which would otherwise quote the offending line, token and all.
        for event in yaml.parse(io.StringIO(text), Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise KubeconfigError(f"anchors and aliases are not accepted in a kubeconfig{_at(event)}")
            if getattr(event, "tag", None) is not None:
                raise KubeconfigError(f"explicit YAML tags (!!int, !name) are not accepted in a kubeconfig{_at(event)}")
            key = isinstance(event, yaml.NodeEvent) and bool(at_key) and at_key[-1] and keys[-1] is not None
            if key and not isinstance(event, yaml.ScalarEvent):
                raise KubeconfigError(f"a mapping key that is a list or mapping is no kubeconfig field{_at(event)}")
            if key and isinstance(event, yaml.ScalarEvent):
                seen = keys[-1]
                assert seen is not None
                if event.value in seen:
                    raise KubeconfigError(f"duplicate key {event.value!r}{_at(event)}")
                seen.add(event.value)
            if isinstance(event, yaml.NodeEvent) and at_key and keys[-1] is not None:
                at_key[-1] = not at_key[-1]
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise KubeconfigError(
                        f"the kubeconfig is nested deeper than {MAX_DEPTH} levels; a kubeconfig is not"
                    )
                keys.append(set() if isinstance(event, yaml.MappingStartEvent) else None)
                at_key.append(True)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
                keys.pop()
                at_key.pop()
        return load_untrusted(text, "the kubeconfig")
    except KubeconfigError:
        raise
    except UntrustedYamlError as err:
        raise KubeconfigError(str(err)) from None
    except yaml.YAMLError as err:
        raise KubeconfigError(f"the kubeconfig is not valid YAML: {_yaml_problem(err)}") from None
    except (ValueError, RecursionError) as err:
        # What PyYAML's constructors raise themselves: an integer of more than 4300 digits (int's
        # str-conversion limit), a date that does not exist; and a lone surrogate, which no UTF-8
        # text holds (libyaml is given UTF-8).
        raise KubeconfigError(f"the kubeconfig cannot be read: {' '.join(str(err).split())[:200]}") from None


def _at(event: Any) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where, never the offending text: the line may carry the token."""
    if isinstance(err, yaml.reader.ReaderError):
        return f"unacceptable character #x{err.character:04x} ({err.reason}) at character {err.position}"
    if isinstance(err, yaml.MarkedYAMLError):
        what = "; ".join(" ".join(part.split()) for part in (err.context, err.problem) if part)
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{what or type(err).__name__}{where}"
    return type(err).__name__


def _keys(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            why = _WHY.get(str(key)) or f"is not a field this backend accepts here (accepted: {', '.join(allowed)})"
            raise KubeconfigError(f"{name}: {why}")


def _one(data: Mapping[str, Any], list_key: str, item_key: str, allowed: tuple[str, ...]) -> tuple[str, Any]:
    items = data.get(list_key)
    if not isinstance(items, list) or len(items) != 1:
        count = len(items) if isinstance(items, list) else 0
        raise KubeconfigError(f"{list_key} must hold exactly one entry (it holds {count})")
    item = items[0]
    where = f"{list_key}[0]"
    if not isinstance(item, Mapping):
        raise KubeconfigError(f"{where} must be a mapping")
    _keys(item, ("name", item_key), where)
    name = _string(item, "name", where)
    body = item.get(item_key)
    if not isinstance(body, Mapping):
        raise KubeconfigError(f"{where}.{item_key} must be a mapping")
    _keys(body, allowed, f"{where}.{item_key}")
    return name, body


def _string(obj: Mapping[str, Any], key: str, where: str, limit: int = MAX_STRING) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise KubeconfigError(f"{where}.{key} must be a non-empty string")
    if len(value) > limit:
        raise KubeconfigError(f"{where}.{key} is longer than {limit} characters")
    if value != value.strip() or any(unicodedata.category(ch)[0] in "CZ" for ch in value):
        raise KubeconfigError(f"{where}.{key} holds whitespace or control characters")
    return value


def _pem(obj: Mapping[str, Any], key: str, where: str, marker: bytes) -> str:
    # Go decodes a []byte field as standard base64 (encoding/json); what this accepts it decodes.
    value = _string(obj, key, where, MAX_BYTES)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where}.{key} must be base64 (the PEM data itself, not a file name)") from None
    if marker not in raw:
        raise KubeconfigError(f"{where}.{key} must be base64 of PEM ({marker.decode().strip('-')})")
    return value


def _check_server(server: str) -> None:
    where = "clusters[0].cluster.server"
    try:
        parts = urllib.parse.urlsplit(server)
    except ValueError:
        # An unbalanced '[' or ']' ("Invalid IPv6 URL"), or a host that NFKC-normalizes to a
        # separator (urllib/parse.py _checknetloc): no URL client-go and this check would agree on.
        raise KubeconfigError(f"{where} is not a URL (scheme://host[:port][/path])") from None
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise KubeconfigError(f"{where} has an invalid port") from None
    if parts.scheme != "https":
        raise KubeconfigError(f"{where} must be an https:// URL (the token would otherwise travel in clear)")
    if not parts.hostname:
        raise KubeconfigError(f"{where} has no host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise KubeconfigError(f"{where} must not carry credentials")
    if parts.query or parts.fragment or "?" in server or "#" in server or "\\" in server:
        raise KubeconfigError(f"{where} must be scheme, host, port and path only")
