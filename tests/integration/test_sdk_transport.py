"""The SDK's transport against a small real HTTP server on loopback that answers from a script:
retries and their pacing (Retry-After, retry-after-ms, backoff), the Idempotency-Key kept across the
retries of one create, what is never repeated, connection failures, and wait()'s polling pace.
Times are the server's arrival times of each request, so nothing here sleeps."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.integration.sdk_support import SDK
from vidgate.client import (
    APIConnectionError,
    APITimeoutError,
    ConflictError,
    InternalServerError,
    RateLimitError,
    Video,
)

pytestmark = pytest.mark.anyio
KEY = "vg-transport-test-key"
SLACK = 0.02  # clock granularity between the client's sleep and the server's arrival stamp


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] | None = None


@dataclass
class Seen:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def video(status: str = "queued", progress: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": "video_01", "object": "video", "model": "sora-2", "status": status, "progress": progress,
            "created_at": 1, "completed_at": None, "prompt": "p", "seconds": "4", "size": "720x1280",
            "error": None, **extra}  # fmt: skip


def envelope(code: str, message: str = "scripted") -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class ScriptedServer:
    """Answers each (method, path) from its queue of replies (404 when it runs out) and records every
    request with its arrival time."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.script: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                outer.seen.append(Seen(time.monotonic(), self.command, self.path, dict(self.headers), body))
                queue = outer.script[(self.command, path)]
                reply = queue.popleft() if queue else Reply(404, envelope("not_found"))
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in (reply.headers or {}).items():
                    self.send_header(name, value)
                if not isinstance(reply.body, bytes):
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=sock is None)
        if sock is not None:
            self.httpd.socket.close()
            self.httpd.socket = sock
            self.httpd.server_address = sock.getsockname()
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self.thread is None:
            self.httpd.server_activate()  # listen(): connections are refused until now
            self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
            self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.script[(method, path)].extend(replies)

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.seen, self.seen[1:], strict=False)]


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def sdk(server: ScriptedServer, flavour: str) -> Any:
    client = SDK(flavour, server.url, KEY)
    yield client
    await client.close()


async def test_a_create_is_retried_with_one_idempotency_key_at_the_pace_asked(
    server: ScriptedServer, sdk: SDK
) -> None:
    server.on(
        "POST", "/v1/videos",
        Reply(429, envelope("rate_limit_exceeded"), {"retry-after": "1"}),
        Reply(503, b"Service Unavailable", {"retry-after-ms": "50", "content-type": "text/plain"}),
        Reply(200, video()),
        Reply(200, video()),
    )  # fmt: skip
    made = await sdk("videos.create", prompt="p")
    assert (made.id, made.status, made.seconds) == ("video_01", "pending", 4)
    first, second = [s.headers["Idempotency-Key"] for s in server.seen[:3]], None
    assert len(server.seen) == 3 and len(set(first)) == 1 and uuid.UUID(first[0])
    # What the server asked for, not the backoff (0.375-0.5 s, then 0.75-1 s), which would fail both
    gaps = server.gaps()
    assert 1.0 - SLACK <= gaps[0] < 1.0 + 0.5  # Retry-After, in seconds
    assert 0.05 - SLACK <= gaps[1] < 0.05 + 0.3  # retry-after-ms
    assert all(s.headers["authorization"] == f"Bearer {KEY}" for s in server.seen)
    assert server.seen[0].headers["user-agent"].startswith("vidgate-python/")

    await sdk("videos.create", prompt="p")  # the next create: a new key
    second = server.seen[3].headers["Idempotency-Key"]
    assert len(server.seen) == 4 and second != first[0]


async def test_backoff_without_retry_after_then_the_last_error(server: ScriptedServer, sdk: SDK) -> None:
    server.on("GET", "/v1/videos/video_01", *[Reply(500, envelope("boom", "it broke"))] * 3)
    with pytest.raises(InternalServerError) as failed:
        await sdk("videos.retrieve", "video_01")
    assert (failed.value.status_code, failed.value.code, failed.value.message) == (500, "boom", "it broke")
    assert len(server.seen) == 3  # max_retries=2: three tries in all
    first, second = server.gaps()
    assert 0.5 * 0.75 - SLACK <= first < 0.5 + 0.3  # min(0.5 * 2^n, 8) less up to 25 % jitter
    assert 1.0 * 0.75 - SLACK <= second < 1.0 + 0.3
    assert KEY not in str(failed.value)


async def test_a_write_that_may_have_happened_is_not_repeated(server: ScriptedServer, sdk: SDK) -> None:
    """A 500 to a DELETE (no Idempotency-Key) may have done the work: it is not sent again. A 503 or a
    409 `busy` says nothing was done: those are retried."""
    server.on("DELETE", "/v1/videos/video_01", Reply(500, envelope("internal_error")))
    with pytest.raises(InternalServerError):
        await sdk("videos.delete", "video_01")
    assert len(server.seen) == 1
    server.on(
        "DELETE", "/v1/videos/video_01",
        Reply(503, envelope("unavailable"), {"retry-after-ms": "50"}),
        Reply(409, envelope("busy"), {"retry-after-ms": "50"}),
        Reply(200, {"id": "video_01", "object": "video.deleted", "deleted": True}),
    )  # fmt: skip
    assert await sdk("videos.delete", "video_01") is None
    assert len(server.seen) == 4
    server.on("DELETE", "/v1/videos/video_01", Reply(409, envelope("task_finished")))
    with pytest.raises(ConflictError) as finished:  # any other 409 is final
        await sdk("videos.delete", "video_01")
    assert finished.value.code == "task_finished" and len(server.seen) == 5


async def test_a_retry_after_beyond_a_minute_goes_to_the_caller(server: ScriptedServer, sdk: SDK) -> None:
    server.on("GET", "/v1/videos", Reply(429, envelope("too_many_active_tasks"), {"retry-after": "120"}))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as limited:
        await sdk("videos.list")
    assert time.monotonic() - started < 1 and len(server.seen) == 1
    assert (limited.value.retry_after, limited.value.code) == (120.0, "too_many_active_tasks")


async def test_wait_paces_itself_by_the_server(server: ScriptedServer, sdk: SDK) -> None:
    server.on(
        "GET", "/v1/videos/video_01",
        Reply(200, video("queued"), {"openai-poll-after-ms": "250"}),
        Reply(200, video("queued"), {"openai-poll-after-ms": "250"}),
        Reply(200, video("in_progress", 50), {"retry-after-ms": "400"}),
        Reply(200, video("in_progress", 60)),  # no pacing header: 1 s +-25 %
        Reply(200, video("completed", 100, completed_at=2)),
    )  # fmt: skip
    seen: list[Video] = []
    done = await sdk("videos.wait", "video_01", on_progress=seen.append)
    assert done.status == "completed" and done.progress == 100
    assert [(v.status, v.progress) for v in seen] == [
        ("pending", 0), ("processing", 50), ("processing", 60), ("completed", 100),
    ]  # fmt: skip
    gaps = server.gaps()
    assert len(gaps) == 4
    # each bound also tells the paces apart: the fallback's 0.75-1.25 s would fail the first three
    assert 0.25 - SLACK <= gaps[0] < 0.25 + 0.3 and 0.25 - SLACK <= gaps[1] < 0.25 + 0.3
    assert 0.4 - SLACK <= gaps[2] < 0.4 + 0.3  # no poll-after header: Retry-After (here in ms)
    assert 0.75 - SLACK <= gaps[3] < 1.25 + 0.3


async def test_failed_with_code_cancelled_is_settled_by_the_unified_query(
    server: ScriptedServer, sdk: SDK
) -> None:
    """The OpenAI shape shows a cancel as failed/`cancelled`, which a channel's own failure code could
    also be: the unified query, which has the five statuses, decides."""
    failed = video("failed", error={"code": "cancelled", "message": "m"})
    server.on("GET", "/v1/videos/video_01", Reply(200, failed), Reply(200, failed))
    server.on("GET", "/v1/video/query", Reply(200, {"status": "failed"}), Reply(200, {"status": "cancelled"}))
    assert (await sdk("videos.retrieve", "video_01")).status == "failed"
    assert (await sdk("videos.retrieve", "video_01")).status == "cancelled"
    assert [s.path for s in server.seen][1] == "/v1/video/query?id=video_01"
    server.on(
        "GET", "/v1/videos/video_01", Reply(200, video("failed", error={"code": "timeout", "message": "m"}))
    )
    assert (await sdk("videos.retrieve", "video_01")).status == "failed"
    assert len(server.seen) == 5  # a plain failure needs no second look


async def test_a_refused_connection_is_retried_until_the_server_listens(flavour: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
    server = ScriptedServer(sock)
    server.on("GET", "/v1/videos", Reply(200, {"object": "list", "data": [video()], "has_more": False}))
    attempts = 0

    def count() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:  # the first try was refused; the retry finds it listening
            server.start()

    async def count_async(_: httpx.Request) -> None:
        count()

    http: httpx.Client | httpx.AsyncClient = (
        httpx.Client(event_hooks={"request": [lambda _: count()]})
        if flavour == "sync"
        else httpx.AsyncClient(event_hooks={"request": [count_async]})
    )
    sdk = SDK(flavour, server.url, KEY, http_client=http)
    try:
        page = await sdk("videos.list")
        assert [v.id for v in page.data] == ["video_01"] and attempts == 2 and len(server.seen) == 1
    finally:
        await sdk.close()
        await http.aclose() if isinstance(http, httpx.AsyncClient) else http.close()
        server.stop()


async def test_no_server_is_a_connection_error_after_the_retries(flavour: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # never listens
        sdk = SDK(flavour, f"http://127.0.0.1:{sock.getsockname()[1]}", KEY, max_retries=1)
        started = time.monotonic()
        try:
            with pytest.raises(APIConnectionError) as failed:
                await sdk("videos.retrieve", "video_01")
        finally:
            await sdk.close()
    assert not isinstance(failed.value, APITimeoutError) and "after 2 attempts" in str(failed.value)
    assert time.monotonic() - started >= 0.5 * 0.75 - SLACK  # it waited once before the retry


async def test_no_answer_is_a_timeout_error(flavour: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # connections complete in the backlog, but nobody ever answers
        sdk = SDK(flavour, f"http://127.0.0.1:{sock.getsockname()[1]}", KEY, timeout=0.2, max_retries=1)
        try:
            with pytest.raises(APITimeoutError) as timed_out:
                await sdk("videos.retrieve", "video_01")  # a read: safe to send again after a timeout
        finally:
            await sdk.close()
    assert "timed out after 2 attempts" in str(timed_out.value)


async def test_a_unified_create_whose_read_fails_still_returns_the_video(
    server: ScriptedServer, sdk: SDK
) -> None:
    """The unified create answers only {id, status, ...}; the SDK reads the whole video after it. If
    that read fails, the create has still happened: the call returns what the create said instead of
    raising (a caller who saw an error would create the video a second time)."""
    created = {"id": "sora-2:task_01", "status": "pending", "status_update_time": 1}
    server.on("POST", "/v1/video/create", Reply(200, created), Reply(200, created))
    server.on(
        "GET", "/v1/videos/sora-2:task_01",
        Reply(200, video()),
        Reply(429, envelope("rate_limit_exceeded"), {"retry-after": "300"}),
    )  # fmt: skip
    full = await sdk("videos.create", prompt="p", orientation="portrait")
    assert (full.id, full.prompt, full.size) == ("video_01", "p", "720x1280")
    partial = await sdk("videos.create", prompt="p", orientation="portrait")
    assert (partial.id, partial.status, partial.prompt) == ("sora-2:task_01", "pending", None)
    assert [s.method for s in server.seen] == ["POST", "GET", "POST", "GET"]
    assert json.loads(server.seen[0].body) == {"model": "sora-2", "prompt": "p", "orientation": "portrait"}
