"""The `seedance` kind: its model table, what a request becomes on Ark's wire, what Ark's answers become,
and the Ark fake it is tested against (driven through `httpx.ASGITransport`, on a hand-driven clock)."""

from __future__ import annotations

import io
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.unit.providers.adapter_support import (
    Clock,
    StubFetcher,
    adapter_on,
    captured,
    fake_upstream,
    submit_request,
)
from tests.unit.providers.adapter_support import input_image as image
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, sizes_for
from vidgate.net.fetch import FetchFailed
from vidgate.providers.base import (
    ProviderError,
    ResultExpired,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.capabilities import model_capabilities
from vidgate.providers.registry import ChannelConfigError, channel_options, profile_for
from vidgate.providers.seedance import SeedanceProvider, create_refusal, prompt_text, task_status
from vidgate.providers.seedance_models import family_of, seedance_capabilities
from vidgate.store.blobs import LocalBlobStore
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio

KEY = "sk-ark-test"
LITE_I2V = "seedance-1-0-lite-i2v-250428"
PRO = "seedance-1-0-pro-250528"
PRO_FAST = "seedance-1-0-pro-fast-251015"
PRO_15 = "seedance-1-5-pro-251215"
MODELS = [LITE_I2V, PRO, PRO_FAST, PRO_15, "doubao-seedance-1-0-lite-t2v-250428"]


def channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "ark",
        "kind": "seedance",
        "base_url": "http://ark.test/api/v3",
        "api_key": KEY,
        "models": MODELS,
        **overrides,
    }
    return ChannelSettings(**values)


# What a create answers, for the tests that only read the wire.
CREATED = {"id": "cgt-20250101000000-abcde"}


def request(model: str = LITE_I2V, **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a red fox in the snow", "seconds": 5, **fields})


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[SeedanceProvider]:
    return adapter_on(SeedanceProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(KEY, clock, "http://cdn.ark.test")


# The model table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("seedance-1-0-pro-250528", "seedance-1-0-pro"),
        ("doubao-seedance-1-0-pro-250528", "seedance-1-0-pro"),
        ("seedance-1-0-pro-fast-251015", "seedance-1-0-pro-fast"),
        ("doubao-seedance-1-0-lite-i2v-250428", "seedance-1-0-lite-i2v"),
        ("seedance-1-0-lite-t2v", "seedance-1-0-lite-t2v"),
        ("Doubao-Seedance-1-5-Pro-251215", "seedance-1-5-pro"),
        ("dreamina-seedance-2-0-260128", "seedance-2-0"),
        ("doubao-seedance-2-0-fast-260128", "seedance-2-0-fast"),
        ("seedance-1-0-pro-260101", "seedance-1-0-pro"),  # a later dated release of a known family
        ("ep-20250601123456-abcde", None),
        ("seedance-9-0-ultra-270101", None),
        ("sora-2", None),
    ],
)
def test_models_are_found_by_family_whatever_the_prefix_and_date(model: str, family: str | None) -> None:
    assert family_of(model) == family


def test_the_table_says_what_each_model_takes() -> None:
    lite = seedance_capabilities(LITE_I2V)
    assert lite is not None
    assert lite.durations == frozenset(range(2, 13)) and lite.seed and not lite.negative_prompt
    assert lite.first_frame and lite.last_frame and lite.reference_images == 4 and lite.max_images == 4
    assert lite.sizes == sizes_for(("480p", "720p", "1080p"), ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"))
    t2v = seedance_capabilities("doubao-seedance-1-0-lite-t2v-250428")
    assert t2v is not None and t2v.max_images == 0
    fast = seedance_capabilities(PRO_FAST)
    assert fast is not None and fast.first_frame and not fast.last_frame
    audio = seedance_capabilities(PRO_15)
    assert audio is not None and audio.audio is AudioSupport.OPTIONAL and audio.makes_audio(None)
    assert audio.durations == frozenset(range(4, 13))
    two_fast = seedance_capabilities("dreamina-seedance-2-0-fast-260128")
    assert (
        two_fast is not None and two_fast.resolutions == ["480p", "720p"] and two_fast.reference_images == 9
    )


def test_a_channel_profile_uses_the_table_and_an_endpoint_id_the_channels_own_sizes() -> None:
    ch = channel(models=["fox-video", LITE_I2V], model_map={"fox-video": "ep-20250601-abc"})
    profile = profile_for(ch)
    assert profile.traits.can_cancel and profile.traits.can_find_jobs
    assert profile.capabilities[LITE_I2V] == seedance_capabilities(LITE_I2V)
    endpoint = profile.capabilities["fox-video"]
    # Ark takes no pixel sizes: the channel's 1024x1792 and 1792x1024 have no resolution word.
    assert endpoint.sizes == frozenset({"720x1280", "1280x720", "1080x1920", "1920x1080"})
    assert endpoint.seed and endpoint.max_images == 1
    narrowed = model_capabilities(channel(durations=[5, 10]), SeedanceProvider, 1)
    assert narrowed[LITE_I2V].durations == frozenset({5, 10})


def test_options_refuse_typos_and_fields_the_adapter_sends_itself() -> None:
    with pytest.raises(ChannelConfigError, match=r"options\.camera_fix"):
        channel_options(channel(options={"camera_fix": True}))
    with pytest.raises(ChannelConfigError, match="extra_body"):
        channel_options(channel(options={"extra_body": {"seed": 3}}))
    with pytest.raises(ChannelConfigError, match="execution_expires_after"):
        channel_options(channel(options={"execution_expires_after": 60}))
    options = channel_options(channel(options={"service_tier": "flex", "extra_body": {"priority": 1}}))
    assert options.service_tier == "flex"


# Request -> Ark's create body ----------------------------------------------------------------------


async def test_a_text_to_video_create_carries_every_parameter_as_body_fields(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        job = await provider.submit(request(prompt="a fox --rs 1080p --dur 12", seconds=6), ctx(tmp_path))
    assert job.upstream_id == "cgt-20250101000000-abcde"
    [sent] = seen
    assert sent.method == "POST" and sent.url.path == "/api/v3/contents/generations/tasks"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = httpx.Response(200, content=sent.content).json()
    assert body["model"] == LITE_I2V
    assert body["content"] == [{"type": "text", "text": "a fox"}]  # no text flag gets past us
    assert (body["ratio"], body["resolution"], body["duration"]) == ("16:9", "720p", 6)
    assert body["watermark"] is False and isinstance(body["seed"], int)
    assert "generate_audio" not in body and "camera_fixed" not in body and "service_tier" not in body


@pytest.mark.parametrize(
    ("size", "ratio", "resolution"),
    [
        ((720, 1280), "9:16", "720p"),
        ((1920, 1080), "16:9", "1080p"),
        ((480, 480), "1:1", "480p"),
        ((1680, 720), "21:9", "720p"),
    ],
)
async def test_sizes_become_a_ratio_and_a_resolution(
    tmp_path: Path, size: tuple[int, int], ratio: str, resolution: str
) -> None:
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        body = await provider.create_body(request(size=size))
    assert (body["ratio"], body["resolution"]) == (ratio, resolution)


async def test_a_size_without_a_name_is_refused_before_sending(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(request(size=(1024, 1792)), ctx(tmp_path))
    assert caught.value.code == "unsupported_size" and not caught.value.retryable and not seen


async def test_image_roles_first_frame_last_frame_and_references(tmp_path: Path) -> None:
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        one = await provider.create_body(request(images=(image(0),)))
        both = await provider.create_body(
            request(images=(image(0),), last_frame=image(1, "https://img.example/end.png"))
        )
        refs = await provider.create_body(request(images=tuple(image(i) for i in range(3))))
        with pytest.raises(ProviderError, match="last frame") as caught:
            await provider.create_body(request(images=(image(0), image(1)), last_frame=image(2)))
    assert caught.value.code == "unsupported_combination" and not caught.value.retryable
    assert [c.get("role") for c in one["content"]] == [None, "first_frame"]
    assert one["content"][1]["image_url"] == {"url": "https://img.example/fox.png"}
    assert [c.get("role") for c in both["content"]] == [None, "first_frame", "last_frame"]
    assert both["content"][2]["image_url"]["url"] == "https://img.example/end.png"
    assert [c.get("role") for c in refs["content"]] == [None, *["reference_image"] * 3]


async def test_one_image_may_be_a_reference_and_camera_fixed_never_goes_with_references(
    tmp_path: Path,
) -> None:
    options = {"one_image_as": "reference_image", "camera_fixed": True}
    async with provider_on(captured(CREATED)[1], tmp_path, options=options) as provider:
        body = await provider.create_body(request(images=(image(0),)))
        frames = await provider.create_body(request(model=PRO, images=(image(0),)))  # no references there
    assert body["content"][1]["role"] == "reference_image" and "camera_fixed" not in body
    assert frames["content"][1]["role"] == "first_frame" and frames["camera_fixed"] is True


async def test_the_operators_capabilities_decide_the_roles_and_the_sound(tmp_path: Path) -> None:
    """An endpoint id is unknown to the table: what the channel's `capabilities` say it takes is what
    routing lets through, so the body follows them too."""
    overrides = {
        "models": ["fox-video"],
        "model_map": {"fox-video": "ep-20250601-abc"},
        "capabilities": {"fox-video": {"reference_images": 3, "audio": "optional"}},
    }
    async with provider_on(captured(CREATED)[1], tmp_path, **overrides) as provider:
        refs = await provider.create_body(
            request(model="fox-video", images=(image(0), image(1)), generate_audio=False)
        )
        plain = await provider.create_body(request(model="fox-video", images=(image(0),)))
    assert refs["model"] == "ep-20250601-abc" and refs["generate_audio"] is False
    assert [c.get("role") for c in refs["content"]] == [None, "reference_image", "reference_image"]
    assert plain["content"][1]["role"] == "first_frame"


async def test_an_image_without_a_url_goes_as_a_data_uri(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 40, 40)).save(buf, "PNG")
    blobs = LocalBlobStore(tmp_path / "media")
    await blobs.put_bytes(buf.getvalue(), "inputs/01task/0.png")
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        body = await provider.create_body(request(images=(image(0, "upload"),)))
    assert body["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_seed_is_the_clients_or_one_tied_to_the_submission(tmp_path: Path) -> None:
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        chosen = await provider.create_body(request(passthrough={"seed": 7}))
        first = await provider.create_body(request(key="01task-0"))
        again = await provider.create_body(request(key="01task-0"))
        resubmitted = await provider.create_body(request(key="01task-1"))
        with pytest.raises(ProviderError) as caught:
            await provider.create_body(request(passthrough={"seed": 2**32}))
    assert chosen["seed"] == 7
    assert first["seed"] == again["seed"] != resubmitted["seed"]
    assert 0 <= first["seed"] < 2**32
    assert caught.value.code == "invalid_seed" and not caught.value.retryable
    async with provider_on(captured(CREATED)[1], tmp_path, options={"seed_tag": False}) as untagged:
        assert "seed" not in await untagged.create_body(request())


async def test_generate_audio_goes_only_to_models_that_make_sound(tmp_path: Path) -> None:
    options = {"service_tier": "flex", "execution_expires_after": 7200, "watermark": True}
    async with provider_on(captured(CREATED)[1], tmp_path, options=options) as provider:
        audio = await provider.create_body(request(model=PRO_15, generate_audio=False))
        silent = await provider.create_body(request(model=PRO, generate_audio=False))
    assert audio["generate_audio"] is False and "generate_audio" not in silent
    assert audio["service_tier"] == "flex" and audio["execution_expires_after"] == 7200
    assert audio["watermark"] is True


def test_prompt_flags_are_stripped_only_when_they_are_flags() -> None:
    assert prompt_text("a fox --ratio 21:9 jumps --seed=3", strip_flags=True) == "a fox jumps"
    assert prompt_text("use -- dashes and --verbose prose", strip_flags=True) == (
        "use -- dashes and --verbose prose"
    )
    assert prompt_text("a fox --dur 12", strip_flags=False) == "a fox --dur 12"


# Ark's refusals of a create ------------------------------------------------------------------------


def ark(status: int, code: str, message: str = "refused", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "param": "", "type": "BadRequest"}}
    return httpx.Response(
        status, json=body, headers=headers, request=httpx.Request("POST", "http://ark.test/")
    )


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (ark(400, "InputTextSensitiveContentDetected"), "content_policy", False),
        (ark(400, "InputImageSensitiveContentDetected.PrivacyInformation"), "content_policy", False),
        (ark(400, "InvalidParameter", "ratio is not valid"), "invalidparameter", False),
        (ark(400, "InvalidParameter", "safety_identifier is not valid"), "invalidparameter", False),
        (ark(401, "AuthenticationError"), "upstream_auth_failed", True),
        (ark(403, "AccountOverdueError"), "upstream_auth_failed", True),
        (ark(404, "InvalidEndpointOrModel.NotFound"), "upstream_auth_failed", True),
        (ark(404, "ModelNotOpen"), "upstream_auth_failed", True),
        (ark(400, "InvalidEndpoint.ClosedEndpoint"), "upstream_auth_failed", True),
        (ark(429, "QuotaExceeded", **{"retry-after": "3"}), "upstream_rate_limited", True),
        (ark(429, "ServerOverloaded"), "upstream_rate_limited", True),
        (ark(429, "RateLimitExceeded.EndpointRPMExceeded"), "upstream_rate_limited", True),
    ],
)
def test_create_refusals_are_mapped(response: httpx.Response, code: str, retryable: bool) -> None:
    error = create_refusal(response)
    assert not isinstance(error, UpstreamOutcomeUnknown)
    assert (error.code, error.retryable) == (code, retryable)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 520])
def test_a_5xx_to_a_create_may_have_made_the_task(status: int) -> None:
    assert isinstance(create_refusal(ark(status, "InternalServiceError")), UpstreamOutcomeUnknown)


async def test_a_2xx_without_an_id_is_an_unknown_outcome(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, text="<html>ok</html>"))
    async with provider_on(transport, tmp_path) as provider:
        with pytest.raises(UpstreamOutcomeUnknown):
            await provider.submit(request(), ctx(tmp_path))


# Ark's tasks -> UpstreamStatus -----------------------------------------------------------------------


def status_of(body: dict[str, Any]) -> UpstreamStatus | None:
    return task_status(body, poll_after=2.0, watermarked=False)


def test_task_statuses_are_mapped() -> None:
    queued, running = status_of({"status": "queued"}), status_of({"status": "running"})
    assert queued is not None and queued.state is UpstreamState.QUEUED and queued.poll_after == 2.0
    assert running is not None and running.state is UpstreamState.RUNNING
    done = status_of({"status": "succeeded", "content": {"video_url": "https://tos.example/v.mp4?X-Tos=1"}})
    assert done is not None and done.state is UpstreamState.SUCCEEDED
    assert done.result_url == "https://tos.example/v.mp4?X-Tos=1" and done.watermarked is False
    empty = status_of({"status": "succeeded", "content": {}})
    assert empty is not None and (empty.state, empty.error_code) == (
        UpstreamState.FAILED,
        "upstream_no_result",
    )
    assert status_of({"status": "warming_up"}) is None  # unknown: keep polling
    synonym = status_of({"status": "SUCCESS", "content": {"video_url": "https://tos.example/v.mp4"}})
    assert synonym is not None and synonym.state is UpstreamState.SUCCEEDED


@pytest.mark.parametrize(
    ("body", "code", "retryable"),
    [
        (
            {"status": "failed", "error": {"code": "OutputVideoSensitiveContentDetected", "message": "no"}},
            "content_policy",
            False,
        ),
        ({"status": "failed", "error": {"code": "InternalServiceError", "message": "oops"}}, None, True),
        ({"status": "failed", "error": {"code": "InvalidParameter", "message": "bad"}}, None, False),
        ({"status": "failed", "error": None}, "upstream_failed", False),
        ({"status": "cancelled"}, "upstream_cancelled", False),
        ({"status": "expired"}, "upstream_expired", True),
    ],
)
def test_task_endings_are_mapped(body: dict[str, Any], code: str | None, retryable: bool) -> None:
    status = status_of(body)
    assert status is not None and status.state is UpstreamState.FAILED
    expected = code or str(body["error"]["code"]).lower()
    assert (status.error_code, status.retryable) == (expected, retryable)


# Against the fake ------------------------------------------------------------------------------------


async def test_the_fake_journals_what_it_received(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        req = request(
            images=(image(0),),
            last_frame=image(1, "https://img.example/end.png"),
            passthrough={"seed": 42},
        )
        job = await provider.submit(req, ctx(tmp_path))
    [made] = fake.journal.creates()
    assert made.dialect == "seedance" and made.job == job.upstream_id and job.upstream_id.startswith("cgt-")
    assert made.detail["roles"] == ["first_frame", "last_frame"]
    assert made.detail["seed"] == 42 and made.detail["ratio"] == "16:9" and made.detail["duration"] == 5
    assert made.detail["image_values"] == ["https://img.example/fox.png", "https://img.example/end.png"]


async def test_a_task_is_polled_to_its_video_and_its_link_is_fetched_through_the_fetcher(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    fetcher = StubFetcher()
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path, fetcher) as provider:
        job = await provider.submit(request(PRO, prompt="a fox #queue=2"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 5
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.RUNNING
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        assert done.state is UpstreamState.SUCCEEDED and done.result_url is not None
        assert done.result_url.startswith("http://cdn.ark.test/_fake/files/")
        result = await provider.fetch(job, done, tmp_path, ctx(tmp_path))
    assert result.video.exists() and fetcher.urls == [done.result_url]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FetchFailed("gone", http_status=403), ResultExpired),
        (FetchFailed("gone", http_status=404), ResultExpired),
        (FetchFailed("reset"), "result_download_failed"),
    ],
)
async def test_a_dead_result_link_asks_for_a_fresh_poll(
    tmp_path: Path, error: Exception, expected: Any
) -> None:
    status = UpstreamStatus(UpstreamState.SUCCEEDED, result_url="https://tos.example/v.mp4")
    async with provider_on(captured(CREATED)[1], tmp_path, StubFetcher(error)) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(UpstreamJob("cgt-1"), status, tmp_path, ctx(tmp_path))
    if isinstance(expected, str):
        assert caught.value.code == expected and caught.value.retryable
    else:
        assert isinstance(caught.value, expected)


async def test_moderation_and_failures_on_the_fake(tmp_path: Path, fake: FakeUpstream, clock: Clock) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        with pytest.raises(ProviderError) as refused:
            await provider.submit(request(PRO, prompt="a fox #moderation"), ctx(tmp_path))
        later = await provider.submit(request(PRO, prompt="a fox #moderation=job"), ctx(tmp_path))
        failing_request = request(PRO, prompt="a fox #fail=InternalServiceError")
        failing = await provider.submit(failing_request, ctx(tmp_path))
        clock.now += 11
        blocked = await provider.poll(later, ctx(tmp_path))
        failed = await provider.poll(failing, ctx(tmp_path))
    assert refused.value.code == "content_policy" and not refused.value.retryable
    assert (blocked.state, blocked.error_code) == (UpstreamState.FAILED, "content_policy")
    assert (failed.error_code, failed.retryable) == ("internalserviceerror", True)


async def test_the_fakes_create_faults_map_as_they_should(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        with pytest.raises(ProviderError) as limited:
            await provider.submit(request(PRO, prompt="a fox #429=1 #ark_429=QuotaExceeded"), ctx(tmp_path))
        with pytest.raises(UpstreamOutcomeUnknown):
            await provider.submit(request(PRO, prompt="a fox #5xx=1"), ctx(tmp_path))
        with pytest.raises(UpstreamOutcomeUnknown):
            await provider.submit(request(PRO, prompt="a fox #accept_then_5xx=1"), ctx(tmp_path))
        with pytest.raises(ProviderError) as unknown_model:
            await provider.submit(request(model="seedance-1-0-lite-t2v-250428x"), ctx(tmp_path))
    assert limited.value.code == "upstream_rate_limited" and limited.value.retryable
    assert unknown_model.value.code == "upstream_auth_failed"  # not this account's: try another channel
    assert [e.op for e in fake.journal] == ["rejected_create", "rejected_create", "create", "rejected_create"]


async def test_a_job_made_despite_a_lost_answer_is_found_by_its_parameters_and_seed(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    sent_at = int(clock.now * 1000)
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        mine = request(PRO, prompt="twins", key="01a-0", sent_at_ms=sent_at)
        twin = request(PRO, prompt="twins", key="01b-0", sent_at_ms=sent_at)
        other_size = request(PRO, prompt="twins", key="01a-0", size=(720, 1280), sent_at_ms=sent_at)
        made = [await provider.submit(r, ctx(tmp_path)) for r in (twin, mine)]
        found_mine = await provider.find_jobs(mine)
        found_twin = await provider.find_jobs(twin)
        assert await provider.find_jobs(other_size) == []
        clock.now += 3600
        later = request(PRO, prompt="twins", key="01a-0", sent_at_ms=int(clock.now * 1000))
        assert await provider.find_jobs(later) == []  # made before this submit was sent
    assert [j.upstream_id for j in found_mine] == [made[1].upstream_id]
    assert [j.upstream_id for j in found_twin] == [made[0].upstream_id]
    lists = fake.journal.entries("list")
    assert lists and all(e.detail["model"] == PRO for e in lists)


async def test_cancel_stops_a_queued_task_deletes_a_finished_one_and_says_a_running_one_runs_on(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        queued = await provider.submit(request(PRO, prompt="q #queue=5"), ctx(tmp_path))
        running = await provider.submit(request(PRO, prompt="r"), ctx(tmp_path))
        await provider.cancel(queued)
        stopped = await provider.poll(queued, ctx(tmp_path))
        await provider.cancel(queued)  # cancelled already: nothing to do
        with pytest.raises(ProviderError) as caught:
            await provider.cancel(running)
        clock.now += 11
        await provider.cancel(running)  # finished now: its record goes
        with pytest.raises(ProviderError) as lost:
            await provider.poll(running, ctx(tmp_path))
        await provider.cancel(running)  # gone: idempotent
    assert (stopped.state, stopped.error_code) == (UpstreamState.FAILED, "upstream_cancelled")
    assert caught.value.code == "upstream_cannot_cancel" and not caught.value.retryable
    assert lost.value.code == "upstream_job_lost"
    deletes = [(e.status, e.detail.get("was")) for e in fake.journal.entries("delete")]
    assert deletes == [(200, "queued"), (400, "cancelled"), (400, "running"), (200, "succeeded"), (404, None)]


async def test_probe_lists_one_task(tmp_path: Path, fake: FakeUpstream) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        assert (await provider.probe()).ok
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path, api_key="sk-wrong") as wrong:
        result = await wrong.probe()
    assert not result.ok and "credentials were refused" in result.verdict


# The fake checks what Ark checks ---------------------------------------------------------------------


async def ark_post(fake: FakeUpstream, body: dict[str, Any], key: str = KEY) -> httpx.Response:
    transport = httpx.ASGITransport(fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ark.test") as client:
        return await client.post(
            "/api/v3/contents/generations/tasks", json=body, headers={"Authorization": f"Bearer {key}"}
        )


def frame(role: str | None, url: str = "https://img.example/a.png") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    return item if role is None else {**item, "role": role}


TEXT = {"type": "text", "text": "a fox"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": LITE_I2V, "content": [TEXT], "ratio": "5:4"}, "ratio"),
        ({"model": LITE_I2V, "content": [TEXT], "duration": 13}, "duration"),
        ({"model": PRO_15, "content": [TEXT], "duration": 3}, "duration"),
        ({"model": LITE_I2V, "content": [TEXT], "resolution": "4k"}, "resolution"),
        ({"model": LITE_I2V, "content": [TEXT], "seed": 2**32}, "seed"),
        ({"model": LITE_I2V, "content": [TEXT], "watermark": "false"}, "watermark"),
        ({"model": PRO_FAST, "content": [TEXT, frame("first_frame"), frame("last_frame")]}, "content"),
        ({"model": LITE_I2V, "content": [TEXT, *[frame("reference_image")] * 5]}, "content"),
        ({"model": LITE_I2V, "content": [TEXT, frame("reference_image"), frame("last_frame")]}, "content"),
        ({"model": LITE_I2V, "content": [TEXT, frame("last_frame")]}, "content"),
        ({"model": "doubao-seedance-1-0-lite-t2v", "content": [TEXT, frame(None)]}, "content"),
        (
            {"model": LITE_I2V, "content": [TEXT, frame("reference_image")], "camera_fixed": True},
            "camera_fixed",
        ),
        ({"model": LITE_I2V, "content": [TEXT], "service_tier": "fast"}, "service_tier"),
        ({"model": LITE_I2V, "content": [TEXT], "seconds": 5}, "seconds"),
    ],
)
async def test_the_fake_refuses_what_ark_refuses(
    fake: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    response = await ark_post(fake, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter" and error["param"] == param and error["type"] == "BadRequest"
    assert fake.journal.count("create") == 0


async def test_the_fake_answers_in_arks_envelope(fake: FakeUpstream) -> None:
    unauthenticated = await ark_post(fake, {"model": LITE_I2V, "content": [TEXT]}, key="nope")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "AuthenticationError"
    unknown = await ark_post(fake, {"model": "seedance-7-0-pro", "content": [TEXT]})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "InvalidEndpointOrModel.NotFound"
    fine = await ark_post(
        fake, {"model": LITE_I2V, "content": [TEXT, *[frame("reference_image")] * 4], "duration": 12}
    )
    assert fine.status_code == 200 and fine.json()["id"].startswith("cgt-")
    transport = httpx.ASGITransport(fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ark.test") as client:
        task = (
            await client.get(
                f"/api/v3/contents/generations/tasks/{fine.json()['id']}",
                headers={"Authorization": f"Bearer {KEY}"},
            )
        ).json()
        listed = await client.get(
            "/api/v3/contents/generations/tasks",
            params={"page_size": "501"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert task["status"] == "running" and task["ratio"] == "16:9" and task["duration"] == 12
    assert task["resolution"] == "720p" and isinstance(task["seed"], int) and task["framespersecond"] == 24
    assert listed.status_code == 400 and listed.json()["error"]["param"] == "page_size"
