"""The `replicate` kind: what a request becomes on Replicate's predictions API, what predictions
become, the lookup after a lost answer, cancel, and the Replicate fake it is tested against (driven through
`httpx.ASGITransport`, on a hand-driven clock)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aggregator_presets import REPLICATE_KLING, REPLICATE_MODELS, REPLICATE_VEO
from tests.unit.providers.adapter_support import (
    Clock,
    StubFetcher,
    adapter_on,
    asgi,
    fake_upstream,
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
from vidgate.providers.registry import ChannelConfigError, check_channels, profile_for
from vidgate.providers.replicate import (
    ReplicateProvider,
    create_refusal,
    prediction_status,
    progress_in_logs,
)
from vidgate.testing.fake_upstream import FakeUpstream
from vidgate.testing.fake_upstream.replicate_input import VERSIONS

pytestmark = pytest.mark.anyio

KEY = "r8_fake_token_0123456789"
VEO_VERSION = next(v for v, m in VERSIONS.items() if m == REPLICATE_VEO)
PINNED = f"{REPLICATE_VEO}:{VEO_VERSION}"


def channel(**overrides: Any) -> ChannelSettings:
    models = {**REPLICATE_MODELS, PINNED: REPLICATE_MODELS[REPLICATE_VEO]}
    values: dict[str, Any] = {
        "name": "replicate",
        "kind": "replicate",
        "base_url": "http://replicate.test/v1",
        "api_key": KEY,
        "models": list(models),
        "options": {"models": models},
        **overrides,
    }
    return ChannelSettings(**values)


def request(model: str = REPLICATE_VEO, **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a lighthouse", "seconds": 8, **fields})


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[ReplicateProvider]:
    return adapter_on(ReplicateProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(KEY, clock, "http://replicate.delivery.test")


def test_the_kind_cancels_and_looks_up_unless_told_not_to() -> None:
    check_channels(Settings(channels=[channel()]))
    assert profile_for(channel()).traits == ChannelTraits(can_cancel=True, can_find_jobs=True)
    quiet = channel(options={"models": REPLICATE_MODELS, "lookup": False}, models=list(REPLICATE_MODELS))
    assert not profile_for(quiet).traits.can_find_jobs
    bad = channel(models=["veo"], options={"models": {"veo": REPLICATE_MODELS[REPLICATE_VEO]}})
    with pytest.raises(ChannelConfigError, match="'veo' is not a Replicate model"):
        check_channels(Settings(channels=[bad]))


async def test_official_models_and_pinned_versions_are_created_where_replicate_wants_them(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        official = await provider.submit(request(passthrough={"negative_prompt": "rain"}), ctx(tmp_path))
        pinned = await provider.submit(request(PINNED, key="01b-0", generate_audio=False), ctx(tmp_path))
        kling = await provider.submit(
            request(
                REPLICATE_KLING,
                seconds=10,
                size=(1080, 1920),
                images=(InputImage(0, "https://img/a.png", "k", 9, 9),),
            ),
            ctx(tmp_path),
        )
    first, second, third = fake.journal.creates()
    assert (first.job, second.job, third.job) == (official.upstream_id, pinned.upstream_id, kling.upstream_id)
    assert first.detail["pinned"] is False and second.detail["pinned"] is True
    assert first.detail["input"] == {
        "prompt": "a lighthouse",
        "duration": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": first.detail["seed"],
        "negative_prompt": "rain",
        "generate_audio": True,
    }
    assert isinstance(first.detail["seed"], int) and first.detail["seed"] != second.detail["seed"]  # seed_tag
    assert second.detail["generate_audio"] is False
    assert third.detail["start_image"] == "https://img/a.png" and third.detail["aspect_ratio"] == "9:16"
    assert "seed" not in third.detail  # kling-v2.6 takes none


async def test_a_prediction_runs_to_its_video_with_progress_from_the_logs(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    fetcher = StubFetcher()
    async with provider_on(asgi(fake), tmp_path, fetcher) as provider:
        job = await provider.submit(request(prompt="a fox #queue=2"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 6
        running = await provider.poll(job, ctx(tmp_path))
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        listed = await provider.submit(request(prompt="a fox #output_list", key="01c-0"), ctx(tmp_path))
        clock.now += 10
        as_list = await provider.poll(listed, ctx(tmp_path))
        result = await provider.fetch(job, done, tmp_path, ctx(tmp_path))
    assert running.state is UpstreamState.RUNNING and running.progress == 50
    assert done.state is UpstreamState.SUCCEEDED and done.result_url is not None
    assert done.result_url.startswith("http://replicate.delivery.test/_fake/files/")
    assert as_list.state is UpstreamState.SUCCEEDED and as_list.result_url is not None
    assert result.video.exists() and fetcher.urls == [done.result_url]  # through the SSRF-safe fetcher


async def test_the_output_is_removed_an_hour_after_the_prediction_ends(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        job = await provider.submit(request(), ctx(tmp_path))
        clock.now += 10 + 3600
        gone = await provider.poll(job, ctx(tmp_path))
    assert (gone.state, gone.error_code) == (UpstreamState.FAILED, "upstream_result_expired")


async def test_invalid_input_is_refused_at_create_naming_the_input(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    wrong = {**REPLICATE_MODELS[REPLICATE_VEO], "duration_type": "string"}  # Replicate takes a number
    models = {**REPLICATE_MODELS, REPLICATE_VEO: wrong}
    async with provider_on(asgi(fake), tmp_path, models=list(models), options={"models": models}) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(request(), ctx(tmp_path))
    assert caught.value.code == "invalid_input" and "input.duration" in caught.value.message
    assert fake.journal.creates() == []


async def test_refusals_failures_and_faults(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    errors: list[ProviderError] = []
    async with provider_on(asgi(fake), tmp_path) as provider:
        for prompt in (
            "a #moderation",
            "a #payment_required=1",
            "a #429=1",
            "a #5xx=1",
            "a #accept_then_5xx=1",
        ):
            with pytest.raises(ProviderError) as caught:
                await provider.submit(request(prompt=prompt), ctx(tmp_path))
            errors.append(caught.value)
        blocked = await provider.submit(request(prompt="b #moderation=job"), ctx(tmp_path))
        broken = await provider.submit(request(prompt="b #fail=E1000 #fail_jobs=1"), ctx(tmp_path))
        clock.now += 11
        endings = [await provider.poll(j, ctx(tmp_path)) for j in (blocked, broken)]
    flagged, credit, limited, busy, lost = errors
    assert (flagged.code, flagged.retryable) == ("content_policy", False)
    assert (credit.code, credit.retryable) == ("upstream_quota_exhausted", True)
    assert limited.code == "upstream_rate_limited"
    assert isinstance(busy, UpstreamOutcomeUnknown) and isinstance(lost, UpstreamOutcomeUnknown)
    assert [e.error_code for e in endings] == ["content_policy", "upstream_failed"]
    async with provider_on(asgi(fake), tmp_path, api_key="r8_wrong_token_0000000") as wrong:
        with pytest.raises(ProviderError) as refused:
            await wrong.submit(request(), ctx(tmp_path))
    assert refused.value.code == "upstream_auth_failed"


def answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://replicate.test/"))


def test_problem_details_and_predictions_are_read() -> None:
    missing = create_refusal(
        answer(
            404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404}
        )
    )
    assert (missing.code, missing.retryable) == ("upstream_auth_failed", True)
    version = create_refusal(
        answer(422, {"title": "Invalid version", "detail": "does not exist", "status": 422})
    )
    assert version.code == "invalid_input" and not version.retryable
    assert isinstance(create_refusal(answer(500, {"detail": "oops"})), UpstreamOutcomeUnknown)
    assert progress_in_logs("loading\n 37%|███▋      | 37/100 [00:03<00:06]\n") == 37
    assert progress_in_logs("no bar here") is None
    aborted = prediction_status({"status": "aborted"}, result_path="", poll_after=None)
    assert aborted is not None and (aborted.error_code, aborted.retryable) == ("upstream_aborted", True)
    nested = prediction_status(
        {"status": "succeeded", "output": {"video": "https://r.delivery/v.mp4"}},
        result_path="video",
        poll_after=None,
    )
    assert nested is not None and nested.result_url == "https://r.delivery/v.mp4"
    timed_out = prediction_status(
        {"status": "failed", "error": "Prediction timed out"}, result_path="", poll_after=None
    )
    assert timed_out is not None and timed_out.retryable
    assert prediction_status({"status": "booting"}, result_path="", poll_after=None) is None


async def test_a_prediction_made_despite_a_lost_answer_is_found_by_its_input_and_seed(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    sent_at = int(clock.now * 1000)
    async with provider_on(asgi(fake), tmp_path) as provider:
        mine = request(prompt="twins", key="01a-0", sent_at_ms=sent_at)
        twin = request(prompt="twins", key="01b-0", sent_at_ms=sent_at)
        made = [await provider.submit(r, ctx(tmp_path)) for r in (twin, mine)]
        found_mine = await provider.find_jobs(mine)
        found_twin = await provider.find_jobs(twin)
        assert (
            await provider.find_jobs(
                request(prompt="twins", key="01a-0", size=(720, 1280), sent_at_ms=sent_at)
            )
            == []
        )
        clock.now += 3600
        later = request(prompt="twins", key="01a-0", sent_at_ms=int(clock.now * 1000))
        assert await provider.find_jobs(later) == []
    assert [j.upstream_id for j in found_mine] == [made[1].upstream_id]
    assert [j.upstream_id for j in found_twin] == [made[0].upstream_id]
    assert found_mine[0].memo == {"model": REPLICATE_VEO}


async def test_the_list_is_followed_page_by_page(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    sent_at = int(clock.now * 1000)
    async with provider_on(asgi(fake), tmp_path) as provider:
        first = await provider.submit(
            request(prompt="old one", key="01z-0", sent_at_ms=sent_at), ctx(tmp_path)
        )
        for n in range(100):
            await provider.submit(request(prompt=f"filler {n}", key=f"01f-{n}"), ctx(tmp_path))
        found = await provider.find_jobs(request(prompt="old one", key="01z-0", sent_at_ms=sent_at))
    assert [j.upstream_id for j in found] == [first.upstream_id]
    assert [e.detail["offset"] for e in fake.journal.entries("list")] == [0, 100]


async def test_cancel_stops_a_running_prediction_and_leaves_an_ended_one(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(asgi(fake), tmp_path) as provider:
        running = await provider.submit(request(prompt="r"), ctx(tmp_path))
        ended = await provider.submit(request(prompt="e #ready=1", key="01e-0"), ctx(tmp_path))
        clock.now += 2
        await provider.cancel(running)
        await provider.cancel(ended)
        await provider.cancel(UpstreamJob("nosuchprediction"))
        stopped = await provider.poll(running, ctx(tmp_path))
    assert (stopped.state, stopped.error_code) == (UpstreamState.FAILED, "upstream_cancelled")
    cancels = [(e.status, e.detail.get("outcome")) for e in fake.journal.entries("cancel")]
    assert cancels == [(200, "cancelled"), (200, "already_succeeded"), (404, None)]


async def test_the_fake_holds_a_create_under_prefer_wait_and_probe_reads_the_account(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    transport = asgi(fake)
    async with httpx.AsyncClient(transport=transport, base_url="http://replicate.test") as client:
        waited = await client.post(
            f"/v1/models/{REPLICATE_VEO}/predictions",
            json={"input": {"prompt": "quick #ready=0", "duration": 4}},
            headers={"Authorization": f"Bearer {KEY}", "Prefer": "wait=5"},
        )
    assert waited.status_code == 201 and waited.json()["status"] == "succeeded"
    assert waited.json()["output"].startswith("http://replicate.delivery.test/_fake/files/")
    async with provider_on(transport, tmp_path) as provider:
        assert (await provider.probe()).ok
    async with provider_on(transport, tmp_path, api_key="r8_wrong_token_0000000") as wrong:
        assert not (await wrong.probe()).ok
