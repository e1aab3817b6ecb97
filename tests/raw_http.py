"""HTTP/1.1 by hand over a plain socket, for tests about how the server treats a request body: sent at
a chosen pace, stopped half way, far too large, or written whole before the answer is read (what Node's
fetch does). Blocking: run these in a thread (`anyio.to_thread.run_sync`) when the server shares the
test's event loop."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

BOUNDARY = "rawb0undary"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The error envelope's inner object (all four keys checked)."""
        error: dict[str, Any] = json.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        return error


def connect(base_url: str, *, timeout: float = 30) -> socket.socket:
    url = httpx.URL(base_url)
    assert url.host and url.port
    return socket.create_connection((url.host, url.port), timeout=timeout)


def head(
    method: str, path: str, *, key: str | None, content_type: str, length: int | None, **extra: str
) -> bytes:
    """A request's line and headers; `length` None sends the body chunked."""
    lines = [f"{method} {path} HTTP/1.1", "Host: vidgate", f"Content-Type: {content_type}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body (the empty chunk ends it)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def multipart_upload(size: int, *, prompt: str = "p") -> tuple[bytes, str]:
    """A create body as the openai SDK sends one: a prompt and an `input_reference` file of `size`
    bytes (a PNG signature, then zeros); and its Content-Type."""
    image = b"\x89PNG\r\n\x1a\n" + b"\x00" * max(0, size - 8)
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="input_reference"; filename="r.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body += image + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def answered_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server has sent something (or closed) within `seconds`; reads nothing."""
    readable, _, _ = select.select([sock], [], [], max(0.0, seconds))
    return bool(readable)


def read_answer(sock: socket.socket) -> Answer:
    """One response, framed by its Content-Length. Raises ConnectionError when the server closes (or
    resets) the connection before it is whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, data)
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += _recv(sock, data + body)
    return Answer(int(status_line.split()[1]), headers, body)


def _recv(sock: socket.socket, so_far: bytes) -> bytes:
    try:
        got = sock.recv(65536)
    except ConnectionResetError as exc:
        raise ConnectionError(f"the connection was reset; got {so_far[:200]!r}") from exc
    if not got:
        raise ConnectionError(f"the server closed the connection; got {so_far[:200]!r}")
    return got


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server has closed (or reset) the connection, reading and dropping what it sends
    first; False if it is still open after `within` seconds."""
    deadline = time.monotonic() + within
    while answered_within(sock, deadline - time.monotonic()):
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
    return False
