"""A tenant's kubeconfig may not run code or name a backend file (automation/kubeconfig.py).

The refused forms are refused with `invalid-tenant` before anything reaches the (stand-in) CLI;
the accepted form is shown to real client-go (kubectl) against a TLS API server on 127.0.0.1,
next to the exec plugin it would have run had it been let through."""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from automation.__main__ import main as cli
from automation.kubeconfig import MAX_BYTES, KubeconfigError, restrict
from automation.tenant import Tenant, TenantError, tenant_settings
from tests.kubeconfigs import FAKE_KEY, FAKE_PEM, b64, changed, kubeconfig_data, kubeconfig_text

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"


def spec(kubeconfig: Any, **cluster: Any) -> dict[str, Any]:
    return {
        "id": "acme",
        "github": {"owner": "acme-gitops", "token": "ghp_TOKEN"},
        "aws": {"region": "eu-west-1", "accessKeyId": "AKIAACME", "secretAccessKey": "AWS-S3CRET"},
        "cluster": {"kubeconfig": kubeconfig, **cluster},
        "apps": [{"name": "storefront", "chart": "webapp"}],
        "config": {"clusterOidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/X"},
    }


# ------------------------------------------------------------------ accepted


def test_a_token_kubeconfig_reaches_the_provider_as_checked_json() -> None:
    settings = tenant_settings(Tenant.from_dict(spec(kubeconfig_text(token="KUBE-S3CRET"), context="prod")))
    given = json.loads(settings.secrets["kubernetes:kubeconfig"])
    assert given == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "acme-cluster",
                "cluster": {
                    "server": "https://ABCDEF0123.gr7.eu-west-1.eks.amazonaws.com",
                    "certificate-authority-data": b64(FAKE_PEM),
                },
            }
        ],
        "users": [{"name": "deployer", "user": {"token": "KUBE-S3CRET"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "acme-cluster", "user": "deployer"}}],
        "current-context": "prod",
    }
    assert settings.plain["kubernetes:context"] == "prod", "the one context, named for the provider's override"


def test_client_certificate_json_and_optional_fields_are_accepted() -> None:
    data = changed(kubeconfig_data(), "users.0.user", {"client-certificate-data": b64(FAKE_PEM)})
    data = changed(data, "users.0.user.client-key-data", b64(FAKE_KEY))
    data = changed(data, "clusters.0.cluster.tls-server-name", "kubernetes.default")
    data = changed(data, "contexts.0.context.namespace", "apps")
    for key in ("apiVersion", "kind", "current-context", "preferences"):
        data = changed(data, key, ...)
    checked = restrict(json.dumps(data))  # JSON is YAML, and a kubeconfig client-go reads
    assert checked.context == "prod"
    assert json.loads(checked.document)["users"][0]["user"] == {
        "client-certificate-data": b64(FAKE_PEM),
        "client-key-data": b64(FAKE_KEY),
    }
    assert json.loads(checked.document)["clusters"][0]["cluster"]["tls-server-name"] == "kubernetes.default"
    assert "KUBE-SECRET" not in repr(checked)


# ------------------------------------------------------------------ refused, naming the field


FILE_FIELDS = [
    ("users.0.user.tokenFile", "/var/lib/scoutflo/backend-token", r"users\[0\]\.user\.tokenFile: names a file"),
    ("users.0.user.client-certificate", "/etc/backend/cert.pem", r"user\.client-certificate: names a file"),
    ("users.0.user.client-key", "/etc/backend/key.pem", r"user\.client-key: names a file"),
    ("clusters.0.cluster.certificate-authority", "/etc/ssl/ca.pem", r"cluster\.certificate-authority: names a file"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "users.0.user.exec",
            {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh", "args": ["-c", "id"]},
            r"users\[0\]\.user\.exec: runs a command on the backend",
        ),
        ("users.0.user.auth-provider", {"name": "oidc", "config": {}}, r"users\[0\]\.user\.auth-provider: runs"),
        *FILE_FIELDS,
        ("clusters.0.cluster.proxy-url", "socks5://203.0.113.9:1080", r"cluster\.proxy-url: sends"),
        ("clusters.0.cluster.insecure-skip-tls-verify", True, r"insecure-skip-tls-verify: turns off"),
        ("clusters.0.cluster.disable-compression", True, r"cluster\.disable-compression"),
        ("clusters.0.cluster.extensions", [{"name": "client.authentication.k8s.io/exec", "extension": {}}], "exten"),
        ("extensions", [], r"^tenant spec 'cluster\.kubeconfig': extensions: extensions configure exec plugins"),
        ("clusters.0.cluster.LocationOfOrigin", "backend-home/.kube/config", r"LocationOfOrigin"),
        ("users.0.user.as", "system:admin", r"user\.as: impersonation"),
        ("users.0.user.as-groups", ["system:masters"], r"user\.as-groups: impersonation"),
        ("users.0.user.as-uid", "0", r"user\.as-uid: impersonation"),
        ("users.0.user.as-user-extra", {"scopes": ["x"]}, r"user\.as-user-extra: impersonation"),
        ("users.0.user.username", "admin", r"user\.username: basic auth"),
        ("users.0.user.password", "pw", r"user\.password: basic auth"),
        ("users.0.user.Exec", {"command": "id"}, r"user\.Exec: is not a field this backend accepts"),
        ("madeUp", 1, r"madeUp: is not a field this backend accepts here \(accepted: apiVersion"),
        ("contexts.0.madeUp", 1, r"contexts\[0\]\.madeUp"),
        ("clusters.0.cluster.server", "http://k8s.example.test", r"server must be an https:// URL"),
        ("clusters.0.cluster.server", "https://user:pw@k8s.example.test", r"server must not carry credentials"),
        ("clusters.0.cluster.server", "https://k8s.example.test/?x=1", r"server must be scheme, host, port and path"),
        ("clusters.0.cluster.server", "https://k8s.example.test:99999", r"server has an invalid port"),
        ("clusters.0.cluster.server", "https:///path", r"server has no host"),
        ("clusters.0.cluster.certificate-authority-data", "/etc/ssl/ca.pem", r"must be base64 \(the PEM data itself"),
        ("clusters.0.cluster.certificate-authority-data", b64(b"not a cert"), r"must be base64 of PEM"),
        ("clusters.0.cluster.certificate-authority-data", ..., r"certificate-authority-data must be a non-empty"),
        ("users.0.user.token", ..., r"users\[0\]\.user needs a token, or client-certificate-data"),
        ("users.0.user.client-key-data", b64(FAKE_KEY), r"a token or a client certificate, not both"),
        ("users.0.user.token", "two words", r"token holds whitespace or control characters"),
        ("users.0.user.token", 12345, r"token must be a non-empty string"),
        ("contexts.0.context.cluster", "elsewhere", r"context\.cluster must be the cluster 'acme-cluster'"),
        ("contexts.0.context.user", "root", r"context\.user must be the user 'deployer'"),
        ("current-context", "other", r"current-context must be the one context 'prod'"),
        ("preferences", {"colors": True}, r"preferences must be empty"),
        ("apiVersion", "v2", r"apiVersion must be 'v1'"),
        ("clusters", [], r"clusters must hold exactly one entry \(it holds 0\)"),
        ("users", "deployer", r"users must hold exactly one entry"),
        ("contexts.0", "prod", r"contexts\[0\] must be a mapping"),
    ],
)
def test_a_kubeconfig_outside_the_accepted_form_is_refused_by_field(path: str, value: Any, message: str) -> None:
    text = yaml.safe_dump(changed(kubeconfig_data(), path, value))
    with pytest.raises(TenantError, match=message):
        Tenant.from_dict(spec(text))


@pytest.mark.parametrize("list_key", ["clusters", "users", "contexts"])
def test_two_of_anything_are_refused(list_key: str) -> None:
    data = kubeconfig_data()
    data[list_key] = json.loads(json.dumps(data[list_key] * 2))  # two objects, not one aliased
    with pytest.raises(TenantError, match=rf"{list_key} must hold exactly one entry \(it holds 2\)"):
        Tenant.from_dict(spec(yaml.safe_dump(data)))


def test_the_tenants_context_must_be_the_kubeconfigs() -> None:
    with pytest.raises(TenantError, match=r"has the one context 'prod', not 'staging' \(cluster\.context\)"):
        Tenant.from_dict(spec(kubeconfig_text(), context="staging"))


def test_a_path_is_refused_even_when_the_file_is_a_valid_kubeconfig(tmp_path: Path) -> None:
    # pulumi-kubernetes would read this file (util.go L157-L162): the tenant would name a backend file.
    backend_file = tmp_path / "backend-kubeconfig"
    backend_file.write_text(kubeconfig_text(token="BACKEND-OWN"))
    for text in (str(backend_file), "~/.kube/config", "/etc/passwd", "kubeconfig", "C:\\kube\\config"):
        with pytest.raises(TenantError, match="is a path or a single value, not an inline kubeconfig"):
            Tenant.from_dict(spec(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- clusters\n- users\n", "is not a mapping"),
        ("a: &x [1]\nb: *x\n", r"anchors and aliases are not accepted in a kubeconfig \(line 1, column 4\)"),
        (kubeconfig_text() + "---\n" + kubeconfig_text(), "expected a single document"),
        (kubeconfig_text().replace("  user:\n", "  user:\n    token: A\n", 1), "duplicate key 'token'"),
        (kubeconfig_text(token="VALUE").replace("VALUE", "!!binary a2V5"), r"explicit YAML tags \(!!int, !name\)"),
        ("users: [{name: u, user: {token: " + "1" * 4301 + "}}]\n", r"4300"),
        ("[" * 30000, "nested deeper than 8 levels"),
        ("{" * 30000, r"a mapping key that is a list or mapping is no kubeconfig field \(line 1, column 2\)"),
        ("- " * 30000 + "x\n", "nested deeper than 8 levels"),
        ("users: " + "[" * 20 + "]" * 20 + "\n", "nested deeper than 8 levels"),
        ("clusters: [\x00]", "not valid YAML"),
        ("x" * (MAX_BYTES + 1), "larger than 65536 bytes"),
    ],
    ids=[
        "list",
        "alias",
        "documents",
        "duplicate",
        "binary",
        "huge-int",
        "flow-bomb",
        "flow-key-bomb",
        "block-bomb",
        "deep",
        "nul",
        "big",
    ],
)
def test_hostile_documents_are_refused_quickly_with_a_typed_error(text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TenantError, match=message):
        Tenant.from_dict(spec(text))
    assert time.monotonic() - started < 5


def test_a_kubeconfig_shaped_alias_bomb_is_refused_before_it_grows() -> None:
    lines = ["a0: &a0 [token, token, token, token, token, token, token, token, token]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    bomb = kubeconfig_text() + "\n".join(lines) + "\n"
    with pytest.raises(KubeconfigError, match="aliases"):
        restrict(bomb)


def test_a_tenant_cannot_be_built_around_the_check() -> None:
    # Built directly (the backend's own code), not from JSON: the same refusal.
    with pytest.raises(TenantError, match=r"users\[0\]\.user\.exec"):
        Tenant(
            id="acme",
            github_owner="o",
            github_token="t",
            aws_region="eu-west-1",
            aws_access_key_id="AKIA",
            aws_secret_access_key="s",
            kubeconfig=yaml.safe_dump(changed(kubeconfig_data(), "users.0.user.exec", {"command": "id"})),
        )


# ------------------------------------------------------------------ nothing reaches the CLI


def _calls(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "state" / ".fake-pulumi" / "calls").glob("*.json"))


@pytest.mark.parametrize(
    ("path", "value"), [("users.0.user.exec", {"command": "/bin/sh"}), *[(p, v) for p, v, _ in FILE_FIELDS]]
)
def test_a_refused_kubeconfig_never_reaches_the_cli(
    path: str, value: Any, backend: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "acme.json"
    bad.write_text(json.dumps(spec(yaml.safe_dump(changed(kubeconfig_data(), path, value)))))
    for command in (["preview"], ["apply", "--fingerprint", "sha256:x"], ["destroy", "--confirm", "acme"]):
        assert cli([*command, "--tenant", str(bad), *backend, "--json"]) == 6
        out = json.loads(capsys.readouterr().out)
        assert out["error"] == "invalid-tenant" and "cluster.kubeconfig" in out["message"], out
    assert _calls(tmp_path) == [], "the stand-in CLI was never started"
    # The control: the same backend with an accepted kubeconfig does reach the stand-in.
    good = tmp_path / "good.json"
    good.write_text(json.dumps(spec(kubeconfig_text())))
    assert cli(["preview", "--tenant", str(good), *backend, "--json"]) == 0, capsys.readouterr()
    assert _calls(tmp_path)


# ------------------------------------------------------------------ real client-go (kubectl)


def _certificates(tmp_path: Path) -> tuple[bytes, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (CA PEM, cert file, key file)."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            import ipaddress

            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("test-ca", ca_key, "test-ca", ca_key, True)
    server = cert("127.0.0.1", server_key, "test-ca", ca_key, False)
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[str, bytes, list[str]]]:
    ca, cert_file, key_file = _certificates(tmp_path)
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"major": "1", "minor": "35", "gitVersion": "v1.35.0-loopback"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca, seen
    finally:
        server.shutdown()
        server.server_close()


def _kubectl(kubeconfig: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "--raw", "/version", "--request-timeout=10s"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )


@pytest.mark.skipif(not KUBECTL.exists(), reason="make test installs kubectl into .tools/bin")
def test_real_kubectl_uses_the_checked_kubeconfig_and_would_have_run_the_refused_plugin(
    api_server: tuple[str, bytes, list[str]], tmp_path: Path
) -> None:
    url, ca, seen = api_server
    # Accepted: client-go verifies the server with the CA data and sends the token; nothing runs.
    text = kubeconfig_text(token="TENANT-TOKEN", server=url, ca=ca)
    settings = tenant_settings(Tenant.from_dict(spec(text, context="prod")))
    checked = tmp_path / "checked.json"
    checked.write_text(settings.secrets["kubernetes:kubeconfig"])
    result = _kubectl(checked, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gitVersion"] == "v1.35.0-loopback"
    assert seen == ["Bearer TENANT-TOKEN"]

    # The control: the refused exec form, given to client-go as it was, runs the tenant's command
    # (here a marker script) with the caller's environment before the first request.
    marker = tmp_path / "ran"
    script = tmp_path / "plugin.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$HOME" > {marker}\n'
        'echo \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        '"status":{"token":"FROM-PLUGIN"}}\'\n'
    )
    script.chmod(0o755)
    plugin = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script), "interactiveMode": "Never"}
    exec_user = {"exec": plugin}
    hostile = changed(kubeconfig_data(server=url, ca=ca), "users.0.user", exec_user)
    raw = tmp_path / "hostile.yaml"
    raw.write_text(yaml.safe_dump(hostile))
    result = _kubectl(raw, tmp_path)
    assert marker.exists(), result.stderr
    assert marker.read_text().strip() == str(tmp_path), "client-go ran the plugin with the caller's environment"
    assert seen[-1] == "Bearer FROM-PLUGIN"
    marker.unlink()
    with pytest.raises(TenantError, match=r"users\[0\]\.user\.exec: runs a command on the backend"):
        Tenant.from_dict(spec(raw.read_text()))
    assert not marker.exists()
