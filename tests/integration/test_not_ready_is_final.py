"""A download or remix of a video that is not completed is answered 409 `not_ready` once, and no SDK
asks again: the answer carries `x-should-retry: false`, which the official SDKs obey (they retry any
other 409, which would cost the caller three requests and over a second before the error). Requests are
counted at the server, from its access log."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from structlog.testing import capture_logs

import vidgate.client

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings(
        "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
    ),
]

CONTENT = "/v1/videos/{video_id}/content"
REMIX = "/v1/videos/{video_id}/remix"


@pytest.fixture
async def pending_video(gateway: Any) -> AsyncIterator[tuple[Any, str, str]]:
    """A gateway whose worker is off, a key, and a video of that key that stays pending."""
    key = await gateway.new_key()
    async with gateway.client(key) as client:
        r = await client.post("/v1/videos", json={"prompt": "a red kite", "seconds": "4"})
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        yield gateway, key, r.json()["id"]


def requests_to(logs: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "request" and e["route"] == route]


async def test_the_openai_sdk_downloads_content_of_an_unfinished_video_once(pending_video) -> None:
    gw, key, video_id = pending_video
    # The SDK's default retries (2) left on: the point is that it does not use them.
    async with openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=key) as client:
        with capture_logs() as logs:
            started = time.monotonic()
            with pytest.raises(openai.ConflictError) as raised:
                await client.videos.download_content(video_id)
            took = time.monotonic() - started
        with capture_logs() as remix_logs, pytest.raises(openai.ConflictError):
            await client.videos.remix(video_id, prompt="again")
    assert [e["status"] for e in requests_to(logs, CONTENT)] == [409]
    assert took < 0.5, took  # the SDK's first retry would wait about 0.5 s
    assert raised.value.status_code == 409 and raised.value.code == "not_ready"
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert [e["status"] for e in requests_to(remix_logs, REMIX)] == [409]


async def test_the_vidgate_sdk_does_not_retry_it_either(pending_video, tmp_path: Path) -> None:
    gw, key, video_id = pending_video
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with vidgate.client.AsyncClient(gw.base_url, key) as client:
        with capture_logs() as logs, pytest.raises(vidgate.client.ConflictError) as raised:
            await client.videos.download(video_id, downloads)
        with capture_logs() as remix_logs, pytest.raises(vidgate.client.ConflictError):
            await client.videos.remix(video_id, prompt="again")
    assert raised.value.code == "not_ready"
    assert [e["status"] for e in requests_to(logs, CONTENT)] == [409]
    assert [e["status"] for e in requests_to(remix_logs, REMIX)] == [409]
    assert list(downloads.iterdir()) == []  # no file left behind for an answer that was not the video


async def test_a_head_of_the_content_says_the_same(pending_video) -> None:
    gw, key, video_id = pending_video
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {key}"}) as c:
        r = await c.head(f"/v1/videos/{video_id}/content")
    assert r.status_code == 409 and r.headers["x-should-retry"] == "false"


async def test_every_409_that_cannot_change_says_so(pending_video) -> None:
    """The same rule for the other final conflicts: a reused Idempotency-Key and a finished task's
    cancel are raised by the SDK after one request."""
    gw, key, video_id = pending_video
    async with openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=key) as client:
        first = {"prompt": "a red kite", "seconds": "4"}
        await client.videos.create(**first, extra_headers={"Idempotency-Key": "k-1"})
        # This SDK has no videos.cancel: its generic POST, with the same retry rules.
        await client.post(f"/videos/{video_id}/cancel", cast_to=object)
        with capture_logs() as logs:
            with pytest.raises(openai.ConflictError) as reused:
                await client.videos.create(prompt="another", extra_headers={"Idempotency-Key": "k-1"})
            with pytest.raises(openai.ConflictError) as finished:
                await client.post(f"/videos/{video_id}/cancel", cast_to=object)
    assert (reused.value.code, finished.value.code) == ("idempotency_key_reused", "task_finished")
    statuses = [e["status"] for e in logs if e["event"] == "request"]
    assert statuses == [409, 409], statuses
