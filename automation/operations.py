"""Preview, apply, destroy and batch runs over per-tenant stacks (Pulumi Automation API).

Nothing runs at import. The approved artefact is the update plan itself: every preview saves its
own plan (unique name, mode 0600) and its ChangeSet carries the plan's sha256 and a keyed digest
of the tenant's config; `apply(tenant, fingerprint)` runs `up --plan` on exactly that plan, or
refuses with `changes-differ`. Every operation of one tenant holds that tenant's lock from stack
selection through config writes to the end of the operation; different tenants run in parallel.

Each tenant gets a workspace directory outside the source checkout (stack file, kubeconfig-free
config, plans): its Pulumi.yaml is the project's with `main` pointing at the checkout, which the
CLI allows (pulumi/pulumi pkg/engine/project.go L45-L66: an absolute main is used as is; the
python toolchain takes an absolute virtualenv as is, sdk/python/toolchain/toolchain.go L146-L147).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from semver import Version

from automation.changeset import ChangeSet, changeset_from_events, terminal_safe
from automation.guard import CliGuard, GuardKilled, kill_group
from automation.plan_check import verify_against_plan
from automation.plans import PlanStore, PlanStoreError, hex_of, open_plan_store
from automation.program import ProgramError, program_digest
from automation.tenant import PROJECT, StackSettings, Tenant, TenantError, tenant_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
INSTALL_CLI = (
    "the Pulumi CLI is not installed or not on PATH; install it (https://www.pulumi.com/docs/install/, "
    "e.g. `curl -fsSL https://get.pulumi.com | sh`) and retry. Offline renders need no CLI: "
    "`python -m automation render`"
)
PASSPHRASE = "passphrase"
T = TypeVar("T")


class AutomationError(Exception):
    """Base of every error this module returns; `kind` is stable for the backend, `exit_code` for the CLI."""

    kind = "failed"
    exit_code = 1


class OperationFailed(AutomationError):
    kind, exit_code = "failed", 1


class ChangesDiffer(AutomationError):
    """The approval no longer holds: the plan is gone or altered, the config or the state moved on."""

    kind, exit_code = "changes-differ", 3

    def __init__(self, approved: str, reason: str):
        super().__init__(f"approval {approved} no longer holds: {reason}; show a new preview for approval")
        self.approved = approved
        self.reason = reason


class ConfirmationRequired(AutomationError):
    kind, exit_code = "confirmation-required", 4


class StackBusy(AutomationError):
    kind, exit_code = "stack-busy", 5


class InvalidTenant(AutomationError):
    kind, exit_code = "invalid-tenant", 6


class PulumiCliMissing(AutomationError):
    kind, exit_code = "cli-missing", 7


class PulumiCliTooOld(PulumiCliMissing):
    """The CLI on PATH is older than the program needs (or does not say which version it is)."""

    kind, exit_code = "cli-too-old", 10


class InvalidSetup(AutomationError):
    """The backend's own settings (state location, secrets provider, passphrase) are unusable."""

    kind, exit_code = "invalid-setup", 8


class PlanMismatch(AutomationError):
    """The preview's engine events disagree with the plan the CLI saved: what an approver would read
    is not what `up --plan` would apply. Nothing is recorded for approval."""

    kind, exit_code = "plan-mismatch", 9

    def __init__(self, problems: list[str]):
        shown = problems[:10] + ([f"… and {len(problems) - 10} more"] if len(problems) > 10 else [])
        super().__init__(
            "the preview's engine events disagree with its saved plan, so the approval diff would not be what "
            "apply runs (another local process may be feeding the Automation API forged events); nothing was "
            "saved for approval. Check the host, then preview again:\n  " + "\n  ".join(shown)
        )
        self.problems = tuple(problems)


ERRORS = (
    OperationFailed,
    ChangesDiffer,
    ConfirmationRequired,
    StackBusy,
    InvalidTenant,
    PulumiCliMissing,
    PulumiCliTooOld,
    InvalidSetup,
    PlanMismatch,
)


IMPORT_THEN_UPDATE = Version(3, 174, 0)
"""Adoption registers existing things with `import_` and expects the engine to import them and then
update them to the program's inputs in the same deployment: "the engine can now import and then
update a resource in a single deployment" landed in 3.174.0 (pulumi/pulumi CHANGELOG.md L3678-L3687,
#19339; pkg/resource/deploy/step_generator.go L1128-L1191: the import step's result continues into
continueStepsFromImport, L1244). An older engine imports and stops, leaving the inputs unapplied."""


def required_cli_version() -> Version:
    """The oldest CLI this program runs with: the installed `pulumi` SDK's own version (the one
    requirements.txt pins; `PulumiCommand.install` too installs the CLI of the SDK's version by
    default, sdk/python/lib/pulumi/automation/_cmd.py L108-L109), and never below IMPORT_THEN_UPDATE.
    The SDK itself only asks for 3.1.0 (automation/_minimum_version.py L17)."""
    installed = importlib.metadata.version("pulumi")
    # A Python dev build of the SDK reads "3.273.0a1756..." (scripts/pulumi-version.sh): its
    # release part is what it was built towards.
    release = re.match(r"(\d+)\.(\d+)\.(\d+)", installed)
    if release is None:
        raise InvalidSetup(f"the installed pulumi SDK reports version {installed!r}; reinstall it: make setup")
    return max(Version(*(int(part) for part in release.groups())), IMPORT_THEN_UPDATE)


def parse_cli_version(output: str) -> Version | None:
    """`pulumi version`'s answer as the CLI prints it (pkg/cmd/pulumi/version/version.go L30: the
    linked-in version and a newline): `v3.272.0` from a release build (.goreleaser.yml L21 links
    "v{{.Env.PULUMI_VERSION}}"), `3.273.0-dev.0` from a source build (Makefile L22/L118 links
    scripts/pulumi-version.sh's "<next release>-dev.0" without the `v`). The SDK strips the same `v`
    (_cmd.py L77-L83). A dev build sorts below its release, as semver says and as it is: it may lack
    what that release brings. None when it is not one version."""
    text = output.strip()
    if len(text) > 100:
        return None
    try:
        return Version.parse(text.removeprefix("v"))
    except ValueError:
        return None


_CLI_VERSIONS: dict[tuple[str, int, int, int, int], Version] = {}
_CLI_VERSIONS_LOCK = threading.Lock()


def require_cli() -> tuple[str, Version]:
    """The CLI on PATH and its version, refused (before any stack operation) when it is older than
    `required_cli_version()`. The SDK's own check would let an old CLI through: it asks for 3.1.0
    and PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK switches it off (_cmd.py L84-L89,
    _local_workspace.py L714-L718); this one reads neither. The answer is kept per binary (path,
    inode, mtime, size, ctime), so an upgrade in place is seen and each operation runs no extra
    process. The change time counts because installers set mtime back (`cp -p`, `install -p`,
    archives extracted with their mtimes) and a new build can have the old one's size; nothing
    but the kernel sets ctime (stat(2): any write or utime updates it)."""
    found = shutil.which("pulumi")
    if found is None:
        raise PulumiCliMissing(INSTALL_CLI)
    required = required_cli_version()
    info = os.stat(found)
    key = (os.path.realpath(found), info.st_ino, info.st_mtime_ns, info.st_size, info.st_ctime_ns)
    with _CLI_VERSIONS_LOCK:
        version = _CLI_VERSIONS.get(key)
    if version is None:
        # Nothing of the backend's or a tenant's reaches this call: `version` needs no credentials.
        # PULUMI_SKIP_UPDATE_CHECK: no request to the Pulumi Cloud for the latest version
        # (pkg/cmd/pulumi/pulumi.go L411-L420).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        try:
            out = subprocess.run([found, "version"], env=env, capture_output=True, text=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            raise PulumiCliTooOld(
                f"`{found} version` failed ({type(err).__name__}); reinstall the Pulumi CLI {required} or newer: "
                f"{_upgrade(required)}"
            ) from None
        version = parse_cli_version(out.stdout)
        if version is None:
            shown = terminal_safe(out.stdout.strip()[:80])
            raise PulumiCliTooOld(
                f"`{found} version` answered {shown!r}, not a version this program can check; it needs the "
                f"Pulumi CLI {required} or newer: {_upgrade(required)}"
            )
        with _CLI_VERSIONS_LOCK:
            _CLI_VERSIONS[key] = version
    if version.major != required.major or version < required:
        raise PulumiCliTooOld(
            f"the Pulumi CLI at {found} is version {version}; this program needs {required} or newer "
            f"(the pulumi SDK pinned in requirements.txt; adopting existing repositories and registries "
            f"needs the engine's import-then-update of {IMPORT_THEN_UPDATE}). {_upgrade(required)}. "
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK does not skip this check"
        )
    return found, version


def _upgrade(required: Version) -> str:
    return (
        f"Upgrade: `curl -fsSL https://get.pulumi.com | sh -s -- --version {required}` (or `brew upgrade pulumi`), "
        "then check `pulumi version`"
    )


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


@contextmanager
def typed_errors() -> Iterator[None]:
    """The module's edge: whatever fails inside leaves as an AutomationError."""
    try:
        yield
    except Exception as err:
        raise map_error(err) from err


# ---------------------------------------------------------------- the backend's own settings


@dataclass(frozen=True)
class Backend:
    """Where tenants' stacks, secrets, stack files and plans live. Nothing here is a default:
    production names its KMS, local use names the passphrase provider and its passphrase."""

    url: str
    """State backend, e.g. `s3://scoutflo-state` or `file:///var/lib/scoutflo/state`."""
    secrets_provider: str
    """`awskms://alias/scoutflo` (or another KMS) in production; `passphrase` for local use."""
    state_dir: Path
    """Tenant workspaces (stack files, plans, digest key); must lie outside the source checkout."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The backend's own access for the CLI (e.g. PULUMI_CONFIG_PASSPHRASE_FILE, or the
    credentials of the state bucket and KMS key): passed explicitly, nothing else is inherited."""
    pulumi_home: Path | None = None
    """Where the CLI keeps its plugins; default ~/.pulumi of the backend's user."""
    lock_timeout: float = 600.0
    digest_key_file: Path | None = None
    """The HMAC key of config digests (32 bytes, 0600), the same file content on every worker, so
    two hosts give one change one fingerprint (production: fetched from KMS / Secrets Manager at
    boot). Unset: a key created once in state_dir (one host only)."""
    plan_store: str = ""
    """Where plans and their records are kept by sha256, seen by every worker: `file:///abs/dir`
    (automation/plans.py). Unset: `<state_dir>/plan-store` (one host only)."""
    plan_retention_days: float = 90.0
    """How long stored plans are kept (plans.DirectoryPlanStore.prune, run by the backend)."""
    chart_cache_dir: Path | None = None
    """One chart cache for every tenant's program (its `scoutflo:chartCacheDir`, a key no tenant
    may set: automation/tenant.py BACKEND_KEYS), so a sweep fetches each upstream chart once.
    Safe for concurrent programs: scoutflo/charts/fetch.py writes every entry aside and renames
    it (_write_atomic), archives by their sha256 and verified on every read, and namespaces
    entries by the credential that fetched them. The path is part of each tenant's config (and
    so of its config digest): give every worker the same path. Unset: each tenant's own
    ~/.cache inside its workspace (the program's default, scoutflo/charts/fetch.py cache_dir)."""

    def check(self, project_dir: Path = PROJECT_DIR) -> None:
        """At start, before any tenant: clear errors instead of a CLI failure mid-way."""
        if not self.secrets_provider:
            raise InvalidSetup("the secrets provider is required: awskms://… (production) or 'passphrase' (local)")
        if self.secrets_provider == PASSPHRASE:
            # The CLI's order (pkg/secrets/passphrase/manager.go L380-L392): a *set*
            # PULUMI_CONFIG_PASSPHRASE wins, even empty, over the file; the file's path is made
            # absolute against the CLI's cwd (the tenant's workspace, not ours) and TrimSpace'd.
            text = self.env.get("PULUMI_CONFIG_PASSPHRASE")
            file = self.env.get("PULUMI_CONFIG_PASSPHRASE_FILE", "")
            if text is not None and not text.strip():
                raise InvalidSetup(
                    "PULUMI_CONFIG_PASSPHRASE is set but empty: the CLI would use it (not the _FILE) and "
                    "encrypt every tenant's secrets with an empty passphrase; unset it"
                )
            if text is None and file:
                if not os.path.isabs(file):
                    raise InvalidSetup(
                        f"PULUMI_CONFIG_PASSPHRASE_FILE {file} must be an absolute path (the CLI resolves it "
                        "against the tenant's workspace)"
                    )
                try:
                    text = Path(file).read_text(encoding="utf-8").strip()
                except OSError as err:
                    raise InvalidSetup(f"PULUMI_CONFIG_PASSPHRASE_FILE {file}: {err.strerror}") from None
            if not text:
                raise InvalidSetup(
                    "the passphrase secrets provider needs Backend.env PULUMI_CONFIG_PASSPHRASE_FILE (a 0600 file) "
                    "or PULUMI_CONFIG_PASSPHRASE; it encrypts every tenant's secrets, so keep it with the state"
                )
        elif "://" not in self.secrets_provider:
            raise InvalidSetup(
                f"secrets provider {self.secrets_provider!r}: use awskms://…, gcpkms://… or 'passphrase'"
            )
        if not self.url or "://" not in self.url:
            raise InvalidSetup(f"backend url {self.url!r}: use s3://bucket or file:///absolute/path")
        project = project_dir.resolve()
        places = [Path(self.state_dir)] + ([Path(self.chart_cache_dir)] if self.chart_cache_dir else [])
        if self.url.startswith("file://"):
            places.append(Path(self.url.removeprefix("file://")))
        for place in places:
            resolved = place.expanduser().resolve()
            if not place.expanduser().is_absolute():
                raise InvalidSetup(f"{place} must be an absolute path")
            if resolved == project or project in resolved.parents:
                raise InvalidSetup(f"{place} lies inside the source checkout {project}; keep tenants' state outside it")
        # The plan store's URL (an s3:// one needs its KMS key): refused at start, not at the
        # first preview. Parsing only: nothing is read or written here.
        self.open_plan_store()

    def digest_key(self) -> bytes:
        """The HMAC key of config digests. With `digest_key_file`: read from there, never created
        (a worker that made its own would fingerprint every change differently from the others).
        Otherwise random, created once in state_dir, readable by the backend only.
        Created whole or not at all (written aside, then linked into place: a crash or a second
        process never sees a short key). Rotation: delete it; every pending approval is then
        refused (changes-differ) and every secret is set again once, nothing is applied unapproved."""
        if self.digest_key_file is not None:
            path = Path(self.digest_key_file)
            if not path.is_absolute():
                raise InvalidSetup(f"digest_key_file {path} must be an absolute path")
            try:
                info = os.lstat(path)
            except OSError as err:
                raise InvalidSetup(
                    f"digest_key_file {path}: {err.strerror}; write the shared 32-byte key there"
                ) from None
            return _checked_key(path, info)
        state = private_dir(Path(self.state_dir), others_may_read=True)
        path = state / "digest.key"
        if not path.exists():
            aside = state / f".digest.key.{uuid.uuid4().hex}"
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(aside, path)
                except FileExistsError:
                    pass  # another process won: use its key
            finally:
                aside.unlink(missing_ok=True)
        return _checked_key(path, os.lstat(path))

    def open_plan_store(self) -> PlanStore:
        try:
            return open_plan_store(self.plan_store or f"file://{Path(self.state_dir).resolve() / 'plan-store'}")
        except PlanStoreError as err:
            raise InvalidSetup(str(err)) from None


def _checked_key(path: Path, info: os.stat_result) -> bytes:
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise InvalidSetup(f"{path} must be a regular file owned by uid {os.geteuid()} with mode 0600")
    key = path.read_bytes()
    if len(key) != 32:
        raise InvalidSetup(f"{path} holds {len(key)} bytes, not 32 (cut short by a crash?): write the 32-byte key")
    return key


def write_aside(path: Path, data: bytes, mode: int = 0o600) -> None:
    """`path` holds `data` whole or as before, never a part: written to a new file beside it,
    flushed to disk, renamed over it (rename(2) replaces the name atomically), then the directory
    synced so the rename itself survives a crash (fsync(2): syncing the file does not sync its
    directory entry). A crash leaves at most a stray `.<name>.<random>.tmp`."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # os.open's mode is filtered by the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def private_dir(path: Path, others_may_read: bool = False) -> Path:
    """`path` as a directory of this user that no one else may write (nor, unless allowed, read):
    another local user who could would swap a saved plan and its record between approval and
    apply, or read stack files. Created when absent; an existing one is checked, never trusted."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    forbidden = 0o022 if others_may_read else 0o077
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & forbidden:
        raise InvalidSetup(
            f"{path} must be a directory (not a link) owned by uid {os.geteuid()} that "
            f"{'no other user may write' if others_may_read else 'only it may read'}: chmod "
            f"{'755' if others_may_read else '700'} {path}"
        )
    return path


def _isolated_command(env: Mapping[str, str], guard: CliGuard) -> Any:
    """The SDK's PulumiCommand runs the CLI with `{**os.environ, ...}` (automation/_cmd.py L219-L223):
    the backend's own AWS, kube and GitHub identities would reach the providers. This one runs it
    with exactly `env`, under `guard` (automation/guard.py: it dies with this process and can be
    killed as a group)."""
    from pulumi.automation import PulumiCommand

    class IsolatedCommand(PulumiCommand):
        def __init__(self) -> None:  # no super(): it would run `pulumi version` with os.environ
            # The version checked by require_cli; the SDK reads it to pick how engine events
            # arrive (a gRPC stream after 3.205.0, automation/_stack.py L290-L297).
            self.command, self.version = require_cli()
            self.on_started: Callable[[int], None] | None = None
            """Called once with the process group of the next CLI call (apply sets it around `up`)."""

        def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str], *a: Any, **kw: Any) -> Any:
            started, self.on_started = self.on_started, None
            return _run(self.command, args, cwd, {**env, **additional_env}, *a, guard=guard, on_started=started, **kw)

    return IsolatedCommand()


def _run(
    command: str,
    args: list[str],
    cwd: str,
    env: Mapping[str, str],
    on_output: Any = None,
    on_error: Any = None,
    *,
    guard: CliGuard,
    on_started: Callable[[int], None] | None = None,
) -> Any:
    """PulumiCommand.run (automation/_cmd.py L191-L277) with an explicit environment and no stdin,
    under `guard`. `on_started` gets the CLI's process group id (the guard's pid); if it fails,
    the CLI is killed and its error raised: nothing runs that the caller could not record."""

    from pulumi.automation._cmd import CommandResult
    from pulumi.automation.errors import create_command_error

    sep = args.index("--") if "--" in args else len(args)
    if "--non-interactive" not in args[:sep]:
        args = ["--non-interactive", *args]
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def consume(stream: Any, callback: Any, key: str) -> None:
        for line in iter(stream.readline, ""):
            if callback:
                callback(line.rstrip())
            chunks[key].append(line.rstrip())
        stream.close()

    try:
        process = guard.popen(
            [command, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**env, "PULUMI_AUTOMATION_API": "true"},
            encoding="utf-8",
        )
    except GuardKilled as err:
        raise OperationFailed(str(err)) from None
    threads = [
        threading.Thread(target=consume, args=(process.stdout, on_output, "out")),
        threading.Thread(target=consume, args=(process.stderr, on_error, "err")),
    ]
    for t in threads:
        t.start()
    try:
        if on_started is not None:
            on_started(process.pid)
    except BaseException:
        kill_group(process.pid)
        raise
    finally:
        code = guard.finish(process)
        for t in threads:
            t.join()
    result = CommandResult(stdout="\n".join(chunks["out"]), stderr="\n".join(chunks["err"]), code=code)
    if code != 0:
        raise create_command_error(result)
    return result


# ---------------------------------------------------------------- per-tenant workspaces


@dataclass(frozen=True)
class PlanRecord:
    fingerprint: str
    plan: Path
    sha256: str
    config_digest: str
    state_digest: str
    """sha256 of the stack's state the preview ran against (see state_digest)."""
    program_digest: str = ""
    """The program's identity the preview ran (automation/program.py)."""


SECRETS_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
"""A stack file's secrets-manager block (sdk/go/common/workspace/project.go ProjectStack:
SecretsProvider, EncryptedKey, EncryptionSalt). Ciphertext and names only: `encryptedkey` is the
data key wrapped by the KMS key (pkg/secrets/cloud/manager.go L212-L228), `encryptionsalt` the
passphrase manager's salt and check value (pkg/secrets/passphrase/manager.go L313-L325)."""


class SecretsBlocks(Protocol):
    """Where the backend keeps each tenant's block, so a worker with a fresh workspace opens an
    existing stack with the manager it was created with (service: the stack_secrets table)."""

    def get(self, tenant_id: str) -> Mapping[str, str] | None: ...
    def put(self, tenant_id: str, block: Mapping[str, str]) -> None: ...


def secrets_block(directory: Path, stack: str) -> dict[str, str]:
    """The secrets-manager block of `directory`'s Pulumi.<stack>.yaml ({} when it has none)."""
    path = Path(directory) / f"Pulumi.{stack}.yaml"
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}
    return {k: data[k] for k in SECRETS_KEYS if isinstance(data.get(k), str) and data[k]}


read_secrets_block = secrets_block  # `open` has a parameter of that name


def _checked_block(block: Mapping[str, Any], stack: str) -> dict[str, str]:
    unknown = sorted(set(block) - set(SECRETS_KEYS))
    if unknown:
        raise InvalidSetup(f"the secrets block of {stack} has unknown keys {unknown}; only {list(SECRETS_KEYS)}")
    out = {}
    for key, value in block.items():
        if not isinstance(value, str) or not value or len(value) > 4096 or not value.isprintable():
            raise InvalidSetup(f"the secrets block of {stack}: {key} must be a printable string (ciphertext)")
        out[key] = value
    return out


@dataclass
class Stacks:
    """The one stack factory: a LocalWorkspace per tenant, in its own directory outside the checkout."""

    backend: Backend
    project_dir: Path = PROJECT_DIR
    secrets_blocks: SecretsBlocks | None = None
    """When set, every open restores the tenant's block from it before the CLI selects the stack
    and puts the block back when the CLI created or changed it (see `open`)."""
    guard: CliGuard = field(default_factory=CliGuard)
    """Every CLI this factory's stacks run is started under it; `guard.kill()` ends them all (a
    worker gives each job its own: `dataclasses.replace(stacks, guard=CliGuard())`)."""

    def tenant_dir(self, tenant_id: str) -> Path:
        return Path(self.backend.state_dir) / "tenants" / tenant_id

    def cli_env(self, tenant_dir: Path) -> dict[str, str]:
        """The CLI's whole environment: PATH to find it and its language host, HOME inside the
        tenant's directory (no ~/.aws, ~/.kube or gh config of the backend's user), the backend's
        explicit settings. Tenant credentials are secret config values, not variables."""
        pulumi_home = self.backend.pulumi_home or Path.home() / ".pulumi"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tenant_dir / "home"),
            # pulumi-kubernetes writes the kubeconfig (token and all) to os.CreateTemp("", ...)
            # at every Configure and never removes it (provider.go L886, util.go L124-L131): kept
            # in the tenant's own workspace, emptied at its next operation (_write_project).
            "TMPDIR": str(tenant_dir / "tmp"),
            "LANG": "C.UTF-8",
            "PULUMI_HOME": str(pulumi_home),
            "PULUMI_BACKEND_URL": self.backend.url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        env.update(self.backend.env)
        return env

    @contextmanager
    def locked(self, tenant_id: str) -> Iterator[Path]:
        """The tenant's lock (flock on a file in its directory: across threads and processes)."""
        private_dir(Path(self.backend.state_dir), others_may_read=True)
        private_dir(Path(self.backend.state_dir) / "tenants", others_may_read=True)
        directory = private_dir(self.tenant_dir(tenant_id))
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        deadline = time.monotonic() + self.backend.lock_timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StackBusy(f"tenant {tenant_id} is busy with another operation") from None
                    time.sleep(0.05)
            yield directory
        finally:
            os.close(fd)

    def _write_project(self, directory: Path) -> None:
        project = yaml.safe_load((self.project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
        project["main"] = str(self.project_dir.resolve())
        options = (project.get("runtime") or {}).get("options") or {}
        if options.get("virtualenv") and not os.path.isabs(options["virtualenv"]):
            options["virtualenv"] = str((self.project_dir / options["virtualenv"]).resolve())
        text = "# Generated from the project's Pulumi.yaml by automation/operations.py; do not edit.\n"
        write_aside(directory / "Pulumi.yaml", (text + yaml.safe_dump(project, sort_keys=False)).encode())
        (directory / "home").mkdir(exist_ok=True, mode=0o700)
        (directory / "plans").mkdir(exist_ok=True, mode=0o700)
        # The CLI's TMPDIR: what the last run left (under this same lock) goes now.
        shutil.rmtree(directory / "tmp", ignore_errors=True)
        (directory / "tmp").mkdir(mode=0o700)

    def open(
        self,
        tenant: Tenant,
        settings: StackSettings,
        directory: Path,
        create: bool = True,
        secrets_block: Mapping[str, str] | None = None,
    ) -> Any:
        """Select (or create) the tenant's stack and write its config; the caller holds the lock.

        A fresh workspace has no Pulumi.<tenant>.yaml, and selecting an existing stack passes no
        secrets provider (the SDK's select_stack runs `stack select --stack`, automation/
        _local_workspace.py L479-L484; the CLI reads --secrets-provider only with --create,
        pkg/cmd/pulumi/stack/stack_select.go L96-L99, L143-L144). The CLI then loads the secrets
        manager from the stack file: a cloud provider when it names one, the passphrase manager
        when it has a salt, else, unless PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER is set, the
        backend's default (pkg/cmd/pulumi/stack/secrets.go L237-L288; sdk/go/common/env/env.go
        L132), which for DIY backends is a *new* passphrase manager (pkg/backend/diy/backend.go
        L1713-L1716): an awskms:// stack cannot be opened, or silently gets another manager.
        So the stack's block (`secrets_block`, or `secrets_blocks.get`) is written into the stack
        file before the CLI runs, and the block the CLI leaves is put back in `secrets_blocks`."""
        from pulumi import automation as auto

        self._write_project(directory)
        known = secrets_block
        if known is None and self.secrets_blocks is not None:
            known = self.secrets_blocks.get(tenant.id)
        if known:
            self._restore_block(directory, tenant.id, _checked_block(known, tenant.id))
        env = self.cli_env(directory)
        opts = auto.LocalWorkspaceOptions(
            secrets_provider=self.backend.secrets_provider, pulumi_command=_isolated_command(env, self.guard)
        )
        if create:
            stack = auto.create_or_select_stack(stack_name=tenant.id, work_dir=str(directory), opts=opts)
        else:
            try:
                stack = auto.select_stack(stack_name=tenant.id, work_dir=str(directory), opts=opts)
            except auto.StackNotFoundError:
                raise OperationFailed(f"tenant {tenant.id} has no stack: nothing to destroy") from None
        self._write_config(tenant.id, settings, directory, env, stack.workspace.pulumi_command.command)
        if self.secrets_blocks is not None:
            block = read_secrets_block(directory, tenant.id)
            if block and block != dict(known or {}):
                self.secrets_blocks.put(tenant.id, block)
        return stack

    def _restore_block(self, directory: Path, stack_name: str, block: dict[str, str]) -> None:
        path = directory / f"Pulumi.{stack_name}.yaml"
        current = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}
        if {k: current.get(k) for k in SECRETS_KEYS if current.get(k)} == block:
            return
        # The config's ciphertexts belong to the manager they were written with: a block that
        # changes drops them (and their HMAC record), and _write_config sets them again.
        kept = {k: v for k, v in current.items() if k not in SECRETS_KEYS and k != "config"}
        write_aside(path, yaml.safe_dump({**kept, **block}, sort_keys=True).encode())
        (directory / "secrets.hmac.json").unlink(missing_ok=True)

    def _write_config(
        self, stack_name: str, settings: StackSettings, directory: Path, env: Mapping[str, str], command: str
    ) -> None:
        """Plain values go into the stack file as YAML objects (the CLI's type check passes; keys
        the tenant no longer has are gone); secrets are encrypted by the CLI from its stdin
        (pkg/cmd/pulumi/config/config.go L808-L822), never on a command line."""
        path = directory / f"Pulumi.{stack_name}.yaml"
        current = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}
        kept = {k: v for k, v in current.items() if k in ("secretsprovider", "encryptedkey", "encryptionsalt")}
        # A secret whose value is unchanged keeps its ciphertext (one CLI call less per secret);
        # what was set is remembered as HMACs only.
        known_path = directory / "secrets.hmac.json"
        known = json.loads(known_path.read_text(encoding="utf-8")) if known_path.exists() else {}
        key = self.backend.digest_key()
        macs = {k: hmac.new(key, f"{k}\0{v}".encode(), hashlib.sha256).hexdigest() for k, v in settings.secrets.items()}
        old_config = current.get("config") or {}
        config: dict[str, Any] = dict(settings.plain)
        todo = []
        for name, mac in sorted(macs.items()):
            if known.get(name) == mac and isinstance(old_config.get(name), dict) and "secure" in old_config[name]:
                config[name] = old_config[name]
            else:
                todo.append(name)
        # `stack init` created it 0644 (sdk/go/common/workspace/project.go L1386); later saves by
        # the CLI keep the mode this sets (os.WriteFile only applies its mode on create).
        write_aside(path, yaml.safe_dump({**kept, "config": config}, sort_keys=True).encode())
        done = {k: v for k, v in known.items() if k in macs and k not in todo}
        for name in todo:
            value = settings.secrets[name]
            try:
                proc = self.guard.popen(
                    [command, "--non-interactive", "config", "set", name, "--secret", "--raw", "--stack", stack_name],
                    cwd=str(directory),
                    env={**env, "PULUMI_AUTOMATION_API": "true"},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            except GuardKilled as err:
                raise OperationFailed(str(err)) from None
            # Not communicate(): it reaps the guard, and its group must be killed before that.
            assert proc.stdin is not None and proc.stderr is not None
            try:
                try:
                    proc.stdin.write(value)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # the CLI is gone: its status says why
                stderr = proc.stderr.read()
                proc.stderr.close()
            finally:
                returncode = self.guard.finish(proc)
            if returncode != 0:
                raise OperationFailed(f"setting secret config {name}: {stderr.strip()[-500:]}")
            done[name] = macs[name]
            # A crash mid-write must not leave it cut short: unreadable, the next run could not
            # start (json.loads above), and a record that lies would skip a secret never set.
            write_aside(known_path, json.dumps(done).encode())

    # ------------------------------------------------------------ plans

    def new_plan_path(self, directory: Path) -> Path:
        path = directory / "plans" / f"{uuid.uuid4().hex}.plan.json"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return path

    KEEP_PLANS = 20
    """Saved previews kept per tenant (older ones can no longer be applied)."""

    def record_plan(self, directory: Path, record: PlanRecord) -> None:
        metas = sorted((directory / "plans").glob("*.plan.meta"), key=lambda p: p.stat().st_mtime)
        for meta in metas[: max(0, len(metas) - self.KEEP_PLANS + 1)]:
            meta.unlink(missing_ok=True)
            meta.with_suffix(".json").unlink(missing_ok=True)
        # Written aside and renamed: a crash never leaves a half-written record under the name.
        fields_ = {
            "fingerprint": record.fingerprint,
            "sha256": record.sha256,
            "configDigest": record.config_digest,
            "stateDigest": record.state_digest,
            "programDigest": record.program_digest,
        }
        write_aside(record.plan.with_suffix(".meta"), json.dumps(fields_).encode())

    def find_plan(self, directory: Path, fingerprint: str) -> PlanRecord | None:
        found = []
        for meta in (directory / "plans").glob("*.plan.meta"):
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                needed = {"fingerprint", "sha256", "configDigest", "stateDigest", "programDigest"}
                if not isinstance(data, dict) or not needed <= set(data):
                    raise ValueError("incomplete")  # or from before program digests: it approves nothing
            except (OSError, ValueError):
                continue  # left by a crash (older versions wrote in place): it approves nothing
            if data["fingerprint"] == fingerprint:
                found.append((meta.stat().st_mtime, meta, data))
        if not found:
            return None
        _, meta, data = max(found, key=lambda item: item[0])
        return PlanRecord(
            fingerprint,
            meta.with_suffix(".json"),
            data["sha256"],
            data["configDigest"],
            data["stateDigest"],
            data["programDigest"],
        )

    def drop_plans(self, directory: Path) -> None:
        """After an update every saved plan describes a state that is gone."""
        for path in (directory / "plans").iterdir():
            path.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _settings(tenant: Tenant, stacks: Stacks) -> StackSettings:
    if not isinstance(tenant, Tenant):
        raise InvalidTenant(f"a Tenant is required, not {type(tenant).__name__}")
    stacks.backend.check(stacks.project_dir)
    settings = tenant_settings(tenant, stacks.project_dir)
    cache = stacks.backend.chart_cache_dir
    if cache is None:
        return settings
    # Created here, private to the backend's user: charts fetched with a tenant's registry
    # credentials are cached too (0600 files, namespaced by that credential).
    private_dir(Path(cache))
    plain = {**settings.plain, f"{PROJECT}:chartCacheDir": str(Path(cache).resolve())}
    return StackSettings(plain, settings.secrets)


# ---------------------------------------------------------------- operations


def _program(stacks: Stacks) -> str:
    try:
        return program_digest(stacks.project_dir)
    except ProgramError as err:
        raise InvalidSetup(str(err)) from None


def preview(tenant: Tenant, stacks: Stacks, *, refresh: bool = False) -> ChangeSet:
    """The approval diff of `tenant` now, with its own saved plan, put in the plan store with its
    record (any worker can apply it). `refresh=True` first brings the state in line with what
    exists (`pulumi refresh`, see `_refresh`), so drift made outside Pulumi shows as a change."""
    with typed_errors():
        settings = _settings(tenant, stacks)
        digest = settings.digest(stacks.backend.digest_key())
        require_cli()
        store = stacks.backend.open_plan_store()
        with stacks.locked(tenant.id) as directory:
            # Taken before the CLI runs the program: a file edited while it runs makes the
            # recorded identity differ from the one at apply, which then refuses.
            program = _program(stacks)
            stack = stacks.open(tenant, settings, directory)
            if refresh:
                _refresh(stack, tenant.id, clear_pending_creates=False)
            state = state_digest(stack, tenant.id)
            plan = stacks.new_plan_path(directory)
            events: list[Any] = []
            try:
                stack.preview(on_event=events.append, diff=True, plan=str(plan), color="never")
            except Exception:
                plan.unlink(missing_ok=True)
                raise
            os.chmod(plan, 0o600)  # the CLI may have re-created it
            changes = changeset_from_events(
                events,
                stack=tenant.id,
                plan_path=str(plan),
                plan_sha256=sha256_file(plan),
                config_digest=digest,
                program_digest=program,
                state_digest=state,
            )
            # The events reach the SDK over a loopback port any local user can write to (CLIs after
            # 3.205); the plan file is what `up --plan` applies. They must agree, or no approval.
            try:
                saved = json.loads(plan.read_text(encoding="utf-8"))
                problems = verify_against_plan(changes, saved, settings.secrets.values())
            except (OSError, ValueError) as err:
                problems = [f"the saved plan could not be read: {err}"]
            if problems:
                plan.unlink(missing_ok=True)
                raise PlanMismatch(problems)
            record = PlanRecord(changes.fingerprint, plan, changes.plan_sha256, digest, state, program)
            stacks.record_plan(directory, record)
            # The shared copy, plan then record: a record is never seen without its plan.
            if store.put(plan) != changes.plan_sha256:
                raise OperationFailed("the saved plan changed while it was being stored; preview again")
            store.put_record(changes.plan_sha256, _store_record(tenant.id, record))
            return changes


def _store_record(stack: str, record: PlanRecord) -> dict[str, Any]:
    return {
        "stack": stack,
        "fingerprint": record.fingerprint,
        "sha256": record.sha256,
        "configDigest": record.config_digest,
        "stateDigest": record.state_digest,
        "programDigest": record.program_digest,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _stored_plan(stacks: Stacks, directory: Path, tenant_id: str, approved: str, plan_sha256: str) -> PlanRecord:
    """The approved plan from the shared store, copied into this host's workspace, with its record;
    refused (ChangesDiffer) when the store has no such plan, it is another tenant's or another
    preview's, or its bytes are not the digest."""
    try:
        hexed = hex_of(plan_sha256)
    except PlanStoreError as err:
        raise ChangesDiffer(approved, str(err)) from None
    store = stacks.backend.open_plan_store()
    data = store.record(plan_sha256)
    if data is None:
        raise ChangesDiffer(approved, f"the plan store has no plan sha256:{hexed} (never stored, or pruned)")
    if data["stack"] != tenant_id:
        raise ChangesDiffer(approved, f"plan sha256:{hexed} is a plan of another stack, not {tenant_id}")
    if data["fingerprint"] != approved:
        raise ChangesDiffer(approved, f"plan sha256:{hexed} was previewed with other changes (superseded)")
    if data["sha256"] != f"sha256:{hexed}":
        raise ChangesDiffer(approved, "the stored plan's record names another plan")
    local = stacks.new_plan_path(directory)
    if not store.fetch(plan_sha256, local):
        local.unlink(missing_ok=True)
        raise ChangesDiffer(approved, f"plan sha256:{hexed} is gone from the plan store or was altered there")
    return PlanRecord(approved, local, data["sha256"], data["configDigest"], data["stateDigest"], data["programDigest"])


def apply(
    tenant: Tenant,
    approved_fingerprint: str,
    stacks: Stacks,
    *,
    plan_sha256: str | None = None,
    message: str = "",
    on_started: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run `up --plan` on exactly the plan whose preview was approved, or refuse (changes-differ).

    Without `plan_sha256` the plan is this host's latest saved preview with that fingerprint;
    with it, the plan and its record come from the shared plan store (any host previewed it).
    Either way the tenant's config, the program's version and the stack's state must be the ones
    the preview ran against. `message` goes to `up --message` (the update's history entry, e.g.
    "approval 12 by alice"); `on_started(pid)` is called once the `up` process runs. The result
    carries the engine's summary and the update's version in the stack's history."""
    with typed_errors():
        settings = _settings(tenant, stacks)
        digest = settings.digest(stacks.backend.digest_key())
        require_cli()
        with stacks.locked(tenant.id) as directory:
            if plan_sha256 is not None:
                stacks._write_project(directory)  # the plans folder a fresh host lacks
                record = _stored_plan(stacks, directory, tenant.id, approved_fingerprint, plan_sha256)
            else:
                found = stacks.find_plan(directory, approved_fingerprint)
                if found is None:
                    raise ChangesDiffer(
                        approved_fingerprint, "no saved preview has this fingerprint (superseded or applied)"
                    )
                record = found
            try:
                return _apply_record(tenant, stacks, settings, directory, record, digest, message, on_started)
            finally:
                if plan_sha256 is not None:
                    record.plan.unlink(missing_ok=True)  # this host's copy; the store keeps it


def _apply_record(
    tenant: Tenant,
    stacks: Stacks,
    settings: StackSettings,
    directory: Path,
    record: PlanRecord,
    digest: str,
    message: str,
    on_started: Callable[[int], None] | None,
) -> dict[str, Any]:
    approved_fingerprint = record.fingerprint
    if not record.plan.exists() or sha256_file(record.plan) != record.sha256:
        raise ChangesDiffer(approved_fingerprint, "the saved plan was altered or removed")
    if record.config_digest != digest:
        raise ChangesDiffer(approved_fingerprint, "the tenant's config changed since the preview")
    program = _program(stacks)
    if record.program_digest != program:
        raise ChangesDiffer(
            approved_fingerprint,
            f"the program changed since the preview (previewed {record.program_digest}, now {program})",
        )
    stack = stacks.open(tenant, settings, directory)
    if state_digest(stack, tenant.id) != record.state_digest:
        raise ChangesDiffer(
            approved_fingerprint,
            "the stack's state moved on since the preview (an update or refresh outside this approval)",
        )
    events: list[Any] = []
    command = stack.workspace.pulumi_command
    command.on_started = on_started
    # `up --plan` constrains the update to the plan without PULUMI_EXPERIMENTAL (the flag is
    # only hidden): pkg/cmd/pulumi/operations/up.go L272-L279, L944-L951. `message` becomes
    # the SDK's `--message` (sdk/python/lib/pulumi/automation/_stack.py L1606-L1607), which
    # the DIY backend stores in the update's history entry (pkg/backend/diy/backend.go
    # L1439-L1442, UpdateInfo.Message = op.M.Message). show_secrets=False: the SDK's summary
    # read (`stack history`) would otherwise decrypt the config (_stack.py L445, L1409-L1410).
    try:
        result = stack.up(
            plan=str(record.plan),
            on_event=events.append,
            color="never",
            message=message or None,
            show_secrets=False,
        )
    except Exception as err:
        text = str(err)
        # The engine's refusals of a plan the state or program has moved past:
        # pkg/resource/deploy/step_generator.go L1392/L1396 ("resource %s violates plan"),
        # step_executor.go L278, deployment_executor.go L391 ("expected resource operations").
        if "violates plan" in text or "expected resource operations" in text:
            stacks.drop_plans(directory)
            raise ChangesDiffer(approved_fingerprint, f"the stack's state moved on: {_tail(err)}") from err
        raise
    finally:
        command.on_started = None
    stacks.drop_plans(directory)
    done = changeset_from_events(events, stack=tenant.id)
    summary = result.summary
    return {
        "stack": tenant.id,
        "fingerprint": approved_fingerprint,
        "planSha256": record.sha256,
        "programDigest": record.program_digest,
        "message": message,
        "summary": dict(done.counts),
        "updateVersion": update_version(stack, tenant.id),
        "engine": {
            "kind": summary.kind,
            "result": summary.result,
            "message": summary.message,
            "resourceChanges": dict(summary.resource_changes or {}),
            "startTime": summary.start_time.isoformat() + "Z",
            "endTime": summary.end_time.isoformat() + "Z" if summary.end_time else None,
        },
    }


def _refresh(stack: Any, name: str, *, clear_pending_creates: bool) -> None:
    stack.refresh(color="never", show_secrets=False, clear_pending_creates=clear_pending_creates or None)


def update_version(stack: Any, name: str) -> int:
    """The version of the stack's latest update. `stack history --json` prints UpdateInfo.Version
    (pkg/cmd/pulumi/stack/stack_history.go L148, L176), which the Pulumi Cloud numbers but the DIY
    backend (file://, s3://) never sets: it builds UpdateInfo without it (pkg/backend/diy/
    backend.go L1439-L1450), so there it reads 0. The DIY history is one file per update, up,
    refresh and destroy alike (previews are dry runs and add none, L1456-L1458); all of them are
    listed with `--page-size 0` (pkg/backend/diy/state.go L613-L619 pages only when it is > 0),
    newest first, so the latest update's version is how many there are, as the Cloud counts."""
    result = stack.workspace._run_pulumi_cmd_sync(["stack", "history", "--json", "--stack", name, "--page-size", "0"])
    entries = json.loads(result.stdout or "[]")
    if not isinstance(entries, list) or not entries:
        return 0
    first = entries[0].get("version") if isinstance(entries[0], dict) else None
    return first if isinstance(first, int) and first > 0 else len(entries)


@dataclass(frozen=True)
class DestroyView:
    """What a destroy removes and what it leaves (from the state, secrets never decrypted)."""

    stack: str
    goes: tuple[tuple[str, str], ...]
    kept: tuple[tuple[str, str, str], ...]
    """(type, name, why)."""

    def to_text(self) -> str:
        lines = [f"destroy {self.stack}: {len(self.goes)} resources go, {len(self.kept)} are kept"]
        lines += [f"  - {t}  {n}" for t, n in self.goes]
        lines += [f"  = {t}  {n}  ({why})" for t, n, why in self.kept]
        return terminal_safe("\n".join(lines))

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "goes": [{"type": t, "name": n} for t, n in self.goes],
            "kept": [{"type": t, "name": n, "why": w} for t, n, w in self.kept],
        }


# components/app_repository.py's type, and the pulumi-github type of stacks from before it.
REPOSITORY_TYPE = "pulumi-python:dynamic/scoutflo:AppRepository"
LEGACY_REPOSITORY = "github:index/repository:Repository"


def destroy_view(deployment: Mapping[str, Any], stack: str) -> DestroyView:
    goes, kept = [], []
    for res in deployment.get("resources") or []:
        type_, urn = str(res.get("type", "")), str(res.get("urn", ""))
        if not res.get("custom", True) or type_.startswith("pulumi:providers:") or type_ == "pulumi:pulumi:Stack":
            continue
        name = urn.rsplit("::", 1)[-1]
        inputs = res.get("inputs") or {}
        if res.get("retainOnDelete"):
            kept.append((type_, name, "retained"))
        elif res.get("protect"):
            kept.append((type_, name, "protected: destroy refuses until it is unprotected"))
        elif type_ == REPOSITORY_TYPE or (type_ == LEGACY_REPOSITORY and inputs.get("archiveOnDestroy") is True):
            # AppRepositoryProvider.delete archives (components/app_repository.py); so does the
            # github.Repository of stacks from before it, with archive_on_destroy.
            kept.append((type_, name, "archived on GitHub, not deleted"))
        else:
            goes.append((type_, name))
    return DestroyView(stack, tuple(sorted(goes)), tuple(sorted(kept)))


def _export(stack: Any, name: str) -> Mapping[str, Any]:
    # Not Stack.export_stack: the SDK adds --show-secrets (automation/_local_workspace.py L681-L684)
    # and would decrypt the whole state to list names.
    result = stack.workspace._run_pulumi_cmd_sync(["stack", "export", "--stack", name])
    return dict(json.loads(result.stdout).get("deployment") or {})


def state_digest(stack: Any, name: str) -> str:
    """The identity of the state an approval was previewed against. `up --plan` alone does not
    hold it: the engine compares the diff from the state *now* with the planned diff, not the prior
    state (pkg/resource/deploy/plan.go checkDiff L373-L470), so "1 → 2" approved still applies as
    "5 → 2" after an out-of-band change to 5. `stack export` returns the stored checkpoint as is
    (pkg/backend/diy/backend.go L1570-L1592: no re-encryption), so equal state, equal digest."""
    blob = json.dumps(_export(stack, name), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def destroy(tenant: Tenant, confirm: str | None, stacks: Stacks) -> dict[str, Any]:
    """Without `confirm == tenant.id`: ConfirmationRequired carrying what would go and be kept."""
    with typed_errors():
        settings = _settings(tenant, stacks)
        require_cli()
        with stacks.locked(tenant.id) as directory:
            stack = stacks.open(tenant, settings, directory, create=False)
            view = destroy_view(_export(stack, tenant.id), tenant.id)
            if confirm != tenant.id:
                raise ConfirmationRequired(f"{view.to_text()}\nconfirm with confirm={tenant.id!r} to destroy")
            events: list[Any] = []
            stack.destroy(on_event=events.append, color="never")
            stacks.drop_plans(directory)
            return {**view.to_json(), "summary": dict(changeset_from_events(events, stack=tenant.id).counts)}


@dataclass(frozen=True)
class TenantResult:
    tenant: str
    ok: bool
    value: Any = None
    error_kind: str = ""
    message: str = ""


def run_many(tenants: Iterable[Tenant], operation: Callable[[Tenant], T], max_workers: int = 4) -> list[TenantResult]:
    """`operation` for every tenant in parallel; never raises for one tenant's failure: every
    error comes back as a typed result, in order."""

    def one(tenant: Tenant) -> TenantResult:
        name = getattr(tenant, "id", str(tenant))
        try:
            return TenantResult(name, True, operation(tenant))
        except Exception as err:  # noqa: BLE001 - the batch must finish
            mapped = map_error(err)
            return TenantResult(name, False, error_kind=mapped.kind, message=str(mapped))

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        return list(pool.map(one, list(tenants)))
