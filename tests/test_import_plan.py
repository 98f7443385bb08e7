"""Import plans from archives built here: binary files byte for byte, one budget across nested
subcharts, names Git and Helm can hold, Chart.yaml forms edited into files Helm and ci/release read."""

from __future__ import annotations

import bz2
import gzip
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoutflo.charts.archive import ArchiveError, Budget, read_chart
from scoutflo.charts.fetch import FetchedChart, sha256
from scoutflo.charts.plan import plan_import, tree_problems

ROOT = Path(__file__).resolve().parent.parent
CHART = b"apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: 2.0.0\n"


def tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fetched(files: dict[str, bytes], chart: str = "demo", version: str = "1.0.0") -> FetchedChart:
    archive = tgz(files)
    return FetchedChart(chart=chart, version=version, digest=sha256(archive), source="https://x", archive=archive)


def plan(files: dict[str, bytes], mode: str = "vendor", **kw: str) -> dict[str, str | bytes]:
    return plan_import(app="app", mode=mode, fetched=fetched(files, **kw), constraint="*", description="d").files


def sub(name: str, extra: dict[str, bytes] | None = None, version: str = "0.1.0") -> bytes:
    return tgz({f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode(), **(extra or {})})


# ------------------------------------------------------------------ binary files


def test_binary_files_are_planned_byte_for_byte() -> None:
    """kube-prometheus-stack's charts/crds/files/crds.bz2, an icon with a NUL, invalid UTF-8."""
    crds = bz2.compress(b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n" * 50)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    files = plan(
        {
            "demo/Chart.yaml": CHART,
            "demo/files/icon.png": png,
            "demo/files/latin1.txt": "caf\xe9".encode("latin-1"),
            "demo/files/nul.txt": b"a\x00b",
            "demo/values.yaml": "greeting: héllo\n".encode(),
            "demo/charts/crds-0.0.0.tgz": sub("crds", {"crds/files/crds.bz2": crds}),
        }
    )
    assert files["chart/charts/crds/files/crds.bz2"] == crds
    assert files["chart/files/icon.png"] == png
    assert files["chart/files/latin1.txt"] == b"caf\xe9"
    assert files["chart/files/nul.txt"] == b"a\x00b"
    assert files["chart/values.yaml"] == "greeting: héllo\n", "text stays str"
    assert {type(v) for v in files.values()} == {str, bytes}


# ------------------------------------------------------------------ one budget, nesting depth


def test_one_budget_across_all_nested_subcharts() -> None:
    """40 vendored subcharts of 4 MiB each: every archive is under the per-chart cap, together not."""
    big = b"a" * (4 * 1024 * 1024)
    files = {"demo/Chart.yaml": CHART}
    for i in range(40):
        files[f"demo/charts/s{i}-0.1.0.tgz"] = sub(f"s{i}", {f"s{i}/files/blob.txt": big})
    with pytest.raises(ArchiveError, match="byte budget"):
        plan(files)


def test_file_count_is_one_budget_too() -> None:
    budget = Budget(files_left=5)
    with pytest.raises(ArchiveError, match="file budget"):
        read_chart(tgz({"demo/Chart.yaml": CHART, **{f"demo/f{i}": b"x" for i in range(5)}}), budget=budget)


def test_subchart_nesting_depth_is_capped() -> None:
    inner = sub("s6")
    for i in range(5, -1, -1):
        inner = sub(f"s{i}", {f"s{i}/charts/s{i + 1}-0.1.0.tgz": inner})
    with pytest.raises(ArchiveError, match="nested deeper than 5"):
        plan({"demo/Chart.yaml": CHART, "demo/charts/s0-0.1.0.tgz": inner})
    ok = sub("s1", {"s1/charts/s2-0.1.0.tgz": sub("s2")})
    assert "chart/charts/s1/charts/s2/Chart.yaml" in plan({"demo/Chart.yaml": CHART, "demo/charts/s1.tgz": ok})


# ------------------------------------------------------------------ what Git and Helm cannot hold


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"demo/templates/a\nb.yaml": b"x"}, "control character"),
        ({"demo/templates/a\x7f.yaml": b"x"}, "control character"),
        ({"demo/templates/\udcff.yaml": b"x"}, "not valid UTF-8"),
        ({"demo/templates": b"x", "demo/templates/a.yaml": b"x"}, "both a file and a directory"),
        ({"demo/templates/A.yaml": b"x", "demo/templates/a.yaml": b"x"}, "differ only in case"),
        ({"demo/.GIT/config": b"x"}, ".git"),
        (
            {"demo/charts/a-1.tgz": sub("a"), "demo/charts/a-2.tgz": sub("a", version="0.2.0")},
            "two subcharts named 'a'",
        ),
        ({"demo/charts/a-1.tgz": sub("a"), "demo/charts/a/Chart.yaml": b"name: a\nversion: 1.0.0\n"}, "two subcharts"),
        (
            {"demo/charts/x.tgz": tgz({"x/Chart.yaml": b'name: "a\\nb"\nversion: 1.0.0\n'})},
            "not a Helm chart name",
        ),
        ({"demo/charts/x.tgz": tgz({"x/Chart.yaml": b"name: x\nversion: '1.0.0 '\n"})}, "whitespace"),
        ({"demo/files/" + "é" * 128: b"x"}, "longer than 255 bytes"),
        ({"demo/" + "d/" * 2100 + "f": b"x"}, "longer than 4096 bytes"),
    ],
    ids=[
        "newline",
        "DEL",
        "invalid UTF-8",
        "file and directory",
        "case",
        ".git",
        "duplicate subcharts",
        "subchart tgz and directory",
        "subchart name with newline",
        "subchart version with whitespace",
        "name over NAME_MAX",
        "path over PATH_MAX",
    ],
)
def test_what_git_or_helm_cannot_hold_is_refused(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        plan({"demo/Chart.yaml": CHART, **files})


@pytest.mark.parametrize(
    ("chart", "version", "message"),
    [
        ("de\nmo", "1.0.0", "not a Helm chart name"),
        ("de$mo", "1.0.0", "not a Helm chart name"),
        ("a..b", "1.0.0", "Git branch"),
        ("demo", "1.0.0 ", "whitespace"),
        ("demo", "1.0.0\n", "whitespace"),
    ],
)
def test_chart_names_and_versions_that_would_inject(chart: str, version: str, message: str) -> None:
    """A name with a newline would inject YAML into the umbrella values.yaml and the branch name."""
    with pytest.raises(ArchiveError, match=message):
        plan({"demo/Chart.yaml": CHART}, mode="umbrella", chart=chart, version=version)


def test_tree_problems_accepts_a_normal_chart() -> None:
    assert tree_problems(["chart/Chart.yaml", "chart/templates/a.yaml", "chart/charts/sub/Chart.yaml"]) == []


# ------------------------------------------------------------------ Chart.yaml forms


def release_fields(chart_dir: Path) -> tuple[str, str]:
    """name and version exactly as the app repo's ci/release reads them (its own `field` function)."""
    script = (ROOT / "scoutflo" / "scaffold" / "ci" / "release").read_text()
    field = next(line for line in script.splitlines() if line.startswith("field()"))
    out = subprocess.run(
        ["bash", "-c", f'{field}\nchart_dir="$1"\nfield name\nfield version', "x", str(chart_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], out[1]


@pytest.mark.parametrize(
    "chart_yaml",
    [
        b"\xef\xbb\xbfapiVersion: v2\nname: demo\nversion: 1.0.0\n",
        b"apiVersion: v2\r\nname: demo\r\nversion: 1.0.0\r\n# upstream comment\r\n",
        b"{apiVersion: v2, name: demo, version: 1.0.0, annotations: {a: b}}\n",
        b"apiVersion: v2\nname:\n  demo\nversion: '1.0.0'\nannotations: {a: b}\n",
        b'apiVersion: v2\nversion: 1.0.0 # pinned\nname: "demo"\nannotations:\n  a: b\n',
    ],
    ids=["BOM", "CRLF", "flow mapping", "multi-line name", "quoted and commented"],
)
def test_chart_yaml_edits_give_a_file_helm_and_ci_release_read(chart_yaml: bytes, tmp_path: Path) -> None:
    files = plan({"demo/Chart.yaml": chart_yaml, "demo/templates/cm.yaml": b"kind: ConfigMap\n"})
    text = files["chart/Chart.yaml"]
    assert isinstance(text, str) and "\r" not in text and not text.startswith("\ufeff")
    meta = yaml.safe_load(text)
    assert (meta["name"], meta["version"]) == ("app", "0.1.0")
    assert meta["annotations"]["scoutflo.io/upstream"] == "https://x/demo:1.0.0"
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text(text)
    assert release_fields(chart) == ("app", "0.1.0")
    helm = subprocess.run(["helm", "show", "chart", str(chart)], capture_output=True, text=True, timeout=60)
    assert helm.returncode == 0, helm.stderr
    shown = yaml.safe_load(helm.stdout)
    assert (shown["name"], shown["version"]) == ("app", "0.1.0"), "Helm loads the same name and version"


@pytest.mark.parametrize(
    ("chart_yaml", "message"),
    [
        (b"apiVersion: v2\nname: demo\nversion: 1.0.0\nname: other\n", "duplicate key 'name'"),
        (b"apiVersion: v2\nname: demo\nversion: 1.0.0\n---\nname: other\n", "single document"),
        (b"apiVersion: v2\nname: &n demo\nversion: 1.0.0\ndescription: *n\n", "aliases"),
        (b"- name: demo\n", "must be a YAML mapping"),
        (b"apiVersion: v2\nname: demo\nversion: [1]\n", "version must be a non-empty string"),
        (b"apiVersion: v2\nname: demo\nversion: 1.0.0\nannotations: [a]\n", "annotations must be a mapping"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_odd_chart_yaml_is_a_typed_error(chart_yaml: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        plan({"demo/Chart.yaml": chart_yaml})


def test_a_vendored_tgz_never_overwrites_a_directory_subchart() -> None:
    """charts/a/ holds a subchart named b; charts/a-1.tgz (named a) would unpack over it."""
    files = {
        "demo/Chart.yaml": CHART,
        "demo/charts/a/Chart.yaml": b"apiVersion: v2\nname: b\nversion: 1.0.0\n",
        "demo/charts/a-1.tgz": sub("a"),
    }
    with pytest.raises(ArchiveError, match=r"would overwrite charts/a/Chart\.yaml"):
        plan(files)


@pytest.mark.parametrize("with_libyaml", [True, False])
@pytest.mark.parametrize(
    ("text", "message"),
    [("a: &x [1]\nb: *x\n", "aliases"), ("a: 1\na: 2\n", "duplicate key 'a'"), ("a: 1\n---\nb: 2\n", "single")],
)
def test_untrusted_yaml_with_and_without_libyaml(
    monkeypatch: pytest.MonkeyPatch, with_libyaml: bool, text: str, message: str
) -> None:
    from scoutflo.charts import safe_yaml

    if not with_libyaml:
        monkeypatch.setattr(safe_yaml, "_CLoader", None)
    assert safe_yaml.load("a: [1, {b: c}]\n", "ok") == {"a": [1, {"b": "c"}]}
    with pytest.raises(safe_yaml.UntrustedYamlError, match=message):
        safe_yaml.load(text, "src")


@pytest.mark.parametrize(
    ("app", "mode", "chart_yaml"),
    [
        ("y", "vendor", CHART),
        ("1e3", "vendor", b"{apiVersion: v2, name: demo, version: 1.0.0}\n"),
        ("0o17", "umbrella", CHART),
    ],
)
def test_names_go_yaml_reads_as_numbers_or_booleans_stay_strings(
    app: str, mode: str, chart_yaml: bytes, tmp_path: Path
) -> None:
    """App names are DNS labels, and `y`, `1e3`, `0o17` are DNS labels that Helm's YAML reader
    (sigs.k8s.io/yaml on go.yaml.in/yaml/v2: resolve.go's resolveMapList holds y/Y/n/N as booleans,
    and Go's ParseInt/ParseFloat take 0o17 and 1e3; helm/helm pkg/chart/v2/loader/load.go:84) loads
    as `true`, `1000`, `15`, while PyYAML (YAML 1.1) keeps them strings: written plain, the chart
    would be packaged and pushed under another name. The upstream chart `n` is the umbrella's
    dependency name and its values key."""
    chart = "n" if mode == "umbrella" else "demo"
    files = plan_import(
        app=app,
        mode=mode,
        fetched=fetched({"demo/Chart.yaml": chart_yaml}, chart=chart),
        constraint="*",
        description="d",
    ).files
    out = tmp_path / "chart"
    out.mkdir()
    (out / "Chart.yaml").write_text(str(files["chart/Chart.yaml"]))
    assert release_fields(out) == (app, "0.1.0")
    helm = subprocess.run(["helm", "show", "chart", str(out)], capture_output=True, text=True, timeout=60)
    assert helm.returncode == 0, helm.stderr
    shown = yaml.safe_load(helm.stdout)
    assert (shown["name"], shown["version"]) == (app, "0.1.0"), "Helm loads the app's name"
    if mode == "umbrella":
        assert [d["name"] for d in shown["dependencies"]] == ["n"]
        assert "\nn:" not in "\n" + str(files["chart/values.yaml"]), "values key written so Go reads 'n'"
        lock = str(files["chart/Chart.lock"])
        assert "name: n\n" not in lock


def test_directory_entries_spend_the_entry_budget() -> None:
    """A 900 KiB .tgz of 200,000 directory entries took 16 s and 200 MB to list and was accepted:
    directory entries cost Helm nothing (pkg/chart/loader/archive/archive.go:78 skips them) but
    cost us a TarInfo each, so they count against the file budget and listing stops there."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("demo/Chart.yaml")
        info.size = len(CHART)
        tar.addfile(info, io.BytesIO(CHART))
        for i in range(50):
            entry = tarfile.TarInfo(f"demo/d{i}")
            entry.type = tarfile.DIRTYPE
            tar.addfile(entry)
    with pytest.raises(ArchiveError, match="file budget"):
        read_chart(buf.getvalue(), budget=Budget(files_left=20))


@pytest.mark.parametrize(
    ("tail", "message"),
    [(lambda gz: gz + gz, "data after the gzip stream"), (lambda gz: gz[:-8], "truncated")],
    ids=["second gzip member", "truncated"],
)
def test_gzip_stream_must_be_exactly_one_complete_member(tail: Any, message: str) -> None:
    """Go's gzip reader (Helm) reads concatenated members and fails on a truncated stream; zlib
    stops after the first member and returns a truncated one's prefix: refused either way, so
    what we review is what Helm would load."""
    with pytest.raises(ArchiveError, match=message):
        read_chart(tail(tgz({"demo/Chart.yaml": CHART})))


def test_subcharts_helm_ignores_stay_ignored() -> None:
    """Helm skips every charts/ entry whose name starts with '_' or '.' (helm/helm
    pkg/chart/v2/loader/load.go:175 `strings.IndexAny(n, "_.") == 0`): unpacking `_off.tgz` into
    charts/gone/ would switch on a subchart upstream ships switched off, and `charts/_old/` may
    share a name with a live subchart."""
    files = plan(
        {
            "demo/Chart.yaml": CHART,
            "demo/charts/_off.tgz": sub("gone"),
            "demo/charts/.hidden.tgz": sub("hidden"),
            "demo/charts/_old/Chart.yaml": b"apiVersion: v2\nname: live\nversion: 0.0.1\n",
            "demo/charts/live-1.tgz": sub("live"),
        }
    )
    assert files["chart/charts/_off.tgz"] == sub("gone") and files["chart/charts/.hidden.tgz"] == sub("hidden")
    assert not [p for p in files if p.startswith(("chart/charts/gone/", "chart/charts/hidden/"))]
    assert "chart/charts/live/Chart.yaml" in files


def test_a_pax_global_header_cannot_rename_members() -> None:
    """Python's tarfile applies a pax global header's `path` to later members that carry a pax
    header of their own; Go's archive/tar returns the global header as an entry and Helm skips it
    (pkg/chart/loader/archive/archive.go:86), so the two would read different file names."""
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"path": "demo/templates/x.yaml"}
    ) as tar:
        chart = tarfile.TarInfo("demo/Chart.yaml")
        chart.size = len(CHART)
        tar.addfile(chart, io.BytesIO(CHART))
        readme = tarfile.TarInfo("demo/README.md")
        readme.size, readme.pax_headers = 5, {"mtime": "1.5"}
        tar.addfile(readme, io.BytesIO(b"hello"))
    with pytest.raises(ArchiveError, match="pax global header"):
        read_chart(gzip.compress(buf.getvalue()))


@pytest.mark.parametrize("app", ["y", "1e3", "0o17", "webapp"])
def test_template_charts_keep_names_go_yaml_would_read_as_other_values(app: str, tmp_path: Path) -> None:
    """The template path writes Chart.yaml too: the same go-yaml reading as above applies
    (helm/helm pkg/chart/v2/loader/load.go:84), so `y` must not reach Helm as `true`."""
    from charts_catalog import load_catalog
    from scoutflo.github.repo_files import template_chart

    template_dir = load_catalog()["webapp"].source.template_dir
    assert template_dir is not None
    files = template_chart(template_dir, app)
    out = tmp_path / "chart"
    for path, text in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    assert release_fields(out) == (app, "0.1.0")
    helm = subprocess.run(["helm", "show", "chart", str(out)], capture_output=True, text=True, timeout=60)
    assert helm.returncode == 0, helm.stderr
    shown = yaml.safe_load(helm.stdout)
    assert (shown["name"], shown["version"]) == (app, "0.1.0"), "Helm loads the app's name"


# ------------------------------------------------------------------ where the tar stream ends

_CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-the-last-member\n"
_MEMBERS = {"demo/Chart.yaml": CHART, "demo/values.yaml": b"a: 1\n", "demo/templates/cm.yaml": _CM}


def _ustar() -> bytes:
    """The three members as written by tarfile (each one header block + one data block), then its
    two zero blocks and record padding."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in _MEMBERS.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _helm(command: list[str], raw_tar: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    archive = tmp_path / "demo-1.0.0.tgz"
    archive.write_bytes(gzip.compress(raw_tar))
    return subprocess.run(["helm", *command, str(archive)], capture_output=True, text=True, timeout=60)


_FULL = _ustar()
_BODY = _FULL[:3072]  # the three members without the end-of-archive blocks
_ZERO = bytes(512)
_BAD_HEADER = _BODY[1024:1124] + b"X" + _BODY[1125:1536]  # values.yaml's header, checksum no longer matches


@pytest.mark.parametrize(
    ("raw", "helm_says", "message"),
    [
        (_BODY[:1024] + _BAD_HEADER + _BODY[1536:] + _ZERO * 2, "invalid tar header", "an invalid tar header"),
        (_BODY[:2048] + _ZERO + _BODY[2048:] + _ZERO * 2, "invalid tar header", "a zero block followed by a non-zero"),
        (_BODY[: 2560 + 10], "unexpected EOF", rf"'demo/templates/cm\.yaml' is truncated: 10 of {len(_CM)} bytes"),
        (_BODY[: 2048 + 100], "unexpected EOF", r"ends inside a tar header \(100 of 512 bytes\) at byte 2048"),
        (_BODY + _ZERO + bytes(100), "unexpected EOF", "ends inside the block after a zero block"),
    ],
    ids=["bad-header-mid-archive", "zero-then-member", "data-cut-short", "header-cut-short", "zero-then-partial"],
)
def test_a_corrupt_or_truncated_tar_stream_is_refused_as_helm_refuses_it(
    raw: bytes, helm_says: str, message: str, tmp_path: Path
) -> None:
    """Python's tarfile stops iterating quietly at a bad header after the first member (CPython
    TarFile.next()); Helm's Go archive/tar returns ErrHeader or io.ErrUnexpectedEOF (go1.19.8
    src/archive/tar/reader.go:342-361, :668) and Helm returns it (pkg/chart/loader/archive/
    archive.go:74-76, :137-140). The same bytes go to the real helm and to our reader."""
    # `helm template` hides the cause ("unable to load chart archive", helm/helm
    # pkg/chart/loader/load.go:136); `helm show chart` passes Go's error through.
    assert _helm(["template", "x"], raw, tmp_path).returncode != 0
    helm = _helm(["show", "chart"], raw, tmp_path)
    assert helm.returncode != 0 and helm_says in helm.stderr, helm.stderr
    with pytest.raises(ArchiveError, match=message) as err:
        read_chart(gzip.compress(raw))
    assert "chart 'demo'" in str(err.value) or "'demo/" in str(err.value)


def test_tar_stream_ends_helm_accepts_are_accepted(tmp_path: Path) -> None:
    """Go ends an archive at EOF on a header boundary, at a zero block followed by EOF or by a
    second zero block (whatever follows is never read), and at EOF inside the last member's padding
    (tryReadFull's io.EOF, reader.go:71), which Python's tarfile refuses."""
    cut_padding = _BODY[: 2560 + len(_CM)]
    ends = [_FULL, _BODY, _BODY + _ZERO, _BODY + _ZERO * 2 + b"trailing junk", cut_padding]
    for raw in ends:
        helm = _helm(["template", "x"], raw, tmp_path)
        assert helm.returncode == 0 and "from-the-last-member" in helm.stdout, helm.stderr
        top, files = read_chart(gzip.compress(raw))
        assert (top, files) == ("demo", {path.removeprefix("demo/"): data for path, data in _MEMBERS.items()})
