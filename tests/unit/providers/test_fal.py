"""The `fal` kind: what a request becomes on fal's queue, what the queue's answers (status, then the
result, where fal keeps a request's errors) become, cancel, and the fal fake it is tested against (driven
through `httpx.ASGITransport`, on a hand-driven clock)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aggregator_presets import FAL_HAILUO, FAL_KLING_I2V, FAL_MODELS, FAL_SEEDANCE, FAL_VEO, FAL_WAN
from tests.unit.providers.adapter_support import (
    Clock,
    StubFetcher,
    adapter_on,
    asgi,
    fake_upstream,
    input_image,
    submit_request,
)
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.routing import ChannelTraits
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
)
from vidgate.providers.fal import FalProvider, app_root, create_refusal, read_result_error, read_status
from vidgate.providers.registry import check_channels, profile_for
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.redaction import REDACTED
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio

KEY = "fal-key-0123456789abcdef"
MODELS = [FAL_VEO, FAL_KLING_I2V, FAL_WAN, FAL_SEEDANCE, FAL_HAILUO]


def channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "fal",
        "kind": "fal",
        "base_url": "http://fal.test/fal",
        "api_key": KEY,
        "models": MODELS,
        "options": {"models": {m: FAL_MODELS[m] for m in MODELS}},
        **overrides,
    }
    return ChannelSettings(**values)


def request(model: str = FAL_VEO, **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a lighthouse", "seconds": 8, **fields})


def image(index: int, source: str = "https://img.example/a.png") -> InputImage:
    return input_image(index, source)


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[FalProvider]:
    return adapter_on(FalProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(KEY, clock, "http://cdn.fal.test")


# Declarations -------------------------------------------------------------------------------------


def test_the_kind_cancels_but_cannot_look_up_and_starts_with_its_mappings() -> None:
    check_channels(Settings(channels=[channel()]))
    profile = profile_for(channel())
    assert profile.traits == ChannelTraits(can_cancel=True)
    assert profile.capabilities[FAL_VEO].seed and profile.capabilities[FAL_HAILUO].needs_first_frame
    assert app_root("fal-ai/kling-video/v2.5-turbo/pro/image-to-video") == "fal-ai/kling-video"
    assert app_root("workflows/me/flow/run") == "workflows/me/flow"


# Create ---------------------------------------------------------------------------------------------


async def test_a_create_posts_the_models_input_with_fals_key_scheme(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"request_id": "r-1", "status": "IN_QUEUE"})

    async with provider_on(httpx.MockTransport(handler), tmp_path) as provider:
        req = request(seconds=6, passthrough={"seed": 9, "negative_prompt": "rain"}, generate_audio=False)
        job = await provider.submit(req, ctx(tmp_path))
    [sent] = seen
    assert sent.url.path == "/fal/fal-ai/veo3.1" and sent.headers["authorization"] == f"Key {KEY}"
    assert httpx.Response(200, content=sent.content).json() == {
        "prompt": "a lighthouse",
        "duration": "6s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 9,
        "negative_prompt": "rain",
        "generate_audio": False,
    }
    # No URLs in the answer: built as the SDK builds them, from the app (not the endpoint path).
    assert (
        job.upstream_id == "r-1"
        and job.memo["status_url"] == "http://fal.test/fal/fal-ai/veo3.1/requests/r-1/status"
    )


async def test_urls_off_the_channels_origin_are_never_used(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        if req.method == "POST":
            evil = "https://evil.example/fal/fal-ai/veo3.1/requests/r-2"
            return httpx.Response(
                200, json={"request_id": "r-2", "status_url": evil + "/status", "response_url": evil}
            )
        return httpx.Response(202, json={"status": "IN_PROGRESS"})

    async with provider_on(httpx.MockTransport(handler), tmp_path) as provider:
        job = await provider.submit(request(), ctx(tmp_path))
        status = await provider.poll(job, ctx(tmp_path))
    assert status.state is UpstreamState.RUNNING
    assert seen[-1] == "http://fal.test/fal/fal-ai/veo3.1/requests/r-2/status"


# Against the fake -----------------------------------------------------------------------------------


async def test_a_request_runs_to_its_video_through_status_then_result(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    fetcher = StubFetcher()
    async with provider_on(asgi(fake), tmp_path, fetcher) as provider:
        job = await provider.submit(request(prompt="a fox #queue=2"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 5
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.RUNNING
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        assert done.state is UpstreamState.SUCCEEDED and done.result_url is not None
        result = await provider.fetch(job, done, tmp_path, ctx(tmp_path))
    assert result.video.exists() and fetcher.urls == [done.result_url]
    assert done.result_url.startswith("http://cdn.fal.test/_fake/files/")
    [made] = fake.journal.creates()
    assert made.dialect == "fal" and made.job == job.upstream_id and made.detail["model"] == FAL_VEO
    assert made.detail["duration"] == "8s" and made.detail["generate_audio"] is True
    assert [(e.op, e.status) for e in fake.journal if e.op in ("poll", "result")] == [
        ("poll", 202),
        ("poll", 202),
        ("poll", 200),
        ("result", 200),
    ]


async def test_images_last_frames_and_resolution_words_reach_the_fake(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        kling = request(
            FAL_KLING_I2V,
            seconds=5,
            size=(1920, 1080),
            images=(image(0),),
            last_frame=image(1, "https://img.example/z.png"),
        )
        hailuo = request(FAL_HAILUO, seconds=10, images=(image(0),), enhance_prompt=True)
        jobs = [await provider.submit(r, ctx(tmp_path)) for r in (kling, hailuo)]
        clock.now += 11
        finished = [await provider.poll(j, ctx(tmp_path)) for j in jobs]
    assert [s.state for s in finished] == [UpstreamState.SUCCEEDED] * 2
    first, second = fake.journal.creates()
    assert first.detail["tail_image_url"] == "https://img.example/z.png" and first.detail["cfg_scale"] == 0.5
    assert second.detail["resolution"] == "768P" and second.detail["prompt_optimizer"] is True
    assert first.detail["problems"] == [] == second.detail["problems"]


async def test_an_input_the_model_refuses_is_a_request_made_whose_result_is_the_422(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    """The queue takes any input; the model checks it when it runs: a wrong mapping (numbers where the
    model takes "8s") is paid for, and reported by name."""
    wrong = {**FAL_MODELS[FAL_VEO], "duration_type": "number", "duration_suffix": ""}
    async with provider_on(
        asgi(fake), tmp_path, options={"models": {**FAL_MODELS, FAL_VEO: wrong}}
    ) as provider:
        job = await provider.submit(request(), ctx(tmp_path))
        clock.now += 11
        status = await provider.poll(job, ctx(tmp_path))
    assert (status.state, status.error_code, status.retryable) == (
        UpstreamState.FAILED,
        "invalid_input",
        False,
    )
    assert status.error_message is not None and "duration" in status.error_message
    assert len(fake.journal.creates()) == 1


async def test_failures_kept_in_the_result_are_read(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        with pytest.raises(ProviderError) as refused:
            await provider.submit(request(prompt="a fox #moderation"), ctx(tmp_path))
        prompts = ["a fox #moderation=job", "a fox #fail=request_timeout", "a fox #fail=nsfw_output",
                   "a fox #fail=runner_disconnected #error_in_status"]  # fmt: skip
        jobs = [await provider.submit(request(prompt=p), ctx(tmp_path)) for p in prompts]
        clock.now += 11
        ended = [await provider.poll(j, ctx(tmp_path)) for j in jobs]
    assert refused.value.code == "content_policy" and not refused.value.retryable
    assert [(s.error_code, s.retryable) for s in ended] == [
        ("content_policy", False),
        ("request_timeout", True),
        ("content_policy", False),
        ("runner_disconnected", True),
    ]
    assert fake.journal.count("result") == 3  # the error in the status spared the last one its result


async def test_create_faults_and_refusals_map_as_they_should(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        errors = []
        for prompt in (
            "a #429=1 #retry_after=2",
            "a #5xx=1",
            "a #accept_then_5xx=1",
            "a #exhausted_balance=1",
        ):
            with pytest.raises(ProviderError) as caught:
                await provider.submit(request(prompt=prompt), ctx(tmp_path))
            errors.append(caught.value)
    limited, busy, lost, broke = errors
    assert (limited.code, limited.retryable, limited.retry_after) == ("upstream_rate_limited", True, 2)
    assert isinstance(busy, UpstreamOutcomeUnknown) and isinstance(lost, UpstreamOutcomeUnknown)
    assert (broke.code, broke.retryable) == ("upstream_quota_exhausted", True)
    assert [e.op for e in fake.journal] == ["rejected_create", "rejected_create", "create", "rejected_create"]
    async with provider_on(asgi(fake), tmp_path, api_key="fal-wrong-key-000000") as wrong:
        with pytest.raises(ProviderError) as refused:
            await wrong.submit(request(), ctx(tmp_path))
    assert refused.value.code == "upstream_auth_failed"
    unknown = {"fal-ai/veo9": FAL_MODELS[FAL_VEO]}
    async with provider_on(
        asgi(fake), tmp_path, models=["fal-ai/veo9"], options={"models": unknown}
    ) as other:
        with pytest.raises(ProviderError) as missing:
            await other.submit(request("fal-ai/veo9"), ctx(tmp_path))
    assert (missing.value.code, missing.value.retryable) == ("upstream_auth_failed", True)


def fal_answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    content = {"content": body} if isinstance(body, str) else {"json": body}
    return httpx.Response(
        status, headers=headers, request=httpx.Request("GET", "http://fal.test/"), **content
    )


def test_what_the_queue_and_the_result_say_is_read() -> None:
    assert (
        read_status({"status": "IN_QUEUE", "queue_position": 3}, poll_after=1).state is UpstreamState.QUEUED
    )  # type: ignore[union-attr]
    assert read_status({"status": "WARMING_UP"}, poll_after=1) is None
    failed = read_status(
        {"status": "COMPLETED", "error": "boom", "error_type": "startup_timeout"}, poll_after=1
    )
    assert failed is not None and (failed.error_code, failed.retryable) == ("startup_timeout", True)
    cancelled = read_status({"status": "CANCELED"}, poll_after=1)
    assert cancelled is not None and cancelled.error_code == "upstream_cancelled"
    proxy = fal_answer(502, "<html>Bad Gateway</html>")
    assert read_result_error(proxy) is None  # not fal's words: ask again
    typed = read_result_error(
        fal_answer(504, {"detail": "Request timed out"}, **{"x-fal-error-type": "request_timeout"})
    )
    assert typed is not None and (typed.error_code, typed.retryable) == ("request_timeout", True)
    gone = read_result_error(fal_answer(404, {"detail": "Request not found"}))
    assert gone is not None and gone.error_code == "upstream_job_lost"
    policy = create_refusal(
        fal_answer(
            422,
            {"detail": [{"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy_violation"}]},
        )
    )
    assert policy.code == "content_policy"
    invalid = create_refusal(
        fal_answer(422, {"detail": [{"loc": ["body", "duration"], "msg": "bad", "type": "literal_error"}]})
    )
    assert invalid.code == "invalid_input" and "duration: bad" in invalid.message
    assert isinstance(create_refusal(fal_answer(500, {"detail": "oops"})), UpstreamOutcomeUnknown)


async def test_poll_faults_and_unknown_words_keep_the_task_polling(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        job = await provider.submit(
            request(prompt="a #poll5xx=1 #malformed=1 #unknown_status=1"), ctx(tmp_path)
        )
        with pytest.raises(ProviderError) as five:
            await provider.poll(job, ctx(tmp_path))
        with pytest.raises(ProviderError) as cut:
            await provider.poll(job, ctx(tmp_path))
        unknown = await provider.poll(job, ctx(tmp_path))
        with pytest.raises(ProviderError) as lost:
            await provider.poll(
                UpstreamJob("9b2f6c2e-0000-4000-8000-000000000000", memo={"model": FAL_VEO}), ctx(tmp_path)
            )
    assert five.value.retryable and cut.value.retryable and unknown.state is UpstreamState.RUNNING
    assert lost.value.code == "upstream_job_lost"


async def test_cancel_takes_a_queued_request_out_signals_a_running_one_and_ignores_an_ended_one(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        queued = await provider.submit(request(prompt="q #queue=5"), ctx(tmp_path))
        running = await provider.submit(request(prompt="r"), ctx(tmp_path))
        ended = await provider.submit(request(prompt="e #ready=1"), ctx(tmp_path))
        clock.now += 2
        for job in (queued, running, ended):
            await provider.cancel(job)
        await provider.cancel(UpstreamJob("9b2f6c2e-0000-4000-8000-000000000000", memo={"model": FAL_VEO}))
        stopped = await provider.poll(queued, ctx(tmp_path))
        finished = await provider.poll(ended, ctx(tmp_path))
    assert (stopped.state, stopped.error_code) == (UpstreamState.FAILED, "upstream_cancelled")
    assert finished.state is UpstreamState.SUCCEEDED
    cancels = [(e.status, e.detail.get("outcome")) for e in fake.journal.entries("cancel")]
    assert cancels == [(200, "cancelled"), (202, "cancellation_requested"), (400, None), (404, None)]


async def test_probe_asks_for_a_request_that_does_not_exist(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        assert (await provider.probe()).ok
    async with provider_on(asgi(fake), tmp_path, api_key="fal-wrong-key-000000") as wrong:
        result = await wrong.probe()
    assert not result.ok and "credentials were refused" in result.verdict
    assert fake.journal.count("create") == 0


async def test_a_key_echoed_back_at_create_or_in_a_result_is_scrubbed(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        guarded = SecretScrubbing(provider, provider.channel.redactor)
        with pytest.raises(ProviderError) as echoed:
            await guarded.submit(request(prompt="g #echo_key"), ctx(tmp_path))
        job = await guarded.submit(request(prompt="g #echo_key=job"), ctx(tmp_path))
        clock.now += 11
        failed = await guarded.poll(job, ctx(tmp_path))
    for message in (echoed.value.message, failed.error_message or ""):
        assert KEY not in message and KEY.upper() not in message and REDACTED in message
    assert failed.state is UpstreamState.FAILED
