"""A stand-in `pulumi` CLI for the Automation layer's tests; by default of the version of the
installed `pulumi` SDK (what `PulumiCommand.install` installs by default,
sdk/python/lib/pulumi/automation/_cmd.py L108-L109), events over the SDK's gRPC stream.
`FAKE_PULUMI_VERSION` makes it answer `pulumi version` as another build would (tests wrap it in a
script that sets it: the Automation layer passes the CLI no variable of the test's).

It records every call (argv, environment, cwd) under `<backend>/.fake-pulumi/calls/` and enforces
what the real CLI enforces, each rule citing pulumi/pulumi at commit 1b5949891b3c; where it is
stricter than the real one it says so. Its "program" is a model (tests/fake_pulumi/model.py) of
the resources the real program registers: the engine protocol is what is under test here.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import importlib.metadata
import json
import os
import posixpath
import re
import secrets
import socket
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model
import rules
from rules import CliError

# `pulumi version` prints the version linked in at build time and a newline
# (pkg/cmd/pulumi/version/version.go L30); release builds link "v<version>" (.goreleaser.yml L21),
# source builds "<next release>-dev.0" without the `v` (Makefile L22/L118, scripts/pulumi-version.sh).
VERSION_LINE = os.environ.get("FAKE_PULUMI_VERSION") or f"v{importlib.metadata.version('pulumi')}"
VERSION = VERSION_LINE.removeprefix("v")
SIG, SECRET_SIG = model.SIG, model.SECRET_SIG


class Ctx:
    def __init__(self, argv: list[str]):
        self.argv = argv
        self.cwd = Path.cwd()
        url = os.environ.get("PULUMI_BACKEND_URL", "")
        self.url = url
        s3_root = os.environ.get("FAKE_PULUMI_S3_ROOT", "")
        if url.startswith("s3://") and s3_root:
            # A bucket the test lays out in a directory (FAKE_PULUMI_S3_ROOT/<bucket>/<prefix>):
            # the DIY backend is one code path over gocloud's blob.Bucket for file:// and s3://
            # (pkg/backend/diy/backend.go New, lock.go uses b.bucket only), so only the URL differs,
            # and with it what the CLI prints (lockURLForError, lock.go L114-L128).
            parsed = urllib.parse.urlsplit(url)
            self.backend = Path(s3_root) / parsed.netloc / parsed.path.lstrip("/")
        elif url.startswith("file://"):
            self.backend = Path(url.removeprefix("file://"))
        else:
            # The stand-in serves DIY file backends (and s3:// laid out as above) only; anything
            # else is refused, never faked.
            raise CliError(f"the stand-in supports file:// backends only, got PULUMI_BACKEND_URL={url!r}")
        self.fake = self.backend / ".fake-pulumi"
        (self.fake / "calls").mkdir(parents=True, exist_ok=True)
        settings = self.fake / "settings.json"
        self.settings = json.loads(settings.read_text()) if settings.exists() else {}
        self._keys: dict[str, bytes] = {}

    def record(self, extra: dict[str, Any] | None = None) -> None:
        entry = {"argv": self.argv, "env": dict(os.environ), "cwd": str(self.cwd), **(extra or {})}
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.json"
        (self.fake / "calls" / name).write_text(json.dumps(entry))

    # ------------------------------------------------------------ project and stack files

    def project(self) -> dict[str, Any]:
        path = self.cwd / "Pulumi.yaml"
        if not path.exists():
            raise CliError("no Pulumi.yaml project file found")
        text = path.read_bytes()
        raw = rules.load_yaml(path)
        # The same bytes always give the same verdict: a passed project is remembered by digest
        # (only to keep the stand-in fast; the check itself is the one in rules.py).
        seen = self.fake / "valid-projects" / hashlib.sha256(text).hexdigest()
        if not seen.exists():
            rules.validate_project(raw)
            seen.parent.mkdir(parents=True, exist_ok=True)
            seen.touch()
        main = raw.get("main")
        if main:
            # pkg/engine/project.go L45-L66: an absolute main is used as is; it must exist.
            target = Path(main) if os.path.isabs(main) else self.cwd / main
            if not target.exists():
                raise CliError(f"project 'main' could not be read: {target}")
        return raw

    def stack_file(self, stack: str) -> Path:
        return self.cwd / f"Pulumi.{stack}.yaml"

    def read_stack_file(self, stack: str) -> dict[str, Any]:
        path = self.stack_file(stack)
        return (rules.load_yaml(path) or {}) if path.exists() else {}

    def state_path(self, stack: str) -> Path:
        # DIY layout: .pulumi/stacks/<project>/<stack>.json (pkg/backend/diy/backend.go stackPath).
        return self.backend / ".pulumi" / "stacks" / "scoutflo" / f"{stack}.json"

    def history_dir(self, stack: str) -> Path:
        # pkg/backend/diy/store.go L130: .pulumi/history/<project>/<stack>/
        return self.backend / ".pulumi" / "history" / "scoutflo" / stack

    def add_history(self, stack: str, kind: str, start: float, message: str, ok: bool, changes: dict[str, int]) -> None:
        """addToHistory (pkg/backend/diy/state.go L690-L715): one `<stack>-<unixnano>.history.json`
        per update that is not a dry run, failed ones too (backend.go L1434-L1458). The UpdateInfo
        is built without a Version (backend.go L1439-L1450): DIY histories carry none."""
        entry = {
            "kind": kind,
            "startTime": int(start),
            "message": message,
            "environment": {},
            "config": {},
            "result": "succeeded" if ok else "failed",
            "endTime": int(time.time()),
            "resourceChanges": changes,
        }
        self.history_dir(stack).mkdir(parents=True, exist_ok=True)
        (self.history_dir(stack) / f"{stack}-{time.time_ns()}.history.json").write_text(json.dumps(entry))

    def lock_dir(self, stack: str) -> Path:
        # pkg/backend/diy/lock.go L67-L78: .pulumi/locks/<org>/<project>/<stack>/<lockID>.json
        return self.backend / ".pulumi" / "locks" / "organization" / "scoutflo" / stack

    # ------------------------------------------------------------ secrets (passphrase provider)

    def passphrase(self) -> str:
        # pkg/secrets/passphrase/manager.go L380-L397: a set variable wins even when empty; the
        # file is read when the variable is unset, its text TrimSpace'd.
        if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
            return os.environ["PULUMI_CONFIG_PASSPHRASE"]
        file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if file:
            return Path(file).read_text().strip()
        raise CliError(
            "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or "
            "PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
        )

    def key(self, stack: str) -> bytes:
        """The stack's data key, from the secrets manager the CLI loads for it (`secrets_manager`)."""
        if stack not in self._keys:
            self._keys[stack] = self.secrets_manager(stack)
        return self._keys[stack]

    def secrets_manager(self, stack: str) -> bytes:
        """SecretsManagerLoader.GetSecretsManager (pkg/cmd/pulumi/stack/secrets.go L226-L318, at
        1b5949891b3c): a cloud manager when the stack file names a provider other than passphrase
        or default (L237-L242), the passphrase manager when it has a salt (L243-L247), else, only
        with PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=1|true (L189-L192, sdk/go/common/env/
        env.go L132, util/env/env.go L338-L347), the manager of the stack's snapshot, written into
        the stack file (L258-L285); else the backend's default, for DIY a *new* passphrase
        manager (pkg/backend/diy/backend.go L1713-L1716, passphrase/manager.go L313-L325).
        Commands save the stack file after (config/config.go L852/L905)."""
        ps = self.read_stack_file(stack)
        provider = ps.get("secretsprovider") or ""
        if provider not in ("", "passphrase", "default"):
            return self.cloud_key(provider, ps.get("encryptedkey") or "")
        if ps.get("encryptionsalt"):
            return hashlib.pbkdf2_hmac("sha256", self.passphrase().encode(), ps["encryptionsalt"].encode(), 1000)
        snapshot = self.snapshot_manager(stack)
        fallback = os.environ.get("PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER", "")
        if snapshot is not None and (fallback == "1" or fallback.lower() == "true"):
            if snapshot["type"] == "passphrase":  # passphrase.EditProjectStack
                ps.update(encryptionsalt=snapshot["state"]["salt"])
                ps.pop("secretsprovider", None), ps.pop("encryptedkey", None)
            else:  # cloud.EditProjectStack (pkg/secrets/cloud/manager.go L139-L151)
                ps.pop("encryptionsalt", None)
                ps.update(secretsprovider=snapshot["state"]["url"], encryptedkey=snapshot["state"]["encryptedkey"])
            self.stack_file(stack).write_text(yaml.safe_dump(ps))
            return self.secrets_manager(stack)
        if snapshot is not None:
            # Stricter than the real CLI, which makes a new passphrase manager here and goes on:
            # the stack would silently change managers (or fail without a passphrase).
            raise CliError(
                f"stand-in: Pulumi.{stack}.yaml has no secrets provider, salt or key, and the stack's state was "
                f"written with a {snapshot['type']} secrets manager; the real CLI would make a new passphrase "
                "manager for it (pkg/backend/diy/backend.go L1713-L1716). Restore the stack's secrets block."
            )
        salt = "v1:" + base64.b64encode(secrets.token_bytes(8)).decode()
        self.passphrase()  # the prompt for a new passphrase fails without one (manager.go L389-L397)
        ps["encryptionsalt"] = salt
        self.stack_file(stack).write_text(yaml.safe_dump(ps))
        return self.secrets_manager(stack)

    def snapshot_manager(self, stack: str) -> dict[str, Any] | None:
        """The manager the stack's last update wrote into its state (`secrets_providers`); none
        after `stack init`, whose checkpoint is empty (pkg/backend/diy/backend.go L885)."""
        if not self.state_path(stack).exists():
            return None
        found = json.loads(self.state_path(stack).read_text())["deployment"].get("secrets_providers")
        return found if isinstance(found, dict) else None

    def manager_state(self, stack: str) -> dict[str, Any]:
        """What an update records as the snapshot's secrets manager (the stack file's)."""
        ps = self.read_stack_file(stack)
        provider = ps.get("secretsprovider") or ""
        if provider not in ("", "passphrase", "default"):
            # cloudSecretsManagerState (pkg/secrets/cloud/manager.go L44-L47): []byte marshals as base64
            return {"type": "cloud", "state": {"url": provider, "encryptedkey": ps["encryptedkey"]}}
        return {"type": "passphrase", "state": {"salt": ps["encryptionsalt"]}}

    # ------------------------------------------------------------ a stand-in KMS (awskms://)

    def kms_master(self, url: str, create: bool) -> bytes:
        """The stand-in's KMS: one master key per key id, kept under the backend's .fake-pulumi
        (the real one never leaves AWS). Like gocloud's awskms keeper it needs AWS credentials."""
        if not url.startswith("awskms://"):
            raise CliError(f"the stand-in knows the passphrase and awskms:// secrets providers only, got {url!r}")
        if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            raise CliError("secrets (code=Unknown): NoCredentialProviders: no valid providers in chain (stand-in KMS)")
        key_id = url.removeprefix("awskms://").split("?", 1)[0]
        path = self.fake / "kms" / f"{hashlib.sha256(key_id.encode()).hexdigest()}.key"
        if not path.exists():
            if not create:
                raise CliError(f"secrets (code=NotFound): KMS key {key_id} not found (stand-in KMS)")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(32))
        return path.read_bytes()

    def cloud_key(self, url: str, encryptedkey: str) -> bytes:
        """NewCloudSecretsManager (pkg/secrets/cloud/manager.go L188-L240): the stack file's
        `encryptedkey` is the KMS-wrapped data key, base64; the KMS unwraps it."""
        if not encryptedkey:
            raise CliError(f"stand-in: the stack file names {url} but has no encryptedkey")
        master = self.kms_master(url, create=False)
        try:
            return base64.b64decode(self.open_sealed(master, base64.b64decode(encryptedkey).decode()))
        except CliError:
            raise CliError("secrets (code=InvalidArgument): failed to decrypt data key (stand-in KMS)") from None

    def new_cloud_key(self, url: str) -> str:
        """generateNewDataKey (manager.go L212-L225): a new data key, wrapped by the KMS key."""
        master = self.kms_master(url, create=True)
        sealed = self.seal(master, base64.b64encode(secrets.token_bytes(32)).decode())
        return base64.b64encode(sealed.encode()).decode()

    @staticmethod
    def seal(key: bytes, text: str) -> str:
        nonce = secrets.token_bytes(12)
        data = text.encode()
        stream = b"".join(
            hashlib.sha256(key + nonce + i.to_bytes(4, "big")).digest() for i in range(len(data) // 32 + 1)
        )
        ct = bytes(a ^ b for a, b in zip(data, stream, strict=False))
        tag = hmac.new(key, nonce + ct, hashlib.sha256).digest()[:16]
        return "v1:" + base64.b64encode(nonce + tag + ct).decode()

    @staticmethod
    def open_sealed(key: bytes, blob: str) -> str:
        raw = base64.b64decode(blob.removeprefix("v1:"))
        nonce, tag, ct = raw[:12], raw[12:28], raw[28:]
        if not hmac.compare_digest(tag, hmac.new(key, nonce + ct, hashlib.sha256).digest()[:16]):
            raise CliError(
                "failed to decrypt: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase"
            )
        stream = b"".join(hashlib.sha256(key + nonce + i.to_bytes(4, "big")).digest() for i in range(len(ct) // 32 + 1))
        return bytes(a ^ b for a, b in zip(ct, stream, strict=False)).decode()

    def encrypt(self, stack: str, text: str) -> str:
        return self.seal(self.key(stack), text)

    def decrypt(self, stack: str, blob: str) -> str:
        return self.open_sealed(self.key(stack), blob)

    def config(self, stack: str, project: dict[str, Any]) -> dict[str, Any]:
        """The stack's config, checked as pkg/workspace/config.go L66-L163 checks it, secrets decrypted."""
        values = self.read_stack_file(stack).get("config") or {}
        rules.validate_stack_config(stack, project, values, lambda blob: self.decrypt(stack, blob))
        out = {}
        for key, value in values.items():
            full = key if ":" in key else f"{project['name']}:{key}"
            out[full] = model.Secret(self.decrypt(stack, value["secure"])) if rules.is_secure(value) else value
        return out


# ---------------------------------------------------------------- argv

# The flags each command really has (cobra refuses any other: "unknown flag: --x"), read from
# pulumi/pulumi at 1b5949891b3c. Persistent flags of the root (pkg/cmd/pulumi/pulumi.go L451-L490)
# reach every command; `stack`'s --stack is persistent (stack/stack.go L106), `config`'s --stack
# and --config-file too (config/config.go L149-L156). Only what the Automation layer can reach.
GLOBAL_FLAGS = {
    "--cwd", "--emoji", "--fully-qualify-stack-names", "--disable-integrity-checking", "--logflow",
    "--logtostderr", "--non-interactive", "--tracing", "--otel-traces", "--profiling", "--memprofilerate",
    "--verbose", "--color", "--tracing-header",
}  # fmt: skip
_OPERATION = {
    "--client", "--config", "--config-file", "--config-path", "--debug", "--diff", "--event-log", "--exclude",
    "--exec-agent", "--exec-kind", "--json", "--message", "--parallel", "--refresh", "--run-program",
    "--show-config", "--show-replacement-steps", "--show-sames", "--skip-preview", "--stack", "--suppress-outputs",
    "--suppress-permalink", "--suppress-progress", "--target", "--target-dependents",
}  # fmt: skip
COMMAND_FLAGS: dict[tuple[str, ...], set[str]] = {
    # operations/preview.go: --save-plan, no --plan, no --yes
    ("preview",): (_OPERATION - {"--skip-preview"}) | {"--save-plan", "--expect-no-changes", "--replace"},
    # operations/up.go: --plan (L944-L951), --yes, --skip-preview
    ("up",): _OPERATION | {"--plan", "--yes", "--expect-no-changes", "--replace", "--continue-on-error"},
    # operations/destroy.go: no plan flags
    ("destroy",): _OPERATION | {"--yes", "--continue-on-error", "--exclude-protected"},
    # operations/refresh.go L95-L96, L480-L490 (pending creates), --preview-only, --skip-preview
    ("refresh",): _OPERATION
    | {
        "--yes",
        "--preview-only",
        "--expect-no-changes",
        "--clear-pending-creates",
        "--import-pending-creates",
        "--skip-pending-creates",
    },
    # cancel/cancel.go L100-L104: --yes; the stack as --stack (persistent) or an argument
    ("cancel",): {"--yes", "--stack"},
    ("stack",): {"--stack", "--show-ids", "--show-urns", "--show-secrets", "--show-name"},  # stack/stack.go L106-L116
    ("stack", "init"): {
        "--stack",
        "--secrets-provider",
        "--copy-config-from",
        "--no-select",
        "--teams",
    },  # stack_new.go
    ("stack", "select"): {"--stack", "--create", "--secrets-provider"},  # stack_select.go
    ("stack", "rename"): {"--stack"},  # stack_rename.go L118-L120
    ("stack", "history"): {"--stack", "--show-secrets", "--full-dates", "--page-size", "--page", "--json"},
    ("stack", "output"): {"--stack", "--json", "--shell", "--show-secrets"},  # stack_output.go
    ("stack", "export"): {"--stack", "--file", "--show-secrets", "--version"},  # stack_export.go
    # config/config.go L774-L793 (+ the persistent --stack, --config-file of `config`)
    ("config", "set"): {"--stack", "--config-file", "--path", "--plaintext", "--secret", "--type", "--raw"},
}


def check_flags(words: list[str], flags: dict[str, Any]) -> None:
    """cobra's refusal of a flag the command does not define."""
    path = tuple(words[:2]) if words[:1] in (["stack"], ["config"]) and len(words) > 1 else tuple(words[:1])
    allowed = COMMAND_FLAGS.get(path)
    if allowed is None:
        return  # an unknown command is refused by main()
    for name in flags:
        if name not in allowed | GLOBAL_FLAGS:
            raise CliError(f"unknown flag: {name}")


def parse(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Positional words and flags (--flag value / --flag=value / bare booleans)."""
    booleans = {
        "--non-interactive",
        "--yes",
        "--skip-preview",
        "--diff",
        "--secret",
        "--plaintext",
        "--raw",
        "--show-secrets",
        "--json",
        "--path",
        "--suppress-progress",
        "--suppress-outputs",
        "--refresh",
        "--expect-no-changes",
        "--no-select",
        "--create",
        "--debug",
        "--show-config",
        "--show-sames",
        "--show-replacement-steps",
        "--suppress-permalink",
        "--continue-on-error",
        "--exclude-protected",
        "--target-dependents",
        "--full-dates",
        "--shell",
        "--show-ids",
        "--show-urns",
        "--show-name",
        "--logflow",
        "--logtostderr",
        "--emoji",
        "--fully-qualify-stack-names",
        "--disable-integrity-checking",
        "--preview-only",
        "--clear-pending-creates",
        "--skip-pending-creates",
    }
    repeated = {"--import-pending-creates"}  # a StringArray flag (refresh.go L487-L489)
    words: list[str] = []
    flags: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            words.extend(argv[i + 1 :])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in repeated:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise CliError(f"flag needs an argument: {name}")
                    value = argv[i]
                flags.setdefault(name, []).append(value)
            elif eq:
                flags[name] = value
            elif name in booleans:
                flags[name] = True
            else:
                i += 1
                if i >= len(argv):
                    raise CliError(f"flag needs an argument: {name}")
                flags[name] = argv[i]
        elif arg.startswith("-") and len(arg) == 2:
            flags[{"-s": "--stack", "-y": "--yes", "-j": "--json"}.get(arg, arg)] = (
                True if arg in ("-y", "-j") else argv[(i := i + 1)]
            )
        else:
            words.append(arg)
        i += 1
    return words, flags


# ---------------------------------------------------------------- commands


def cmd_stack(ctx: Ctx, words: list[str], flags: dict[str, Any]) -> str:
    ctx.project()
    sub = words[1] if len(words) > 1 else ""
    if sub == "init":
        name = words[2] if len(words) > 2 else flags.get("--stack", "")
        if ctx.state_path(name).exists():
            raise CliError(f"stack '{name}' already exists")
        provider = flags.get("--secrets-provider", "passphrase")
        # createSecretsManagerForNewStack (pkg/cmd/pulumi/stack/secrets.go L99-L131): passphrase
        # makes a salt (needs a passphrase, manager.go L389-L397); any other provider a cloud
        # manager with a new KMS-wrapped data key, and no salt (cloud/manager.go L194, L212-L226).
        stack_file = ctx.read_stack_file(name)
        for key in ("secretsprovider", "encryptedkey", "encryptionsalt"):
            stack_file.pop(key, None)
        if provider in ("passphrase", "default"):
            ctx.passphrase()
            stack_file["encryptionsalt"] = "v1:" + base64.b64encode(secrets.token_bytes(8)).decode()
        else:
            stack_file.update(secretsprovider=provider, encryptedkey=ctx.new_cloud_key(provider))
        ctx.state_path(name).parent.mkdir(parents=True, exist_ok=True)
        # The new stack's checkpoint is empty (pkg/backend/diy/backend.go L885): no secrets manager.
        ctx.state_path(name).write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
        ctx.stack_file(name).write_text(yaml.safe_dump(stack_file))
        return f"Created stack '{name}'"
    name = flags.get("--stack", "")
    if not ctx.state_path(name).exists():
        raise CliError(f"no stack named '{name}' found")
    if sub == "select":
        return ""
    if sub == "rename":
        # stack_rename.go L58-L81 → diy RenameStack/renameStack (backend.go L1090-L1128): the
        # stack's lock is taken first (lock.go L130-L154: the refusal names every other lock),
        # then a new name that exists is refused, before anything is written.
        new = words[2] if len(words) > 2 else ""
        with Lock(ctx, name):
            if ctx.state_path(new).exists():
                # diyBackendReference.String() (backend.go L151-L175): the project elided when
                # it is the current project's.
                raise CliError(f"a stack named {new} already exists")
        raise CliError("the stand-in renames a stack to an existing name only (the lock probe)")
    if sub == "history":
        # Stack.up/destroy read the last update (automation/_stack.py L447, L1454). getHistory
        # (pkg/backend/diy/state.go L575-L640): the history files newest first, a page of
        # --page-size (default 10, stack_history.go) only when it is > 0; printed as
        # updateInfoJSON (stack_history.go L147-L205) with the entry's Version: 0 on DIY.
        files = (
            sorted(ctx.history_dir(name).glob("*.history.json"), reverse=True) if ctx.history_dir(name).exists() else []
        )
        size, page = int(flags.get("--page-size", 10)), max(1, int(flags.get("--page", 1)))
        if size > 0:
            files = files[(page - 1) * size : page * size]
        out = []
        for file in files:
            entry = json.loads(file.read_text())
            stamp = "%Y-%m-%dT%H:%M:%S.000Z"
            out.append(
                {
                    "version": 0,
                    "kind": entry["kind"],
                    "startTime": time.strftime(stamp, time.gmtime(entry["startTime"])),
                    "message": entry["message"],
                    "environment": entry["environment"],
                    "config": entry["config"],
                    "result": entry["result"],
                    "endTime": time.strftime(stamp, time.gmtime(entry["endTime"])),
                    "resourceChanges": entry["resourceChanges"],
                }
            )
        return json.dumps(out)
    if sub == "output":
        return "{}"  # the model exports no outputs (the SDK's up/destroy read them, _stack.py L444)
    if sub == "export":
        state = json.loads(ctx.state_path(name).read_text())
        if flags.get("--show-secrets"):
            state = model.reveal(state, lambda blob: ctx.decrypt(name, blob))
        return json.dumps(state)
    raise CliError(f"unknown command 'stack {sub}' for the stand-in")


def cmd_config(ctx: Ctx, words: list[str], flags: dict[str, Any]) -> str:
    ctx.project()
    sub = words[1] if len(words) > 1 else ""
    stack = flags.get("--stack", "")
    if not ctx.state_path(stack).exists():
        raise CliError(f"no stack named '{stack}' found")
    if sub != "set":
        raise CliError(f"the stand-in implements `config set` only, not {sub!r}")
    key = words[2]
    if len(words) > 3:
        value = words[3]
    else:
        # pkg/cmd/pulumi/config/config.go L808-L822: a non-terminal stdin is the value; trailing
        # newlines are stripped unless --raw.
        value = sys.stdin.read()
        if not flags.get("--raw"):
            value = value.rstrip("\n")
    stack_file = ctx.read_stack_file(stack)
    config = stack_file.setdefault("config", {})
    config[key] = {"secure": ctx.encrypt(stack, value)} if flags.get("--secret") else value
    ctx.stack_file(stack).write_text(yaml.safe_dump(stack_file))
    return ""


def rfc3339_seconds(stamp: str) -> str:
    """Go's Timestamp.Format(time.RFC3339) of the lock's time as unmarshalled (lock.go L106):
    whole seconds, `Z` for UTC, else the offset it was written with; the zero time when absent."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if match is None:
        return "0001-01-01T00:00:00Z"
    return match.group(1) + match.group(2)


class Lock:
    """DIY backend lock for updates (pkg/backend/diy/lock.go L130-L155): refuse when another
    process holds one (L63-L112; the Automation API maps that text to ConcurrentUpdateError).
    Its name is the backend's lockID, a UUID (backend.go L321), its content lockContent
    (lock.go L39-L61): pid, username, hostname and the time, as Go marshals a time.Time
    (RFC 3339 with nanoseconds). Nothing removes it but Unlock (L156-L164) or `pulumi cancel`:
    a process killed mid-update leaves it."""

    def __init__(self, ctx: Ctx, stack: str):
        self.dir = ctx.lock_dir(stack)
        self.path = self.dir / f"{uuid.uuid4()}.json"
        self.backend = ctx.backend
        self.url = ctx.url

    def __enter__(self) -> Lock:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check()
        now = time.time_ns()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
        content = {"pid": os.getpid(), "username": getpass.getuser(), "hostname": socket.gethostname()}
        self.path.write_text(json.dumps({**content, "timestamp": stamp}))
        self._check()  # L148: checked again after writing, a concurrent writer loses
        return self

    def _check(self) -> None:
        others = sorted(p for p in self.dir.iterdir() if p != self.path)
        if others:
            self.path.unlink(missing_ok=True)
            lines = [
                f"the stack is currently locked by {len(others)} lock(s). Either wait for the other "
                "process(es) to end or delete the lock file with `pulumi cancel`."
            ]
            for other in others:  # L90-L107
                try:
                    held = json.loads(other.read_text())
                except (OSError, ValueError) as err:
                    # L91-L99: a lock that cannot be read or unmarshalled fails the command with
                    # that error instead of the list (no lock of it is named).
                    raise CliError(f"invalid lock file {other.name}: {err}") from None
                if not isinstance(held, dict):
                    raise CliError(f"json: cannot unmarshal into Go value of type diy.lockContent ({other.name})")
                # A missing field is Go's zero value (json.Unmarshal into lockContent, L39-L44).
                lines.append(
                    f"  {self.lock_url(other)}: created by {held.get('username', '')}@{held.get('hostname', '')} "
                    f"(pid {held.get('pid', 0)}) at {rfc3339_seconds(str(held.get('timestamp', '')))}"
                )
            raise CliError("\n".join(lines))

    def lock_url(self, lock: Path) -> str:
        """lockURLForError (L114-L128): the backend URL with the lock's key joined to its path,
        its query kept, a user:password replaced by ****."""
        parsed = urllib.parse.urlsplit(self.url)
        key = lock.relative_to(self.backend).as_posix()
        netloc = parsed.netloc
        if "@" in netloc:
            netloc = "****:****@" + netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(
            (parsed.scheme, netloc, posixpath.join(parsed.path or "/", key), parsed.query, parsed.fragment)
        )

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def cmd_operation(ctx: Ctx, words: list[str], flags: dict[str, Any]) -> str:
    command = words[0]
    project = ctx.project()
    stack = flags.get("--stack", "")
    if not ctx.state_path(stack).exists():
        raise CliError(f"no stack named '{stack}' found")
    if command in ("up", "destroy") and not flags.get("--yes"):
        # pkg/cmd/pulumi/operations/up.go: non-interactive updates need --yes (or --skip-preview + --yes).
        raise CliError("--yes must be passed in to proceed when running in non-interactive mode")
    config = ctx.config(stack, project)
    state = json.loads(ctx.state_path(stack).read_text())
    if command == "refresh":
        return refresh(ctx, stack, state, flags)
    olds = {r["urn"]: r for r in state["deployment"]["resources"]}
    goals = [] if command == "destroy" else model.goals(stack, config)
    steps = model.steps(olds, goals, lambda blob: ctx.decrypt(stack, blob))
    delay = float(ctx.settings.get("delay", {}).get(command, 0))
    if command == "preview":
        if flags.get("--save-plan"):
            plan = model.plan(
                steps, VERSION_LINE, lambda blob: ctx.decrypt(stack, blob), lambda text: ctx.encrypt(stack, text)
            )
            # plan.Write (pkg/cmd/pulumi/plan/plan.go L28-L43): os.Create, JSON with a 4-space indent
            Path(flags["--save-plan"]).write_text(json.dumps(plan, indent=4) + "\n")
        time.sleep(delay)
        model.write_events(flags.get("--event-log"), model.forge(steps, ctx.settings.get("forge", [])))
        return "Previewing update"
    kind = "update" if command == "up" else "destroy"
    message = str(flags.get("--message", ""))
    with Lock(ctx, stack):
        start = time.time()
        if command == "up":
            # What the tests count: every `up` that got past the lock, with its --message.
            line = (
                json.dumps(
                    {"stack": stack, "message": message, "pid": os.getpid(), "pgid": os.getpgrp(), "time": start}
                )
                + "\n"
            )
            fd = os.open(ctx.fake / "ups.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        if flags.get("--plan"):
            plan = json.loads(Path(flags["--plan"]).read_text())
            try:
                model.check_plan(plan, steps, lambda blob: ctx.decrypt(stack, blob))
            except CliError:
                # The violation is found while the engine runs, so its event stream still ends,
                # and the failed update is in the history (backend.go L1434-L1458).
                model.write_events(flags.get("--event-log"), [])
                ctx.add_history(stack, kind, start, message, False, {})
                raise
        carried = pending_creates(state)
        if state["deployment"].get("pending_operations"):
            # deployment_executor.go L183-L188, L90-L112: a warning, and the update goes on.
            print(
                "warning: Attempting to deploy or update resources with "
                f"{len(state['deployment']['pending_operations'])} pending operations from previous deployment.",
                file=sys.stderr,
            )
        # Each step is journaled as a pending operation when it begins and cleared when it is
        # done (pkg/backend/snapshot.go L755-L760): a CLI killed mid-update leaves them in the
        # state. (The stand-in begins every step at once, then waits `delay`.)
        inflight = [pending(s, lambda text: ctx.encrypt(stack, text)) for s in steps if s["op"] != "same"]
        state["deployment"]["pending_operations"] = carried + inflight
        state["deployment"]["secrets_providers"] = ctx.manager_state(stack)
        save_state(ctx, stack, state)
        time.sleep(delay)
        state["deployment"]["resources"] = model.apply(steps, lambda text: ctx.encrypt(stack, text))
        # Pending CREATEs of the base snapshot are carried into every new one (snapshot.go
        # L763-L771): only a person (or refresh --clear-pending-creates) resolves them.
        state["deployment"]["pending_operations"] = carried
        # The snapshot records the manager its secrets were encrypted with (the update's).
        state["deployment"]["secrets_providers"] = ctx.manager_state(stack)
        save_state(ctx, stack, state)
        counts: dict[str, int] = {}
        for step in steps:
            counts[step["op"]] = counts.get(step["op"], 0) + 1
        ctx.add_history(stack, kind, start, message, True, counts)
        model.write_events(flags.get("--event-log"), steps)
    # A test knob, not a rule: the CLI still running after its update is complete and unlocked
    # (diy Update's deferred Unlock runs when the update returns, backend.go L1206-L1212; the
    # command then prints its summary and exits), for a worker killed in that window.
    time.sleep(float(ctx.settings.get("delay_after", {}).get(command, 0)))
    return "Update complete" if command == "up" else "Destroy complete"


def save_state(ctx: Ctx, stack: str, state: dict[str, Any]) -> None:
    tmp = ctx.state_path(stack).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(ctx.state_path(stack))


_OPERATION_TYPES = {"create": "creating", "replace": "creating", "update": "updating", "delete": "deleting"}
"""pkg/resource/operation.go: the OperationType of a step in flight."""


def pending(step: dict[str, Any], encrypt: Any) -> dict[str, Any]:
    """apitype.OperationV2: the resource as the step began it, and the operation's type."""
    res = step["new"] or step["old"]
    if step["new"] is not None:
        res = {k: v for k, v in model.apply([{**step, "op": "create"}], encrypt)[0].items() if k != "id"}
    return {"resource": res, "type": _OPERATION_TYPES[step["op"]]}


def pending_creates(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for op in state["deployment"].get("pending_operations") or [] if op.get("type") == "creating"]


def refresh(ctx: Ctx, stack: str, state: dict[str, Any], flags: dict[str, Any]) -> str:
    """`pulumi refresh` (pkg/cmd/pulumi/operations/refresh.go). The stand-in's providers answer
    with the state itself, changed by `settings.json` "drift" ({resource name: {input: value}}):
    what someone changed outside Pulumi."""
    if flags.get("--preview-only"):
        return "Previewing refresh"
    if not flags.get("--yes"):
        raise CliError("--yes must be passed in to proceed when running in non-interactive mode")
    if flags.get("--skip-pending-creates") and flags.get("--clear-pending-creates"):  # L281-L283
        raise CliError("cannot set both --skip-pending-creates and --clear-pending-creates")
    if flags.get("--import-pending-creates"):
        # L286-L303, L564-L590: each pending CREATE named becomes an import with the given ID.
        # Stricter: the stand-in does not model what the engine then does with the import.
        raise CliError("the stand-in does not implement --import-pending-creates")
    message = str(flags.get("--message", ""))
    with Lock(ctx, stack):
        start = time.time()
        ops = state["deployment"].get("pending_operations") or []
        if flags.get("--clear-pending-creates"):
            # L319-L328 (filterMapPendingCreates, L538-L562): every pending CREATE dropped.
            ops = [op for op in ops if op.get("type") != "creating"]
        # The refresh's own snapshot carries only the base's pending CREATEs (snapshot.go
        # L763-L771); the other interrupted operations are settled by reading the resources
        # (deployment_executor.go L102-L106: "refresh ... will clear the pending operations").
        state["deployment"]["pending_operations"] = [op for op in ops if op.get("type") == "creating"]
        drift = ctx.settings.get("drift", {})
        changed = 0
        for res in state["deployment"]["resources"]:
            for key, value in (drift.get(res["urn"].rsplit("::", 1)[-1]) or {}).items():
                if res["inputs"].get(key) != value:
                    res["inputs"][key] = value
                    changed += 1
        save_state(ctx, stack, state)
        counts = {"update": changed} if changed else {"same": len(state["deployment"]["resources"])}
        ctx.add_history(stack, "refresh", start, message, True, counts)
        model.write_events(flags.get("--event-log"), [])
    return "Refresh complete"


def cmd_cancel(ctx: Ctx, words: list[str], flags: dict[str, Any]) -> str:
    """`pulumi cancel` on a DIY backend: CancelCurrentUpdate deletes every lock file of the stack
    and nothing else (pkg/backend/diy/backend.go L1684-L1711): no process is stopped, no pending
    operation touched. No prompt when not interactive (cancel/cancel.go L78-L82)."""
    ctx.project()
    stack = words[1] if len(words) > 1 else flags.get("--stack", "")
    if len(words) > 1 and flags.get("--stack"):
        raise CliError("only one of --stack or argument stack name may be specified, not both")
    if not ctx.state_path(stack).exists():
        raise CliError(f"no stack named '{stack}' found")
    if ctx.lock_dir(stack).exists():
        # Listed once, then deleted one by one; a lock gone between the list and its delete ends
        # the loop with success, leaving the rest in place (backend.go L1690-L1708, NotFound →
        # return nil): a caller that raced another cancel must look again.
        for lock in sorted(p for p in ctx.lock_dir(stack).iterdir() if not p.is_dir()):
            try:
                lock.unlink()
            except FileNotFoundError:
                break
    return f"The currently running update for '{stack}' has been canceled!"


def main(argv: list[str]) -> int:
    try:
        words, flags = parse(argv)
        check_flags(words, flags)
        if words[:1] == ["version"]:
            print(VERSION_LINE)
            return 0
        ctx = Ctx(argv)
        ctx.record()
        handlers = {
            "stack": cmd_stack,
            "config": cmd_config,
            "preview": cmd_operation,
            "up": cmd_operation,
            "destroy": cmd_operation,
            "refresh": cmd_operation,
            "cancel": cmd_cancel,
        }
        if not words or words[0] not in handlers:
            raise CliError(f"the stand-in does not implement {words[:2]}")
        out = handlers[words[0]](ctx, words, flags)
        if out:
            print(out)
        return 0
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
