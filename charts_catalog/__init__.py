"""The public charts Scoutflo offers: one YAML file per offering, validated on load.

Pure data plus this loader; nothing here imports Pulumi, so the catalog is tested without mocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from scoutflo.charts import safe_yaml
from scoutflo.charts.chart_yaml import chart_name_problem
from scoutflo.charts.versions import VersionError, parse_constraint
from scoutflo.naming import app_name_problem

BUILTIN_DIR = Path(__file__).resolve().parent
TEMPLATE_PREFIX = "template:"
SourceKind = Literal["oci", "http", "template"]


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class ChartSource:
    kind: SourceKind
    repo: str
    """`oci://host/ns`, `https://…` Helm repository, or `template:<dir>`."""
    chart: str
    version: str
    """Semver range; the newest stable match is imported ('*' for templates)."""
    template_dir: Path | None = None
    plain_http: bool = False
    """OCI over plain HTTP (an in-cluster or air-gapped mirror), like `helm --plain-http`."""


@dataclass(frozen=True)
class SyncSettings:
    prune: str = "true"
    """What Argo CD does with objects a new chart version no longer renders: 'true' prunes them,
    'false' never does (stateful charts: a PersistentVolumeClaim or CRD that disappears in an
    upgrade or downgrade is the user's data), 'confirm' waits for a person's approval."""
    server_side_apply: bool = False
    """Argo CD applies server-side (`ServerSideApply=true`): for charts with objects too big for
    client-side apply's 262 144-byte last-applied-configuration annotation (kube-prometheus-stack's
    CRDs; prometheus-community/helm-charts #7277, argoproj/argo-cd #8128)."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    source: ChartSource
    sync: SyncSettings = SyncSettings()
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    path: Path | None = None


_ENTRY_KEYS = {"name", "description", "source", "defaults", "sync"}
_SOURCE_KEYS = {"repo", "chart", "version", "plainHttp"}
_DEFAULTS_KEYS = {"values"}
_SYNC_KEYS = {"prune", "serverSideApply"}


def _fail(path: Path, field_name: str, problem: str) -> CatalogError:
    return CatalogError(f"catalog file {path}: field '{field_name}' {problem}")


def _unknown(path: Path, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _fail(path, f"{where}{extra[0]}", f"is not a catalog field; allowed: {sorted(allowed)}")


def parse_entry(path: Path, data: object) -> CatalogEntry:
    """Validate one catalog document; `path` locates it in errors and anchors `template:` dirs."""
    if not isinstance(data, dict):
        raise CatalogError(f"catalog file {path}: must be a YAML mapping with name, source, defaults")
    _unknown(path, "", data, _ENTRY_KEYS)
    name = data.get("name")
    problem = app_name_problem(name)
    if problem:
        raise _fail(path, "name", problem)
    assert isinstance(name, str)
    if path.stem != name:
        raise _fail(path, "name", f"is {name!r} but the file is {path.name}; name the file {name}.yaml")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, "description", "must be a string")

    src = data.get("source")
    if not isinstance(src, dict):
        raise _fail(path, "source", "is required: a mapping with repo, chart, version")
    _unknown(path, "source.", src, _SOURCE_KEYS)
    repo = src.get("repo")
    if not isinstance(repo, str) or not repo:
        raise _fail(path, "source.repo", "is required: oci://host/ns, https://helm-repo or template:<dir>")
    source = _parse_source(path, name, repo, src)

    defaults = data.get("defaults", {}) or {}
    if not isinstance(defaults, dict):
        raise _fail(path, "defaults", "must be a mapping with values")
    if "namespace" in defaults:
        raise _fail(
            path,
            "defaults.namespace",
            "is no longer read: an app's namespace is the app's name (two apps of one chart must "
            "not share one), or the app's own `namespace` in scoutflo:apps; remove it",
        )
    _unknown(path, "defaults.", defaults, _DEFAULTS_KEYS)
    values = defaults.get("values", {}) or {}
    if not isinstance(values, dict):
        raise _fail(path, "defaults.values", "must be a mapping of Helm values")
    return CatalogEntry(
        name=name,
        description=description,
        source=source,
        sync=_parse_sync(path, data.get("sync")),
        values=MappingProxyType(values),
        path=path,
    )


def _parse_sync(path: Path, sync: object) -> SyncSettings:
    if sync is None:
        return SyncSettings()
    if not isinstance(sync, dict):
        raise _fail(path, "sync", "must be a mapping such as {prune: false}")
    _unknown(path, "sync.", sync, _SYNC_KEYS)
    server_side_apply = sync.get("serverSideApply", False)
    if not isinstance(server_side_apply, bool):
        raise _fail(
            path,
            "sync.serverSideApply",
            f"is {server_side_apply!r}; use true (Argo CD applies server-side: objects over 262 144 "
            "bytes, such as big CRDs) or false (the default)",
        )
    prune = sync.get("prune", True)
    # YAML reads `prune: false` as a boolean; 'confirm' is the one string Argo CD also knows.
    if isinstance(prune, bool):
        return SyncSettings(prune="true" if prune else "false", server_side_apply=server_side_apply)
    if prune == "confirm":
        return SyncSettings(prune="confirm", server_side_apply=server_side_apply)
    raise _fail(
        path,
        "sync.prune",
        f"is {prune!r}; use true (prune what a new chart version drops), false (keep it: stateful "
        "charts) or confirm (a person approves each prune)",
    )


def _parse_source(path: Path, name: str, repo: str, src: Mapping[str, Any]) -> ChartSource:
    if repo.startswith(TEMPLATE_PREFIX):
        rel = repo[len(TEMPLATE_PREFIX) :]
        template_dir = (path.parent / "templates" / rel).resolve()
        templates_root = (path.parent / "templates").resolve()
        if not rel or templates_root not in template_dir.parents:
            raise _fail(path, "source.repo", f"{repo!r} must name a directory under {templates_root}")
        if not (template_dir / "Chart.yaml").is_file():
            raise _fail(path, "source.repo", f"{repo!r}: no Chart.yaml in {template_dir}")
        version = src.get("version", "*")
        return ChartSource("template", repo, src.get("chart", rel), str(version), template_dir)

    # Before any message repeats the URL: a user name or password in any spelling of the
    # authority (`HTTPS://u:pw@h`, `ftp://u:pw@h`, `https:/u:pw@h`) is refused unrepeated.
    if "@" in re.split(r"[/?#]", repo.partition(":")[2].lstrip("/"), maxsplit=1)[0]:
        raise _fail(
            path,
            "source.repo",
            "holds a user name or password (user:password@host); remove it and put the credentials "
            "in the secret config key scoutflo:chartRegistryCredentials under the host's name",
        )
    if repo.startswith("oci://"):
        kind: SourceKind = "oci"
        rest = repo[len("oci://") :]
    elif repo.startswith("https://") or repo.startswith("http://"):
        kind = "http"
        rest = repo.split("://", 1)[1]
    else:
        raise _fail(path, "source.repo", f"{repo!r} must start with oci://, https:// or template:")
    if "@" in rest.split("/", 1)[0]:
        # The URL is not repeated: it holds a password. Credentials live in the stack's secret.
        raise _fail(
            path,
            "source.repo",
            "holds a user name or password (user:password@host); remove it and put the credentials "
            "in the secret config key scoutflo:chartRegistryCredentials under the host's name",
        )
    if not rest or rest.startswith("/") or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in rest):
        raise _fail(path, "source.repo", f"{repo!r} has no host")
    try:
        host = urlsplit(f"{kind}://{rest}").hostname
        urlsplit(f"{kind}://{rest}").port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise _fail(path, "source.repo", f"{repo!r} has an invalid host or port") from None
    if not host:
        raise _fail(path, "source.repo", f"{repo!r} has no host")
    chart = src.get("chart")
    if not isinstance(chart, str) or not chart:
        raise _fail(path, "source.chart", "is required: the chart's name in that repository")
    if problem := chart_name_problem(chart):
        raise _fail(path, "source.chart", problem)
    version = src.get("version")
    if not isinstance(version, str):
        raise _fail(path, "source.version", "is required: a semver range such as '>=16.0.0 <17.0.0'")
    try:
        parse_constraint(version)
    except VersionError as err:
        raise _fail(path, "source.version", f"is not a valid semver range: {err}") from None
    plain_http = src.get("plainHttp", False)
    if not isinstance(plain_http, bool):
        raise _fail(path, "source.plainHttp", "must be true or false")
    return ChartSource(kind, repo.rstrip("/"), chart, version, plain_http=plain_http)


def load_file(path: Path) -> CatalogEntry:
    try:
        data = safe_yaml.load(path.read_bytes(), f"catalog file {path}")
    except safe_yaml.UntrustedYamlError as err:
        raise CatalogError(str(err)) from None
    return parse_entry(path, data)


def load_dir(directory: Path) -> dict[str, CatalogEntry]:
    if not directory.is_dir():
        raise CatalogError(f"catalog directory {directory} does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return {entry.name: entry for entry in map(load_file, files)}


def load_catalog(extra_dir: str | Path | None = None) -> dict[str, CatalogEntry]:
    """Built-in entries, overridden by same-named entries of `extra_dir` when given."""
    catalog = load_dir(BUILTIN_DIR)
    if extra_dir:
        catalog.update(load_dir(Path(extra_dir)))
    return dict(sorted(catalog.items()))
