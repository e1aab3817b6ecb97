"""Request bodies have deadlines: a body that stalls, drips slower than the idle deadline, or trickles
in for longer than the total deadline is answered 408 `body_timeout` (and its connection closed) on
every route that reads one, instead of holding the connection for as long as the client likes. A client
that leaves mid-upload is a logged "client disconnected" and a 499 in the metrics, not a 500 with a
traceback.

Raw sockets against a real uvicorn on loopback (the client runs in a thread; the server shares the
test's event loop), with deadlines of a fraction of a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from tests.raw_http import (
    Answer,
    answered_within,
    closed_by_server,
    connect,
    head,
    multipart_upload,
    read_answer,
)
from vidgate.testing.server import serving

pytestmark = pytest.mark.anyio

IDLE_S = 0.5
TOTAL_S = 1.5
# How late an answer may be on a loaded two-core machine; the deadlines themselves are what is tested.
SLACK_S = 0.75

JSON_CREATE = ("/v1/video/create", "application/json", b'{"model": "sora-2", "prompt": "a red kite"}')
UPLOAD, UPLOAD_TYPE = multipart_upload(4096)
OPENAI_UPLOAD = ("/v1/videos", UPLOAD_TYPE, UPLOAD)
REMIX = ("/v1/videos/video_01k6x15vhrff09dkkqjrzwhm60/remix", "application/json", b'{"prompt": "again"}')
ROUTES = {"unified-json": JSON_CREATE, "openai-multipart-upload": OPENAI_UPLOAD, "openai-remix-json": REMIX}


@pytest.fixture
async def deadlined(start_gateway: Any) -> AsyncIterator[tuple[Any, str]]:
    async with start_gateway(
        run_worker=False, http_body_idle_timeout_seconds=IDLE_S, http_body_timeout_seconds=TOTAL_S
    ) as gw:
        yield gw, await gw.new_key()


def assert_body_timeout(answer: Answer, sock: Any) -> None:
    assert answer.status == 408, answer
    error = answer.error()
    assert (error["type"], error["code"]) == ("invalid_request_error", "body_timeout")
    assert answer.headers.get("connection", "").lower() == "close"
    assert closed_by_server(sock, within=5), "the connection stayed open after the 408"


def drip(
    base_url: str, key: str, route: tuple[str, str, bytes], *, every: float, give_up_after: float
) -> tuple[Answer, float, float, Any]:
    """Send the head, then the body a byte every `every` seconds until the server answers. Returns the
    answer, the seconds from the head to it and from the last byte sent to it, and the socket."""
    path, content_type, body = route
    sock = connect(base_url)
    sock.sendall(head("POST", path, key=key, content_type=content_type, length=len(body)))
    started = time.monotonic()
    for index in range(len(body)):
        if time.monotonic() - started > give_up_after:
            break
        sock.sendall(body[index : index + 1])
        last = time.monotonic()
        if answered_within(sock, every):
            answered = time.monotonic()
            return read_answer(sock), answered - started, answered - last, sock
    sock.close()
    raise AssertionError(f"no answer within {give_up_after} s of dripping the body")


@pytest.mark.parametrize("route", [JSON_CREATE, OPENAI_UPLOAD], ids=["json", "multipart"])
async def test_a_body_dripping_slower_than_the_idle_deadline_gets_408(deadlined, route) -> None:
    gw, key = deadlined
    answer, _, since_last_byte, sock = await anyio.to_thread.run_sync(
        lambda: drip(gw.base_url, key, route, every=IDLE_S * 3, give_up_after=8)
    )
    with sock:
        assert IDLE_S - 0.05 <= since_last_byte <= IDLE_S + SLACK_S, since_last_byte
        assert_body_timeout(answer, sock)


@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
async def test_a_body_that_stops_gets_408_after_the_idle_deadline(deadlined, route) -> None:
    gw, key = deadlined
    path, content_type, body = route

    def stall() -> tuple[Answer, float]:
        with connect(gw.base_url) as sock:
            sock.sendall(head("POST", path, key=key, content_type=content_type, length=len(body) + 100))
            sock.sendall(body[:20])
            sent = time.monotonic()
            assert answered_within(sock, IDLE_S + 5), "no answer to a stalled body"
            waited = time.monotonic() - sent
            answer = read_answer(sock)
            assert_body_timeout(answer, sock)
            return answer, waited

    answer, waited = await anyio.to_thread.run_sync(stall)
    assert IDLE_S - 0.05 <= waited <= IDLE_S + SLACK_S, waited
    assert f"{IDLE_S:g} s" in answer.error()["message"]


async def test_a_body_steady_but_too_slow_overall_gets_408_at_the_total_deadline(deadlined) -> None:
    gw, key = deadlined
    # A byte every 0.1 s never trips the idle deadline; the whole body would take 400 s.
    answer, since_head, _, sock = await anyio.to_thread.run_sync(
        lambda: drip(gw.base_url, key, OPENAI_UPLOAD, every=0.1, give_up_after=TOTAL_S + 5)
    )
    with sock:
        assert TOTAL_S - 0.05 <= since_head <= TOTAL_S + SLACK_S, since_head
        assert_body_timeout(answer, sock)
        assert f"{TOTAL_S:g} s" in answer.error()["message"]


async def test_a_body_at_a_normal_pace_is_not_cut_off(deadlined) -> None:
    """Each part well within the idle deadline, the whole within the total: a create as usual."""
    gw, key = deadlined
    path, content_type, body = JSON_CREATE

    def paced() -> Answer:
        with connect(gw.base_url) as sock:
            sock.sendall(head("POST", path, key=key, content_type=content_type, length=len(body)))
            for part in (body[:10], body[10:20], body[20:]):
                assert not answered_within(sock, IDLE_S / 2)
                sock.sendall(part)
            return read_answer(sock)

    answer = await anyio.to_thread.run_sync(paced)
    assert answer.status == 200, answer


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def test_a_client_that_leaves_mid_upload_is_logged_as_such_not_as_a_500(
    deadlined, caplog: pytest.LogCaptureFixture
) -> None:
    gw, key = deadlined
    path, content_type, body = OPENAI_UPLOAD
    async with httpx.AsyncClient(base_url=gw.base_url) as plain:
        before = scrape((await plain.get("/metrics")).text)

        def leave_mid_upload() -> None:
            with connect(gw.base_url) as sock:
                sock.sendall(head("POST", path, key=key, content_type=content_type, length=len(body)))
                sock.sendall(body[: len(body) // 2])
                # The server is reading the body when the client goes (no answer can come before it).
                assert not answered_within(sock, 0.1)

        caplog.set_level(logging.DEBUG)
        with capture_logs() as logs:
            await anyio.to_thread.run_sync(leave_mid_upload)
            with anyio.fail_after(10):  # the server sees the close, then its request ends
                while not [e for e in logs if e["event"] == "request" and e.get("route") == path]:
                    await anyio.sleep(0.01)
        after = scrape((await plain.get("/metrics")).text)

    [access] = [e for e in logs if e["event"] == "request" and e.get("route") == path]
    assert access["status"] == 499, access
    [gone] = [e for e in logs if e["event"] == "client disconnected"]
    assert gone["log_level"] in ("info", "warning") and "exception" not in gone and "exc_info" not in gone
    # At most the half that was sent (less if the close came before the server had read it all).
    assert 0 <= gone["received_bytes"] <= len(body) // 2, gone
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
    assert "Traceback" not in caplog.text and "Exception in ASGI application" not in caplog.text

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("vidgate_http_incomplete_bodies_total", reason="client_disconnected") == 1
    assert moved("vidgate_http_requests_total", route=path, status="499") == 1
    assert moved("vidgate_http_requests_total", route=path, status="500") == 0


async def test_the_timeouts_are_counted_by_reason(deadlined) -> None:
    gw, key = deadlined
    path, content_type, body = JSON_CREATE
    async with httpx.AsyncClient(base_url=gw.base_url) as plain:
        before = scrape((await plain.get("/metrics")).text)

        def stall() -> None:
            with connect(gw.base_url) as sock:
                sock.sendall(head("POST", path, key=key, content_type=content_type, length=len(body)))
                sock.sendall(body[:5])
                assert read_answer(sock).status == 408

        await anyio.to_thread.run_sync(stall)
        answer, _, _, sock = await anyio.to_thread.run_sync(
            lambda: drip(gw.base_url, key, OPENAI_UPLOAD, every=0.1, give_up_after=TOTAL_S + 5)
        )
        sock.close()
        assert answer.status == 408
        after = scrape((await plain.get("/metrics")).text)
    name = "vidgate_http_incomplete_bodies_total"
    for reason in ("idle_timeout", "total_timeout"):
        assert sample(after, name, reason=reason) - sample(before, name, reason=reason) == 1, reason
    assert (
        sample(after, "vidgate_http_requests_total", route=path, status="408")
        - sample(before, "vidgate_http_requests_total", route=path, status="408")
        == 1
    )


async def test_the_deadlines_end_with_the_body_a_slow_answer_is_not_cut_off() -> None:
    """Once the body is in, receiving is the server telling the app about a disconnect (a streamed
    answer listens for one all along): no deadline applies to that wait."""
    from vidgate.api.body_deadline import BodyDeadline

    go_on = anyio.Event()

    async def endpoint(request: Request) -> StreamingResponse:
        await request.body()

        async def parts() -> AsyncIterator[bytes]:
            yield b"first;"
            with anyio.fail_after(10):
                await go_on.wait()  # the client says when, well after both deadlines
            yield b"second"

        return StreamingResponse(parts())

    app = Starlette(
        routes=[Route("/", endpoint, methods=["POST"])],
        middleware=[Middleware(BodyDeadline, idle_seconds=0.2, total_seconds=0.3)],
    )
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        async with client.stream("POST", "/", content=b"x" * 100) as response:
            chunks = response.aiter_raw()
            assert await anext(chunks) == b"first;"
            await anyio.sleep(1.0)  # the scenario itself: a pause longer than both deadlines
            go_on.set()
            assert b"".join([part async for part in chunks]) == b"second"
