"""Pulumi's own lock on a DIY backend, after a worker died mid-update: read it, prove its owner
dead, remove it, settle what the killed update left in the state.

The DIY backend (file://, s3://) locks a stack for an update by writing
`.pulumi/locks/<org>/<project>/<stack>/<lockID>.json` (pkg/backend/diy/lock.go L166-L178; the
org of a DIY stack is `organization`, as tests/fake_pulumi lays out), lockID a UUID per CLI
process (backend.go L321), content `{"pid", "username", "hostname", "timestamp"}` of the CLI
process that took it (lock.go L39-L61). There is no lease: only Unlock (L156-L164) or
`pulumi cancel` removes it, so a CLI killed mid-update leaves it and every later update fails
with "the stack is currently locked by 1 lock(s)" (L85-L109) until someone removes it.

`pulumi cancel` on a DIY backend deletes every lock file of the stack and does nothing else
(backend.go L1684-L1711, cancel/cancel.go L85): it stops no process and touches no pending
operation, so it is safe only once every lock's owner is proven dead: `cancel` here refuses
otherwise.

How the service reads the locks, on any DIY backend (file://, s3://, gs://, azblob://): from
the CLI itself. Every lock-taking command first lists the stack's other locks and, when there are
any, fails with "the stack is currently locked by N lock(s). …" followed by one line per lock,
`  <url>: created by <user>@<host> (pid <pid>) at <RFC 3339 time>` (lock.go L63-L112; the url is
the backend URL with the lock's key, credentials masked, L114-L128). The probe is `pulumi stack
rename <stack> --stack <stack>`: renameStack takes the stack's lock first (backend.go
L1112-L1119) and then refuses the existing new name before writing anything (L1121-L1128;
stack_rename.go L58-L81 does nothing before it), so its answer is either that refusal (the
locks) or "a stack named … already exists" (none), with no change to the state. The same
credentials the CLI uses for the state reach the locks; the service needs no client of its own
for the bucket.

What the killed update leaves in the state: every operation it had begun, as a pending operation
(pkg/backend/snapshot.go L755-L760). The next deployment only warns about them and goes on
(pkg/resource/deploy/deployment_executor.go L183-L188). Pending updates and deletes are dropped
by the next refresh or update (only the base's pending CREATEs are carried into a new snapshot,
snapshot.go L763-L771); pending CREATEs stay until `refresh --clear-pending-creates` drops them
(pkg/cmd/pulumi/operations/refresh.go L319-L328) or `--import-pending-creates URN ID` records
the resource the create did make (L286-L303, L564-L590); interactively the CLI asks per resource
(L311-L316), which a worker cannot answer.

The choice made by recovery: `clear_pending_creates=True`. An interrupted create either never
reached the provider or made a resource whose ID nobody recorded; importing needs that ID. Once
cleared, the next preview shows the create again and a person approves it; a resource that was in
fact made is then met by the provider's already-exists error or, for what the program adopts
(GitHub repositories, ECR repositories, the OIDC provider: scoutflo/adoption.py), adopted. An
operator who knows the IDs can pass `import_pending_creates` instead.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automation.operations import (
    InvalidSetup,
    OperationFailed,
    StackBusy,
    Stacks,
    _settings,
    require_cli,
    typed_errors,
    update_version,
)
from automation.tenant import Tenant

DIY_ORG = "organization"
"""A DIY stack's organization: project-scoped stacks are `organization/<project>/<stack>`."""


@dataclass(frozen=True)
class LockInfo:
    path: Path
    pid: int
    username: str
    hostname: str
    timestamp: datetime
    """When the CLI took it (aware, UTC)."""
    url: str = ""
    """Where the CLI says it is (lockURLForError), when read from its refusal."""


def lock_dir(backend_url: str, project: str, stack: str) -> Path:
    if not backend_url.startswith("file://"):
        raise InvalidSetup(
            f"reading Pulumi's lock files of {backend_url!r} directly is for file:// state only; "
            "stack_locks asks the CLI, on any backend"
        )
    for name, value in (("project", project), ("stack", stack)):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value) or value in (".", ".."):
            raise InvalidSetup(f"{name} {value!r} cannot name a lock directory")
    return Path(backend_url.removeprefix("file://")) / ".pulumi" / "locks" / DIY_ORG / project / stack


def _parse_time(text: str) -> datetime:
    """Go's time.Time JSON (RFC 3339, up to nanoseconds, `Z` or an offset); Python's
    fromisoformat takes at most microseconds."""
    match = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}").astimezone(UTC)


def diy_locks(backend_url: str, project: str, stack: str) -> list[LockInfo]:
    """Every lock file of the stack, oldest first. A file that is not a lock (unreadable,
    another shape) is listed with pid 0, an owner nobody can prove dead."""
    directory = lock_dir(backend_url, project, stack)
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            info = LockInfo(
                path, int(data["pid"]), str(data["username"]), str(data["hostname"]), _parse_time(data["timestamp"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            info = LockInfo(path, 0, "", "", datetime.fromtimestamp(0, UTC))
        found.append(info)
    return sorted(found, key=lambda i: i.timestamp)


_REFUSAL = "the stack is currently locked by "
_LOCK_LINE = re.compile(
    r"^\s+(?P<url>\S.*?): created by (?P<user>.*)@(?P<host>[^@]*) \(pid (?P<pid>-?\d+)\) at (?P<time>\S+)\s*$"
)


def locks_from_refusal(text: str) -> list[LockInfo] | None:
    """The locks the CLI's refusal names (lock.go L85-L109), oldest first; None when `text` is
    not that refusal. The time is `Format(time.RFC3339)`: whole seconds (L106), so a lock's time
    here is at most a second early, which owner_dead allows for. A line that does not parse as a
    lock is kept as an unreadable lock (pid 0): never proven dead."""
    head = re.search(r"the stack is currently locked by (\d+) lock\(s\)", text)
    if head is None:
        return None
    found = []
    for line in text[head.end() :].splitlines()[1:]:
        if not line.strip():
            continue
        match = _LOCK_LINE.match(line)
        if match is None:
            if line.startswith("  "):
                found.append(LockInfo(Path(line.strip()), 0, "", "", datetime.fromtimestamp(0, UTC)))
            continue
        try:
            stamp = _parse_time(match["time"])
        except ValueError:
            found.append(LockInfo(Path(match["url"]), 0, "", "", datetime.fromtimestamp(0, UTC)))
            continue
        found.append(LockInfo(Path(match["url"]), int(match["pid"]), match["user"], match["host"], stamp, match["url"]))
    if len(found) < int(head[1]):
        # The CLI named fewer locks than it counted: the rest cannot be proven dead.
        found += [LockInfo(Path("?"), 0, "", "", datetime.fromtimestamp(0, UTC))] * (int(head[1]) - len(found))
    return sorted(found, key=lambda i: i.timestamp)


def stack_locks(stack: Any, stack_name: str) -> list[LockInfo]:
    """Every lock of the stack on its DIY backend, whatever the backend, by asking the CLI (see
    the module's docstring: the `stack rename` probe). StackBusy when the CLI answers anything but
    the lock refusal or the existing-name refusal (the locks are then unknown)."""
    from pulumi.automation.errors import CommandError

    try:
        stack.workspace._run_pulumi_cmd_sync(["stack", "rename", stack_name, "--stack", stack_name])
    except CommandError as err:
        text = str(err)
        found = locks_from_refusal(text)
        if found is not None:
            return found
        if re.search(rf"a stack named \S*{re.escape(stack_name)} already exists", text):
            return []
        raise StackBusy(f"stack {stack_name}: Pulumi's locks could not be read: {text.strip()[-500:]}") from None
    raise InvalidSetup(f"stack {stack_name}: `pulumi stack rename` to its own name did not refuse; locks unknown")


def diy_lock(backend_url: str, project: str, stack: str) -> LockInfo | None:
    """The stack's lock (the newest, if a crash left more than one), or None."""
    locks = diy_locks(backend_url, project, stack)
    return locks[-1] if locks else None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _started_at(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), None when there is no such (live) process.
    proc(5): field 22 of /proc/<pid>/stat is the start time in clock ticks after boot; a zombie
    ('Z', field 3) is dead."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def owner_dead(
    info: LockInfo, this_host: str | None = None, live_check: Callable[[LockInfo], bool | None] | None = None
) -> bool:
    """Whether the CLI that took the lock is proven gone. On this host (its `hostname` is
    `this_host`, default socket.gethostname(), which is what the CLI's os.Hostname reads): no
    live process has its pid, or the one that has it started after the lock was taken (the pid
    was reused). On another host only `live_check(info)` can tell (the service asks whether that
    host's worker still beats): False from it means dead; True or None, or no live_check, is not
    proof. A lock that could not be read is never proven dead."""
    if info.pid <= 0:
        return False
    if info.hostname == (this_host if this_host is not None else socket.gethostname()):
        started = _started_at(info.pid)
        return started is None or started > info.timestamp.timestamp() + 1.0
    if live_check is None:
        return False
    return live_check(info) is False


def cancel(
    tenant: Tenant,
    stacks: Stacks,
    *,
    this_host: str | None = None,
    live_check: Callable[[LockInfo], bool | None] | None = None,
) -> list[LockInfo]:
    """`pulumi cancel --yes` for the tenant's stack, only once every lock's owner is proven dead
    (`owner_dead`); otherwise StackBusy naming the living one. Returns the locks removed. The
    caller holds the tenant's lock of the service (no other operation of the tenant can take a
    new Pulumi lock between the check and the cancel); this one holds the tenant's host lock."""
    with typed_errors():
        settings = _settings(tenant, stacks)
        require_cli()
        with stacks.locked(tenant.id) as directory:
            try:
                stack = stacks.open(tenant, settings, directory, create=False)
            except OperationFailed as err:
                if "has no stack" not in str(err):  # Stacks.open's answer to StackNotFoundError
                    raise
                # The tenant's first preview died before its stack was made: nothing to remove.
                # (A CLI killed inside `stack init` after CreateStack's Lock, backend.go L870,
                # and before the stack was saved leaves a lock no command but `cancel` of a
                # stack that exists can list: docs/service.md Limits.)
                return []
            locks = stack_locks(stack, tenant.id)
            alive = [i for i in locks if not owner_dead(i, this_host, live_check)]
            if alive:
                shown = ", ".join(
                    f"{i.username}@{i.hostname} pid {i.pid} since {i.timestamp:%Y-%m-%dT%H:%M:%SZ}" for i in alive
                )
                raise StackBusy(f"tenant {tenant.id}: Pulumi's lock is held by a process not proven dead ({shown})")
            if not locks:
                return []
            stack.workspace._run_pulumi_cmd_sync(["cancel", "--yes", "--stack", tenant.id])
            return locks


def pending_operations(deployment: Mapping[str, Any]) -> list[dict[str, str]]:
    """The state's pending operations as (urn, type): what an interrupted update left."""
    out = []
    for op in deployment.get("pending_operations") or []:
        resource = op.get("resource") or {}
        out.append({"urn": str(resource.get("urn", "")), "type": str(op.get("type", ""))})
    return out


def refresh(
    tenant: Tenant,
    stacks: Stacks,
    *,
    clear_pending_creates: bool,
    import_pending_creates: Mapping[str, str] | None = None,
    message: str = "",
) -> dict[str, Any]:
    """`pulumi refresh --yes` of the tenant's stack: the state brought in line with what exists,
    the interrupted updates and deletes settled, pending CREATEs dropped (`clear_pending_creates`)
    or imported with the given IDs (`import_pending_creates`, URN → ID), see the module's
    docstring for the choice. Changes no cloud resource. Returns the pending operations before and
    after, the update version of the refresh and its resource changes."""
    from automation.operations import _export

    with typed_errors():
        settings = _settings(tenant, stacks)
        require_cli()
        with stacks.locked(tenant.id) as directory:
            stack = stacks.open(tenant, settings, directory, create=False)
            before = pending_operations(_export(stack, tenant.id))
            args = ["refresh", "--yes", "--skip-preview", "--stack", tenant.id]
            if clear_pending_creates:
                args.append("--clear-pending-creates")
            for urn, id_ in sorted((import_pending_creates or {}).items()):
                # A StringArray flag of URN, ID pairs (refresh.go L487-L489, L567-L573).
                args += ["--import-pending-creates", urn, "--import-pending-creates", id_]
            if message:
                args += ["--message", message]
            stack.workspace._run_pulumi_cmd_sync(args)
            history = json.loads(
                stack.workspace._run_pulumi_cmd_sync(
                    ["stack", "history", "--json", "--stack", tenant.id, "--page-size", "1"]
                ).stdout
                or "[]"
            )
            after = pending_operations(_export(stack, tenant.id))
            return {
                "stack": tenant.id,
                "pendingBefore": before,
                "pendingAfter": after,
                "updateVersion": update_version(stack, tenant.id),
                "resourceChanges": dict((history[0] if history else {}).get("resourceChanges") or {}),
            }
