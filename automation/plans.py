"""The plan store: every saved update plan, with its record, by sha256, shared by every worker.

An approval names a preview; the preview's plan (what `up --plan` applies) and its record (the
fingerprint, the tenant, the config, state and program digests it was previewed against) live
here under the plan's sha256, so any host can apply it, not only the one that previewed.
Plans are kept after the update (the audit trail: what exactly was applied under an approval);
`prune` drops the ones older than the retention.

Layout: `<root>/<hex>.plan.json` (the plan as the CLI wrote it) and `<root>/<hex>.record.json`,
both 0600 in a directory only the backend's user may read. Each is written aside and renamed
(operations.write_aside), so concurrent writers on many hosts never expose a part: a plan's name
is its content's digest, the same bytes under the same name whoever wins; a record written again
for the same plan is the newer preview's (apply compares its fingerprint with the approval's).

Production keeps plans in S3 with SSE-KMS. This module has no S3 client (it could not be tested
here against the real service): mount the bucket prefix (e.g. mountpoint-s3 or EFS) at the
directory, or sync it; the interface (`put`, `fetch`, `put_record`, `record`, `prune`) is what
an S3 store would implement with PutObject(ServerSideEncryption=aws:kms)/GetObject.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_HEX = re.compile(r"^[0-9a-f]{64}$")
RECORD_FIELDS = ("stack", "fingerprint", "sha256", "configDigest", "stateDigest", "programDigest")


class PlanStoreError(Exception):
    """The store is unusable (bad URL, a directory others can read) or a sha256 is malformed."""


def hex_of(sha256: str) -> str:
    """The 64 hex digits of `sha256:<hex>` or `<hex>`; anything else (a path, `..`) is refused:
    the name comes from a database row and must never name another file."""
    text = sha256.removeprefix("sha256:")
    if not _HEX.match(text):
        raise PlanStoreError(f"plan sha256 {sha256!r} is not 64 lowercase hex digits (optionally after 'sha256:')")
    return text


class PlanStore(Protocol):
    def put(self, path: Path) -> str: ...
    def fetch(self, sha256: str, dest: Path) -> bool: ...
    def put_record(self, sha256: str, record: dict[str, Any]) -> None: ...
    def record(self, sha256: str) -> dict[str, Any] | None: ...
    def prune(self, max_age_days: float) -> int: ...


@dataclass(frozen=True)
class DirectoryPlanStore:
    """A directory (local, or a mount every worker sees)."""

    root: Path

    def _dir(self) -> Path:
        from automation.operations import private_dir

        return private_dir(Path(self.root))

    def put(self, path: Path) -> str:
        """Store the plan at `path`; returns `sha256:<hex>` of its bytes."""
        from automation.operations import write_aside

        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        target = self._dir() / f"{digest}.plan.json"
        if not (target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest):
            write_aside(target, data)
        return f"sha256:{digest}"

    def fetch(self, sha256: str, dest: Path) -> bool:
        """Copy the plan into `dest` (0600) when the store has it with exactly that digest; False
        when it is absent or its bytes no longer match (altered in the store)."""
        from automation.operations import write_aside

        hexed = hex_of(sha256)
        try:
            data = (self._dir() / f"{hexed}.plan.json").read_bytes()
        except FileNotFoundError:
            return False
        if hashlib.sha256(data).hexdigest() != hexed:
            return False
        write_aside(Path(dest), data)
        return True

    def put_record(self, sha256: str, record: dict[str, Any]) -> None:
        from automation.operations import write_aside

        missing = [k for k in RECORD_FIELDS if not isinstance(record.get(k), str)]
        if missing:
            raise PlanStoreError(f"a plan record needs {', '.join(missing)}")
        hexed = hex_of(sha256)
        write_aside(self._dir() / f"{hexed}.record.json", json.dumps(record, sort_keys=True).encode())

    def record(self, sha256: str) -> dict[str, Any] | None:
        """The record beside the plan, or None when absent or not a whole record."""
        hexed = hex_of(sha256)
        try:
            data = json.loads((self._dir() / f"{hexed}.record.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(data, dict) or any(not isinstance(data.get(k), str) for k in RECORD_FIELDS):
            return None
        return data

    def prune(self, max_age_days: float) -> int:
        """Drop plans and records older than the retention (by the time they were stored);
        returns how many files went. No operation calls it: the backend runs it (e.g. daily).
        A plan older than the retention that is still unapplied belongs to a preview nobody
        decided on in that time; its apply is then refused (the plan is gone), never run blind."""
        cutoff = time.time() - max_age_days * 86400
        gone = 0
        for path in self._dir().iterdir():
            if not path.name.endswith((".plan.json", ".record.json")):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        return gone


def open_plan_store(url: str) -> PlanStore:
    """`file:///absolute/dir` → DirectoryPlanStore. `s3://…` is refused with what to do instead
    (see the module's docstring)."""
    if url.startswith("file://"):
        root = url.removeprefix("file://")
        if not os.path.isabs(root):
            raise PlanStoreError(f"plan store {url!r}: use file:///absolute/path")
        return DirectoryPlanStore(Path(root))
    if url.startswith("s3://"):
        raise PlanStoreError(
            f"plan store {url!r}: S3 is not built in; mount the bucket prefix (mountpoint-s3, SSE-KMS on the "
            "bucket) on every worker and name it file:///mount/path"
        )
    raise PlanStoreError(f"plan store {url!r}: use file:///absolute/path")
