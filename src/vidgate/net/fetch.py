"""The one SSRF-safe fetcher for user-supplied URLs (images) and upstream-provided video URLs.

Nothing else in vidgate should build an outbound HTTP client for a URL that a
user or an upstream chose. What :class:`SafeFetcher` guarantees:

* Every TCP connection goes through :class:`GuardedBackend`, an httpcore network
  backend that resolves the host once, refuses it unless every address passes
  the :class:`~vidgate.net.policy.FetchPolicy`, and connects to the checked
  numeric address. DNS rebinding cannot slip in between check and connect.
  TLS SNI and certificate checks still use the host name: httpcore calls
  ``stream.start_tls(server_hostname=<origin host>)`` itself
  (httpcore/_async/connection.py, ``AsyncHTTPConnection._connect``).
* Redirects are followed by hand, at most ``policy.max_redirects`` times; every
  hop is re-checked (scheme, userinfo, port, literal address) and every new
  connection passes the guard again.
* No proxies or other settings from the environment (``trust_env=False``), no
  cookies kept between fetches, no compressed bodies (no decompression bombs).
* Caps: Content-Length checked up front, streamed bytes counted; a total
  deadline around the whole fetch (httpx's own timeouts are per phase); a
  Content-Type allowlist plus a magic-byte sniff, both from a :class:`MediaKind`.
"""

from __future__ import annotations

import math
import os
import pathlib
import ssl
import tempfile
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType

import anyio
import httpcore
import httpx

from vidgate.media.sniff import sniff_image, sniff_mp4
from vidgate.net.datauri import DataUriTooLarge, decode_data_uri, is_data_uri
from vidgate.net.outbound_log import loggable_url, outbound_event_hooks
from vidgate.net.policy import (
    FetchPolicy,
    Resolver,
    UrlRejected,
    check_url,
    resolve_allowed,
    system_resolver,
)

__all__ = [
    "IMAGE",
    "VIDEO_MP4",
    "ContentRejected",
    "ContentTooLarge",
    "FetchFailed",
    "FetchRefused",
    "FetchTimedOut",
    "Fetched",
    "GuardedBackend",
    "MediaKind",
    "SafeFetcher",
    "host_port",
    "sniff_image",
    "sniff_mp4",
]

SocketOption = httpcore.SOCKET_OPTION  # type alias re-used from httpcore's public API


# --------------------------------------------------------------------------- errors


class FetchFailed(Exception):
    """A fetch did not produce acceptable content. ``reason`` is a human sentence.

    Tree::

        FetchFailed          network error, bad HTTP status, too many redirects
        ├── FetchRefused     the policy refused the URL, a redirect hop or an address
        ├── FetchTimedOut    the total deadline or a per-phase timeout passed
        └── ContentRejected  wrong Content-Type, bytes that are not the declared kind, empty body
            └── ContentTooLarge
    """

    code = "fetch_failed"

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        self.reason = reason
        self.http_status = http_status  # the final response's status, when that is what failed
        super().__init__(reason)


class FetchRefused(FetchFailed):
    """The fetch policy refused the URL, a redirect target, or the address a host resolved to."""

    code = "fetch_refused"


class FetchTimedOut(FetchFailed):
    """The fetch did not finish in time."""

    code = "fetch_timeout"


class ContentRejected(FetchFailed):
    """The response is not an acceptable media file."""

    code = "unsupported_content"


class ContentTooLarge(ContentRejected):
    """The response is larger than the byte limit."""

    code = "content_too_large"


# --------------------------------------------------------------------------- media kinds


@dataclass(frozen=True)
class MediaKind:
    """What a fetch may return: a Content-Type allowlist and a magic-byte sniffer.

    ``content_types`` holds exact media types, or ``"major/*"`` for any subtype.
    ``sniff`` sees the first ``sniff_len`` bytes (fewer if the body is shorter) and
    returns the real media type, or None to reject.
    """

    name: str
    content_types: frozenset[str]
    sniff: Callable[[bytes], str | None]
    accept: str
    sniff_len: int = 64
    allow_data_uri: bool = False

    def accepts_header(self, media_type: str) -> bool:
        """Whether a response's Content-Type (lower-case, no parameters) is on the allowlist."""
        if media_type in self.content_types:
            return True
        major, slash, _sub = media_type.partition("/")
        return bool(major and slash) and f"{major}/*" in self.content_types


IMAGE = MediaKind(
    name="image",
    content_types=frozenset({"image/*"}),
    sniff=sniff_image,
    accept="image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8",
    allow_data_uri=True,
)
"""User-supplied reference images: ``image/*`` by header, PNG/JPEG/GIF/WebP/AVIF/HEIF/BMP/TIFF by bytes."""

VIDEO_MP4 = MediaKind(
    name="video",
    content_types=frozenset({"video/mp4", "application/octet-stream"}),
    sniff=sniff_mp4,
    accept="video/mp4,application/octet-stream;q=0.5",
)
"""Upstream results: ``video/mp4`` or ``application/octet-stream`` by header, an MP4 ``ftyp`` box by bytes."""


@dataclass(frozen=True)
class Fetched:
    """A fetched body. ``content_type`` is the sniffed type; ``final_url`` is after redirects.

    For a data: URI ``final_url`` is ``"data:"`` (the payload is not repeated).
    """

    data: bytes = field(repr=False)
    content_type: str
    final_url: str


# --------------------------------------------------------------------------- connect-time guard


class _GuardedStream(httpcore.AsyncNetworkStream):
    """A stream opened by :class:`GuardedBackend`; its type is the proof (see ``_assert_guarded``)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _GuardedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _ResolveFailed(httpcore.ConnectError):
    """The host name did not resolve (told apart from refused connections in messages)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that enforces the fetch policy at connect time.

    ``connect_tcp`` resolves the host exactly once with ``resolver``, refuses it
    (:class:`~vidgate.net.policy.UrlRejected`) unless the port and EVERY address
    are allowed, then has ``inner`` connect to the numeric addresses in order.
    Unix sockets are refused.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner: httpcore.AsyncNetworkBackend = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self._policy.port_allowed(port):
            raise UrlRejected(f"the port {port} is not allowed")
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_allowed(host, port, self._policy, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except OSError as exc:
            raise _ResolveFailed(f"could not resolve {host!r}: {exc}") from exc
        last_error: httpcore.ConnectError | None = None
        for ip in addresses:
            remaining = None if timeout is None else max(0.0, deadline - anyio.current_time())
            try:
                stream = await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc  # try the next checked address
                continue
            return _GuardedStream(stream)
        assert last_error is not None  # resolve_allowed never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UrlRejected("connections to unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _install_network_backend(
    transport: httpx.AsyncHTTPTransport, backend: httpcore.AsyncNetworkBackend
) -> None:
    """Make ``transport`` open every connection through ``backend``.

    COMPROMISE: httpx 0.28.1 has no public parameter for an httpcore network
    backend (proposed in encode/httpx#3749 / discussion #3180), so this sets the
    private ``transport._pool._network_backend``. It is the only private access
    in vidgate.net; it checks what it touches and raises if httpx's internals
    differ. ``tests/unit/net/test_fetch_wiring.py`` pins the behaviour, and every
    response is also checked to come from a guarded stream (fail closed).
    """
    pool = getattr(transport, "_pool", None)
    # Proxy pools subclass AsyncConnectionPool: require the exact class.
    if type(pool) is not httpcore.AsyncConnectionPool:
        raise RuntimeError(
            f"httpx internals changed: transport._pool is {type(pool).__name__}, not AsyncConnectionPool"
        )
    if not isinstance(getattr(pool, "_network_backend", None), httpcore.AsyncNetworkBackend):
        raise RuntimeError("httpx internals changed: AsyncConnectionPool has no _network_backend")
    if pool.connections:
        raise RuntimeError("the network backend must be installed before any connection is made")
    pool._network_backend = backend


def _assert_guarded(response: httpx.Response) -> None:
    """Fail closed if a response did not come over a connection opened by :class:`GuardedBackend`."""
    if not isinstance(response.extensions.get("network_stream"), _GuardedStream):
        raise RuntimeError(
            "SSRF guard bypassed: a response came over an unguarded connection (httpx internals?)"
        )


def _no_cookies() -> CookieJar:
    # One client serves every user: never keep a cookie from one fetch for the next.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _build_client(backend: GuardedBackend, timeout: float, user_agent: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0, http1=True, http2=False)
    _install_network_backend(transport, backend)
    phase = min(timeout, 10.0)
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,  # with transport= set, httpx would STILL mount env proxies otherwise
        follow_redirects=False,
        timeout=httpx.Timeout(phase, pool=min(timeout, 5.0)),
        cookies=_no_cookies(),
        headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
        event_hooks=outbound_event_hooks(),
    )


# --------------------------------------------------------------------------- body checks


_WRITE_BYTES = 1 << 20


class _BodyGuard:
    """Counts streamed bytes against the cap and holds them back until the sniff accepts them."""

    def __init__(self, kind: MediaKind, max_bytes: int) -> None:
        self._kind = kind
        self._max_bytes = max_bytes
        self._head = bytearray()
        self._total = 0
        self.content_type: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Account for ``chunk``; return the bytes that may be passed on now."""
        self._total += len(chunk)
        if self._total > self._max_bytes:
            raise ContentTooLarge(
                f"the {self._kind.name} is larger than the limit of {self._max_bytes} bytes"
            )
        if self.content_type is not None:
            return chunk
        self._head += chunk
        return self._release() if len(self._head) >= self._kind.sniff_len else b""

    def finish(self) -> bytes:
        """End of body: return what is still held back."""
        if self.content_type is not None:
            return b""
        if not self._head:
            raise ContentRejected(f"the server sent an empty body instead of a {self._kind.name}")
        return self._release()

    def _release(self) -> bytes:
        data = bytes(self._head)
        self.content_type = _sniff_or_reject(self._kind, data)
        self._head.clear()
        return data


def _sniff_or_reject(kind: MediaKind, data: bytes) -> str:
    sniffed = kind.sniff(data[: kind.sniff_len])
    if sniffed is None:
        raise ContentRejected(
            f"the content is not a supported {kind.name} file (its first bytes do not match)"
        )
    return sniffed


def _check_response(response: httpx.Response, kind: MediaKind, max_bytes: int) -> None:
    """Status and headers of the final response, before any body byte is read."""
    if response.status_code != 200:
        raise FetchFailed(
            f"the server answered HTTP {response.status_code}, expected 200", http_status=response.status_code
        )
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ContentRejected(f"compressed responses (Content-Encoding: {encoding}) are not accepted")
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not kind.accepts_header(media_type):
        expected = ", ".join(sorted(kind.content_types))
        raise ContentRejected(f"the server sent Content-Type {media_type or 'none'!r}; expected {expected}")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ContentTooLarge(f"the {kind.name} is {int(length)} bytes; the limit is {max_bytes} bytes")


@contextmanager
def _translate_errors() -> Iterator[None]:
    """httpx / policy exceptions -> the FetchFailed tree, with messages that leak nothing internal."""
    try:
        yield
    except UrlRejected as exc:
        raise FetchRefused(exc.reason) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimedOut(f"{_server_at(exc)} did not respond in time") from exc
    except httpx.ConnectError as exc:
        if isinstance(exc.__cause__, _ResolveFailed):
            host = _request_url(exc)
            named = f" {host.host}" if host is not None and host.host else ""
            raise FetchFailed(f"the host name{named} could not be resolved") from exc
        raise FetchFailed(f"could not connect to {_server_at(exc)}") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(
            f"the connection to {_server_at(exc)} failed or it sent an invalid HTTP response"
        ) from exc


def host_port(url: httpx.URL) -> str:
    """`host:port` of `url` for a message (the scheme's port when none is written; an IPv6 address in
    brackets): never its userinfo, path or query string, where credentials and signatures travel. The
    host as the URL names it, never the address it resolved to."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return f"{host}:{port}" if port else host


def _request_url(exc: httpx.HTTPError) -> httpx.URL | None:
    try:
        return exc.request.url
    except RuntimeError:  # raised outside a client's send: no request attached
        return None


def _server_at(exc: httpx.HTTPError) -> str:
    """Who `exc` is about, for a message: "the server at host:port", or "the server" when it names none."""
    url = _request_url(exc)
    return f"the server at {host_port(url)}" if url is not None and url.host else "the server"


def _shorten(url: httpx.URL) -> str:
    """`url` for an error message: no query string or userinfo (a presigned link's signature would
    end up in the task's error), and at most 200 characters."""
    text = loggable_url(url)
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- the fetcher


class SafeFetcher:
    """Fetches user- and upstream-supplied URLs under a :class:`FetchPolicy`. One per process.

    Owns one ``httpx.AsyncClient`` (connections are pooled per checked origin);
    use it as an async context manager or call :meth:`aclose`.
    ``timeout`` is the default TOTAL deadline per fetch, redirects and body
    included; each phase (connect, read, write) also has a timeout of at most 10 s.
    ``network_backend`` is what opens sockets after the policy check (default
    httpcore's AnyIO backend); tests pass a spy.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        timeout: float = 30.0,
        user_agent: str = "vidgate/0.1",
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._policy = policy
        self._timeout = timeout
        backend = GuardedBackend(policy, resolver or system_resolver, network_backend)
        self._client = _build_client(backend, timeout, user_agent)

    @property
    def policy(self) -> FetchPolicy:
        """The policy every fetch is checked against."""
        return self._policy

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()

    async def fetch_bytes(
        self, url: str, *, max_bytes: int, kind: MediaKind, timeout: float | None = None
    ) -> Fetched:
        """Fetch ``url`` into memory (at most ``max_bytes``), checked against ``kind``.

        Accepts ``data:`` URIs when ``kind.allow_data_uri``. Raises :class:`FetchFailed`
        (or a subclass) with a human ``reason``.
        """
        if is_data_uri(url):
            return self._decode_data_uri(url, max_bytes, kind)
        parts: list[bytes] = []
        guard = _BodyGuard(kind, max_bytes)
        async with self._download(url, kind, max_bytes, timeout) as response:
            async for chunk in response.aiter_raw():
                parts.append(guard.feed(chunk))
            parts.append(guard.finish())
            final_url = str(response.url)
        assert guard.content_type is not None
        return Fetched(b"".join(parts), guard.content_type, final_url)

    async def fetch_to_file(
        self,
        url: str,
        dest: pathlib.Path,
        *,
        max_bytes: int,
        kind: MediaKind,
        timeout: float | None = None,
    ) -> str:
        """Stream ``url`` into ``dest`` in constant memory; return the sniffed content type.

        Writes to a temporary file next to ``dest`` and renames it on success, so
        ``dest`` never holds a partial download; the temporary file is removed on
        any failure (including cancellation). Raises like :meth:`fetch_bytes`.
        """
        dest = pathlib.Path(dest)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
        os.close(fd)
        tmp = pathlib.Path(tmp_name)
        try:
            async with await anyio.open_file(tmp, "wb") as out:
                if is_data_uri(url):
                    fetched = self._decode_data_uri(url, max_bytes, kind)
                    await out.write(fetched.data)
                    content_type = fetched.content_type
                else:
                    content_type = await self._stream_into(url, out, max_bytes, kind, timeout)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return content_type

    async def post_json(
        self, url: str, body: bytes, *, headers: dict[str, str], timeout: float | None = None
    ) -> int:
        """POST a JSON ``body`` to ``url`` (a webhook) under the same policy; return the HTTP status.

        Redirects are not followed (a webhook receiver answers itself; a 3xx is returned as is),
        and the response body is discarded unread. Raises FetchRefused / FetchTimedOut / FetchFailed.
        """
        target = check_url(url, self._policy)
        deadline = self._timeout if timeout is None else timeout
        request = self._client.build_request(
            "POST", target, content=body, headers={"Content-Type": "application/json", **headers}
        )
        try:
            with anyio.fail_after(deadline), _translate_errors():
                response = await self._client.send(request, stream=True)
                try:
                    _assert_guarded(response)
                    return response.status_code
                finally:
                    await response.aclose()
        except TimeoutError:
            raise FetchTimedOut(f"the receiver did not answer within {deadline:g} seconds") from None

    # ------------------------------------------------------------------ internals

    async def _stream_into(
        self,
        url: str,
        out: anyio.AsyncFile[bytes],
        max_bytes: int,
        kind: MediaKind,
        timeout: float | None,
    ) -> str:
        guard = _BodyGuard(kind, max_bytes)
        # The socket gives 64 KiB at a time; each file write is a hop to a thread, so they are gathered
        # into writes of `_WRITE_BYTES` (a 5 MB video: 5 hops, not 80).
        pending = bytearray()
        async with self._download(url, kind, max_bytes, timeout) as response:
            async for chunk in response.aiter_raw():
                pending += guard.feed(chunk)
                if len(pending) >= _WRITE_BYTES:
                    await out.write(pending)
                    pending.clear()
            pending += guard.finish()
            await out.write(pending)
        assert guard.content_type is not None
        return guard.content_type

    def _decode_data_uri(self, uri: str, max_bytes: int, kind: MediaKind) -> Fetched:
        if not kind.allow_data_uri:
            raise FetchRefused(f"data: URIs are not accepted for a {kind.name}; use an http or https URL")
        try:
            _declared, data = decode_data_uri(uri, max_bytes=max_bytes)
        except DataUriTooLarge as exc:
            raise ContentTooLarge(exc.reason) from exc
        except UrlRejected as exc:
            raise FetchRefused(exc.reason) from exc
        return Fetched(data, _sniff_or_reject(kind, data), "data:")

    @asynccontextmanager
    async def _download(
        self, url: str, kind: MediaKind, max_bytes: int, timeout: float | None
    ) -> AsyncIterator[httpx.Response]:
        """The final response after redirects, headers checked, under the total deadline."""
        deadline = self._timeout if timeout is None else timeout
        try:
            with anyio.fail_after(deadline), _translate_errors():
                response = await self._follow(url, kind)
                try:
                    _check_response(response, kind, max_bytes)
                    yield response
                finally:
                    await response.aclose()
        except TimeoutError:
            raise FetchTimedOut(f"the download did not finish within {deadline:g} seconds") from None

    async def _follow(self, url: str, kind: MediaKind) -> httpx.Response:
        """GET ``url``, following up to ``max_redirects`` redirects, each hop re-checked."""
        target = check_url(url, self._policy)
        redirects = 0
        while True:
            response = await self._send(target, kind, redirected=redirects > 0)
            next_request = response.next_request
            if next_request is None:
                return response
            await response.aclose()
            if redirects >= self._policy.max_redirects:
                raise FetchFailed(f"too many redirects (the limit is {self._policy.max_redirects})")
            redirects += 1
            target = self._check_hop(next_request.url)

    def _check_hop(self, url: httpx.URL) -> httpx.URL:
        try:
            return check_url(url, self._policy)
        except UrlRejected as exc:
            raise FetchRefused(f"the redirect to {_shorten(url)!r} was refused: {exc.reason}") from exc

    async def _send(self, target: httpx.URL, kind: MediaKind, *, redirected: bool) -> httpx.Response:
        request = self._client.build_request("GET", target, headers={"Accept": kind.accept})
        try:
            response = await self._client.send(request, stream=True)
        except UrlRejected as exc:  # raised by GuardedBackend at connect time
            if redirected:
                raise FetchRefused(f"the redirect to {_shorten(target)!r} was refused: {exc.reason}") from exc
            raise
        except httpx.InvalidURL as exc:
            # httpx builds the next hop's request inside `send`, and a Location it cannot make an
            # HTTP request of (`data:`, `javascript:`) raises there; the target itself was checked.
            raise FetchRefused(
                "the redirect to a URL that is not http(s) was refused (the Location has no host)"
            ) from exc
        try:
            _assert_guarded(response)
        except BaseException:
            await response.aclose()
            raise
        return response
