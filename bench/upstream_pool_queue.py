"""Many requests queued on one channel's connections: what does waiting for a connection cost?

    .venv/bin/python bench/upstream_pool_queue.py [--requests 1000] [--rounds 5] [--connections 32]

A worker with thousands of upstream jobs in flight sends hundreds of polls at once to a channel that
has a few dozen connections. httpx's pool (httpcore) looks at every queued request against every
connection each time a request arrives or a connection frees, so its CPU per request grows with the
queue. vidgate's channel client (`UpstreamHttp.client_for`) lets no more requests into the pool than
it has connections and queues the rest in a semaphore.

This script serves a minimal HTTP/1.1 endpoint (5 ms per answer) in a child process on loopback and
sends `--rounds` rounds of `--requests` GETs at once through vidgate's channel client (a) with its gate
opened wide, so every request waits in httpx's pool as before, and (b) as it is, alternately, twice
each, and prints the client process's CPU per request and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import anyio
import httpx

from vidgate.channel_config import ChannelSettings
from vidgate.config import Settings
from vidgate.logs import configure_logging
from vidgate.providers.upstream_http import UpstreamHttp

SERVER = """
import asyncio, sys

ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: application/json\\r\\n\\r\\n{}"

async def handle(reader, writer):
    try:
        while await reader.readline():
            while (await reader.readline()) not in (b"\\r\\n", b""):
                pass
            await asyncio.sleep(0.005)
            writer.write(ANSWER)
            await writer.drain()
    except ConnectionError:
        pass

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def cpu_per_request(client: httpx.AsyncClient, requests: int, rounds: int) -> float:
    await asyncio.gather(*[client.get("warm") for _ in range(8)])
    started = time.process_time()
    for _ in range(rounds):
        answers = await asyncio.gather(*[client.get(f"videos/{n}") for n in range(requests)])
        assert all(answer.status_code == 200 for answer in answers)
    return (time.process_time() - started) / (requests * rounds)


async def measure(base_url: str, args: argparse.Namespace) -> None:
    channel = ChannelSettings(
        name="bench",
        kind="openai",
        base_url=base_url,
        api_key="k",
        models=["m"],
        max_connections=args.connections,
    )
    results: dict[str, list[float]] = {"queued in httpx's pool": [], "queued at the gate": []}
    for _ in range(2):
        async with UpstreamHttp().client_for(channel) as wide_open:
            wide_open._admission = anyio.Semaphore(args.requests)  # every request goes on to httpx's pool
            results["queued in httpx's pool"].append(
                await cpu_per_request(wide_open, args.requests, args.rounds)
            )
        async with UpstreamHttp().client_for(channel) as gated:
            results["queued at the gate"].append(await cpu_per_request(gated, args.requests, args.rounds))
    for label, values in results.items():
        print(f"{label:>24}: {min(values) * 1000:.2f} ms of CPU per request (best of {len(values)})")
    ratio = min(results["queued in httpx's pool"]) / min(results["queued at the gate"])
    print(f"ratio (pool / gate): {ratio:.2f}x; {args.requests} at once, {args.connections} connections")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests sent at once")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    configure_logging(Settings(log_level="warning"))  # the outbound request log is not what is measured
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
