"""Where a worker gets a tenant's spec (and so its credentials): a `TenantSource`.

Job arguments and tables hold tenant ids only. A worker asks its source for the spec when a job
starts and drops it when the job ends; the credentials never pass through PostgreSQL.

- `DirectoryTenantSource(dir)`: one JSON file per tenant, `<dir>/<id>.json`, mode 0600, owned by
  the worker's user, not a link. For tests and small installs (a directory the backend writes,
  e.g. a Kubernetes Secret or Vault Agent template mounted into the worker's pod).
- The backend's own source: `module:callable` in the operator's settings (SCOUTFLO_TENANT_SOURCE),
  imported by the worker at start. It is never read from a tenant or a job, so nothing a tenant
  supplies chooses code to run. The callable takes no argument and returns a TenantSource (e.g. one
  that reads the backend's database or AWS Secrets Manager under the worker's role).
"""

from __future__ import annotations

import importlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from automation.operations import InvalidSetup, InvalidTenant
from automation.tenant import MAX_TENANT_FILE, Tenant, TenantError
from automation.tenant import tenant_from_json as parse_tenant

"""As the CLI's --tenant file (automation/__main__.py): a spec with hundreds of apps is a few MB."""

TENANT_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
"""A tenant id is a DNS-1123 label of at most 40 characters (automation/tenant.py tenant_settings; the
previous table CHECK in service/migrations/0001_service.sql): it names a file here,
so nothing else (no `/`, `..`, NUL) may reach a path."""

_SOURCE_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


@runtime_checkable
class TenantSource(Protocol):
    """The backend's tenants, by id."""

    def get(self, tenant_id: str) -> Tenant:
        """The tenant's spec now; InvalidTenant when there is none or it is malformed."""
        ...

    def ids(self) -> Iterable[str]:
        """Every tenant id (the daily sweep walks them)."""
        ...


def check_tenant_id(tenant_id: object) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise InvalidTenant(
            f"tenant id {str(tenant_id)[:80]!r}: must be a DNS-1123 label (lower-case letters, digits, '-', "
            "at most 40 characters)"
        )
    return tenant_id


def tenant_from_json(raw: bytes, where: str) -> Tenant:
    """A tenant spec from JSON bytes (automation/tenant.py's parser), or InvalidTenant naming
    `where` and what is wrong."""
    try:
        return parse_tenant(raw, where)
    except TenantError as err:
        raise InvalidTenant(str(err)) from None


class DirectoryTenantSource:
    """`<root>/<id>.json`, each a regular file of this user with mode 0600 (or 0400), not a link.

    Another mode means another local user could read a tenant's credentials (or write them: a
    spec naming another tenant's cluster); a link could make the worker read a file the tenant
    source never meant to hand out. Both are refused, never repaired."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _root_fd(self) -> int:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise InvalidSetup(f"tenant directory {self.root}: {err.strerror}") from None
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            os.close(fd)
            raise InvalidSetup(
                f"tenant directory {self.root} must be owned by uid {os.geteuid()} and writable by it only: "
                f"chmod 700 {self.root}"
            )
        return fd

    def get(self, tenant_id: str) -> Tenant:
        check_tenant_id(tenant_id)
        name = f"{tenant_id}.json"
        root = self._root_fd()
        try:
            try:
                # O_NOFOLLOW: a symbolic link is refused by the kernel (ELOOP), not followed.
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=root)
            except FileNotFoundError:
                raise InvalidTenant(f"unknown tenant {tenant_id!r}: no {self.root / name}") from None
            except OSError as err:
                raise InvalidTenant(f"tenant {tenant_id!r}: {self.root / name}: {err.strerror} (not a link?)") from None
        finally:
            os.close(root)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidTenant(f"tenant {tenant_id!r}: {self.root / name} is not a regular file")
            if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o177:
                raise InvalidTenant(
                    f"tenant {tenant_id!r}: {self.root / name} must be owned by uid {os.geteuid()} with mode 0600 "
                    f"(it is {stat.S_IMODE(info.st_mode):04o}): it holds the tenant's credentials"
                )
            with os.fdopen(fd, "rb") as f:
                fd = -1
                raw = f.read(MAX_TENANT_FILE + 1)
        finally:
            if fd >= 0:
                os.close(fd)
        tenant = tenant_from_json(raw, str(self.root / name))
        if tenant.id != tenant_id:
            raise InvalidTenant(f"{self.root / name} names tenant {tenant.id!r}, not {tenant_id!r}")
        return tenant

    def ids(self) -> list[str]:
        root = self._root_fd()
        try:
            names = os.listdir(root)
        finally:
            os.close(root)
        return sorted(n.removesuffix(".json") for n in names if n.endswith(".json") and TENANT_ID.match(n[:-5]))


def load_source(spec: str) -> TenantSource:
    """The operator's setting (service/settings.py ServiceSettings.tenant_source): `dir:/abs/dir`, or
    `module:callable` (the backend's own code, importable by the worker; called with no argument, it
    returns a TenantSource)."""
    if not spec:
        raise InvalidSetup(
            "SCOUTFLO_TENANT_SOURCE is required: dir:/absolute/dir of <id>.json files or module:callable"
        )
    if spec.startswith("dir:"):
        root = Path(spec.removeprefix("dir:"))
        if not root.is_absolute():
            raise InvalidSetup(f"tenant source {spec[:200]!r}: the directory must be absolute")
        return DirectoryTenantSource(root)
    if not _SOURCE_SPEC.match(spec):
        raise InvalidSetup(f"tenant source {spec[:200]!r}: use an absolute directory or module:callable")
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise InvalidSetup(f"tenant source {spec!r}: cannot import it ({err})") from None
    try:
        source = factory()
    except TypeError as err:
        raise InvalidSetup(f"tenant source {spec!r}: cannot call it without arguments ({err})") from None
    if not isinstance(source, TenantSource):
        raise InvalidSetup(f"tenant source {spec!r} returned {type(source).__name__}, not a TenantSource (get, ids)")
    return source
