"""Semantic-version constraints as Helm and Argo CD read them (Masterminds/semver syntax).

Argo CD resolves `targetRevision` and Helm resolves dependency versions with the same constraint
language, so the program validates both with this one parser. Supported: `*`/`x` wildcards,
comparisons (`=`, `!=`, `>`, `>=`, `<`, `<=`), partial versions (`1.2` = `1.2.x`), tilde `~1.2`,
caret `^1.2`, hyphen ranges `1.2 - 1.4.5`, AND by space or comma, OR by `||`.
Prereleases match only when a comparator of the constraint carries a prerelease (`*-0`,
`>=2.0.0-rc.1`), which is how Masterminds keeps `2.0.0-rc.1` from winning over `1.10.0`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import semver

_PARTIAL = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_COMPARATOR = re.compile(r"^(?P<op>!=|>=|<=|=>|=<|>|<|=|~>|~|\^)?\s*(?P<ver>\S+)$")
_WILD = {"x", "X", "*"}
MAX_VERSION_CHARS = 128
"""A version, a tag or one comparator's version, checked before any regex: an OCI tag is at most
128 characters (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, opencontainers/distribution-spec `spec.md`
line 160), and a chart's version is its tag (`helm push`). semver's own regex on one 8 MiB valid
prerelease allocates 1.9 GiB (issue 16)."""
MAX_CONSTRAINT_CHARS = 1024


class VersionError(ValueError):
    """A version or constraint that cannot be parsed."""


def parse_version(text: str) -> semver.Version:
    """Parse a full semver version; a leading `v` is accepted as Helm does (`v1.17.0`)."""
    if len(text) > MAX_VERSION_CHARS:
        raise VersionError(f"a version of {len(text)} characters is not accepted; at most {MAX_VERSION_CHARS}")
    raw = text.strip()
    if raw[:1] in ("v", "V"):
        raw = raw[1:]
    try:
        return semver.Version.parse(raw)
    except (ValueError, TypeError) as err:
        raise VersionError(f"{text!r} is not a semantic version (expected MAJOR.MINOR.PATCH)") from err


@dataclass(frozen=True)
class _Cmp:
    op: str
    version: semver.Version

    def matches(self, v: semver.Version) -> bool:
        c = v.compare(self.version)
        return {
            "=": c == 0,
            "!=": c != 0,
            ">": c > 0,
            ">=": c >= 0,
            "<": c < 0,
            "<=": c <= 0,
        }[self.op]


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: OR of AND-groups of comparators."""

    text: str
    groups: tuple[tuple[_Cmp, ...], ...]

    def allows(self, version: semver.Version | str) -> bool:
        v = parse_version(version) if isinstance(version, str) else version
        for group in self.groups:
            if v.prerelease and not any(c.version.prerelease for c in group):
                # Masterminds: a prerelease only satisfies a group that asks for prereleases.
                continue
            if all(c.matches(v) for c in group):
                return True
        return False

    @property
    def is_exact(self) -> bool:
        """True when the constraint pins one version (`1.2.3` or `=1.2.3`)."""
        return len(self.groups) == 1 and len(self.groups[0]) == 1 and self.groups[0][0].op == "="


def _partial(text: str) -> tuple[int | None, int | None, int | None, str | None]:
    if len(text) > MAX_VERSION_CHARS:
        raise VersionError(f"a version of {len(text)} characters is not accepted; at most {MAX_VERSION_CHARS}")
    m = _PARTIAL.match(text)
    if not m:
        raise VersionError(f"{text!r} is not a version or version pattern")
    parts: list[int | None] = []
    for key in ("major", "minor", "patch"):
        raw = m.group(key)
        parts.append(None if raw is None or raw in _WILD else int(raw))
    # "1.x.3" is meaningless: once a part is a wildcard, every later part is one too.
    for i in range(1, 3):
        if parts[i - 1] is None:
            parts[i] = None
    return parts[0], parts[1], parts[2], m.group("pre")


def _v(major: int, minor: int = 0, patch: int = 0, pre: str | None = None) -> semver.Version:
    return semver.Version(major, minor, patch, prerelease=pre)


def _expand(op: str, text: str) -> list[_Cmp]:
    major, minor, patch, pre = _partial(text)
    if op == "=>":
        op = ">="
    if op == "=<":
        op = "<="
    if op == "~>":
        op = "~"
    if major is None:
        if op in ("", "=", ">=", "<=", "~", "^"):
            return [_Cmp(">=", _v(0, 0, 0, pre))] if pre else [_Cmp(">=", _v(0))]
        if op in ("<", ">", "!="):
            raise VersionError(f"{op}{text} matches nothing")
    assert major is not None
    exact = minor is not None and patch is not None
    if op in ("", "="):
        if exact:
            return [_Cmp("=", _v(major, minor or 0, patch or 0, pre))]
        return _range_of(major, minor)
    if op == "!=":
        if exact:
            return [_Cmp("!=", _v(major, minor or 0, patch or 0, pre))]
        raise VersionError(f"!={text}: use an exact version with !=")
    if op == "~":
        lo = _v(major, minor or 0, patch or 0, pre)
        hi = _v(major + 1) if minor is None else _v(major, minor + 1)
        return [_Cmp(">=", lo), _Cmp("<", hi)]
    if op == "^":
        lo = _v(major, minor or 0, patch or 0, pre)
        if major > 0 or minor is None:
            hi = _v(major + 1)
        elif minor > 0 or patch is None:
            hi = _v(0, minor + 1)
        else:
            hi = _v(0, 0, patch + 1)
        return [_Cmp(">=", lo), _Cmp("<", hi)]
    if op == ">":
        if exact:
            return [_Cmp(">", _v(major, minor or 0, patch or 0, pre))]
        return [_Cmp(">=", _v(major + 1) if minor is None else _v(major, minor + 1))]
    if op == ">=":
        return [_Cmp(">=", _v(major, minor or 0, patch or 0, pre))]
    if op == "<":
        return [_Cmp("<", _v(major, minor or 0, patch or 0, pre))]
    if op == "<=":
        if exact:
            return [_Cmp("<=", _v(major, minor or 0, patch or 0, pre))]
        return [_Cmp("<", _v(major + 1) if minor is None else _v(major, minor + 1))]
    raise VersionError(f"unknown operator {op!r}")


def _range_of(major: int, minor: int | None) -> list[_Cmp]:
    if minor is None:
        return [_Cmp(">=", _v(major)), _Cmp("<", _v(major + 1))]
    return [_Cmp(">=", _v(major, minor)), _Cmp("<", _v(major, minor + 1))]


def parse_constraint(text: str) -> Constraint:
    """Parse a constraint; raises VersionError with the offending part named."""
    if not isinstance(text, str) or not text.strip():
        raise VersionError("an empty constraint; use '*' for any version")
    if len(text) > MAX_CONSTRAINT_CHARS:
        raise VersionError(f"a constraint of {len(text)} characters is not accepted; at most {MAX_CONSTRAINT_CHARS}")
    groups: list[tuple[_Cmp, ...]] = []
    for alt in text.split("||"):
        alt = alt.strip()
        if not alt:
            raise VersionError(f"{text!r} has an empty alternative around '||'")
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alt)
        if hyphen:
            lo_major, lo_minor, lo_patch, lo_pre = _partial(hyphen.group(1))
            if lo_major is None:
                raise VersionError(f"{alt!r}: a hyphen range needs a lower version")
            cmps = [_Cmp(">=", _v(lo_major, lo_minor or 0, lo_patch or 0, lo_pre))]
            cmps += _expand("<=", hyphen.group(2))
            groups.append(tuple(cmps))
            continue
        # Masterminds accepts "op version" with a space between, e.g. ">= 1.2.0".
        tokens = re.findall(r"(?:!=|>=|<=|=>|=<|~>|>|<|=|~|\^)?\s*[^\s,<>=!~^][^\s,]*", alt.replace(",", " "))
        if not tokens or re.sub(r"[\s,]", "", "".join(tokens)) != re.sub(r"[\s,]", "", alt):
            raise VersionError(f"{text!r} has an operator without a version")
        cmps = []
        for token in tokens:
            m = _COMPARATOR.match(token.strip())
            if not m:
                raise VersionError(f"{token!r} in {text!r} is not a comparator")
            try:
                cmps.extend(_expand(m.group("op") or "", m.group("ver")))
            except VersionError as err:
                raise VersionError(f"{text!r}: {err}") from None
        groups.append(tuple(cmps))
    return Constraint(text=text.strip(), groups=tuple(groups))


def highest_match(candidates: Iterable[str], constraint: str | Constraint) -> str | None:
    """The highest candidate that satisfies the constraint, as written (tags may carry a `v`).

    Candidates that are not semver are skipped, as Argo CD and Helm skip non-semver tags; so is
    one longer than `MAX_VERSION_CHARS` (`parse_version` refuses it before any regex).
    """
    c = parse_constraint(constraint) if isinstance(constraint, str) else constraint
    best: tuple[semver.Version, str] | None = None
    for text in candidates:
        # OCI tags cannot hold '+': `helm push` writes build metadata as '_'.
        try:
            v = parse_version(text.replace("_", "+"))
        except VersionError:
            continue
        if c.allows(v) and (best is None or v > best[0]):
            best = (v, text)
    return best[1] if best else None
