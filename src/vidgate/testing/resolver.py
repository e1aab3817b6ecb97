"""A DNS stand-in for tests and sandboxes: names resolve only to what the table says.

Tests must not send DNS queries off the machine; a gateway given a `StaticResolver` looks names up
here instead, both for the request-time URL check and for the fetcher's connect-time check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from vidgate.net.policy import IPAddress


class StaticResolver:
    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name.lower(): [ipaddress.ip_address(a) for a in addrs] for name, addrs in table.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        addresses = self.table.get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"{host!r} is not in the test resolver's table")
        return list(addresses)


# Public addresses from documentation and well-known ranges; tests never connect to them (the fetch
# is refused or the test stops first), they only need to look public to the address policy.
PUBLIC_TEST_HOSTS: dict[str, list[str]] = {
    "example.com": ["93.184.215.14"],
    "images.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "localhost": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "rebind.example.com": ["93.184.215.14", "10.0.0.7"],
}
