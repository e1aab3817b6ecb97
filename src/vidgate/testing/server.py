"""Serve an ASGI app on a loopback port inside the current event loop (real HTTP, real lifespan)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from starlette.types import ASGIApp


def bind_loopback(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready socket on a free port; bind first so the port is known before the app exists."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Yield the base URL once the server accepts connections; shut it down gracefully on exit."""
    sock = sock or bind_loopback()
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:  # readiness, not a timing guess: uvicorn flips this once listening
                if server.should_exit:
                    raise RuntimeError("the server failed to start (see the log above)")
                await anyio.sleep(0.01)
            try:
                yield f"http://{host}:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()
