"""The `dashscope` kind (Alibaba's Wan models through DashScope / Model Studio): the model table, what a
request becomes on the wire, how task answers (HTTP 200 failures, UNKNOWN) and errors map, cancel, the
lookup after an unknown outcome, and the fake's own DashScope checks. The shipped fake is served
in-process (httpx.ASGITransport) on a manual clock; canned answers use httpx.MockTransport."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from vidgate.config import ChannelSettings, Settings
from vidgate.domain.capabilities import AudioSupport, size_text
from vidgate.domain.tasks import WatermarkMode
from vidgate.net.fetch import FetchFailed
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    ResultExpired,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.dashscope import DashScopeProvider
from vidgate.providers.registry import ChannelConfigError, ProviderDeps, ProviderRegistry, check_channels
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio
KEY = "sk-dashscope-fake-0123456789"
API = "http://dashscope.test/api/v1"
T2V, I2V, KF2V = "wan2.5-t2v-preview", "wan2.5-i2v-preview", "wan2.2-kf2v-flash"
BLOCKED = "Output data may contain inappropriate content."


class Clock:
    """The fake's clock, moved by hand (Unix-like, so the fake reports it as is)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Stands in for the SSRF-safe fetcher: records the links, answers each with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.urls: list[str] = []
        self.status = status

    async def fetch_to_file(self, url: str, dest: Path, **_: Any) -> str:
        self.urls.append(url)
        if self.status != 200:
            raise FetchFailed(f"HTTP {self.status}", http_status=self.status)
        dest.write_bytes(b"\x00\x00\x00\x20ftypisom")
        return "video/mp4"


class Rig:
    """A DashScopeProvider on a transport, with storage for input images."""

    def __init__(self, tmp_path: Path, transport: httpx.AsyncBaseTransport, **channel: Any) -> None:
        options = channel.pop("options", {})
        self.settings = Settings(
            data_dir=tmp_path,
            channels=[
                {
                    "name": "ds",
                    "kind": "dashscope",
                    "base_url": API,
                    "api_key": channel.pop("api_key", KEY),
                    "models": channel.pop("models", [T2V, I2V, KF2V, "wan2.2-t2v-plus"]),
                    "options": {"poll_seconds": 0.1, **options},
                    **channel,
                }
            ],
        )
        self.blobs = LocalBlobStore(tmp_path / "media")
        self.fetcher = Fetcher()
        self.deps = ProviderDeps(self.settings, self.blobs, self.fetcher, UpstreamHttp(transport))  # type: ignore[arg-type]
        self.channel = self.settings.channels[0]
        self.provider = DashScopeProvider(self.channel, self.deps)
        self.ctx = StepContext("t", tmp_path, report_progress=_no_progress)

    async def image(
        self, index: int, size: tuple[int, int] = (640, 480), source: str = "upload"
    ) -> InputImage:
        buf = io.BytesIO()
        Image.new("RGB", size, (30 * index, 90, 160)).save(buf, "PNG")
        key = f"tasks/t/inputs/{index}.png"
        await self.blobs.put_bytes(buf.getvalue(), key)
        return InputImage(index, source, key, *size)


async def _no_progress(_: int) -> None:
    return None


def fake(clock: Clock | None = None, **kwargs: Any) -> FakeUpstream:
    options: dict[str, Any] = {"api_key": KEY, "ready_seconds": 30.0, "clip_scale": 20, **kwargs}
    return FakeUpstream(clock=clock or Clock(), **options)


def on_fake(tmp_path: Path, upstream: FakeUpstream, **channel: Any) -> Rig:
    return Rig(tmp_path, httpx.ASGITransport(app=upstream.app), **channel)


def request(
    prompt: str = "a paper lantern drifting over a lake",
    *,
    model: str = T2V,
    size: tuple[int, int] = (1280, 720),
    seconds: int = 5,
    images: tuple[InputImage, ...] = (),
    watermark_mode: WatermarkMode = WatermarkMode.PREFER_CLEAN,
    **fields: Any,
) -> SubmitRequest:
    passthrough = {k: fields.pop(k) for k in ("seed", "negative_prompt") if k in fields}
    return SubmitRequest(
        "t", "t-0", model, prompt, *size, seconds, watermark_mode, False,
        images=images, passthrough=passthrough, **fields,
    )  # fmt: skip


def canned(*answers: tuple[int, Any]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers each request with the next (status, JSON body), recording them."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle), seen


def task(status: str, **output: Any) -> dict[str, Any]:
    return {"request_id": "r-1", "output": {"task_id": "t-1", "task_status": status, **output}}


# The model table ------------------------------------------------------------------------------------


def caps(model: str) -> Any:
    channel = ChannelSettings(name="ds", kind="dashscope", base_url=API, models=[model])
    return DashScopeProvider.model_capabilities(channel, model)


def test_the_model_table_says_what_each_wan_model_takes() -> None:
    wan25_i2v = caps(I2V)
    assert wan25_i2v.durations == {5, 10} and wan25_i2v.first_frame and not wan25_i2v.last_frame
    assert wan25_i2v.audio is AudioSupport.OPTIONAL and wan25_i2v.makes_audio(None)
    assert wan25_i2v.resolutions == ["480p", "720p", "1080p"]
    assert wan25_i2v.seed and wan25_i2v.negative_prompt and wan25_i2v.enhance_prompt
    kf2v = caps(KF2V)
    assert kf2v.first_frame and kf2v.last_frame and kf2v.durations == {5} and kf2v.audio is AudioSupport.NONE
    t2v_plus = caps("wan2.2-t2v-plus")
    assert not t2v_plus.first_frame and t2v_plus.max_images == 0
    assert t2v_plus.resolutions == ["480p", "1080p"]  # no 720p tier on wan2.2-t2v-plus
    assert size_text("480p", "4:3") not in caps(T2V).sizes  # 480P has no 4:3 size
    assert size_text("720p", "4:3") in caps(T2V).sizes
    assert caps("wan2.6-t2v").durations == set(range(2, 16))
    assert caps("wan2.6-i2v").audio is AudioSupport.ALWAYS  # listed as "video with audio" only
    assert caps("wan2.6-i2v-flash").audio is AudioSupport.OPTIONAL
    assert caps("wanx2.1-i2v-turbo").durations == {3, 4, 5} == caps("wan2.1-i2v-turbo").durations
    assert caps("wan2.7-t2v") is None  # unknown: the channel's own settings describe it


def test_options_refuse_parameters_the_adapter_sets_from_each_request(tmp_path: Path) -> None:
    bad = Settings(
        data_dir=tmp_path,
        channels=[{"name": "ds", "kind": "dashscope", "base_url": API, "models": [T2V],
                   "options": {"extra_parameters": {"seed": 1, "shot_type": "multi"}}}],
    )  # fmt: skip
    with pytest.raises(ChannelConfigError, match="seed"):
        check_channels(bad)
    typo = bad.model_copy(
        update={"channels": [bad.channels[0].model_copy(update={"options": {"prompt_extnd": 1}})]}
    )
    with pytest.raises(ChannelConfigError, match="prompt_extnd"):
        check_channels(typo)


# What a request becomes ------------------------------------------------------------------------------


async def test_text_to_video_sends_the_vendor_size_and_every_option(tmp_path: Path) -> None:
    upstream = fake()
    rig = on_fake(tmp_path, upstream)
    ask = request(
        size=(960, 720),
        seconds=10,
        seed=7,
        negative_prompt="blur",
        generate_audio=False,
        enhance_prompt=False,
    )
    job = await rig.provider.submit(ask, rig.ctx)
    [made] = upstream.journal.creates()
    assert made.job == job.upstream_id and job.poll_after == 0.1
    assert made.detail["mode"] == "t2v" and made.detail["size"] == "1088*832"  # 720p 4:3
    assert made.detail["duration"] == 10 and made.detail["seed"] == 7
    assert made.detail["prompt_extend"] is False and made.detail["watermark"] is False
    assert made.detail["audio"] is False and made.detail["negative_prompt"] == "blur"
    assert made.detail["images"] == {}


async def test_the_channel_default_decides_prompt_extend_when_the_request_does_not(tmp_path: Path) -> None:
    transport, seen = canned((200, task("PENDING")))
    rig = Rig(
        tmp_path, transport, options={"prompt_extend": False, "extra_parameters": {"shot_type": "multi"}}
    )
    await rig.provider.submit(request(model="wan2.2-t2v-plus", size=(1920, 1080)), rig.ctx)
    [sent] = seen
    assert sent.url.path == "/api/v1/services/aigc/video-generation/video-synthesis"
    assert sent.headers["x-dashscope-async"] == "enable" and sent.headers["authorization"] == f"Bearer {KEY}"
    body = httpx.Response(200, content=sent.content).json()
    assert body == {
        "model": "wan2.2-t2v-plus",
        "input": {"prompt": "a paper lantern drifting over a lake"},
        "parameters": {
            "shot_type": "multi",
            "size": "1920*1080",
            "duration": 5,
            "prompt_extend": False,
            "watermark": False,
        },
    }  # no seed, no audio (silent model, and the request did not ask)


async def test_the_audio_switch_goes_only_to_models_that_take_it(tmp_path: Path) -> None:
    transport, seen = canned((200, task("PENDING")))
    rig = Rig(tmp_path, transport, models=["wan2.6-t2v", T2V])
    await rig.provider.submit(request(model="wan2.6-t2v", generate_audio=True), rig.ctx)  # always sound
    await rig.provider.submit(request(model=T2V, generate_audio=True), rig.ctx)
    await rig.provider.submit(request(model=T2V), rig.ctx)  # unsaid: DashScope's default (sound)
    sent = [httpx.Response(200, content=r.content).json()["parameters"] for r in seen]
    assert ["audio" in p for p in sent] == [False, True, False] and sent[1]["audio"] is True


async def test_image_to_video_sends_the_first_frame_and_the_resolution_tier(tmp_path: Path) -> None:
    upstream = fake()
    rig = on_fake(tmp_path, upstream)
    first = await rig.image(0, (640, 480))
    await rig.provider.submit(request(model=I2V, images=(first,), generate_audio=True), rig.ctx)
    [made] = upstream.journal.creates()
    assert made.detail["mode"] == "i2v" and made.detail["resolution"] == "720P"
    assert made.detail["image_kinds"] == {"img_url": "data_uri"}  # an upload: sent inline
    assert made.detail["audio"] is True and made.detail["makes_audio"] is True
    assert "size" not in made.detail


async def test_a_client_url_goes_as_is_unless_dashscope_would_refuse_its_size(tmp_path: Path) -> None:
    transport, seen = canned((200, task("PENDING")))
    rig = Rig(tmp_path, transport)
    good = await rig.image(0, (800, 600), source="https://img.example.com/a.png")
    await rig.provider.submit(request(model=I2V, images=(good,)), rig.ctx)
    huge = await rig.image(1, (2400, 1800), source="https://img.example.com/b.png")
    await rig.provider.submit(request(model=I2V, images=(huge,)), rig.ctx)
    sent = [httpx.Response(200, content=r.content).json()["input"]["img_url"] for r in seen]
    assert sent[0] == "https://img.example.com/a.png"
    assert sent[1].startswith("data:image/png;base64,")  # scaled to fit the video instead
    tiny = await rig.image(2, (300, 200))
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(request(model=I2V, images=(tiny,)), rig.ctx)
    assert caught.value.code == "invalid_image" and not caught.value.retryable
    assert len(seen) == 2  # nothing sent for it


async def test_first_and_last_frames_go_to_the_image2video_route(tmp_path: Path) -> None:
    upstream = fake()
    rig = on_fake(tmp_path, upstream)
    first, last = await rig.image(0), await rig.image(1)
    await rig.provider.submit(request(model=KF2V, size=(854, 480), images=(first,), last_frame=last), rig.ctx)
    [made] = upstream.journal.creates()
    assert made.detail["mode"] == "kf2v" and made.detail["resolution"] == "480P"
    assert set(made.detail["images"]) == {"first_frame_url", "last_frame_url"}
    assert made.detail["images"]["first_frame_url"] != made.detail["images"]["last_frame_url"]


@pytest.mark.parametrize(
    ("model", "first", "last", "fields", "says"),
    [
        (T2V, True, False, {}, "text only"),
        (I2V, False, False, {}, "first frame"),
        (KF2V, True, False, {}, "last frame"),
        (I2V, True, True, {}, "no last frame"),
        ("wan2.2-t2v-plus", False, False, {"generate_audio": True}, "silent"),
        ("wan2.6-t2v", False, False, {"generate_audio": False}, "with sound only"),
        (T2V, False, False, {"seed": 2**31}, "seeds from 0"),
    ],
)
async def test_what_a_model_cannot_take_is_refused_before_anything_is_sent(
    tmp_path: Path, model: str, first: bool, last: bool, fields: dict[str, Any], says: str
) -> None:
    transport, seen = canned((200, task("PENDING")))
    rig = Rig(tmp_path, transport)
    image = await rig.image(0)
    if first:
        fields["images"] = (image,)
    if last:
        fields["last_frame"] = image
    with pytest.raises(ProviderError, match=says) as caught:
        await rig.provider.submit(request(model=model, **fields), rig.ctx)
    assert caught.value.code == "unsupported_option" and not caught.value.retryable
    assert seen == []


async def test_a_forced_clean_video_is_refused_by_a_channel_that_asks_for_the_mark(tmp_path: Path) -> None:
    transport, seen = canned((200, task("PENDING")))
    rig = Rig(tmp_path, transport, options={"watermark": True})
    job = await rig.provider.submit(request(), rig.ctx)
    assert httpx.Response(200, content=seen[0].content).json()["parameters"]["watermark"] is True
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(request(watermark_mode=WatermarkMode.REQUIRE_CLEAN), rig.ctx)
    assert caught.value.code == "watermark_unsupported" and len(seen) == 1
    rig2 = Rig(tmp_path, canned((200, task("SUCCEEDED", video_url="https://oss.test/v.mp4")))[0])
    done = await rig2.provider.poll(job, rig2.ctx)
    assert done.watermarked is True  # the job's memo says the mark was asked for


# Answers to a create ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (
            401,
            {"code": "InvalidApiKey", "message": "Invalid API-key provided."},
            "upstream_auth_failed",
            True,
        ),
        (403, {"code": "AccessDenied", "message": "denied"}, "upstream_auth_failed", True),
        (429, {"code": "Throttling.RateQuota", "message": "slow down"}, "upstream_rate_limited", True),
        (400, {"code": "Arrearage", "message": "overdue"}, "upstream_account_in_arrears", True),
        (
            403,
            {"code": "AllocationQuota.FreeTierOnly", "message": "free tier"},
            "upstream_quota_exhausted",
            True,
        ),
        (
            400,
            {"code": "DataInspectionFailed", "message": "Input data may contain ..."},
            "content_policy",
            False,
        ),
        (400, {"code": "IPInfringementSuspect", "message": "suspected"}, "content_policy", False),
        (400, {"code": "InvalidParameter", "message": "bad duration"}, "invalid_parameter", False),
        (200, {"code": "Throttling.AllocationQuota", "message": "quota"}, "upstream_quota_exhausted", True),
        (200, {"code": "InvalidParameter", "message": "no"}, "invalid_parameter", False),
    ],
)
async def test_refusals_are_mapped_by_dashscope_code(
    tmp_path: Path, status: int, body: dict[str, Any], code: str, retryable: bool
) -> None:
    rig = Rig(tmp_path, canned((status, {"request_id": "r", **body}))[0])
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(request(), rig.ctx)
    assert not isinstance(caught.value, UpstreamOutcomeUnknown)
    assert (caught.value.code, caught.value.retryable) == (code, retryable), caught.value.message


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"request_id": "r", "code": "InternalError", "message": "oops"}),
        (502, "<html>502 Bad Gateway</html>"),
        (200, {"request_id": "r", "code": "InternalError.Algo", "message": "algo"}),  # server-side, in a 200
        (200, {"request_id": "r", "output": {"task_status": "PENDING"}}),  # no task id
        (500, {"request_id": "r", "code": "Throttling.RateQuota", "message": "a 5xx proves nothing"}),
    ],
)
async def test_answers_that_prove_nothing_are_unknown_outcomes(
    tmp_path: Path, status: int, body: Any
) -> None:
    rig = Rig(tmp_path, canned((status, body))[0])
    with pytest.raises(UpstreamOutcomeUnknown):
        await rig.provider.submit(request(), rig.ctx)


@pytest.mark.parametrize(
    ("directive", "error", "made"),
    [
        ("#429=1", "upstream_rate_limited", 0),
        ("#5xx=1", "upstream_outcome_unknown", 0),
        ("#http200_error=1", "upstream_quota_exhausted", 0),
        ("#accept_then_5xx=1", "upstream_outcome_unknown", 1),
    ],
)
async def test_the_fakes_create_faults_in_dashscopes_envelope(
    tmp_path: Path, directive: str, error: str, made: int
) -> None:
    upstream = fake()
    rig = on_fake(tmp_path, upstream)
    text = f"a fault {directive}"
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(request(text), rig.ctx)
    assert caught.value.code == error and caught.value.retryable
    assert len(upstream.journal.creates(text)) == made
    await rig.provider.submit(request(text), rig.ctx)  # the fault fired once: the next create is made
    assert len(upstream.journal.creates(text)) == made + 1


@pytest.mark.parametrize(
    ("directive", "error"),
    [("#poll5xx=1", "upstream_unavailable"), ("#malformed=1", "upstream_bad_response")],
)
async def test_the_fakes_poll_faults_are_retryable(tmp_path: Path, directive: str, error: str) -> None:
    rig = on_fake(tmp_path, fake())
    job = await rig.provider.submit(request(f"a poll fault {directive}"), rig.ctx)
    with pytest.raises(ProviderError) as caught:
        await rig.provider.poll(job, rig.ctx)
    assert caught.value.code == error and caught.value.retryable
    assert (await rig.provider.poll(job, rig.ctx)).state is UpstreamState.RUNNING


async def test_the_fake_refuses_a_create_without_the_async_header_or_the_key() -> None:
    upstream = fake()
    path = "http://x/api/v1/services/aigc/video-generation/video-synthesis"
    body = {"model": T2V, "input": {"prompt": "p"}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream.app)) as client:
        sync = await client.post(path, json=body, headers={"authorization": f"Bearer {KEY}"})
        keyless = await client.post(path, json=body, headers={"x-dashscope-async": "enable"})
    assert sync.status_code == 403 and sync.json()["code"] == "AccessDenied"
    assert "synchronous" in sync.json()["message"]
    assert keyless.status_code == 401 and keyless.json()["code"] == "InvalidApiKey"
    assert upstream.journal.creates() == []


@pytest.mark.parametrize(
    ("model", "route", "fields", "says"),
    [
        ("wan2.2-t2v-plus", "video-generation", {"parameters": {"duration": 10}}, "duration"),
        ("wan2.2-t2v-plus", "video-generation", {"parameters": {"size": "1280*720"}}, "size"),
        (I2V, "video-generation", {"parameters": {"resolution": "2K"}}, "resolution"),
        (T2V, "video-generation", {"input": {"img_url": "https://img.test/a.png"}}, "img_url"),
        (KF2V, "image2video", {"input": {"first_frame_url": "https://img.test/a.png"}}, "last_frame_url"),
        (KF2V, "video-generation", {}, "not served at this URL"),
        (T2V, "video-generation", {"parameters": {"seed": -1}}, "seed"),
        ("wan9-t2v", "video-generation", {}, "Model not exist"),
    ],
)
async def test_the_fake_validates_like_dashscope(
    model: str, route: str, fields: dict[str, Any], says: str
) -> None:
    upstream = fake()
    body: dict[str, Any] = {"model": model, "input": {"prompt": "p", **fields.get("input", {})}}
    if model == I2V:
        body["input"]["img_url"] = "https://img.test/a.png"
    body["parameters"] = fields.get("parameters", {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream.app)) as client:
        answer = await client.post(
            f"http://x/api/v1/services/aigc/{route}/video-synthesis",
            json=body,
            headers={"authorization": f"Bearer {KEY}", "x-dashscope-async": "enable"},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "InvalidParameter" and says in answer.json()["message"]
    assert upstream.journal.creates() == []


# Task answers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (task("PENDING"), UpstreamStatus(UpstreamState.QUEUED, poll_after=0.1)),
        (task("RUNNING"), UpstreamStatus(UpstreamState.RUNNING, poll_after=0.1)),
        (task("WARMING_UP"), UpstreamStatus(UpstreamState.RUNNING, poll_after=0.1)),
        (
            task("SUCCEEDED", video_url="https://oss.test/v.mp4?Expires=1"),
            UpstreamStatus(
                UpstreamState.SUCCEEDED, progress=100, result_url="https://oss.test/v.mp4?Expires=1",
                watermarked=False,
            ),
        ),
        (
            task("SUCCEEDED"),
            UpstreamStatus(
                UpstreamState.FAILED, error_code="upstream_no_result",
                error_message="DashScope reported success but gave no video_url.",
            ),
        ),
        (
            task("FAILED", code="InvalidParameter.Duration", message="bad"),
            UpstreamStatus(
                UpstreamState.FAILED, error_code="invalid_parameter.duration", error_message="bad"
            ),
        ),
        (
            task("FAILED", code="InternalError.Algo", message="the model crashed"),
            UpstreamStatus(
                UpstreamState.FAILED, error_code="internal_error.algo", error_message="the model crashed",
                retryable=True,
            ),
        ),
        (
            task("FAILED", code="DataInspectionFailed", message=BLOCKED),
            UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=BLOCKED),
        ),
        (
            task("CANCELED"),
            UpstreamStatus(
                UpstreamState.FAILED, error_code="upstream_cancelled", error_message="The job was cancelled."
            ),
        ),
    ],
)  # fmt: skip
async def test_task_answers_map_to_statuses(tmp_path: Path, output: Any, expected: UpstreamStatus) -> None:
    rig = Rig(tmp_path, canned((200, output))[0])
    assert await rig.provider.poll(UpstreamJob("t-1"), rig.ctx) == expected


async def test_an_unknown_task_id_is_a_lost_job(tmp_path: Path) -> None:
    rig = on_fake(tmp_path, fake())
    status = await rig.provider.poll(UpstreamJob("0385dc79-5ff8-4d82-bcb6-000000000000"), rig.ctx)
    assert status.state is UpstreamState.FAILED and status.error_code == "upstream_job_lost"
    assert not status.retryable and "24 h" in (status.error_message or "")


async def test_a_job_runs_its_course_on_the_fake(tmp_path: Path) -> None:
    clock = Clock()
    upstream = fake(clock, queue_seconds=5.0)
    rig = on_fake(tmp_path, upstream)
    job = await rig.provider.submit(request(), rig.ctx)
    assert (await rig.provider.poll(job, rig.ctx)).state is UpstreamState.QUEUED
    clock.now += 10
    assert (await rig.provider.poll(job, rig.ctx)).state is UpstreamState.RUNNING
    clock.now += 30
    done = await rig.provider.poll(job, rig.ctx)
    assert done.state is UpstreamState.SUCCEEDED and done.watermarked is False
    assert done.result_url and f"/_fake/files/{job.upstream_id}.mp4?" in done.result_url
    assert [e.detail["reported"] for e in upstream.journal.entries("poll")] == [
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
    ]


async def test_a_failure_in_an_http_200_carries_the_vendor_code_cleaned(tmp_path: Path) -> None:
    clock = Clock()
    upstream = fake(clock)
    rig = on_fake(tmp_path, upstream)
    job = await rig.provider.submit(request("a storm #fail=InternalError.Timeout"), rig.ctx)
    clock.now += 60
    status = await rig.provider.poll(job, rig.ctx)
    assert (status.state, status.error_code, status.retryable) == (
        UpstreamState.FAILED,
        "internal_error.timeout",
        True,
    )


async def test_poll_errors_are_retryable_unless_they_are_refusals(tmp_path: Path) -> None:
    for status, body, code, retryable in [
        (500, {"code": "InternalError", "message": "x"}, "upstream_unavailable", True),
        (429, {"code": "Throttling.RateQuota", "message": "x"}, "upstream_rate_limited", True),
        (200, {"code": "Throttling.RateQuota", "message": "x"}, "upstream_rate_limited", True),
        (200, "not json", "upstream_bad_response", True),
        (400, {"code": "InvalidParameter", "message": "bad id"}, "invalid_parameter", False),
    ]:
        rig = Rig(tmp_path, canned((status, body))[0])
        with pytest.raises(ProviderError) as caught:
            await rig.provider.poll(UpstreamJob("t-1"), rig.ctx)
        assert (caught.value.code, caught.value.retryable) == (code, retryable), (status, body)


async def test_an_expired_oss_link_asks_for_a_fresh_poll(tmp_path: Path) -> None:
    rig = Rig(tmp_path, canned((200, task("PENDING")))[0])
    work = tmp_path / "work"
    work.mkdir()
    done = UpstreamStatus(UpstreamState.SUCCEEDED, result_url="https://dashscope-result.oss.test/v.mp4")
    fetched = await rig.provider.fetch(UpstreamJob("t-1"), done, work, rig.ctx)
    assert fetched.video.exists() and rig.fetcher.urls == [done.result_url]  # through the safe fetcher
    rig.fetcher.status = 403
    with pytest.raises(ResultExpired):
        await rig.provider.fetch(UpstreamJob("t-1"), done, work, rig.ctx)


# Cancel ----------------------------------------------------------------------------------------------


async def test_cancel_stops_a_queued_job_and_says_a_running_one_cannot_be(tmp_path: Path) -> None:
    clock = Clock()
    upstream = fake(clock, queue_seconds=5.0)
    rig = on_fake(tmp_path, upstream)
    queued = await rig.provider.submit(request("queued one"), rig.ctx)
    await rig.provider.cancel(queued)
    assert (await rig.provider.poll(queued, rig.ctx)).error_code == "upstream_cancelled"
    running = await rig.provider.submit(request("running one"), rig.ctx)
    clock.now += 10
    with pytest.raises(ProviderError) as caught:
        await rig.provider.cancel(running)
    assert caught.value.code == "upstream_cannot_cancel" and not caught.value.retryable
    assert [(e.status, e.detail["phase"]) for e in upstream.journal.entries("cancel")] == [
        (200, "queued"),
        (400, "running"),
    ]


# Lookup after an unknown outcome ---------------------------------------------------------------------


async def test_the_lookup_adopts_only_a_job_of_the_same_prompt_once_it_can_tell(tmp_path: Path) -> None:
    clock = Clock()
    upstream = fake(clock)
    rig = on_fake(tmp_path, upstream)
    sent_at = round(clock.now * 1000)
    await rig.provider.submit(request("someone else's lantern"), rig.ctx)
    mine = await rig.provider.submit(request("my lantern"), rig.ctx)
    failing = on_fake(tmp_path, upstream, headers={"X-Fake": "fail=InternalError"})
    failed = await failing.provider.submit(request("my lantern"), failing.ctx)  # same words; fails unbilled
    ask = request("my lantern", sent_at_ms=sent_at)
    with pytest.raises(ProviderError) as caught:  # still running: no prompt to compare yet
        await rig.provider.find_jobs(ask)
    assert caught.value.code == "upstream_lookup_pending" and caught.value.retryable
    clock.now += 60
    found = await rig.provider.find_jobs(ask)
    assert [j.upstream_id for j in found] == [mine.upstream_id]
    assert [
        e.detail["reported"] for e in upstream.journal.entries("poll") if e.job == failed.upstream_id
    ] == [
        "RUNNING"  # asked while it ran; once listed as FAILED it was passed over without asking
    ]
    [listed, *_] = upstream.journal.entries("list")
    assert listed.detail["model_name"] == T2V
    assert await rig.provider.find_jobs(request("never sent", sent_at_ms=sent_at)) == []


async def test_the_lookup_ignores_jobs_made_before_the_create_and_of_other_models(tmp_path: Path) -> None:
    clock = Clock()
    upstream = fake(clock, ready_seconds=1.0)
    rig = on_fake(tmp_path, upstream)
    await rig.provider.submit(request("the same words"), rig.ctx)
    await rig.provider.submit(request("the same words", model="wan2.2-t2v-plus", size=(1920, 1080)), rig.ctx)
    clock.now += 600
    assert await rig.provider.find_jobs(request("the same words", sent_at_ms=round(clock.now * 1000))) == []


async def test_the_lookup_reads_every_page_of_the_task_list(tmp_path: Path) -> None:
    now_ms = round(time.time() * 1000)
    pages = {
        "1": {"data": [{"task_id": f"n{i}", "model_name": T2V, "status": "FAILED", "gmt_create": now_ms}
                       for i in range(20)], "total_page": 2},
        "2": {"data": [{"task_id": "mine", "model_name": T2V, "status": "SUCCEEDED", "gmt_create": now_ms}],
              "total_page": 2},
    }  # fmt: skip

    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/tasks/"):
            return httpx.Response(200, json={"request_id": "r", **pages[req.url.params["page_no"]]})
        return httpx.Response(200, json=task("SUCCEEDED", orig_prompt="p", video_url="https://oss.test/v"))

    rig = Rig(tmp_path, httpx.MockTransport(handle))
    found = await rig.provider.find_jobs(request("p", sent_at_ms=now_ms))
    assert [j.upstream_id for j in found] == ["mine"]


async def test_a_list_the_channel_refuses_is_a_final_answer(tmp_path: Path) -> None:
    rig = Rig(tmp_path, canned((400, {"request_id": "r", "code": "InvalidParameter", "message": "no"}))[0])
    with pytest.raises(ProviderError) as caught:
        await rig.provider.find_jobs(request(sent_at_ms=round(time.time() * 1000)))
    assert not caught.value.retryable  # the worker then treats the channel as one that cannot be asked


async def test_the_fake_lists_within_a_day_only(tmp_path: Path) -> None:
    upstream = fake()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream.app)) as client:
        answer = await client.get(
            "http://x/api/v1/tasks",
            params={"start_time": "20250101000000", "end_time": "20250103000000"},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert answer.status_code == 400 and answer.json()["code"] == "InvalidParameter"


# Probe and secrets -----------------------------------------------------------------------------------


async def test_probe_asks_for_a_task_that_does_not_exist(tmp_path: Path) -> None:
    upstream = fake()
    assert (await on_fake(tmp_path, upstream).provider.probe()).ok
    refused = await on_fake(tmp_path, upstream, api_key="sk-wrong-key-0000000000").provider.probe()
    assert not refused.ok and "credentials" in refused.verdict
    assert upstream.journal.creates() == []


async def test_an_echoed_key_never_reaches_the_error(tmp_path: Path) -> None:
    upstream = fake()
    rig = on_fake(tmp_path, upstream)
    registry = ProviderRegistry(rig.deps)  # wraps it in SecretScrubbing, like every channel
    with pytest.raises(ProviderError) as caught:
        await registry("ds").submit(request("echo #echo_key"), rig.ctx)
    assert KEY not in caught.value.message and KEY.upper() not in caught.value.message
    assert caught.value.code == "upstream_error"  # a key is no code
    await registry.aclose()
