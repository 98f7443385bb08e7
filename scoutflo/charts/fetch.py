"""Fetching public charts: classic Helm repositories and OCI registries, verified and cached.

Why not Helm's client or oras-py: Helm does not verify the digest of what it downloads
(pkg/downloader/cache.go), and oras-py 0.2.43 (`oras/provider.py`) names pulled files by the
`org.opencontainers.image.title` annotation (`Registry.pull`; Helm's chart layer has none),
streams every blob to a file without a size cap (`download_blob`, line 489) and keeps its own
`requests.Session` (line 70) with its own redirect and token handling. We need the chart layer
read into memory under the import's budget, its digest checked, credentials bound to one origin
and one deadline for the whole operation. The OCI subset used is small and stable (distribution-spec: tags/list with
`Link` pagination, manifests, blobs, and the token flow of its auth spec); the HTTP under it is
httpx (`scoutflo.charts.http`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoutflo.charts import safe_yaml
from scoutflo.charts.archive import MAX_CHART_BYTES, Budget, read_chart
from scoutflo.charts.chart_yaml import chart_name_problem, version_problem
from scoutflo.charts.errors import FetchError
from scoutflo.charts.http import Credential, Http, Origin, Response, redact
from scoutflo.charts.versions import MAX_VERSION_CHARS, highest_match

HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MAX_INDEX_BYTES = 32 * 1024 * 1024
"""index.yaml: the largest public ones (all of a big repository's history) are a few tens of MiB."""
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_TAG_PAGES = 50
MAX_TAGS = 10_000
"""Tags of one OCI repository, all pages together: a 4 MiB page of short tags is a million strings."""
MAX_VERSIONS = 10_000
"""Versions of one chart in an index.yaml (the largest public charts have a few thousand); the
list is refused while it streams, before the next entry is built."""
MAX_INDEX_NODES = 200_000
"""Values kept of entries.<chart> (version, urls, digest: about 8 per entry)."""
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = ["ChartFetcher", "FetchError", "FetchedChart", "Http", "cache_dir", "sha256"]


@dataclass(frozen=True)
class FetchedChart:
    chart: str
    version: str
    digest: str
    """`sha256:<hex>`: of the .tgz (Helm repository) or the OCI chart layer: the same bytes."""
    source: str
    archive: bytes


def cache_dir(configured: str = "") -> Path:
    """The configured cache directory, else $XDG_CACHE_HOME/scoutflo/charts (~/.cache/...)."""
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scoutflo" / "charts"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class _Source:
    """One chart source for one fetch: where it is, its origin and the credential for it."""

    repo: str
    chart: str
    origin: Origin
    basic: str | None = field(repr=False)
    identity: str
    """Cache namespace: 'anonymous' or a hash of (origin, username, password)."""

    @property
    def name(self) -> str:
        return self.at("")

    def at(self, version: str) -> str:
        """'chart NAME [VERSION] from REPO': how every error names the source."""
        repo = redact(self.repo) if "://" in self.repo else self.repo
        return f"chart {self.chart}{' ' + version if version else ''} from {repo}"


@dataclass
class ChartFetcher:
    """Resolves `constraint` to the newest matching version and returns the verified archive.

    Cache (`cache_dir`), namespaced by the credential's identity so a chart fetched with
    credentials is never served to a run without them: archives by digest
    (`blobs/<identity>/sha256/<hex>`, verified on every read) and resolutions (source, chart,
    constraint -> version, digest, url) for `ttl` seconds. Both are written only after the
    download passed its digest check and the archive was read in full.
    """

    cache_dir: Path
    ttl: float = 3600.0
    http: Http = field(default_factory=Http)
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    """`host` or `host:port` -> (username, password), for Helm repositories and OCI registries."""
    clock: Callable[[], float] = time.time
    _tokens: dict[tuple[Origin, str], str] = field(default_factory=dict, repr=False)

    def fetch(self, repo: str, chart: str, constraint: str, *, plain_http: bool = False) -> FetchedChart:
        if problem := chart_name_problem(chart):
            raise FetchError(f"chart name {problem}")
        src = self._source(repo, chart, plain_http)
        with self.http.operation():
            resolved = self._cached_resolution(src, constraint)
            if resolved is None:
                if repo.startswith("oci://"):
                    resolved = self._resolve_oci(src, constraint, plain_http)
                else:
                    resolved = self._resolve_http(src, constraint)
                fresh = True
            else:
                fresh = False
            version, digest, url = resolved["version"], resolved["digest"], resolved["url"]
            archive = self._blob(src, digest)
            if archive is None:
                archive = self._download(src, version, digest, url)
            if fresh:
                self._store_resolution(src, constraint, resolved)
        return FetchedChart(chart=chart, version=version, digest=digest, source=repo, archive=archive)

    def _source(self, repo: str, chart: str, plain_http: bool) -> _Source:
        if repo.startswith("oci://"):
            base = ("http://" if plain_http else "https://") + repo.removeprefix("oci://").split("/", 1)[0]
        else:
            base = repo
        origin = Origin.of(base)
        netloc = urllib.parse.urlsplit(base).netloc.lower()
        by_host = {host.lower(): creds for host, creds in self.credentials.items()}
        # `host:port` names one origin's port; a bare `host` only the scheme's default port, and
        # `h:443` is `https://h` (one origin, RFC 6454 4: the default port is the port).
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        keys = [netloc, f"{host}:{origin.port}"]
        if origin.port == {"http": 80, "https": 443}.get(origin.scheme):
            keys.append(host)
        creds = next((by_host[k] for k in keys if k in by_host), None)
        basic = identity = None
        if creds:
            basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            identity = hashlib.sha256(json.dumps([str(origin), *creds]).encode()).hexdigest()[:32]
        return _Source(repo, chart, origin, basic, identity or "anonymous")

    # ---------------------------------------------------------------- cache

    def _key(self, src: _Source, constraint: str) -> Path:
        # The origin (scheme included): an oci:// resolution made over plain http names http URLs.
        parts = [src.repo, str(src.origin), src.chart, constraint, src.identity]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        return self.cache_dir / "resolved" / f"{key}.json"

    def _cached_resolution(self, src: _Source, constraint: str) -> dict[str, str] | None:
        try:
            entry = json.loads(self._key(src, constraint).read_text())
            if self.clock() - float(entry["at"]) > self.ttl:
                return None
            resolved = {k: entry[k] for k in ("version", "digest", "url")}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(isinstance(v, str) for v in resolved.values()):
            return None
        return resolved

    def _store_resolution(self, src: _Source, constraint: str, resolved: dict[str, str]) -> None:
        _write_atomic(self._key(src, constraint), json.dumps({**resolved, "at": self.clock()}).encode())

    def _blob_path(self, src: _Source, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not _HEX64.fullmatch(hexdigest):
            raise FetchError(f"{src.name}: unsupported digest {digest[:80]!r}; only sha256 can be verified")
        return self.cache_dir / "blobs" / src.identity / "sha256" / hexdigest

    def _blob(self, src: _Source, digest: str) -> bytes | None:
        path = self._blob_path(src, digest)
        if not path.is_file():
            return None
        data = path.read_bytes()
        if sha256(data) != digest:
            path.unlink()  # a corrupted cache entry is dropped and fetched again
            return None
        return data

    def _download(self, src: _Source, version: str, digest: str, url: str) -> bytes:
        self._blob_path(src, digest)  # refuses a digest that cannot be verified before any download
        resp = self._get(src, url, {}, MAX_CHART_BYTES)
        if resp.status != 200:
            raise FetchError(f"{src.at(version)}: download from {redact(url)} failed with HTTP {resp.status}")
        actual = sha256(resp.body)
        if actual != digest:
            raise FetchError(
                f"{src.at(version)}: digest mismatch, expected {digest}, got {actual}; the download is refused"
            )
        # A hostile archive is refused before it reaches the cache: nothing of it is written.
        read_chart(resp.body, budget=Budget())
        _write_atomic(self._blob_path(src, digest), resp.body)
        return resp.body

    # ---------------------------------------------------------------- Helm HTTP repositories

    def _resolve_http(self, src: _Source, constraint: str) -> dict[str, str]:
        index_url = src.repo.rstrip("/") + "/index.yaml"
        resp = self._get(src, index_url, {}, MAX_INDEX_BYTES)
        if resp.status != 200:
            raise FetchError(f"{src.name}: {redact(index_url)} answered HTTP {resp.status}")
        # Only entries.<chart> is built: the rest of a large index is parsed and dropped.
        not_index = f"{src.name}: {redact(index_url)} has no 'entries' mapping; not a Helm repository index"
        try:
            found, listed = safe_yaml.load_at(
                resp.body,
                redact(index_url),
                ("entries", src.chart),
                max_items=MAX_VERSIONS,
                fields=("version", "urls", "digest"),
                max_nodes=MAX_INDEX_NODES,
            )
        except safe_yaml.UntrustedYamlError as err:
            if str(err).endswith(("the document must be a mapping", "entries must be a mapping")):
                raise FetchError(not_index) from None
            raise FetchError(f"{src.name}: {err}") from None
        if found == 0:
            raise FetchError(not_index)
        listed = listed or []
        if not isinstance(listed, list):
            raise FetchError(f"{src.name}: entries.{src.chart} in index.yaml must be a list")
        # Versions are kept as written; a non-string or padded one is skipped like a non-semver tag.
        # One longer than a tag can be is refused before semver's regex sees it.
        for e in listed:
            if isinstance(e, dict) and isinstance(e.get("version"), str) and len(e["version"]) > MAX_VERSION_CHARS:
                raise FetchError(
                    f"{src.name}: index.yaml lists a version of {len(e['version'])} characters;"
                    f" at most {MAX_VERSION_CHARS} (an OCI tag's limit) are accepted"
                )
        by_version = {
            e["version"]: e
            for e in listed
            if isinstance(e, dict) and isinstance(e.get("version"), str) and not version_problem(e["version"])
        }
        version = highest_match(by_version, constraint)
        if version is None:
            raise FetchError(f"{src.name}: no version matches {constraint!r} (found {len(by_version)})")
        entry = by_version[version]
        urls = entry.get("urls")
        if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
            raise FetchError(f"{src.at(version)}: index.yaml lists no download URL")
        digest = entry.get("digest")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise FetchError(f"{src.at(version)}: index.yaml has no sha256 digest; it cannot be verified")
        # urls may be relative to the index (Helm resolves them against the repository URL).
        url = urllib.parse.urljoin(src.repo.rstrip("/") + "/", urls[0])
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"{src.at(version)}: download URL {redact(url)} is not http(s)")
        return {"version": version, "digest": f"sha256:{digest}", "url": url}

    # ---------------------------------------------------------------- OCI registries

    def _resolve_oci(self, src: _Source, constraint: str, plain_http: bool) -> dict[str, str]:
        rest = src.repo.removeprefix("oci://").rstrip("/")
        host, _, namespace = rest.partition("/")
        name = f"{namespace}/{src.chart}" if namespace else src.chart
        base = f"{'http' if plain_http else 'https'}://{host}"
        tags: list[str] = []
        url: str | None = f"{base}/v2/{name}/tags/list?n=1000"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise FetchError(f"{src.name}: the tag list's next page {redact(url)} repeats; stopped")
            if len(seen) >= MAX_TAG_PAGES:
                raise FetchError(f"{src.name}: the tag list has more than {MAX_TAG_PAGES} pages; stopped")
            seen.add(url)
            body, headers = self._oci_get(src, url, {})
            page = _json(body, f"{src.name}: tag list")
            page_tags = page.get("tags") if isinstance(page, dict) else None
            if page_tags is None:
                page_tags = []
            if not isinstance(page_tags, list) or not all(isinstance(t, str) for t in page_tags):
                raise FetchError(f"{src.name}: the tag list's 'tags' must be a list of strings")
            if len(tags) + len(page_tags) > MAX_TAGS:
                raise FetchError(f"{src.name}: the tag list has more than {MAX_TAGS} tags; stopped")
            if long := next((t for t in page_tags if len(t) > MAX_VERSION_CHARS), None):
                # distribution-spec spec.md line 160: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
                raise FetchError(
                    f"{src.name}: the tag list holds a tag of {len(long)} characters; OCI tags are at most"
                    f" {MAX_VERSION_CHARS}"
                )
            tags.extend(page_tags)
            url = _next_link(base, headers.get("link", ""))
            if url is not None and Origin.of(url) != src.origin:
                raise FetchError(f"{src.name}: the tag list's next page leaves {src.origin}; stopped")
        candidates = [t for t in tags if not version_problem(t.replace("_", "+"))]
        tag = highest_match(candidates, constraint)
        if tag is None:
            raise FetchError(f"{src.name}: no tag matches {constraint!r} (found {len(tags)})")
        body, _ = self._oci_get(src, f"{base}/v2/{name}/manifests/{tag}", {"Accept": OCI_MANIFEST})
        manifest = _json(body, f"{src.at(tag)}: manifest")
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(layers, list):
            raise FetchError(f"{src.at(tag)}: the manifest has no 'layers' list")
        helm_layers = [layer for layer in layers if isinstance(layer, dict) and layer.get("mediaType") == HELM_LAYER]
        if len(helm_layers) != 1:
            raise FetchError(f"{src.at(tag)}: the manifest has no single Helm chart layer ({HELM_LAYER})")
        layer = helm_layers[0]
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(digest, str) or not digest.startswith("sha256:") or not _HEX64.fullmatch(digest[7:]):
            raise FetchError(f"{src.at(tag)}: the chart layer has no sha256 digest; it cannot be verified")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FetchError(f"{src.at(tag)}: the chart layer's size must be a non-negative integer")
        if size > MAX_CHART_BYTES:
            raise FetchError(f"{src.at(tag)}: chart layer is larger than {MAX_CHART_BYTES} bytes")
        version = tag.replace("_", "+")
        return {"version": version, "digest": digest, "url": f"{base}/v2/{name}/blobs/{digest}"}

    def _get(self, src: _Source, url: str, headers: dict[str, str], limit: int) -> Response:
        """GET with the source's credential (its own origin only), answering one 401 challenge."""
        credential = self._credential(src)
        resp = self.http.get(url, source=src.name, headers=headers, credential=credential, limit=limit)
        # Only the source's own 401 is its challenge: a host a redirect led to (blob storage, or
        # anyone a hijacked redirect names) could otherwise name a realm that then receives the
        # source's password. Stricter than oras-go, which answers the final response's challenge
        # after Go's client followed redirects (registry/remote/auth/client.go:159-248).
        if resp.status == 401 and Origin.of(url) == src.origin and Origin.of(resp.url) == src.origin:
            credential = self._authenticate(src, url, resp)
            resp = self.http.get(url, source=src.name, headers=headers, credential=credential, limit=limit)
        return resp

    def _oci_get(self, src: _Source, url: str, headers: dict[str, str]) -> tuple[bytes, Mapping[str, str]]:
        resp = self._get(src, url, headers, MAX_JSON_BYTES)
        if resp.status != 200:
            raise FetchError(f"{src.name}: {redact(url)} answered HTTP {resp.status}")
        return resp.body, resp.headers

    def _credential(self, src: _Source) -> Credential | None:
        header = self._tokens.get((src.origin, src.identity)) or src.basic
        return Credential(src.origin, header) if header else None

    def _authenticate(self, src: _Source, url: str, challenge: Response) -> Credential:
        """The distribution auth flow: Basic with credentials, or a Bearer token from the realm
        (anonymous when no credentials are given, as Docker Hub allows for public charts)."""
        scheme, params = _parse_challenge(challenge.headers.get("www-authenticate", ""))
        if scheme == "basic":
            if not src.basic:
                raise FetchError(f"{src.name}: {src.origin} requires credentials (chartRegistryCredentials)")
            self._tokens[(src.origin, src.identity)] = src.basic
        elif scheme == "bearer" and params.get("realm"):
            realm = params["realm"]
            realm_origin = Origin.of(realm)
            if realm_origin.scheme not in ("http", "https"):
                raise FetchError(f"{src.name}: token realm {redact(realm)} is not http(s)")
            # The registry names its token service (Docker Hub: auth.docker.io); the registry's
            # credential goes there only over https, or to the registry's own origin.
            if src.origin.scheme == "https" and realm_origin.scheme != "https":
                raise FetchError(f"{src.name}: token realm {redact(realm)} is plain http; refused")
            send_basic = src.basic and (realm_origin.scheme == "https" or realm_origin == src.origin)
            query = {k: v for k, v in (("service", params.get("service")), ("scope", params.get("scope"))) if v}
            token_url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query) if query else realm
            resp = self.http.get(
                token_url,
                source=src.name,
                credential=Credential(realm_origin, src.basic) if send_basic and src.basic else None,
                limit=MAX_JSON_BYTES,
            )
            if resp.status != 200:
                raise FetchError(f"{src.name}: token request to {redact(realm)} failed with HTTP {resp.status}")
            data = _json(resp.body, f"{src.name}: token answer")
            token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
            if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
                raise FetchError(f"{src.name}: the token service returned no usable token")
            self._tokens[(src.origin, src.identity)] = f"Bearer {token}"
        else:
            raise FetchError(f"{src.name}: {redact(url)} answered 401 without a usable challenge")
        return Credential(src.origin, self._tokens[(src.origin, src.identity)])


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a unique temporary file (O_EXCL, mode 0600: a chart fetched with credentials
    stays private) and rename it into place, so concurrent writers in one process or several never
    share a temporary name, a planted symlink is never followed, and readers see whole files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError(f"{what} is not JSON") from None
    except RecursionError:
        # json's decoder recurses once per level (json/decoder.py via _json.scanstring/scan_once).
        raise FetchError(f"{what} is nested too deeply") from None


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _next_link(base: str, link: str) -> str | None:
    m = re.search(r'<([^>]+)>;\s*rel="?next"?', link)
    return urllib.parse.urljoin(base, m.group(1)) if m else None
