"""Preview, apply, destroy and batch runs over per-tenant stacks (Pulumi Automation API).

Nothing runs at import. Every operation that needs the Pulumi CLI checks for it first and fails
with one message saying how to install it; failures come back as typed errors at this edge.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from automation.changeset import ChangeSet, changeset_from_events
from automation.tenant import Tenant, TenantError, tenant_config

PROJECT_DIR = Path(__file__).resolve().parent.parent
INSTALL_CLI = (
    "the Pulumi CLI is not installed or not on PATH; install it (https://www.pulumi.com/docs/install/, "
    "e.g. `curl -fsSL https://get.pulumi.com | sh`) and retry. Offline renders need no CLI: "
    "`python -m automation render`"
)
T = TypeVar("T")
Target = Tenant | str
"""A tenant spec, or the name of an existing stack."""


def stack_name(target: Target) -> str:
    return target.id if isinstance(target, Tenant) else target


class AutomationError(Exception):
    """Base of every error this module returns; `kind` is stable for the backend."""

    kind = "failed"


class PulumiCliMissing(AutomationError):
    kind = "cli-missing"


class InvalidTenant(AutomationError):
    kind = "invalid-tenant"


class ChangesDiffer(AutomationError):
    kind = "changes-differ"

    def __init__(self, approved: str, current: ChangeSet):
        super().__init__(
            f"the preview changed since it was approved (approved {approved}, now {current.fingerprint}); "
            "show the new preview for approval"
        )
        self.approved = approved
        self.current = current


class ConfirmationRequired(AutomationError):
    kind = "confirmation-required"


class StackBusy(AutomationError):
    kind = "stack-busy"


class OperationFailed(AutomationError):
    kind = "failed"


def require_cli() -> None:
    if shutil.which("pulumi") is None:
        raise PulumiCliMissing(INSTALL_CLI)


def check_approval(approved_fingerprint: str, current: ChangeSet) -> None:
    """Refuse unless the changes now are exactly the changes approved."""
    if current.fingerprint != approved_fingerprint:
        raise ChangesDiffer(approved_fingerprint, current)


def check_confirmation(stack_name: str, confirm: str | None) -> None:
    if confirm != stack_name:
        raise ConfirmationRequired(f"destroying stack {stack_name!r} needs confirm={stack_name!r}")


def kept_resources(deployment: Mapping[str, Any]) -> list[dict[str, str]]:
    """What a destroy leaves in place: protected and retained resources (user repos, ECR history)."""
    kept = []
    for res in deployment.get("resources") or []:
        if res.get("retainOnDelete") or res.get("protect"):
            kept.append({"type": res.get("type", ""), "urn": res.get("urn", ""), "id": res.get("id", "")})
    return kept


def map_error(err: BaseException) -> AutomationError:
    """Engine and CLI failures as typed errors; the message is the CLI's last useful lines."""
    if isinstance(err, AutomationError):
        return err
    if isinstance(err, TenantError):
        return InvalidTenant(str(err))
    from pulumi.automation import errors as auto_errors

    if isinstance(err, auto_errors.ConcurrentUpdateError):
        return StackBusy(f"the stack is busy with another update: {_tail(err)}")
    if isinstance(err, auto_errors.CommandError):
        return OperationFailed(_tail(err))
    return OperationFailed(f"{type(err).__name__}: {err}")


def _tail(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return "\n".join(lines[-8:])


@dataclass(frozen=True)
class Backend:
    """Where stacks and their secrets live: `file://` for local use, `s3://` + `awskms://` in production."""

    url: str = "file://~/.pulumi-scoutflo"
    secrets_provider: str | None = None
    """None uses the passphrase provider (PULUMI_CONFIG_PASSPHRASE); e.g. awskms://alias/scoutflo."""
    use_plans: bool = True
    """Save the previewed update plan and apply exactly it (experimental in the CLI)."""
    plan_dir: Path = field(default_factory=lambda: Path.home() / ".scoutflo" / "plans")


@dataclass
class Stacks:
    """The one stack factory: a LocalWorkspace per tenant over this project's own directory."""

    backend: Backend = field(default_factory=Backend)
    project_dir: Path = PROJECT_DIR

    def env(self) -> dict[str, str]:
        url = self.backend.url
        if url.startswith("file://~"):
            url = "file://" + os.path.expanduser(url.removeprefix("file://"))
            Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        env = {"PULUMI_BACKEND_URL": url}
        if self.backend.use_plans:
            env["PULUMI_EXPERIMENTAL"] = "true"
        return env

    def stack(self, tenant: Target) -> Any:
        """The tenant's stack with its config set; a bare name selects an existing stack as its
        stack file configures it (the operator's way)."""
        config = tenant_config(tenant) if isinstance(tenant, Tenant) else None  # fails before the CLI is sought
        require_cli()
        from pulumi import automation as auto

        opts = auto.LocalWorkspaceOptions(env_vars=self.env(), secrets_provider=self.backend.secrets_provider)
        if config is None:
            return auto.select_stack(stack_name=str(tenant), work_dir=str(self.project_dir), opts=opts)
        stack = auto.create_or_select_stack(stack_name=stack_name(tenant), work_dir=str(self.project_dir), opts=opts)
        stack.set_all_config({k: auto.ConfigValue(value=v.value, secret=v.secret) for k, v in config.items()})
        return stack

    def plan_path(self, tenant: Target) -> str | None:
        if not self.backend.use_plans:
            return None
        self.backend.plan_dir.mkdir(parents=True, exist_ok=True)
        return str(self.backend.plan_dir / f"{stack_name(tenant)}.plan.json")


@contextmanager
def typed_errors() -> Iterator[None]:
    """The module's edge: whatever fails inside leaves as an AutomationError."""
    try:
        yield
    except Exception as err:
        raise map_error(err) from err


def preview(tenant: Target, stacks: Stacks | None = None) -> ChangeSet:
    stacks = stacks or Stacks()
    with typed_errors():
        stack = stacks.stack(tenant)
        events: list[Any] = []
        plan = stacks.plan_path(tenant)
        stack.preview(on_event=events.append, diff=True, plan=plan, color="never")
        return changeset_from_events(events, stack=stack_name(tenant), plan_path=plan)


def apply(tenant: Target, approved_fingerprint: str, stacks: Stacks | None = None) -> dict[str, Any]:
    stacks = stacks or Stacks()
    current = preview(tenant, stacks)
    check_approval(approved_fingerprint, current)
    with typed_errors():
        stack = stacks.stack(tenant)
        result = stack.up(plan=current.plan_path, color="never", show_secrets=False)
        return {
            "stack": stack_name(tenant),
            "fingerprint": current.fingerprint,
            "summary": result.summary.resource_changes,
        }


def destroy(tenant: Target, confirm: str | None, stacks: Stacks | None = None) -> dict[str, Any]:
    check_confirmation(stack_name(tenant), confirm)
    stacks = stacks or Stacks()
    with typed_errors():
        stack = stacks.stack(tenant)
        kept = kept_resources(stack.export_stack().deployment or {})
        result = stack.destroy(color="never", show_secrets=False)
        return {"stack": stack_name(tenant), "kept": kept, "summary": result.summary.resource_changes}


@dataclass(frozen=True)
class TenantResult:
    tenant: str
    ok: bool
    value: Any = None
    error_kind: str = ""
    message: str = ""


def run_many(tenants: Iterable[Target], operation: Callable[[Target], T], max_workers: int = 4) -> list[TenantResult]:
    """`operation` for every tenant in parallel (each with its own workspace); never raises for one
    tenant's failure: a busy stack and every other error come back as typed results, in order."""

    def one(tenant: Target) -> TenantResult:
        try:
            return TenantResult(stack_name(tenant), True, operation(tenant))
        except Exception as err:  # noqa: BLE001 - the batch must finish
            mapped = map_error(err)
            return TenantResult(stack_name(tenant), False, error_kind=mapped.kind, message=str(mapped))

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        return list(pool.map(one, list(tenants)))
