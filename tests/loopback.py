"""Real services on 127.0.0.1 for the tests: Debian's docker-registry and a static HTTP server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def oci_registry(root: Path) -> Iterator[str]:
    """A docker-registry (distribution) instance on a free loopback port; yields host:port."""
    port = free_port()
    config = root / "registry.yml"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    # A file, not a pipe: every 404 (each "is this version free?" probe) logs ~1 KB at level
    # error, and an unread pipe would fill after some 60 of them and block the registry.
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = (root / "registry.log").read_text(errors="replace")
                    raise RuntimeError(f"docker-registry did not start: {err}") from None
                time.sleep(0.1)
        yield host
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def tags(host: str, repository: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/{repository}/tags/list", timeout=5) as resp:
            return sorted(json.load(resp).get("tags") or [])
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return []
        raise


@contextlib.contextmanager
def serve(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run an HTTP handler on a free loopback port; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def static_http(directory: Path) -> contextlib.AbstractContextManager[str]:
    """Serve `directory` over HTTP on a free loopback port; yields the base URL."""
    return serve(functools.partial(_QuietHandler, directory=str(directory)))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
