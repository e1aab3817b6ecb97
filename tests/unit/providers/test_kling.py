"""The `kling` kind: its model table, its signed tokens, what a request becomes on Kling's wire, what
Kling's answers (codes in HTTP 200s included) become, and the Kling fake it is tested against (driven
through `httpx.ASGITransport`, on a hand-driven clock for the jobs; tokens live on wall time)."""

from __future__ import annotations

import time
import warnings
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.unit.providers.adapter_support import (
    T0,
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
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.kling import KlingProvider, KlingToken, kling_error, read_task
from vidgate.providers.kling_models import kling_model
from vidgate.providers.registry import (
    ChannelConfigError,
    channel_options,
    check_channels,
    profile_for,
)
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.redaction import REDACTED, Redactor
from vidgate.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio

ACCESS = "ak-kling-access-0123456789"
SECRET = "sk-kling-secret-9876543210-abcdefghij"  # Kling's are 32 characters
MODELS = ["kling-v1", "kling-v1-6", "kling-v2-1", "kling-v2-6", "kling-v2-1-master", "kling-v3"]


def channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "kling",
        "kind": "kling",
        "base_url": "http://kling.test",
        "models": MODELS,
        "options": {"access_key": ACCESS, "secret_key": SECRET, "poll_seconds": 2},
        **overrides,
    }
    return ChannelSettings(**values)


# What a create answers, for the tests that only read the wire.
CREATED = {"code": 0, "data": {"task_id": "860000000000000001"}}


def request(model: str = "kling-v1-6", **fields: Any) -> SubmitRequest:
    return submit_request(model, **{"prompt": "a red fox in the snow", "seconds": 5, **fields})


async def stored_image(tmp_path: Path, index: int, size: tuple[int, int] = (960, 540)) -> InputImage:
    return await uploaded_image(tmp_path, index, size, (200, 40, 40))


def provider_on(
    transport: httpx.AsyncBaseTransport, tmp_path: Path, fetcher: Any = None, **overrides: Any
) -> AbstractAsyncContextManager[KlingProvider]:
    return adapter_on(KlingProvider, channel(**overrides), transport, tmp_path, fetcher)


@pytest.fixture
def fake(clock: Clock) -> FakeUpstream:
    return fake_upstream(SECRET, clock, "http://cdn.kling.test")


# The model table and the routing it gives ----------------------------------------------------------


def test_the_table_says_what_each_model_makes() -> None:
    v16 = kling_model("Kling-V1-6")
    assert v16 is not None and v16.mode_for("720p") == "std" and v16.mode_for("1080p") == "pro"
    caps = v16.capabilities()
    assert caps.durations == frozenset({5, 10}) and not caps.seed and caps.negative_prompt
    assert caps.sizes == sizes_for(("720p", "1080p"), ("16:9", "9:16", "1:1"))
    assert caps.last_frame and caps.resolutions_with == {"last_frame": frozenset({"1080p"})}
    v1 = kling_model("kling-v1")
    assert v1 is not None and v1.capabilities().durations_with == {"last_frame": frozenset({5})}
    assert v1.capabilities().resolutions == ["720p"]
    i2v_only = kling_model("kling-v2-1")
    assert i2v_only is not None and i2v_only.capabilities().needs_first_frame
    master = kling_model("kling-v2-1-master")
    assert master is not None and master.mode_for("1080p") == "" and not master.capabilities().last_frame
    v26 = kling_model("kling-v2-6")
    assert v26 is not None and v26.capabilities().audio is AudioSupport.OPTIONAL
    assert v26.capabilities().resolutions_with == {
        "last_frame": frozenset({"1080p"}),
        "audio": frozenset({"1080p"}),
    }
    v3 = kling_model("kling-v3")
    assert v3 is not None and v3.capabilities().durations == frozenset(range(3, 16))
    assert v3.capabilities().resolutions_with == {}
    assert kling_model("kling-v9") is None


@pytest.mark.parametrize(
    ("model", "size", "ask", "expected"),
    [
        ("kling-v1-6", "1280x720", GenerationAsk(1, last_frame=True), ("resolution", "1080p")),
        ("kling-v1-6", "1920x1080", GenerationAsk(1, last_frame=True), None),
        ("kling-v1", "1280x720", GenerationAsk(1, last_frame=True), ("duration", "5 s")),
        ("kling-v2-6", "720x1280", GenerationAsk(0, audio=True), ("resolution", "1080p")),
        ("kling-v2-6", "1080x1920", GenerationAsk(0, audio=True), None),
    ],
)
def test_what_a_mode_or_length_ties_is_refused_at_create(
    model: str, size: str, ask: GenerationAsk, expected: tuple[str, str] | None
) -> None:
    known = kling_model(model)
    assert known is not None
    seconds = 10 if model == "kling-v1" else 5
    conflict = known.capabilities().conflict(seconds, size, ask)
    if expected is None:
        assert conflict is None
    else:
        assert conflict is not None and conflict[0] == expected[0] and expected[1] in conflict[1]


def test_a_channel_profile_uses_the_table_and_the_keys_make_the_traits() -> None:
    profile = profile_for(channel(models=["fox", "kling-v3"], model_map={"fox": "kling-future"}))
    assert profile.traits.can_find_jobs and not profile.traits.can_cancel
    assert profile.capabilities["kling-v3"].durations == frozenset(range(3, 16))
    unknown = profile.capabilities["fox"]  # the channel's own sizes Kling can name
    assert unknown.sizes == frozenset({"720x1280", "1280x720", "1080x1920", "1920x1080"})
    assert unknown.negative_prompt and unknown.max_images == 1
    no_lookup = {"access_key": ACCESS, "secret_key": SECRET, "lookup": False}
    assert not profile_for(channel(options=no_lookup)).traits.can_find_jobs


def test_options_need_both_keys_take_env_and_refuse_our_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ChannelConfigError, match=r"channel 'kling'.*options\.secret_key"):
        channel_options(channel(options={"access_key": ACCESS}))
    with pytest.raises(ChannelConfigError, match="KLING_SK"):
        channel_options(channel(options={"access_key": ACCESS, "secret_key": "env:KLING_SK"}))
    monkeypatch.setenv("KLING_SK", "from-the-environment")
    options = channel_options(channel(options={"access_key": ACCESS, "secret_key": "env:KLING_SK"}))
    assert options.secret_key.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(options)
    with pytest.raises(ChannelConfigError, match="extra_body"):
        channel_options(
            channel(options={"access_key": ACCESS, "secret_key": SECRET, "extra_body": {"mode": "x"}})
        )
    with pytest.raises(ChannelConfigError, match="cfg_scale"):
        channel_options(channel(options={"access_key": ACCESS, "secret_key": SECRET, "cfg_scale": 3}))


def test_a_correction_kling_cannot_carry_is_an_error_at_start_naming_channel_model_and_field() -> None:
    with pytest.raises(
        ChannelConfigError, match=r"channel 'kling': capabilities of model 'kling-v3' set seed"
    ):
        check_channels(Settings(channels=[channel(capabilities={"kling-v3": {"seed": True}})]))
    with pytest.raises(ChannelConfigError, match=r"model '\*' set enhance_prompt"):
        check_channels(Settings(channels=[channel(capabilities={"*": {"enhance_prompt": True}})]))


async def test_sound_follows_the_channels_corrections(tmp_path: Path) -> None:
    """A silent model the operator says makes sound (Kling added it, say) gets `sound` as routing allowed."""
    corrected = {"kling-v1-6": {"audio": "optional"}}
    async with provider_on(captured(CREATED)[1], tmp_path, capabilities=corrected) as provider:
        _, body = await provider.create_body(request(generate_audio=True))
    assert body["sound"] == "on"


# Tokens ----------------------------------------------------------------------------------------------


def test_a_token_is_an_hs256_jwt_renewed_before_it_expires_and_kept_out_of_messages() -> None:
    now = [T0]
    redactor = Redactor()
    token = KlingToken(ACCESS, SECRET, redactor, clock=lambda: now[0])
    first = token.token()
    claims = jwt.decode(
        first, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == {"iss": ACCESS, "exp": int(T0) + 1800, "nbf": int(T0) - 5}
    assert jwt.get_unverified_header(first) == {"alg": "HS256", "typ": "JWT"}
    now[0] += 1400
    assert token.token() == first  # still 400 s left
    now[0] += 200
    second = token.token()  # under 5 minutes left: a new one
    assert second != first and redactor.redact(f"echo {second}") == f"echo {REDACTED}"
    assert redactor.redact(f"echo {first}") == f"echo {REDACTED}"  # the previous one may be in flight
    now[0] += 1600
    third = token.token()
    assert third not in (first, second)
    # Two generations old, expired: its signature is no longer a secret to hide.
    assert first.rsplit(".", 1)[1] in redactor.redact(first)
    token.renew()  # Kling refused it (1003/1004): the next request gets one made now
    now[0] += 1
    assert token.token() != third


# Request -> Kling's create --------------------------------------------------------------------------


async def test_a_text_to_video_create_carries_the_fields_kling_documents(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        job = await provider.submit(
            request(size=(1080, 1920), seconds=10, passthrough={"negative_prompt": "blur"}), ctx(tmp_path)
        )
    assert (job.upstream_id, job.memo) == ("860000000000000001", {"route": "text2video"})
    [sent] = seen
    assert sent.url.path == "/v1/videos/text2video"
    token = sent.headers["authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["iss"] == ACCESS
    assert body_of(sent) == {
        "model_name": "kling-v1-6",
        "prompt": "a red fox in the snow",
        "negative_prompt": "blur",
        "duration": "10",
        "mode": "pro",
        "aspect_ratio": "9:16",
        "external_task_id": "01task-0",
    }


@pytest.mark.parametrize("base_url", ["http://kling.test", "http://kling.test/v1/"])
async def test_the_base_url_is_the_host_with_or_without_v1(tmp_path: Path, base_url: str) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path, base_url=base_url) as provider:
        await provider.submit(request(), ctx(tmp_path))
    assert [r.url.path for r in seen] == ["/v1/videos/text2video"]


async def test_sound_is_always_said_on_a_model_with_sound_and_never_sent_to_a_silent_one(
    tmp_path: Path,
) -> None:
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        _, loud = await provider.create_body(request("kling-v2-6", size=(1920, 1080), generate_audio=True))
        _, quiet = await provider.create_body(request("kling-v2-6", size=(1280, 720)))
        _, v3 = await provider.create_body(request("kling-v3", seconds=7, generate_audio=True))
        _, master = await provider.create_body(request("kling-v2-1-master", size=(1920, 1080)))
        with pytest.raises(ProviderError, match="only at 1080p") as std_sound:
            await provider.create_body(request("kling-v2-6", generate_audio=True))
    assert (loud["sound"], loud["mode"], quiet["sound"], quiet["mode"]) == ("on", "pro", "off", "std")
    assert v3["sound"] == "on" and v3["duration"] == "7"
    assert "sound" not in master and "mode" not in master  # a master model takes no mode
    assert std_sound.value.code == "unsupported_combination"


async def test_images_go_as_the_clients_url_or_bare_base64_with_the_last_frame_as_image_tail(
    tmp_path: Path,
) -> None:
    first = await stored_image(tmp_path, 0)
    async with provider_on(captured(CREATED)[1], tmp_path) as provider:
        route, by_url = await provider.create_body(
            request(size=(1920, 1080), images=(image(0),), last_frame=image(1, "https://img.example/end.png"))
        )
        _, uploaded = await provider.create_body(request(prompt="", images=(first,)))
    assert route == "image2video" and "aspect_ratio" not in by_url  # the video keeps the image's shape
    assert (by_url["image"], by_url["image_tail"]) == (
        "https://img.example/fox.png",
        "https://img.example/end.png",
    )
    assert uploaded["image"].startswith("iVBORw0KGgo") and "prompt" not in uploaded  # PNG, no data: head


async def test_what_kling_cannot_take_is_refused_before_sending(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        refusals = {}
        for name, req in {
            "small": request(images=(image(0, size=(280, 500)),)),
            "thin": request(images=(image(0, size=(1200, 400)),)),
            "long": request(prompt="x" * 2501),
            "text_on_i2v": request("kling-v2-1"),
            "size": request(size=(1024, 1792)),
            "tail_and_sound": request(
                "kling-v2-6", size=(1920, 1080), images=(image(0),), last_frame=image(1), generate_audio=True
            ),
        }.items():
            with pytest.raises(ProviderError) as caught:
                await provider.submit(req, ctx(tmp_path))
            refusals[name] = caught.value.code
    assert refusals == {
        "small": "invalid_image",
        "thin": "invalid_image",
        "long": "prompt_too_long",
        "text_on_i2v": "unsupported_combination",
        "size": "unsupported_size",
        "tail_and_sound": "unsupported_combination",
    }
    assert not seen


# Kling's answers -------------------------------------------------------------------------------------


def kling(status: int, code: int | None, message: str = "no", **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"message": message, "request_id": "r"}
    if code is not None:
        body["code"] = code
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (kling(401, 1000), "upstream_auth_failed", True),
        (kling(401, 1004), "upstream_auth_failed", True),
        (kling(200, 1002), "upstream_auth_failed", True),  # a code in an HTTP 200 is an error all the same
        (kling(429, 1101), "upstream_account_in_arrears", True),
        (kling(429, 1102), "upstream_quota_exhausted", True),
        (kling(403, 1103), "upstream_auth_failed", True),
        (kling(400, 1201, "model_name is invalid"), "invalid_parameter", False),
        (kling(404, 1203), "upstream_auth_failed", True),  # no such model for this account: next channel
        (kling(400, 1301), "content_policy", False),
        (kling(200, 1301), "content_policy", False),
        (kling(429, 1302, **{"retry-after": "3"}), "upstream_rate_limited", True),
        (kling(200, 1303), "upstream_rate_limited", True),
        (kling(429, 1304), "upstream_auth_failed", True),
        (kling(400, 1234), "kling_1234", False),
        (kling(400, None), "upstream_refused", False),
    ],
)
def test_create_refusals_are_mapped_by_kling_code(
    response: httpx.Response, code: str, retryable: bool
) -> None:
    error = kling_error(response, "create", may_create=True)
    assert error is not None and not isinstance(error, UpstreamOutcomeUnknown)
    assert (error.code, error.retryable) == (code, retryable)


@pytest.mark.parametrize(
    "response", [kling(500, 5000), kling(502, None), kling(200, 5001), kling(504, 5002), kling(503, 1302)]
)
def test_kling_trouble_on_a_create_may_have_made_the_task(response: httpx.Response) -> None:
    assert isinstance(kling_error(response, "create", may_create=True), UpstreamOutcomeUnknown)
    error = kling_error(response, "poll")
    assert error is not None and error.retryable and not isinstance(error, UpstreamOutcomeUnknown)


def test_a_2xx_with_code_zero_is_no_error() -> None:
    assert kling_error(httpx.Response(200, json={"code": 0, "data": {}}), "create", may_create=True) is None


FAILED = UpstreamState.FAILED
RISK = "Failure to pass the risk control system"


@pytest.mark.parametrize(
    ("data", "state", "code", "retryable"),
    [
        ({"task_status": "submitted"}, UpstreamState.QUEUED, None, False),
        ({"task_status": "processing"}, UpstreamState.RUNNING, None, False),
        ({"task_status": "succeed", "task_result": {"videos": []}}, FAILED, "upstream_no_result", False),
        ({"task_status": "failed", "task_status_msg": RISK}, FAILED, "content_policy", False),
        ({"task_status": "failed", "task_status_msg": "触发平台风控"}, FAILED, "content_policy", False),
        ({"task_status": "failed", "task_status_msg": "internal error"}, FAILED, "upstream_failed", True),
        ({"task_status": "failed"}, FAILED, "upstream_failed", False),
    ],
)
def test_task_statuses_are_mapped(
    data: dict[str, Any], state: UpstreamState, code: str | None, retryable: bool
) -> None:
    status = read_task(data, poll_after=2.0)
    assert status is not None and (status.state, status.error_code, status.retryable) == (
        state,
        code,
        retryable,
    )
    done = read_task({"task_status": "succeed", "task_result": {"videos": [{"url": "https://cdn.k/v.mp4"}]}})
    assert (
        done is not None
        and done.state is UpstreamState.SUCCEEDED
        and done.result_url == "https://cdn.k/v.mp4"
    )
    assert read_task({"task_status": "warming_up"}) is None


# Against the fake ------------------------------------------------------------------------------------


async def test_a_task_is_polled_to_its_video_and_its_link_is_copied_through_the_fetcher(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    fetcher = StubFetcher()
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path, fetcher) as provider:
        job = await provider.submit(request(prompt="a fox #queue=2"), ctx(tmp_path))
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.QUEUED
        clock.now += 5
        assert (await provider.poll(job, ctx(tmp_path))).state is UpstreamState.RUNNING
        clock.now += 10
        done = await provider.poll(job, ctx(tmp_path))
        assert done.state is UpstreamState.SUCCEEDED and done.result_url is not None
        result = await provider.fetch(job, done, tmp_path, ctx(tmp_path))
        # A job whose memo lost its route is still found (asked on both routes).
        assert (
            await provider.poll(UpstreamJob(job.upstream_id), ctx(tmp_path))
        ).state is UpstreamState.SUCCEEDED
    assert done.result_url.startswith("http://cdn.kling.test/_fake/files/")
    assert result.video.exists() and fetcher.urls == [done.result_url]
    [made] = fake.journal.creates()
    assert made.dialect == "kling" and made.job == job.upstream_id
    assert (made.detail["mode"], made.detail["duration"], made.detail["external_task_id"]) == (
        "std",
        "5",
        "01task-0",
    )


async def test_an_image_and_its_last_frame_reach_the_fake_as_base64(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    first, last = await stored_image(tmp_path, 0), await stored_image(tmp_path, 1, (720, 720))
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        job = await provider.submit(
            request(size=(1920, 1080), images=(first,), last_frame=last), ctx(tmp_path)
        )
    [made] = fake.journal.creates()
    assert job.memo == {"route": "image2video"} and made.detail["route"] == "image2video"
    assert (made.detail["image"], made.detail["image_tail"], made.detail["mode"]) == (
        "base64",
        "base64",
        "pro",
    )


async def test_a_lost_answer_is_resolved_by_the_external_task_id_and_a_repeat_adopts_the_job(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        mine = request(prompt="lost #accept_then_5xx=1", key="01lost-0")
        with pytest.raises(UpstreamOutcomeUnknown):
            await provider.submit(mine, ctx(tmp_path))
        [found] = await provider.find_jobs(mine)
        assert await provider.find_jobs(request(prompt="lost", key="01other-0")) == []
        again = await provider.submit(mine, ctx(tmp_path))  # the same submission sent once more
    [made] = fake.journal.creates()
    assert found.upstream_id == made.job == again.upstream_id and found.memo == {"route": "text2video"}
    lookups = [(e.status, e.detail.get("by")) for e in fake.journal.entries("list")]
    assert lookups == [(200, None), (404, "external_task_id"), (200, None)]  # found, not found, adopted
    assert fake.journal.entries("rejected_create")[-1].detail["reason"] == "external_task_id taken"


async def test_the_fakes_faults_and_quirks_map_as_they_should(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        errors = {}
        for name, prompt in {
            "429": "a #429=1 #kling_code=1102",
            "http200": "b #http200_error=1",
            "5xx": "c #5xx=1",
            "moderation": "d #moderation",
        }.items():
            with pytest.raises(ProviderError) as caught:
                await provider.submit(request(prompt=prompt, key=f"01{name}-0"), ctx(tmp_path))
            errors[name] = (type(caught.value).__name__, caught.value.code)
        blocked = await provider.submit(request(prompt="e #moderation=job", key="01e-0"), ctx(tmp_path))
        clock.now += 11
        ended = await provider.poll(blocked, ctx(tmp_path))
        polled = await provider.submit(request(prompt="f #poll5xx=1", key="01f-0"), ctx(tmp_path))
        with pytest.raises(ProviderError) as poll_error:
            await provider.poll(polled, ctx(tmp_path))
    assert errors == {
        "429": ("ProviderError", "upstream_quota_exhausted"),
        "http200": ("ProviderError", "upstream_rate_limited"),
        "5xx": ("UpstreamOutcomeUnknown", "upstream_outcome_unknown"),
        "moderation": ("ProviderError", "content_policy"),
    }
    assert [e.status for e in fake.journal.entries("rejected_create")] == [429, 200, 500, 400]
    assert (ended.state, ended.error_code) == (UpstreamState.FAILED, "content_policy")
    assert poll_error.value.code == "upstream_unavailable" and poll_error.value.retryable


async def test_wrong_keys_and_echoed_tokens(tmp_path: Path, fake: FakeUpstream) -> None:
    wrong = {"access_key": ACCESS, "secret_key": "sk-not-the-right-one-1234"}
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path, options=wrong) as provider:
        with pytest.raises(ProviderError) as refused:
            await provider.submit(request(), ctx(tmp_path))
        assert not (await provider.probe()).ok
    assert refused.value.code == "upstream_auth_failed"
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        assert (await provider.probe()).ok
        guarded = SecretScrubbing(provider, provider.channel.redactor)
        with pytest.raises(ProviderError) as echoed:
            await guarded.submit(request(prompt="g #echo_key"), ctx(tmp_path))
        token = provider.auth.token()
    assert token not in echoed.value.message and token.upper() not in echoed.value.message
    assert REDACTED in echoed.value.message


async def test_an_expired_token_is_refused_by_the_fake_and_a_new_one_is_made(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        provider.auth = KlingToken(
            ACCESS, SECRET, provider.channel.redactor, clock=lambda: time.time() - 3600
        )
        provider.client.auth = provider.auth
        with pytest.raises(ProviderError) as expired:
            await provider.submit(request(), ctx(tmp_path))
    assert expired.value.code == "upstream_auth_failed" and "1004" in expired.value.message
    assert fake.journal.entries("rejected_create")[0].detail["code"] == 1004


# The fake checks what Kling checks --------------------------------------------------------------------


def bearer(secret: str = SECRET) -> dict[str, str]:
    now = int(time.time())
    with warnings.catch_warnings():  # a short forged key
        warnings.filterwarnings("ignore", message="The HMAC key")
        token = jwt.encode({"iss": ACCESS, "exp": now + 600, "nbf": now - 5}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


PNG_B64 = "iVBORw0KGgo"  # a PNG's head: not a whole image


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("text2video", {"model_name": "kling-v1-6", "prompt": "a", "seconds": "5"}, 1201),
        ("text2video", {"model_name": "kling-v1-6", "prompt": "a", "duration": 5}, 1201),
        ("text2video", {"model_name": "kling-v1-6", "prompt": "a", "aspect_ratio": "4:3"}, 1201),
        ("text2video", {"model_name": "kling-v2-1", "prompt": "a"}, 1201),
        ("text2video", {"model_name": "kling-v9", "prompt": "a"}, 1203),
        ("text2video", {"model_name": "kling-v1-6", "prompt": ""}, 1201),
        ("text2video", {"model_name": "kling-v2-master", "prompt": "a", "cfg_scale": 0.5}, 1201),
        ("text2video", {"model_name": "kling-v1-6", "prompt": "a", "sound": "on"}, 1201),
        ("image2video", {"model_name": "kling-v1-6", "prompt": "a"}, 1201),
        ("image2video", {"model_name": "kling-v1-6", "image": "data:image/png;base64,iVBOR"}, 1201),
        ("image2video", {"model_name": "kling-v1-6", "image": "https://x/a.png", "aspect_ratio": "1:1"},
         1201),
        ("image2video", {"model_name": "kling-v1-6", "mode": "std", "image": "https://x/a.png",
                         "image_tail": "https://x/b.png"}, 1201),
        ("image2video", {"model_name": "kling-v1", "duration": "10", "image": "https://x/a.png",
                         "image_tail": "https://x/b.png"}, 1201),
    ],
)  # fmt: skip
async def test_the_fake_refuses_what_kling_refuses(
    fake: FakeUpstream, route: str, body: dict[str, Any], code: int
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake.app), base_url="http://kling.test"
    ) as client:
        response = await client.post(f"/v1/videos/{route}", json=body, headers=bearer())
    assert response.json()["code"] == code and response.status_code == (404 if code == 1203 else 400)
    assert fake.journal.count("create") == 0


async def test_the_fake_wants_a_token_signed_with_the_secret_key(fake: FakeUpstream) -> None:
    body = {"model_name": "kling-v1-6", "prompt": "a"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake.app), base_url="http://kling.test"
    ) as client:
        none = await client.post("/v1/videos/text2video", json=body)
        forged = await client.post("/v1/videos/text2video", json=body, headers=bearer("sk-forged"))
        fine = await client.post("/v1/videos/text2video", json=body, headers=bearer())
        listed = await client.get(
            "/v1/videos/text2video", params={"pageNum": "1", "pageSize": "5"}, headers=bearer()
        )
        unknown = await client.get("/v1/videos/text2video/860000000000000000", headers=bearer())
    assert (none.status_code, none.json()["code"]) == (401, 1001)
    assert (forged.status_code, forged.json()["code"]) == (401, 1002)
    assert fine.status_code == 200 and fine.json()["data"]["task_status"] == "submitted"
    assert [t["task_id"] for t in listed.json()["data"]] == [fine.json()["data"]["task_id"]]
    assert (unknown.status_code, unknown.json()["code"]) == (404, 1203)


async def test_a_failed_status_shape_and_an_unknown_status_keep_polling(
    tmp_path: Path, fake: FakeUpstream, clock: Clock
) -> None:
    async with provider_on(httpx.ASGITransport(fake.app), tmp_path) as provider:
        job = await provider.submit(request(prompt="h #unknown_status=1 #fail=boom"), ctx(tmp_path))
        odd = await provider.poll(job, ctx(tmp_path))
        clock.now += 11
        failed = await provider.poll(job, ctx(tmp_path))
    assert odd.state is UpstreamState.RUNNING
    assert (failed.state, failed.error_code) == (UpstreamState.FAILED, "upstream_failed")
    assert "boom" in (failed.error_message or "")


async def test_kling_has_no_cancel(tmp_path: Path) -> None:
    seen, transport = captured(CREATED)
    async with provider_on(transport, tmp_path) as provider:
        await provider.cancel(UpstreamJob("860000000000000001", memo={"route": "text2video"}))
    assert not seen
    status = UpstreamStatus(UpstreamState.SUCCEEDED)
    async with provider_on(transport, tmp_path) as provider:
        with pytest.raises(ProviderError, match="no video URL"):
            await provider.fetch(UpstreamJob("1"), status, tmp_path, ctx(tmp_path))
