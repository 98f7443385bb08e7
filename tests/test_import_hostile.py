"""Hostile chart sources on loopback: each case runs in a child process with a time bound and a
memory cap (tests/hostile.py), and must end in a typed error that names the source, quickly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import ssl
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoutflo.charts.fetch import ChartFetcher, FetchError
from scoutflo.charts.http import Http
from tests.hostile import Route, fetch_capped, hostile_server, reply, self_signed, trickle_body

FAST = {"deadline": 4.0, "timeout": 2.0, "attempts": 3, "backoff": 0.05, "max_wait": 0.5}


def chart_tgz(name: str = "demo", version: str = "1.0.0", extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    files = {f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode(), **(extra or {})}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = chart_tgz()
DIGEST = hashlib.sha256(ARCHIVE).hexdigest()


def index_yaml(url: str = "demo-1.0.0.tgz", digest: str = DIGEST, version: str = "1.0.0") -> bytes:
    entry = {"version": version, "urls": [url], "digest": digest}
    return yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": [entry]}}).encode()


def const(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Route:
    return lambda h, _path: reply(h, status, body, headers)


def trickle_headers(h: Any, _path: str) -> None:
    try:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            h.wfile.write(b"X-Slow: a\r\n")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def broken_status(h: Any, _path: str) -> None:
    h.wfile.write(b"HTTP/1.1 OK-ish\r\n\r\n")
    h.close_connection = True


def incomplete(h: Any, _path: str) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"apiVersion: v1\n")
    h.wfile.flush()
    h.connection.shutdown(socket.SHUT_RDWR)
    h.close_connection = True


def huge_index(h: Any, _path: str) -> None:
    size = 40 * 1024 * 1024
    h.send_response(200)
    h.send_header("Content-Length", str(size))
    h.end_headers()
    try:
        for _ in range(size // 65536):
            h.wfile.write(b"#" * 65535 + b"\n")
    except OSError:
        pass


# A 600-byte index whose `version` is nine levels of nine aliases: 9**9 leaves when expanded.
ALIAS_BOMB = b"""apiVersion: v1
x: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
entries:
  demo:
  - version: *i
    urls: [demo-1.0.0.tgz]
    digest: 0000000000000000000000000000000000000000000000000000000000000000
"""

HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def manifest(layer: dict[str, Any] | None = None) -> bytes:
    default = {"mediaType": HELM_LAYER, "digest": f"sha256:{DIGEST}", "size": len(ARCHIVE)}
    return json.dumps({"schemaVersion": 2, "layers": [default if layer is None else layer]}).encode()


def tags_page(link: str | None) -> Route:
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    return const(200, json.dumps({"name": "charts/demo", "tags": ["1.0.0"]}).encode(), headers)


def endless_pages(h: Any, path: str) -> None:
    n = int(path.rpartition("last=")[2] or 0) if "last=" in path else 0
    tags_page(f"/v2/charts/demo/tags/list?n=1&last={n + 1}")(h, path)


HTTP_CASES: dict[str, tuple[dict[str, Route], str]] = {
    # name: (routes by path prefix, expected message fragment)
    "retry-after of days": ({"/index.yaml": const(429, b"", {"Retry-After": "999999"})}, "HTTP 429"),
    "retry-after as a far HTTP date": (
        {"/index.yaml": const(503, b"", {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})},
        "HTTP 503",
    ),
    "body trickled a byte at a time": ({"/index.yaml": trickle_body}, "deadline"),
    "headers trickled a line at a time": ({"/index.yaml": trickle_headers}, "deadline"),
    "broken status line": ({"/index.yaml": broken_status}, "unreachable after 3 attempts"),
    "redirect loop": ({"/index.yaml": const(302, b"", {"Location": "/index.yaml"})}, "redirects more than 5 times"),
    "connection cut mid-body (IncompleteRead)": ({"/index.yaml": incomplete}, "unreachable after 3 attempts"),
    "index.yaml of 40 MiB": ({"/index.yaml": huge_index}, "larger than"),
    "index.yaml alias bomb": ({"/index.yaml": const(200, ALIAS_BOMB)}, "aliases"),
    "index.yaml entries as a list": ({"/index.yaml": const(200, b"entries: [1, 2]\n")}, "no 'entries' mapping"),
    "index.yaml chart entries as a string": ({"/index.yaml": const(200, b"entries: {demo: abc}\n")}, "must be a list"),
    "index.yaml urls as a string": (
        {
            "/index.yaml": const(
                200, b"entries: {demo: [{version: 1.0.0, urls: demo.tgz, digest: " + DIGEST.encode() + b"}]}"
            )
        },
        "no download URL",
    ),
    "index.yaml without a digest": ({"/index.yaml": const(200, index_yaml(digest=""))}, "no sha256 digest"),
    "index.yaml with a numeric digest": (
        {"/index.yaml": const(200, index_yaml().replace(DIGEST.encode(), b"12345"))},
        "no sha256 digest",
    ),
    "version with stray whitespace": ({"/index.yaml": const(200, index_yaml(version="1.0.0 "))}, "no version matches"),
    "index.yaml of several documents": ({"/index.yaml": const(200, index_yaml() + b"---\n" + index_yaml())}, "single"),
}

OCI_CASES: dict[str, tuple[dict[str, Route], str]] = {
    "tag list linking to itself": (
        {"/v2/charts/demo/tags/list": tags_page("/v2/charts/demo/tags/list?n=1000")},
        "repeats",
    ),
    "tag list without end": ({"/v2/charts/demo/tags/list": endless_pages}, "more than 50 pages"),
    "tag list linking to another host": (
        {"/v2/charts/demo/tags/list": tags_page("http://localhost:9/v2/charts/demo/tags/list?last=x")},
        "leaves",
    ),
    "tag list not JSON": ({"/v2/charts/demo/tags/list": const(200, b"<html>")}, "tag list is not JSON"),
    "tags of the wrong type": ({"/v2/charts/demo/tags/list": const(200, b'{"tags": "1.0.0"}')}, "list of strings"),
    "manifest not JSON": (
        {"/v2/charts/demo/tags/list": tags_page(None), "/v2/charts/demo/manifests/": const(200, b"\xff\xfe")},
        "manifest is not JSON",
    ),
    "manifest layers of the wrong type": (
        {"/v2/charts/demo/tags/list": tags_page(None), "/v2/charts/demo/manifests/": const(200, b'{"layers": {}}')},
        "no 'layers' list",
    ),
    "layer without a digest": (
        {
            "/v2/charts/demo/tags/list": tags_page(None),
            "/v2/charts/demo/manifests/": const(200, manifest({"mediaType": HELM_LAYER, "size": 1})),
        },
        "no sha256 digest",
    ),
    "layer size as a string": (
        {
            "/v2/charts/demo/tags/list": tags_page(None),
            "/v2/charts/demo/manifests/": const(
                200, manifest({"mediaType": HELM_LAYER, "digest": f"sha256:{DIGEST}", "size": "1"})
            ),
        },
        "non-negative integer",
    ),
    "token answer not JSON": (
        {
            "/v2/": const(401, b"", {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:{port}/token"'}),
            "/token": const(200, b"nope"),
        },
        "token answer is not JSON",
    ),
}


def router(routes: dict[str, Route], port_holder: list[int]) -> Callable[[str], Route | None]:
    def pick(path: str) -> Route | None:
        for prefix, route in sorted(routes.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                return route
        return None

    return pick


def run_case(routes: dict[str, Route], oci: bool, tmp_path: Path) -> tuple[dict[str, Any], float, int]:
    if "/token" in routes:  # the challenge names the server's own port
        challenge = routes["/v2/"]

        def challenge_with_port(h: Any, path: str) -> None:
            port = h.server.server_address[1]
            reply(h, 401, b"", {"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token"'})

        routes = {**routes, "/v2/": challenge_with_port}
        del challenge
    with hostile_server(router(routes, [])) as (port, _seen):
        repo = f"oci://127.0.0.1:{port}/charts" if oci else f"http://127.0.0.1:{port}"
        start = time.monotonic()
        result = fetch_capped(
            {"repo": repo, "chart": "demo", "plain_http": oci, "cache": str(tmp_path / "cache"), "http": FAST},
            seconds=40,
        )
        return result, time.monotonic() - start, port


@pytest.mark.parametrize(("routes", "fragment"), list(HTTP_CASES.values()), ids=list(HTTP_CASES))
def test_hostile_helm_repository_fails_fast_and_typed(routes: dict[str, Route], fragment: str, tmp_path: Path) -> None:
    result, elapsed, port = run_case(routes, oci=False, tmp_path=tmp_path)
    assert result.get("error") == "FetchError", result
    assert fragment in result["message"], result
    assert re.search(rf"chart demo (1.0.0 )?from http://127.0.0.1:{port}\b", result["message"]), "names the source"
    assert elapsed < 20


@pytest.mark.parametrize(("routes", "fragment"), list(OCI_CASES.values()), ids=list(OCI_CASES))
def test_hostile_oci_registry_fails_fast_and_typed(routes: dict[str, Route], fragment: str, tmp_path: Path) -> None:
    result, elapsed, port = run_case(routes, oci=True, tmp_path=tmp_path)
    assert result.get("error") == "FetchError", result
    assert fragment in result["message"], result
    assert re.search(rf"chart demo (1.0.0 )?from oci://127.0.0.1:{port}/charts", result["message"]), "names the source"
    assert elapsed < 20
    assert result["requests"] <= 60, "pagination stops at the page cap"


# ------------------------------------------------------------------ credentials: their origin only


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


BASIC = "Basic " + base64.b64encode(b"robot:pa55").decode()


def quick(tmp_path: Path, **kw: Any) -> ChartFetcher:
    http = Http(attempts=1, deadline=10, timeout=5, verify=kw.pop("verify", True))
    return ChartFetcher(tmp_path / "cache", http=http, **kw)


def test_https_never_downgrades_even_on_the_same_host_and_port(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], tmp_path: Path
) -> None:
    def route(path: str) -> Route | None:
        return lambda h, p: reply(h, 302, b"", {"Location": f"http://127.0.0.1:{h.server.server_address[1]}{p}"})

    server_ctx, client_ctx = tls
    with hostile_server(route, tls=server_ctx) as (port, seen):
        fetcher = quick(tmp_path, verify=client_ctx, credentials={f"127.0.0.1:{port}": ("robot", "pa55")})
        with pytest.raises(FetchError, match=r"redirects to plain http; refused"):
            fetcher.fetch(f"https://127.0.0.1:{port}", "demo", "*")
    assert seen.requests == [("https", "/index.yaml", BASIC)], "the password never crossed plain http"


def test_helm_repository_credentials_go_to_their_origin_only(tmp_path: Path) -> None:
    """chartRegistryCredentials serve classic repositories too (Helm's httpgetter sends Basic auth
    only when scheme and host:port equal the repository's: helm/helm pkg/getter/httpgetter.go:81)."""
    other_archive = chart_tgz("demo2")
    with hostile_server(lambda p: const(200, other_archive)) as (other, other_seen):

        def route(path: str) -> Route | None:
            def answer(h: Any, p: str) -> None:
                if h.headers.get("Authorization") != BASIC:
                    return reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="charts"'})
                if p == "/index.yaml":
                    # demo is served here (same origin), demo2 from another port (another origin)
                    entries = yaml.safe_load(index_yaml())["entries"]
                    entries["demo2"] = [
                        {
                            "version": "1.0.0",
                            "urls": [f"http://127.0.0.1:{other}/demo.tgz"],
                            "digest": hashlib.sha256(other_archive).hexdigest(),
                        }
                    ]
                    return reply(h, 200, yaml.safe_dump({"apiVersion": "v1", "entries": entries}).encode())
                return reply(h, 200, ARCHIVE)

            return answer

        with hostile_server(route) as (port, seen):
            creds = {f"127.0.0.1:{port}": ("robot", "pa55")}
            assert quick(tmp_path, credentials=creds).fetch(f"http://127.0.0.1:{port}", "demo", "*").version == "1.0.0"
            assert quick(tmp_path, credentials=creds).fetch(f"http://127.0.0.1:{port}", "demo2", "*").version == "1.0.0"
    assert {auth for _s, _p, auth in seen.requests} == {BASIC}
    assert other_seen.requests and not other_seen.authorized(), "another port is another origin"


def test_cache_is_keyed_by_the_credential(tmp_path: Path) -> None:
    def route(path: str) -> Route | None:
        def answer(h: Any, p: str) -> None:
            if h.headers.get("Authorization") != BASIC:
                return reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="charts"'})
            return reply(h, 200, index_yaml() if p == "/index.yaml" else ARCHIVE)

        return answer

    with hostile_server(route) as (port, _seen):
        repo = f"http://127.0.0.1:{port}"
        assert quick(tmp_path, credentials={f"127.0.0.1:{port}": ("robot", "pa55")}).fetch(repo, "demo", "*")
        with pytest.raises(FetchError, match="requires credentials"):
            quick(tmp_path).fetch(repo, "demo", "*")
        with pytest.raises(FetchError, match="HTTP 401"):
            quick(tmp_path, credentials={f"127.0.0.1:{port}": ("robot", "wrong")}).fetch(repo, "demo", "*")


def test_only_verified_resolutions_are_cached(tmp_path: Path) -> None:
    bad = index_yaml(digest="a" * 64)
    with hostile_server(lambda p: const(200, bad if p == "/index.yaml" else ARCHIVE)) as (port, _seen):
        with pytest.raises(FetchError, match="digest mismatch"):
            quick(tmp_path).fetch(f"http://127.0.0.1:{port}", "demo", "*")
    assert not list((tmp_path / "cache").rglob("*.json")), "a resolution that failed verification is not kept"
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_retry_after_is_clamped_in_process(tmp_path: Path) -> None:
    waits: list[float] = []
    with hostile_server(lambda p: const(429, b"", {"Retry-After": "999999"})) as (port, _seen):
        http = Http(attempts=3, sleep=waits.append, max_wait=7)
        with pytest.raises(FetchError, match=rf"chart demo from http://127.0.0.1:{port}: .*HTTP 429"):
            ChartFetcher(tmp_path / "c", http=http).fetch(f"http://127.0.0.1:{port}", "demo", "*")
    assert waits == [7, 7]


def test_a_challenge_from_where_a_redirect_led_gets_no_credentials(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], tmp_path: Path
) -> None:
    """The registry's password goes to the token realm the *registry* names (distribution's token
    spec; oras-go registry/remote/auth/client.go fetches the token with the registry's credential
    from whatever realm the registry's challenge names). A 401 answered by the host a redirect led
    to is not the registry's challenge: its realm would receive the registry's password."""
    server_ctx, client_ctx = tls
    with hostile_server(lambda p: const(200, b'{"token": "t"}'), tls=server_ctx) as (realm, realm_seen):
        challenge = {"WWW-Authenticate": f'Bearer realm="https://127.0.0.1:{realm}/token"'}
        with hostile_server(lambda p: const(401, b"", challenge)) as (other, _other_seen):

            def route(path: str) -> Route | None:
                return lambda h, p: reply(h, 307, b"", {"Location": f"http://127.0.0.1:{other}{p}"})

            with hostile_server(route) as (port, _seen):
                fetcher = quick(tmp_path, verify=client_ctx, credentials={f"127.0.0.1:{port}": ("robot", "pa55")})
                with pytest.raises(FetchError, match="HTTP 401"):
                    fetcher.fetch(f"oci://127.0.0.1:{port}/charts", "demo", "*", plain_http=True)
    assert not realm_seen.requests, "the registry's password never went to a realm it did not name"


def test_cache_writes_are_private_and_never_follow_a_planted_name(tmp_path: Path) -> None:
    """A chart fetched with credentials is not world-readable in the cache, and the temporary name
    a write goes through is unique and created exclusively: neither another thread of this process
    (run_many's tenants share a pid) nor a planted symlink can make two writes meet."""
    import os

    from scoutflo.charts.fetch import _write_atomic

    target = tmp_path / "cache" / "blobs" / "x"
    target.parent.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    for pid in {os.getpid(), 0}:
        (target.parent / f"x.{pid}.part").symlink_to(victim)
    _write_atomic(target, b"chart")
    assert victim.read_bytes() == b"mine"
    assert target.read_bytes() == b"chart" and not target.is_symlink()
    assert target.stat().st_mode & 0o077 == 0, "private: the chart may have been fetched with credentials"


def test_content_encoding_is_decoded_under_the_cap(tmp_path: Path) -> None:
    """httpx decodes `Content-Encoding` before a body cap can see it, a whole network chunk at a
    time and any number of stacked codings (httpx 0.28.1 `_decoders.py` GZipDecoder/MultiDecoder):
    a 500-byte answer encoded `gzip, gzip` became 64 MiB in memory before a 1 MiB cap refused it.
    Only one gzip/deflate layer is accepted, decoded here with the cap as zlib's max_length."""
    import gzip
    import tracemalloc

    from scoutflo.charts.http import Http

    bomb = gzip.compress(gzip.compress(b"\0" * (64 * 1024 * 1024), 9), 9)
    single = gzip.compress(index_yaml())
    routes = {
        "/bomb": const(200, bomb, {"Content-Encoding": "gzip, gzip"}),
        "/single-bomb": const(200, gzip.compress(b"\0" * (8 * 1024 * 1024)), {"Content-Encoding": "gzip"}),
        "/br": const(200, b"x", {"Content-Encoding": "br"}),
        "/ok": const(200, single, {"Content-Encoding": "gzip"}),
    }
    with hostile_server(lambda p: routes.get(p)) as (port, _seen):
        http = Http(attempts=1, deadline=10)
        tracemalloc.start()
        try:
            for path, message in (("/bomb", "content-encoding"), ("/single-bomb", "larger than"), ("/br", "'br'")):
                with http.operation(), pytest.raises(FetchError, match=message):
                    http.get(f"http://127.0.0.1:{port}{path}", source="s", limit=1024 * 1024)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        with http.operation():
            assert http.get(f"http://127.0.0.1:{port}/ok", source="s", limit=1024 * 1024).body == index_yaml()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while refusing"


def test_no_repr_holds_a_password(tmp_path: Path) -> None:
    """Tracebacks, logs and `pytest` show reprs: the fetcher's credentials, its tokens, a source
    and a Credential must print without the password or its Basic form."""
    from scoutflo.charts.http import Credential, Origin

    def route(path: str) -> Route | None:
        return lambda h, p: reply(h, 200, index_yaml() if p == "/index.yaml" else ARCHIVE)

    with hostile_server(route) as (port, _seen):
        fetcher = quick(tmp_path, credentials={f"127.0.0.1:{port}": ("robot", "pa55")})
        fetcher.fetch(f"http://127.0.0.1:{port}", "demo", "*")
        src = fetcher._source(f"http://127.0.0.1:{port}", "demo", False)
        fetcher._tokens[(src.origin, src.identity)] = "Bearer t0ken"
    shown = repr(fetcher) + repr(src) + repr(Credential(Origin.of("https://h"), BASIC))
    assert "pa55" not in shown and BASIC.split()[1] not in shown and "t0ken" not in shown


@pytest.mark.parametrize(
    ("repo", "key", "applies"),
    [
        ("https://h.example", "h.example:443", True),
        ("https://h.example:443", "h.example", True),
        ("oci://h.example:443/ns", "h.example", True),
        ("http://h.example", "h.example:80", True),
        ("https://h.example:8443", "h.example", False),
        ("http://h.example", "h.example:443", False),
        ("https://[::1]:5000", "[::1]:5000", True),
    ],
)
def test_credential_keys_name_one_origin_with_or_without_its_default_port(
    repo: str, key: str, applies: bool, tmp_path: Path
) -> None:
    """`https://h` and `https://h:443` are one origin (RFC 6454 4): a key spelled either way
    serves both, and never another port or scheme."""
    src = quick(tmp_path, credentials={key: ("robot", "pa55")})._source(repo, "demo", False)
    assert (src.basic == BASIC) is applies


def test_only_the_requested_charts_entries_are_built_from_index_yaml(tmp_path: Path) -> None:
    """A dense index (3 bytes a scalar) costs PyYAML ~150 bytes of memory per byte when built
    whole: 7 MiB, well under the 32 MiB index cap, is a gigabyte (the 1.2 MiB here: ~146 MB).
    Real indexes (grafana-community's gh-pages index.yaml: 2.1 MiB, 105,801 scalars) are mostly
    other charts and versions, so only entries.<chart> is built; the rest is parsed and dropped,
    aliases still refused everywhere."""
    import subprocess
    import sys

    dup = b"  dup:\n  - {a: 1, a: 2}\n"  # another chart's mistake is not this chart's
    dense = b"  other:\n  - x: [" + b"ab," * 400_000 + b"ab]\n"
    body = tmp_path / "index.yaml"
    body.write_bytes(index_yaml().replace(b"entries:\n", b"entries:\n" + dense))
    probe = (
        "import resource, sys; from scoutflo.charts import safe_yaml\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "found, value = safe_yaml.load_at(open(sys.argv[1], 'rb').read(), 'idx', ('entries', 'demo'))\n"
        "assert found == 2 and value[0]['version'] == '1.0.0', value\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(body)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 80, f"{out.stdout.strip()} MB to pick one chart out of a 1.2 MiB index"

    good = index_yaml().replace(b"entries:\n", b"entries:\n" + dup)
    with hostile_server(lambda p: const(200, good if p == "/index.yaml" else ARCHIVE)) as (port, _seen):
        assert quick(tmp_path).fetch(f"http://127.0.0.1:{port}", "demo", "*").version == "1.0.0"
