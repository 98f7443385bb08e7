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

Production keeps plans in S3 with SSE-KMS: `S3PlanStore` (boto3), named
`s3://bucket/prefix?kms_key_id=<key id, ARN or alias/…>[&region=…][&endpoint=https://…]`. A mount
is no substitute: mountpoint-s3 does not emulate `rename` on general purpose buckets
(awslabs/mountpoint-s3 doc/SEMANTICS.md, "Behavior tenets" 1), and the directory store writes
aside and renames. Each plan is written once by PutObject with `If-None-Match: *` (S3's
conditional write: 412 when the key exists; a record is rewritten by a newer preview),
`ServerSideEncryption=aws:kms` and the key id, and a
SHA-256 checksum S3 verifies on receipt; a plan is checked against its name on every fetch, and an
object S3 does not report as encrypted under that KMS key is refused (whatever a client or
bucket policy let through).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


def record_bytes(record: dict[str, Any]) -> bytes:
    """A plan's record as the stores keep it, every field of RECORD_FIELDS present as text."""
    missing = [k for k in RECORD_FIELDS if not isinstance(record.get(k), str)]
    if missing:
        raise PlanStoreError(f"a plan record needs {', '.join(missing)}")
    return json.dumps(record, sort_keys=True).encode()


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

        write_aside(self._dir() / f"{hex_of(sha256)}.record.json", record_bytes(record))

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


@functools.lru_cache(maxsize=8)
def _s3_client(region: str, endpoint: str) -> Any:
    """One boto3 client per (region, endpoint) in a process (clients are thread-safe; the worker
    runs its jobs in threads). Credentials: boto3's default chain (the worker's AWS_* or role)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"})
    return boto3.client("s3", region_name=region or None, endpoint_url=endpoint or None, config=config)


@dataclass(frozen=True)
class S3PlanStore:
    """Plans and records under `s3://bucket/prefix/`, SSE-KMS with `kms_key_id`."""

    bucket: str
    prefix: str
    kms_key_id: str
    region: str = ""
    endpoint: str = ""

    def _key(self, hexed: str, kind: str) -> str:
        return f"{self.prefix}{hexed}.{kind}.json"

    def _client(self) -> Any:
        return _s3_client(self.region, self.endpoint)

    def _put(self, key: str, data: bytes, *, once: bool) -> bool:
        """PutObject, SSE-KMS, with the SHA-256 S3 checks on receipt; `once`: only if the key is
        absent (If-None-Match: *). Returns False when it existed already."""
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": self.kms_key_id,
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "ContentType": "application/json",
        }
        if once:
            args["IfNoneMatch"] = "*"
        for _ in range(5):
            try:
                answer = self._client().put_object(**args)
                break
            except ClientError as err:
                code = str(err.response.get("Error", {}).get("Code", ""))
                if once and code in ("PreconditionFailed", "412"):
                    return False
                if once and code == "ConditionalRequestConflict":
                    # 409: a concurrent write of the same key; S3's answer is to retry
                    # (S3 API PutObject, If-None-Match: "On a 409 failure you should retry").
                    time.sleep(0.2)
                    continue
                raise PlanStoreError(f"plan store s3://{self.bucket}/{key}: PutObject refused: {code or err}") from None
        else:
            raise PlanStoreError(f"plan store s3://{self.bucket}/{key}: PutObject kept conflicting (409)")
        self._check_encryption(key, answer)
        return True

    def _check_encryption(self, key: str, answer: dict[str, Any]) -> None:
        """S3 names the encryption it applied in every PutObject/GetObject answer; anything but
        aws:kms (under our key, when the key is given as an ARN: S3 answers the key's ARN) is
        refused, so a plan never sits or is read unencrypted by our key."""
        applied = answer.get("ServerSideEncryption")
        key_id = str(answer.get("SSEKMSKeyId") or "")
        if applied != "aws:kms" or (self.kms_key_id.startswith("arn:") and key_id != self.kms_key_id):
            raise PlanStoreError(
                f"plan store s3://{self.bucket}/{key}: stored with encryption {applied!r} key {key_id!r}, "
                f"not aws:kms under {self.kms_key_id!r}"
            )

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client().get_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404"):
                return None
            raise PlanStoreError(f"plan store s3://{self.bucket}/{key}: GetObject refused: {code or err}") from None
        self._check_encryption(key, answer)
        data: bytes = answer["Body"].read()
        return data

    def put(self, path: Path) -> str:
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest, "plan")
        if not self._put(key, data, once=True):
            # Already there: the same bytes under their own digest, unless altered in the store.
            held = self._get(key)
            if held is None or hashlib.sha256(held).hexdigest() != digest:
                raise PlanStoreError(f"plan store s3://{self.bucket}/{key}: holds other bytes than its name says")
        return f"sha256:{digest}"

    def fetch(self, sha256: str, dest: Path) -> bool:
        from automation.operations import write_aside

        hexed = hex_of(sha256)
        data = self._get(self._key(hexed, "plan"))
        if data is None or hashlib.sha256(data).hexdigest() != hexed:
            return False
        write_aside(Path(dest), data)
        return True

    def put_record(self, sha256: str, record: dict[str, Any]) -> None:
        # Written again by a newer preview of the same plan, like the directory store's record.
        self._put(self._key(hex_of(sha256), "record"), record_bytes(record), once=False)

    def record(self, sha256: str) -> dict[str, Any] | None:
        data = self._get(self._key(hex_of(sha256), "record"))
        if data is None:
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        if not isinstance(parsed, dict) or any(not isinstance(parsed.get(k), str) for k in RECORD_FIELDS):
            return None
        return parsed

    def prune(self, max_age_days: float) -> int:
        """Drop plans and records stored before the retention (LastModified); returns how many."""
        cutoff = datetime.now(UTC) - timedelta(days=max_age_days)
        gone = 0
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.prefix) :]
                if "/" in name or not name.endswith((".plan.json", ".record.json")):
                    continue
                if item["LastModified"] < cutoff:
                    self._client().delete_object(Bucket=self.bucket, Key=item["Key"])
                    gone += 1
        return gone


def open_plan_store(url: str) -> PlanStore:
    """`file:///absolute/dir` → DirectoryPlanStore; `s3://bucket/prefix?kms_key_id=…[&region=…]
    [&endpoint=…]` → S3PlanStore (see the module's docstring)."""
    if url.startswith("file://"):
        root = url.removeprefix("file://")
        if not os.path.isabs(root):
            raise PlanStoreError(f"plan store {url!r}: use file:///absolute/path")
        return DirectoryPlanStore(Path(root))
    if url.startswith("s3://"):
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"kms_key_id", "region", "endpoint"})
        if unknown:
            raise PlanStoreError(f"plan store {url!r}: unknown parameter(s) {', '.join(unknown)}")
        one = {k: v[-1] for k, v in query.items()}
        if not parsed.netloc or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parsed.netloc):
            raise PlanStoreError(f"plan store {url!r}: the bucket name is not a valid S3 bucket name")
        if not one.get("kms_key_id"):
            raise PlanStoreError(
                f"plan store {url!r}: plans are kept with SSE-KMS: add ?kms_key_id=<KMS key ARN or alias/…>"
            )
        prefix = parsed.path.strip("/")
        return S3PlanStore(
            bucket=parsed.netloc,
            prefix=f"{prefix}/" if prefix else "",
            kms_key_id=one["kms_key_id"],
            region=one.get("region", ""),
            endpoint=one.get("endpoint", ""),
        )
    raise PlanStoreError(f"plan store {url!r}: use file:///absolute/path or s3://bucket/prefix?kms_key_id=…")
