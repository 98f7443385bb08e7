"""What an import pull request shows is what Helm renders: packed subcharts at any depth (inside
directory subcharts too) are unpacked, checked and committed as text, the real helm renders the
committed tree and nothing else; names that would forge lines or hide characters are refused, and
names from the archive reach the PR body only when plain."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scoutflo.charts.archive import ArchiveError, FileNameError
from scoutflo.charts.fetch import FetchedChart, sha256
from scoutflo.charts.plan import ImportPlan, application_values, plan_import, plan_imports, tree_problems
from tests.test_import_plan import CHART, fetched, sub, tgz

CRB = b"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Chart.Name }}-takeover
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"""


def cm(name: str) -> bytes:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n".encode()


def chart_yaml(name: str) -> bytes:
    return f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n".encode()


def hidden_upstream() -> dict[str, bytes]:
    """A chart whose only packed subcharts sit inside a directory subchart, at depths 2 to 4:
    charts/sub/ (directory) holds charts/hidden-1.0.0.tgz (a cluster-admin binding) which packs
    charts/deeper-0.1.0.tgz; charts/sub/charts/dir2/ (directory) packs charts/x-0.1.0.tgz."""
    deeper = tgz({"deeper/Chart.yaml": chart_yaml("deeper"), "deeper/templates/cm.yaml": cm("deeper-cm")})
    hidden = tgz(
        {
            "hidden/Chart.yaml": chart_yaml("hidden"),
            "hidden/templates/crb.yaml": CRB,
            "hidden/charts/deeper-0.1.0.tgz": deeper,
        }
    )
    x = tgz({"x/Chart.yaml": chart_yaml("x"), "x/templates/cm.yaml": cm("x-cm")})
    return {
        "demo/Chart.yaml": CHART,
        "demo/templates/cm.yaml": cm("top-cm"),
        "demo/charts/sub/Chart.yaml": chart_yaml("sub"),
        "demo/charts/sub/templates/cm.yaml": cm("sub-cm"),
        "demo/charts/sub/charts/hidden-1.0.0.tgz": hidden,
        "demo/charts/sub/charts/dir2/Chart.yaml": chart_yaml("dir2"),
        "demo/charts/sub/charts/dir2/charts/x-0.1.0.tgz": x,
    }


def write(files: dict[str, str | bytes], root: Path) -> Path:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
    return root / "chart"


def template(chart: Path | str, *args: str) -> str:
    result = subprocess.run(["helm", "template", "rel", str(chart), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(output: str) -> dict[str, dict[str, object]]:
    """`# Source:` path (top chart name dropped) -> the object helm rendered from it."""
    out = {}
    for doc in output.split("\n---\n"):
        source = re.search(r"^# Source: [^/]+/(.+)$", doc, re.M)
        if source:
            out[source.group(1)] = yaml.safe_load(doc)
    return out


def import_plan(files: dict[str, bytes]) -> ImportPlan:
    return plan_import(app="app", mode="vendor", fetched=fetched(files), constraint="*", description="d")


def test_packed_subcharts_inside_directory_subcharts_are_unpacked_and_helm_renders_only_what_the_pr_shows(
    tmp_path: Path, tools: dict[str, str]
) -> None:
    """Helm loads a directory subchart's own charts/*.tgz (helm/helm pkg/chart/v2/loader/load.go:
    149-157 groups charts/<n>/ files, :177-183 loads <n>.tgz, :184-196 recurses into a directory),
    so the upstream chart renders a cluster-admin binding from inside two archives. Committed, the
    same objects render from text files the PR shows, and from nothing else."""
    upstream = hidden_upstream()
    archive = tmp_path / "demo-1.0.0.tgz"
    archive.write_bytes(tgz(upstream))
    before = rendered(template(archive))
    assert "charts/sub/charts/hidden/templates/crb.yaml" in before, "the threat is real: helm renders it"
    assert "charts/sub/charts/hidden/charts/deeper/templates/cm.yaml" in before, "depth 3"

    plan = import_plan(upstream)
    chart = write(plan.files, tmp_path / "repo")
    after = rendered(template(chart))
    assert after == before, "the committed tree renders exactly what upstream renders"
    text = {path.removeprefix("chart/") for path, data in plan.files.items() if isinstance(data, str)}
    assert set(after) <= text, "every rendered object comes from a text file the PR shows"
    assert not [p for p, data in plan.files.items() if isinstance(data, bytes)], "no binary file at all"
    for path in after:
        assert path in text and plan.files[f"chart/{path}"] == upstream_text(upstream, path)
    assert "`charts/sub/charts/hidden-1.0.0.tgz` unpacked into `charts/sub/charts/hidden/`" in plan.body
    assert "`charts/sub/charts/dir2/charts/x-0.1.0.tgz` unpacked into" in plan.body
    crb = after["charts/sub/charts/hidden/templates/crb.yaml"]
    assert isinstance(crb, dict) and crb["kind"] == "ClusterRoleBinding"


def upstream_text(upstream: dict[str, bytes], rendered_path: str) -> str:
    """The template's text as upstream shipped it, wherever it was packed."""
    found = {
        "templates/cm.yaml": cm("top-cm"),
        "charts/sub/templates/cm.yaml": cm("sub-cm"),
        "charts/sub/charts/hidden/templates/crb.yaml": CRB,
        "charts/sub/charts/hidden/charts/deeper/templates/cm.yaml": cm("deeper-cm"),
        "charts/sub/charts/dir2/charts/x/templates/cm.yaml": cm("x-cm"),
    }
    return found[rendered_path].decode()


def test_a_packed_subchart_in_a_directory_subchart_spends_the_same_budget() -> None:
    """30 archives of 4 MiB each inside charts/sub/charts/: each under every per-archive cap,
    together over the import's one budget of 100 MiB."""
    big = b"a" * (4 * 1024 * 1024)
    files = {"demo/Chart.yaml": CHART, "demo/charts/sub/Chart.yaml": chart_yaml("sub")}
    for i in range(30):
        files[f"demo/charts/sub/charts/s{i}-0.1.0.tgz"] = sub(f"s{i}", {f"s{i}/files/blob.txt": big})
    with pytest.raises(ArchiveError, match="byte budget"):
        import_plan(files)


def test_subcharts_nested_in_directories_count_towards_the_depth_limit() -> None:
    nested = {"demo/Chart.yaml": CHART}
    prefix = "demo/"
    for i in range(6):
        prefix += f"charts/d{i}/"
        nested[f"{prefix}Chart.yaml"] = chart_yaml(f"d{i}")
    with pytest.raises(ArchiveError, match=r"charts/d4/charts/d5/: subcharts nested deeper than 5 levels"):
        import_plan(nested)
    del nested[f"{prefix}Chart.yaml"]
    nested[f"{prefix.removesuffix('d5/')}d5-0.1.0.tgz"] = sub("d5")
    with pytest.raises(ArchiveError, match=r"d5-0\.1\.0\.tgz: subcharts nested deeper than 5 levels"):
        import_plan(nested)
    del nested[f"{prefix.removesuffix('d5/')}d5-0.1.0.tgz"]
    assert "chart/charts/d0/charts/d1/charts/d2/charts/d3/charts/d4/Chart.yaml" in import_plan(nested).files


def test_a_packed_subchart_in_a_directory_never_overwrites_its_files() -> None:
    files = {
        "demo/Chart.yaml": CHART,
        "demo/charts/sub/Chart.yaml": chart_yaml("sub"),
        "demo/charts/sub/charts/a/Chart.yaml": chart_yaml("b"),
        "demo/charts/sub/charts/a-1.tgz": sub("a"),
    }
    with pytest.raises(ArchiveError, match=r"would overwrite charts/sub/charts/a/Chart\.yaml"):
        import_plan(files)


def test_subcharts_helm_skips_stay_files_at_every_depth() -> None:
    """`_x.tgz` and `.x.tgz` inside a directory subchart: Helm skips them (load.go:175)."""
    files = import_plan(
        {
            "demo/Chart.yaml": CHART,
            "demo/charts/sub/Chart.yaml": chart_yaml("sub"),
            "demo/charts/sub/charts/_off.tgz": sub("gone"),
            "demo/charts/_old/charts/x.tgz": sub("x"),
        }
    ).files
    assert files["chart/charts/sub/charts/_off.tgz"] == sub("gone")
    assert files["chart/charts/_old/charts/x.tgz"] == sub("x")
    assert not [p for p in files if "/gone/" in p or p.startswith("chart/charts/_old/charts/x/")]


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\u2028", "U+2028 LINE SEPARATOR, category Zl"),
        ("\u2029", "U+2029 PARAGRAPH SEPARATOR, category Zp"),
        ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE, category Cf"),
        ("\u200b", "U+200B ZERO WIDTH SPACE, category Cf"),
        ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE, category Cf"),
        ("\x85", "U+0085 unnamed, category Cc"),
        ("\ue000", "U+E000 unnamed, category Co"),
    ],
)
@pytest.mark.parametrize("where", ["top", "nested"])
def test_names_with_line_separators_or_invisible_characters_are_refused_naming_chart_and_path(
    char: str, shown: str, where: str
) -> None:
    """A U+2028 in a name would end a line of the PR body (and of the squash commit's message) where
    Python's splitlines() looks for the `Scoutflo-Commit:` trailer: a forged trailer line."""
    name = f"files/a{char}Scoutflo-Commit: scoutflo/import-demo-1.0.0.bin"
    if where == "top":
        files = {"demo/Chart.yaml": CHART, f"demo/{name}": b"\x00"}
        path = f"demo/{name}"
    else:
        files = {
            "demo/Chart.yaml": CHART,
            "demo/charts/sub/Chart.yaml": chart_yaml("sub"),
            "demo/charts/sub/charts/x-1.tgz": tgz({"x/Chart.yaml": chart_yaml("x"), f"x/{name}": b"\x00"}),
        }
        path = f"charts/sub/charts/x-1.tgz: x/{name}"
    with pytest.raises(FileNameError) as err:
        import_plan(files)
    assert err.value.path == path and err.value.chart == "chart demo 1.0.0 from https://x"
    message = str(err.value)
    assert shown in message and message.startswith("chart demo 1.0.0 from https://x: file ")
    assert message.isprintable(), "the message carries no separator or override itself"


def test_plan_imports_names_the_app_and_chart() -> None:
    files = {"demo/Chart.yaml": CHART, "demo/files/\u2028x": b"x"}
    source = SimpleNamespace(kind="http", repo="https://x", chart="demo", plain_http=False)
    app = SimpleNamespace(
        name="shop", version="*", mode="vendor", entry=SimpleNamespace(source=source, description="d")
    )
    fetcher = SimpleNamespace(fetch=lambda *_a, **_k: fetched(files))
    with pytest.raises(FileNameError, match=r"^chart demo 1\.0\.0 from https://x: file 'demo/files/\\u2028x'"):
        plan_imports([app], fetcher)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("chart/files/caf\u00e9.txt", "chart/files/cafe\u0301.txt"),  # NFC against NFD: one file on macOS
        ("chart/files/CAF\u00c9.txt", "chart/files/cafe\u0301.txt"),  # and case on top
        ("chart/files/STRASSE", "chart/files/stra\u00dfe"),  # full case folding, not lower()
        ("chart/templates/A.yaml", "chart/templates/a.yaml"),
    ],
)
def test_names_equal_after_normalization_and_case_folding_collide(a: str, b: str) -> None:
    problems = tree_problems(["chart/Chart.yaml", a, b])
    assert len(problems) == 1 and "one file on case-insensitive or normalizing file systems" in problems[0]


def test_nfc_and_nfd_names_from_an_archive_are_refused() -> None:
    files = {"demo/Chart.yaml": CHART, "demo/files/caf\u00e9": b"\x00", "demo/files/cafe\u0301": b"\x01"}
    with pytest.raises(ArchiveError, match="one file on case-insensitive or normalizing"):
        import_plan(files)


@pytest.mark.parametrize("git", [".GIT", ".gIt"])
def test_a_git_directory_in_any_case_is_refused(git: str) -> None:
    with pytest.raises(ArchiveError, match=r"\.git"):
        import_plan({"demo/Chart.yaml": CHART, f"demo/{git}/config": b"x"})


def test_binary_file_names_reach_the_pr_body_only_when_plain() -> None:
    """Names with a mention, a closing keyword, a link, Markdown or a backtick are counted, not
    shown; plain names are shown in code spans, where GitHub links nothing."""
    hostile = [
        "files/@octocat.bin",
        "files/fixes #1.bin",
        "files/[x](https:\u2215\u2215evil.example).bin",
        "files/see https:/evil.example.bin",
        "files/`code` **bold**.bin",
        "files/Scoutflo-Commit: scoutflo-import-demo-1.0.0",
    ]
    files = {"demo/Chart.yaml": CHART, "demo/files/icon.png": b"\x89PNG\x00"}
    files.update({f"demo/{name}": b"\x00" for name in hostile})
    plan = import_plan(files)
    assert all(isinstance(plan.files[f"chart/{name}"], bytes) for name in hostile), "all are committed"
    assert "7 binary files, committed byte for byte: " in plan.body
    assert "`chart/files/icon.png`" in plan.body
    for marker in ("@octocat", "fixes", "#1", "evil", "](", "**bold", "`code`", "Scoutflo-Commit"):
        assert marker not in plan.body, marker
    assert plan.body.count("not all plain: see the Files tab") == len(hostile)
    assert all(line.isprintable() for line in plan.body.splitlines())


def test_an_archive_top_directory_name_is_shown_only_when_plain() -> None:
    files = {"@evil fixes #2/Chart.yaml": CHART}
    body = import_plan(files).body
    assert "@evil" not in body and "#2" not in body


@pytest.mark.parametrize("name", ["kube-prometheus-stack", "cert-manager"])
def test_catalog_corpus_charts_render_from_the_committed_text_alone(
    name: str, tmp_path: Path, tools: dict[str, str]
) -> None:
    """The catalog's corpus charts (tests/corpus.py: kube-prometheus-stack with a packed
    kube-state-metrics and a binary crds.bz2), with the catalog's values: the committed tree renders
    what the upstream archive renders, every object from a text file of the PR."""
    from charts_catalog import load_catalog
    from tests import corpus

    (archive,) = corpus.package({name: corpus.synthetic(tmp_path / "src")[name]}, tmp_path / "pkg").values()
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps(application_values("vendor", name, load_catalog()[name].values)))
    upstream = FetchedChart(
        chart=name,
        version="1.0.0",
        digest=sha256(archive.read_bytes()),
        source="https://x",
        archive=archive.read_bytes(),
    )
    plan = plan_import(app="app", mode="vendor", fetched=upstream, constraint="*", description="d")
    chart = write(plan.files, tmp_path / "repo")
    before = rendered(template(archive, "-f", str(values)))
    after = rendered(template(chart, "-f", str(values)))
    assert after == before and len(after) >= 2
    text = {path.removeprefix("chart/") for path, data in plan.files.items() if isinstance(data, str)}
    assert set(after) <= text
