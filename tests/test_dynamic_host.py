"""Both dynamic providers under the real Python dynamic-provider host, called over gRPC the way
the Pulumi engine calls them.

The host is `python -u -m pulumi.dynamic` started in the project directory, as the engine starts
the `pulumi-resource-pulumi-python` plugin (pulumi/pulumi sdk/python/dist/pulumi-resource-pulumi-
python:33,49; it prints its port, sdk/python/lib/pulumi/dynamic/__main__.py main()). It loads the
providers from the pickled `__provider` in each request's properties, exactly as for an existing
stack. Requests carry what the engine's plugin client sends (pkg/resource/plugin/provider_plugin.go
at pulumi/pulumi 1b5949891b3c; `marshal` below is its MarshalProperties for this provider):
- Configure first (provider_plugin.go:1127-1138); the host answers acceptSecrets=false and no
  supportsPreview, so every later request carries secrets as plain values (KeepSecrets =
  acceptSecrets, :1195, :1211, :1453, :1585, :1751, :1883) and the engine never calls Create or
  Update in a preview (:1442-1444, :1718-1719).
- Check: olds = the prior inputs ({} for a create), news = the program's inputs with unknowns kept
  in a preview (KeepUnknowns = AllowUnknowns = DryRun, :1190-1213; step_generator.go:1272,
  :1320-1345); after a diff that replaces, Check again without olds (step_generator.go:2003-2022).
- Diff: olds = the prior OUTPUTS, old_inputs = prior inputs, news = checked inputs (:1357-1366).
- Create: the checked inputs, no unknowns outside a preview (:1450-1476).
- Read (refresh): properties = prior outputs, inputs = prior inputs (:1601-1609, pkg/resource/
  deploy/step.go:1580-1590); an empty id drops the resource (step.go:1616-1620); then a Diff with
  the refreshed outputs as olds and the old inputs as news (step.go:1699-1708).
- Update: olds = prior outputs, news = new inputs, old_inputs (:1775-1787); Delete: properties =
  outputs, old_inputs (:1895-1902).
Create/Update/Read/Delete reach the GitHub stand-in (tests/github_stub.py) on loopback.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.app_repository import AppRepositoryProvider
from components.repo_commit import RepoCommitProvider
from scoutflo.github.adoption import repo_description
from scoutflo.github.repo_files import SETTINGS_PATH, settings_file
from tests import github_stub
from tests.github_stub import GitHubState

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""UnknownStringValue (pulumi/pulumi pkg/resource/plugin/rpc.go:73): how the engine marshals an
unknown to a provider; a Python program's unknown output arrives as a computed string, so always
this one (rpc.go:190-211, marshalUnknownProperty :289-297)."""
PROJECT = "urn:pulumi:dev::scoutflo-gitops::"
REPO_URN = PROJECT + "scoutflo:index:ChartRepo$pulumi-python:dynamic/scoutflo:AppRepository::web-repo"
COMMIT_URN = PROJECT + "scoutflo:index:ChartRepo$pulumi-python:dynamic:Resource::web-initial"
IMPORT_URN = PROJECT + "scoutflo:index:ChartRepo$pulumi-python:dynamic:Resource::web-import"
ROLE_ARN = "arn:aws:iam::123456789012:role/scoutflo-acme-web-ci"
OLD_ID = 41
"""The id of the repository that exists before it is deleted on GitHub (the stand-in numbers a
created one from its name, so the one created again differs)."""


class Secret:
    """A secret input as the engine holds it (the program marks the token secret)."""

    def __init__(self, value: Any):
        self.value = value


COMPUTED = object()
"""An unknown input as the engine holds it in a preview."""


def _value(v: Any, preview: bool) -> struct_pb2.Value | None:
    if isinstance(v, Secret):
        return _value(v.value, preview)  # KeepSecrets false: the plain value (rpc.go:233-238)
    if v is COMPUTED:
        # KeepUnknowns in a preview: the sentinel; outside one the value is left out (rpc.go:190-200).
        return struct_pb2.Value(string_value=UNKNOWN) if preview else None
    if v is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, int | float):
        return struct_pb2.Value(number_value=float(v))
    if isinstance(v, str):
        return struct_pb2.Value(string_value=v)
    if isinstance(v, dict):
        return struct_pb2.Value(struct_value=marshal(v, preview=preview))
    return struct_pb2.Value(list_value=struct_pb2.ListValue(values=[x for x in (_value(e, preview) for e in v) if x]))


def marshal(props: dict[str, Any], *, preview: bool = False) -> struct_pb2.Struct:
    """MarshalProperties (rpc.go) with this provider's options: secrets plain, unknowns kept only
    in a preview, numbers as doubles."""
    out = struct_pb2.Struct()
    for key, v in props.items():
        value = _value(v, preview)
        if value is not None:
            out.fields[key].CopyFrom(value)
    return out


def unmarshal(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A provider's answer as the engine reads it: the sentinel is an unknown (rpc.go:652-680)."""

    def value(v: struct_pb2.Value) -> Any:
        kind = v.WhichOneof("kind")
        if kind == "string_value":
            return COMPUTED if v.string_value == UNKNOWN else v.string_value
        if kind == "struct_value":
            return unmarshal(v.struct_value)
        if kind == "list_value":
            return [value(x) for x in v.list_value.values]
        if kind == "number_value":
            return v.number_value
        if kind == "bool_value":
            return v.bool_value
        return None

    return {k: value(v) for k, v in struct.fields.items()}


# ------------------------------------------------------------------ the host


class Host:
    def __init__(self, stub: provider_pb2_grpc.ResourceProviderStub, configured: provider_pb2.ConfigureResponse):
        self.stub = stub
        self.configured = configured

    def check(self, urn: str, olds: dict[str, Any], news: dict[str, Any], *, preview: bool) -> Any:
        return self.stub.Check(
            provider_pb2.CheckRequest(
                urn=urn,
                name=urn.rsplit("::", 1)[1],
                type=urn.split("::")[2].rsplit("$", 1)[1],
                olds=marshal(olds, preview=preview),
                news=marshal(news, preview=preview),
            )
        )

    def diff(self, urn: str, id_: str, state: Any, news: dict[str, Any], *, preview: bool) -> Any:
        """`state`: (inputs, outputs) as the engine holds them."""
        inputs, outputs = state
        return self.stub.Diff(
            provider_pb2.DiffRequest(
                id=id_,
                urn=urn,
                name=urn.rsplit("::", 1)[1],
                type=urn.split("::")[2].rsplit("$", 1)[1],
                olds=marshal(outputs, preview=preview),
                old_inputs=marshal(inputs, preview=preview),
                news=marshal(news, preview=preview),
            )
        )

    def create(self, urn: str, inputs: dict[str, Any]) -> tuple[str, tuple[dict[str, Any], dict[str, Any]]]:
        resp = self.stub.Create(provider_pb2.CreateRequest(urn=urn, properties=marshal(inputs), preview=False))
        return resp.id, (inputs, unmarshal(resp.properties))

    def read(self, urn: str, id_: str, state: Any) -> Any:
        inputs, outputs = state
        return self.stub.Read(
            provider_pb2.ReadRequest(id=id_, urn=urn, properties=marshal(outputs), inputs=marshal(inputs))
        )

    def update(self, urn: str, id_: str, state: Any, news: dict[str, Any]) -> dict[str, Any]:
        inputs, outputs = state
        resp = self.stub.Update(
            provider_pb2.UpdateRequest(
                id=id_, urn=urn, olds=marshal(outputs), news=marshal(news), old_inputs=marshal(inputs), preview=False
            )
        )
        return unmarshal(resp.properties)

    def delete(self, urn: str, id_: str, state: Any) -> None:
        inputs, outputs = state
        self.stub.Delete(
            provider_pb2.DeleteRequest(id=id_, urn=urn, properties=marshal(outputs), old_inputs=marshal(inputs))
        )


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    log = (tmp_path_factory.mktemp("host") / "stderr").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=ROOT, stdout=subprocess.PIPE, stderr=log
    )
    assert proc.stdout is not None
    port: list[bytes] = []
    reader = threading.Thread(target=lambda: port.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=60)
    channel = None
    try:
        if not port or not port[0].strip().isdigit():
            log.seek(0)
            raise RuntimeError(f"the dynamic provider host did not start: {log.read().decode(errors='replace')}")
        channel = grpc.insecure_channel(f"127.0.0.1:{int(port[0])}")
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        # The engine configures the default `pulumi-python` provider first (no config of its own).
        configured = stub.Configure(
            provider_pb2.ConfigureRequest(
                variables={},
                args=struct_pb2.Struct(),
                acceptSecrets=True,
                acceptResources=True,
                sends_old_inputs=True,
                sends_old_inputs_to_delete=True,
                type="pulumi:providers:pulumi-python",
                name="default",
                urn=PROJECT + "pulumi:providers:pulumi-python::default",
            ),
            timeout=30,
        )
        yield Host(stub, configured)
    finally:
        if channel is not None:
            channel.close()
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def github() -> Iterator[tuple[GitHubState, str]]:
    """The stand-in, holding the app's repository (marked as tenant acme's, id OLD_ID)."""
    state = GitHubState(repo={"full_name": "o/web", "id": OLD_ID, "description": repo_description("Web", "acme")})
    with github_stub.github_stub(state) as url:
        yield state, url


# ------------------------------------------------------------------ the program's inputs


def repo_inputs(url: str, token: str = github_stub.TOKEN, repo_id: Any = None) -> dict[str, Any]:
    """AppRepository's inputs (components/app_repository.py); `repo_id` known when the program's
    look-up found the repository, absent (None is left out by the SDK) when it is to be created."""
    inputs = {
        "owner": "o",
        "name": "web",
        "tenant": "acme",
        "description": repo_description("Web", "acme"),
        "token": Secret(token),
        "api_url": url,
        "__provider": Secret(serialize_provider(AppRepositoryProvider())),
    }
    if repo_id is not None:
        inputs |= {"repo_id": repo_id, "node_id": f"R_kgDO{repo_id}"}
    return inputs


def commit_inputs(
    url: str, *, settings: Any, repo_id: Any, token: str = github_stub.TOKEN, **more: Any
) -> dict[str, Any]:
    """RepoCommit's inputs as components/chart_repo.py registers the scaffold commit."""
    return {
        "owner": "o",
        "repo": "web",
        "files": {"README.md": "# web\n", "ci/release": "#!/bin/sh\n", SETTINGS_PATH: settings},
        "binary_files": {},
        "executable": ["ci/release"],
        "message": "Scoutflo: chart repository scaffold",
        "token": Secret(token),
        "base": "main",
        "branch": "",
        "pr_title": "",
        "pr_body": "",
        "api_url": url,
        "repo_id": repo_id,
        "__provider": Secret(serialize_provider(RepoCommitProvider())),
        **more,
    }


SETTINGS = settings_file(
    registry_url="oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/x", region="eu-west-1", role_arn=ROLE_ARN
)


def deploy(host: Host, url: str) -> tuple[str, Any, str, Any]:
    """A first `up`: Check and Create of the repository, then of its commit (which waits for it)."""
    news = repo_inputs(url, repo_id=OLD_ID)
    assert not host.check(REPO_URN, {}, news, preview=False).failures
    repo_id, repo = host.create(REPO_URN, news)
    commit_news = commit_inputs(url, settings=SETTINGS, repo_id=repo[1]["repo_id"])
    assert not host.check(COMMIT_URN, {}, commit_news, preview=False).failures
    commit_id, commit = host.create(COMMIT_URN, commit_news)
    return repo_id, repo, commit_id, commit


def changes(resp: Any) -> tuple[bool, list[str]]:
    assert resp.changes in (provider_pb2.DiffResponse.DIFF_SOME, provider_pb2.DiffResponse.DIFF_NONE)
    return resp.changes == provider_pb2.DiffResponse.DIFF_SOME, list(resp.replaces)


# ------------------------------------------------------------------ the scenarios


def test_the_host_takes_no_secrets_and_no_previews(host: Host) -> None:
    """What the requests below and components/app_repository.py's known ids rely on: with
    acceptSecrets false the engine sends secrets plain; without supportsPreview it answers a
    preview's create and update itself, with the inputs as the state."""
    assert host.configured.acceptSecrets is False
    assert host.configured.supportsPreview is False


def test_a_first_preview_accepts_every_unknown(host: Host, github: tuple[GitHubState, str]) -> None:
    """A tenant's first preview (and an app added later): the CI role's ARN and the repository's
    id are outputs of resources being created, so `ci/settings.env` and `repo_id` are unknown."""
    state, url = github
    before = len(state.requests)
    assert not host.check(REPO_URN, {}, repo_inputs(url), preview=True).failures
    news = commit_inputs(url, settings=COMPUTED, repo_id=COMPUTED)
    checked = host.check(COMMIT_URN, {}, news, preview=True)
    assert list(checked.failures) == []
    # The inputs go back with the unknowns still unknown (not a string the engine would show).
    inputs = unmarshal(checked.inputs)
    assert inputs["files"][SETTINGS_PATH] is COMPUTED and inputs["repo_id"] is COMPUTED
    assert inputs["files"]["README.md"] == "# web\n"
    # The import pull request of a public chart, registered beside it.
    imported = commit_inputs(
        url, settings=COMPUTED, repo_id=COMPUTED, branch="scoutflo/import-x-1.0.0", pr_title="Import", pr_body="b"
    )
    assert list(host.check(IMPORT_URN, {}, imported, preview=True).failures) == []
    # A whole map unknown is accepted too; nothing else is.
    assert list(host.check(COMMIT_URN, {}, {**news, "files": COMPUTED}, preview=True).failures) == []
    assert state.requests[before:] == []  # a preview writes (and reads) nothing


def test_known_values_are_checked_as_strictly_in_a_preview(host: Host, github: tuple[GitHubState, str]) -> None:
    _, url = github
    news = commit_inputs(url, settings=COMPUTED, repo_id=COMPUTED)
    bad = {
        **news,
        "files": {"../x": COMPUTED, "a": 5, SETTINGS_PATH: COMPUTED},
        "binary_files": {"b.bin": "not base64!"},
        "token": "",
        "repo_id": "web",
    }
    # A Struct is a protobuf map: the host sees the entries in no set order.
    failures = sorted((f.property, f.reason) for f in host.check(COMMIT_URN, {}, bad, preview=True).failures)
    assert failures == sorted(
        [
            ("files", "'../x' must be a relative path without '.', '..', '\\' or empty parts"),
            ("files", "'a' must be a string"),
            ("binary_files", "'b.bin' must be base64 (the file's bytes)"),
            ("token", "token is required"),
            ("repo_id", "repo_id must be the repository's GitHub id (a positive integer), not 'web'"),
        ]
    )
    empty = {**news, "files": {}, "binary_files": {}}
    assert [f.property for f in host.check(COMMIT_URN, {}, empty, preview=True).failures] == ["files"]
    for wrong in (0, -3, 4.5, True):
        assert [f.property for f in host.check(COMMIT_URN, {}, {**news, "repo_id": wrong}, preview=True).failures] == [
            "repo_id"
        ], wrong
    repo = {**repo_inputs(url), "description": COMPUTED, "token": ""}
    assert [f.property for f in host.check(REPO_URN, {}, repo, preview=True).failures] == ["token"]


def test_an_unknown_identity_is_a_replacement(host: Host, github: tuple[GitHubState, str]) -> None:
    """The engine sends unknowns to Diff in a preview; an identity it cannot compare yet may be
    another one: a replacement (the engine then re-checks the inputs without olds)."""
    _, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    assert changes(
        host.diff(REPO_URN, repo_id, repo, {**repo_inputs(url, repo_id=OLD_ID), "name": COMPUTED}, preview=True)
    ) == (
        True,
        ["name"],
    )
    assert changes(
        host.diff(REPO_URN, repo_id, repo, {**repo_inputs(url, repo_id=OLD_ID), "description": COMPUTED}, preview=True)
    ) == (True, [])
    news = commit_inputs(url, settings=SETTINGS, repo_id=OLD_ID)
    assert changes(host.diff(COMMIT_URN, commit_id, commit, {**news, "branch": COMPUTED}, preview=True)) == (
        True,
        ["branch"],
    )
    # The CI role replaced (its ARN unknown): the committed files are the user's, no change.
    assert changes(
        host.diff(
            COMMIT_URN, commit_id, commit, {**news, "files": {**news["files"], SETTINGS_PATH: COMPUTED}}, preview=True
        )
    ) == (False, [])


def test_up_then_a_second_up_and_a_refresh_change_nothing(host: Host, github: tuple[GitHubState, str]) -> None:
    state, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    assert (repo_id, repo[1]["repo_id"]) == ("web", OLD_ID)
    assert commit_id == "o/web@main"
    files = state.files("main")
    assert (files["ci/release"], files[SETTINGS_PATH]) == (b"#!/bin/sh\n", SETTINGS.encode())
    assert commit[1]["repo_id"] == OLD_ID and "files" not in commit[1]
    writes = state.writes
    # Second `up` (and its preview): the same inputs, nothing unknown (the state knows them).
    for preview in (True, False):
        assert changes(host.diff(REPO_URN, repo_id, repo, repo_inputs(url, repo_id=OLD_ID), preview=preview)) == (
            False,
            [],
        )
        news = commit_inputs(url, settings=SETTINGS, repo_id=OLD_ID)
        assert changes(host.diff(COMMIT_URN, commit_id, commit, news, preview=preview)) == (False, [])
    # `pulumi refresh`: both still there, same state; the refresh's own diff sees no change.
    read = host.read(COMMIT_URN, commit_id, commit)
    assert read.id == commit_id and unmarshal(read.properties) == commit[1]
    refreshed = (commit[0], unmarshal(read.properties))
    assert changes(host.diff(COMMIT_URN, commit_id, (commit[0], refreshed[1]), commit[0], preview=False)) == (False, [])
    read = host.read(REPO_URN, repo_id, repo)
    assert read.id == repo_id and unmarshal(read.properties)["repo_id"] == OLD_ID
    assert state.writes == writes  # no write after the first up


def test_a_token_rotation_is_recorded_without_a_write(
    host: Host, github: tuple[GitHubState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`github:token` rotated, the old one revoked: both resources record the new token (an update
    with no GitHub write), so a later refresh, archive or commit read uses a token that works."""
    state, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    monkeypatch.setattr(github_stub, "TOKEN", "n3w-t0ken")  # the stand-in now takes only the new one
    writes, before = state.writes, len(state.requests)
    repo_news = repo_inputs(url, token="n3w-t0ken", repo_id=OLD_ID)
    commit_news = commit_inputs(url, settings=SETTINGS, repo_id=OLD_ID, token="n3w-t0ken")
    # The preview and the `up` decide alike (what `up --plan` holds the update to).
    for preview in (True, False):
        assert changes(host.diff(REPO_URN, repo_id, repo, repo_news, preview=preview)) == (True, [])
        assert changes(host.diff(COMMIT_URN, commit_id, commit, commit_news, preview=preview)) == (True, [])
    assert host.check(COMMIT_URN, commit[0], commit_news, preview=False).failures == []
    repo_outs = host.update(REPO_URN, repo_id, repo, repo_news)
    commit_outs = host.update(COMMIT_URN, commit_id, commit, commit_news)
    assert repo_outs["token"] == commit_outs["token"] == "n3w-t0ken"
    assert commit_outs == {**commit[1], "token": "n3w-t0ken"}
    assert state.writes == writes
    assert [m for m, *_ in state.requests[before:]] == ["GET"]  # the repository's read, by the update
    # The next refresh reads with the recorded token; the state before the update would fail,
    # and says how to get out of it.
    assert host.read(COMMIT_URN, commit_id, (commit_news, commit_outs)).id == commit_id
    with pytest.raises(grpc.RpcError) as refused:
        host.read(COMMIT_URN, commit_id, commit)
    assert "run `pulumi up` once, which records the current token" in str(refused.value.details())


def test_a_repository_deleted_on_github_gets_its_pipeline_again(host: Host, github: tuple[GitHubState, str]) -> None:
    """Deleted on GitHub, then `pulumi refresh` and `pulumi up`: the repository is created again
    and the scaffold is committed to it, not an empty repository left behind."""
    state, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    state.repo, state.refs, state.pulls = None, {}, []  # deleted on GitHub
    # `pulumi refresh`: both are gone from the state.
    assert host.read(REPO_URN, repo_id, repo).id == ""
    assert host.read(COMMIT_URN, commit_id, commit).id == ""
    # Had the commit stayed in the state (a refresh of the repository alone), its diff notices:
    # the preview of `up` has the new repository's id unknown (the look-up found none), then the
    # `up` knows it.
    created = repo_inputs(url)
    assert not host.check(REPO_URN, {}, created, preview=True).failures
    preview = commit_inputs(url, settings=SETTINGS, repo_id=COMPUTED)
    assert changes(host.diff(COMMIT_URN, commit_id, commit, preview, preview=True)) == (True, ["repo_id"])
    new_id, new_repo = host.create(REPO_URN, created)
    assert new_repo[1]["repo_id"] != OLD_ID and state.repo is not None and state.repo["id"] == new_repo[1]["repo_id"]
    news = commit_inputs(url, settings=SETTINGS, repo_id=new_repo[1]["repo_id"])
    assert changes(host.diff(COMMIT_URN, commit_id, commit, news, preview=False)) == (True, ["repo_id"])
    assert list(host.check(COMMIT_URN, {}, news, preview=False).failures) == []  # the replacement's check
    replaced_id, replaced = host.create(COMMIT_URN, news)
    assert replaced[1]["repo_id"] == new_repo[1]["repo_id"]
    assert state.files("main")[SETTINGS_PATH] == SETTINGS.encode()
    assert set(state.files("main")) == {"README.md", "ci/release", SETTINGS_PATH}
    # delete-replaced: the old commit's delete touches nothing.
    before = len(state.requests)
    host.delete(COMMIT_URN, commit_id, commit)
    assert state.requests[before:] == []
    # The next `up` is a no-op.
    assert changes(host.diff(COMMIT_URN, replaced_id, replaced, news, preview=False)) == (False, [])
    assert changes(
        host.diff(REPO_URN, new_id, new_repo, repo_inputs(url, repo_id=new_repo[1]["repo_id"]), preview=True)
    ) == (False, [])


def test_a_state_from_before_repo_id_is_kept_and_completed_by_refresh(
    host: Host, github: tuple[GitHubState, str]
) -> None:
    """Commits recorded before `repo_id` was an input: the next `up` (preview or not, the id known
    or not) changes nothing; a refresh records the id, or drops the commit when the repository is
    gone, so the `up` after it commits the pipeline again."""
    state, url = github
    _, _, commit_id, commit = deploy(host, url)
    legacy = (
        {k: v for k, v in commit[0].items() if k != "repo_id"},
        {k: v for k, v in commit[1].items() if k != "repo_id"},
    )
    for repo_id, preview in ((OLD_ID, False), (OLD_ID, True), (COMPUTED, True)):
        news = commit_inputs(url, settings=SETTINGS, repo_id=repo_id)
        assert changes(host.diff(COMMIT_URN, commit_id, legacy, news, preview=preview)) == (False, []), repo_id
    read = host.read(COMMIT_URN, commit_id, legacy)
    assert read.id == commit_id and unmarshal(read.properties)["repo_id"] == OLD_ID
    state.repo, state.refs = None, {}
    assert host.read(COMMIT_URN, commit_id, legacy).id == ""


def test_the_name_reused_by_another_repository_drops_the_commit(host: Host, github: tuple[GitHubState, str]) -> None:
    state, url = github
    _, _, commit_id, commit = deploy(host, url)
    assert state.repo is not None
    state.repo["id"] = OLD_ID + 1  # ours deleted, another created under the name
    assert host.read(COMMIT_URN, commit_id, commit).id == ""


def test_removing_the_app_archives_the_repository_and_leaves_the_commit(
    host: Host, github: tuple[GitHubState, str]
) -> None:
    state, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    head = state.refs["main"]
    before = len(state.requests)
    host.delete(COMMIT_URN, commit_id, commit)
    assert state.requests[before:] == []
    host.delete(REPO_URN, repo_id, repo)
    assert state.repo is not None and state.repo["archived"] is True
    assert state.refs["main"] == head


def test_a_rotated_token_and_a_deleted_repository_need_no_refresh(
    host: Host, github: tuple[GitHubState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`github:token` rotated (the old one revoked) and the repository deleted on GitHub before the
    next `up`: a refresh cannot read with the state's tokens, so the `up` must not send the user to
    one (it used to: update answered "deleted on GitHub: run `pulumi refresh`", the refresh
    answered 401 "run `pulumi up` once", a loop). The update creates the repository again and
    records the new token; the commit, whose `repo_id` the preview had unknown, is replaced onto
    it, as planned."""
    state, url = github
    repo_id, repo, commit_id, commit = deploy(host, url)
    monkeypatch.setattr(github_stub, "TOKEN", "n3w-t0ken")
    state.repo, state.refs, state.pulls = None, {}, []  # deleted on GitHub
    # The refresh: the state's token is revoked; both say what gets out of it.
    for urn, id_, recorded in ((REPO_URN, repo_id, repo), (COMMIT_URN, commit_id, commit)):
        with pytest.raises(grpc.RpcError) as refused:
            host.read(urn, id_, recorded)
        assert "run `pulumi up` once, which records the current token" in str(refused.value.details()), urn
    # The program's look-up finds no repository: no known id among the inputs.
    repo_news = repo_inputs(url, token="n3w-t0ken")
    for preview in (True, False):
        assert changes(host.diff(REPO_URN, repo_id, repo, repo_news, preview=preview)) == (True, [])
    # The preview of the update has the inputs as its outputs: repo_id unknown downstream.
    commit_preview = commit_inputs(url, settings=SETTINGS, repo_id=COMPUTED, token="n3w-t0ken")
    assert changes(host.diff(COMMIT_URN, commit_id, commit, commit_preview, preview=True)) == (True, ["repo_id"])
    repo_outs = host.update(REPO_URN, repo_id, repo, repo_news)
    assert state.repo is not None and repo_outs["repo_id"] == state.repo["id"] != OLD_ID
    assert repo_outs["token"] == "n3w-t0ken"
    commit_news = commit_inputs(url, settings=SETTINGS, repo_id=repo_outs["repo_id"], token="n3w-t0ken")
    assert changes(host.diff(COMMIT_URN, commit_id, commit, commit_news, preview=False)) == (True, ["repo_id"])
    _, replaced = host.create(COMMIT_URN, commit_news)
    assert state.files("main")[SETTINGS_PATH] == SETTINGS.encode()
    # A refresh now reads with the recorded token and changes nothing.
    assert host.read(REPO_URN, repo_id, (repo_news, repo_outs)).id == repo_id
    assert host.read(COMMIT_URN, commit_id, replaced).id == commit_id


def test_a_refresh_keeps_commits_the_user_merged_closed_or_undid(host: Host, github: tuple[GitHubState, str]) -> None:
    """`read` checks the repository, not the commit (RepoCommit.read): the import PR merged and
    its branch deleted, or closed unmerged, and the scaffold's files removed on main all keep the
    commits in the state, so the next `up` re-proposes and re-commits nothing."""
    state, url = github
    _, _, commit_id, commit = deploy(host, url)
    imported = commit_inputs(url, settings=SETTINGS, repo_id=OLD_ID, branch="scoutflo/import-x-1.0.0", pr_title="I")
    imported["files"] = {"chart/Chart.yaml": "name: x\n"}
    import_id, import_state = host.create(IMPORT_URN, imported)
    assert state.pulls and "scoutflo/import-x-1.0.0" in state.refs
    # The PR closed (or merged) and its branch deleted; main rewritten without the scaffold.
    state.pulls = []
    del state.refs["scoutflo/import-x-1.0.0"]
    state.refs["main"] = state.commit({}, [], "mine")
    writes, before = state.writes, len(state.requests)
    assert host.read(IMPORT_URN, import_id, import_state).id == import_id
    assert host.read(COMMIT_URN, commit_id, commit).id == commit_id
    assert state.writes == writes and {m for m, *_ in state.requests[before:]} == {"GET"}
