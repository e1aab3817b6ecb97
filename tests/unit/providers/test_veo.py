"""The `veo` kind (Google Veo through the Gemini API): request mapping, reading operations, Google's errors,
the keyed download, and the fake's checks, with the shipped fake served in-process (httpx.ASGITransport)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from vidgate.config import Settings
from vidgate.domain.capabilities import AudioSupport, sizes_for
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
from vidgate.providers.registry import ProviderDeps, profile_for
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.providers.veo import VeoProvider, raise_for_google, read_operation
from vidgate.store.blobs import LocalBlobStore
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio
KEY = "AIza-fake-veo-key-0123456789"
API = "http://veo.test"
CDN = "http://storage.fake.test"
V31 = "veo-3.1-generate-preview"


class RecordingFetcher:
    """Stands in for the SSRF-safe fetcher: records what it is asked for (it has no key to send), and
    fetches it from the fake without any credentials."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls: list[str] = []
        self.transport = transport

    async def fetch_to_file(self, url: str, dest: Path, **_: Any) -> str:
        self.urls.append(url)
        if self.transport is None:
            raise FetchFailed("no network here", http_status=403)
        async with httpx.AsyncClient(transport=self.transport) as plain:
            response = await plain.get(url)
        if response.status_code != 200:
            raise FetchFailed(f"HTTP {response.status_code}", http_status=response.status_code)
        dest.write_bytes(response.content)
        return "video/mp4"


class Rig:
    """A VeoProvider on the fake (or on a handler), with storage for input images."""

    def __init__(self, tmp_path: Path, transport: httpx.AsyncBaseTransport, **channel: Any) -> None:
        options = channel.pop("options", {})
        settings = Settings(
            data_dir=tmp_path,
            channels=[
                {
                    "name": "veo",
                    "kind": "veo",
                    "base_url": f"{API}/v1beta",
                    "api_key": channel.pop("api_key", KEY),
                    "models": channel.pop("models", [V31]),
                    "options": {"poll_seconds": 0.1, **options},
                    **channel,
                }
            ],
        )
        self.blobs = LocalBlobStore(tmp_path / "media")
        self.fetcher = RecordingFetcher(transport)
        deps = ProviderDeps(settings, self.blobs, self.fetcher, UpstreamHttp(transport))  # type: ignore[arg-type]
        self.channel = settings.channels[0]
        self.provider = VeoProvider(self.channel, deps)
        self.ctx = StepContext("t", tmp_path, report_progress=_no_progress)
        self.work = tmp_path / "work"
        self.work.mkdir()

    async def image(self, index: int, color: tuple[int, int, int] = (200, 40, 40)) -> InputImage:
        buf = io.BytesIO()
        Image.new("RGB", (64, 36), color).save(buf, "PNG")
        key = f"tasks/t/inputs/{index}.png"
        await self.blobs.put_bytes(buf.getvalue(), key)
        return InputImage(index, "upload", key, 64, 36)


async def _no_progress(_: int) -> None:
    return None


def fake_upstream(**kwargs: Any) -> FakeUpstream:
    fake = FakeUpstream(api_key=KEY, ready_seconds=0.0, clip_scale=20, cdn_base_url=CDN, **kwargs)
    fake.base_url = API
    return fake


def request(
    prompt: str = "a lighthouse at dusk",
    *,
    model: str = V31,
    size: tuple[int, int] = (1280, 720),
    seconds: int = 8,
    images: tuple[InputImage, ...] = (),
    **fields: Any,
) -> SubmitRequest:
    passthrough = {k: fields.pop(k) for k in ("seed", "negative_prompt") if k in fields}
    return SubmitRequest(
        task_id="t",
        idempotency_key="t-0",
        model=model,
        prompt=prompt,
        width=size[0],
        height=size[1],
        seconds=seconds,
        watermark_mode=WatermarkMode.PREFER_CLEAN,
        private=False,
        images=images,
        passthrough=passthrough,
        **fields,
    )


# The table ---------------------------------------------------------------------------------------


def test_the_table_says_what_each_model_can_do(tmp_path: Path) -> None:
    models = [V31, "veo-3.0-fast-generate-001", "veo-2.0-generate-001", "veo-9-unknown"]
    settings = Settings(
        data_dir=tmp_path,
        channels=[
            {"name": "veo", "kind": "veo", "base_url": f"{API}/v1beta", "api_key": KEY, "models": models}
        ],
    )
    caps = profile_for(settings.channels[0]).capabilities
    v31, v30, v2, unknown = (caps[m] for m in models)
    assert v31.durations == {4, 6, 8} and v31.sizes == sizes_for(["720p", "1080p"], ["16:9", "9:16"])
    assert v31.audio is AudioSupport.ALWAYS and v31.makes_audio(None)
    assert v31.last_frame and v31.reference_images == 3 and v31.max_images == 3
    assert v31.seed and v31.negative_prompt and not v31.enhance_prompt
    assert v30.audio is AudioSupport.ALWAYS and not v30.last_frame and v30.max_images == 1
    assert v2.durations == {5, 6, 8} and v2.sizes == sizes_for(["720p"], ["16:9", "9:16"])
    assert v2.audio is AudioSupport.NONE and not v2.seed and v2.negative_prompt
    # A model the table does not know: the channel's settings, with sound and negativePrompt.
    assert unknown.audio is AudioSupport.ALWAYS and unknown.negative_prompt and not unknown.seed
    assert VeoProvider.model_capabilities(settings.channels[0], "veo-9-unknown") is None
    assert not VeoProvider.traits.can_cancel and not VeoProvider.traits.can_find_jobs


# Request -> body ---------------------------------------------------------------------------------


async def test_text_to_video_maps_every_field_and_never_sends_generate_audio(tmp_path: Path) -> None:
    rig = Rig(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)))
    body = await rig.provider.create_body(
        request(seed=7, negative_prompt="rain", generate_audio=True, size=(720, 1280), seconds=6), V31
    )
    assert body == {
        "instances": [{"prompt": "a lighthouse at dusk"}],
        "parameters": {
            "aspectRatio": "9:16",
            "durationSeconds": 6,
            "resolution": "720p",
            "negativePrompt": "rain",
            "seed": 7,
            "personGeneration": "allow_all",
        },
    }


async def test_a_first_frame_goes_inline_as_base64_png(tmp_path: Path) -> None:
    rig = Rig(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)))
    first = await rig.image(0)
    body = await rig.provider.create_body(request(images=(first,)), V31)
    image = body["instances"][0]["image"]
    assert image["mimeType"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(image["bytesBase64Encoded"]))) as decoded:
        assert decoded.size == (64, 36)  # scaled to fit the video, never cropped or enlarged
    assert body["parameters"]["personGeneration"] == "allow_adult"  # what image-to-video takes
    assert "referenceImages" not in body["instances"][0]


async def test_first_and_last_frames_and_reference_images(tmp_path: Path) -> None:
    rig = Rig(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)))
    first, last, other = await rig.image(0), await rig.image(1, (0, 0, 200)), await rig.image(2)
    body = await rig.provider.create_body(request(images=(first,), last_frame=last), V31)
    instance = body["instances"][0]
    assert set(instance) == {"prompt", "image", "lastFrame"}
    assert instance["lastFrame"]["mimeType"] == "image/png"
    body = await rig.provider.create_body(request(images=(first, other)), V31)
    refs = body["instances"][0]["referenceImages"]
    assert [r["referenceType"] for r in refs] == ["asset", "asset"] and "image" not in body["instances"][0]
    # One image is a reference where the channel says so.
    rig = Rig(tmp_path / "b", httpx.MockTransport(lambda r: httpx.Response(500)))
    rig.provider.options = rig.provider.options.model_copy(update={"single_image": "reference"})
    body = await rig.provider.create_body(request(images=(await rig.image(0),)), V31)
    assert len(body["instances"][0]["referenceImages"]) == 1


@pytest.mark.parametrize(
    ("model", "size", "seconds", "extra", "why"),
    [
        (V31, (1920, 1080), 6, {}, "1080p only at 8 seconds"),
        (V31, (1280, 720), 4, {"last_frame": True}, "last frame (interpolation) only at 8 seconds"),
        (V31, (720, 1280), 8, {"references": 2}, "reference images only at 16:9"),
        ("veo-3.0-generate-001", (1080, 1920), 8, {}, "1080p only at 16:9"),
        (V31, (1280, 720), 8, {"generate_audio": False}, "cannot turn a Veo 3 model's sound off"),
        ("veo-2.0-generate-001", (1280, 720), 8, {"generate_audio": True}, "silent videos only"),
        (V31, (1024, 1792), 8, {}, "16:9 or 9:16"),
        (V31, (1280, 720), 8, {"last_frame": True, "references": 2}, "exactly one first frame"),
    ],
)
async def test_what_a_model_cannot_make_is_refused_before_anything_is_sent(
    tmp_path: Path, model: str, size: tuple[int, int], seconds: int, extra: dict[str, Any], why: str
) -> None:
    sent: list[httpx.Request] = []
    rig = Rig(tmp_path, httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(500)))
    images = tuple([await rig.image(i) for i in range(extra.pop("references", 1))])
    if extra.pop("last_frame", False):
        extra["last_frame"] = await rig.image(9)
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(
            request(model=model, size=size, seconds=seconds, images=images, **extra), rig.ctx
        )
    assert caught.value.code == "unsupported_combination" and not caught.value.retryable
    assert why in caught.value.message and not sent


async def test_veo_2_gets_no_resolution_and_the_operator_sets_person_generation(tmp_path: Path) -> None:
    rig = Rig(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)))
    body = await rig.provider.create_body(
        request(model="veo-2.0-generate-001", seconds=5), "veo-2.0-generate-001"
    )
    assert "resolution" not in body["parameters"] and body["parameters"]["durationSeconds"] == 5
    eu = {"person_generation": "allow_adult", "extra_parameters": {"sampleCount": 1}}
    rig = Rig(tmp_path / "eu", httpx.MockTransport(lambda r: httpx.Response(500)), options=eu)
    body = await rig.provider.create_body(request(), V31)
    assert body["parameters"]["personGeneration"] == "allow_adult"
    assert body["parameters"]["sampleCount"] == 1


# Operation -> status -----------------------------------------------------------------------------

NAME = f"models/{V31}/operations/abc123"
RUNNING, SUCCEEDED, FAILED = UpstreamState.RUNNING, UpstreamState.SUCCEEDED, UpstreamState.FAILED


def done(result: dict[str, Any]) -> dict[str, Any]:
    return {"name": NAME, "done": True, "response": {"generateVideoResponse": result}}


def failed(code: int, message: str) -> dict[str, Any]:
    return {"name": NAME, "done": True, "error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("operation", "state", "code", "retryable"),
    [
        ({"name": NAME}, RUNNING, None, False),
        ({"name": NAME, "done": False, "metadata": {}}, RUNNING, None, False),
        (done({"generatedSamples": [{"video": {"uri": "https://x/f:download"}}]}), SUCCEEDED, None, False),
        (done({"generatedSamples": [{"video": {"encodedVideo": "AAAA"}}]}), SUCCEEDED, None, False),
        (done({"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["Veo could not generate 1 videos."]}),
         FAILED, "content_policy", False),
        (done({"raiMediaFilteredCount": 2}), FAILED, "content_policy", False),
        (done({}), FAILED, "upstream_no_result", False),
        ({"name": NAME, "done": True}, FAILED, "upstream_no_result", False),
        (failed(8, "Resource has been exhausted."), FAILED, "upstream_rate_limited", True),
        (failed(429, "Quota exceeded."), FAILED, "upstream_rate_limited", True),
        (failed(13, "Internal error encountered."), FAILED, "internal", True),
        (failed(3, "The prompt violates our safety policy."), FAILED, "content_policy", False),
        (failed(3, "Bad image."), FAILED, "invalid_argument", False),
        ({"name": NAME, "error": {"code": 1, "message": "Cancelled."}}, FAILED, "upstream_cancelled", False),
    ],
)  # fmt: skip
def test_operations_read_as_statuses(
    operation: dict[str, Any], state: UpstreamState, code: str | None, retryable: bool
) -> None:
    status = read_operation(operation, poll_after=3.0)
    assert (status.state, status.error_code, status.retryable) == (state, code, retryable)
    if state is UpstreamState.RUNNING:
        assert status.poll_after == 3.0 and status.progress is None


def test_a_filtered_video_is_a_failure_that_names_google_s_reason() -> None:
    reason = "We encountered an issue with the audio for your prompt. You have not been charged."
    status = read_operation(done({"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [reason]}))
    assert status.state is UpstreamState.FAILED and status.result_url is None
    assert reason in (status.error_message or "")


# Google's errors ---------------------------------------------------------------------------------


def google(status: int, message: str, word: str, **extra: Any) -> httpx.Response:
    body = {"error": {"code": status, "message": message, "status": word, **extra}}
    return httpx.Response(status, json=body, request=httpx.Request("POST", f"{API}/v1beta/x"))


def test_google_s_errors_are_mapped() -> None:
    invalid_key = google(
        400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT",
        details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )  # fmt: skip
    cases: list[tuple[httpx.Response, str, bool]] = [
        (invalid_key, "upstream_auth_failed", True),
        (google(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED"),
         "upstream_auth_failed", True),
        (google(400, "Unsupported aspect ratio.", "INVALID_ARGUMENT"), "invalid_argument", False),
        (google(400, "User location is not supported for the API use.", "FAILED_PRECONDITION"),
         "failed_precondition", False),
        (google(404, "models/x is not found.", "NOT_FOUND"), "not_found", False),
    ]  # fmt: skip
    for response, code, retryable in cases:
        with pytest.raises(ProviderError) as caught:
            raise_for_google(response, "create", may_create=True)
        assert (caught.value.code, caught.value.retryable) == (code, retryable), response.text
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}
    quota = google(429, "You exceeded your current quota.", "RESOURCE_EXHAUSTED", details=[retry])
    with pytest.raises(ProviderError) as caught:
        raise_for_google(quota, "create", may_create=True)
    assert caught.value.code == "upstream_rate_limited" and caught.value.retry_after == 17.0
    with pytest.raises(UpstreamOutcomeUnknown):  # a 5xx may come after the job was made
        raise_for_google(google(503, "The model is overloaded.", "UNAVAILABLE"), "create", may_create=True)
    with pytest.raises(ProviderError) as caught:
        raise_for_google(google(500, "Internal error encountered.", "INTERNAL"), "poll")
    assert caught.value.code == "upstream_unavailable" and caught.value.retryable


# Through the fake ---------------------------------------------------------------------------------


async def test_a_job_through_the_fake_downloads_with_the_key_only_from_the_api(tmp_path: Path) -> None:
    fake = fake_upstream()
    transport = httpx.ASGITransport(app=fake.app)
    rig = Rig(tmp_path, transport)
    job = await rig.provider.submit(request("a fox #ready=0", seed=3, negative_prompt="fog"), rig.ctx)
    assert job.upstream_id.startswith(f"models/{V31}/operations/") and job.poll_after == 0.1
    [made] = fake.journal.creates("a fox #ready=0")
    assert (
        made.detail["seed"] == 3
        and made.detail["negativePrompt"] == "fog"
        and "generateAudio" not in made.detail
    )
    assert made.detail["key_in"] == "header"
    status = await rig.provider.poll(job, rig.ctx)
    assert status.state is UpstreamState.SUCCEEDED
    assert status.result_url and status.result_url.startswith(f"{API}/v1beta/files/")
    result = await rig.provider.fetch(job, status, rig.work, rig.ctx)
    assert result.video.read_bytes()[4:8] == b"ftyp"
    [redirect] = rig.fetcher.urls  # the storage link came from the API's redirect, fetched without a key
    assert redirect.startswith(f"{CDN}/_fake/veo-storage/") and "key=" not in redirect
    [storage] = fake.journal.entries("storage_get")
    assert not storage.detail["key_header"] and not storage.detail["key_param"]
    assert [e.status for e in fake.journal.entries("download") if e.dialect == "veo"] == [302]


async def test_a_result_on_another_origin_is_never_sent_the_key(tmp_path: Path) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request("a fox #ready=0 #uri_on_cdn"), rig.ctx)
    status = await rig.provider.poll(job, rig.ctx)
    assert status.result_url and status.result_url.startswith(CDN)
    await rig.provider.fetch(job, status, rig.work, rig.ctx)
    assert not [e for e in fake.journal.entries("download") if e.dialect == "veo"]  # the API was not asked
    [storage] = fake.journal.entries("storage_get")
    assert not storage.detail["key_header"]


async def test_an_inline_video_is_read_from_the_operation(tmp_path: Path) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request("a fox #ready=0 #inline_video"), rig.ctx)
    status = await rig.provider.poll(job, rig.ctx)
    assert status.state is UpstreamState.SUCCEEDED and status.result_url is None
    result = await rig.provider.fetch(job, status, rig.work, rig.ctx)
    assert result.video.read_bytes()[4:8] == b"ftyp" and not rig.fetcher.urls


async def test_an_expired_storage_link_asks_for_a_fresh_one(tmp_path: Path) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request("a fox #ready=0 #expired_link=1"), rig.ctx)
    status = await rig.provider.poll(job, rig.ctx)
    with pytest.raises(ResultExpired):
        await rig.provider.fetch(job, status, rig.work, rig.ctx)
    status = await rig.provider.poll(job, rig.ctx)
    await rig.provider.fetch(job, status, rig.work, rig.ctx)
    assert len(rig.fetcher.urls) == 2  # the second redirect's link worked
    assert [e.status for e in fake.journal.entries("download") if e.dialect == "files"] == [403, 200]


@pytest.mark.parametrize(
    ("directive", "code"),
    [("#filtered", "content_policy"), ("#moderation=job", "content_policy"),
     ("#op_error=resource_exhausted", "upstream_rate_limited"), ("#op_error=13", "internal"),
     ("#no_video", "upstream_no_result")],
)  # fmt: skip
async def test_the_fake_s_endings_read_as_failures(tmp_path: Path, directive: str, code: str) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request(f"a fox #ready=0 {directive}"), rig.ctx)
    status = await rig.provider.poll(job, rig.ctx)
    assert (status.state, status.error_code) == (UpstreamState.FAILED, code)


async def test_a_running_operation_and_a_lost_one(tmp_path: Path) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request("a fox #ready=600"), rig.ctx)
    assert (await rig.provider.poll(job, rig.ctx)).state is UpstreamState.RUNNING
    lost = UpstreamJob(f"models/{V31}/operations/nope")
    with pytest.raises(ProviderError) as caught:
        await rig.provider.poll(lost, rig.ctx)
    assert caught.value.code == "upstream_job_lost"


async def test_a_wrong_key_is_refused_credentials_and_the_probe_says_so(tmp_path: Path) -> None:
    fake = fake_upstream()
    transport = httpx.ASGITransport(app=fake.app)
    rig = Rig(tmp_path, transport, api_key="AIza-wrong")
    with pytest.raises(ProviderError) as caught:
        await rig.provider.submit(request("a fox"), rig.ctx)
    assert caught.value.code == "upstream_auth_failed" and caught.value.retryable
    assert not (await rig.provider.probe()).ok
    assert (await Rig(tmp_path / "ok", transport).provider.probe()).ok
    assert fake.journal.count("create") == 0


async def test_a_create_answered_by_a_proxy_error_is_an_unknown_outcome(tmp_path: Path) -> None:
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    with pytest.raises(UpstreamOutcomeUnknown):
        await rig.provider.submit(request("a fox #accept_then_5xx=1"), rig.ctx)
    assert fake.journal.count("create") == 1  # the job was made all the same
    assert await rig.provider.find_jobs(request("a fox")) == ()


# The fake's own checks ------------------------------------------------------------------------------


def png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    ("model", "body", "status", "needle"),
    [
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"aspectRatio": "1:1"}}, 400, "aspect ratio"),
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": 5}}, 400, "durationSeconds"),
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"generateAudio": True}}, 400, "generateAudio"),
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"generate_audio": True}}, 400, "Unknown name"),
        (V31, {"instances": [{"prompt": "p", "image": {"bytesBase64Encoded": png_b64()}}]}, 400, "mimeType"),
        (V31, {"instances": [{"prompt": "p", "lastFrame": {"bytesBase64Encoded": png_b64(),
                                                             "mimeType": "image/png"}}]}, 400, "image"),
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"personGeneration": "allow_adult"}},
         400, "allow_all"),
        (V31, {"instances": [{"prompt": "p"}], "parameters": {"resolution": "1080p", "durationSeconds": 4}},
         400, "durationSeconds 8"),
        ("veo-2.0-generate-001", {"instances": [{"prompt": "p"}], "parameters": {"resolution": "720p"}},
         400, "resolution"),
        ("veo-2.0-generate-001", {"instances": [{"prompt": "p"}], "parameters": {"seed": 1}}, 400, "seed"),
        ("veo-9", {"instances": [{"prompt": "p"}]}, 404, "not found"),
    ],
)  # fmt: skip
async def test_the_fake_validates_like_google(
    model: str, body: dict[str, Any], status: int, needle: str
) -> None:
    fake = fake_upstream()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url=API) as client:
        response = await client.post(
            f"/v1beta/models/{model}:predictLongRunning", json=body, headers={"x-goog-api-key": KEY}
        )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert needle in error["message"]
    assert fake.journal.count("create") == 0


async def test_the_fake_refuses_keys_as_google_does() -> None:
    fake = fake_upstream()
    body = {"instances": [{"prompt": "p"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url=API) as client:
        missing = await client.post(f"/v1beta/models/{V31}:predictLongRunning", json=body)
        wrong = await client.post(
            f"/v1beta/models/{V31}:predictLongRunning", json=body, headers={"x-goog-api-key": "nope"}
        )
        by_param = await client.post(f"/v1beta/models/{V31}:predictLongRunning?key={KEY}", json=body)
        name = by_param.json()["name"]
        unkeyed_poll = await client.get(f"/v1beta/{name}")
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert by_param.status_code == 200 and unkeyed_poll.status_code == 403


async def test_status_for_succeeded_without_result_is_fetched_inline(tmp_path: Path) -> None:
    """A status rebuilt from the task's memo (no URL) still fetches: the operation is read again."""
    fake = fake_upstream()
    rig = Rig(tmp_path, httpx.ASGITransport(app=fake.app))
    job = await rig.provider.submit(request("a fox #ready=0"), rig.ctx)
    with pytest.raises(ProviderError) as caught:
        await rig.provider.fetch(job, UpstreamStatus(UpstreamState.SUCCEEDED), rig.work, rig.ctx)
    assert caught.value.code == "upstream_no_result"
