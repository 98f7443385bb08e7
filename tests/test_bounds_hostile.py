"""Issue 16 §3: untrusted YAML, versions and tag lists are bounded in what they build, and chart
acquisition runs in a child process under a real deadline and memory cap.

Each bomb is built here a little past its limit and sent the way a source would send it (loopback
Helm repositories and OCI registries); the figures of the full-size bombs, before and after, are
in bench/yaml_bounds.py. No assertion here is on time: a bomb that were not refused would hang or
kill the child, which fails the case."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import signal
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoutflo.charts import safe_yaml
from scoutflo.charts.bounded import Limits, Request, acquire, answer
from scoutflo.charts.errors import AcquisitionError, ArchiveError, ChartError, FetchError
from scoutflo.charts.fetch import MAX_TAGS, MAX_VERSIONS, ChartFetcher
from scoutflo.charts.http import Http, _retry_after
from scoutflo.charts.plan import plan_import
from scoutflo.charts.versions import MAX_VERSION_CHARS, VersionError, highest_match, parse_version
from tests.hostile import Route, hostile_server, reply, trickle_body

DEPTH = 10_000
NESTED = {
    "flow sequences": "a: " + "[" * DEPTH + "]" * DEPTH + "\n",
    "flow mappings": "a: " + "{a: " * DEPTH + "1" + "}" * DEPTH + "\n",
    "unclosed flow sequences (the 590-byte gzip index)": "a: " + "[" * 600_000,
    "compact block sequences": "a:\n" + "- " * DEPTH + "x\n",
    # 1 000 deep: each level is one more column, so 10 000 would be 50 MB of spaces.
    "indented block mappings": "a:\n" + "".join(" " * i + "k:\n" for i in range(1, 1000)) + " " * 1000 + "k: 1\n",
}


def chart_tgz(chart_yaml: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in {"demo/Chart.yaml": chart_yaml, **(extra or {})}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD = chart_tgz(
    b"apiVersion: v2\nname: demo\nversion: 1.0.0\n",
    {"demo/templates/cm.yaml": b"kind: ConfigMap\n", "demo/files/blob.bin": bytes(range(256)) * 4},
)


def entry(version: str, archive: bytes = GOOD) -> dict[str, Any]:
    return {"version": version, "urls": ["demo.tgz"], "digest": hashlib.sha256(archive).hexdigest()}


def helm_repo(index: bytes, archive: bytes = GOOD, gzip_index: bool = False) -> Any:
    def route(path: str) -> Route | None:
        if path == "/index.yaml":
            if gzip_index:
                body = gzip.compress(index)
                return lambda h, _p: reply(h, 200, body, {"Content-Encoding": "gzip"})
            return lambda h, _p: reply(h, 200, index)
        if path == "/demo.tgz":
            return lambda h, _p: reply(h, 200, archive)
        return None

    return hostile_server(route)


def request(repo: str, *, oci: bool = False) -> Request:
    return Request(app="app", repo=repo, chart="demo", constraint="*", plain_http=oci, mode="vendor", description="")


TEST_LIMITS = Limits(seconds=60)


def bounded(repo: str, tmp_path: Path, *, oci: bool = False, limits: Limits = TEST_LIMITS) -> Any:
    """Acquire through the program's path: a capped child process."""
    return acquire(request(repo, oci=oci), cache=tmp_path / "cache", credentials={}, limits=limits)


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure Python"])
@pytest.mark.parametrize("text", list(NESTED.values()), ids=list(NESTED))
def test_deep_nesting_is_refused_before_it_is_built(text: str, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not libyaml:
        monkeypatch.setattr(safe_yaml, "_CLoader", None)
    for load in (lambda: safe_yaml.load(text, "Chart.yaml"), lambda: safe_yaml.load_at(text, "index.yaml", ("a",))):
        with pytest.raises(safe_yaml.UntrustedYamlError, match=f"nested more than {safe_yaml.MAX_DEPTH} collections"):
            load()


def test_the_depth_limit_is_exact_and_blind_to_quotes_comments_and_block_scalars() -> None:
    """The depth is libyaml's own: brackets in a quoted scalar, a comment or a block scalar are
    text, so no document is refused for them, whatever their count."""
    at_limit = "[" * safe_yaml.MAX_DEPTH + "]" * safe_yaml.MAX_DEPTH
    assert safe_yaml.load(at_limit, "ok") is not None
    with pytest.raises(safe_yaml.UntrustedYamlError, match="nested more than"):
        safe_yaml.load("[" + at_limit + "]", "deep")
    brackets = "[{" * DEPTH
    text = f"a: '{brackets}'\nb: \"{brackets}\"\n# {brackets}\nc: |\n  {brackets}\nd: x{brackets}\n"
    assert safe_yaml.load(text, "ok")["c"] == brackets + "\n"
    assert safe_yaml.load_at(text, "ok", ("d",)) == (1, "x" + brackets)


def test_a_chart_yaml_that_crashed_the_c_composer_is_a_typed_error(tmp_path: Path) -> None:
    """80 KB of nested sequences in Chart.yaml: PyYAML's C composer recursed until SIGSEGV."""
    bomb = b"apiVersion: v2\nname: demo\nversion: 1.0.0\nkeywords: " + b"[" * 40_000 + b"]" * 40_000 + b"\n"
    archive = chart_tgz(bomb)
    index = yaml.safe_dump({"entries": {"demo": [entry("1.0.0", archive)]}}).encode()
    with helm_repo(index, archive) as (port, _seen):
        with pytest.raises(ChartError, match=r"chart demo .*nested more than 64 collections deep") as err:
            bounded(f"http://127.0.0.1:{port}", tmp_path)
    assert not isinstance(err.value, AcquisitionError)  # refused by the parser, not by a dying child


# ------------------------------------------------------------------ integers


@pytest.mark.parametrize(
    "scalar",
    ["1" * 4301, "1_" * 2200 + "1", ":".join(["1"] + ["59"] * 100_000), "!!int '" + "1" * 5000 + "'"],
    ids=["4301 digits", "underscored", "sexagesimal", "tagged"],
)
def test_an_integer_past_pythons_digit_limit_is_a_typed_error(scalar: str) -> None:
    for load in (
        lambda: safe_yaml.load(f"a: {scalar}\n", "Chart.yaml"),
        lambda: safe_yaml.load_at(f"a: {scalar}\n", "i", ("a",)),
    ):
        with pytest.raises(safe_yaml.UntrustedYamlError, match=r"an integer of .* characters; at most 4300"):
            load()
    assert safe_yaml.load("a: " + "9" * 4300 + "\nb: 0x1F\nc: 1:30\n", "ok") == {"a": int("9" * 4300), "b": 31, "c": 90}


def test_a_constructor_failure_is_a_typed_error() -> None:
    for load in (
        lambda: safe_yaml.load("a: 0000-01-01\n", "Chart.yaml"),
        lambda: safe_yaml.load_at("a: 0000-01-01\n", "i", ("a",)),
    ):
        with pytest.raises(safe_yaml.UntrustedYamlError, match="year 0 is out of range"):
            load()


# ------------------------------------------------------------------ versions and indexes


def test_versions_longer_than_an_oci_tag_are_refused_before_any_regex() -> None:
    longest = "1.0.0-" + "a" * (MAX_VERSION_CHARS - 6)
    assert str(parse_version(longest)) == longest
    with pytest.raises(VersionError, match=f"129 characters is not accepted; at most {MAX_VERSION_CHARS}"):
        parse_version(longest + "a")
    with pytest.raises(VersionError, match="8388614 characters"):
        parse_version("1.0.0-" + "a" * 8 * 1024 * 1024)
    assert highest_match(["1.0.0", "2.0.0-" + "a" * 200], "*-0") == "1.0.0"


def test_an_index_of_100_000_versions_is_refused_after_the_limit(tmp_path: Path) -> None:
    lines = ["entries:", "  demo:"]
    lines += [f"  - {{version: 1.0.{i}, urls: [demo.tgz], digest: {'0' * 64}}}" for i in range(100_000)]
    index = ("\n".join(lines) + "\n").encode()
    with helm_repo(index, gzip_index=True) as (port, _seen):
        with pytest.raises(FetchError, match=f"chart demo from .*entries.demo lists more than {MAX_VERSIONS} items"):
            bounded(f"http://127.0.0.1:{port}", tmp_path)
        # The same index, limited to what a real chart has, is read by the same code.
        small = ("\n".join(lines[: 2 + MAX_VERSIONS]) + "\n").encode()
        found, listed = safe_yaml.load_at(small, "i", ("entries", "demo"), max_items=MAX_VERSIONS, fields=("version",))
        assert found == 2 and len(listed) == MAX_VERSIONS and listed[-1] == {"version": f"1.0.{MAX_VERSIONS - 1}"}


def test_only_the_fields_used_are_kept_of_each_entry_and_their_size_is_capped() -> None:
    index = yaml.safe_dump(
        {"entries": {"demo": [{**entry("1.0.0"), "annotations": {f"k{i}": i for i in range(1000)}}]}}
    )
    _, listed = safe_yaml.load_at(index, "i", ("entries", "demo"), fields=("version", "digest"), max_nodes=10)
    assert listed == [{"version": "1.0.0", "digest": entry("1.0.0")["digest"]}]
    urls = yaml.safe_dump({"entries": {"demo": [{"version": "1.0.0", "urls": ["u"] * 1000}]}})
    with pytest.raises(safe_yaml.UntrustedYamlError, match=r"entries\.demo holds more than 100 values"):
        safe_yaml.load_at(urls, "i", ("entries", "demo"), fields=("version", "urls"), max_nodes=100)
    twice = "entries:\n  demo:\n  - version: 1.0.0\n    version: 2.0.0\n"
    with pytest.raises(safe_yaml.UntrustedYamlError, match="duplicate key 'version'"):
        safe_yaml.load_at(twice, "i", ("entries", "demo"), fields=("version",))


def test_a_megabyte_prerelease_in_an_index_is_refused_by_name(tmp_path: Path) -> None:
    index = yaml.safe_dump({"entries": {"demo": [entry("1.0.0"), entry("1.0.1-" + "a" * 1024 * 1024)]}}).encode()
    with helm_repo(index, gzip_index=True) as (port, _seen):
        with pytest.raises(FetchError, match=r"chart demo from .*a version of 1048582 characters; at most 128"):
            bounded(f"http://127.0.0.1:{port}", tmp_path)


# ------------------------------------------------------------------ OCI tags


def oci(tags_pages: list[bytes]) -> Any:
    def route(path: str) -> Route | None:
        if path.startswith("/v2/charts/demo/tags/list"):
            n = int(path.rpartition("page=")[2]) if "page=" in path else 0
            more = {"Link": f'</v2/charts/demo/tags/list?page={n + 1}>; rel="next"'} if n + 1 < len(tags_pages) else {}
            return lambda h, _p: reply(h, 200, tags_pages[n], more)
        return None

    return hostile_server(route)


def page(tags: list[str]) -> bytes:
    return json.dumps({"name": "charts/demo", "tags": tags}).encode()


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        ([page([f"1.0.{i}" for i in range(MAX_TAGS + 1)])], f"more than {MAX_TAGS} tags"),
        ([page([f"1.{p}.{i}" for i in range(MAX_TAGS // 4)]) for p in range(5)], f"more than {MAX_TAGS} tags"),
        ([page(["1.0.0", "1.0.1-" + "a" * 123])], "a tag of 129 characters; OCI tags are at most 128"),
        ([b"[" * 100_000 + b"]" * 100_000], "is nested too deeply"),
    ],
    ids=["one page", "across pages", "one tag too long", "deep JSON"],
)
def test_oci_tag_lists_are_bounded(pages: list[bytes], message: str, tmp_path: Path) -> None:
    with oci(pages) as (port, seen):
        with pytest.raises(
            FetchError, match=f"chart demo from oci://127.0.0.1:{port}/charts: (the )?tag list .*{message}"
        ):
            ChartFetcher(tmp_path, http=Http(attempts=1)).fetch(
                f"oci://127.0.0.1:{port}/charts", "demo", "*", plain_http=True
            )
    assert len(seen.requests) <= len(pages)


# ------------------------------------------------------------------ the bounded child


def test_the_child_answers_the_same_plan_as_in_process(tmp_path: Path) -> None:
    index = yaml.safe_dump({"entries": {"demo": [entry("1.0.0")]}}).encode()
    with helm_repo(index) as (port, _seen):
        repo = f"http://127.0.0.1:{port}"
        got = bounded(repo, tmp_path)
        fetched = ChartFetcher(tmp_path / "cache", http=Http(offline=True)).fetch(repo, "demo", "*")
    want = plan_import(app="app", mode="vendor", fetched=fetched, constraint="*", description="")
    assert got == want
    assert isinstance(got.files["chart/files/blob.bin"], bytes)


def test_a_chart_error_in_the_child_keeps_its_class(tmp_path: Path) -> None:
    with hostile_server(lambda _p: None) as (port, _seen):
        with pytest.raises(FetchError, match=f"chart demo from http://127.0.0.1:{port}: .*HTTP 404"):
            bounded(f"http://127.0.0.1:{port}", tmp_path)
    archive = chart_tgz(b"apiVersion: v2\nname: demo\nversion: 1.0.0\n", {"other/x": b""})
    index = yaml.safe_dump({"entries": {"demo": [entry("1.0.0", archive)]}}).encode()
    with helm_repo(index, archive) as (port, _seen):
        with pytest.raises(ArchiveError):
            bounded(f"http://127.0.0.1:{port}", tmp_path)


def test_a_source_that_holds_the_child_past_the_deadline_is_stopped(tmp_path: Path) -> None:
    """Http's own deadline is 300 s; the wall clock of the child is the parent's."""

    with hostile_server(lambda p: trickle_body if p == "/index.yaml" else None) as (port, _seen):
        with pytest.raises(AcquisitionError, match=r"chart demo from .*: acquisition gave no answer within 3 s"):
            bounded(f"http://127.0.0.1:{port}", tmp_path, limits=Limits(seconds=3))


def test_a_child_past_its_memory_cap_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(AcquisitionError, match=r"chart demo from http://127.0.0.1:9: .*more than 16 MiB of memory"):
        bounded("http://127.0.0.1:9", tmp_path, limits=Limits(memory_bytes=16 * 1024 * 1024))


@pytest.mark.parametrize(
    ("returncode", "stderr", "message"),
    [
        (-signal.SIGSEGV, b"", r"killed by SIGSEGV \(memory cap 2048 MiB\)"),
        (-signal.SIGXCPU, b"", r"killed by SIGXCPU \(CPU limit 240 s\)"),
        (-signal.SIGKILL, b"", r"killed by SIGKILL \(CPU limit 240 s, or the system ran out of memory\)"),
        (1, b"Traceback ...\nMemoryError\n", "more than 2048 MiB of memory"),
        (1, b"Traceback ...\nKeyError: '\x1b[31mx'\n", r"failed \(exit 1\): KeyError: '\?\[31mx'"),
    ],
)
def test_a_child_that_died_is_named_with_the_limit(returncode: int, stderr: bytes, message: str) -> None:
    with pytest.raises(AcquisitionError, match=f"^chart demo from http://h: .*{message}"):
        answer(request("http://h"), returncode, b"", stderr, Limits())


@pytest.mark.parametrize(("value", "wait"), [("²", None), ("٣", None), ("7", 7.0), (" 12 ", 12.0), ("-5", None)])
def test_retry_after_takes_ascii_digits_only(value: str, wait: float | None) -> None:
    """str.isdigit() accepts a superscript two, float() then raised: a traceback, not a wait."""
    assert _retry_after(value) == wait


def test_a_non_ascii_retry_after_from_a_server_is_waited_as_backoff(tmp_path: Path) -> None:
    with hostile_server(lambda _p: lambda h, _q: reply(h, 503, b"", {"Retry-After": "²"})) as (port, seen):
        http = Http(attempts=2, backoff=0.01)
        with pytest.raises(FetchError, match=r"unreachable after 2 attempts \(HTTP 503\)"):
            ChartFetcher(tmp_path, http=http).fetch(f"http://127.0.0.1:{port}", "demo", "*")
    assert len(seen.requests) == 2
