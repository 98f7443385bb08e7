"""Reading a Helm chart archive (.tgz) safely: in memory, regular files only, names checked here.

Helm's own loader strips the top directory, rejects absolute paths, `..` and drive letters and
caps 100 MiB per chart and 5 MiB per file (helm/helm pkg/chart/loader/archive). We do the same
and more, because tarfile's extraction filters have had bypasses (CVE-2025-4517, CVE-2026-11940):
nothing is ever extracted; members are read into memory and only regular files are accepted
(no symlinks, hard links or devices: see CVE-2025-53547's symlinked Chart.lock), and a chart
directory named `.` or `..` is refused (CVE-2026-35206).
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib

MAX_CHART_BYTES = 100 * 1024 * 1024
MAX_FILE_BYTES = 5 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(ValueError):
    """A chart archive that is malformed or hostile; nothing from it is used."""


def gunzip_capped(data: bytes, limit: int = MAX_CHART_BYTES) -> bytes:
    """Decompress at most `limit` bytes, so a gzip bomb fails before it fills memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise ArchiveError(f"not a gzip archive: {err}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ArchiveError(f"archive expands beyond {limit // (1024 * 1024)} MiB")
    return out


def _check_name(name: str) -> list[str]:
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
    return parts


def read_chart(
    data: bytes, *, max_chart: int = MAX_CHART_BYTES, max_file: int = MAX_FILE_BYTES
) -> tuple[str, dict[str, bytes]]:
    """(chart directory name, {path inside the chart: bytes}) of a chart .tgz.

    Raises ArchiveError for anything Helm would not load or that could escape a directory.
    """
    raw = gunzip_capped(data, max_chart)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
        members = tar.getmembers()
    except tarfile.TarError as err:
        raise ArchiveError(f"not a tar archive: {err}") from None
    files: dict[str, bytes] = {}
    tops: set[str] = set()
    total = 0
    for member in members:
        parts = _check_name(member.name)
        if member.isdir():
            if parts:
                tops.add(parts[0])
            continue
        if not member.isreg():
            kind = "symlink" if member.issym() else "hard link" if member.islnk() else "special file"
            raise ArchiveError(f"{member.name!r}: a {kind}; charts may hold regular files only")
        if len(parts) < 2:
            raise ArchiveError(f"{member.name!r}: every file must be inside the chart's directory")
        if member.size > max_file:
            raise ArchiveError(f"{member.name!r} is {member.size} bytes; at most {max_file} per file")
        total += member.size
        if total > max_chart:
            raise ArchiveError(f"files add up to more than {max_chart} bytes")
        tops.add(parts[0])
        if len(tops) > 1:
            raise ArchiveError(f"a chart archive has exactly one top-level directory, found {sorted(tops)}")
        path = "/".join(parts[1:])
        if path in files:
            raise ArchiveError(f"{member.name!r} appears twice")
        handle = tar.extractfile(member)
        assert handle is not None
        files[path] = handle.read()
    if len(tops) != 1:
        raise ArchiveError(f"a chart archive has exactly one top-level directory, found {sorted(tops) or 'none'}")
    (top,) = tops
    if top in (".", ".."):
        raise ArchiveError(f"chart directory {top!r} is not allowed")
    if "Chart.yaml" not in files:
        raise ArchiveError(f"no {top}/Chart.yaml in the archive")
    return top, files
