"""Chart import with real parts on 127.0.0.1: a Helm HTTP repository made by the real helm, an
OCI registry (docker-registry) with charts pushed by `helm push --plain-http`, hostile archives,
and the imported chart linted and templated by helm in both modes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pulumi
import pytest
import yaml

from automation import render
from scoutflo.charts.archive import ArchiveError, read_chart
from scoutflo.charts.fetch import ChartFetcher, FetchError, Http, sha256
from scoutflo.charts.plan import helm_lock_digest, plan_import
from tests.conftest import of_type, run_main
from tests.hostile import reply as send_reply
from tests.loopback import oci_registry, serve, static_http

VERSIONS = ["1.2.0", "1.10.0", "2.0.0-rc.1"]


def helm_env(home: Path) -> dict[str, str]:
    """Helm with its own config and repositories, not the machine's."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "HELM_CONFIG_HOME": str(home / "c")}


def helm(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["helm", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"helm {args}: {result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> dict[str, Path]:
    """demo-<version>.tgz for every version; each vendors a subchart `sub` as charts/sub-0.3.0.tgz."""
    work = tmp_path_factory.mktemp("charts")
    helm("create", "sub", cwd=work)
    helm("package", "sub", "--version", "0.3.0", "-d", str(work / "subpkg"), cwd=work)
    helm("create", "demo", cwd=work)
    chart_yaml = work / "demo" / "Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text()
        + "dependencies:\n  - name: sub\n    version: 0.3.0\n    repository: https://charts.invalid\n"
    )
    (work / "demo" / "charts").mkdir(exist_ok=True)
    shutil.copy(work / "subpkg" / "sub-0.3.0.tgz", work / "demo" / "charts")
    out = work / "pkg"
    for version in VERSIONS:
        helm("package", "demo", "--version", version, "--app-version", "9.9.9", "-d", str(out), cwd=work)
    return {v: out / f"demo-{v}.tgz" for v in VERSIONS}


@pytest.fixture(scope="module")
def http_repo(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Charts in a subdirectory, so index.yaml's urls are relative paths (charts/demo-x.tgz)."""
    root = tmp_path_factory.mktemp("helm-repo")
    (root / "charts").mkdir()
    for path in packages.values():
        shutil.copy(path, root / "charts")
    helm("repo", "index", str(root))
    with static_http(root) as url:
        yield url


@pytest.fixture(scope="module")
def oci(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("helm-home")
    env = helm_env(home)
    with oci_registry(tmp_path_factory.mktemp("oci")) as host:
        for path in packages.values():
            helm("push", "--plain-http", str(path), f"oci://{host}/charts", env=env)
        yield host


def fetcher(tmp_path: Path, **kw: object) -> ChartFetcher:
    return ChartFetcher(tmp_path / "cache", http=Http(attempts=2, sleep=lambda _s: None), **kw)  # type: ignore[arg-type]


def test_http_repo_newest_stable_match_with_relative_urls(
    http_repo: str, packages: dict[str, Path], tmp_path: Path
) -> None:
    got = fetcher(tmp_path).fetch(http_repo, "demo", ">=1.0.0")
    assert got.version == "1.10.0", "1.10.0 beats 1.2.0, and 2.0.0-rc.1 is a prerelease"
    assert got.digest == sha256(packages["1.10.0"].read_bytes())
    assert fetcher(tmp_path).fetch(http_repo, "demo", ">=1.0.0 <1.10.0").version == "1.2.0"
    assert fetcher(tmp_path).fetch(http_repo, "demo", ">=2.0.0-0").version == "2.0.0-rc.1"


def test_oci_newest_match_and_layer_digest(oci: str, packages: dict[str, Path], tmp_path: Path) -> None:
    got = fetcher(tmp_path).fetch(f"oci://{oci}/charts", "demo", "*", plain_http=True)
    assert got.version == "1.10.0"
    assert got.digest == sha256(packages["1.10.0"].read_bytes()), "the chart layer is the .tgz itself"
    with pytest.raises(FetchError, match=r"from oci://.*: no tag matches '>=3\.0\.0'"):
        fetcher(tmp_path).fetch(f"oci://{oci}/charts", "demo", ">=3.0.0", plain_http=True)


def test_cache_hit_needs_no_network(http_repo: str, tmp_path: Path) -> None:
    first = fetcher(tmp_path)
    a = first.fetch(http_repo, "demo", "*")
    assert first.http.requests == 2  # index.yaml + archive
    offline = ChartFetcher(tmp_path / "cache", http=Http(attempts=1, sleep=lambda _s: None, offline=True))
    b = offline.fetch(http_repo, "demo", "*")
    assert (a.version, a.digest, a.archive) == (b.version, b.digest, b.archive)
    assert offline.http.requests == 0


def test_a_plain_http_resolution_is_not_served_to_an_https_fetch(oci: str, tmp_path: Path) -> None:
    """The resolution names the download URL (http://... for a plain-http registry): a run asking
    the same oci:// repository over https must resolve over https, not reuse it."""
    fetcher(tmp_path).fetch(f"oci://{oci}/charts", "demo", "*", plain_http=True)
    offline = ChartFetcher(tmp_path / "cache", http=Http(attempts=1, sleep=lambda _s: None, offline=True))
    with pytest.raises(FetchError, match="network use while offline"):
        offline.fetch(f"oci://{oci}/charts", "demo", "*", plain_http=False)
    assert offline.fetch(f"oci://{oci}/charts", "demo", "*", plain_http=True).version == "1.10.0"


def test_expired_resolution_asks_again(http_repo: str, tmp_path: Path) -> None:
    now = [1000.0]
    f = fetcher(tmp_path, clock=lambda: now[0], ttl=60)
    f.fetch(http_repo, "demo", "*")
    now[0] += 61
    f.fetch(http_repo, "demo", "*")
    assert f.http.requests == 3, "index fetched again, archive served from the digest cache"


def test_digest_mismatch_is_refused(packages: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(packages["1.10.0"], root)
    helm("repo", "index", str(root))
    index = (root / "index.yaml").read_text()
    good = sha256(packages["1.10.0"].read_bytes()).removeprefix("sha256:")
    (root / "index.yaml").write_text(index.replace(good, "a" * 64))
    with static_http(root) as url, pytest.raises(FetchError) as err:
        fetcher(tmp_path).fetch(url, "demo", "*")
    message = str(err.value)
    assert "demo 1.10.0 from" in message and "a" * 64 in message and good in message
    assert not list((tmp_path / "cache").glob("blobs/**/*aaaa*"))


def test_unreachable_repository_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unreachable after 2 attempts"):
        fetcher(tmp_path).fetch("http://127.0.0.1:9/charts", "demo", "*")


# ------------------------------------------------------------------ hostile archives


def tgz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


CHART = reg("demo/Chart.yaml", b"apiVersion: v2\nname: demo\nversion: 1.0.0\n")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([CHART, reg("demo/../../evil.sh")], "'..' is not allowed"),
        ([CHART, reg("/etc/cron.d/evil")], "absolute paths"),
        ([CHART, reg("C:/evil")], "absolute paths"),
        ([CHART, reg("demo\\..\\evil")], "backslashes"),
        ([CHART, special("demo/Chart.lock", tarfile.SYMTYPE, "/etc/passwd")], "symlink"),
        ([CHART, special("demo/values.yaml", tarfile.LNKTYPE, "demo/Chart.yaml")], "hard link"),
        ([CHART, special("demo/dev", tarfile.CHRTYPE)], "special file"),
        ([CHART, reg("other/Chart.yaml")], "exactly one top-level directory"),
        ([reg("./Chart.yaml"), reg("./templates/a.yaml")], "a chart named '.'"),
        ([CHART, reg("demo/big.bin", b"\0" * (5 * 1024 * 1024 + 1))], "at most 5242880 per file"),
        ([reg("demo/values.yaml")], "no demo/Chart.yaml"),
    ],
)
def test_hostile_archives_are_refused(members: list[tuple[tarfile.TarInfo, bytes]], message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        read_chart(tgz(members))


def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = tgz([CHART, reg("demo/zeros", b"\0" * (4 * 1024 * 1024))])
    with pytest.raises(ArchiveError, match="expands beyond"):
        read_chart(bomb, max_chart=1024 * 1024)
    with pytest.raises(ArchiveError, match="not a gzip"):
        read_chart(b"plain bytes")


def test_hostile_chart_fails_the_program_before_anything_is_registered(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "demo-1.0.0.tgz").write_bytes(tgz([CHART, reg("demo/../../../etc/evil")]))
    digest = sha256((repo / "demo-1.0.0.tgz").read_bytes()).removeprefix("sha256:")
    (repo / "index.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "entries": {"demo": [{"version": "1.0.0", "urls": ["demo-1.0.0.tgz"], "digest": digest}]},
            }
        )
    )
    with static_http(repo) as url:
        catalog = write_catalog(tmp_path, url)
        recording = render.Recording(region="x")
        with pytest.raises(pulumi.RunError, match=r"'\.\.' is not allowed"):
            run_main(import_config(tmp_path, catalog), recording=recording)
    assert recording.resources == []
    assert not list((tmp_path / "cache").rglob("blobs/**/*")), "nothing of a hostile archive is cached"


# ------------------------------------------------------------------ what lands in the repo


def write_tree(files: Mapping[str, str | bytes], root: Path) -> Path:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
    return root / "chart"


def test_vendor_import_lints_and_templates_offline(http_repo: str, tmp_path: Path) -> None:
    fetched = fetcher(tmp_path).fetch(http_repo, "demo", ">=1.0.0")
    plan = plan_import(app="shop-db", mode="vendor", fetched=fetched, constraint=">=1.0.0", description="d")
    assert plan.branch == "scoutflo/import-demo-1.10.0"
    assert plan.title == "Import demo 1.10.0"
    assert fetched.digest in plan.body and http_repo in plan.body and ">=1.0.0" in plan.body
    chart = write_tree(plan.files, tmp_path / "repo")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert (meta["name"], meta["version"], meta["appVersion"]) == ("shop-db", "0.1.0", "9.9.9")
    assert meta["annotations"]["scoutflo.io/upstream"] == f"{http_repo}/demo:1.10.0"
    assert meta["annotations"]["scoutflo.io/upstream-digest"] == fetched.digest
    assert (chart / "charts" / "sub" / "Chart.yaml").is_file(), "vendored subchart unpacked"
    assert not list(chart.rglob("*.tgz"))
    helm("lint", str(chart))
    rendered = helm("template", "shop-db", str(chart))
    assert "kind: Deployment" in rendered and "shop-db-sub" in rendered


@pytest.mark.parametrize("source", ["http", "oci"])
def test_umbrella_import_builds_its_dependency_then_lints(
    source: str, http_repo: str, oci: str, tmp_path: Path
) -> None:
    repo, plain = (http_repo, False) if source == "http" else (f"oci://{oci}/charts", True)
    fetched = fetcher(tmp_path).fetch(repo, "demo", "*", plain_http=plain)
    plan = plan_import(app="shop", mode="umbrella", fetched=fetched, constraint="*", description="Shop")
    chart = write_tree(plan.files, tmp_path / "repo")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert meta["dependencies"] == [{"name": "demo", "version": "1.10.0", "repository": repo}]
    # Real helm accepts our Chart.lock: a wrong digest fails with "Chart.lock is out of sync".
    home = tmp_path / "home"
    env = helm_env(home)
    deps = subprocess.run(
        [str(Path(__file__).parent.parent / "scoutflo" / "scaffold" / "ci" / "dependencies")],
        cwd=chart.parent,
        env={**env, "HELM_PLAIN_HTTP": "1" if plain else ""},
        capture_output=True,
        text=True,
    )
    assert deps.returncode == 0, deps.stderr
    assert (chart / "charts" / "demo-1.10.0.tgz").is_file()
    helm("lint", str(chart), env=env)
    assert "kind: Deployment" in helm("template", "shop", str(chart), env=env)


def test_lock_digest_matches_helm_for_ranges_and_aliases() -> None:
    dep = {"name": "a", "version": ">=1.0.0 <2.0.0", "repository": "https://x", "alias": "b&c"}
    digest = helm_lock_digest([dep], [{**dep, "version": "1.2.3"}])
    assert digest.startswith("sha256:") and len(digest) == 71
    assert digest != helm_lock_digest([dep], [dep])


# ------------------------------------------------------------------ through the program


def write_catalog(tmp_path: Path, url: str, mode_chart: str = "demo") -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    (catalog / "demo.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "description": "Demo",
                "source": {"repo": url, "chart": mode_chart, "version": ">=1.0.0"},
                "defaults": {"values": {"replicaCount": 2}},
            }
        )
    )
    return catalog


def import_config(tmp_path: Path, catalog: Path, mode: str = "vendor") -> dict[str, object]:
    return {
        "scoutflo:catalogPath": str(catalog),
        "scoutflo:chartCacheDir": str(tmp_path / "cache"),
        "scoutflo:apps": [
            {"name": "storefront", "chart": "webapp"},
            {"name": "shop-db", "chart": "demo", "mode": mode},
        ],
    }


def test_program_imports_through_one_pull_request(packages: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for path in packages.values():
        shutil.copy(path, root)
    helm("repo", "index", str(root))
    with static_http(root) as url:
        overrides = import_config(tmp_path, write_catalog(tmp_path, url))
        recording = run_main(overrides)
    commits = {r.name: r for r in of_type(recording, "pulumi-python:dynamic:Resource")}
    assert set(commits) == {"storefront-initial", "shop-db-initial", "shop-db-import"}
    imp = commits["shop-db-import"]
    assert imp.inputs["branch"] == "scoutflo/import-demo-1.10.0"
    assert imp.inputs["base"] == "main"
    assert imp.inputs["pr_title"] == "Import demo 1.10.0"
    assert commits["shop-db-initial"].urn in imp.depends_on
    assert (
        "chart/Chart.yaml" in imp.inputs["files"]
        and "chart/Chart.yaml" not in commits["shop-db-initial"].inputs["files"]
    )
    out = tmp_path / "out"
    render.write(recording, out)
    assert yaml.safe_load((out / "repos" / "shop-db" / "chart" / "Chart.yaml").read_text())["name"] == "shop-db"
    assert (out / "repos" / "shop-db" / "ci" / "release").is_file()
    # The server is gone: a second run, within the cache's lifetime, needs no network and is identical.
    again = run_main(overrides)
    assert [r.as_json() for r in again.resources] == [r.as_json() for r in recording.resources]


def test_umbrella_values_nest_under_the_dependency(http_repo: str, tmp_path: Path) -> None:
    recording = run_main(import_config(tmp_path, write_catalog(tmp_path, http_repo), mode="umbrella"))
    app = next(o for o in render.k8s_objects(recording) if o["metadata"]["name"] == "shop-db")
    assert app["spec"]["source"]["helm"]["valuesObject"] == {"demo": {"replicaCount": 2}}


# ------------------------------------------------------------------ OCI auth: the token flow


class _AuthRegistry:
    """A registry that answers like Docker Hub: 401 + Bearer challenge, a token realm, paginated
    tags, and blobs redirected to another host (storage) that rejects a forwarded credential."""

    def __init__(self, archive: bytes, basic: str | None) -> None:
        import http.server

        self.archive, self.digest, self.basic = archive, sha256(archive), basic
        self.token_requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                send_reply(self, status, body, headers)

            def do_GET(self) -> None:
                import json as _json

                port = self.server.server_address[1]
                path, _, query = self.path.partition("?")
                auth = self.headers.get("Authorization") or ""
                if path == "/token":
                    outer.token_requests.append(auth)
                    if outer.basic and auth != outer.basic:
                        return self.reply(401)
                    return self.reply(200, _json.dumps({"token": "tok-123"}).encode())
                if path.startswith("/storage/"):
                    # pre-signed storage URLs refuse a second credential
                    return self.reply(400 if auth else 200, b"" if auth else outer.archive)
                if auth != "Bearer tok-123":
                    challenge = f'Bearer realm="http://127.0.0.1:{port}/token",service="stub",scope="repository:charts/demo:pull"'
                    return self.reply(401, b"{}", {"WWW-Authenticate": challenge})
                if path == "/v2/charts/demo/tags/list":
                    if "last=" in query:
                        return self.reply(200, _json.dumps({"tags": ["1.10.0", "latest"]}).encode())
                    link = '</v2/charts/demo/tags/list?n=2&last=1.2.0>; rel="next"'
                    return self.reply(200, _json.dumps({"tags": ["0.9.0", "1.2.0"]}).encode(), {"Link": link})
                if path == "/v2/charts/demo/manifests/1.10.0":
                    layer = {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": outer.digest}
                    layer["size"] = len(outer.archive)
                    return self.reply(200, _json.dumps({"schemaVersion": 2, "layers": [layer]}).encode())
                if path == f"/v2/charts/demo/blobs/{outer.digest}":
                    return self.reply(307, b"", {"Location": f"http://localhost:{port}/storage/{outer.digest}"})
                return self.reply(404)

        self.handler = Handler


@pytest.mark.parametrize("with_credentials", [False, True])
def test_oci_token_flow_pagination_and_redirect(
    packages: dict[str, Path], tmp_path: Path, with_credentials: bool
) -> None:
    import base64

    basic = "Basic " + base64.b64encode(b"robot:pa55").decode() if with_credentials else None
    registry = _AuthRegistry(packages["1.10.0"].read_bytes(), basic)
    with serve(registry.handler) as url:
        host = url.removeprefix("http://")
        creds = {host: ("robot", "pa55")} if with_credentials else {}
        got = fetcher(tmp_path, credentials=creds).fetch(f"oci://{host}/charts", "demo", "*", plain_http=True)
        assert got.version == "1.10.0" and got.digest == registry.digest
        assert registry.token_requests[0] == (basic or ""), "anonymous unless credentials are given"
        if with_credentials:
            with pytest.raises(FetchError, match="token request"):
                fetcher(tmp_path / "other").fetch(f"oci://{host}/charts", "demo", "*", plain_http=True)


def test_http_repo_with_absolute_urls(packages: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "abs"
    (root / "pool").mkdir(parents=True)
    shutil.copy(packages["1.2.0"], root / "pool")
    with static_http(root) as url:
        # `helm repo index --url` writes absolute download URLs into index.yaml.
        helm("repo", "index", str(root / "pool"), "--url", f"{url}/pool")
        shutil.move(root / "pool" / "index.yaml", root / "index.yaml")
        index = yaml.safe_load((root / "index.yaml").read_text())
        assert index["entries"]["demo"][0]["urls"][0].startswith("http://127.0.0.1:")
        got = fetcher(tmp_path).fetch(url, "demo", "*")
    assert got.version == "1.2.0" and got.digest == sha256(packages["1.2.0"].read_bytes())


def _serve_one(tmp_path: Path, archive: bytes) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "demo-1.0.0.tgz").write_bytes(archive)
    digest = sha256(archive).removeprefix("sha256:")
    entry = {"version": "1.0.0", "urls": ["demo-1.0.0.tgz"], "digest": digest}
    (repo / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": [entry]}}))
    return repo


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([CHART, reg("demo/templates/a\nb.yaml")], "control character"),
        ([CHART, reg("demo/templates/A.yaml"), reg("demo/templates/a.yaml")], "differ only in case"),
        ([CHART, reg("demo/templates"), reg("demo/templates/x.yaml")], "both a file and a directory"),
        ([reg("demo/Chart.yaml", b"{apiVersion: v2, name: demo, version: 1.0.0, name: x}")], "duplicate key"),
    ],
    ids=["control character", "case collision", "file and directory", "duplicate key"],
)
def test_unholdable_chart_fails_the_program_before_anything_is_registered(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    with static_http(_serve_one(tmp_path, tgz(members))) as url:
        recording = render.Recording(region="x")
        with pytest.raises(pulumi.RunError, match=message):
            run_main(import_config(tmp_path, write_catalog(tmp_path, url)), recording=recording)
    assert recording.resources == []
