"""Hostile review of the tenant's kubeconfig and the Automation edge (issue 16 §2, §5): what a
tenant spec or an event log can still do that is not a typed error naming the field, and what a
refusal must never print back (the tenant's own credentials)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from automation.__main__ import main as cli
from automation.kubeconfig import KubeconfigError, restrict
from automation.tenant import Tenant, TenantError, tenant_settings
from tests.kubeconfigs import kubeconfig_text, tenant_spec

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "S3CRET-TENANT-TOKEN"


def spec(**changes: Any) -> dict[str, Any]:
    return tenant_spec(token=TOKEN, **changes)


def with_token_line(line: str) -> str:
    text = kubeconfig_text(token=TOKEN)
    assert f"token: {TOKEN}" in text
    return text.replace(f"token: {TOKEN}", line)


# ------------------------------------------------------------------ the kubeconfig's refusals


@pytest.mark.parametrize(
    "line",
    [
        f"token: !!timestamp {TOKEN}",  # was an AttributeError traceback out of PyYAML's constructor
        f"token: !!int {TOKEN}",  # was "invalid literal for int() ... '<the token>'"
        f"token: !!float {TOKEN}",
        f"token: !!bool {TOKEN}",
        f"token: !!binary {TOKEN}=",
        f"token: !!str {TOKEN}",
        f"token: !custom {TOKEN}",
        f"token: &anchor {TOKEN}",
        "token: !!map {}",
    ],
)
def test_explicit_tags_and_anchors_are_refused_without_echoing_the_value(line: str) -> None:
    # `kubectl config view --raw` never writes a tag or an anchor; PyYAML's constructors, given
    # one, either crash or quote the scalar (the token) in their message.
    with pytest.raises(TenantError, match=r"cluster\.kubeconfig': .*(tags|anchors) .* not accepted") as err:
        Tenant.from_dict(spec(cluster={"kubeconfig": with_token_line(line)}))
    assert TOKEN not in str(err.value)


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
@pytest.mark.parametrize(
    ("line", "where"),
    [
        (f"token: {TOKEN}: x", r"line 18, column 31"),
        (f'token: "{TOKEN}', r"line 19, column 1"),
        (f"token: [{TOKEN}", r"line 19, column 1"),
        (f"token: {TOKEN}\x07", r"character 45[0-9]"),
    ],
)
def test_a_yaml_syntax_error_names_the_line_not_its_text(
    line: str, where: str, libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML's pure-Python reader (the fallback without libyaml) quotes the offending line in its
    # marks (yaml/error.py Mark.get_snippet): with a token on it, the refusal would print the token.
    if not libyaml:
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
    with pytest.raises(KubeconfigError, match=rf"^the kubeconfig is not valid YAML: .* at {where}$") as err:
        restrict(with_token_line(line))
    assert TOKEN not in str(err.value)


@pytest.mark.parametrize(
    "server",
    ["https://[x", "https://k8s[.example.test", "https://a]b", "https://[fe80::1%25eth0", "https://h＃example"],
)
def test_a_server_python_cannot_split_is_a_typed_refusal(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # urllib.parse.urlsplit raises a bare ValueError on an unbalanced '[' or ']' (Invalid IPv6
    # URL) and on a host NFKC-normalizing to a separator: was a traceback out of `python -m automation`.
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec(cluster={"kubeconfig": kubeconfig_text(server=server)})))
    assert cli(["preview", "--tenant", str(path)]) == 6
    err = capsys.readouterr().err
    assert "clusters[0].cluster.server is not a URL" in err and "Traceback" not in err, err


# ------------------------------------------------------------------ the rest of the tenant spec


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"github": {"owner": "acme-gitops", "token": "ghp_\ud800"}}, "'github.token'"),
        ({"aws": {"region": "eu-west-1\udc80", "accessKeyId": "A", "secretAccessKey": "S"}}, "'aws.region'"),
        ({"apps": [{"name": "storefront", "chart": "webapp", "values": {"k\udfff": 1}}]}, "'apps'"),
        ({"config": {"ecrPrefix": "x\ud800"}}, "'config'"),
    ],
)
def test_a_lone_surrogate_is_refused_before_the_cli_starts(
    changes: dict[str, Any], field: str, backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # JSON's "\ud800" escape reads as a lone surrogate, which no UTF-8 text holds: it used to
    # reach `config set` and fail there ('utf-8' codec can't encode...), after the stack was made.
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec(**changes)))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 6
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "invalid-tenant" and field in out["message"] and "surrogate" in out["message"], out
    assert not (tmp_path / "state" / ".fake-pulumi").exists(), "the stand-in CLI was never started"
    assert not (tmp_path / "t" / "tenants" / "acme").exists(), "no stack workspace was made"


@pytest.mark.parametrize("field", ["github_token", "aws_access_key_id", "aws_secret_access_key", "github_owner"])
def test_a_tenant_built_in_code_names_its_credentials_too(field: str) -> None:
    # The CLI passes Backend.env (the state bucket's and KMS key's AWS credentials) to every
    # provider; pulumi-aws given an empty aws:accessKey falls back to the environment's.
    values: dict[str, Any] = {
        "id": "acme",
        "github_owner": "o",
        "github_token": "t",
        "aws_region": "eu-west-1",
        "aws_access_key_id": "AKIA",
        "aws_secret_access_key": "s",
        "kubeconfig": kubeconfig_text(),
    }
    with pytest.raises(TenantError, match=field):
        Tenant(**(values | {field: ""}))


@pytest.mark.parametrize(
    "key",
    [
        "kubernetes:kubeconfig",
        "kubernetes:context",
        "kubernetes:cluster",
        "kubernetes:renderYamlToDirectory",
        "kubernetes:helmReleaseSettings",
        "kubernetes:kubeClientSettings",
        "aws:sharedCredentialsFiles",
        "aws:profile",
        "aws:assumeRoles",
        "aws:endpoints",
        "github:appAuth",
        "github:baseUrl",
        "github:token",
        "pulumi:disable-default-providers",
    ],
)
def test_no_provider_key_is_tenant_settable(key: str) -> None:
    # Each of these names a backend file, runs code, or sends a backend credential elsewhere
    # (pulumi-kubernetes provider.go Configure; terraform-provider-aws/-github provider schemas).
    with pytest.raises(TenantError, match="without a namespace"):
        tenant_settings(Tenant.from_dict(spec(config={key: "x"})))


# ------------------------------------------------------------------ what is printed


def _dynamic_event(name: str, inputs: dict[str, Any]) -> str:
    urn = f"urn:pulumi:acme::scoutflo::pulumi-python:dynamic:Resource::{name}"
    new = {"type": "pulumi-python:dynamic:Resource", "urn": urn, "custom": True, "inputs": inputs}
    meta = {"op": "create", "urn": urn, "type": "pulumi-python:dynamic:Resource", "provider": "", "new": new}
    return json.dumps({"sequence": 1, "timestamp": 1, "resourcePreEvent": {"metadata": meta}})


def test_a_lone_surrogate_in_an_event_log_is_shown_escaped(tmp_path: Path) -> None:
    # A real stdout (not pytest's capture) encodes strictly: print() raised UnicodeEncodeError.
    log = tmp_path / "events.jsonl"
    log.write_text(_dynamic_event("shop\ud800", {"short": "x\udc80", "long": "line\n" * 30 + "\udfff\n"}) + "\n")
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "automation", "diff", "--events", str(log)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "shop\\ud800" in result.stdout and "x\\udc80" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["diff", "--events", "x.jsonl", "\x1b]0;pwned\x07"],  # unrecognized arguments: given as is
        ["diff", "--events", "x.jsonl", "--json\u202e", "\x9b2J"],
    ],
)
def test_argument_errors_are_escaped_too(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err, err
    assert [ch for ch in err if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf")] == [], err


def test_the_providers_temporary_files_stay_in_the_tenants_workspace(
    backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pulumi-kubernetes writes the kubeconfig, token and all, to os.CreateTemp("", "kubeconfig")
    # for Helm at every Configure and never removes it (provider.go L886, util.go L124-L131):
    # with the inherited TMPDIR (/tmp) every tenant's token piled up there.
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(spec()))
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 0, capsys.readouterr()
    workspace = tmp_path / "t" / "tenants" / "acme"
    calls = [json.loads(p.read_text()) for p in sorted((tmp_path / "state" / ".fake-pulumi" / "calls").glob("*.json"))]
    assert calls and {c["env"].get("TMPDIR") for c in calls} == {str(workspace / "tmp")}
    assert (workspace / "tmp").stat().st_mode & 0o777 == 0o700
    left = workspace / "tmp" / "kubeconfig123456"
    left.write_text("a previous run's kubeconfig")
    assert cli(["preview", "--tenant", str(path), *backend, "--json"]) == 0, capsys.readouterr()
    assert not left.exists(), "emptied at the next operation, under the tenant's lock"
