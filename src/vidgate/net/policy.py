"""Which URLs and addresses vidgate may fetch on a user's behalf (SSRF policy).

Two layers, both built on the same rules:

* :func:`check_url` is static (no I/O): scheme, userinfo, port, host syntax, and
  IP literals in every spelling ``inet_aton`` and browsers accept (``2130706433``,
  ``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``, ...).
  :func:`check_url_resolves_public` adds one DNS lookup so that the API can
  answer 400 at request time.
* The check that actually *enforces* the policy runs at connect time, inside
  :mod:`vidgate.net.fetch`: the host is resolved once and the socket is opened
  to the checked numeric address, so DNS rebinding between "check" and
  "connect" cannot win. Both layers share :func:`resolve_allowed`.

Addresses are judged with ``not ip.is_global`` plus explicit tables, never
``is_private`` alone: ``100.100.100.200`` (CGNAT, a cloud metadata address) is
neither private nor global, multicast is "global" to :mod:`ipaddress`, and
``64:ff9b::7f00:1`` (NAT64 of 127.0.0.1) is "global" too until it is unwrapped.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import anyio
import httpx

__all__ = [
    "DEFAULT_ALLOWED_PORTS",
    "MAX_URL_LENGTH",
    "FetchPolicy",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "UrlRejected",
    "check_url",
    "check_url_resolves_public",
    "effective_port",
    "forbidden_reason",
    "is_forbidden_ip",
    "parse_ip_literal",
    "resolve_allowed",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""``async (host, port) -> addresses``. Raises :class:`OSError` when the name does not resolve."""

DEFAULT_ALLOWED_PORTS: frozenset[int] = frozenset({80, 443})
MAX_URL_LENGTH = 8192
_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRejected(ValueError):
    """A URL (or the address it leads to) is not allowed by the fetch policy.

    ``reason`` is a sentence a person can act on; it never contains the address a
    *name* resolved to (that would let callers map internal DNS).
    """

    code = "invalid_url"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may connect to.

    ``allow_private`` (setting ``VIDGATE_FETCH_ALLOW_PRIVATE``; development and tests
    only, UNSAFE in production) turns off the address checks and the port
    restriction, never the scheme, userinfo or syntax checks.

    ``trusted_networks`` are non-global networks an operator explicitly allows
    anyway (e.g. an internal image store); tests use it to let ``127.0.0.2`` play a
    "public" host. The port restriction still applies to them.
    """

    allow_private: bool = False
    allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS
    max_redirects: int = 3
    trusted_networks: tuple[IPNetwork, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        if any(not 0 < port < 65536 for port in self.allowed_ports):
            raise ValueError("allowed_ports must be TCP port numbers (1-65535)")

    def address_problem(self, ip: IPAddress) -> str | None:
        """Why this policy refuses ``ip`` (a noun phrase), or None if it may be used."""
        if self.allow_private:
            return None
        plain = _without_scope(ip)
        if any(plain in net for net in self.trusted_networks):
            return None
        return forbidden_reason(ip)

    def port_allowed(self, port: int) -> bool:
        """Whether connecting to ``port`` is allowed."""
        return self.allow_private or port in self.allowed_ports


# --------------------------------------------------------------------------- addresses

_V4_TABLE: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), what)
    for net, what in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private network address"),
        ("172.16.0.0/12", "a private network address"),
        ("192.168.0.0/16", "a private network address"),
        ("169.254.0.0/16", "a link-local address (this range holds cloud metadata services)"),
        ("100.64.0.0/10", "a carrier-grade NAT address (this range holds cloud metadata services)"),
        # Python's is_global calls parts of 192.0.0.0/24 global (PCP, TURN anycast);
        # no image is ever served from there, so refuse the whole block.
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.88.99.0/24", "a deprecated 6to4 relay address"),
        ("198.18.0.0/15", "a benchmarking network address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_V6_TABLE: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), what)
    for net, what in (
        ("::/128", "the unspecified IPv6 address"),
        ("::1/128", "the IPv6 loopback address"),
        # IPv4-compatible addresses are deprecated (RFC 4291) and some stacks still
        # route them as IPv4: nothing legitimate lives there, refuse the block.
        ("::/96", "a deprecated IPv4-compatible IPv6 address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001::/32", "a Teredo tunnel address"),
        # Documentation ranges; 3fff::/20 (RFC 9637) is newer than Python 3.11's tables.
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a unique local (private) IPv6 address"),
        ("fe80::/10", "a link-local IPv6 address"),
        ("fec0::/10", "a site-local IPv6 address"),
        ("ff00::/8", "a multicast address"),
    )
)

_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _without_scope(ip: IPAddress) -> IPAddress:
    """The same address without an IPv6 zone (``%eth0``), so network membership tests work."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(int(ip))
    return ip


def _ipv4_problem(ip: ipaddress.IPv4Address) -> str | None:
    for net, what in _V4_TABLE:
        if ip in net:
            return what
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    # Catch-all for the rest of the IANA special-purpose registry (documentation
    # ranges, ...). `is_private` would miss CGNAT; `is_global` is the right question.
    if not ip.is_global:
        return "a special-purpose (non-public) address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _ipv6_problem(ip: ipaddress.IPv6Address) -> str | None:
    if ip.scope_id:
        return "a scoped (zone-bound) IPv6 address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # `is_global` says True for 64:ff9b::7f00:1: judge the IPv4 it reaches.
        inner = _ipv4_problem(embedded)
        return None if inner is None else f"{inner} wrapped in IPv6"
    for net, what in _V6_TABLE:
        if ip in net:
            return what
    # Only 2000::/3 is allocated for global unicast; everything else is special.
    if ip not in _V6_GLOBAL_UNICAST or not ip.is_global:
        return "a special-purpose (non-public) IPv6 address"
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched from under the default policy (a noun phrase), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_problem(ip)
    return _ipv6_problem(ip)


def is_forbidden_ip(ip: IPAddress) -> bool:
    """True for every address that is not plain public unicast.

    Loopback, private, link-local (incl. 169.254.169.254), CGNAT, unspecified,
    multicast, broadcast, reserved and documentation ranges; IPv6 loopback, ULA,
    link-local, site-local, Teredo, IPv4-compatible; and IPv4-mapped, NAT64 and
    6to4 addresses whose embedded IPv4 address is any of those.
    """
    return forbidden_reason(ip) is not None


# --------------------------------------------------------------------------- literals

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_HEX_PART = re.compile(r"0x[0-9a-f]*")


def _ipv4_part(part: str) -> int | None:
    """One dotted part the way inet_aton / the WHATWG URL standard read it, or None."""
    if not part:
        return None
    if part.startswith("0x"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits:
        return 0  # "0x" alone is 0 for browsers
    allowed = "0123456789abcdef"[:base]
    if any(ch not in allowed for ch in digits):
        return None
    return int(digits, base)


def _ends_in_number(labels: list[str]) -> bool:
    """WHATWG "ends in a number": such a host must be an IPv4 literal or nothing."""
    last = labels[-1]
    return bool(last) and ((last.isdigit() and last.isascii()) or _HEX_PART.fullmatch(last) is not None)


def _parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot is allowed, as in DNS
    if not _ends_in_number(labels):
        return None
    parts = [_ipv4_part(label) for label in labels]
    if len(parts) > 4 or any(p is None for p in parts):
        raise UrlRejected(f"the host {host!r} looks like an IPv4 address but is not a valid one")
    numbers = [p for p in parts if p is not None]
    *head, last = numbers
    if any(p > 255 for p in head) or last >= 256 ** (5 - len(numbers)):
        raise UrlRejected(f"the host {host!r} looks like an IPv4 address but is out of range")
    value = last
    for index, part in enumerate(head):
        value += part << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """Read ``host`` as an IP literal in every spelling that reaches a socket.

    IPv4 follows ``inet_aton`` and the WHATWG URL standard: decimal, octal
    (``0177``), hex (``0x7f``) parts, and 1-4 parts (``127.1``, ``2130706433``).
    A host whose last label is numeric but that is no valid address is refused
    rather than handed to DNS. Returns None for a host *name*.
    """
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(unquote(host))
        except ValueError:
            raise UrlRejected(f"the host {host!r} is not a valid IPv6 address") from None
    return _parse_ipv4_literal(host)


def _check_host_name(host: str, policy: FetchPolicy) -> None:
    """Syntax and special names for a host that is not an IP literal."""
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlRejected(f"the host {host!r} is not a valid host name")
    if policy.allow_private:
        return
    if name == "localhost" or name.endswith(".localhost"):
        raise UrlRejected(f"the host {host!r} is a loopback name; only public internet hosts are allowed")
    # Dotless names only resolve through local search domains (intranet hosts);
    # no public host is dotless.
    if len(labels) < 2:
        raise UrlRejected(f"the host {host!r} is not a fully qualified domain name")


def _address_refusal(host: str, ip: IPAddress, policy: FetchPolicy, *, literal: bool) -> UrlRejected | None:
    problem = policy.address_problem(ip)
    if problem is None:
        return None
    if literal:
        return UrlRejected(f"the host {host!r} is {problem}; only public internet addresses are allowed")
    # Do not echo the resolved address: it would let callers map internal DNS.
    return UrlRejected(
        f"the host {host!r} resolves to a non-public address; only public internet hosts are allowed"
    )


# --------------------------------------------------------------------------- URLs


def _parse(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, httpx.URL):
        return url
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlRejected(f"this is not a valid URL ({exc})") from None


def effective_port(url: httpx.URL) -> int:
    """The TCP port a URL connects to (explicit, or the scheme's default)."""
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)


def check_url(url: str | httpx.URL, policy: FetchPolicy) -> httpx.URL:
    """Static checks, no I/O: scheme, userinfo, port, host syntax, literal IPs in any spelling.

    Returns the parsed URL. Raises :class:`UrlRejected` with a human reason.
    A host *name* passes here; its addresses are checked by
    :func:`check_url_resolves_public` and, binding, at connect time.
    """
    parsed = _parse(url)
    if parsed.scheme not in _SCHEMES:
        shown = parsed.scheme or "(none)"
        raise UrlRejected(f"the URL scheme {shown!r} is not allowed; use an http or https URL")
    if parsed.userinfo:
        raise UrlRejected("URLs with a user name or password (user@host) are not allowed")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise UrlRejected("the URL has no host")
    port = effective_port(parsed)
    if not 0 < port < 65536:
        raise UrlRejected(f"the port {port} is not a valid TCP port")
    if not policy.port_allowed(port):
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise UrlRejected(f"the port {port} is not allowed; allowed ports: {allowed}")
    ip = parse_ip_literal(host)
    if ip is None:
        _check_host_name(host, policy)
        return parsed
    refusal = _address_refusal(host, ip, policy, literal=True)
    if refusal is not None:
        raise refusal
    return parsed


# --------------------------------------------------------------------------- DNS


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` with the system resolver (``getaddrinfo`` in a worker thread)."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:  # IDNA encoding of an odd name
        raise OSError(f"cannot encode host name: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


async def resolve_allowed(host: str, port: int, policy: FetchPolicy, resolver: Resolver) -> list[IPAddress]:
    """Resolve ``host`` ONCE and return its addresses if the policy allows ALL of them.

    IP literals (any spelling) are not looked up. A name with a mix of allowed
    and forbidden addresses is refused outright: "use the first good one" would
    let an attacker keep an internal address in rotation.
    Raises :class:`UrlRejected`; resolver failures surface as ``OSError``.
    """
    literal = parse_ip_literal(host)
    if literal is not None:
        refusal = _address_refusal(host, literal, policy, literal=True)
        if refusal is not None:
            raise refusal
        return [literal]
    addresses = list(await resolver(host, port))
    if not addresses:
        raise OSError(f"{host!r} has no IPv4 or IPv6 address")
    for ip in addresses:
        refusal = _address_refusal(host, ip, policy, literal=False)
        if refusal is not None:
            raise refusal
    return addresses


async def check_url_resolves_public(
    url: str | httpx.URL,
    policy: FetchPolicy,
    resolver: Resolver | None = None,
    *,
    timeout: float = 5.0,
    require_resolution: bool = False,
) -> httpx.URL:
    """:func:`check_url` plus one DNS lookup; for a 400 at request time.

    Refuses a host that resolves to any non-public address. A lookup that fails
    or takes longer than ``timeout`` seconds is NOT a policy violation (DNS can be
    down for a moment, or absent in a sandbox), so it passes unless
    ``require_resolution``; the fetch fails later if the name stays dead. The
    connect-time check in the fetcher still decides: DNS may answer differently later.
    """
    parsed = check_url(url, policy)
    if policy.allow_private:
        return parsed
    host = parsed.raw_host.decode("ascii").lower()
    try:
        with anyio.fail_after(timeout):
            await resolve_allowed(host, effective_port(parsed), policy, resolver or system_resolver)
    except TimeoutError:
        if require_resolution:
            raise UrlRejected(f"the host {host!r} did not resolve within {timeout:g} s") from None
    except OSError:
        if require_resolution:
            raise UrlRejected(f"the host {host!r} could not be resolved") from None
    return parsed
