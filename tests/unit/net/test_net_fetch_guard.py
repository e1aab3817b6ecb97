"""The connect-time guard and how it is wired into httpx, without opening a single socket.

The guard's inner backend is a recorder that answers from canned bytes
(httpcore's public mock stream), so these tests can use "public" addresses
safely: nothing ever reaches the network.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable

import anyio
import httpcore
import httpx
import pytest

from vidgate.net import fetch as fetch_module
from vidgate.net.fetch import (
    IMAGE,
    VIDEO_MP4,
    ContentRejected,
    ContentTooLarge,
    FetchFailed,
    FetchRefused,
    GuardedBackend,
    SafeFetcher,
)
from vidgate.net.policy import FetchPolicy, IPAddress, UrlRejected

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
PUBLIC_IP = "93.184.215.14"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces: even if the wiring under test broke, nothing here may reach a socket or DNS."""

    async def refuse(*args: object, **kwargs: object) -> typing.NoReturn:
        raise AssertionError(f"a unit test tried to use the network: {args!r} {kwargs!r}")

    monkeypatch.setattr(anyio, "connect_tcp", refuse)
    monkeypatch.setattr(anyio, "getaddrinfo", refuse)


def http_response(body: bytes, content_type: str = "image/png", extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class RecordingStream(httpcore.AsyncMockStream):
    """Answers from canned bytes; remembers what was written and the TLS server name."""

    def __init__(self, reply: list[bytes]) -> None:
        super().__init__(list(reply))
        self.written = bytearray()
        self.tls_server_hostname: str | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.tls_server_hostname = server_hostname
        return self


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer under the guard. ``fail`` lists addresses that refuse."""

    def __init__(self, reply: list[bytes] | None = None, fail: Iterable[str] = ()) -> None:
        self.reply = reply or [http_response(PNG)]
        self.fail = set(fail)
        self.connects: list[tuple[str, int]] = []
        self.streams: list[RecordingStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.fail:
            raise httpcore.ConnectError("refused")
        stream = RecordingStream(self.reply)
        self.streams.append(stream)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix socket requested")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeResolver:
    def __init__(self, answers: dict[str, list[list[str]] | list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):  # a sequence of answers, one per lookup
            sequence = answer
            chosen = sequence[0] if len(sequence) == 1 else sequence.pop(0)
        else:
            chosen = typing.cast(list[str], answer)
        return [ipaddress.ip_address(a) for a in chosen]


def make_fetcher(
    resolver: FakeResolver, inner: RecordingBackend, policy: FetchPolicy | None = None
) -> SafeFetcher:
    return SafeFetcher(policy or FetchPolicy(), resolver=resolver, network_backend=inner, timeout=5)


# --------------------------------------------------------------------------- wiring


@pytest.mark.anyio
async def test_backend_is_installed_in_httpx_internals() -> None:
    """Pins the one private-attribute access: fails loudly if httpx/httpcore internals move."""
    async with SafeFetcher(FetchPolicy()) as fetcher:
        client = fetcher._client
        transport = client._transport
        assert type(transport) is httpx.AsyncHTTPTransport
        pool = transport._pool
        assert type(pool) is httpcore.AsyncConnectionPool
        assert isinstance(pool._network_backend, GuardedBackend)
        assert client.trust_env is False
        assert client.follow_redirects is False
        assert client._mounts == {}  # no proxy transports mounted from the environment


def test_install_refuses_a_proxy_transport() -> None:
    transport = httpx.AsyncHTTPTransport(proxy="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="internals changed"):
        fetch_module._install_network_backend(transport, GuardedBackend(FetchPolicy()))


def test_install_refuses_unknown_transport_shapes() -> None:
    transport = httpx.AsyncHTTPTransport()
    transport._pool = typing.cast(typing.Any, object())
    with pytest.raises(RuntimeError, match="internals changed"):
        fetch_module._install_network_backend(transport, GuardedBackend(FetchPolicy()))


def test_responses_from_unguarded_connections_are_refused() -> None:
    with pytest.raises(RuntimeError, match="SSRF guard bypassed"):
        fetch_module._assert_guarded(httpx.Response(200))


@pytest.mark.anyio
async def test_fetch_fails_closed_if_the_guard_is_bypassed() -> None:
    """If httpx ever stopped using the installed backend, responses must not get through."""
    inner = RecordingBackend()
    async with make_fetcher(FakeResolver({"img.example.com": [PUBLIC_IP]}), inner) as fetcher:
        fetcher._client._transport._pool._network_backend = inner  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="SSRF guard bypassed"):
            await fetcher.fetch_bytes("https://img.example.com/a.png", max_bytes=1000, kind=IMAGE)


# --------------------------------------------------------------------------- connect-time decisions


@pytest.mark.anyio
async def test_https_connects_to_checked_ip_with_hostname_for_sni_and_host() -> None:
    resolver = FakeResolver({"img.example.com": [PUBLIC_IP]})
    inner = RecordingBackend(reply=[http_response(PNG, extra="Set-Cookie: track=1; Path=/\r\n")])
    async with make_fetcher(resolver, inner) as fetcher:
        fetched = await fetcher.fetch_bytes("https://img.example.com/a.png", max_bytes=1000, kind=IMAGE)
    assert fetched.data == PNG and fetched.content_type == "image/png"
    assert fetched.final_url == "https://img.example.com/a.png"
    assert inner.connects == [(PUBLIC_IP, 443)]
    assert resolver.calls == ["img.example.com"]
    stream = inner.streams[0]
    assert stream.tls_server_hostname == "img.example.com"
    request = bytes(stream.written).lower()
    assert b"host: img.example.com\r\n" in request
    assert b"accept-encoding: identity\r\n" in request
    assert b"user-agent: vidgate/0.1\r\n" in request


@pytest.mark.anyio
async def test_no_cookie_is_carried_from_one_fetch_to_the_next() -> None:
    resolver = FakeResolver({"img.example.com": [PUBLIC_IP]})
    reply = [http_response(PNG, extra="Set-Cookie: session=abc; Path=/\r\nConnection: close\r\n")]
    inner = RecordingBackend(reply=reply)
    async with make_fetcher(resolver, inner) as fetcher:
        await fetcher.fetch_bytes("https://img.example.com/a.png", max_bytes=1000, kind=IMAGE)
        await fetcher.fetch_bytes("https://img.example.com/b.png", max_bytes=1000, kind=IMAGE)
    assert len(inner.streams) == 2
    assert b"cookie" not in bytes(inner.streams[1].written).lower()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer", [["10.0.0.5"], ["169.254.169.254"], [PUBLIC_IP, "127.0.0.1"], ["::ffff:127.0.0.1"], ["fd00::1"]]
)
async def test_name_resolving_to_forbidden_address_is_refused_before_connect(answer: list[str]) -> None:
    resolver = FakeResolver({"evil.example.com": answer})
    inner = RecordingBackend()
    async with make_fetcher(resolver, inner) as fetcher:
        with pytest.raises(FetchRefused, match="non-public") as info:
            await fetcher.fetch_bytes("https://evil.example.com/a.png", max_bytes=1000, kind=IMAGE)
    assert inner.connects == []
    assert resolver.calls == ["evil.example.com"]
    assert isinstance(info.value.__cause__, UrlRejected)


@pytest.mark.anyio
async def test_rebinding_resolver_is_asked_once_and_the_checked_address_is_used() -> None:
    resolver = FakeResolver({"rebind.example.com": [[PUBLIC_IP], ["127.0.0.1"]]})
    inner = RecordingBackend()
    async with make_fetcher(resolver, inner) as fetcher:
        await fetcher.fetch_bytes("http://rebind.example.com/a.png", max_bytes=1000, kind=IMAGE)
    assert resolver.calls == ["rebind.example.com"]
    assert inner.connects == [(PUBLIC_IP, 80)]


@pytest.mark.anyio
async def test_next_checked_address_is_tried_when_one_refuses() -> None:
    resolver = FakeResolver({"img.example.com": ["203.0.114.1", PUBLIC_IP]})
    inner = RecordingBackend(fail={"203.0.114.1"})
    async with make_fetcher(resolver, inner) as fetcher:
        await fetcher.fetch_bytes("http://img.example.com/a.png", max_bytes=1000, kind=IMAGE)
    assert inner.connects == [("203.0.114.1", 80), (PUBLIC_IP, 80)]


@pytest.mark.anyio
async def test_unresolvable_and_unreachable_hosts_fail_with_plain_messages() -> None:
    resolver = FakeResolver({"down.example.com": [PUBLIC_IP]})
    inner = RecordingBackend(fail={PUBLIC_IP})
    async with make_fetcher(resolver, inner) as fetcher:
        with pytest.raises(FetchFailed, match="could not be resolved") as unresolved:
            await fetcher.fetch_bytes("http://nx.example.com/", max_bytes=1000, kind=IMAGE)
        with pytest.raises(FetchFailed, match="could not connect") as info:
            await fetcher.fetch_bytes("http://down.example.com/", max_bytes=1000, kind=IMAGE)
        with pytest.raises(FetchFailed) as with_query:
            signed = "https://down.example.com/v.mp4?X-Amz-Signature=s1"
            await fetcher.fetch_bytes(signed, max_bytes=1000, kind=IMAGE)
    assert PUBLIC_IP not in info.value.reason
    # Issue 21: which host, on which port (never the path or the query string, where signatures travel).
    assert unresolved.value.reason == "the host name nx.example.com could not be resolved"
    assert info.value.reason == "could not connect to the server at down.example.com:80"
    assert with_query.value.reason == "could not connect to the server at down.example.com:443"


REFUSED = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://0.0.0.0/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://user:pw@img.example.com/",
    "ftp://img.example.com/",
    "file:///etc/passwd",
    "gopher://img.example.com/",
    "http://img.example.com:8080/",
]


@pytest.mark.anyio
@pytest.mark.parametrize("url", REFUSED)
async def test_default_policy_refuses_before_any_lookup_or_connect(url: str) -> None:
    resolver = FakeResolver({"img.example.com": [PUBLIC_IP]})
    inner = RecordingBackend()
    async with make_fetcher(resolver, inner) as fetcher:
        with pytest.raises(FetchRefused) as info:
            await fetcher.fetch_bytes(url, max_bytes=1000, kind=IMAGE)
    assert info.value.code == "fetch_refused"
    assert resolver.calls == []
    assert inner.connects == []


@pytest.mark.anyio
async def test_guard_refuses_unix_sockets_and_disallowed_ports() -> None:
    guard = GuardedBackend(FetchPolicy(), resolver=FakeResolver({}), inner=RecordingBackend())
    with pytest.raises(UrlRejected, match="unix sockets"):
        await guard.connect_unix_socket("/var/run/docker.sock")
    with pytest.raises(UrlRejected, match="port 25"):
        await guard.connect_tcp(PUBLIC_IP, 25)


@pytest.mark.anyio
async def test_guard_reads_odd_ipv4_spellings_as_addresses_not_names() -> None:
    resolver = FakeResolver({})
    inner = RecordingBackend()
    guard = GuardedBackend(FetchPolicy(), resolver=resolver, inner=inner)
    for host in ["0x7f.1", "2130706433", "127.1", "::ffff:7f00:1"]:
        with pytest.raises(UrlRejected):
            await guard.connect_tcp(host, 80)
    assert resolver.calls == [] and inner.connects == []


@pytest.mark.anyio
async def test_guard_times_out_a_hanging_resolver() -> None:
    async def hangs(host: str, port: int) -> list[IPAddress]:
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    guard = GuardedBackend(FetchPolicy(), resolver=hangs, inner=RecordingBackend())
    with anyio.fail_after(5), pytest.raises(httpcore.ConnectTimeout):
        await guard.connect_tcp("slow.example.com", 443, timeout=0.05)


# --------------------------------------------------------------------------- data: URIs through the fetcher


@pytest.mark.anyio
async def test_data_uris_go_through_the_same_content_checks() -> None:
    inner = RecordingBackend()
    async with make_fetcher(FakeResolver({}), inner) as fetcher:
        ok = await fetcher.fetch_bytes(
            "data:image/jpeg;base64," + base64.b64encode(PNG).decode(), max_bytes=1000, kind=IMAGE
        )
        assert (ok.data, ok.content_type, ok.final_url) == (PNG, "image/png", "data:")  # the bytes decide
        html = base64.b64encode(b"<html><body>hi</body></html>").decode()
        with pytest.raises(ContentRejected, match="not a supported image"):
            await fetcher.fetch_bytes(f"data:image/png;base64,{html}", max_bytes=1000, kind=IMAGE)
        with pytest.raises(ContentTooLarge):
            await fetcher.fetch_bytes("data:image/png;base64," + "A" * 4000, max_bytes=1000, kind=IMAGE)
        with pytest.raises(FetchRefused, match="only image types"):
            await fetcher.fetch_bytes("data:text/html;base64,AAAA", max_bytes=1000, kind=IMAGE)
        with pytest.raises(FetchRefused, match="not accepted for a video"):
            await fetcher.fetch_bytes("data:image/png;base64,AAAA", max_bytes=1000, kind=VIDEO_MP4)
    assert inner.connects == []
