"""Reading a Helm chart archive (.tgz) safely: in memory, regular files only, names checked here.

Helm's own loader strips the top directory, rejects absolute paths, `..` and drive letters and
caps 100 MiB per chart and 5 MiB per file (helm/helm pkg/chart/loader/archive). We do the same
and more, because tarfile's extraction filters have had bypasses (CVE-2025-4517, CVE-2026-11940):
nothing is ever extracted; members are read into memory and only regular files are accepted
(no symlinks, hard links or devices: see CVE-2025-53547's symlinked Chart.lock), and a chart
directory named `.` or `..` is refused (CVE-2026-35206). A corrupt or truncated tar stream,
which tarfile reads as a shorter archive, is refused where Go's archive/tar refuses it.

Limits are one `Budget` per import, shared by the chart and every vendored subchart inside it at
any depth: per-archive limits alone let 40 subcharts of 4 MiB each through.
"""

from __future__ import annotations

import io
import re
import tarfile
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from scoutflo.charts.errors import ArchiveError

MAX_CHART_BYTES = 100 * 1024 * 1024
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES = 10_000
MAX_DEPTH = 5
"""Nesting of vendored subcharts (charts/x.tgz inside charts/y.tgz ...); real charts use 1-2."""
_DRIVE = re.compile(r"^[A-Za-z]:")
# Unicode categories no file name of a chart may contain. Cc (C0, DEL, C1): Git stores them, but
# they break branch names, shells and YAML. Zl/Zp (U+2028, U+2029): Python's str.splitlines() and
# JavaScript end a line there, so a name in the import PR's body could forge a line of its own (a
# `Scoutflo-Commit:` trailer, scoutflo/github/api.py TRAILER, is found by splitlines()). Cf
# (U+202E RIGHT-TO-LEFT OVERRIDE, zero-width characters, U+FEFF): the name a reviewer reads is not
# the name on disk, and HFS+ ignores several of them, so `.g<U+200C>it` is `.git` there (git/git
# utf8.c next_hfs_char, used by is_hfs_dotgit: U+200C-200F, U+202A-202E, U+206A-206F, U+FEFF, all
# Cf). Cs, Co, Cn: surrogates, private use and unassigned code points, which no reviewer can read
# either.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = bytes(_BLOCK)

__all__ = [
    "MAX_CHART_BYTES",
    "MAX_FILE_BYTES",
    "ArchiveError",
    "Budget",
    "FileNameError",
    "fold_name",
    "gunzip_capped",
    "name_problem",
    "read_chart",
]


@dataclass
class Budget:
    """Bytes (decompressed) and files left for one import, across all nesting levels."""

    bytes_left: int = MAX_CHART_BYTES
    files_left: int = MAX_FILES
    max_file: int = MAX_FILE_BYTES
    max_depth: int = MAX_DEPTH

    def spend(self, name: str, size: int) -> None:
        if size > self.max_file:
            raise ArchiveError(f"{name!r} is {size} bytes; at most {self.max_file} per file")
        self.bytes_left -= size
        self.files_left -= 1
        if self.bytes_left < 0:
            raise ArchiveError("the chart and its subcharts add up to more than the import's byte budget")
        if self.files_left < 0:
            raise ArchiveError("the chart and its subcharts hold more files than the import's file budget")


def gunzip_capped(data: bytes, limit: int = MAX_CHART_BYTES) -> bytes:
    """Decompress at most `limit` bytes, so a gzip bomb fails before it fills memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise ArchiveError(f"not a gzip archive: {err}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ArchiveError(f"archive expands beyond {limit} bytes")
    # Go's gzip.Reader (Helm's loader, pkg/chart/loader/archive/archive.go:59) reads concatenated
    # members and fails on a truncated stream; zlib stops after one member and returns a truncated
    # stream's prefix. Either way Helm and this reader would see different files: refused.
    if not inflater.eof:
        raise ArchiveError("the gzip stream is truncated")
    if inflater.unused_data:
        raise ArchiveError("data after the gzip stream (a second gzip member); refused")
    return out


class FileNameError(ArchiveError):
    """A file name in a chart that cannot be committed, or shown to a reviewer, as it is.

    `path` is where the file is (`charts/x.tgz: x/templates/a.yaml` inside a packed subchart),
    `problem` what is wrong with it and `chart` the chart being imported, once known
    (`chart <name> <version> from <source>`)."""

    def __init__(self, path: str, problem: str, chart: str = "") -> None:
        self.path, self.problem, self.chart = path, problem, chart
        where = f"{chart}: " if chart else ""
        # repr() escapes every character str.isprintable() refuses (C*, Zl, Zp, Zs but space), so
        # the message itself carries no line separator or direction override.
        super().__init__(
            f"{where}file {path!r} {problem}; such a name cannot be committed or shown in a pull request"
            " as it is: import another version of the chart, or ask its maintainers to rename the file"
        )

    def within(self, *, chart: str = "", prefix: str = "") -> FileNameError:
        """The same error, located inside `prefix` (a packed subchart) and/or naming the chart."""
        return FileNameError(f"{prefix}{self.path}", self.problem, chart or self.chart)


def name_problem(name: str) -> str | None:
    """Why Git, Helm, a checkout on another OS or a reviewer could not hold this path or name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    for char in name:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            kind = "a control character" if category == "Cc" else "a character that is not shown as itself"
            label = unicodedata.name(char, "unnamed")
            return f"contains {kind} (U+{ord(char):04X} {label}, category {category})"
    return None


def fold_name(name: str) -> str:
    """The key under which two names are the same file on a case-insensitive or normalizing file
    system (macOS APFS/HFS+ and Windows NTFS checkouts): Unicode's canonical caseless match,
    NFD(casefold(NFD(name))) (The Unicode Standard, ch. 3.13, D145). Case alone misses `é`
    (U+00E9) against `e` + U+0301, which HFS+ stores as one file."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def _check_name(name: str) -> list[str]:
    if problem := name_problem(name):
        raise FileNameError(name, problem)
    if "\\" in name:
        raise ArchiveError(f"{name!r}: backslashes are not allowed in chart paths")
    if name.startswith("/") or _DRIVE.match(name):
        raise ArchiveError(f"{name!r}: absolute paths are not allowed")
    parts = [p for p in name.split("/") if p]
    if ".." in parts:
        raise ArchiveError(f"{name!r}: '..' is not allowed")
    if "." in parts:
        # A chart directory named '.' unpacks into the parent directory (CVE-2026-35206).
        raise ArchiveError(f"{name!r}: '.' path components (a chart named '.') are not allowed")
    if any(fold_name(p) == ".git" for p in parts):
        raise ArchiveError(f"{name!r}: a '.git' component cannot be committed")
    return parts


def _end_problem(raw: bytes, offset: int) -> str | None:
    """Why Go's archive/tar would fail at `offset`, where Python's tarfile stopped iterating.

    tarfile ends iteration quietly at a bad, truncated or zero header block once past the first
    member (CPython 3.11 Lib/tarfile.py:2602-2634, TarFile.next(): header errors raise only at
    offset 0). Helm reads charts with Go's archive/tar (helm/helm pkg/chart/loader/archive/
    archive.go:66) and returns its errors (archive.go:74-76); Go's Reader.readHeader (go1.19.8
    src/archive/tar/reader.go:342-361, unchanged in later Go; Helm v4.1.4 is built with go1.25) reads
    io.ReadFull(512): 0 bytes is the end (io.EOF), 1-511 is io.ErrUnexpectedEOF; a zero block
    ends the archive only if EOF or a second zero block follows, else ErrHeader; a non-zero
    block must pass the checksum (format.go:172-178) and numeric-field parsing, else ErrHeader.
    """
    first = raw[offset : offset + _BLOCK]
    if not first:
        return None
    if len(first) < _BLOCK:
        return f"the archive ends inside a tar header ({len(first)} of {_BLOCK} bytes)"
    if first != _ZERO_BLOCK:
        return "an invalid tar header (bad checksum or field)"
    second = raw[offset + _BLOCK : offset + 2 * _BLOCK]
    if not second or second == _ZERO_BLOCK:
        return None
    if len(second) < _BLOCK:
        return f"the archive ends inside the block after a zero block ({len(second)} of {_BLOCK} bytes)"
    return "a zero block followed by a non-zero block"


def _members(raw: bytes) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    last: tarfile.TarInfo | None = None
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
        while (member := tar.next()) is not None:
            # tarfile applies a pax global header's records (`path`, `size`) to later members; Go's
            # archive/tar hands it out as an entry of its own and Helm skips it (archive.go:86).
            # Only `comment` (what `git archive` writes) is the same to both readers.
            if set(tar.pax_headers) - {"comment"}:
                raise ArchiveError(
                    f"a pax global header sets {sorted(tar.pax_headers)[:3]}; Helm would read other names"
                )
            # Go's regFileReader.Read returns io.ErrUnexpectedEOF for data cut short (reader.go:668)
            # and Helm's io.Copy returns it (archive.go:137-140).
            end = member.offset_data + member.size
            if member.isreg() and not member.issparse() and end > len(raw):
                raise ArchiveError(
                    f"{member.name!r} is truncated: {max(len(raw) - member.offset_data, 0)} of {member.size}"
                    " bytes in the archive; helm refuses it (unexpected EOF)"
                )
            last = member
            yield tar, member
            # Only the last member's padding is cut short: Go reads the padding with tryReadFull,
            # whose io.EOF ends the archive (reader.go:71), while tarfile's next() raises.
            if tar.offset > len(raw):
                break
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, ValueError) as err:
        raise ArchiveError(f"not a tar archive: {err}") from None
    if problem := _end_problem(raw, tar.offset):
        chart = f"chart {last.name.split('/')[0]!r}" if last else "the chart"
        after = f" after {last.name!r}" if last else ""
        raise ArchiveError(
            f"the archive of {chart} is corrupt or truncated: {problem} at byte {tar.offset}{after};"
            " helm refuses it (Python's tarfile would drop the rest)"
        )


def read_chart(
    data: bytes,
    *,
    budget: Budget | None = None,
    max_chart: int = MAX_CHART_BYTES,
    max_file: int = MAX_FILE_BYTES,
) -> tuple[str, dict[str, bytes]]:
    """(chart directory name, {path inside the chart: bytes}) of a chart .tgz.

    Raises ArchiveError for anything Helm would not load or that could escape a directory.
    `budget` is shared with the archive's own subcharts; without one, a fresh budget of
    `max_chart` bytes and `max_file` per file is used.
    """
    if budget is None:
        budget = Budget(bytes_left=max_chart, max_file=max_file)
    # The compressed stream may not expand beyond what is left of the budget (plus tar headers).
    # Tar adds a 512-byte header (more for long names) per member on top of the file bytes.
    left = max(budget.bytes_left, 0)
    raw = gunzip_capped(data, left + min(1024 * max(budget.files_left, 0), left // 4) + 64 * 1024)
    files: dict[str, bytes] = {}
    tops: set[str] = set()
    # Members are listed one at a time (not `getmembers()`), each spending the entry budget,
    # directories included: Helm skips them (archive.go:78) but each costs a TarInfo here, and
    # 200,000 of them fit in a 900 KiB .tgz.
    for tar, member in _members(raw):
        parts = _check_name(member.name)
        if member.isdir():
            budget.spend(member.name, 0)
            if parts:
                tops.add(parts[0])
            continue
        if not member.isreg():
            kind = "symlink" if member.issym() else "hard link" if member.islnk() else "special file"
            raise ArchiveError(f"{member.name!r}: a {kind}; charts may hold regular files only")
        if len(parts) < 2:
            raise ArchiveError(f"{member.name!r}: every file must be inside the chart's directory")
        budget.spend(member.name, member.size)
        tops.add(parts[0])
        if len(tops) > 1:
            raise ArchiveError(f"a chart archive has exactly one top-level directory, found {sorted(tops)}")
        path = "/".join(parts[1:])
        if path in files:
            raise ArchiveError(f"{member.name!r} appears twice")
        handle = tar.extractfile(member)
        if handle is None:
            raise ArchiveError(f"{member.name!r} cannot be read")
        try:
            files[path] = handle.read()
        except tarfile.TarError as err:  # e.g. a sparse member's data cut short
            raise ArchiveError(f"{member.name!r} cannot be read: {err}") from None
    if len(tops) != 1:
        raise ArchiveError(f"a chart archive has exactly one top-level directory, found {sorted(tops) or 'none'}")
    (top,) = tops
    if top in (".", ".."):
        raise ArchiveError(f"chart directory {top!r} is not allowed")
    if "Chart.yaml" not in files:
        raise ArchiveError(f"no {top}/Chart.yaml in the archive")
    return top, files
