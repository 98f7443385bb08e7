"""A stand-in for GitHub's REST API on 127.0.0.1, strict where GitHub is: a Git object store
(blobs, trees, commits with messages and parents, content-addressed like git), refs with
fast-forward checks, pull requests (one open per head), and the answers real traffic brings:
redirects, rate limits in each header form, 5xx, dropped connections before or after a write
took effect, and per-write failures. Every request is recorded with its Authorization header."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import serve

TOKEN = "t0ken"
AUTO_INIT_README = b"# r\n"


@dataclass(frozen=True)
class Fault:
    """One abnormal answer. kind: 'status' (answer `status` with `headers` and `message`, the
    request not executed), 'drop' (close the connection without an answer, not executed),
    'drop-after' / 'status-after' (execute, then drop / answer `status`), 'slow-after' (execute,
    then say nothing for `message` seconds), 'redirect' (answer
    `status` with Location `location`)."""

    kind: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""
    location: str = ""


@dataclass
class GitHubState:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    # (method, path prefix) -> faults answered, in order, before the real behaviour
    failures: dict[tuple[str, str], list[Fault]] = field(default_factory=dict)
    # the n-th write (0-based, counted over this state's life) gets this fault
    write_faults: dict[int, Fault] = field(default_factory=dict)
    writes: int = 0
    commit_counter: int = 0

    def __post_init__(self) -> None:
        if not self.refs:
            # What auto_init leaves: one parentless commit holding GitHub's README.md.
            self.refs["main"] = self.commit(
                {"README.md": ("100644", self.blob(AUTO_INIT_README))}, [], "Initial commit"
            )

    def put(self, obj: dict[str, Any]) -> str:
        sha = hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        self.objects[sha] = obj
        return sha

    def blob(self, data: bytes) -> str:
        return self.put({"type": "blob", "data": base64.b64encode(data).decode()})

    def commit(self, tree: dict[str, tuple[str, str]], parents: list[str], message: str) -> str:
        # Like GitHub, two identical commit requests give two commits (the committer date differs).
        self.commit_counter += 1
        tree_sha = self.put({"type": "tree", "entries": tree})
        return self.put(
            {"type": "commit", "tree": tree_sha, "parents": parents, "message": message, "n": self.commit_counter}
        )

    def files(self, ref: str) -> dict[str, bytes]:
        """Path -> bytes at a branch (or commit sha)."""
        sha = self.refs.get(ref, ref)
        tree = self.objects[self.objects[sha]["tree"]]["entries"]
        return {p: base64.b64decode(self.objects[b]["data"]) for p, (_, b) in tree.items()}

    def modes(self, ref: str) -> dict[str, str]:
        sha = self.refs.get(ref, ref)
        return {p: m for p, (m, _) in self.objects[self.objects[sha]["tree"]]["entries"].items()}

    def history(self, ref: str) -> list[str]:
        """Commit shas reachable from a branch, newest first (first parents)."""
        out, sha = [], self.refs.get(ref, ref)
        while sha:
            out.append(sha)
            parents = self.objects[sha]["parents"]
            sha = parents[0] if parents else ""
        return out

    def user_commit(self, branch: str, changes: dict[str, bytes], message: str = "user edit") -> str:
        head = self.refs[branch]
        tree = dict(self.objects[self.objects[head]["tree"]]["entries"])
        tree.update({p: ("100644", self.blob(d)) for p, d in changes.items()})
        self.refs[branch] = self.commit(tree, [head], message)
        return self.refs[branch]

    def pull(self, label: str, base: str, title: str = "", body: str = "", repo: str = "r") -> dict[str, Any]:
        """Open a pull request from `label` ("owner:branch"; another owner is a fork) into `base`,
        shaped as GitHub answers one (head.ref, head.label, head.repo.full_name)."""
        owner, ref = label.split(":", 1)
        number = len(self.pulls) + 1
        pr = {
            "number": number,
            "html_url": f"https://github.test/pull/{number}",
            "state": "open",
            "title": title,
            "body": body,
            "base": {"ref": base},
            "head": {"ref": ref, "label": label, "repo": {"full_name": f"{owner}/{repo}"}},
        }
        self.pulls.append(pr)
        return pr

    def is_ancestor(self, old: str, new: str) -> bool:
        todo = [new]
        while todo:
            sha = todo.pop()
            if sha == old:
                return True
            todo.extend(self.objects[sha]["parents"])
        return False


def _handler(state: GitHubState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle + delayed ACK cost 40 ms each.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _drop(self) -> None:
            self.close_connection = True

        def _fault(self, fault: Fault) -> bool:
            """Answer `fault` if it applies before the request runs; True when answered."""
            if fault.kind == "status":
                self._send(fault.status, {"message": fault.message}, fault.headers)
            elif fault.kind == "drop":
                self._drop()
            elif fault.kind == "redirect":
                self._send(fault.status, {"message": "Moved"}, {"Location": fault.location})
            else:
                return False
            return True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            url = urllib.parse.urlsplit(self.path)
            state.requests.append((self.command, self.path, body))
            state.authorizations.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
                return self._send(401, {"message": "Bad credentials"})
            fault = None
            for (method, prefix), queue in state.failures.items():
                if method == self.command and url.path.startswith(prefix) and queue:
                    fault = queue.pop(0)
                    break
            if self.command != "GET":
                fault = state.write_faults.get(state.writes, fault)
                state.writes += 1
            if fault and self._fault(fault):
                return None
            status, answer = self._route(self.command, url, body)
            if fault and fault.kind == "slow-after":
                time.sleep(float(fault.message))  # longer than the client's timeout
                return self._drop()
            if fault and fault.kind == "drop-after":
                return self._drop()
            if fault and fault.kind == "status-after":
                return self._send(fault.status, {"message": fault.message}, fault.headers)
            return self._send(status, answer)

        def _route(self, method: str, url: urllib.parse.SplitResult, body: Any) -> tuple[int, Any]:
            parts = url.path.split("/")  # ['', 'repos', owner, repo, ...]
            rest = "/".join(parts[4:])
            query = urllib.parse.parse_qs(url.query)
            objects = state.objects
            if method == "GET" and rest.startswith("git/ref/heads/"):
                name = urllib.parse.unquote(rest.removeprefix("git/ref/heads/"))
                if name in state.refs:
                    return 200, {"ref": f"refs/heads/{name}", "object": {"sha": state.refs[name], "type": "commit"}}
                return 404, {"message": "Not Found"}
            if method == "GET" and rest == "commits":
                shas = state.history(query["sha"][0])[: int(query.get("per_page", ["30"])[0])]
                return 200, [{"sha": s, "commit": {"message": objects[s]["message"]}} for s in shas]
            if method == "GET" and rest.startswith("git/commits/"):
                c = objects.get(rest.split("/")[-1])
                if not c or c["type"] != "commit":
                    return 404, {"message": "Not Found"}
                parents = [{"sha": p} for p in c["parents"]]
                return 200, {
                    "sha": rest.split("/")[-1],
                    "tree": {"sha": c["tree"]},
                    "message": c["message"],
                    "parents": parents,
                }
            if method == "GET" and rest.startswith("git/trees/"):
                entries = objects[rest.split("/")[-1]]["entries"]
                tree = [{"path": p, "mode": m, "type": "blob", "sha": s} for p, (m, s) in sorted(entries.items())]
                return 200, {"tree": tree, "truncated": False}
            if method == "POST" and rest == "git/blobs":
                assert body["encoding"] == "base64"
                return 201, {"sha": state.blob(base64.b64decode(body["content"]))}
            if method == "POST" and rest == "git/trees":
                entries = dict(objects[body["base_tree"]]["entries"]) if body.get("base_tree") else {}
                for e in body["tree"]:
                    if "content" in e:
                        sha = state.blob(e["content"].encode())
                    elif e["sha"] in objects and objects[e["sha"]]["type"] == "blob":
                        sha = e["sha"]
                    else:
                        return 422, {"message": f"tree.sha {e['sha']} is not a valid blob"}
                    entries[e["path"]] = (e["mode"], sha)
                return 201, {"sha": state.put({"type": "tree", "entries": entries})}
            if method == "POST" and rest == "git/commits":
                tree = objects[body["tree"]]["entries"]
                return 201, {"sha": state.commit(tree, body["parents"], body["message"])}
            if method == "PATCH" and rest.startswith("git/refs/heads/"):
                name = urllib.parse.unquote(rest.removeprefix("git/refs/heads/"))
                if name not in state.refs:
                    return 422, {"message": "Reference does not exist"}
                if not body.get("force") and not state.is_ancestor(state.refs[name], body["sha"]):
                    return 422, {"message": "Update is not a fast forward"}
                state.refs[name] = body["sha"]
                return 200, {"object": {"sha": body["sha"]}}
            if method == "POST" and rest == "git/refs":
                name = body["ref"].removeprefix("refs/heads/")
                if name in state.refs:
                    return 422, {"message": "Reference already exists"}
                state.refs[name] = body["sha"]
                return 201, {"object": {"sha": body["sha"]}}
            if method == "GET" and rest == "pulls":
                # GitHub's `head` filter is "owner:branch" (the head's label); without it, every
                # open pull request of the repository is listed (pulls/pulls#list-pull-requests).
                pulls = [p for p in state.pulls if p["state"] == query.get("state", ["open"])[0]]
                if "head" in query:
                    pulls = [p for p in pulls if p["head"]["label"] == query["head"][0]]
                return 200, pulls
            if method == "POST" and rest == "pulls":
                # A head without "owner:" names a branch of this repository.
                label = body["head"] if ":" in body["head"] else f"{parts[2]}:{body['head']}"
                if any(p["head"]["label"] == label and p["state"] == "open" for p in state.pulls):
                    return 422, {"message": f"A pull request already exists for {label}."}
                return 201, state.pull(label, body["base"], body.get("title", ""), body.get("body", ""), parts[3])
            return 404, {"message": f"stub has no route {method} {url.path}"}

        do_GET = do_POST = do_PATCH = _handle

    return Handler


def github_stub(state: GitHubState) -> contextlib.AbstractContextManager[str]:
    return serve(_handler(state))
