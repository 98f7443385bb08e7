"""One hardened GET for chart sources, on httpx.

httpx does the protocol (HTTP/1.1 framing, TLS, proxies, connection reuse) and builds redirect
requests: its `_redirect_headers` drops `Authorization` whenever the target is not the same
origin, comparing scheme, host and port (httpx 0.28.1 `_client.py` `_same_origin` and
`_redirect_headers`, lines 83-91 and 546-556), which is the rule we rely on. What httpx does not
do, and is kept here:
- redirects are followed by hand (`follow_redirects=False`, then `response.next_request`), so an
  https → http downgrade is refused instead of followed, the hop count is ours, a credential can
  only ever go to the origin it belongs to, and a redirect's body is never read (httpx reads
  it whole when it follows itself, `_send_handling_redirects`);
- a total deadline per operation: httpx timeouts bound each network operation (httpcore
  `_sync/http11.py` `_receive_event` passes the read timeout to every read), so a server that
  trickles a byte a second holds a request forever. Each attempt runs in a daemon thread joined
  with the time left;
- retries on 429/5xx/transport errors with `retry-after` (seconds or an HTTP date) clamped:
  httpx's transport retries only failed connects (`HTTPTransport(retries=...)`);
- a body cap while streaming, so an answer larger than expected stops before it fills memory.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from scoutflo.charts.errors import FetchError

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: the unit credentials belong to (RFC 6454)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            raise FetchError(f"{redact(url)} has an invalid port") from None
        return cls(scheme, (parts.hostname or "").lower(), port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def redact(url: str) -> str:
    """The URL without userinfo or query (a pre-signed URL's signature), safe for an error message."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    """Where the answer finally came from, after redirects."""


@dataclass(frozen=True)
class Credential:
    """An `Authorization` value and the one origin it may be sent to."""

    origin: Origin
    header: str = field(repr=False)


@dataclass
class Http:
    """GET with a per-operation deadline, clamped retries, capped bodies and same-origin credentials."""

    timeout: float = 30.0
    """Per network operation (connect, each read)."""
    deadline: float = 300.0
    """Total time for one operation (`operation()`), all requests, retries and waits included."""
    attempts: int = 4
    backoff: float = 1.0
    max_wait: float = 30.0
    """The longest single wait, whatever `retry-after` asks."""
    max_redirects: int = 5
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    requests: int = 0
    offline: bool = False
    """Refuse any request (tests: proves a cache hit needs no network)."""
    verify: ssl.SSLContext | bool = True
    """TLS verification, as httpx takes it (a context trusting a private CA for mirrors and tests)."""
    _until: float | None = None
    _client: httpx.Client | None = field(default=None, repr=False)

    def operation(self) -> _Operation:
        """A context in which every request shares one deadline."""
        return _Operation(self)

    def _remaining(self, source: str) -> float:
        if self._until is None:
            return self.deadline
        left = self._until - self.clock()
        if left <= 0:
            raise FetchError(f"{source}: gave up after the {self.deadline:g} s deadline for one chart")
        return left

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                follow_redirects=False,
                timeout=self.timeout,
                verify=self.verify,
                headers={"Accept-Encoding": "gzip"},  # what _read_capped decodes
            )
        return self._client

    def get(
        self,
        url: str,
        *,
        source: str,
        headers: Mapping[str, str] | None = None,
        credential: Credential | None = None,
        limit: int,
    ) -> Response:
        """GET `url`; 4xx other than 429 is returned, not retried. `source` names the chart source
        in every error; `credential` is sent only to requests for its own origin."""
        if self.offline:
            raise FetchError(f"{source}: network use while offline ({redact(url)})")
        delay = self.backoff
        last = ""
        for attempt in range(1, self.attempts + 1):
            self.requests += 1
            remaining = self._remaining(source)
            outcome = self._attempt(url, dict(headers or {}), credential, limit, source, remaining)
            if isinstance(outcome, Response):
                if outcome.status != 429 and outcome.status < 500:
                    return outcome
                last = f"HTTP {outcome.status}"
                wait = _retry_after(outcome.headers.get("retry-after")) or delay
            else:
                last = outcome
                wait = delay
            if attempt < self.attempts:
                wait = min(max(wait, 0.0), self.max_wait)
                if wait >= self._remaining(source):
                    raise FetchError(f"{source}: {redact(url)} asks to wait {wait:g} s, past the deadline ({last})")
                self.sleep(wait)
                delay *= 2
        raise FetchError(f"{source}: {redact(url)} is unreachable after {self.attempts} attempts ({last})")

    def _attempt(
        self,
        url: str,
        headers: dict[str, str],
        credential: Credential | None,
        limit: int,
        source: str,
        remaining: float,
    ) -> Response | str:
        box: dict[str, Response | str | BaseException] = {}

        def run() -> None:
            try:
                box["out"] = self._request(url, headers, credential, limit, source)
            except FetchError as err:
                box["out"] = err
            except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError) as err:
                box["out"] = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
            except (MemoryError, RecursionError) as err:  # under the child's caps: raised by the caller
                box["out"] = err

        worker = threading.Thread(target=run, name="chart-fetch", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():
            # The stuck request holds a pooled connection: drop the client, the thread ends when
            # its socket is closed or times out.
            client, self._client = self._client, None
            if client is not None:
                threading.Thread(target=client.close, daemon=True).start()
            raise FetchError(f"{source}: {redact(url)} gave no complete answer within the {self.deadline:g} s deadline")
        out = box.get("out")
        if out is None:  # the thread ended on an exception of another kind: threading printed it
            raise FetchError(f"{source}: the request to {redact(url)} failed unexpectedly")
        if isinstance(out, BaseException):
            raise out
        return out

    def _request(
        self, url: str, headers: dict[str, str], credential: Credential | None, limit: int, source: str
    ) -> Response:
        if credential is not None and Origin.of(url) == credential.origin:
            headers["Authorization"] = credential.header
        request = self.client().build_request("GET", url, headers=headers)
        for _hop in range(self.max_redirects + 1):
            response = self.client().send(request, stream=True)
            try:
                if not response.has_redirect_location:
                    return Response(
                        response.status_code,
                        {k.lower(): v for k, v in response.headers.items()},
                        _read_capped(response, limit, source),
                        str(response.url),
                    )
                nxt = response.next_request
            finally:
                response.close()
            assert nxt is not None  # has_redirect_location implies a next request
            here, there = Origin.of(str(request.url)), Origin.of(str(nxt.url))
            if here.scheme == "https" and there.scheme != "https":
                raise FetchError(f"{source}: {redact(str(request.url))} redirects to plain http; refused")
            # httpx already dropped Authorization for another origin, except on an http -> https
            # upgrade of the same host; a credential still goes to its own origin only.
            if credential is None or there != credential.origin:
                nxt.headers.pop("Authorization", None)
            request = nxt
        raise FetchError(f"{source}: {redact(url)} redirects more than {self.max_redirects} times")


class _Operation:
    def __init__(self, http: Http) -> None:
        self.http = http

    def __enter__(self) -> Http:
        self.outer = self.http._until
        if self.outer is None:
            self.http._until = self.http.clock() + self.http.deadline
        return self.http

    def __exit__(self, *exc: object) -> None:
        self.http._until = self.outer


def _read_capped(response: httpx.Response, limit: int, source: str) -> bytes:
    """The body, decoded, at most `limit` bytes.

    Read raw and decoded here: httpx's decoders (0.28.1 `_decoders.py`) inflate a whole network
    chunk at once and stack any number of codings (`gzip, gzip`: a 500-byte answer is 64 MiB
    before a cap sees it). We ask for `gzip` only and accept one gzip or deflate layer, inflated
    with the room left as zlib's `max_length`."""
    where = redact(str(response.url))
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(f"{source}: {where} is larger than {limit} bytes")
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        inflater = None
    elif coding in ("gzip", "x-gzip", "deflate"):
        # 32 + MAX_WBITS: a gzip or zlib header, detected (deflate is zlib-wrapped, RFC 9110 8.4.1.2).
        inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    else:
        raise FetchError(f"{source}: {where} answered with content-encoding {coding[:40]!r}; only one gzip layer")
    chunks: list[bytes] = []
    size = 0
    for raw in response.iter_raw():
        pending = raw
        while pending:
            if inflater is None:
                out, pending = pending, b""
            else:
                try:
                    out = inflater.decompress(pending, limit - size + 1)
                except zlib.error as err:
                    raise FetchError(f"{source}: {where} has a broken {coding} body: {err}") from None
                pending = inflater.unconsumed_tail
            size += len(out)
            if size > limit:
                raise FetchError(f"{source}: {where} is larger than {limit} bytes")
            chunks.append(out)
            if not out and pending:
                break  # nothing decoded from what is left: zlib needs more input
    if inflater is not None and not inflater.eof:
        raise FetchError(f"{source}: {where} ends inside its {coding} body")
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    """`retry-after` as seconds: a number or an HTTP date (RFC 9110 10.2.3); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    # RFC 9110 10.2.3: delay-seconds is 1*DIGIT, ASCII; str.isdigit() also accepts '²', which
    # float() refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
