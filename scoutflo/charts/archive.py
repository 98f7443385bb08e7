"""Reading a Helm chart archive (.tgz) safely: in memory, regular files only, names checked here.

Helm's own loader strips the top directory, rejects absolute paths, `..` and drive letters and
caps 100 MiB per chart and 5 MiB per file (helm/helm pkg/chart/loader/archive). We do the same
and more, because tarfile's extraction filters have had bypasses (CVE-2025-4517, CVE-2026-11940):
nothing is ever extracted; members are read into memory and only regular files are accepted
(no symlinks, hard links or devices: see CVE-2025-53547's symlinked Chart.lock), and a chart
directory named `.` or `..` is refused (CVE-2026-35206).

Limits are one `Budget` per import, shared by the chart and every vendored subchart inside it at
any depth: per-archive limits alone let 40 subcharts of 4 MiB each through.
"""

from __future__ import annotations

import io
import re
import tarfile
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
# C0 controls, DEL and C1 controls: Git stores them, but they break branch names, shells, YAML.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

__all__ = ["MAX_CHART_BYTES", "MAX_FILE_BYTES", "ArchiveError", "Budget", "gunzip_capped", "read_chart"]


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


def name_problem(name: str) -> str | None:
    """Why Git, Helm or a checkout on another OS could not hold this path component or path."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if _CONTROL.search(name):
        return "contains a control character"
    return None


def _check_name(name: str) -> list[str]:
    if problem := name_problem(name):
        raise ArchiveError(f"{name!r} {problem}")
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
    if any(p.lower() == ".git" for p in parts):
        raise ArchiveError(f"{name!r}: a '.git' component cannot be committed")
    return parts


def _members(raw: bytes) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
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
            yield tar, member
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, ValueError) as err:
        raise ArchiveError(f"not a tar archive: {err}") from None


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
        files[path] = handle.read()
    if len(tops) != 1:
        raise ArchiveError(f"a chart archive has exactly one top-level directory, found {sorted(tops) or 'none'}")
    (top,) = tops
    if top in (".", ".."):
        raise ArchiveError(f"chart directory {top!r} is not allowed")
    if "Chart.yaml" not in files:
        raise ArchiveError(f"no {top}/Chart.yaml in the archive")
    return top, files
