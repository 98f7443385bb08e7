"""Fetching public charts: classic Helm repositories and OCI registries, verified and cached.

Why not a library: Helm's own client does not verify the digest of what it downloads
(pkg/downloader/cache.go), and oras-py writes layers to files named by their title annotation
(Helm's chart layer has none) through `requests`. We need the opposite: the chart layer read into
memory under a size cap, its digest checked, and nothing written but a content-addressed cache.
The OCI subset used is small and stable (distribution-spec: tags/list, manifests, blobs, and the
token flow of its auth spec), so it is implemented here on the standard library.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scoutflo.chart_archive import MAX_CHART_BYTES, read_chart
from scoutflo.versions import highest_match

HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MAX_INDEX_BYTES = 64 * 1024 * 1024


class FetchError(RuntimeError):
    """A chart that cannot be fetched or verified; the message names the chart and the cause."""


@dataclass(frozen=True)
class FetchedChart:
    chart: str
    version: str
    digest: str
    """`sha256:<hex>`: of the .tgz (Helm repository) or the OCI chart layer: the same bytes."""
    source: str
    archive: bytes


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoAuthAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Registries redirect blobs to pre-signed storage URLs, which reject a second credential."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


@dataclass
class Http:
    """GET with a timeout, retries and exponential backoff; 4xx other than 429 is not retried."""

    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0
    _opener: Any = field(default_factory=lambda: urllib.request.build_opener(_NoAuthAcrossHosts()))

    def get(self, url: str, headers: Mapping[str, str] | None = None, limit: int = MAX_CHART_BYTES) -> Response:
        delay = self.backoff
        last = ""
        for attempt in range(1, self.attempts + 1):
            self.requests += 1
            req = urllib.request.Request(url, headers=dict(headers or {}))
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    body = resp.read(limit + 1)
                    if len(body) > limit:
                        raise FetchError(f"{url} is larger than {limit} bytes")
                    return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
            except urllib.error.HTTPError as err:
                hdrs = {k.lower(): v for k, v in err.headers.items()}
                if err.code != 429 and err.code < 500:
                    return Response(err.code, hdrs, err.read(65536))
                last = f"HTTP {err.code}"
                wait = float(hdrs.get("retry-after", delay)) if hdrs.get("retry-after", "").isdigit() else delay
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = str(getattr(err, "reason", err))
                wait = delay
            if attempt < self.attempts:
                self.sleep(wait)
                delay *= 2
        raise FetchError(f"{url} is unreachable after {self.attempts} attempts ({last})")


def cache_dir(configured: str = "") -> Path:
    """The configured cache directory, else $XDG_CACHE_HOME/scoutflo/charts (~/.cache/...)."""
    import os

    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scoutflo" / "charts"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ChartFetcher:
    """Resolves `constraint` to the newest matching version and returns the verified archive.

    Cache (`cache_dir`): archives by digest (`blobs/sha256/<hex>`, verified on every read), and
    resolutions (source, chart, constraint -> version, digest, url) for `ttl` seconds, so
    repeated previews neither download again nor touch the network.
    """

    cache_dir: Path
    ttl: float = 3600.0
    http: Http = field(default_factory=Http)
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """registry host -> (username, password), for OCI registries that need them."""
    clock: Callable[[], float] = time.time
    _tokens: dict[str, str] = field(default_factory=dict)

    def fetch(self, repo: str, chart: str, constraint: str, *, plain_http: bool = False) -> FetchedChart:
        resolved = self._cached_resolution(repo, chart, constraint)
        if resolved is None:
            if repo.startswith("oci://"):
                resolved = self._resolve_oci(repo, chart, constraint, plain_http)
            else:
                resolved = self._resolve_http(repo, chart, constraint)
            self._store_resolution(repo, chart, constraint, resolved)
        version, digest, url = resolved["version"], resolved["digest"], resolved["url"]
        archive = self._blob(digest)
        if archive is None:
            archive = self._download(repo, chart, version, digest, url)
        return FetchedChart(chart=chart, version=version, digest=digest, source=repo, archive=archive)

    # ---------------------------------------------------------------- cache

    def _key(self, repo: str, chart: str, constraint: str) -> Path:
        key = hashlib.sha256(json.dumps([repo, chart, constraint]).encode()).hexdigest()
        return self.cache_dir / "resolved" / f"{key}.json"

    def _cached_resolution(self, repo: str, chart: str, constraint: str) -> dict[str, str] | None:
        path = self._key(repo, chart, constraint)
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if self.clock() - float(entry.get("at", 0)) > self.ttl:
            return None
        return {k: str(entry[k]) for k in ("version", "digest", "url")}

    def _store_resolution(self, repo: str, chart: str, constraint: str, resolved: dict[str, str]) -> None:
        path = self._key(repo, chart, constraint)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**resolved, "at": self.clock()}))

    def _blob_path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise FetchError(f"unsupported digest {digest!r}")
        return self.cache_dir / "blobs" / "sha256" / hexdigest

    def _blob(self, digest: str) -> bytes | None:
        path = self._blob_path(digest)
        if not path.is_file():
            return None
        data = path.read_bytes()
        if sha256(data) != digest:
            path.unlink()  # a corrupted cache entry is dropped and fetched again
            return None
        return data

    def _download(self, repo: str, chart: str, version: str, digest: str, url: str) -> bytes:
        resp = self._get(url, {}, MAX_CHART_BYTES, oci=repo.startswith("oci://"))
        if resp.status != 200:
            raise FetchError(f"chart {chart} {version}: download from {url} failed with HTTP {resp.status}")
        actual = sha256(resp.body)
        if actual != digest:
            raise FetchError(
                f"chart {chart} {version} from {repo}: digest mismatch, expected {digest}, got {actual}; "
                "the download is refused"
            )
        # A hostile archive is refused before it reaches the cache: nothing of it is written.
        read_chart(resp.body)
        path = self._blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(resp.body)
        tmp.replace(path)
        return resp.body

    # ---------------------------------------------------------------- Helm HTTP repositories

    def _resolve_http(self, repo: str, chart: str, constraint: str) -> dict[str, str]:
        index_url = repo.rstrip("/") + "/index.yaml"
        resp = self.http.get(index_url, limit=MAX_INDEX_BYTES)
        if resp.status != 200:
            raise FetchError(f"chart {chart}: {index_url} answered HTTP {resp.status}")
        try:
            index = yaml.safe_load(resp.body)
        except yaml.YAMLError as err:
            raise FetchError(f"chart {chart}: {index_url} is not valid YAML: {err}") from None
        entries = ((index or {}).get("entries") or {}).get(chart) or []
        by_version = {str(e.get("version")): e for e in entries if isinstance(e, dict)}
        version = highest_match(by_version, constraint)
        if version is None:
            raise FetchError(f"chart {chart}: no version in {repo} matches {constraint!r} (found {len(by_version)})")
        entry = by_version[version]
        urls = entry.get("urls") or []
        if not urls:
            raise FetchError(f"chart {chart} {version}: index.yaml lists no download URL")
        digest = str(entry.get("digest") or "")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise FetchError(f"chart {chart} {version}: index.yaml has no sha256 digest; it cannot be verified")
        # urls may be relative to the index (Helm resolves them against the repository URL).
        url = urllib.parse.urljoin(repo.rstrip("/") + "/", str(urls[0]))
        return {"version": version, "digest": f"sha256:{digest}", "url": url}

    # ---------------------------------------------------------------- OCI registries

    def _oci_base(self, repo: str, chart: str, plain_http: bool) -> tuple[str, str]:
        rest = repo.removeprefix("oci://").rstrip("/")
        host, _, namespace = rest.partition("/")
        name = f"{namespace}/{chart}" if namespace else chart
        return f"{'http' if plain_http else 'https'}://{host}", name

    def _resolve_oci(self, repo: str, chart: str, constraint: str, plain_http: bool) -> dict[str, str]:
        base, name = self._oci_base(repo, chart, plain_http)
        tags: list[str] = []
        url: str | None = f"{base}/v2/{name}/tags/list?n=1000"
        while url:
            body, headers = self._oci_get(url, chart, {})
            tags.extend(json.loads(body).get("tags") or [])
            url = _next_link(base, headers.get("link", ""))
        tag = highest_match(tags, constraint)
        if tag is None:
            raise FetchError(f"chart {chart}: no tag in {repo} matches {constraint!r} (found {len(tags)})")
        body, _ = self._oci_get(f"{base}/v2/{name}/manifests/{tag}", chart, {"Accept": OCI_MANIFEST})
        manifest = json.loads(body)
        layers = [layer for layer in manifest.get("layers") or [] if layer.get("mediaType") == HELM_LAYER]
        if len(layers) != 1:
            raise FetchError(f"chart {chart} {tag}: the manifest has no Helm chart layer ({HELM_LAYER})")
        layer = layers[0]
        if int(layer.get("size") or 0) > MAX_CHART_BYTES:
            raise FetchError(f"chart {chart} {tag}: chart layer is larger than {MAX_CHART_BYTES} bytes")
        version = tag.replace("_", "+")
        return {"version": version, "digest": str(layer["digest"]), "url": f"{base}/v2/{name}/blobs/{layer['digest']}"}

    def _get(self, url: str, headers: dict[str, str], limit: int, *, oci: bool) -> Response:
        """GET; from a registry with the host's token, answering one 401 challenge."""
        if not oci:
            return self.http.get(url, headers, limit=limit)
        resp = self.http.get(url, {**headers, **self._auth_headers(url)}, limit=limit)
        if resp.status == 401:
            resp = self.http.get(url, {**headers, **self._authenticate(url, resp)}, limit=limit)
        return resp

    def _oci_get(self, url: str, chart: str, headers: dict[str, str]) -> tuple[bytes, Mapping[str, str]]:
        resp = self._get(url, headers, MAX_INDEX_BYTES, oci=True)
        if resp.status != 200:
            raise FetchError(f"chart {chart}: {url} answered HTTP {resp.status}")
        return resp.body, resp.headers

    def _auth_headers(self, url: str) -> dict[str, str]:
        token = self._tokens.get(urllib.parse.urlsplit(url).netloc)
        return {"Authorization": token} if token else {}

    def _authenticate(self, url: str, challenge: Response) -> dict[str, str]:
        """The distribution auth flow: Basic with credentials, or a Bearer token from the realm
        (anonymous when no credentials are given, as Docker Hub allows for public charts)."""
        host = urllib.parse.urlsplit(url).netloc
        scheme, params = _parse_challenge(challenge.headers.get("www-authenticate", ""))
        creds = self.credentials.get(host)
        basic = None
        if creds:
            import base64

            basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme == "basic":
            if not basic:
                raise FetchError(f"{host} requires credentials for {url}")
            self._tokens[host] = basic
        elif scheme == "bearer" and params.get("realm"):
            query = {k: v for k, v in (("service", params.get("service")), ("scope", params.get("scope"))) if v}
            token_url = params["realm"] + ("?" + urllib.parse.urlencode(query) if query else "")
            resp = self.http.get(token_url, {"Authorization": basic} if basic else {}, limit=1024 * 1024)
            if resp.status != 200:
                raise FetchError(f"{host}: token request to {params['realm']} failed with HTTP {resp.status}")
            data = json.loads(resp.body)
            token = data.get("token") or data.get("access_token")
            if not token:
                raise FetchError(f"{host}: the token service returned no token")
            self._tokens[host] = f"Bearer {token}"
        else:
            raise FetchError(f"{host} answered 401 without a usable challenge")
        return {"Authorization": self._tokens[host]}


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _next_link(base: str, link: str) -> str | None:
    m = re.search(r'<([^>]+)>;\s*rel="?next"?', link)
    return urllib.parse.urljoin(base, m.group(1)) if m else None
