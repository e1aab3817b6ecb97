"""The `unified` kind (providers/unified.py) against a scripted relay (`httpx.MockTransport` through
`UpstreamHttp`): the relay dialect it sends, and how each shape of answer relays use is read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.providers.adapter_support import MP4, Handler, Recorder, StubFetcher
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.tasks import WatermarkMode
from vidgate.net.fetch import FetchFailed
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    ResultExpired,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.unified import UnifiedRelayProvider
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore

pytestmark = pytest.mark.anyio
KEY = "sk-relay-test"


def answer(status: int = 200, body: Any = None) -> Handler:
    return lambda _: httpx.Response(status, json=body)


def request(**fields: Any) -> SubmitRequest:
    values: dict[str, Any] = {
        "task_id": "01task",
        "idempotency_key": "01task-0",
        "model": "sora-2",
        "prompt": "a red fox in the snow",
        "width": 720,
        "height": 1280,
        "seconds": 10,
        "watermark_mode": WatermarkMode.PREFER_CLEAN,
        "private": False,
        **fields,
    }
    return SubmitRequest(**values)


@asynccontextmanager
async def relay(
    tmp_path: Path, handler: Handler, fetcher: StubFetcher | None = None, **channel: Any
) -> AsyncIterator[tuple[UnifiedRelayProvider, Recorder]]:
    settings = ChannelSettings(
        **{
            "name": "relay",
            "kind": "unified",
            "base_url": "http://relay.test/v1",
            "api_key": KEY,
            "models": ["sora-2"],
            **channel,
        }
    )
    server = Recorder(handler)
    deps = ProviderDeps(
        Settings(data_dir=tmp_path, channels=[settings]),
        LocalBlobStore(tmp_path / "media"),
        fetcher or StubFetcher(),  # type: ignore[arg-type]
        UpstreamHttp(httpx.MockTransport(server)),
    )
    adapter = UnifiedRelayProvider(settings, deps)
    try:
        yield adapter, server
    finally:
        await adapter.aclose()


def job(forced_clean: bool = False) -> UpstreamJob:
    return UpstreamJob("sora-2:task_1", memo={"forced_clean": forced_clean})


# create ---------------------------------------------------------------------------------------


async def test_a_create_speaks_the_relay_dialect_with_the_idempotency_key(tmp_path: Path) -> None:
    async with relay(tmp_path, answer(200, {"id": "sora-2:task_1", "status": "pending"})) as (
        adapter,
        server,
    ):
        image = InputImage(0, "https://img.test/fox.png", "inputs/01task/0.png", 300, 200)
        made = await adapter.submit(
            request(images=(image,), extras={"style": "anime"}, private=True), ctx(tmp_path)
        )
    assert made == UpstreamJob("sora-2:task_1", memo={"forced_clean": False})
    [sent] = server.requests
    assert (sent.method, str(sent.url)) == ("POST", "http://relay.test/v1/video/create")
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.headers["idempotency-key"] == "01task-0"
    assert json.loads(sent.content) == {
        "model": "sora-2",
        "prompt": "a red fox in the snow",
        "images": ["https://img.test/fox.png"],  # the client's own URL: the relay fetches it
        "orientation": "portrait",
        "size": "small",
        "duration": 10,
        "watermark": True,
        "private": True,
        "style": "anime",
        "resolution": "720p",  # today's model options, by the names relays take
        "aspect_ratio": "9:16",
    }


async def test_a_large_landscape_clean_only_create_says_so_and_remembers_it(tmp_path: Path) -> None:
    async with relay(tmp_path, answer(200, {"task_id": 12345})) as (adapter, server):
        made = await adapter.submit(
            request(width=1920, height=1080, watermark_mode=WatermarkMode.REQUIRE_CLEAN), ctx(tmp_path)
        )
    assert made == UpstreamJob("12345", memo={"forced_clean": True})  # a numeric id becomes text
    body = json.loads(server.requests[0].content)
    assert (body["orientation"], body["size"], body["watermark"]) == ("landscape", "large", False)


async def test_a_channel_with_its_own_paths_and_sizes_as_wxh(tmp_path: Path) -> None:
    options = {"create_path": "v2/generate", "size_format": "wxh"}
    async with relay(tmp_path, answer(200, {"id": "t"}), options=options) as (adapter, server):
        await adapter.submit(request(), ctx(tmp_path))
    assert server.requests[0].url.path == "/v1/v2/generate"
    assert json.loads(server.requests[0].content)["size"] == "720x1280"


@pytest.mark.parametrize(
    ("body", "code", "retryable"),
    [
        ({"code": 429, "msg": "too many requests", "data": None}, "upstream_rate_limited", True),
        ({"code": 400, "msg": "bad duration", "data": None}, "upstream_refused", False),
        ({"code": "insufficient_quota", "msg": "top up", "data": None}, "insufficient_quota", False),
        ({"code": 400, "msg": "prompt violates our content policy", "data": None}, "content_policy", False),
        ({"error": "model not found"}, "upstream_refused", False),
    ],
    ids=["429", "400", "named-code", "moderation", "error-string"],
)
async def test_an_error_inside_an_http_200_is_a_refusal(
    tmp_path: Path, body: Any, code: str, retryable: bool
) -> None:
    async with relay(tmp_path, answer(200, body)) as (adapter, _):
        with pytest.raises(ProviderError) as raised:
            await adapter.submit(request(), ctx(tmp_path))
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)
    assert (raised.value.code, raised.value.retryable) == (code, retryable)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"code": 500, "msg": "upstream busy", "data": None}),
        (200, {"code": "503", "msg": "later", "data": None}),
        (200, {"status": "pending"}),
        (524, None),
    ],
    ids=["envelope-500", "envelope-503-as-text", "no-id", "proxy-524"],
)
async def test_a_create_answer_that_proves_nothing_is_an_unknown_outcome(
    tmp_path: Path, status: int, body: Any
) -> None:
    async with relay(tmp_path, answer(status, body)) as (adapter, _):
        with pytest.raises(UpstreamOutcomeUnknown):
            await adapter.submit(request(), ctx(tmp_path))


# poll -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "queued"}, UpstreamStatus(UpstreamState.QUEUED)),
        ({"status": "processing", "progress": "35%"}, UpstreamStatus(UpstreamState.RUNNING, progress=35)),
        (
            {
                "code": 0,
                "msg": "ok",
                "data": {"state": "running", "detail": {"pending_info": {"progress_pct": 0.5}}},
            },
            UpstreamStatus(UpstreamState.RUNNING, progress=50),
        ),
        ({"status": "mystery"}, UpstreamStatus(UpstreamState.RUNNING)),
        (
            {"status": "completed", "video_url": "https://cdn.test/a.mp4"},
            UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url="https://cdn.test/a.mp4"),
        ),
        (
            {"successFlag": 1, "response": {"resultUrls": ["https://cdn.test/k.mp4"]}},
            UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url="https://cdn.test/k.mp4"),
        ),
        (
            {"status": "success", "detail": {"url": "https://cdn.test/d.mp4", "watermarked": True}},
            UpstreamStatus(
                UpstreamState.SUCCEEDED, progress=100, result_url="https://cdn.test/d.mp4", watermarked=True
            ),
        ),
        (
            {"status": "completed"},
            UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="The channel reported success but gave no video URL (filtered upstream?).",
            ),
        ),
        (
            {"status": "failed", "error": {"code": "system_busy", "message": "try later"}},
            UpstreamStatus(
                UpstreamState.FAILED, error_code="system_busy", error_message="try later", retryable=True
            ),
        ),
        (
            {"status": "failed", "fail_reason": "nsfw content detected"},
            UpstreamStatus(
                UpstreamState.FAILED, error_code="content_policy", error_message="nsfw content detected"
            ),
        ),
        (
            {"status": "failed", "error": {"code": "watermark_removal_failed", "message": "marked"}},
            UpstreamStatus(
                UpstreamState.FAILED,
                error_code="watermark_removal_failed",
                error_message="marked",
                retryable=True,
            ),
        ),
        (
            {"status": "cancelled"},
            UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_failed",
                error_message="the channel reported a failure without a reason",
            ),
        ),
    ],
    ids=[
        "queued",
        "running-percent",
        "envelope-fraction",
        "unknown-word",
        "video-url",
        "kie-flags",
        "detail-watermarked",
        "success-without-url",
        "transient",
        "moderation",
        "watermark-removal",
        "cancelled",
    ],
)
async def test_a_polled_job_is_read_into_its_state(
    tmp_path: Path, body: Any, expected: UpstreamStatus
) -> None:
    async with relay(tmp_path, answer(200, body)) as (adapter, server):
        status = await adapter.poll(job(), ctx(tmp_path))
    assert status == expected
    [sent] = server.requests
    assert sent.url.path == "/v1/video/query" and sent.url.params["id"] == "sora-2:task_1"


@pytest.mark.parametrize(("forced", "clean"), [(True, False), (False, None)])
async def test_a_relay_that_is_clean_when_forced_vouches_only_for_clean_only_jobs(
    tmp_path: Path, forced: bool, clean: bool | None
) -> None:
    done = answer(200, {"status": "completed", "url": "https://cdn.test/a.mp4"})
    async with relay(tmp_path, done, options={"clean_when_forced": True}) as (adapter, _):
        status = await adapter.poll(job(forced_clean=forced), ctx(tmp_path))
    assert status.watermarked is clean  # unknown stays unknown


@pytest.mark.parametrize(
    ("body", "code", "retryable"),
    [
        ({"code": 404, "msg": "task not found", "data": None}, "upstream_job_lost", False),
        ({"code": 500, "msg": "db down", "data": None}, "upstream_unavailable", True),
    ],
)
async def test_an_error_inside_a_polls_http_200_is_read(
    tmp_path: Path, body: Any, code: str, retryable: bool
) -> None:
    async with relay(tmp_path, answer(200, body)) as (adapter, _):
        with pytest.raises(ProviderError) as raised:
            await adapter.poll(job(), ctx(tmp_path))
    assert (raised.value.code, raised.value.retryable) == (code, retryable)


# result ---------------------------------------------------------------------------------------


def finished(url: str) -> UpstreamStatus:
    return UpstreamStatus(UpstreamState.SUCCEEDED, result_url=url)


async def test_a_link_on_someone_elses_host_goes_through_the_ssrf_safe_fetcher(tmp_path: Path) -> None:
    fetcher = StubFetcher()
    async with relay(tmp_path, answer(500, None), fetcher) as (adapter, server):
        result = await adapter.fetch(job(), finished("https://cdn.test/a.mp4"), tmp_path, ctx(tmp_path))
    assert fetcher.urls == ["https://cdn.test/a.mp4"] and server.requests == []  # never with our key
    assert result.video.read_bytes() == MP4


async def test_a_link_on_the_channels_own_origin_is_downloaded_with_its_client(tmp_path: Path) -> None:
    fetcher = StubFetcher()
    own = lambda _: httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"})  # noqa: E731
    async with relay(tmp_path, own, fetcher) as (adapter, server):
        result = await adapter.fetch(
            job(), finished("http://relay.test/files/a.mp4?sig=x"), tmp_path, ctx(tmp_path)
        )
    assert fetcher.urls == [] and result.video.read_bytes() == MP4
    assert str(server.requests[0].url) == "http://relay.test/files/a.mp4?sig=x"


@pytest.mark.parametrize(
    ("error", "expected", "retryable"),
    [
        (FetchFailed("HTTP 403", http_status=403), "result_link_expired", True),
        (FetchFailed("HTTP 500", http_status=500), "result_download_failed", True),
    ],
    ids=["expired", "server-error"],
)
async def test_a_cdn_link_that_fails_says_whether_a_fresh_link_is_needed(
    tmp_path: Path, error: Exception, expected: str, retryable: bool
) -> None:
    async with relay(tmp_path, answer(500, None), StubFetcher(error)) as (adapter, _):
        with pytest.raises(ProviderError) as raised:
            await adapter.fetch(job(), finished("https://cdn.test/a.mp4"), tmp_path, ctx(tmp_path))
    assert (raised.value.code, raised.value.retryable) == (expected, retryable)
    assert isinstance(raised.value, ResultExpired) == (expected == "result_link_expired")


# what the dialect cannot do ---------------------------------------------------------------------


async def test_the_dialect_neither_cancels_nor_lists_jobs_and_sends_nothing_for_them(tmp_path: Path) -> None:
    async with relay(tmp_path, answer(500, None)) as (adapter, server):
        await adapter.cancel(job())
        assert await adapter.find_jobs(request()) == ()
    assert server.requests == []
    assert not UnifiedRelayProvider.traits.can_cancel and not UnifiedRelayProvider.traits.can_find_jobs


@pytest.mark.parametrize(("status", "ok"), [(404, True), (401, False)])
async def test_a_probe_asks_for_a_task_that_does_not_exist(tmp_path: Path, status: int, ok: bool) -> None:
    async with relay(tmp_path, answer(status, {"code": status, "msg": "no"})) as (adapter, server):
        result = await adapter.probe()
    assert result.ok is ok
    assert server.requests[0].url.params["id"].startswith("vidgate-probe-")
