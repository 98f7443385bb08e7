"""Hostile chart sources on 127.0.0.1 and a harness that runs one fetch per case in a subprocess
with a wall-clock bound and an address-space cap (RLIMIT_AS), so a hang or a memory blow-up fails
that case instead of the test run."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CAP = 1024 * 1024 * 1024

_CHILD = r"""
import resource, sys
# The cap is set by the child itself (preexec_fn is unsafe while the parent runs server threads).
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
import json, ssl, traceback
from pathlib import Path
from scoutflo.charts.errors import ChartError
from scoutflo.charts.fetch import ChartFetcher
from scoutflo.charts.http import Http
from scoutflo.charts.plan import plan_import
args = json.loads(sys.argv[1])
verify = ssl.create_default_context(cafile=args["cafile"]) if args.get("cafile") else True
http = Http(verify=verify, **args["http"])
fetcher = ChartFetcher(Path(args["cache"]), http=http,
                       credentials={k: tuple(v) for k, v in args.get("credentials", {}).items()})
try:
    plain = args.get("plain_http", False)
    got = fetcher.fetch(args["repo"], args["chart"], args.get("constraint", "*"), plain_http=plain)
    plan = plan_import(app="app", mode="vendor", fetched=got, constraint="*", description="")
    print(json.dumps({"ok": got.version, "files": len(plan.files), "requests": http.requests}))
except ChartError as err:
    print(json.dumps({"error": type(err).__name__, "message": str(err), "requests": http.requests}))
except BaseException as err:
    print(json.dumps({"crash": type(err).__name__, "message": str(err)[:500], "trace": traceback.format_exc()[-2000:]}))
"""


def fetch_capped(args: dict[str, Any], *, seconds: float = 30) -> dict[str, Any]:
    """Run one fetch + plan in a child process; the result, or {'timeout': True} / {'crash': ...}."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args), str(MEMORY_CAP)],
            capture_output=True,
            text=True,
            timeout=seconds,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"timeout": True}
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"crash": f"exit {proc.returncode}", "message": proc.stderr[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class Seen:
    """What a hostile server received."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)
    """(scheme, path, Authorization) per request."""

    def authorized(self) -> list[tuple[str, str, str]]:
        return [r for r in self.requests if r[2]]


Route = Callable[[http.server.BaseHTTPRequestHandler, str], None]


def handler_for(routes: Callable[[str], Route | None], seen: Seen) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            seen.requests.append((scheme, self.path, self.headers.get("Authorization") or ""))
            route = routes(self.path)
            if route is None:
                reply(self, 404)
            else:
                route(self, self.path)

    return Handler


def reply(
    h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


class _DualServer(http.server.ThreadingHTTPServer):
    """Speaks TLS or plain HTTP on one port, by the first byte of each connection: lets a test
    redirect https://127.0.0.1:P to http://127.0.0.1:P (same host and port, scheme downgraded)."""

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                first = request.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if first == b"\x16":
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
        super().finish_request(request, client_address)


@contextlib.contextmanager
def hostile_server(
    routes: Callable[[str], Route | None], tls: ssl.SSLContext | None = None
) -> Iterator[tuple[int, Seen]]:
    """A loopback server on a free port; yields (port, what it saw)."""
    seen = Seen()
    server = _DualServer(("127.0.0.1", 0), handler_for(routes, seen))
    server.tls = tls
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made by openssl (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def trickle_body(h: Any, _path: str) -> None:
    """A body promised whole and sent a byte every 0.2 s: only a wall clock ends it."""
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    try:
        for _ in range(200):
            h.wfile.write(b"#")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass
