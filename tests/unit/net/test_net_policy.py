"""URL and address policy: static checks, every IP spelling, and the request-time DNS check.

Nothing here opens a socket: static checks are pure and the DNS tests use fake resolvers.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidgate.net.policy import (
    FetchPolicy,
    IPAddress,
    UrlRejected,
    check_url,
    check_url_resolves_public,
    is_forbidden_ip,
    parse_ip_literal,
    system_resolver,
)

DEFAULT = FetchPolicy()
DEV = FetchPolicy(allow_private=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- static refusals

REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://images.localhost/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://0.0.0.0/",
    "http://0/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2001::1]/",
    "http://[::127.0.0.1]/",
    "http://[ff02::1]/",
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "http://example.com@127.0.0.1/",
    "ftp://example.com/a.png",
    "file:///etc/passwd",
    "gopher://example.com:70/_",
    "data:image/png;base64,AAAA",
    "javascript:alert(1)",
    "http://example.com:8080/",
    "https://example.com:22/",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http:///no-host",
    "http://intranet/",
    "http://1.2.3.4.5/",
    "http://%31%32%37.0.0.1/",
    "http://exa mple.com/",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_default_policy_refuses(url: str) -> None:
    with pytest.raises(UrlRejected) as info:
        check_url(url, DEFAULT)
    assert info.value.code == "invalid_url"
    assert info.value.reason  # a sentence, not an empty message
    assert str(info.value) == info.value.reason


ALLOWED_URLS = [
    "https://example.com/a.png",
    "http://example.com/a.png",
    "https://example.com:443/a.png",
    "https://cdn.example.com./x",
    "https://xn--r8jz45g.jp/x",
    "https://例え.jp/x",
    "http://8.8.8.8/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://134744072/",  # 8.8.8.8 in decimal: odd, but public
    "https://my_bucket.example.com/x",
]


@pytest.mark.parametrize("url", ALLOWED_URLS)
def test_default_policy_allows_public(url: str) -> None:
    assert check_url(url, DEFAULT).scheme in {"http", "https"}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://169.254.169.254/", "link-local"),
        ("http://100.100.100.200/", "carrier-grade NAT"),
        ("http://10.1.2.3/", "private"),
        ("http://[fc00::1]/", "unique local"),
        ("http://[64:ff9b::7f00:1]/", "wrapped in IPv6"),
        ("ftp://example.com/", "scheme 'ftp'"),
        ("http://a:b@example.com/", "user name or password"),
        ("http://example.com:8080/", "port 8080"),
    ],
)
def test_reasons_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(UrlRejected, match=fragment):
        check_url(url, DEFAULT)


def test_allow_private_lifts_address_and_port_checks_only() -> None:
    for url in ["http://127.0.0.1:5555/x", "http://localhost:1/x", "http://[::1]:8080/", "http://intranet/"]:
        check_url(url, DEV)
    for url in ["http://u:p@127.0.0.1:5555/", "ftp://127.0.0.1/", "file:///etc/passwd", "http://1.2.3.4.5/"]:
        with pytest.raises(UrlRejected):
            check_url(url, DEV)


def test_allowed_ports_are_configurable() -> None:
    policy = FetchPolicy(allowed_ports=frozenset({443, 8443}))
    check_url("https://example.com:8443/", policy)
    with pytest.raises(UrlRejected, match="port 80"):
        check_url("http://example.com/", policy)


def test_trusted_networks_allow_exactly_those_addresses() -> None:
    policy = FetchPolicy(trusted_networks=(ipaddress.ip_network("127.0.0.2/32"),))
    check_url("http://127.0.0.2/", policy)
    with pytest.raises(UrlRejected):
        check_url("http://127.0.0.1/", policy)


def test_policy_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        FetchPolicy(max_redirects=-1)
    with pytest.raises(ValueError):
        FetchPolicy(allowed_ports=frozenset({0}))


# --------------------------------------------------------------------------- addresses

FORBIDDEN_IPS = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.0.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.100.100.200",
    "100.127.255.255",
    "192.0.0.9",
    "192.0.2.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "::8.8.8.8",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::8.8.8.8",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2001::1",
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "100::1",
    "3fff::1",
]

PUBLIC_IPS = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "::ffff:8.8.8.8", "64:ff9b::808:808", "2606:4700::1111"]


@pytest.mark.parametrize("text", FORBIDDEN_IPS)
def test_forbidden_ips(text: str) -> None:
    assert is_forbidden_ip(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC_IPS)
def test_public_ips(text: str) -> None:
    assert not is_forbidden_ip(ipaddress.ip_address(text))


def test_cgnat_is_neither_private_nor_global_which_is_why_we_ask_is_global() -> None:
    ip = ipaddress.IPv4Address("100.100.100.200")
    assert not ip.is_private and not ip.is_global
    assert is_forbidden_ip(ip)


def test_scoped_ipv6_is_forbidden() -> None:
    assert is_forbidden_ip(ipaddress.IPv6Address("fe80::1%eth0"))


_V4_FORBIDDEN_NETS = [
    ipaddress.IPv4Network(n)
    for n in (
        *("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"),
        *("172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"),
    )
]


@st.composite
def forbidden_ipv4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(_V4_FORBIDDEN_NETS))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net[offset]


@given(forbidden_ipv4())
def test_every_address_in_forbidden_ipv4_networks_is_refused(ip: ipaddress.IPv4Address) -> None:
    assert is_forbidden_ip(ip)


@given(forbidden_ipv4(), st.sampled_from(["mapped", "nat64", "6to4"]))
def test_ipv6_wrappings_of_forbidden_ipv4_are_refused(ip: ipaddress.IPv4Address, how: str) -> None:
    v4 = int(ip)
    wrapped = {
        "mapped": ipaddress.IPv6Address((0xFFFF << 32) | v4),
        "nat64": ipaddress.IPv6Address((0x64FF9B << 96) | v4),
        "6to4": ipaddress.IPv6Address((0x2002 << 112) | (v4 << 80)),
    }[how]
    assert is_forbidden_ip(wrapped)
    with pytest.raises(UrlRejected):
        check_url(f"http://[{wrapped}]/", DEFAULT)


# --------------------------------------------------------------------------- IPv4 spellings


def _spell(value: int, count: int, bases: Sequence[int], zeros: Sequence[int]) -> str:
    """Spell a 32-bit address in ``count`` parts (inet_aton style), each in its own base."""
    widths = {1: [4], 2: [1, 3], 3: [1, 1, 2], 4: [1, 1, 1, 1]}[count]
    parts: list[int] = []
    shift = 32
    for width in widths:
        shift -= 8 * width
        parts.append((value >> shift) & ((1 << (8 * width)) - 1))
    spelled = []
    for part, base, zero in zip(parts, bases, zeros, strict=False):
        if base == 16:
            spelled.append("0x" + "0" * zero + format(part, "x"))
        elif base == 8:
            spelled.append("0" + "0" * zero + format(part, "o"))
        else:
            spelled.append(str(part))
    return ".".join(spelled)


spellings = st.builds(
    lambda value, count, bases, zeros: (value, _spell(value, count, bases, zeros)),
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
    st.lists(st.integers(0, 3), min_size=4, max_size=4),
)


@given(spellings)
def test_ipv4_spellings_parse_like_inet_aton(case: tuple[int, str]) -> None:
    value, text = case
    expected = ipaddress.IPv4Address(socket.inet_aton(text))  # libc is the oracle
    assert int(expected) == value
    assert parse_ip_literal(text) == expected


@given(
    st.integers(0, 2**24 - 1).map(lambda low: (127 << 24) | low),
    st.integers(1, 4),
    st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
    st.lists(st.integers(0, 2), min_size=4, max_size=4),
    st.booleans(),
)
def test_every_spelling_of_loopback_is_refused_before_dns(
    value: int, count: int, bases: list[int], zeros: list[int], upper: bool
) -> None:
    host = _spell(value, count, bases, zeros)
    host = host.upper() if upper else host
    with pytest.raises(UrlRejected):
        check_url(f"http://{host}/", DEFAULT)


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.1.1.1", "1.256.1", "0x1.0x100.1.1", "09", "1.2.3.08", "4294967296", "0x1g.1"]
)
def test_numeric_looking_invalid_hosts_are_refused_not_resolved(host: str) -> None:
    # WHATWG: a host whose last label is a number must be a valid IPv4 address.
    # Handing it to DNS instead would let libc or a resolver read it its own way.
    with pytest.raises(UrlRejected):
        check_url(f"http://{host}/", DEV)


@pytest.mark.parametrize("host", ["example.com", "0x7f.example", "1.2.3.com", "a1", "x0x1"])
def test_names_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


# --------------------------------------------------------------------------- request-time DNS check


class FakeResolver:
    """Maps names to addresses; records every lookup. Never touches the network."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.answers[host]]


@pytest.mark.anyio
async def test_resolving_to_public_passes() -> None:
    resolver = FakeResolver({"img.example.com": ["93.184.215.14", "2606:2800:21f::1"]})
    url = await check_url_resolves_public("https://img.example.com/a.png", DEFAULT, resolver)
    assert url.host == "img.example.com"
    assert resolver.calls == ["img.example.com"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer", [["10.1.2.3"], ["169.254.169.254"], ["93.184.215.14", "127.0.0.1"], ["::1"]]
)
async def test_resolving_to_any_non_public_address_is_refused(answer: list[str]) -> None:
    resolver = FakeResolver({"evil.example.com": answer})
    with pytest.raises(UrlRejected, match="non-public") as info:
        await check_url_resolves_public("https://evil.example.com/", DEFAULT, resolver)
    for address in answer:  # never reveal what an internal name resolves to
        assert address not in info.value.reason


@pytest.mark.anyio
async def test_unresolvable_host_passes_unless_resolution_is_required() -> None:
    # A dead name is not a policy violation (DNS hiccup, sandbox): the fetch fails later.
    url = await check_url_resolves_public("https://nx.example.com/", DEFAULT, FakeResolver({}))
    assert url.host == "nx.example.com"
    with pytest.raises(UrlRejected, match="could not be resolved"):
        await check_url_resolves_public(
            "https://nx.example.com/", DEFAULT, FakeResolver({}), require_resolution=True
        )


@pytest.mark.anyio
async def test_slow_resolver_is_bounded() -> None:
    async def hangs(host: str, port: int) -> list[IPAddress]:
        await anyio.Event().wait()  # never set: only the timeout ends this
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        await check_url_resolves_public("https://slow.example.com/", DEFAULT, hangs, timeout=0.05)
        with pytest.raises(UrlRejected, match="did not resolve"):
            await check_url_resolves_public(
                "https://slow.example.com/", DEFAULT, hangs, timeout=0.05, require_resolution=True
            )


@pytest.mark.anyio
async def test_literals_and_static_refusals_never_reach_the_resolver() -> None:
    resolver = FakeResolver({})
    await check_url_resolves_public("http://8.8.8.8/", DEFAULT, resolver)
    for url in ["http://0x7f.1/", "http://localhost/", "ftp://example.com/", "http://example.com:25/"]:
        with pytest.raises(UrlRejected):
            await check_url_resolves_public(url, DEFAULT, resolver)
    assert resolver.calls == []


@pytest.mark.anyio
async def test_allow_private_skips_dns() -> None:
    resolver = FakeResolver({})
    await check_url_resolves_public("http://anything.internal:8080/", DEV, resolver)
    assert resolver.calls == []


@pytest.mark.anyio
async def test_system_resolver_returns_addresses() -> None:
    # A numeric host: getaddrinfo answers without any DNS traffic.
    assert await system_resolver("127.0.0.1", 80) == [ipaddress.IPv4Address("127.0.0.1")]
