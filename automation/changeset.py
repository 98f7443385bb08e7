"""The approval diff: built from the engine's events (not the summary counts), per resource and
app, with old -> new values per changed property path, secrets masked, and a stable fingerprint.

The fingerprint covers every change the plan will make: each changed property, and for every
changed resource a digest of its old and new inputs, so a resource whose provider gives no
detailed diff (the commit's dynamic provider) still changes the fingerprint when any input
changes; plus the tenant's config as a keyed digest (secrets included, revealing nothing).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pulumi.automation import EngineEvent

SECRET = "[secret]"
UNKNOWN = "(known after apply)"
_UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
APP_COMPONENTS = {"scoutflo:index:ChartRepo", "scoutflo:index:ChartRegistry", "scoutflo:index:ArgoApp"}
# A replacement arrives as three steps; "replace" stands for all of them.
_HIDDEN_STEPS = {"create-replacement", "delete-replaced", "discard-replaced"}
_OPS = {"same", "create", "update", "replace", "delete"}
MAX_INPUT_DEPTH = 100
"""Nesting of a resource's inputs in an event. The walks below recurse (a frame or two per
level): deeper input would end as a RecursionError instead of an EventLogError naming it."""


class EventLogError(ValueError):
    """Engine events that are not what the engine writes; the message names the event and field."""


@dataclass(frozen=True)
class PropertyChange:
    path: str
    kind: str
    """add | update | delete, with `-replace` when it forces a replacement."""
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class ResourceChange:
    app: str
    type: str
    name: str
    urn: str
    op: str
    properties: tuple[PropertyChange, ...] = ()
    custom: bool = True
    inputs_digest: str = ""
    """sha256 of the old and new inputs (secrets masked): the change, even without a detailed diff."""
    unknowns: tuple[str, ...] = ()
    """Property paths whose new value is only known after apply."""
    kept: str = ""
    """On a replace or delete that leaves the old resource in place: what keeps it and how."""

    @property
    def listed(self) -> bool:
        """What an approver is shown: components and default providers only when something of
        theirs really changes (a replace, a delete, a changed property)."""
        if self.op == "same":
            return False
        quiet = not self.custom or (self.type.startswith("pulumi:providers:") and self.name.startswith("default"))
        return not quiet or (self.op in ("replace", "delete") or (self.op == "update" and bool(self.properties)))


@dataclass(frozen=True)
class ChangeSet:
    stack: str
    resources: tuple[ResourceChange, ...]
    plan_path: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    plan_sha256: str = ""
    """sha256 of the saved plan file this preview wrote (what apply runs)."""
    config_digest: str = ""
    """HMAC of the tenant's whole config, secrets included."""
    program_digest: str = ""
    """The program's version the preview ran (automation/program.py): another version refuses."""
    state_digest: str = ""
    """sha256 of the stack's state the preview ran against (operations.state_digest); recorded
    with the plan, not folded into the fingerprint (the changes already say what they change)."""

    @property
    def fingerprint(self) -> str:
        """sha256 of every change (not the unchanged), the config digest and the program's
        identity, canonical: same changes under the same config by the same program, same
        fingerprint (on any host: the config digest's key is the backend's, not the host's)."""
        changes = [asdict(r) for r in self.resources if r.op != "same"]
        blob = json.dumps(
            {"changes": changes, "config": self.config_digest, "program": self.program_digest},
            sort_keys=True,
            default=str,
        )
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    @property
    def has_changes(self) -> bool:
        return any(r.op != "same" for r in self.resources)

    def by_app(self) -> dict[str, list[ResourceChange]]:
        groups: dict[str, list[ResourceChange]] = {}
        for r in self.resources:
            groups.setdefault(r.app, []).append(r)
        return dict(sorted(groups.items(), key=lambda kv: (kv[0] != "shared", kv[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "fingerprint": self.fingerprint,
            "planPath": self.plan_path,
            "planSha256": self.plan_sha256,
            "configDigest": self.config_digest,
            "programDigest": self.program_digest,
            "stateDigest": self.state_digest,
            "counts": dict(self.counts),
            "apps": {app: [asdict(r) for r in rs] for app, rs in self.by_app().items()},
        }

    def to_text(self) -> str:
        """What a person approves. Replacements and deletes come first (with what each keeps);
        then each app, apps that differ only in their name and values folded onto the first of
        them (`_fold`); committed files as path, size and hash; JSON documents pretty-printed.
        Everything folded or summarized is in to_json, whole."""
        lines = [f"stack {self.stack}", f"fingerprint {self.fingerprint}"]
        total: dict[str, int] = {}
        for r in self.resources:
            if r.listed:
                total[r.op] = total.get(r.op, 0) + 1
        lines.append(f"total: {_summary(total)}" if total else "no changes")
        first = sorted((r for r in self.resources if r.listed and r.op in ("replace", "delete")), key=_op_order)
        if first:
            lines.append("\nreplaced and deleted (first; what each keeps is said):")
            lines += [
                f"  {_MARKS[r.op]:>2} {r.app}: {_one_line_text(r.type)}  {_one_line_text(r.name)}{_kept(r)}"
                for r in first
            ]
        apps = [(app, [r for r in rs if r.listed]) for app, rs in self.by_app().items()]
        apps = [(app, sorted(rs, key=_op_order)) for app, rs in apps if rs]
        # A long value shown once is named by its hash where it comes again (a seed Job and its
        # CronJob run the same containers).
        seen: dict[str, str] = {}
        for app, rs in apps:
            if app == "shared":
                lines.append(f"\n{app}: {_summary(_per_op(rs))}")
                lines += [line.text for r in rs for line in _resource_lines(r, seen)]
        for group in _fold([(app, rs) for app, rs in apps if app != "shared"]):
            lines += group.text(seen)
        return terminal_safe("\n".join(lines))


_MARKS = {
    # deploy.RawPrefix (pulumi/pulumi pkg/resource/deploy/step.go L2335-L2370).
    "create": "+",
    "update": "~",
    "replace": "+-",
    "delete": "-",
    "import": "=",
    "import-replacement": "=>",
}
_RANK = {"replace": 0, "delete": 1, "import-replacement": 2, "update": 3, "import": 4, "create": 5}
COMMIT_TYPE = "pulumi-python:dynamic:Resource"
"""RepoCommit's type (components/repo_commit.py): its `files` and `binary_files` are committed files."""
REPOSITORY_TYPE = "pulumi-python:dynamic/scoutflo:AppRepository"
"""AppRepository's type: its delete archives the repository (components/app_repository.py `delete`)."""
_PLACEHOLDER = "\ue000"
"""Stands for an app's name while apps are compared (`_fold`). An app whose own text holds it is
never folded: its text could otherwise pass for another app's with the name replaced."""
_WRAP = 100


def _op_order(r: ResourceChange) -> tuple[int, str]:
    return (_RANK.get(r.op, 6), r.urn)


def _per_op(resources: Iterable[ResourceChange]) -> dict[str, int]:
    per_op: dict[str, int] = {}
    for r in resources:
        per_op[r.op] = per_op.get(r.op, 0) + 1
    return per_op


def _kept(r: ResourceChange) -> str:
    return f"  (kept: {r.kept})" if r.kept else ""


@dataclass(frozen=True)
class _Line:
    text: str
    path: str | None = None
    """The property path of a one-line value: the one kind of line folded apps may differ in."""
    value: str = ""
    owner: str = ""
    """The name of the resource the line belongs to."""


def _resource_lines(r: ResourceChange, seen: dict[str, str] | None = None) -> list[_Line]:
    """The resource's lines; with `seen` (hash -> where it was shown), a long new value already
    shown is named instead of shown again. Every name and path stands on one line (`_one_line_text`)."""
    out = [_Line(f"  {_MARKS.get(r.op, '?'):>2} {_one_line_text(r.type)}  {_one_line_text(r.name)}{_kept(r)}")]

    def new_value(path: str, value: Any, note: str) -> list[str]:
        lines = _value_lines(path, value, note)
        if seen is None or len(lines) == 1:
            return lines
        digest = _hash(_text(value))
        if digest in seen:
            return [f"        {path}: {lines[0].split(': ', 1)[1].split(')', 1)[0]}), as {seen[digest]}{note}"]
        seen[digest] = f"{r.name} {path}"
        return lines

    for p in (replace(p, path=_one_line_text(p.path)) for p in r.properties):
        forced = "  (forces replacement)" if "replace" in p.kind else ""
        if r.type == COMMIT_TYPE and re.match(r"(binary_)?files\[", p.path):
            out += [_Line(line) for line in _file_lines(r.op, p, forced)]
        elif r.op == "create" or p.kind.startswith("add"):
            out += _one_or_many(p.path, p.new, "", new_value)
        elif p.kind.startswith("delete"):
            out += _one_or_many(p.path, p.old, "  (removed)", new_value)
        elif p.old == SECRET and p.new == SECRET:
            # The engine masks both sides: that it changed is all anyone may see.
            out.append(_Line(f"        {p.path}: {SECRET} (changed){forced}"))
        elif p.old is None and p.new is None:
            # A path the provider's detailed diff names that neither side's inputs hold (an
            # output it computes): "null → null" would say nothing changed.
            out.append(_Line(f"        {p.path}: (changed; not among the inputs){forced}"))
        else:
            out += [_Line(line) for line in _change_lines(p.path, p.old, p.new, forced)]
    if r.unknowns and r.op != "create":
        # A create shows every leaf, unknowns as UNKNOWN in their place; an update shows only
        # what changed, so the outputs it will change are named here.
        out.append(_Line(f"        known after apply: {', '.join(map(_one_line_text, r.unknowns))}"))
    return [replace(line, owner=r.name) for line in out]


def _one_line_text(text: str) -> str:
    """A name or property path shown inside one line of the text. A chart value's key is the
    tenant's (`values: {"x\\n   + aws:iam/role:Role  admin": 1}`): its line break, the one control
    terminal_safe keeps, started a line that read as another resource of the plan."""
    return text.replace("\n", "\\n")


def _one_or_many(path: str, value: Any, note: str, render: Callable[[str, Any, str], list[str]]) -> list[_Line]:
    lines = render(path, value, note)
    if len(lines) == 1:
        return [_Line(lines[0], path, _text(value) + note)]
    return [_Line(line) for line in lines]


def _file_lines(op: str, p: PropertyChange, note: str) -> list[str]:
    """A committed file as its path, size and hash; a changed one with its bounded diff too."""

    def ident(value: Any) -> str:
        if value is None:
            return "(none)"
        if value in (SECRET, UNKNOWN) or not isinstance(value, str):
            return _text(value)
        return f"{len(value.encode('utf-8', 'surrogatepass'))} bytes {_hash(value)}"

    if op == "create" or p.kind.startswith("add"):
        return [f"        {p.path}: {ident(p.new)}{note}"]
    if p.kind.startswith("delete"):
        return [f"        {p.path}: {ident(p.old)}  (removed){note}"]
    head = f"        {p.path}: {ident(p.old)} → {ident(p.new)}{note}"
    if not (isinstance(p.old, str) and isinstance(p.new, str)) or SECRET in (p.old, p.new):
        return [head]
    return [head, *_change_lines(p.path, p.old, p.new, note)[1:]]


def _renamed(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(_PLACEHOLDER, value)
    if isinstance(value, dict):
        return {pattern.sub(_PLACEHOLDER, k): _renamed(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_renamed(v, pattern) for v in value]
    return value


def _holds(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value
    if isinstance(value, dict):
        return any(_holds(k, text) or _holds(v, text) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v, text) for v in value)
    return False


def _name_pattern(app: str) -> re.Pattern[str]:
    # The name where it stands as a word of a name, path or URL (svc00-ci-role, scoutflo/svc00),
    # never inside a longer word (svc001).
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(app)}(?![A-Za-z0-9])")


def _normalized(app: str, resources: list[ResourceChange]) -> list[_Line] | None:
    """The app's lines with its name replaced by a placeholder in every name, path and value (so
    hashes and sizes are those of the normalized content), or None when it cannot be folded."""
    pattern = _name_pattern(app)
    out = []
    for r in resources:
        fields = (r.type, r.name, r.kept, [(p.path, p.old, p.new) for p in r.properties], r.unknowns)
        if _holds(fields, _PLACEHOLDER):
            return None
        props = tuple(
            PropertyChange(
                pattern.sub(_PLACEHOLDER, p.path), p.kind, _renamed(p.old, pattern), _renamed(p.new, pattern)
            )
            for p in r.properties
        )
        renamed = ResourceChange(
            app=_PLACEHOLDER,
            type=r.type,
            name=pattern.sub(_PLACEHOLDER, r.name),
            urn="",
            op=r.op,
            properties=props,
            custom=r.custom,
            kept=pattern.sub(_PLACEHOLDER, r.kept),
            unknowns=tuple(pattern.sub(_PLACEHOLDER, u) for u in r.unknowns),
        )
        out += _resource_lines(renamed)
    return out


@dataclass
class _Group:
    apps: list[str]
    resources: list[ResourceChange]
    norm: list[_Line] | None
    values: dict[int, list[str]] = field(default_factory=dict)
    """Line index -> each app's value there (in `apps` order), for the lines they differ in."""

    def fits(self, norm: list[_Line] | None) -> bool:
        if self.norm is None or norm is None or len(self.norm) != len(norm):
            return False
        return all(
            a.text == b.text or (a.path is not None and a.path == b.path) for a, b in zip(self.norm, norm, strict=True)
        )

    def add(self, app: str, norm: list[_Line]) -> None:
        assert self.norm is not None
        for i, (a, b) in enumerate(zip(self.norm, norm, strict=True)):
            if a.text != b.text or i in self.values:
                seen = self.values.setdefault(i, [self._value(i, name) for name in self.apps])
                seen.append(b.value.replace(_PLACEHOLDER, app))
        self.apps.append(app)

    def _value(self, i: int, app: str) -> str:
        # Only the first app's value is needed before a difference is first seen: until then
        # every app had the first one's value (with its own name).
        assert self.norm is not None
        return self.norm[i].value.replace(_PLACEHOLDER, app)

    def text(self, seen: dict[str, str]) -> list[str]:
        rep = self.apps[0]
        out = [f"\n{rep}: {_summary(_per_op(self.resources))}"]
        out += [line.text for r in self.resources for line in _resource_lines(r, seen)]
        if len(self.apps) == 1:
            return out
        others = self.apps[1:]
        out += _wrapped(f"{', '.join(others)} ({len(others)} apps): as {rep}, name replaced", "  ")
        assert self.norm is not None
        for i, values in sorted(self.values.items()):
            path = (self.norm[i].path or "").replace(_PLACEHOLDER, "<app>")
            where = self.norm[i].owner.replace(_PLACEHOLDER, "<app>")
            by_value: dict[str, list[str]] = {}
            for app, value in zip(self.apps, values, strict=True):
                by_value.setdefault(value, []).append(app)
            # A value and a path are anyone's text (a chart value may hold ": svc01", ", " or
            # "/"), so each ends its line, never wrapped: the path after a head the program
            # writes (`where` is a resource name it makes), a value after the apps holding it and
            # " = ", which no app name holds (scoutflo.naming: letters, digits, hyphens).
            out.append(f"    values differ ({len(by_value)} values) in {where}: {path}")
            for value, names in by_value.items():
                apps = _wrapped(", ".join(names), "      ")
                out += [*apps[:-1], f"{apps[-1]} = {_one_line(value)}"]
        return out


def _one_line(value: str) -> str:
    """A folded value as one line: one with a line break (which would start what reads as the
    next line of the text) is shown as its JSON string."""
    return json.dumps(value) if any(c in value for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029") else value


def _wrapped(text: str, indent: str) -> list[str]:
    """`text` broken after commas into lines of about _WRAP characters: every name stays whole."""
    out, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > _WRAP:
            out.append(line)
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    out.append(line)
    return [indent + line for line in out]


def _fold(apps: list[tuple[str, list[ResourceChange]]]) -> list[_Group]:
    """Apps, in name order, each joined to the first group whose lines equal its own once both
    apps' names are replaced by a placeholder, apart from one-line values (a chart's values):
    deterministic for the same changes."""
    groups: list[_Group] = []
    for app, resources in sorted(apps):
        norm = _normalized(app, resources)
        for group in groups:
            if group.fits(norm):
                assert norm is not None
                group.add(app, norm)
                break
        else:
            groups.append(_Group([app], resources, norm))
    return groups


_SHORT = 100
_DIFF_LINES = 20
_DIFF_REGION = 2000
"""Lines of a changed region (old and new together, after the lines both share at the start and
end) that are diffed. difflib's SequenceMatcher is quadratic and worse on lines that repeat
without being junk: a 466 KB file with every other line changed took 104 s. Beyond this the
region is summarized by its size, which takes one linear pass."""
_NEW_LINES = 10
"""Lines shown of a long new value (a create's pod spec, a policy); the rest is named by its
size and hash here and is whole in to_json."""
_LINE_MAX = 240
"""Characters of one shown line: a minified file is one line of any length."""


def _unsafe(ch: str) -> bool:
    # Cc: C0/C1 controls (ESC sequences move the cursor and erase lines, CR overwrites, C1 CSI
    # \x9b is ESC [ on many terminals); Cf: bidi overrides and zero-width characters reorder or
    # hide text ("Trojan Source", CVE-2021-42574); Zl/Zp: line breaks a terminal may honour;
    # Cs: a lone surrogate (JSON's "\\ud800" in an event log, an undecodable file name), which
    # print() to a UTF-8 stdout refuses with UnicodeEncodeError, a traceback instead of the diff.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")


def terminal_safe(text: str) -> str:
    """`text` with every character that could steer the approver's terminal shown as an escape
    (\\x1b, \\u202e), newlines kept: values come from tenants and charts, so they are hostile."""
    if not any(_unsafe(ch) for ch in text if ch != "\n"):
        return text
    out = []
    for ch in text:
        if ch == "\n" or not _unsafe(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _lines(text: str) -> list[str]:
    """Split on newlines only: str.splitlines also breaks on CR, VT, FF, \\x1c-\\x1e, \\x85 and
    U+2028/9, which would hide them from the approver instead of showing them escaped."""
    parts = text.split("\n")
    return parts[:-1] if parts and parts[-1] == "" else parts


def _summary(per_op: Mapping[str, int]) -> str:
    order = ("create", "update", "replace", "delete", "import", "import-replacement", "remove-pending-replace")
    return ", ".join(f"{per_op[op]} to {op}" for op in order if per_op.get(op))


def _text(value: Any) -> str:
    if isinstance(value, str):
        visible = value and ("\n" in value or value.strip() == value) and not _reads_as_other_json(value)
        return value if visible else json.dumps(value)  # "" and " x" stay visible
    return json.dumps(value, sort_keys=True, indent=None)


def _reads_as_other_json(text: str) -> bool:
    """Whether a string shown bare would read as another value: a number, boolean or null
    (`"false"` is a non-empty string, truthy in a Helm template, where `false` is not), a JSON
    string (the string `"1"`, quotes included, read as the string 1 shown quoted) or an empty
    array or object (`[]`). Such a string is shown quoted (JSON-escaped). A non-empty JSON
    document in a string is pretty-printed instead (`_document`), which a list never is."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return not (isinstance(doc, list | dict) and doc)


def _document(value: Any) -> Any:
    """The JSON object or array a string holds (an IAM policy, a trust policy), else None: shown
    pretty-printed, in the document's own key order, so its lines can be read and diffed."""
    if not isinstance(value, str) or not value.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict | list) and doc else None


def _body(value: Any, text: str) -> list[str]:
    doc = _document(value)
    if doc is not None:
        return json.dumps(doc, indent=2, ensure_ascii=False).split("\n")
    return _lines(text) if "\n" in text else json.dumps(value, sort_keys=True, indent=2).splitlines()


def _long(text: str) -> bool:
    return len(text) > _SHORT or "\n" in text


def _hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _value_lines(path: str, value: Any, note: str) -> list[str]:
    text = _text(value)
    if not _long(text) and _document(value) is None:
        return [f"        {path}: {text}{note}"]
    body = _body(value, text)
    if len(body) == 1:
        return [f"        {path}: {_cut(body[0])}{note}"]
    shown = body[:_NEW_LINES]
    out = [f"        {path}: ({len(body)} lines, {_hash(text)}){note}"]
    out += [f"          | {_cut(line)}" for line in shown]
    if len(body) > len(shown):
        out.append(f"          | … {len(body) - len(shown)} more lines (whole value: {_hash(text)})")
    return out


def _change_lines(path: str, old: Any, new: Any, note: str) -> list[str]:
    old_text, new_text = _text(old), _text(new)
    if not (_long(old_text) or _long(new_text) or _document(old) is not None or _document(new) is not None):
        return [f"        {path}: {old_text} → {new_text}{note}"]
    a, b = _body(old, old_text), _body(new, new_text)
    out = [f"        {path}: {_hash(old_text)} → {_hash(new_text)}{note}"]
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    removed, added = len(a) - head - tail, len(b) - head - tail
    if removed + added > _DIFF_REGION:
        out.append(f"          @@ -{_range(head, len(a) - tail)} +{_range(head, len(b) - tail)} @@")
        out.append(
            f"          … {removed} lines removed and {added} added ({len(a)} → {len(b)} lines): "
            "too large to show (whole values hashed above)"
        )
        return out
    diff = _unified(a, b, max(0, head - 1), len(a) - max(0, tail - 1), len(b) - max(0, tail - 1))
    out += [f"          {_cut(line)}" for line in diff[:_DIFF_LINES]]
    if len(diff) > _DIFF_LINES:
        out.append(f"          … {len(diff) - _DIFF_LINES} more diff lines elided (whole values hashed above)")
    return out


def _unified(a: list[str], b: list[str], lo: int, a_hi: int, b_hi: int) -> list[str]:
    """difflib.unified_diff's hunks (context 1, no file header) of a[lo:a_hi] against b[lo:b_hi],
    numbered as lines of the whole values: only the changed region and its context are matched."""
    out = []
    matcher = difflib.SequenceMatcher(None, a[lo:a_hi], b[lo:b_hi])
    for group in matcher.get_grouped_opcodes(1):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(lo + first[1], lo + last[2])} +{_range(lo + first[3], lo + last[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[lo + i1 : lo + i2]]
                continue
            if tag in ("replace", "delete"):
                out += ["-" + line for line in a[lo + i1 : lo + i2]]
            if tag in ("replace", "insert"):
                out += ["+" + line for line in b[lo + j1 : lo + j2]]
    return out


def _range(start: int, stop: int) -> str:
    """A hunk range as unified_diff writes it (difflib._format_range_unified)."""
    beginning, length = start + 1, stop - start
    if length == 1:
        return str(beginning)
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def _cut(line: str) -> str:
    if len(line) <= _LINE_MAX:
        return line
    return f"{line[:_LINE_MAX]}… ({len(line) - _LINE_MAX} more characters)"


def mask(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            return SECRET
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if value == _UNKNOWN_SENTINEL:
        return UNKNOWN
    return value


def parse_path(path: str) -> list[str | int]:
    """Pulumi property paths (`a.b`, `a["x.y"]`, `a[0]`) as parsePropertyPath reads them
    (sdk/go/common/resource/properties_path.go L68-L140): in a quoted key only `\\"` is an escape.
    A path it would refuse comes back whole, as one key."""
    out: list[str | int] = []
    i = 0
    if path.startswith("."):
        return [path]
    while i < len(path):
        if path[i] == ".":
            i += 1
            if i == len(path):
                return [path]
        elif path.startswith('["', i):
            j, key = i + 2, []
            while True:
                if j >= len(path):
                    return [path]
                if path[j] == '"':
                    j += 1
                    break
                if path.startswith('\\"', j):
                    key.append('"')
                    j += 2
                else:
                    key.append(path[j])
                    j += 1
            if not path.startswith("]", j):
                return [path]
            out.append("".join(key))
            i = j + 1
        elif path[i] == "[":
            end = path.find("]", i)
            segment = path[i + 1 : end]
            if end < 0 or not re.fullmatch(r"[+-]?[0-9]+|\*", segment):
                return [path]
            out.append(segment if segment == "*" else int(segment))
            i = end + 1
        else:
            j = i
            while j < len(path) and path[j] not in ".[":
                j += 1
            out.append(path[i:j])
            i = j
    return out


def walk(obj: Any, parts: Iterable[str | int], missing: Any = None, opaque: Callable[[Any], bool] | None = None) -> Any:
    """The value at `parts` in `obj`, or `missing` when it is not there; a path that leads into a
    value `opaque` says cannot be looked into (a secret) gives that value."""
    for part in parts:
        if opaque is not None and opaque(obj):
            return obj
        if isinstance(part, int) and isinstance(obj, list) and 0 <= part < len(obj):
            obj = obj[part]
        elif isinstance(part, str) and isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return missing
    return obj


def lookup(obj: Any, path: str) -> Any:
    return walk(obj, parse_path(path))


def _lookup_masked(obj: Any, path: str) -> Any:
    """lookup, but a path that leads into a secret is the secret: the engine's detailed diff names
    paths inside it (`stringData.password`), and null there would say the value is gone."""
    return walk(obj, parse_path(path), opaque=lambda value: bool(value == SECRET))


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _leaves(old: Any, new: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, kind) of every leaf that differs between two input trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, str]] = []
        for key in sorted(set(old) | set(new)):
            sub = _key_path(path, key)
            if key not in old:
                out.append((sub, "add"))
            elif key not in new:
                out.append((sub, "delete"))
            else:
                out += _leaves(old[key], new[key], sub)
        return out
    return [] if old == new else [(path, "update")]


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][\w-]*", key):
        return f"{path}.{key}" if path else key
    # Quoted as PropertyPath.String quotes (properties_path.go L582-L612: only `"` is escaped), so
    # parse_path reads the key back.
    quoted = '"' + key.replace('"', '\\"') + '"'
    return f"{path}[{quoted}]" if path else f"[{quoted}]"


def _flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every leaf of a new resource's inputs: what a person reads on a create."""
    if isinstance(value, dict) and value and value.get(_SECRET_SIG[0]) is None:
        return [leaf for key, sub in sorted(value.items()) for leaf in _flatten(sub, _key_path(path, key))]
    return [(path, value)]


def _unknown_paths(value: Any, path: str = "") -> list[str]:
    if value == UNKNOWN:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in sorted(value.items()) for p in _unknown_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unknown_paths(v, f"{path}[{i}]")]
    return []


def changeset_from_events(
    events: Iterable[EngineEvent],
    stack: str = "",
    plan_path: str | None = None,
    plan_sha256: str = "",
    config_digest: str = "",
    program_digest: str = "",
    state_digest: str = "",
) -> ChangeSet:
    steps = []
    parents: dict[str, str] = {}
    types: dict[str, str] = {}
    for event in events:
        check_event(event)
        pre = event.resource_pre_event
        if pre is None:
            continue
        meta = pre.metadata
        for state in (meta.old, meta.new):
            if state is not None:
                parents[state.urn] = state.parent
        types[meta.urn] = meta.type
        steps.append(meta)

    def app_of(urn: str) -> str:
        seen = set()
        while urn and urn not in seen:
            seen.add(urn)
            if types.get(urn) in APP_COMPONENTS:
                return _name(urn)
            urn = parents.get(urn, "")
        return "shared"

    resources = []
    counts: dict[str, int] = {}
    for meta in steps:
        op = str(getattr(meta.op, "value", meta.op))
        if op in _HIDDEN_STEPS or meta.type == "pulumi:pulumi:Stack":
            continue
        old = mask(dict(meta.old.inputs or {})) if meta.old else {}
        new = mask(dict(meta.new.inputs or {})) if meta.new else {}
        props: list[PropertyChange] = []
        if op == "create":
            clean = {k: v for k, v in new.items() if not k.startswith("__")}
            props = [PropertyChange(path, "add", None, value) for path, value in _flatten(clean)]
        elif op in ("update", "replace"):
            detailed = meta.detailed_diff or {}
            if detailed:
                for path, diff in sorted(detailed.items()):
                    kind = str(getattr(diff.diff_kind, "value", diff.diff_kind))
                    props.append(PropertyChange(path, kind, _lookup_masked(old, path), _lookup_masked(new, path)))
            else:
                # No detailed diff (a dynamic provider, the commit resource): compare the inputs
                # themselves, leaf by leaf, so nothing that changes is hidden from the approver.
                replace_keys = set(meta.keys or [])
                clean_old = {k: v for k, v in old.items() if not k.startswith("__")}
                clean_new = {k: v for k, v in new.items() if not k.startswith("__")}
                for path, kind in _leaves(clean_old, clean_new):
                    top = str(parse_path(path)[0])
                    kind = f"{kind}-replace" if top in replace_keys else kind
                    props.append(PropertyChange(path, kind, lookup(old, path), lookup(new, path)))
        counts[op] = counts.get(op, 0) + 1
        inputs = {k: v for k, v in (("old", old), ("new", new))}
        state = meta.new or meta.old
        resources.append(
            ResourceChange(
                app=app_of(meta.urn),
                type=meta.type,
                name=_name(meta.urn),
                urn=meta.urn,
                op=op,
                properties=tuple(props),
                custom=bool(getattr(state, "custom", True)),
                inputs_digest=""
                if op == "same"
                else hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(),
                unknowns=tuple(p for p in _unknown_paths(new) if not p.startswith("__")) if op != "delete" else (),
                kept=_keeps(op, meta.type, meta.old) if op in ("replace", "delete") else "",
            )
        )
    resources.sort(key=lambda r: (r.app, r.urn, r.op))
    return ChangeSet(
        stack=stack,
        resources=tuple(resources),
        plan_path=plan_path,
        counts=counts,
        plan_sha256=plan_sha256,
        config_digest=config_digest,
        program_digest=program_digest,
        state_digest=state_digest,
    )


def _keeps(op: str, type_: str, old: Any) -> str:
    """What keeps the old resource of a replace or delete, read from the step's old state (the
    engine's StepEventStateMetadata carries protect and retainOnDelete, sdk/python/lib/pulumi/
    automation/events.py L385-L386)."""
    if old is None:
        return ""
    if old.retain_on_delete:
        # The engine drops a retainOnDelete resource from state without calling the provider's
        # Delete (pulumi/pulumi pkg/resource/deploy/step.go L661, DeleteStep.Apply).
        return "retainOnDelete: only dropped from the stack's state, it stays in the cloud"
    if old.protect:
        # DeleteStep.Apply fails on a protected resource (pkg/resource/deploy/step.go L647-L648) and
        # the step generator will not replace one (pkg/resource/deploy/step_generator.go L1954).
        return "protected: the engine refuses to delete it, so the run fails until protect is lifted"
    if type_ == REPOSITORY_TYPE and op == "delete":
        return "the repository is archived on GitHub, not deleted (components/app_repository.py)"
    return ""


def check_event(event: EngineEvent) -> None:
    """EventLogError unless a resource step has the shape the walks above read: the SDK's
    `from_json` takes whatever JSON it is given (a number where a URN goes, a list as inputs)."""
    pre = event.resource_pre_event
    if pre is None:
        return
    meta = pre.metadata
    if not isinstance(meta.urn, str) or not meta.urn:
        raise EventLogError("resourcePreEvent.metadata.urn must be a non-empty string")
    where = f"resourcePreEvent {meta.urn!r}"
    if not isinstance(meta.type, str):
        raise EventLogError(f"{where}: type must be a string")
    if meta.keys is not None and not (isinstance(meta.keys, list) and all(isinstance(k, str) for k in meta.keys)):
        raise EventLogError(f"{where}: keys must be a list of strings")
    for side, state in (("old", meta.old), ("new", meta.new)):
        if state is None:
            continue
        for name in ("urn", "parent", "type"):
            if not isinstance(getattr(state, name), str | None):
                raise EventLogError(f"{where}: {side}.{name} must be a string")
        if state.inputs is not None and not isinstance(state.inputs, dict):
            raise EventLogError(f"{where}: {side}.inputs must be an object")
        if _deeper_than(state.inputs, MAX_INPUT_DEPTH):
            raise EventLogError(f"{where}: {side}.inputs are nested deeper than {MAX_INPUT_DEPTH} levels")


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def events_from_log(path: Path) -> list[EngineEvent]:
    """The JSON lines `pulumi preview --event-log FILE` writes, as the SDK's EngineEvent objects;
    EventLogError naming the file and line of anything else (never a traceback)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise EventLogError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    events = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            event = EngineEvent.from_json(json.loads(line))
            check_event(event)
        except RecursionError:
            raise EventLogError(f"{path}:{number}: not an engine event (nested too deeply)") from None
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            # ValueError covers JSON errors, an unknown op or diff kind, and an integer of more
            # than 4300 digits (int's str-conversion limit); the others a JSON value of the wrong
            # kind where the SDK calls .get or a constructor.
            raise EventLogError(f"{path}:{number}: not an engine event ({_short(err)})") from None
        events.append(event)
    return events


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:200] + "…"
