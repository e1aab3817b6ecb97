"""The `minimax` kind: its model table, what a request becomes on MiniMax's wire, what MiniMax's answers
(errors inside HTTP 200s, the file_id -> files/retrieve step) become, and the MiniMax fake it is tested
against (driven through `httpx.ASGITransport`, on a hand-driven clock)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.providers.adapter_support import (
    Clock,
    StubFetcher,
    adapter_on,
    body_of,
    captured,
    fake_upstream,
    submit_request,
    uploaded_image,
)
from tests.unit.providers.adapter_support import input_image as image
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.capabilities import AudioSupport, GenerationAsk, sizes_for
from vidgate.domain.tasks import WatermarkMode
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
)
from vidgate.providers.minimax import MiniMaxProvider, minimax_error, read_query
from vidgate.providers.minimax_models import minimax_model
from vidgate.providers.registry import (
    ChannelConfigError,
    channel_options,
    check_channels,
    profile_for,
)
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.redaction import REDACTED
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio

KEY = "sk-minimax-test-0123456789"
HAILUO_23, HAILUO_02, FAST = "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3-Fast"
MODELS = [HAILUO_23, HAILUO_02, FAST, "T2V-01", "I2V-01", "S2V-01"]


def channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "hailuo",
        "kind": "minimax",
        "base_url": "http://minimax.test",
        "api_key": KEY,
        "models": MODELS,
        "options": {"poll_seconds": 2},
        **overrides,
    }
    return ChannelSettings(**values)


# What a create answers, for the tests that only read the wire.
CREATED = {"task_id": "106916112212032", "base_resp": {"status_code": 0}}


def request(model: str = HAILUO_23, **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a red fox in the snow", "seconds": 6, **fields})


async def stored_image(tmp_path: Path, index: int, size: tuple[int, int] = (960, 540)) -> InputImage:
    return await uploaded_image(tmp_path, index, size, (40, 160, 40))


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[MiniMaxProvider]:
    return adapter_on(MiniMaxProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(KEY, clock, "http://cdn.minimax.test")


# The model table -------------------------------------------------------------------------------------


def test_the_table_says_what_each_model_makes() -> None:
    hailuo = minimax_model("minimax-hailuo-2.3")
    assert hailuo is not None and hailuo.resolution_word("720p") == "768P"
    caps = hailuo.capabilities()
    assert caps.durations == frozenset({6, 10}) and caps.durations_with == {"1080p": frozenset({6})}
    assert caps.sizes == sizes_for(("720p", "1080p"), ("16:9", "9:16", "1:1", "4:3", "3:4"))
    assert caps.aspect_ratios_with == {"text_to_video": frozenset({"16:9"})}
    assert caps.audio is AudioSupport.NONE and caps.enhance_prompt and not caps.seed and not caps.last_frame
    fast = minimax_model(FAST)
    assert fast is not None and fast.capabilities().needs_first_frame
    two = minimax_model(HAILUO_02)
    assert two is not None and two.resolution_word("480p") == "512P" and two.capabilities().last_frame
    assert two.capabilities().resolutions_with == {
        "text_to_video": frozenset({"720p", "1080p"}),
        "last_frame": frozenset({"720p", "1080p"}),
    }
    t2v = minimax_model("T2V-01")
    assert t2v is not None and t2v.capabilities().sizes == frozenset({"1280x720"})
    assert t2v.capabilities().max_images == 0
    s2v = minimax_model("S2V-01")
    assert s2v is not None and s2v.capabilities().reference_images == 1 and not s2v.capabilities().first_frame
    assert minimax_model("Hailuo-9") is None


@pytest.mark.parametrize(
    ("model", "seconds", "size", "ask", "param"),
    [
        (HAILUO_23, 10, "1920x1080", GenerationAsk(0), "duration"),
        (HAILUO_23, 6, "720x1280", GenerationAsk(0), "aspect_ratio"),  # text alone is 16:9
        (HAILUO_23, 6, "720x1280", GenerationAsk(1), None),  # an image keeps its own shape
        (HAILUO_02, 6, "854x480", GenerationAsk(0), "resolution"),  # 512P from an image only
        (HAILUO_02, 6, "854x480", GenerationAsk(1), None),
        (HAILUO_02, 6, "854x480", GenerationAsk(1, last_frame=True), "resolution"),
    ],
)
def test_ties_routing_refuses_at_create(
    model: str, seconds: int, size: str, ask: GenerationAsk, param: str | None
) -> None:
    known = minimax_model(model)
    assert known is not None
    conflict = known.capabilities().conflict(seconds, size, ask)
    assert (conflict[0] if conflict else None) == param


def test_a_channel_profile_and_its_options() -> None:
    profile = profile_for(channel())
    assert profile.traits == profile.traits.__class__()  # no cancel, no lookup
    assert profile.capabilities["T2V-01"].durations == frozenset({6})
    with pytest.raises(ChannelConfigError, match=r"options\.prompt_optimiser"):
        channel_options(channel(options={"prompt_optimiser": False}))
    with pytest.raises(ChannelConfigError, match="extra_body"):
        channel_options(channel(options={"extra_body": {"duration": 10}}))
    with pytest.raises(ChannelConfigError, match="group_id"):
        channel_options(channel(options={"group_id": "a b"}))


def test_a_correction_minimax_cannot_carry_is_an_error_at_start() -> None:
    with pytest.raises(
        ChannelConfigError, match=r"channel 'hailuo': capabilities of model 'T2V-01' set seed"
    ):
        check_channels(Settings(channels=[channel(capabilities={"T2V-01": {"seed": True}})]))
    with pytest.raises(ChannelConfigError, match=r"model '\*' set negative_prompt"):
        check_channels(Settings(channels=[channel(capabilities={"*": {"negative_prompt": True}})]))
    with pytest.raises(ChannelConfigError, match="set audio"):
        check_channels(Settings(channels=[channel(capabilities={HAILUO_23: {"audio": "optional"}})]))


# Request -> MiniMax's create -------------------------------------------------------------------------


async def test_a_text_to_video_create(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        job = await provider.submit(request(seconds=10, enhance_prompt=False), ctx(tmp_path))
    assert job.upstream_id == "106916112212032"
    [sent] = seen
    assert sent.url.path == "/v1/video_generation" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert body_of(sent) == {
        "model": HAILUO_23,
        "prompt": "a red fox in the snow",
        "duration": 10,
        "resolution": "768P",
        "prompt_optimizer": False,
        "aigc_watermark": False,
    }


@pytest.mark.parametrize("base_url", ["http://minimax.test", "http://minimax.test/v1"])
async def test_the_base_url_is_the_host_with_or_without_v1(tmp_path: Path, base_url: str) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path, base_url=base_url) as provider:
        await provider.submit(request(), ctx(tmp_path))
    assert [r.url.path for r in seen] == ["/v1/video_generation"]


async def test_images_go_as_first_frame_last_frame_or_subject(tmp_path: Path) -> None:
    uploaded = await stored_image(tmp_path, 0)
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        by_url = await provider.create_body(request(HAILUO_02, size=(1920, 1080), images=(image(0),)))
        both = await provider.create_body(
            request(HAILUO_02, images=(uploaded,), last_frame=image(1, "https://img.example/end.png"))
        )
        subject = await provider.create_body(request("S2V-01", images=(image(0),)))
        tiny = await provider.create_body(request(HAILUO_02, size=(854, 480), images=(image(0),)))
    assert (by_url["first_frame_image"], by_url["resolution"]) == ("https://img.example/fox.png", "1080P")
    assert both["first_frame_image"].startswith("data:image/png;base64,")
    assert both["last_frame_image"] == "https://img.example/end.png"
    assert subject["subject_reference"] == [{"type": "character", "image": ["https://img.example/fox.png"]}]
    assert "first_frame_image" not in subject and tiny["resolution"] == "512P"


async def test_what_minimax_cannot_take_is_refused_before_sending(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    refusals = {}
    async with provider_on(transport, tmp_path, options={"watermark": True}) as provider:
        for name, req in {
            "small": request(images=(image(0, size=(300, 500)),)),
            "long": request(prompt="x" * 2001),
            "sound": request(generate_audio=True),
            "portrait_text": request(size=(720, 1280)),
            "text_on_i2v": request(FAST),
            "clean": request(watermark_mode=WatermarkMode.REQUIRE_CLEAN),
            "size": request(size=(1024, 1792), images=(image(0),)),
        }.items():
            with pytest.raises(ProviderError) as caught:
                await provider.submit(req, ctx(tmp_path))
            refusals[name] = caught.value.code
    assert refusals == {
        "small": "invalid_image",
        "long": "prompt_too_long",
        "sound": "unsupported_combination",
        "portrait_text": "unsupported_combination",
        "text_on_i2v": "unsupported_combination",
        "clean": "watermark_unsupported",
        "size": "unsupported_size",
    }
    assert not seen


# MiniMax's answers -----------------------------------------------------------------------------------


def minimax(code: int, status: int = 200, **headers: str) -> httpx.Response:
    body = {"task_id": "", "base_resp": {"status_code": code, "status_msg": "no"}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (minimax(1002), "upstream_rate_limited", True),
        (minimax(1002, 429, **{"retry-after": "2"}), "upstream_rate_limited", True),
        (minimax(1004), "upstream_auth_failed", True),
        (minimax(2049), "upstream_auth_failed", True),
        (minimax(1008), "upstream_account_in_arrears", True),
        (minimax(2056), "upstream_quota_exhausted", True),
        (minimax(1026), "content_policy", False),
        (minimax(2013), "invalid_parameter", False),
        (minimax(1234), "minimax_1234", False),
        (httpx.Response(401, json={}), "upstream_auth_failed", True),
    ],
)
def test_create_refusals_are_mapped_by_base_resp(
    response: httpx.Response, code: str, retryable: bool
) -> None:
    error = minimax_error(response, "create", may_create=True)
    assert error is not None and not isinstance(error, UpstreamOutcomeUnknown)
    assert (error.code, error.retryable) == (code, retryable)


@pytest.mark.parametrize("response", [minimax(1000), minimax(1024), minimax(1033), minimax(1000, 500)])
def test_minimax_trouble_on_a_create_may_have_made_the_task(response: httpx.Response) -> None:
    assert isinstance(minimax_error(response, "create", may_create=True), UpstreamOutcomeUnknown)
    error = minimax_error(response, "poll")
    assert error is not None and error.code == "upstream_unavailable" and error.retryable


def test_query_statuses_are_mapped() -> None:
    words = {w: read_query({"status": w}) for w in ("Preparing", "Queueing", "Processing", "Success", "Nope")}
    assert [s.state if s else None for s in words.values()] == [
        UpstreamState.QUEUED,
        UpstreamState.QUEUED,
        UpstreamState.RUNNING,
        UpstreamState.SUCCEEDED,
        None,
    ]
    sensitive = read_query({"status": "Fail", "base_resp": {"status_code": 1027, "status_msg": "output"}})
    assert sensitive is not None and sensitive.error_code == "content_policy"
    internal = read_query({"status": "Fail", "base_resp": {"status_code": 1000, "status_msg": "oops"}})
    assert internal is not None and (internal.error_code, internal.retryable) == ("minimax_1000", True)


# Against the fake ------------------------------------------------------------------------------------


async def test_a_task_is_polled_its_file_retrieved_and_its_link_copied(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    fetcher = StubFetcher()
    async with provider_on(
        httpx.ASGITransport(fake.app), tmp_path, fetcher, options={"group_id": "1800"}
    ) as provider:
        job = await provider.submit(request(prompt="a fox #queue=4"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 6
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.RUNNING
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        assert done.state is UpstreamState.SUCCEEDED and done.result_url is not None
        result = await provider.fetch(job, done, tmp_path, ctx(tmp_path))
    assert done.result_url.startswith("http://cdn.minimax.test/_fake/files/")
    assert result.video.exists() and fetcher.urls == [done.result_url]
    [made] = fake.journal.creates()
    assert (
        made.job == job.upstream_id and made.detail["resolution"] == "768P" and made.detail["duration"] == 6
    )
    reported = [e.detail.get("reported") for e in fake.journal.entries("poll")]
    assert reported == ["Preparing", "Processing", "Success"]
    [retrieval] = fake.journal.entries("file_get")
    assert retrieval.detail["params"]["GroupId"] == "1800"


async def test_an_image_reaches_the_fake_as_a_data_uri(tmp_path: Path, fake: FakeUpstream) -> None:
    first, last = await stored_image(tmp_path, 0, (720, 1280)), await stored_image(tmp_path, 1, (720, 1280))
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        await provider.submit(
            request(HAILUO_02, size=(1080, 1920), images=(first,), last_frame=last), ctx(tmp_path)
        )
    [made] = fake.journal.creates()
    assert made.detail["images"] == {"first_frame_image": "data_uri", "last_frame_image": "data_uri"}
    assert made.detail["resolution"] == "1080P"


async def test_the_fakes_faults_and_quirks_map_as_they_should(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        errors = {}
        for name, prompt in {
            "429": "a #429=1",
            "http200": "b #http200_error=1 #minimax_code=1008",
            "http200_internal": "c #http200_error=1 #minimax_code=1024",
            "5xx": "d #5xx=1",
            "moderation": "e #moderation",
            "accepted_then_lost": "f #accept_then_5xx=1",
        }.items():
            with pytest.raises(ProviderError) as caught:
                await provider.submit(request(prompt=prompt), ctx(tmp_path))
            errors[name] = (type(caught.value).__name__, caught.value.code)
        blocked = await provider.submit(request(prompt="g #moderation=job"), ctx(tmp_path))
        failing = await provider.submit(request(prompt="h #fail=1033"), ctx(tmp_path))
        clock.now += 11
        ended, broke = (
            await provider.poll(blocked, ctx(tmp_path)),
            await provider.poll(failing, ctx(tmp_path)),
        )
        with pytest.raises(ProviderError) as lost:
            await provider.poll(UpstreamJob("999"), ctx(tmp_path))
    assert errors == {
        "429": ("ProviderError", "upstream_rate_limited"),
        "http200": ("ProviderError", "upstream_account_in_arrears"),
        "http200_internal": ("UpstreamOutcomeUnknown", "upstream_outcome_unknown"),
        "5xx": ("UpstreamOutcomeUnknown", "upstream_outcome_unknown"),
        "moderation": ("ProviderError", "content_policy"),
        "accepted_then_lost": ("UpstreamOutcomeUnknown", "upstream_outcome_unknown"),
    }
    assert [e.status for e in fake.journal.entries("rejected_create")] == [429, 200, 200, 500, 200]
    assert (ended.state, ended.error_code) == (UpstreamState.FAILED, "content_policy")
    assert (broke.error_code, broke.retryable) == ("minimax_1033", True)
    assert lost.value.code == "upstream_job_lost"


async def test_a_wrong_key_and_an_echoed_one(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(
        httpx.ASGITransport(fake.app), tmp_path, api_key="sk-wrong-key-0000000"
    ) as provider:
        with pytest.raises(ProviderError) as refused:
            await provider.submit(request(), ctx(tmp_path))
        assert not (await provider.probe()).ok
    assert refused.value.code == "upstream_auth_failed"
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        assert (await provider.probe()).ok
        guarded = SecretScrubbing(provider, provider.channel.redactor)
        with pytest.raises(ProviderError) as echoed:
            await guarded.submit(request(prompt="i #echo_key"), ctx(tmp_path))
    assert KEY not in echoed.value.message and KEY.upper() not in echoed.value.message
    assert REDACTED in echoed.value.message


async def test_the_fake_refuses_what_minimax_refuses(fake: FakeUpstream) -> None:
    bodies = [
        {"model": HAILUO_23, "prompt": "a", "duration": 10, "resolution": "1080P"},
        {"model": HAILUO_23, "prompt": "a", "resolution": "720P"},
        {"model": HAILUO_02, "prompt": "a", "resolution": "512P"},
        {"model": FAST, "prompt": "a"},
        {"model": HAILUO_23, "prompt": "a", "last_frame_image": "https://x/a.png"},
        {"model": HAILUO_23, "prompt": "a", "seconds": 6},
        {"model": "T2V-01", "prompt": "a", "duration": 10},
        {"model": HAILUO_23, "prompt": "a", "first_frame_image": "iVBORw0KGgo"},
        {"model": "Hailuo-9", "prompt": "a"},
    ]
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake.app), base_url="http://mm.test"
    ) as client:
        answers = [(await client.post("/v1/video_generation", json=b, headers=headers)) for b in bodies]
        fine = await client.post(
            "/v1/video_generation", json={"model": "T2V-01", "prompt": "a"}, headers=headers
        )
    assert [(a.status_code, a.json()["base_resp"]["status_code"]) for a in answers] == [(200, 2013)] * len(
        bodies
    )
    assert fine.json()["base_resp"]["status_code"] == 0 and fine.json()["task_id"].isdigit()
    assert fake.journal.count("create") == 1


async def test_minimax_has_no_cancel_and_no_lookup(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        await provider.cancel(UpstreamJob("106916112212032"))
        assert await provider.find_jobs(request()) == ()
    assert not seen
