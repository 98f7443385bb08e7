"""automation/plans.py S3PlanStore against a real S3 API server on loopback (moto's
ThreadedMotoServer, 127.0.0.1), and two "hosts" previewing and applying through it.

Where moto is more lenient than S3 (checked by test_moto_leniency_is_known below, so a moto
change shows): it does not verify a PutObject's ChecksumSHA256 and accepts an SSE-KMS key that
does not exist. The store therefore verifies every plan's bytes against its sha256 on fetch and
refuses any object S3 does not report as aws:kms under the configured key ARN; a missing or
forbidden key in production fails PutObject (a PlanStoreError), which moto cannot show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import server as moto_server

from automation import operations as ops
from automation import plans
from tests.program_copy import program_copy
from tests.test_operations import FAKE, tenant

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint)
        key = boto3.client("kms", endpoint_url=endpoint).create_key()["KeyMetadata"]["Arn"]
        yield {"endpoint": endpoint, "client": client, "key": key}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3: dict[str, Any], request: pytest.FixtureRequest) -> str:
    name = "plans-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    s3["client"].create_bucket(Bucket=name)
    return name


def url(s3: dict[str, Any], bucket: str, prefix: str = "scoutflo/plans") -> str:
    return f"s3://{bucket}/{prefix}?kms_key_id={s3['key']}&region=us-east-1&endpoint={s3['endpoint']}"


def test_moto_leniency_is_known(s3: dict[str, Any], bucket: str) -> None:
    """What the stand-in lets through that S3 would not, and the one rule it does keep."""
    client = s3["client"]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    client.put_object(Bucket=bucket, Key="x", Body=b"data", ChecksumSHA256=wrong)  # S3: BadDigest
    client.put_object(Bucket=bucket, Key="y", Body=b"data", ServerSideEncryption="aws:kms", SSEKMSKeyId="arn:nope")
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=bucket, Key="x", Body=b"again", IfNoneMatch="*")


def test_plans_round_trip_encrypted_and_verified(s3: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    store = plans.open_plan_store(url(s3, bucket))
    assert isinstance(store, plans.S3PlanStore)
    plan = tmp_path / "plan.json"
    plan.write_bytes(b'{"plan": 1}\n')
    digest = store.put(plan)
    assert digest == "sha256:" + hashlib.sha256(plan.read_bytes()).hexdigest()
    assert store.put(plan) == digest, "the same plan again: create-once answers 412, the bytes match"
    head = s3["client"].head_object(Bucket=bucket, Key=f"scoutflo/plans/{digest[7:]}.plan.json")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == s3["key"]
    dest = tmp_path / "fetched.json"
    assert store.fetch(digest, dest) and dest.read_bytes() == plan.read_bytes()
    assert not store.fetch("sha256:" + "0" * 64, tmp_path / "absent.json")

    record = {k: f"v-{k}" for k in plans.RECORD_FIELDS}
    store.put_record(digest, record)
    assert store.record(digest) == record
    store.put_record(digest, {**record, "fingerprint": "newer"})
    assert (store.record(digest) or {})["fingerprint"] == "newer", "a newer preview's record replaces it"
    with pytest.raises(plans.PlanStoreError, match="not 64 lowercase hex"):
        store.fetch("../../etc/passwd", dest)


def test_an_altered_or_unencrypted_plan_is_refused(s3: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    store = plans.open_plan_store(url(s3, bucket))
    plan = tmp_path / "plan.json"
    plan.write_bytes(b'{"plan": 2}\n')
    digest = store.put(plan)
    key = f"scoutflo/plans/{digest[7:]}.plan.json"
    # Someone with write access replaces the bytes (still encrypted by our key): fetch says absent.
    s3["client"].put_object(
        Bucket=bucket, Key=key, Body=b'{"plan": 666}\n', ServerSideEncryption="aws:kms", SSEKMSKeyId=s3["key"]
    )
    assert not store.fetch(digest, tmp_path / "dest.json")
    with pytest.raises(plans.PlanStoreError, match="other bytes"):
        store.put(plan)
    # Written without our KMS key: refused on read, whatever the bytes.
    s3["client"].put_object(Bucket=bucket, Key=key, Body=plan.read_bytes())
    with pytest.raises(plans.PlanStoreError, match="not aws:kms"):
        store.fetch(digest, tmp_path / "dest.json")


def test_prune_drops_old_plans_only_under_the_prefix(s3: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    store = plans.open_plan_store(url(s3, bucket))
    plan = tmp_path / "plan.json"
    plan.write_bytes(b'{"plan": 3}\n')
    digest = store.put(plan)
    s3["client"].put_object(Bucket=bucket, Key="elsewhere/x.plan.json", Body=b"{}")
    assert store.prune(1) == 0
    assert store.prune(-1) == 1, "older than a retention that ended tomorrow"
    assert not store.fetch(digest, tmp_path / "d.json")
    assert s3["client"].get_object(Bucket=bucket, Key="elsewhere/x.plan.json")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("s3://plans/p", "kms_key_id"),
        ("s3://plans/p?kms_key_id=k&acl=public-read", "unknown parameter"),
        ("s3://Bad_Bucket/p?kms_key_id=k", "bucket name"),
        ("gs://plans/p", "use file:///absolute/path or s3://"),
    ],
)
def test_bad_plan_store_urls_are_typed_errors(bad: str, match: str) -> None:
    with pytest.raises(plans.PlanStoreError, match=match):
        plans.open_plan_store(bad)


def test_two_hosts_share_plans_through_s3(
    s3: dict[str, Any], bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host A previews, host B (its own state dir, no plan of its own) applies A's plan by sha256."""
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    program = program_copy(tmp_path / "program")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    key = tmp_path / "digest.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    (tmp_path / "state").mkdir()
    common: dict[str, Any] = {
        "url": f"file://{tmp_path / 'state'}",
        "secrets_provider": "passphrase",
        "env": {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
        "digest_key_file": key,
        "plan_store": url(s3, bucket),
    }
    from tests.test_operations_shared import MemoryBlocks

    blocks = MemoryBlocks()
    host_a = ops.Stacks(ops.Backend(state_dir=tmp_path / "a", **common), project_dir=program, secrets_blocks=blocks)
    host_b = ops.Stacks(ops.Backend(state_dir=tmp_path / "b", **common), project_dir=program, secrets_blocks=blocks)
    changes = ops.preview(tenant(), host_a)
    listed = s3["client"].list_objects_v2(Bucket=bucket, Prefix="scoutflo/plans/")["Contents"]
    assert {o["Key"].rsplit(".", 2)[-2] for o in listed} == {"plan", "record"}
    record = json.loads(
        s3["client"]
        .get_object(Bucket=bucket, Key=f"scoutflo/plans/{changes.plan_sha256[7:]}.record.json")["Body"]
        .read()
    )
    assert record["fingerprint"] == changes.fingerprint
    result = ops.apply(tenant(), changes.fingerprint, host_b, plan_sha256=changes.plan_sha256, message="approval 1")
    assert result["summary"].get("create", 0) > 0


def test_a_bad_plan_store_is_refused_when_the_backend_is_checked(tmp_path: Path) -> None:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("p\n")
    backend = ops.Backend(
        url=f"file://{tmp_path / 'state'}",
        secrets_provider="passphrase",
        state_dir=tmp_path / "tenants",
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
        plan_store="s3://scoutflo-plans/plans",
    )
    with pytest.raises(ops.InvalidSetup, match="kms_key_id"):
        backend.check()
