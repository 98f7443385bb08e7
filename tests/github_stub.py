"""A stand-in for GitHub's REST API on 127.0.0.1: records every request, keeps refs and pulls."""

from __future__ import annotations

import contextlib
import http.server
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import serve


@dataclass
class GitHubState:
    refs: dict[str, str] = field(default_factory=lambda: {"main": "c0"})
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    # (method, path prefix) -> list of (status, headers) answered before the real response
    failures: dict[tuple[str, str], list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    counter: int = 0

    def next_sha(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def _handler(state: GitHubState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            state.requests.append((self.command, self.path, body))
            assert self.headers["Authorization"] == "Bearer t0ken"
            for (method, prefix), queue in state.failures.items():
                if method == self.command and path.startswith(prefix) and queue:
                    status, headers, message = queue.pop(0)
                    return self._send(status, {"message": message}, headers)
            parts = path.split("/")  # ['', 'repos', owner, repo, ...]
            rest = "/".join(parts[4:])
            if self.command == "GET" and rest.startswith("git/ref/heads/"):
                name = urllib.parse.unquote(rest[len("git/ref/heads/") :])
                if name in state.refs:
                    return self._send(200, {"object": {"sha": state.refs[name]}})
                return self._send(404, {"message": "Not Found"})
            if self.command == "GET" and rest.startswith("git/commits/"):
                return self._send(200, {"sha": rest.split("/")[-1], "tree": {"sha": "tree-" + rest.split("/")[-1]}})
            if self.command == "POST" and rest == "git/trees":
                return self._send(201, {"sha": state.next_sha("tree")})
            if self.command == "POST" and rest == "git/commits":
                return self._send(201, {"sha": state.next_sha("commit")})
            if self.command == "PATCH" and rest.startswith("git/refs/heads/"):
                state.refs[urllib.parse.unquote(rest[len("git/refs/heads/") :])] = body["sha"]
                return self._send(200, {})
            if self.command == "POST" and rest == "git/refs":
                name = body["ref"].removeprefix("refs/heads/")
                if name in state.refs:
                    return self._send(422, {"message": "Reference already exists"})
                state.refs[name] = body["sha"]
                return self._send(201, {})
            if self.command == "GET" and rest == "pulls":
                query = urllib.parse.parse_qs(url.query)
                head = query["head"][0].split(":", 1)[1]
                return self._send(200, [p for p in state.pulls if p["head"] == head and p["state"] == "open"])
            if self.command == "POST" and rest == "pulls":
                number = len(state.pulls) + 1
                pr = {"number": number, "html_url": f"https://github.test/pull/{number}", "state": "open", **body}
                state.pulls.append(pr)
                return self._send(201, pr)
            return self._send(404, {"message": f"stub has no route {self.command} {path}"})

        do_GET = do_POST = do_PATCH = _handle

    return Handler


def github_stub(state: GitHubState) -> contextlib.AbstractContextManager[str]:
    return serve(_handler(state))
