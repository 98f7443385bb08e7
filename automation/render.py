"""`render`: run the real program in-process under Pulumi's mock engine and write what it would do.

No cloud, no Pulumi CLI: the stack file is read like the CLI reads it (Pulumi.yaml defaults,
then the stack's values), and cloud-assigned outputs (account id, ARNs, repository ids) are
supplied here, from outside the program, with fake but well-formed values. The program does not
know it runs under mocks.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import gc
import hashlib
import json
import runpy
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
FAKE_ACCOUNT = "123456789012"
SECRET = "[secret]"
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
"""RepoCommit's type (components/repo_commit.py)."""
REPOSITORY_TYPE = "pulumi-python:dynamic/scoutflo:AppRepository"
"""AppRepository's type (components/app_repository.py)."""
# Markers of Pulumi's wire format (sdk/go/common/resource/properties.go).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class RenderError(RuntimeError):
    """The stack cannot be rendered (missing stack file, or the program failed)."""


# ---------------------------------------------------------------- config, as the CLI would pass it


def _project(project_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))


def stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> tuple[dict[str, str], list[str]]:
    """Config map and secret keys for `stack`: Pulumi.yaml defaults, then Pulumi.<stack>.yaml.

    Encrypted (`secure:`) values cannot be decrypted without the CLI, so they become a secret
    placeholder: the program sees a secret, the render shows `[secret]`.
    """
    project = _project(project_dir)
    name = project["name"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise RenderError(f"no stack file {stack_file}; create it or pass --stack with an existing one")
    values = (yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}).get("config") or {}
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            config[f"{name}:{key}"] = _config_text(decl["default"])
    for key, value in values.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full] = "render-placeholder-secret"
            secrets.append(full)
        else:
            config[full] = _config_text(value)
    if "github:token" not in config:
        # The program needs a token for its commits; a render never talks to GitHub.
        config["github:token"] = "render-placeholder-secret"
        secrets.append("github:token")
    return config, sorted(secrets)


def _config_text(value: Any) -> str:
    # The CLI passes structured values as JSON and scalars as their text.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


# ---------------------------------------------------------------- fake cloud


def _stable_int(text: str, digits: int = 9) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10**digits


def fake_outputs(type_: str, name: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    """Outputs a cloud would assign, derived from the inputs so every render is identical."""
    out = dict(inputs)
    acct = FAKE_ACCOUNT
    if type_ == "aws:ecr/repository:Repository":
        repo = inputs.get("name", name)
        out.update(
            arn=f"arn:aws:ecr:{region}:{acct}:repository/{repo}",
            registryId=acct,
            repositoryUrl=f"{acct}.dkr.ecr.{region}.amazonaws.com/{repo}",
        )
    elif type_ == "aws:iam/role:Role":
        out.update(arn=f"arn:aws:iam::{acct}:role/{inputs.get('name', name)}", uniqueId=f"AROA{_stable_int(name, 12)}")
    elif type_ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        out["arn"] = f"arn:aws:iam::{acct}:oidc-provider/{str(inputs.get('url', '')).removeprefix('https://')}"
    elif type_ == REPOSITORY_TYPE:
        repo, owner = inputs.get("name", name), inputs.get("owner", "OWNER")
        out.update(
            # An adopted repository keeps the ids the program's look-up found (AppRepository's
            # repo_id/node_id inputs); a new one gets GitHub's new ids.
            repo_id=inputs.get("repo_id") or _stable_int(repo),
            node_id=inputs.get("node_id") or f"R_kgDO{_stable_int(repo, 8)}",
            full_name=f"{owner}/{repo}",
            html_url=f"https://github.com/{owner}/{repo}",
            default_branch="main",
            adopted=False,
            github_writes=0,
        )
    elif type_ == DYNAMIC_TYPE:
        out.update(commit_sha=hashlib.sha1(name.encode()).hexdigest(), pull_request_url="", github_writes=0)
    return out


class NotFound(Exception):
    """A fake look-up answering "absent" the way the real provider does: with an error."""


# Look-ups that tell whether a shared or retained thing already exists. A render starts from an
# empty account and owner; tests pass `cloud` to `run` to answer present, archived or absent.
OIDC_LOOKUP = "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider"
ECR_LIST = "aws:ecr/getRepositories:getRepositories"
ECR_LOOKUP = "aws:ecr/getRepository:getRepository"
CAPABILITY_ROLE_LOOKUP = "aws:iam/getRole:getRole"
REPO_LOOKUP = "github:index/getRepository:getRepository"


def fake_id(type_: str, name: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> str:
    """The id the provider itself assigns, where an adoption (`import_`) names it: the engine
    compares it with the import id (pulumi/pulumi pkg/resource/deploy/step_generator.go:1113)."""
    if type_ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        return str(outputs["arn"])  # terraform-provider-aws openid_connect_provider.go: SetId(ARN)
    if type_ in ("aws:ecr/repository:Repository", REPOSITORY_TYPE):
        # ecr/repository.go SetId(RepositoryName); AppRepositoryProvider.create: the repository's name
        return str(inputs.get("name", name))
    return f"{name}-id"


def fake_invoke(token: str, args: Mapping[str, Any], region: str) -> dict[str, Any]:
    if token == OIDC_LOOKUP:
        # terraform-provider-aws internal/service/iam/openid_connect_provider_data_source.go: by
        # URL it lists the providers and, finding none, returns retry.NotFoundError, whose text
        # is "couldn't find resource" (internal/retry/error.go); the read fails with it.
        raise NotFound(f"reading IAM OIDC Provider ({args.get('url')}): couldn't find resource")
    if token == ECR_LIST:
        # internal/service/ecr/repositories_data_source.go: every repository name of the region.
        return {"id": region, "names": []}
    if token == ECR_LOOKUP:
        # internal/service/ecr/repository_data_source.go: findRepository fails when it is absent.
        raise NotFound(f"reading ECR Repository ({args.get('name')}): couldn't find resource")
    if token == REPO_LOOKUP:
        # terraform-provider-github github/data_source_github_repository.go: a 404 sets the id
        # to "" and returns no error, so an absent repository answers with empty attributes.
        return {"id": "", "fullName": args.get("fullName", "")}
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "accountId": FAKE_ACCOUNT,
            "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:user/render",
            "userId": "AIDARENDER",
            "id": FAKE_ACCOUNT,
        }
    if token == CAPABILITY_ROLE_LOOKUP:
        # A capability role as AWS's guide makes it (docs.aws.amazon.com/eks/latest/userguide/
        # capability-role.html): trusted by capabilities.eks.amazonaws.com alone.
        name = str(args.get("name", ""))
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "capabilities.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
        return {
            "id": name,
            "name": name,
            "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:role/{name}",
            "assumeRolePolicy": json.dumps(trust),
        }
    if token == "github:index/getUser:getUser":
        # The provider sets the numeric account id as the data source's id (a string) and `login`
        # as GitHub spells it: terraform-provider-github github/data_source_github_user.go:135-136.
        username = str(args.get("username", ""))
        return {"id": str(_stable_int("owner:" + username.lower())), "login": username, "username": username}
    raise RenderError(f"render has no fake answer for invoke {token}")


# ---------------------------------------------------------------- recording engine


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    depends_on: list[str]
    inputs: dict[str, Any]
    import_id: str = ""
    """The `import_` resource option: the cloud object this resource adopts."""
    alias_specs: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Pulumi's `aliases` option as the RegisterResource request carries it
    (sdk/proto/pulumi/alias.proto): each a URN, or a spec naming what differs."""

    @property
    def aliases(self) -> list[str]:
        """The URN, else the type, else the name, of each alias."""
        return sorted(
            a.get("urn") or a.get("spec", {}).get("type") or a.get("spec", {}).get("name") for a in self.alias_specs
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent or None,
            "custom": self.custom,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "ignoreChanges": self.ignore_changes,
            "dependsOn": self.depends_on,
            "importId": self.import_id or None,
            "inputs": self.inputs,
        }


def mask_secrets(value: Any) -> Any:
    """Wire-format property values to plain JSON, every secret replaced by `[secret]`."""
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            # Keep a secret map's keys (its shape still validates); hide every value.
            return _mask_all(value.get("value"))
        return {k: mask_secrets(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict) and value.get(_SIG) != _SECRET_SIG:
        return {k: _mask_all(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    return SECRET


@dataclass
class Recording:
    region: str
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every look-up the program made, in order: (token, args)."""
    cloud: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = field(default_factory=dict, repr=False)
    """Answers that replace `fake_invoke`'s per token (raise `NotFound` for absent)."""
    loops: list[asyncio.AbstractEventLoop] = field(default_factory=list, repr=False)

    def thread_loop(self) -> None:
        """Give a monitor worker thread an event loop that this run owns and closes: the SDK makes
        one per thread otherwise and leaves it to a finalizer that fails once its socket is gone."""
        try:
            if not asyncio.get_event_loop().is_closed():
                return
        except RuntimeError:
            pass
        # None yet, or one an earlier run closed: pool threads outlive runs, and a future made on
        # a closed loop fails the run's wait ("Event loop is closed").
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loops.append(loop)


class _InvokeError(grpc.RpcError):
    """A gRPC error as the SDK sees one (pulumi/runtime/invoke.py catches `grpc.RpcError`)."""

    def __init__(self, details: str):
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


def _make_engine(recording: Recording) -> Any:
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime.mocks import MockMonitor

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            outputs = fake_outputs(args.typ, args.name, args.inputs, recording.region)
            return fake_id(args.typ, args.name, args.inputs, outputs), outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            recording.invokes.append((args.token, dict(args.args)))
            answer = recording.cloud.get(args.token)
            return (answer(args.args) if answer else fake_invoke(args.token, args.args, recording.region)), []

    class RecordingMonitor(MockMonitor):
        # Resource options (protect, retainOnDelete, ignoreChanges) and secretness are not shown
        # to Mocks.new_resource; the RegisterResource request carries them.
        def Invoke(self, request: Any) -> Any:
            recording.thread_loop()
            try:
                return super().Invoke(request)
            except NotFound as err:
                # What the engine sends back when a provider's Invoke fails
                # (pkg/resource/deploy/source_eval.go resmon.Invoke): a gRPC error.
                raise _InvokeError(f"invocation of {request.tok} returned an error: {err}") from None

        def RegisterResource(self, request: Any) -> Any:
            recording.thread_loop()
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                inputs = mask_secrets(json_format.MessageToDict(request.object))
                if request.type.startswith("pulumi-python:dynamic"):
                    inputs["__provider"] = "[dynamic provider]"
                recording.resources.append(
                    Registered(
                        urn=response.urn,
                        type=request.type,
                        name=request.name,
                        parent=request.parent,
                        custom=request.custom,
                        protect=bool(request.protect),
                        retain_on_delete=bool(request.retainOnDelete),
                        ignore_changes=list(request.ignoreChanges),
                        depends_on=sorted(request.dependencies),
                        inputs=inputs,
                        import_id=request.importId,
                        alias_specs=[
                            json_format.MessageToDict(a, preserving_proto_field_name=True) for a in request.aliases
                        ],
                    )
                )
            return response

    return Mocks, RecordingMonitor


def run_program(stack: str, project_dir: Path = PROJECT_DIR) -> Recording:
    """Run `__main__.py` for `stack` under mocks; return what it registered."""
    config, secret_keys = stack_config(stack, project_dir)
    main = str(project_dir / "__main__.py")
    return run(
        lambda: runpy.run_path(main, run_name="__main__"), config, secret_keys, stack=stack, project_dir=project_dir
    )


def run(
    program: Callable[[], Any],
    config: Mapping[str, str],
    secret_keys: list[str] | None = None,
    *,
    stack: str = "dev",
    project_dir: Path = PROJECT_DIR,
    recording: Recording | None = None,
    cloud: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] | None = None,
    preview: bool = False,
) -> Recording:
    """Run any Pulumi program callable under the recording mocks, in a fresh context.

    Pulumi keeps its settings, config and root stack in context variables, so a fresh context
    per run keeps one render (or test) from leaking into the next. Pass `recording` to see what
    was registered even when the program fails.
    """
    project = _project(project_dir)["name"]
    recording = recording or Recording(region=config.get("aws:region", "us-east-1"))
    if cloud is not None:
        recording.cloud = cloud
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    # Every event loop of the run (this thread's and the monitor threads') is closed here, not
    # left to finalizers that fail noisily once their sockets are gone.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        contextvars.Context().run(
            _run, recording, program, dict(config), list(secret_keys or []), project, stack, preview
        )
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        for worker_loop in recording.loops:
            worker_loop.close()
        recording.loops.clear()
        gc.collect()
    recording.resources.sort(key=lambda r: r.urn)
    return recording


def _run(
    recording: Recording,
    program: Callable[[], Any],
    config: dict[str, str],
    secret_keys: list[str],
    project: str,
    stack: str,
    preview: bool = False,
) -> None:
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    mocks_cls, monitor_cls = _make_engine(recording)
    mocks = mocks_cls()
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor_cls(mocks))
    # Outputs of a run that failed stay tracked (pulumi/output.py `_track`: an errored task is
    # "left in the set to pick up at program exit"), and that set outlives this context: the next
    # run in the process would wait on tasks of a closed loop ("Event loop is closed").
    from pulumi.runtime.settings import SETTINGS

    with SETTINGS.lock:
        SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    root = pulumi.runtime.get_root_resource()
    recording.outputs = _sync_await(_resolve(getattr(root, "outputs", {})))


async def _resolve(value: Any) -> Any:
    import pulumi

    if isinstance(value, pulumi.Output):
        if await value.is_secret():
            return SECRET
        return await _resolve(await value.future())
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [await _resolve(v) for v in value]
    return value


# ---------------------------------------------------------------- what gets written


def repo_trees(recording: Recording) -> dict[str, dict[str, tuple[str | bytes, bool]]]:
    """Per repository: path -> (text or bytes, executable), every commit the program makes merged.
    Binary files come from the commit's `binary_files` input (base64), as the provider commits them."""
    trees: dict[str, dict[str, tuple[str | bytes, bool]]] = {}
    for res in recording.resources:
        if res.type != DYNAMIC_TYPE:
            continue
        executable = set(res.inputs.get("executable") or [])
        tree = trees.setdefault(res.inputs["repo"], {})
        for path, text in res.inputs["files"].items():
            tree[path] = (text, path in executable)
        for path, data in (res.inputs.get("binary_files") or {}).items():
            tree[path] = (base64.b64decode(data), path in executable)
    return trees


def k8s_objects(recording: Recording) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for res in recording.resources:
        if res.type.startswith("kubernetes:") and res.custom:
            head: dict[str, Any] = {k: res.inputs[k] for k in ("apiVersion", "kind", "metadata") if k in res.inputs}
            rest = {k: v for k, v in sorted(res.inputs.items()) if k not in head and not k.startswith("__")}
            objs.append({**head, **rest})
    return objs


def app_of(recording: Recording, app_names: set[str]) -> dict[str, str]:
    """URN -> owning app (the top-level component named after it), or 'shared'."""
    parents = {r.urn: r.parent for r in recording.resources}
    names = {r.urn: r.name for r in recording.resources}
    owner = {}
    for urn in parents:
        top = urn
        while parents.get(top) in parents:  # the stack itself is not recorded
            top = parents[top]
        owner[urn] = names[top] if names.get(top) in app_names else "shared"
    return owner


def write(recording: Recording, out: Path) -> dict[str, Any]:
    """Write resources.json, outputs.json, repos/<app>/… and k8s/<ns>/<kind>-<name>.yaml; a
    failure to write (no space, a file where a directory goes, no permission) is a RenderError
    naming the path, never a traceback."""
    try:
        return _write(recording, out)
    except OSError as err:
        where = err.filename or out
        raise RenderError(f"cannot write the render to {where}: {err.strerror or err}") from None


def _write(recording: Recording, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.json").write_text(
        json.dumps([r.as_json() for r in recording.resources], indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out / "outputs.json").write_text(json.dumps(recording.outputs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for repo, tree in repo_trees(recording).items():
        for path, (content, executable) in tree.items():
            target = out / "repos" / repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
            target.chmod(0o755 if executable else 0o644)
    objects = k8s_objects(recording)
    for obj in objects:
        meta = obj.get("metadata", {})
        target = out / "k8s" / meta.get("namespace", "_cluster") / f"{obj['kind'].lower()}-{meta['name']}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
    return {"resources": len(recording.resources), "repos": len(repo_trees(recording)), "k8s": len(objects)}


def tree_text(recording: Recording, tenant: str) -> str:
    """Tenant -> app -> resources, with counts, for a person reading the render."""
    app_names = {r.name for r in recording.resources if r.type == "scoutflo:index:ChartRepo"}
    owner = app_of(recording, app_names)
    groups: dict[str, list[Registered]] = {}
    for res in recording.resources:
        groups.setdefault(owner[res.urn], []).append(res)
    custom = sum(r.custom for r in recording.resources)
    lines = [f"tenant {tenant}: {len(app_names)} apps, {custom} resources ({len(recording.resources)} with components)"]
    for group in ["shared", *sorted(app_names)]:
        members = groups.get(group, [])
        lines.append(f"├─ {'(shared)' if group == 'shared' else group}: {sum(r.custom for r in members)} resources")
        counts = Counter(r.type for r in members if r.custom)
        for type_, n in sorted(counts.items()):
            lines.append(f"│   {n:>3} × {type_}")
    return "\n".join(lines)
