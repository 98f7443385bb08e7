"""A stand-in for GitHub's REST API on 127.0.0.1, strict where GitHub is: a Git object store
(blobs, trees, commits with messages and parents, content-addressed like git), refs with
fast-forward checks, pull requests (one open per head), one repository with its metadata
(created, read, updated, archived; the accounts that may own it), and the answers real traffic
brings: redirects, rate limits in each header form, 5xx, dropped connections before or after a
write took effect, and per-write failures. Every request is recorded with its Authorization header.

The state holds ONE repository (`repo`, None until a create when the state starts without one).
Every route answers only its own name (or `also_named`); another name is a 404, as on GitHub.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import http.server
import json
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import serve

TOKEN = "t0ken"
AUTO_INIT_README = b"# r\n"
LOGIN = "me"
"""The token's own (user) account: GET /user."""
READ_ONLY = "Repository was archived so is read-only."
"""GitHub's 403 for a write to an archived repository (the wording clients match on, e.g.
conda-forge's bot and hub4j/github-api's GHRepository.doArchive javadoc quote it)."""

# GitHub's values for what a create request leaves out (docs.github.com/en/rest/repos/repos
# "Create an organization repository": private false, has_issues/has_projects/has_wiki true,
# allow_squash_merge/allow_merge_commit/allow_rebase_merge true, delete_branch_on_merge false).
REPO_DEFAULTS: dict[str, Any] = {
    "description": None,
    "private": False,
    "has_issues": True,
    "has_wiki": True,
    "has_projects": True,
    "allow_merge_commit": True,
    "allow_rebase_merge": True,
    "allow_squash_merge": True,
    "delete_branch_on_merge": False,
    "archived": False,
    "topics": [],
}
# Left out of an archived repository's answer: terraform-provider-github reads them only when
# the repository is not archived ("GitHub API doesn't respond following parameters when
# repository is archived", github/resource_github_repository.go:846-863). Modelled so, the
# stricter of the two possibilities.
HIDDEN_WHEN_ARCHIVED = ("allow_merge_commit", "allow_rebase_merge", "allow_squash_merge", "delete_branch_on_merge")
_BOOLEANS = {k for k, v in REPO_DEFAULTS.items() if isinstance(v, bool)}
# Body parameters the stub accepts, a subset of the documented ones (docs.github.com/en/rest/
# repos/repos "Create an organization repository", "Create a repository for the authenticated
# user", "Update a repository"). GitHub ignores a name it does not know; the stub refuses it
# (stricter): a misspelt setting would otherwise pass unnoticed.
CREATE_FIELDS = {"name", "description", "auto_init", *_BOOLEANS} - {"archived", "topics"}
UPDATE_FIELDS = {"description", "archived", "default_branch", *_BOOLEANS} - {"topics"}


def _description_problem(description: Any) -> str | None:
    """GitHub's refusals of a repository description: over 350 characters ("Description cannot be
    more than 350 characters", quoted in Ylianst/MeshCentral#4724) or holding a control character
    ("description control characters are not allowed", github/VisualStudio#1777, r-lib/gh#92)."""
    if not isinstance(description, str):
        return None
    if len(description) > 350:
        return "description is too long (maximum is 350 characters)"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in description):
        return "description control characters are not allowed"
    return None


REF_DOCS = "https://docs.github.com/rest/git/refs"
SIGNATURE_RULE = "required_signatures"
"""The "Require signed commits" rule's type in GitHub's ruleset answers (docs.github.com/rest/
repos/rules, "Get rules for a branch"; REQUIRED_SIGNATURES in octokit/graphql-schema's
RepositoryRuleType)."""
UNSIGNED_REFUSAL = "Repository rule violations found\n\nCommits must have verified signatures.\n\n"
"""GitHub's refusal of a ref write bringing an unsigned commit onto a branch that requires signed
ones: the git refusal's lines (`GH013: Repository rule violations found for refs/heads/…`,
`- Commits must have verified signatures.`, quoted in vercel/workflow#1867, transloadit/uppy#6442)
as the REST API words them ("Repository rule violations found\n\nChanges must be made through a
pull request." for another rule, satisfactory-factories/application#67); status 409 as reported
for Git Data API commits (grafana/pyroscope-dotnet#386)."""


@dataclass(frozen=True)
class Ruleset:
    """An active branch ruleset (repository's or organisation's) holding `rules` for branches
    matching `include` (fnmatch patterns; "~DEFAULT_BRANCH" for the default branch, as GitHub's
    ruleset conditions name it)."""

    id: int
    source: str
    source_type: str = "Organization"
    include: tuple[str, ...] = ("~DEFAULT_BRANCH",)
    rules: tuple[str, ...] = (SIGNATURE_RULE,)


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
    login: str | None = LOGIN
    """The token's account (GET /user); POST /user/repos creates there. None: a GitHub App
    installation token, which GET /user answers 403 "Resource not accessible by integration"
    (quoted in actions/create-github-app-token#258)."""
    accounts: dict[str, str] = field(default_factory=lambda: {"o": "Organization", LOGIN: "User"})
    """GitHub accounts by login -> "User" or "Organization" (GET /users/{login})."""
    repo: dict[str, Any] | None = field(default_factory=lambda: {"full_name": "o/r"})
    """The repository's metadata (GitHub's answer to GET /repos/{owner}/{repo}); fields left
    out take GitHub's defaults. None: no repository, and no refs, until a create."""
    default_branch: str = "main"
    """The branch auto_init creates (the owner's default branch name setting)."""
    moved: set[str] = field(default_factory=set)
    """Former full names of `repo` (renamed or transferred): GitHub redirects them to it."""
    empty_window: int = 0
    """Git Data and commit-list requests answered 409 "Git Repository is empty." after a create
    with auto_init, before its first commit shows: GitHub makes that commit after the create
    answers (callers that write right after a create, e.g. github/github-mcp-server's
    prepareBranchBaseCommit, match that 409 on GetRef). 0 = the commit shows at once (lenient)."""
    empty_reads: int = 0
    also_named: set[str] = field(default_factory=set)
    """Other full names (lower case) whose Git Data and pull-request routes serve `repo`: the
    target of a redirect a test fakes with a Fault. Any other name's answer 404, as GitHub's do."""
    rulesets: list[Ruleset] = field(default_factory=list)
    """Active rulesets over the repository's branches (only "Require signed commits" is enforced)."""
    drafts: bool = True
    """Whether the repository's plan has draft pull requests (not in private repositories on
    GitHub Free and Pro, docs.github.com "Changing the stage of a pull request"): without, POST
    /pulls with `draft: true` answers 422 "Draft pull requests are not supported in this
    repository." (the message quoted in SWE-agent/SWE-agent#179) and convertPullRequestToDraft
    answers an error (its wording here is the stub's own)."""
    signs_api_commits: bool = False
    """Whether GitHub signs a commit made with POST /git/commits: only for a GitHub App or bot whose
    request sets no author, committer or signature ("Signature verification for bots",
    docs.github.com/authentication/managing-commit-signature-verification/about-commit-signature-
    verification); a personal access token's commits are unsigned (False)."""

    def __post_init__(self) -> None:
        if self.repo is not None:
            given = dict(self.repo)  # the caller's dict is left as it was
            self.repo = self.new_repo(given.pop("full_name"), **given)
            if not self.refs:
                # What auto_init leaves: one parentless commit holding GitHub's README.md.
                self.refs[self.repo["default_branch"]] = self.commit(
                    {"README.md": ("100644", self.blob(AUTO_INIT_README))}, [], "Initial commit"
                )

    def new_repo(self, full_name: str, **fields: Any) -> dict[str, Any]:
        """A repository's metadata as GitHub answers it (fields not given take GitHub's defaults)."""
        owner, name = full_name.split("/")
        number = int(hashlib.sha1(full_name.lower().encode()).hexdigest()[:7], 16)
        repo: dict[str, Any] = {
            "id": number,
            "node_id": f"R_kgDO{number}",
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "type": self.accounts.get(owner, "User")},
            "html_url": f"https://github.test/{full_name}",
            "default_branch": self.default_branch,
            **REPO_DEFAULTS,
            **fields,
        }
        repo["visibility"] = "private" if repo["private"] else "public"
        return repo

    def answer(self) -> dict[str, Any]:
        assert self.repo is not None
        if self.repo["archived"]:
            return {k: v for k, v in self.repo.items() if k not in HIDDEN_WHEN_ARCHIVED}
        return dict(self.repo)

    def names_repo(self, owner: str, name: str) -> bool:
        return self.repo is not None and self.repo["full_name"].lower() == f"{owner}/{name}".lower()

    def create(self, owner: str, body: Any) -> tuple[int, Any]:
        """POST /orgs/{org}/repos or /user/repos, into `owner`'s account."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return 422, {"message": "Repository creation failed.", "errors": [{"field": "name", "code": "missing"}]}
        if unknown := set(body) - CREATE_FIELDS:
            return 422, {"message": f"stub: unknown create parameters {sorted(unknown)}"}
        if bad := [k for k in set(body) & (_BOOLEANS | {"auto_init"}) if not isinstance(body[k], bool)]:
            return 422, {"message": f"Invalid request. For 'properties/{bad[0]}', {body[bad[0]]!r} is not a boolean."}
        if problem := _description_problem(body.get("description")):
            return 422, {"message": "Repository creation failed.", "errors": [problem]}
        full_name = f"{owner}/{body['name']}"
        if self.names_repo(owner, body["name"]):
            # GitHub's answer (errors[].message), e.g. integrations/terraform-provider-github
            # issues quoting "Repository creation failed." / "name already exists on this account".
            return 422, {
                "message": "Repository creation failed.",
                "errors": [
                    {
                        "resource": "Repository",
                        "code": "custom",
                        "field": "name",
                        "message": "name already exists on this account",
                    }
                ],
            }
        if self.repo is not None:
            return 400, {"message": f"stub: holds one repository ({self.repo['full_name']}), asked for {full_name}"}
        fields = {k: v for k, v in body.items() if k not in ("name", "auto_init")}
        self.repo = self.new_repo(full_name, **fields)
        self.moved.discard(full_name.lower())
        if body.get("auto_init"):
            self.empty_reads = self.empty_window
            readme = f"# {body['name']}\n".encode()
            self.refs[self.default_branch] = self.commit(
                {"README.md": ("100644", self.blob(readme))}, [], "Initial commit"
            )
        return 201, self.answer()

    def update(self, body: Any) -> tuple[int, Any]:
        """PATCH /repos/{owner}/{repo}. An archived repository takes nothing but being unarchived
        (alone: the stricter reading; what GitHub does with other fields sent along is not
        documented)."""
        assert self.repo is not None
        if not isinstance(body, dict) or set(body) - UPDATE_FIELDS:
            return 422, {"message": f"stub: unknown update parameters in {body!r}"}
        if bad := [k for k in set(body) & _BOOLEANS if not isinstance(body[k], bool)]:
            return 422, {"message": f"Invalid request. For 'properties/{bad[0]}', {body[bad[0]]!r} is not a boolean."}
        if problem := _description_problem(body.get("description")):
            return 422, {"message": "Validation Failed", "errors": [problem]}
        if self.repo["archived"] and body != {"archived": False}:
            return 403, {"message": READ_ONLY}
        if "default_branch" in body and body["default_branch"] not in self.refs:
            return 422, {"message": "Validation Failed", "errors": [{"field": "default_branch", "code": "invalid"}]}
        self.repo.update(body)
        self.repo["visibility"] = "private" if self.repo["private"] else "public"
        return 200, self.answer()

    def put(self, obj: dict[str, Any]) -> str:
        sha = hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        self.objects[sha] = obj
        return sha

    def blob(self, data: bytes) -> str:
        # Named by git's blob id, as GitHub names it (the sha of `blob <size>\0<data>`): a client
        # may name a blob the repository holds by the id it computes itself (GET /git/trees
        # answers those ids; docs.github.com/rest/git/blobs, "Create a blob": the sha answered).
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self.objects[sha] = {"type": "blob", "data": base64.b64encode(data).decode()}
        return sha

    def commit(
        self, tree: dict[str, tuple[str, str]], parents: list[str], message: str, *, verified: bool = True
    ) -> str:
        """`verified`: signed and verified (what GitHub makes itself, auto_init's commit, is)."""
        # Like GitHub, two identical commit requests give two commits (the committer date differs).
        self.commit_counter += 1
        tree_sha = self.put({"type": "tree", "entries": tree})
        return self.put(
            {
                "type": "commit",
                "tree": tree_sha,
                "parents": parents,
                "message": message,
                "n": self.commit_counter,
                "verified": verified,
            }
        )

    def branch_rules(self, branch: str) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/rules/branches/{branch} (docs.github.com/rest/repos/rules)."""
        default = self.repo["default_branch"] if self.repo else ""
        return [
            {"type": rule, "ruleset_source_type": rs.source_type, "ruleset_source": rs.source, "ruleset_id": rs.id}
            for rs in self.rulesets
            if any(fnmatch.fnmatchcase(branch, default if p == "~DEFAULT_BRANCH" else p) for p in rs.include)
            for rule in rs.rules
        ]

    def reachable(self, sha: str) -> set[str]:
        seen, todo = set(), [sha]
        while todo:
            if (current := todo.pop()) not in seen:
                seen.add(current)
                todo.extend(self.objects[current]["parents"])
        return seen

    def ref_refusal(self, branch: str, new: str) -> str | None:
        """A ruleset's refusal of moving (or creating) `branch` to `new`. Which commits are checked
        is GitHub's ("Require signed commits", available-rules-for-rulesets): on an update every
        commit of the range (old..new); on a creation only those no other branch reaches."""
        if not any(r["type"] == SIGNATURE_RULE for r in self.branch_rules(branch)):
            return None
        if branch in self.refs:
            known = self.reachable(self.refs[branch])
        else:
            known = set().union(*(self.reachable(sha) for name, sha in self.refs.items() if name != branch))
        brought = self.reachable(new) - known
        return UNSIGNED_REFUSAL if any(not self.objects[c].get("verified") for c in brought) else None

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

    def pull(
        self, label: str, base: str, title: str = "", body: str = "", repo: str = "r", draft: bool = False
    ) -> dict[str, Any]:
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
            "merged_at": None,
            "draft": draft,
            "node_id": f"PR_stub{number}",
        }
        self.pulls.append(pr)
        return pr

    def pull_answer(self, pr: dict[str, Any]) -> dict[str, Any]:
        """A pull request as GitHub answers it: `head.sha` follows the branch while it is open and
        stays where it was once closed (the commits stay readable: GitHub keeps every pull
        request's head as refs/pull/<n>/head, "Checking out pull requests locally",
        docs.github.com/en/pull-requests/how-tos/review-pull-requests/checking-out-pull-requests-locally)."""
        answer = json.loads(json.dumps(pr))
        if pr["state"] == "open" and pr["head"]["ref"] in self.refs and ":" in pr["head"]["label"]:
            answer["head"]["sha"] = self.refs[pr["head"]["ref"]]
        return answer

    def close_pull(self, number: int) -> None:
        pr = self.pulls[number - 1]
        pr["head"]["sha"] = self.refs.get(pr["head"]["ref"], pr["head"].get("sha"))
        pr["state"] = "closed"

    def merge_pull(self, number: int) -> str:
        """Squash-merge a pull request as the app repositories do (squash only, branch deleted on
        merge: scoutflo/github/repository.py SETTINGS): one new commit on the base holding the
        head's tree, `merged_at` set, the head branch deleted."""
        pr = self.pulls[number - 1]
        head = self.refs[pr["head"]["ref"]]
        base = pr["base"]["ref"]
        tree = dict(self.objects[self.objects[head]["tree"]]["entries"])
        self.refs[base] = self.commit(tree, [self.refs[base]], f"{pr['title']} (#{number})\n\n{pr['body']}")
        self.close_pull(number)
        pr["merged_at"] = f"2026-12-06T00:00:{number:02d}Z"
        del self.refs[pr["head"]["ref"]]
        return self.refs[base]

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
        _location = ""
        """The Location of the answer being made (a moved repository's redirect)."""

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
            self._location = ""
            status, answer = self._route(self.command, url, body)
            if fault and fault.kind == "slow-after":
                time.sleep(float(fault.message))  # longer than the client's timeout
                return self._drop()
            if fault and fault.kind == "drop-after":
                return self._drop()
            if fault and fault.kind == "status-after":
                return self._send(fault.status, {"message": fault.message}, fault.headers)
            return self._send(status, answer, {"Location": self._location} if self._location else None)

        def _accounts(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
            """/user, /users/{login}, /orgs/{org}/repos, /user/repos, /repositories/{id}."""
            path = "/".join(parts)
            if method == "GET" and path == "/user":
                if state.login is None:
                    return 403, {"message": "Resource not accessible by integration"}
                return 200, {"login": state.login, "type": "User"}
            if method == "GET" and len(parts) == 3 and parts[1] == "users":
                found = [(k, v) for k, v in state.accounts.items() if k.lower() == parts[2].lower()]
                if not found:
                    return 404, {"message": "Not Found"}
                return 200, {"login": found[0][0], "type": found[0][1]}
            if method == "POST" and path == "/user/repos":
                if state.login is None:
                    return 403, {"message": "Resource not accessible by integration"}
                return state.create(state.login, body)
            if method == "POST" and len(parts) == 4 and parts[1] == "orgs" and parts[3] == "repos":
                org = [k for k, v in state.accounts.items() if k.lower() == parts[2].lower() and v == "Organization"]
                return state.create(org[0], body) if org else (404, {"message": "Not Found"})
            if method == "GET" and len(parts) == 3 and parts[1] == "repositories":
                if state.repo is None or str(state.repo["id"]) != parts[2]:
                    return 404, {"message": "Not Found"}
                return 200, state.answer()
            return None

        def _repository(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
            """/repos/{owner}/{repo}[/...]: what exists, where it moved, what an archive refuses."""
            full_name = f"{parts[2]}/{parts[3]}".lower()
            if full_name in state.moved and state.repo is not None:
                # A former name redirects to /repositories/{id}: 301 for a GET, 307 otherwise
                # (developer.github.com/changes/2015-04-17-preview-repository-redirects).
                host = self.headers.get("Host", "127.0.0.1")
                location = f"http://{host}/repositories/{state.repo['id']}{'/'.join(['', *parts[4:]])}"
                self._location = location
                return (301 if method == "GET" else 307), {"message": "Moved Permanently", "url": location}
            if state.repo is None:
                return 404, {"message": "Not Found"}
            if len(parts) == 4:
                if not state.names_repo(parts[2], parts[3]):
                    return 404, {"message": "Not Found"}
                if method == "GET":
                    return 200, state.answer()
                if method == "PATCH":
                    return state.update(body)
                return 404, {"message": f"stub has no route {method} {'/'.join(parts)}"}
            # Another repository's Git Data or pull requests: GitHub answers 404 (the stand-in
            # holds one repository); serving them would hide a request sent to the wrong name.
            if not state.names_repo(parts[2], parts[3]) and f"{parts[2]}/{parts[3]}".lower() not in state.also_named:
                return 404, {"message": "Not Found"}
            if method != "GET" and state.repo["archived"]:
                return 403, {"message": READ_ONLY}
            return None

        def _graphql(self, body: Any) -> tuple[int, Any]:
            """POST /graphql, for the two mutations an upgrade sends together: updatePullRequest
            (title, body) and convertPullRequestToDraft, each addressed by the pull request's
            node_id (octokit/graphql-schema schema.graphql:60579 UpdatePullRequestInput, :6762
            ConvertPullRequestToDraftInput), executed one after the other in the order written
            (graphql-spec spec/Section 6 -- Execution.md:640-641). GitHub answers 200 with an
            `errors` list for a request it cannot run; anything else is refused that way here."""
            query = str((body or {}).get("query") or "")
            variables = (body or {}).get("variables") or {}
            fields = re.findall(r"(\w+)\s*:\s*(\w+)\(input:\s*\{([^}]*)\}\)", query)
            if not query.lstrip().startswith("mutation") or not fields:
                return 200, {"errors": [{"message": "stub: only updatePullRequest / convertPullRequestToDraft"}]}
            data: dict[str, Any] = {}
            errors: list[dict[str, Any]] = []
            for alias, name, args in fields:
                given = dict(re.findall(r"(\w+):\s*\$(\w+)", args))
                values = {k: variables.get(v) for k, v in given.items()}
                pr = next((p for p in state.pulls if p.get("node_id") == values.get("pullRequestId")), None)
                allowed = {"updatePullRequest": {"pullRequestId", "title", "body"}}.get(name, {"pullRequestId"})
                if name not in ("updatePullRequest", "convertPullRequestToDraft") or set(given) - allowed:
                    errors.append({"message": f"stub: unsupported {name}({sorted(given)})", "path": [alias]})
                    data[alias] = None
                elif pr is None or pr["state"] != "open":
                    errors.append(
                        {"type": "NOT_FOUND", "message": "Could not resolve to a PullRequest", "path": [alias]}
                    )
                    data[alias] = None
                elif name == "updatePullRequest":
                    pr.update({k: values[k] for k in ("title", "body") if k in values})
                    data[alias] = {"pullRequest": {"number": pr["number"]}}
                elif not state.drafts:
                    errors.append({"message": "stub: this repository has no draft pull requests", "path": [alias]})
                    data[alias] = None
                else:
                    pr["draft"] = True
                    data[alias] = {"pullRequest": {"isDraft": True}}
            return 200, {"data": data, **({"errors": errors} if errors else {})}

        def _route(self, method: str, url: urllib.parse.SplitResult, body: Any) -> tuple[int, Any]:
            if method == "POST" and url.path == "/graphql":
                return self._graphql(body)
            parts = url.path.split("/")  # ['', 'repos', owner, repo, ...]
            if parts[1] != "repos" or len(parts) < 4:
                return self._accounts(method, parts, body) or (
                    404,
                    {"message": f"stub has no route {method} {url.path}"},
                )
            if answered := self._repository(method, parts, body):
                return answered
            rest = "/".join(parts[4:])
            query = urllib.parse.parse_qs(url.query)
            if state.empty_reads and (rest.startswith("git/") or rest == "commits"):
                state.empty_reads -= 1
                return 409, {"message": "Git Repository is empty."}
            objects = state.objects
            if method == "GET" and rest.startswith("git/ref/heads/"):
                name = urllib.parse.unquote(rest.removeprefix("git/ref/heads/"))
                if name in state.refs:
                    return 200, {"ref": f"refs/heads/{name}", "object": {"sha": state.refs[name], "type": "commit"}}
                return 404, {"message": "Not Found"}
            if method == "GET" and rest == "commits":
                # Every commit reachable from `sha`, every parent followed, newest first, as
                # `git log` lists them (repos/commits#list-commits); the stand-in's commits are
                # numbered in the order they were made, which stands for their dates.
                start = state.refs.get(query["sha"][0], query["sha"][0])
                reachable = sorted(state.reachable(start), key=lambda c: -int(objects[c].get("n", 0)))
                shas = reachable[: int(query.get("per_page", ["30"])[0])]
                # Each with its tree, as GitHub's list answers it (`commit.tree.sha`).
                return 200, [
                    {"sha": s, "commit": {"message": objects[s]["message"], "tree": {"sha": objects[s]["tree"]}}}
                    for s in shas
                ]
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
                # git/trees#get-a-tree: each blob with its `size` in bytes.
                tree = [
                    {"path": p, "mode": m, "type": "blob", "sha": s, "size": len(base64.b64decode(objects[s]["data"]))}
                    for p, (m, s) in sorted(entries.items())
                ]
                return 200, {"tree": tree, "truncated": False}
            if method == "POST" and rest == "git/blobs":
                assert body["encoding"] == "base64"
                return 201, {"sha": state.blob(base64.b64decode(body["content"]))}
            if method == "GET" and rest.startswith("git/blobs/"):
                # docs.github.com/rest/git/blobs "Get a blob": content base64, encoding, sha, size.
                blob = objects.get(rest.split("/")[-1])
                if not blob or blob["type"] != "blob":
                    return 404, {"message": "Not Found"}
                size = len(base64.b64decode(blob["data"]))
                return 200, {"sha": rest.split("/")[-1], "content": blob["data"], "encoding": "base64", "size": size}
            if method == "POST" and rest == "git/trees":
                entries = dict(objects[body["base_tree"]]["entries"]) if body.get("base_tree") else {}
                for e in body["tree"]:
                    if e.get("type", "blob") != "blob":
                        return 422, {"message": f"stub: tree entries of type {e.get('type')!r} are not modelled"}
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
                signed = state.signs_api_commits and not {"author", "committer", "signature"} & set(body)
                return 201, {"sha": state.commit(tree, body["parents"], body["message"], verified=signed)}
            if method == "GET" and rest.startswith("rules/branches/"):
                return 200, state.branch_rules(urllib.parse.unquote(rest.removeprefix("rules/branches/")))
            if method == "PATCH" and rest.startswith("git/refs/heads/"):
                name = urllib.parse.unquote(rest.removeprefix("git/refs/heads/"))
                if name not in state.refs:
                    return 422, {"message": "Reference does not exist"}
                if not body.get("force") and not state.is_ancestor(state.refs[name], body["sha"]):
                    return 422, {"message": "Update is not a fast forward"}
                if refusal := state.ref_refusal(name, body["sha"]):
                    return 409, {"message": refusal, "documentation_url": REF_DOCS + "#update-a-reference"}
                state.refs[name] = body["sha"]
                return 200, {"object": {"sha": body["sha"]}}
            if method == "POST" and rest == "git/refs":
                name = body["ref"].removeprefix("refs/heads/")
                if name in state.refs:
                    return 422, {"message": "Reference already exists"}
                if refusal := state.ref_refusal(name, body["sha"]):
                    return 409, {"message": refusal, "documentation_url": REF_DOCS + "#create-a-reference"}
                state.refs[name] = body["sha"]
                return 201, {"object": {"sha": body["sha"]}}
            if method == "POST" and rest.startswith("branches/") and rest.endswith("/rename"):
                # repos/branches#rename-a-branch: the ref moves to the new name, and the default
                # branch follows when it was the one renamed (what BranchDefault's rename relies on).
                old = urllib.parse.unquote(rest.removeprefix("branches/").removesuffix("/rename"))
                new = body.get("new_name") if isinstance(body, dict) else None
                if old not in state.refs:
                    return 404, {"message": "Branch not found"}
                if not isinstance(new, str) or not new or new in state.refs:
                    return 422, {"message": "Validation Failed"}
                state.refs[new] = state.refs.pop(old)
                if state.repo["default_branch"] == old:
                    state.repo["default_branch"] = new
                return 201, {"name": new, "commit": {"sha": state.refs[new]}}
            if method == "GET" and rest == "pulls":
                # GitHub's `head` filter is "owner:branch" (the head's label); without it, every
                # open pull request of the repository is listed (pulls/pulls#list-pull-requests).
                pulls = [p for p in state.pulls if p["state"] == query.get("state", ["open"])[0]]
                if "head" in query:
                    pulls = [p for p in pulls if p["head"]["label"] == query["head"][0]]
                # Newest first (the default sort, `created` descending), one page of `per_page`.
                pulls = list(reversed(pulls))[: int(query.get("per_page", ["30"])[0])]
                return 200, [state.pull_answer(p) for p in pulls]
            if method == "GET" and re.fullmatch(r"pulls/\d+", rest):
                number = int(rest.split("/")[1])
                if not 0 < number <= len(state.pulls):
                    return 404, {"message": "Not Found"}
                return 200, state.pull_answer(state.pulls[number - 1])
            if method == "PATCH" and rest.startswith("pulls/"):
                # pulls/pulls#update-a-pull-request: title, body, state, base, maintainer_can_modify;
                # no `draft` (a draft is changed through GraphQL only).
                number = int(rest.split("/")[1])
                if not 0 < number <= len(state.pulls):
                    return 404, {"message": "Not Found"}
                if unknown := set(body) - {"title", "body", "state", "base", "maintainer_can_modify"}:
                    return 422, {"message": f"stub: unknown update parameters {sorted(unknown)}"}
                pr = state.pulls[number - 1]
                pr.update({k: v for k, v in body.items() if k in ("title", "body")})
                if body.get("state") == "closed":
                    state.close_pull(number)
                return 200, state.pull_answer(pr)
            if method == "POST" and rest == "pulls":
                # A head without "owner:" names a branch of this repository.
                label = body["head"] if ":" in body["head"] else f"{parts[2]}:{body['head']}"
                if any(p["head"]["label"] == label and p["state"] == "open" for p in state.pulls):
                    return 422, {"message": f"A pull request already exists for {label}."}
                if body.get("draft") and not state.drafts:
                    return 422, {"message": "Draft pull requests are not supported in this repository."}
                pr = state.pull(
                    label, body["base"], body.get("title", ""), body.get("body", ""), parts[3], bool(body.get("draft"))
                )
                return 201, state.pull_answer(pr)
            return 404, {"message": f"stub has no route {method} {url.path}"}

        # DELETE is answered (recorded, then "no route") so that tests can assert none is sent.
        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


def github_stub(state: GitHubState) -> contextlib.AbstractContextManager[str]:
    return serve(_handler(state))
