"""The `openrouter` kind: its model table, what a request becomes on OpenRouter's video API, what its
jobs become, the content download, and the OpenRouter fake it is tested against (driven through
`httpx.ASGITransport`, on a hand-driven clock)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.providers.adapter_support import (
    Clock,
    adapter_on,
    asgi,
    fake_upstream,
    input_image,
    submit_request,
)
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.capabilities import AudioSupport
from vidgate.domain.routing import ChannelTraits
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    ResultExpired,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
)
from vidgate.providers.openrouter import OpenRouterProvider, create_refusal, job_status
from vidgate.providers.registry import ChannelConfigError, check_channels, profile_for
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.redaction import REDACTED
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio

KEY = "sk-or-v1-fake-0123456789"
VEO = "google/veo-3.1"
SORA_PRO = "openai/sora-2-pro"


def channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "openrouter",
        "kind": "openrouter",
        "base_url": "http://openrouter.test/api/v1",
        "api_key": KEY,
        "models": [VEO, SORA_PRO, "acme/new-video"],
        **overrides,
    }
    return ChannelSettings(**values)


def request(model: str = VEO, **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a lighthouse", "seconds": 8, **fields})


def image(index: int, source: str = "https://img.example/a.png") -> InputImage:
    return input_image(index, source)


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[OpenRouterProvider]:
    return adapter_on(OpenRouterProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(KEY, clock, "http://storage.test")


def test_the_table_knows_veo_and_sora_and_the_channel_describes_the_rest() -> None:
    check_channels(Settings(channels=[channel()]))
    profile = profile_for(channel())
    assert profile.traits == ChannelTraits()  # no cancel, no lookup, no idempotency key
    veo = profile.capabilities[VEO]
    assert veo.audio is AudioSupport.OPTIONAL and veo.makes_audio(None) and veo.last_frame and veo.seed
    assert veo.durations == frozenset({4, 6, 8}) and veo.durations_with["1080p"] == frozenset({8})
    sora = profile.capabilities[SORA_PRO]
    assert sora.audio is AudioSupport.ALWAYS and "1024x1792" in sora.sizes and not sora.seed
    other = profile.capabilities["acme/new-video"]
    assert not other.seed and not other.last_frame and other.audio is AudioSupport.NONE and other.first_frame
    told = channel(capabilities={"acme/new-video": {"seed": True, "last_frame": True, "audio": "optional"}})
    check_channels(Settings(channels=[told]))  # the body carries these: the operator may say so
    assert profile_for(told).capabilities["acme/new-video"].seed
    nowhere = channel(capabilities={"acme/new-video": {"negative_prompt": True}})
    with pytest.raises(ChannelConfigError, match="model 'acme/new-video' set negative_prompt"):
        check_channels(Settings(channels=[nowhere]))


async def test_a_create_carries_openrouters_fields(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(
            202, json={"id": "job-1", "polling_url": "/api/v1/videos/job-1", "status": "pending"}
        )

    provider_options = {"options": {"google-vertex": {"parameters": {"personGeneration": "allow"}}}}
    async with provider_on(
        httpx.MockTransport(handler), tmp_path, options={"provider": provider_options}
    ) as provider:
        frames = request(images=(image(0),), last_frame=image(1, "https://img.example/z.png"),
                         passthrough={"seed": 5}, generate_audio=False)  # fmt: skip
        job = await provider.submit(frames, ctx(tmp_path))
        refs = await provider.create_body(request(images=(image(0), image(1, "https://img.example/b.png"))))
        tall = await provider.create_body(request(SORA_PRO, size=(1024, 1792), seconds=12))
    body = httpx.Response(200, content=seen[0].content).json()
    assert seen[0].url.path == "/api/v1/videos" and seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert body == {
        "model": VEO,
        "prompt": "a lighthouse",
        "duration": 8,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "seed": 5,
        "generate_audio": False,
        "frame_images": [
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/a.png"},
                "frame_type": "first_frame",
            },
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/z.png"},
                "frame_type": "last_frame",
            },
        ],
        "provider": provider_options,
    }
    assert job.memo == {"polling_url": "http://openrouter.test/api/v1/videos/job-1"}
    assert [r["image_url"]["url"] for r in refs["input_references"]] == [
        "https://img.example/a.png",
        "https://img.example/b.png",
    ]
    assert "frame_images" not in refs and refs["generate_audio"] is True
    assert tall["size"] == "1024x1792" and "resolution" not in tall and "generate_audio" not in tall


async def test_a_polling_url_off_the_channels_origin_is_not_followed(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        if req.method == "POST":
            return httpx.Response(
                202, json={"id": "job-2", "polling_url": "https://evil.example/api/v1/videos/job-2"}
            )
        return httpx.Response(200, json={"id": "job-2", "status": "in_progress"})

    async with provider_on(httpx.MockTransport(handler), tmp_path) as provider:
        job = await provider.submit(request(), ctx(tmp_path))
        status = await provider.poll(job, ctx(tmp_path))
    assert job.memo == {} and status.state is UpstreamState.RUNNING
    assert seen[-1] == "http://openrouter.test/api/v1/videos/job-2"


async def test_a_job_runs_to_its_video_downloaded_from_the_content_endpoint(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        job = await provider.submit(request(prompt="a fox #queue=2 #expired_link=1"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 5
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.RUNNING
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        assert done.state is UpstreamState.SUCCEEDED
        assert done.result_url == f"http://openrouter.test/api/v1/videos/{job.upstream_id}/content?index=0"
        with pytest.raises(ResultExpired):
            await provider.fetch(job, done, tmp_path, ctx(tmp_path))
        again = await provider.poll(job, ctx(tmp_path))
        result = await provider.fetch(job, again, tmp_path, ctx(tmp_path))
    assert result.video.exists() and result.video.read_bytes()[4:8] == b"ftyp"
    [made] = fake.journal.creates()
    assert (
        made.dialect == "openrouter" and made.job == job.upstream_id and made.detail["generate_audio"] is True
    )
    assert [e.status for e in fake.journal.entries("download") if e.dialect == "files"] == [403, 200]


async def test_refusals_and_endings(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    errors: list[ProviderError] = []
    async with provider_on(asgi(fake), tmp_path) as provider:
        prompts = ("a #moderation", "a #payment_required=1", "a #429=1", "a #5xx=1", "a #accept_then_5xx=1")
        for prompt in prompts:
            with pytest.raises(ProviderError) as caught:
                await provider.submit(request(prompt=prompt), ctx(tmp_path))
            errors.append(caught.value)
        with pytest.raises(ProviderError) as out_of_set:
            await provider.submit(request(seconds=5), ctx(tmp_path))
        jobs = [
            await provider.submit(request(prompt=p), ctx(tmp_path))
            for p in ("b #moderation=job", "b #fail=expired", "b #fail=cancelled", "b #fail=boom")
        ]
        clock.now += 11
        endings = [await provider.poll(j, ctx(tmp_path)) for j in jobs]
        with pytest.raises(ProviderError) as lost:
            await provider.poll(UpstreamJob("job-nothing"), ctx(tmp_path))
    flagged, credit, limited, busy, dropped = errors
    assert (flagged.code, flagged.retryable) == ("content_policy", False)
    assert (credit.code, credit.retryable) == ("upstream_quota_exhausted", True)
    assert limited.code == "upstream_rate_limited"
    assert isinstance(busy, UpstreamOutcomeUnknown) and isinstance(dropped, UpstreamOutcomeUnknown)
    assert (out_of_set.value.code, out_of_set.value.retryable) == ("upstream_refused", False)
    assert "duration" in out_of_set.value.message
    assert [(e.error_code, e.retryable) for e in endings] == [
        ("content_policy", False),
        ("upstream_expired", True),
        ("upstream_cancelled", False),
        ("upstream_failed", False),
    ]
    assert lost.value.code == "upstream_job_lost"


def test_statuses_and_error_envelopes_are_read() -> None:
    assert job_status({"status": "warming"}, poll_after=None) is None
    synonym = job_status({"status": "SUCCEEDED"}, poll_after=None)
    assert synonym is not None and synonym.state is UpstreamState.SUCCEEDED
    request_ = httpx.Request("POST", "http://openrouter.test/")
    missing = create_refusal(
        httpx.Response(404, json={"error": {"code": 404, "message": "No endpoints"}}, request=request_)
    )
    assert (missing.code, missing.retryable) == ("upstream_auth_failed", True)
    forbidden = create_refusal(
        httpx.Response(403, json={"error": {"code": 403, "message": "Key disabled"}}, request=request_)
    )
    assert forbidden.code == "upstream_auth_failed"
    gateway = create_refusal(httpx.Response(502, text="<html>bad gateway</html>", request=request_))
    assert isinstance(gateway, UpstreamOutcomeUnknown)


async def test_probe_reads_the_keys_record(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        assert (await provider.probe()).ok
    async with provider_on(asgi(fake), tmp_path, api_key="sk-or-v1-wrong-000000") as wrong:
        assert not (await wrong.probe()).ok
    transport = asgi(fake)
    async with httpx.AsyncClient(transport=transport, base_url="http://openrouter.test") as client:
        listing = await client.get("/api/v1/videos/models")  # public, as OpenRouter's is
    assert {m["id"] for m in listing.json()["data"]} >= {VEO, SORA_PRO}


async def test_a_key_echoed_back_is_scrubbed(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        guarded = SecretScrubbing(provider, provider.channel.redactor)
        with pytest.raises(ProviderError) as echoed:
            await guarded.submit(request(prompt="g #echo_key"), ctx(tmp_path))
        job = await guarded.submit(request(prompt="g #echo_key=job"), ctx(tmp_path))
        clock.now += 11
        failed = await guarded.poll(job, ctx(tmp_path))
    for message in (echoed.value.message, failed.error_message or ""):
        assert KEY not in message and KEY.upper() not in message and REDACTED in message
