"""An `openai` channel in front of LiteLLM, through the fake upstream's LiteLLM quirks over loopback.

- LiteLLM's proxy ignores `?variant=thumbnail` and answers with the whole MP4: the thumbnail download
  must stop at the headers (or the first bytes) instead of reading, and holding, the video again;
- LiteLLM's `GET /v1/videos` answers 400 (a JSON error): after an unknown outcome the channel cannot be
  asked for the job, so it is sent nothing more.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.byte_counting import ONE_READ, CountingTransport
from tests.conftest import Gateway
from tests.contract.conftest import FakeServer, gateway_options, serve_fake, upstream_channel
from tests.contract.test_upstream_contract import create, settled
from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.domain.tasks import WatermarkMode
from vidgate.net.fetch import SafeFetcher
from vidgate.net.policy import FetchPolicy
from vidgate.providers.base import ProviderError, SubmitRequest
from vidgate.providers.registry import ProviderDeps, ProviderRegistry
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore
from vidgate.testing.server import bind_loopback, serving

pytestmark = pytest.mark.anyio

# The fake's clips at this scale are a few hundred KiB (several reads): reading the whole video shows.
LARGE_CLIPS = 2
LIST_400 = {"X-Fake": "list_400"}


def prompt(directives: str = "") -> str:
    return f"a lantern at dusk {uuid.uuid4().hex[:8]} {directives}".strip()


@asynccontextmanager
async def gateway_counting(
    make_settings: Any, transport: CountingTransport, options: dict[str, Any]
) -> AsyncIterator[Gateway]:
    """A gateway (as `start_gateway` serves one, from `gateway_options`) whose upstream requests go
    through `transport`."""
    settings_options = {k: v for k, v in options.items() if k not in ("run_worker", "resolver")}
    sock = bind_loopback()
    settings = make_settings(port=sock.getsockname()[1], **settings_options)
    app = create_app(settings, run_worker=True, resolver=options["resolver"], upstream_transport=transport)
    async with serving(app, sock) as base_url:
        yield Gateway(base_url, app, settings)


@pytest.mark.parametrize("served_as", ["", "=octet"], ids=["labelled_video", "labelled_octet_stream"])
async def test_a_thumbnail_that_is_the_whole_video_is_not_downloaded(
    make_settings: Any, served_as: str
) -> None:
    """LiteLLM labels it video/mp4 (stopped at the headers); a proxy that relabels it
    application/octet-stream is stopped at the first bytes. Either way the task completes with our own
    thumbnail, and the thumbnail request read at most one socket read of the video."""
    text = prompt(f"#thumbnail_is_video{served_as}")
    transport = CountingTransport()
    async with serve_fake(clip_scale=LARGE_CLIPS) as upstream:
        options = gateway_options(upstream_channel("openai", upstream))
        async with gateway_counting(make_settings, transport, options) as gw:
            async with gw.client(await gw.new_key()) as client:
                final = await settled(gw, client, await create(client, text))
                assert final["status"] == "completed", final
                thumb = await client.get(final["thumbnail_url"])
    assert thumb.status_code == 200
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.format == "WEBP" and image.width > 0  # ours, made from the video

    [job] = upstream.fake.journal.creates(text)
    downloads = {e.detail["variant"]: e.detail["bytes"] for e in upstream.fake.journal.entries("download")}
    video_bytes = downloads["video"]
    assert downloads["thumbnail"] == video_bytes > 4 * ONE_READ  # the fake answered with the video
    thumbnail_read = transport.read[f"/v1/videos/{job.job}/content?variant=thumbnail"]
    assert transport.read[f"/v1/videos/{job.job}/content?variant=video"] == video_bytes
    assert thumbnail_read <= ONE_READ, (thumbnail_read, video_bytes)


async def test_find_jobs_on_a_list_that_answers_400_is_a_final_error(tmp_path: Path) -> None:
    """Final (not retryable) is what tells the worker "this channel cannot be asked"."""
    async with serve_fake() as upstream:
        channel = upstream_channel("openai", upstream, headers=LIST_400)
        settings = Settings(data_dir=tmp_path, channels=[channel])
        blobs = LocalBlobStore(tmp_path / "media")
        registry = ProviderRegistry(ProviderDeps(settings, blobs, SafeFetcher(FetchPolicy()), UpstreamHttp()))
        request = SubmitRequest("t", "t-0", "sora-2", "p", 720, 1280, 4, WatermarkMode.PREFER_CLEAN, False)
        try:
            with pytest.raises(ProviderError) as caught:
                await registry("up").find_jobs(request)
        finally:
            await registry.aclose()
    assert not caught.value.retryable, caught.value.message
    assert caught.value.code == "upstream_refused" and caught.value.message.startswith("lookup: ")
    assert [(e.op, e.status) for e in upstream.fake.journal] == [("list", 400)]


async def test_after_an_unknown_outcome_a_list_that_answers_400_gets_nothing_sent_again(
    start_gateway: Any, upstream: FakeServer
) -> None:
    """The create makes its job, then a proxy's 502 loses the answer. The list cannot be read (400), so
    the channel cannot be asked: no second create (no second bill), and the task fails at its deadline
    with `upstream_outcome_unknown`."""
    text = prompt("#accept_then_5xx=1")
    channel = upstream_channel(
        "openai", upstream, headers=LIST_400, lookup_window_seconds=2, request_timeout_seconds=1
    )
    async with start_gateway(**gateway_options(channel, task_deadline_seconds=4)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text), timeout=20)
    assert final["status"] == "failed" and final["error"]["code"] == "upstream_outcome_unknown", final
    assert len(upstream.fake.journal.creates(text)) == 1
    assert upstream.ops(text) == ["create"]
    assert ("list", 400) in [(e.op, e.status) for e in upstream.fake.journal]  # it was asked, once at least
