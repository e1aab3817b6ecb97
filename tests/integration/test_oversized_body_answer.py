"""A 413 for an oversized body reaches a client that writes its whole body before reading the answer.

That is what Node's fetch (undici, under the official openai npm SDK) does. If the server answers and
closes while the rest of the body is still arriving, its kernel resets the connection (a close with
unread data sends RST): the client's writes fail with ECONNRESET/EPIPE, it never reads the 413, and the
SDK retries the whole upload. So the server reads and discards the rest of the body, up to twice the
limit and within the body deadlines, before it answers; a body beyond that is still cut off.

Raw sockets against a real uvicorn on loopback; the client runs in a thread.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tests.raw_http import Answer, answered_within, chunk, connect, head, multipart_upload, read_answer

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
async def gw_key(start_gateway: Any) -> AsyncIterator[tuple[Any, str]]:
    async with start_gateway(run_worker=False) as gw:  # the default limits: 1 MiB JSON, 20 MiB upload
        yield gw, await gw.new_key()


def write_whole_then_read(base_url: str, request_head: bytes, body: bytes) -> Answer:
    """Node's fetch: the head and the whole body are written, and only then is the answer read. A write
    that fails is the request failing, as it is for undici."""
    with connect(base_url) as sock:
        try:
            sock.sendall(request_head)
            view = memoryview(body)
            for start in range(0, len(body), 256 * 1024):
                sock.sendall(view[start : start + 256 * 1024])
        except OSError as exc:
            raise AssertionError(f"writing the body failed ({exc!r}): no 413 reached the client") from exc
        try:
            return read_answer(sock)
        except ConnectionError as exc:
            raise AssertionError(f"reading the answer failed: {exc}") from exc


def assert_too_large(answer: Answer, limit: int) -> None:
    assert answer.status == 413, answer
    error = answer.error()
    assert (error["type"], error["code"]) == ("invalid_request_error", "payload_too_large")
    assert str(limit) in error["message"]
    assert answer.headers.get("connection", "").lower() == "close"


async def test_an_oversized_upload_with_a_length_gets_its_413_after_the_whole_body(gw_key) -> None:
    gw, key = gw_key
    body, content_type = multipart_upload(24 * MiB)  # over the 20 MiB upload limit (+ 64 KiB)
    request_head = head("POST", "/v1/videos", key=key, content_type=content_type, length=len(body))
    answer = await anyio.to_thread.run_sync(lambda: write_whole_then_read(gw.base_url, request_head, body))
    assert_too_large(answer, gw.settings.max_upload_bytes + 64 * 1024)


async def test_an_oversized_chunked_upload_gets_its_413_after_the_whole_body(gw_key) -> None:
    gw, key = gw_key
    body, content_type = multipart_upload(24 * MiB)
    chunked = b"".join(chunk(body[i : i + MiB]) for i in range(0, len(body), MiB)) + chunk(b"")
    request_head = head("POST", "/v1/videos", key=key, content_type=content_type, length=None)
    answer = await anyio.to_thread.run_sync(lambda: write_whole_then_read(gw.base_url, request_head, chunked))
    assert_too_large(answer, gw.settings.max_upload_bytes + 64 * 1024)


async def test_an_oversized_json_body_gets_its_413_after_the_whole_body(gw_key) -> None:
    gw, key = gw_key
    body = b'{"model": "sora-2", "prompt": "' + b"x" * (int(1.9 * MiB)) + b'"}'
    request_head = head(
        "POST", "/v1/video/create", key=key, content_type="application/json", length=len(body)
    )
    answer = await anyio.to_thread.run_sync(lambda: write_whole_then_read(gw.base_url, request_head, body))
    assert_too_large(answer, gw.settings.max_body_bytes)


@pytest.mark.parametrize("form", ["a file that never ends", "not a form at all"])
async def test_an_endless_body_is_still_cut_off_at_the_bound(gw_key, form: str) -> None:
    """An endless upload (refused 413 at the limit) and an endless body the form parser gives up on at
    once (400): either way the rest is read up to the bound, then the connection is closed. Kept, it
    would be read and dropped for as long as the client kept sending."""
    gw, key = gw_key
    bound = 2 * (gw.settings.max_upload_bytes + 64 * 1024)
    preamble, content_type = multipart_upload(0)
    preamble = preamble[: preamble.index(b"\x89PNG")] if form == "a file that never ends" else b"\x00"

    def endless() -> int:
        with connect(gw.base_url) as sock:
            sock.sendall(head("POST", "/v1/videos", key=key, content_type=content_type, length=None))
            sock.sendall(chunk(preamble))
            piece = chunk(b"\x00" * (256 * 1024))
            sent, started = len(preamble), time.monotonic()
            while time.monotonic() - started < 30:
                try:
                    sock.sendall(piece)
                except OSError:
                    return sent
                sent += len(piece)
            raise AssertionError(f"the server was still taking an endless body after {sent} bytes")

    sent = await anyio.to_thread.run_sync(endless)
    # What the server read (at most the bound), plus what the two sockets' buffers held when it closed.
    assert sent <= bound + 32 * MiB, sent


async def test_a_declared_length_beyond_the_bound_is_answered_without_reading_it(gw_key) -> None:
    """Reading 100 GB to be polite is not on: far over the limit, the 413 comes at once."""
    gw, key = gw_key

    def huge() -> Answer:
        with connect(gw.base_url) as sock:
            sock.sendall(
                head(
                    "POST",
                    "/v1/videos",
                    key=key,
                    content_type="multipart/form-data; boundary=b",
                    length=100 * 1024**3,
                )
            )
            assert answered_within(sock, 10)
            return read_answer(sock)

    assert_too_large(await anyio.to_thread.run_sync(huge), gw.settings.max_upload_bytes + 64 * 1024)


async def test_a_client_that_waits_for_100_continue_gets_the_413_without_sending_the_body(gw_key) -> None:
    """curl and others send `Expect: 100-continue` and hold the body back until told to go on: such a
    client is answered at once and never sends it (reading would tell it to)."""
    gw, key = gw_key

    def expecting() -> Answer:
        with connect(gw.base_url) as sock:
            sock.sendall(
                head(
                    "POST",
                    "/v1/videos",
                    key=key,
                    content_type="multipart/form-data; boundary=b",
                    length=24 * MiB,
                    Expect="100-continue",
                )
            )
            assert answered_within(sock, 10)
            return read_answer(sock)

    answer = await anyio.to_thread.run_sync(expecting)
    assert_too_large(answer, gw.settings.max_upload_bytes + 64 * 1024)


async def test_draining_an_oversized_body_stops_at_the_idle_deadline(start_gateway) -> None:
    """A client that sends more than the limit and then stalls is not waited on past the deadline."""
    async with start_gateway(run_worker=False, max_body_bytes=1024, http_body_idle_timeout_seconds=0.5) as gw:
        key = await gw.new_key()

        def stall() -> tuple[Answer, float]:
            with connect(gw.base_url) as sock:
                sock.sendall(
                    head("POST", "/v1/video/create", key=key, content_type="application/json", length=1900)
                )
                sock.sendall(b"x" * 1100)
                sent = time.monotonic()
                assert answered_within(sock, 10)
                return read_answer(sock), time.monotonic() - sent

        answer, waited = await anyio.to_thread.run_sync(stall)
    assert_too_large(answer, 1024)
    assert waited <= 0.5 + 0.75, waited
