"""SafeFetcher against real HTTP servers on loopback.

Roles (as in the SSRF research, reference/infra.md section 4):
* 127.0.0.1 plays the INTERNAL host serving secrets. Every test that must not
  reach it asserts that its server saw no request at all.
* 127.0.0.2 plays a PUBLIC host: a test resolver maps names to it and the test
  policy lists 127.0.0.2/32 in ``trusted_networks``, so it passes the address
  check in these tests only.
An autouse jail makes any connection outside 127.0.0.0/8 and ::1 fail the test.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import sys
import threading
import time
import typing
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from vidgate.net.fetch import (
    IMAGE,
    VIDEO_MP4,
    ContentRejected,
    ContentTooLarge,
    FetchFailed,
    FetchRefused,
    FetchTimedOut,
    SafeFetcher,
)
from vidgate.net.policy import FetchPolicy, IPAddress, check_url_resolves_public

pytestmark = pytest.mark.anyio

INTERNAL = "127.0.0.1"
PUBLIC = "127.0.0.2"
DEV = FetchPolicy(allow_private=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def loopback_jail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever happens, these tests connect to loopback only and never ask the system resolver."""
    real_connect = anyio.connect_tcp

    async def jailed_connect(remote_host: str, remote_port: int, **kwargs: typing.Any) -> typing.Any:
        if not ipaddress.ip_address(remote_host).is_loopback:
            raise AssertionError(f"test tried to connect outside loopback: {remote_host}")
        return await real_connect(remote_host, remote_port, **kwargs)

    async def no_dns(*args: object, **kwargs: object) -> typing.NoReturn:
        raise AssertionError(f"test used the system resolver: {args!r}")

    monkeypatch.setattr(anyio, "connect_tcp", jailed_connect)
    monkeypatch.setattr(anyio, "getaddrinfo", no_dns)


# --------------------------------------------------------------------------- test servers

Route = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    errors: list[BaseException]

    def handle_error(self, request: typing.Any, client_address: typing.Any) -> None:
        exc = sys.exc_info()[1]
        # A client that hangs up mid-body (caps, deadlines) is expected here.
        if exc is not None and not isinstance(exc, ConnectionError):
            self.errors.append(exc)


class LoopbackServer:
    """A small threaded HTTP/1.1 server on one loopback address; records every request."""

    def __init__(self, host: str, port: int = 0, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[str] = []
        self.host_headers: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _handler_for(self))
        self._httpd.errors = []
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def record(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
            self.host_headers.append(handler.headers.get("Host", ""))

    def close(self) -> None:
        self.stop.set()  # ends slow routes
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        assert not self._httpd.errors, self._httpd.errors


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            server.record(self)
            route = server.routes.get(urlsplit(self.path).path)
            if route is None:
                send(self, 404, "text/plain", b"not found")
            else:
                route(self, server.stop)

        def do_CONNECT(self) -> None:
            server.record(self)
            send(self, 502, "text/plain", b"no tunnels here")

        def log_message(self, format: str, *args: typing.Any) -> None:
            pass

    return Handler


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    content_type: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for name, value in headers:
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def static(body: bytes, content_type: str = "image/png", *headers: tuple[str, str]) -> Route:
    return lambda h, stop: send(h, 200, content_type, body, headers)


def redirect(location: str, status: int = 302) -> Route:
    return lambda h, stop: send(h, status, "text/plain", b"", (("Location", location),))


def chunked(body: bytes, content_type: str, piece: int = 64 * 1024) -> Route:
    """A Transfer-Encoding: chunked response: no Content-Length to trust."""

    def route(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for start in range(0, len(body), piece):
            part = body[start : start + piece]
            h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    return route


def trickle(head: bytes, total: int, interval: float) -> Route:
    """Sends ``head`` then one byte per ``interval``: each read is quick, the whole is slow.

    Bounded: stops at ``total`` bytes, when the client hangs up, or when the server closes.
    """

    def route(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(total))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(head)
        for _ in range(total - len(head)):
            if stop.wait(interval):
                return
            h.wfile.write(b"\x00")

    return route


@pytest.fixture
def make_server() -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def factory(
        host: str = INTERNAL, port: int = 0, routes: dict[str, Route] | None = None
    ) -> LoopbackServer:
        server = LoopbackServer(host, port, routes)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


def twin_servers(
    make_server: Callable[..., LoopbackServer],
    public_routes: dict[str, Route],
    internal_routes: dict[str, Route],
) -> tuple[LoopbackServer, LoopbackServer]:
    """A public stand-in and an internal server on the SAME port, so only the address differs."""
    for _ in range(20):
        public = make_server(PUBLIC, 0, public_routes)
        try:
            return public, make_server(INTERNAL, public.port, internal_routes)
        except OSError:  # that port is taken on 127.0.0.1: pick another
            continue
    raise RuntimeError("no port free on both loopback addresses")


# --------------------------------------------------------------------------- content


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))


PNG = tiny_png() + b"\x00\x00\x00\x00IEND\xaeB`\x82"
SECRET = b"SECRET: internal admin token"
HTML = b"<!DOCTYPE html><html><body>not an image</body></html>"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free"


class Resolver:
    """A test resolver: names -> loopback addresses, optionally changing per lookup (rebinding)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        sequence = self.answers[host]
        chosen = sequence[0] if len(sequence) == 1 else sequence.pop(0)
        return [ipaddress.ip_address(a) for a in chosen]


def public_policy(*ports: int) -> FetchPolicy:
    return FetchPolicy(
        allowed_ports=frozenset({80, 443, *ports}),
        trusted_networks=(ipaddress.ip_network(f"{PUBLIC}/32"),),
    )


# --------------------------------------------------------------------------- public stand-in and redirects


async def test_public_stand_in_is_fetched_by_name(make_server: Callable[..., LoopbackServer]) -> None:
    public = make_server(PUBLIC, routes={"/img.png": static(PNG)})
    resolver = Resolver({"public.test": [[PUBLIC]]})
    async with SafeFetcher(public_policy(public.port), resolver=resolver, timeout=5) as fetcher:
        fetched = await fetcher.fetch_bytes(
            public.url("/img.png", "public.test"), max_bytes=10_000, kind=IMAGE
        )
    assert (fetched.data, fetched.content_type) == (PNG, "image/png")
    assert public.host_headers == [f"public.test:{public.port}"]  # Host stays the name
    assert resolver.calls == ["public.test"]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://0x7f.1:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://localhost:{port}/secret",
        "http://internal.test:{port}/secret",  # a NAME for 127.0.0.1: refused at connect time
        "http://127.0.0.1:{port}/secret?X-Amz-Signature=SECRET",  # the message drops the query
        "file:///etc/passwd",
        # No host: httpx cannot even build the redirect's request (InvalidURL); refused all the same.
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
    ],
)
async def test_redirect_to_internal_is_refused_on_the_hop(
    make_server: Callable[..., LoopbackServer], target: str
) -> None:
    internal = make_server(INTERNAL, routes={"/secret": static(SECRET, "image/png")})
    location = target.format(port=internal.port)
    public = make_server(PUBLIC, routes={"/redir": redirect(location)})
    resolver = Resolver({"public.test": [[PUBLIC]], "internal.test": [[INTERNAL]]})
    policy = public_policy(public.port, internal.port)  # the PORT is fine: the ADDRESS must decide
    async with SafeFetcher(policy, resolver=resolver, timeout=5) as fetcher:
        with pytest.raises(FetchRefused, match=r"redirect to .* was refused") as info:
            await fetcher.fetch_bytes(public.url("/redir", "public.test"), max_bytes=10_000, kind=IMAGE)
    assert public.requests == ["/redir"]
    assert internal.requests == []  # the secret was never even requested
    assert "SECRET" not in info.value.reason


async def test_naive_check_then_fetch_cannot_be_rebound(make_server: Callable[..., LoopbackServer]) -> None:
    """Request-time check sees the public address; the fetch's own lookup gets 127.0.0.1 and is refused."""
    public, internal = twin_servers(make_server, {"/img.png": static(PNG)}, {"/img.png": static(SECRET)})
    resolver = Resolver({"rebind.test": [[PUBLIC], [INTERNAL]]})
    policy = public_policy(public.port)
    url = public.url("/img.png", "rebind.test")
    await check_url_resolves_public(url, policy, resolver)  # lookup 1: public, passes
    async with SafeFetcher(policy, resolver=resolver, timeout=5) as fetcher:
        with pytest.raises(FetchRefused, match="non-public"):
            await fetcher.fetch_bytes(url, max_bytes=10_000, kind=IMAGE)  # lookup 2: internal
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert internal.requests == []
    assert public.requests == []


async def test_fetch_resolves_once_and_connects_to_the_checked_address(
    make_server: Callable[..., LoopbackServer],
) -> None:
    public, internal = twin_servers(make_server, {"/img.png": static(PNG)}, {"/img.png": static(SECRET)})
    resolver = Resolver({"rebind.test": [[PUBLIC], [INTERNAL]]})
    async with SafeFetcher(public_policy(public.port), resolver=resolver, timeout=5) as fetcher:
        fetched = await fetcher.fetch_bytes(
            public.url("/img.png", "rebind.test"), max_bytes=10_000, kind=IMAGE
        )
    assert fetched.data == PNG
    assert resolver.calls == ["rebind.test"]  # one lookup per connection
    assert public.requests == ["/img.png"]
    assert internal.requests == []


async def test_mixed_answer_is_refused(make_server: Callable[..., LoopbackServer]) -> None:
    public, internal = twin_servers(make_server, {"/img.png": static(PNG)}, {"/img.png": static(SECRET)})
    resolver = Resolver({"mixed.test": [[PUBLIC, INTERNAL]]})
    async with SafeFetcher(public_policy(public.port), resolver=resolver, timeout=5) as fetcher:
        with pytest.raises(FetchRefused, match="non-public"):
            await fetcher.fetch_bytes(public.url("/img.png", "mixed.test"), max_bytes=10_000, kind=IMAGE)
    assert public.requests == [] and internal.requests == []


# --------------------------------------------------------------------------- allow_private: caps and checks


async def test_image_from_loopback_with_allow_private(make_server: Callable[..., LoopbackServer]) -> None:
    server = make_server(routes={"/img.png": static(PNG, "image/png; charset=binary")})
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        fetched = await fetcher.fetch_bytes(server.url("/img.png"), max_bytes=10_000, kind=IMAGE)
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == server.url("/img.png")


async def test_allow_private_keeps_scheme_and_userinfo_checks(
    make_server: Callable[..., LoopbackServer],
) -> None:
    server = make_server(routes={"/img.png": static(PNG)})
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        with pytest.raises(FetchRefused, match="user name or password"):
            await fetcher.fetch_bytes(server.url("/img.png", f"u:p@{INTERNAL}"), max_bytes=10_000, kind=IMAGE)
    assert server.requests == []


async def test_three_redirects_are_followed_and_a_fourth_is_refused(
    make_server: Callable[..., LoopbackServer],
) -> None:
    server = make_server()
    server.routes.update(
        {
            "/a3": redirect("/a2", 301),
            "/a2": redirect(server.url("/a1"), 307),
            "/a1": redirect("a0.png", 308),
            "/a0.png": static(PNG),
            "/b4": redirect("/b3"),
            "/b3": redirect("/b2"),
            "/b2": redirect("/b1"),
            "/b1": redirect("/b0.png"),
            "/b0.png": static(PNG),
        }
    )
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        fetched = await fetcher.fetch_bytes(server.url("/a3"), max_bytes=10_000, kind=IMAGE)
        assert fetched.final_url == server.url("/a0.png")
        with pytest.raises(FetchFailed, match="too many redirects"):
            await fetcher.fetch_bytes(server.url("/b4"), max_bytes=10_000, kind=IMAGE)
    assert server.requests == ["/a3", "/a2", "/a1", "/a0.png", "/b4", "/b3", "/b2", "/b1"]


async def test_cap_by_content_length(make_server: Callable[..., LoopbackServer]) -> None:
    server = make_server(routes={"/big.png": static(PNG + b"\x00" * 5000)})
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        with pytest.raises(ContentTooLarge, match="the limit is 1000 bytes") as info:
            await fetcher.fetch_bytes(server.url("/big.png"), max_bytes=1000, kind=IMAGE)
    assert str(len(PNG) + 5000) in info.value.reason  # decided from the header


async def test_cap_by_streamed_bytes(make_server: Callable[..., LoopbackServer]) -> None:
    server = make_server(routes={"/big.png": chunked(PNG + b"\x00" * 50_000, "image/png", piece=1000)})
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        with pytest.raises(ContentTooLarge, match="larger than the limit of 10000 bytes"):
            await fetcher.fetch_bytes(server.url("/big.png"), max_bytes=10_000, kind=IMAGE)
        ok = await fetcher.fetch_bytes(server.url("/big.png"), max_bytes=len(PNG) + 50_000, kind=IMAGE)
    assert len(ok.data) == len(PNG) + 50_000


async def test_total_deadline_stops_a_trickling_server(make_server: Callable[..., LoopbackServer]) -> None:
    server = make_server(routes={"/slow.png": trickle(PNG[:16], total=500, interval=0.02)})
    started = time.monotonic()
    with anyio.fail_after(10):
        async with SafeFetcher(DEV, timeout=0.5) as fetcher:
            with pytest.raises(FetchTimedOut, match=r"within 0\.5 seconds"):
                await fetcher.fetch_bytes(server.url("/slow.png"), max_bytes=10_000, kind=IMAGE)
    assert time.monotonic() - started < 3  # each read was fast; only the total deadline could stop it


@pytest.mark.parametrize(
    ("route", "error", "fragment"),
    [
        (static(HTML, "text/html"), ContentRejected, "Content-Type 'text/html'"),
        (static(HTML, "image/png"), ContentRejected, "not a supported image"),
        (static(b"", "image/png"), ContentRejected, "empty body"),
        (
            static(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
            ContentRejected,
            "not a supported",
        ),
        (static(PNG, "image/png", ("Content-Encoding", "gzip")), ContentRejected, "Content-Encoding: gzip"),
        (lambda h, stop: send(h, 404, "image/png", PNG), FetchFailed, "HTTP 404"),
    ],
)
async def test_unacceptable_responses(
    make_server: Callable[..., LoopbackServer], route: Route, error: type[FetchFailed], fragment: str
) -> None:
    server = make_server(routes={"/x": route})
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        with pytest.raises(error, match=fragment):
            await fetcher.fetch_bytes(server.url("/x"), max_bytes=10_000, kind=IMAGE)


async def test_fetch_to_file_streams_and_cleans_up(
    make_server: Callable[..., LoopbackServer], tmp_path: Path
) -> None:
    body = MP4_HEAD + os.urandom(3 * 1024 * 1024)
    server = make_server(routes={"/v.mp4": chunked(body, "application/octet-stream")})
    dest = tmp_path / "out.mp4"
    async with SafeFetcher(DEV, timeout=5) as fetcher:
        content_type = await fetcher.fetch_to_file(
            server.url("/v.mp4"), dest, max_bytes=len(body), kind=VIDEO_MP4
        )
        assert content_type == "video/mp4"
        assert dest.read_bytes() == body
        capped = tmp_path / "capped.mp4"
        with pytest.raises(ContentTooLarge):
            await fetcher.fetch_to_file(server.url("/v.mp4"), capped, max_bytes=1024 * 1024, kind=VIDEO_MP4)
        with pytest.raises(ContentRejected):  # an image is not a video
            await fetcher.fetch_to_file(server.url("/v.mp4"), capped, max_bytes=len(body), kind=IMAGE)
    assert not capped.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial files left


async def test_environment_proxies_are_ignored(
    make_server: Callable[..., LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(routes={"/img.png": static(PNG)})
    proxy = make_server()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url("/"))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    # Control: a default httpx client obeys these variables, so this test can see a leak.
    async with httpx.AsyncClient() as plain:
        await plain.get(server.url("/img.png"))
    assert proxy.requests == [server.url("/img.png")]
    proxy.requests.clear()
    server.requests.clear()

    async with SafeFetcher(DEV, timeout=5) as fetcher:
        fetched = await fetcher.fetch_bytes(server.url("/img.png"), max_bytes=10_000, kind=IMAGE)
    assert fetched.data == PNG
    assert server.requests == ["/img.png"]
    assert proxy.requests == []
