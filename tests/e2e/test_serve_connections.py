"""`vidgate serve` bounds what clients can hold: a connection that never sends a request, one that sends
its headers a byte at a time (slowloris) and one left idle after an answer are all closed, and requests
beyond the connection limit are answered 503. Raw sockets against a real serve process on loopback."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import Deployment

pytestmark = pytest.mark.slow

HEAD_TIMEOUT_S = 4
KEEP_ALIVE_S = 1
MAX_CONNECTIONS = 3
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: vidgate\r\n\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("serve-connections")
    config = root / "vidgate.toml"
    config.write_text(
        f"http_header_timeout_seconds = {HEAD_TIMEOUT_S}\n"
        f"http_keep_alive_seconds = {KEEP_ALIVE_S}\n"
        f"http_max_connections = {MAX_CONNECTIONS}\n"
        "embedded_worker = false\n"
    )
    dep = Deployment(root, f"sqlite+aiosqlite:///{root / 'vidgate.db'}", config)
    try:
        dep.serve()
        yield dep
    finally:
        dep.stop_all()


def connect(dep: Deployment) -> socket.socket:
    return socket.create_connection(("127.0.0.1", dep.port), timeout=30)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server closes the connection, False if it is still open after `within` s. What it
    sends before closing (the rest of an answer) is read and dropped."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
    return False


def read_status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without answering"
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_a_connection_that_never_sends_a_request_is_closed(server: Deployment) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, within=HEAD_TIMEOUT_S + 10)
        assert time.monotonic() - started >= HEAD_TIMEOUT_S - 0.5


def test_headers_sent_a_byte_at_a_time_do_not_hold_the_connection(server: Deployment) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vidgate\r\n")
        closed = False
        # One header byte every 0.2 s never completes the head; each byte would reset an idle timer.
        while not closed and time.monotonic() - started < HEAD_TIMEOUT_S + 10:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = closed_by_server(sock, within=0.2)
        assert closed, "a slowloris connection was kept open"
        assert time.monotonic() - started >= HEAD_TIMEOUT_S - 0.5


def test_an_idle_connection_after_an_answer_is_closed_after_the_keep_alive(server: Deployment) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST)
        assert read_status(sock) == 200
        # Closed by the keep-alive (1 s), well before the head deadline (4 s) or the default keep-alive
        # (5 s) would have.
        assert closed_by_server(sock, within=KEEP_ALIVE_S + 1.5)


def test_requests_beyond_the_connection_limit_are_answered_503(server: Deployment) -> None:
    holders = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in holders:  # connected and mid-head: each counts against the limit
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        with connect(server) as extra:
            extra.sendall(REQUEST)
            assert read_status(extra) == 503
            # uvicorn closes after a 503: once it has, the extra connection no longer counts.
            while extra.recv(65536):
                pass
        # With the extra one gone, the held connections are served.
        holders[0].sendall(b"Host: vidgate\r\n\r\n")
        assert read_status(holders[0]) == 200
    finally:
        for sock in holders:
            sock.close()
