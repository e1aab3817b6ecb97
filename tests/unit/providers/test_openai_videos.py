"""The `openai` kind (providers/openai_videos.py) against a scripted server (`httpx.MockTransport`
through `UpstreamHttp`): what each call sends, and what each answer becomes."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.unit.providers.adapter_support import MP4, Handler, Recorder
from tests.unit.providers.adapter_support import step_context as ctx
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.tasks import WatermarkMode
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
from vidgate.providers.openai_videos import OpenAIVideosProvider
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore

pytestmark = pytest.mark.anyio
KEY = "sk-openai-test"
SENT_AT_S = 1_760_000_000


def answer(status: int = 200, body: Any = None, **headers: str) -> Handler:
    return lambda _: httpx.Response(status, json=body, headers=headers)


def request(**fields: Any) -> SubmitRequest:
    values: dict[str, Any] = {
        "task_id": "01task",
        "idempotency_key": "01task-0",
        "model": "sora-2",
        "prompt": "a red fox in the snow",
        "width": 720,
        "height": 1280,
        "seconds": 8,
        "watermark_mode": WatermarkMode.PREFER_CLEAN,
        "private": False,
        "sent_at_ms": SENT_AT_S * 1000,
        **fields,
    }
    return SubmitRequest(**values)


@asynccontextmanager
async def provider(
    tmp_path: Path, handler: Handler, **channel: Any
) -> AsyncIterator[tuple[OpenAIVideosProvider, Recorder]]:
    settings = ChannelSettings(
        **{
            "name": "oa",
            "kind": "openai",
            "base_url": "http://oa.test/v1",
            "api_key": KEY,
            "models": ["sora-2"],
            **channel,
        }
    )
    server = Recorder(handler)
    deps = ProviderDeps(
        Settings(data_dir=tmp_path, channels=[settings]),
        LocalBlobStore(tmp_path / "media"),
        None,  # type: ignore[arg-type]  # the openai kind downloads from its own server only
        UpstreamHttp(httpx.MockTransport(server)),
    )
    adapter = OpenAIVideosProvider(settings, deps)
    try:
        yield adapter, server
    finally:
        await adapter.aclose()


def form_parts(req: httpx.Request) -> dict[str, Message]:
    """The multipart form of a request, by field name."""
    head = f"Content-Type: {req.headers['content-type']}\r\n\r\n".encode()
    message = message_from_bytes(head + req.content)
    assert message.is_multipart()
    return {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}  # type: ignore[misc, union-attr]


def text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


# create ---------------------------------------------------------------------------------------


async def test_a_create_is_multipart_as_the_sdk_sends_it_with_the_idempotency_key(tmp_path: Path) -> None:
    created = answer(200, {"id": "video_123", "status": "queued"}, **{"openai-poll-after-ms": "2500"})
    async with provider(tmp_path, created, model_map={"sora-2": "sora-2-2025"}, models=[]) as (oa, server):
        job = await oa.submit(request(), ctx(tmp_path))
    assert job == UpstreamJob("video_123", poll_after=2.5)
    [sent] = server.requests
    assert (sent.method, str(sent.url)) == ("POST", "http://oa.test/v1/videos")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["idempotency-key"] == "01task-0"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    fields = {name: text(part) for name, part in form_parts(sent).items()}
    assert fields == {
        "prompt": "a red fox in the snow",
        "model": "sora-2-2025",
        "seconds": "8",
        "size": "720x1280",
    }


async def test_the_first_image_goes_as_a_png_of_exactly_the_videos_size(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(200, {"id": "video_1"})) as (oa, server):
        buf = io.BytesIO()
        Image.new("RGB", (300, 200), (10, 200, 30)).save(buf, format="PNG")
        await oa.deps.blobs.put_bytes(buf.getvalue(), "inputs/01task/0.png")
        image = InputImage(0, "https://img.test/fox.png", "inputs/01task/0.png", 300, 200)
        await oa.submit(request(images=(image,)), ctx(tmp_path))
    reference = form_parts(server.requests[0])["input_reference"]
    assert reference.get_filename() == "reference.png" and reference.get_content_type() == "image/png"
    png = reference.get_payload(decode=True)
    assert isinstance(png, bytes)
    assert Image.open(io.BytesIO(png)).size == (720, 1280)  # OpenAI refuses any other size


async def test_a_json_channel_sends_the_clients_image_url_and_forwarded_fields(tmp_path: Path) -> None:
    options = {"body": "json", "forward_fields": ["seed"], "extra_body": {"num_inference_steps": 8}}
    async with provider(tmp_path, answer(200, {"id": "v"}), options=options) as (oa, server):
        image = InputImage(0, "https://img.test/fox.png", "inputs/01task/0.png", 300, 200)
        await oa.submit(
            request(images=(image,), passthrough={"seed": 7, "negative_prompt": "x"}), ctx(tmp_path)
        )
    body = json.loads(server.requests[0].content)
    assert body["input_reference"] == {"image_url": "https://img.test/fox.png"}
    assert body["seed"] == 7 and body["num_inference_steps"] == 8
    assert "negative_prompt" not in body  # only the fields the channel forwards


async def test_a_remix_goes_to_the_source_jobs_remix_route(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(200, {"id": "video_2"}), options={"remix": True}) as (oa, server):
        job = await oa.submit(request(remix_of_upstream_id="video_1", prompt="now in rain"), ctx(tmp_path))
    assert job.upstream_id == "video_2"
    [sent] = server.requests
    assert str(sent.url) == "http://oa.test/v1/videos/video_1/remix"
    assert json.loads(sent.content) == {"prompt": "now in rain"}


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (400, {"error": {"code": "invalid_size", "message": "size not allowed"}}, "invalid_size", False),
        (
            400,
            {"error": {"message": "Your request was rejected by the safety system"}},
            "content_policy",
            False,
        ),
        (401, {"error": {"message": "bad key"}}, "upstream_auth_failed", True),
        (429, {"error": {"message": "slow down"}}, "upstream_rate_limited", True),
    ],
)
async def test_a_refused_create_is_a_provider_error_proving_no_job(
    tmp_path: Path, status: int, body: Any, code: str, retryable: bool
) -> None:
    async with provider(tmp_path, answer(status, body)) as (oa, _):
        with pytest.raises(ProviderError) as raised:
            await oa.submit(request(), ctx(tmp_path))
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)
    assert (raised.value.code, raised.value.retryable) == (code, retryable)


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"error": {"message": "oops"}}), (502, None), (200, {"status": "queued"}), (200, None)],
    ids=["500", "proxy-502", "2xx-without-id", "2xx-not-json"],
)
async def test_a_create_answer_that_proves_nothing_is_an_unknown_outcome(
    tmp_path: Path, status: int, body: Any
) -> None:
    async with provider(tmp_path, answer(status, body)) as (oa, _):
        with pytest.raises(UpstreamOutcomeUnknown):
            await oa.submit(request(), ctx(tmp_path))


async def test_a_create_whose_connection_broke_after_sending_is_an_unknown_outcome(tmp_path: Path) -> None:
    def broken(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=req)

    async with provider(tmp_path, broken) as (oa, _):
        with pytest.raises(UpstreamOutcomeUnknown):
            await oa.submit(request(), ctx(tmp_path))


# poll -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "queued"}, UpstreamStatus(UpstreamState.QUEUED)),
        ({"status": "in_progress", "progress": 42}, UpstreamStatus(UpstreamState.RUNNING, progress=42)),
        ({"status": "completed"}, UpstreamStatus(UpstreamState.SUCCEEDED, progress=100)),
        ({"status": "warming_up", "progress": 5}, UpstreamStatus(UpstreamState.RUNNING, progress=5)),
        (
            {"status": "failed", "error": {"code": "server_error", "message": "GPU lost"}},
            UpstreamStatus(
                UpstreamState.FAILED, error_code="server_error", error_message="GPU lost", retryable=True
            ),
        ),
        (
            {"status": "failed", "error": {"code": "moderation_blocked", "message": "blocked"}},
            UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message="blocked"),
        ),
        (
            {"status": "failed", "error": {"code": "invalid_prompt", "message": "no"}},
            UpstreamStatus(UpstreamState.FAILED, error_code="invalid_prompt", error_message="no"),
        ),
        (
            {"status": "cancelled"},
            UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_cancelled",
                error_message="The channel cancelled the job.",
            ),
        ),
    ],
    ids=["queued", "running", "completed", "unknown-word", "transient", "moderation", "final", "cancelled"],
)
async def test_a_polled_job_is_read_into_its_state(
    tmp_path: Path, body: Any, expected: UpstreamStatus
) -> None:
    async with provider(tmp_path, answer(200, body)) as (oa, server):
        status = await oa.poll(UpstreamJob("video_1"), ctx(tmp_path))
    assert status == expected
    assert str(server.requests[0].url) == "http://oa.test/v1/videos/video_1"


async def test_a_poll_is_paced_by_the_servers_poll_after_header(tmp_path: Path) -> None:
    running = answer(200, {"status": "in_progress"}, **{"openai-poll-after-ms": "1500"})
    async with provider(tmp_path, running) as (oa, _):
        status = await oa.poll(UpstreamJob("video_1"), ctx(tmp_path))
    assert status.poll_after == 1.5


@pytest.mark.parametrize(
    ("status", "code", "retryable"), [(503, "upstream_unavailable", True), (404, "upstream_refused", False)]
)
async def test_a_poll_the_server_did_not_answer_is_retryable_and_a_lost_job_is_not(
    tmp_path: Path, status: int, code: str, retryable: bool
) -> None:
    async with provider(tmp_path, answer(status, {"error": {"message": "no"}})) as (oa, _):
        with pytest.raises(ProviderError) as raised:
            await oa.poll(UpstreamJob("video_1"), ctx(tmp_path))
    assert (raised.value.code, raised.value.retryable) == (code, retryable)
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)  # a poll never makes a job


# result ---------------------------------------------------------------------------------------


def content(thumbnail: Callable[[], httpx.Response]) -> Handler:
    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("variant") == "thumbnail":
            return thumbnail()
        return httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"})

    return handle


def webp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, format="WEBP")
    return buf.getvalue()


async def test_the_result_is_downloaded_with_the_servers_own_thumbnail(tmp_path: Path) -> None:
    image = webp()
    served = content(lambda: httpx.Response(200, content=image, headers={"content-type": "image/webp"}))
    async with provider(tmp_path, served) as (oa, server):
        result = await oa.fetch(
            UpstreamJob("video_1"), UpstreamStatus(UpstreamState.SUCCEEDED), tmp_path, ctx(tmp_path)
        )
    assert result.video.read_bytes() == MP4
    assert result.thumbnail is not None and result.thumbnail.read_bytes() == image
    assert [(r.url.path, r.url.params["variant"]) for r in server.requests] == [
        ("/v1/videos/video_1/content", "video"),
        ("/v1/videos/video_1/content", "thumbnail"),
    ]


async def test_a_thumbnail_that_is_really_the_video_is_not_used(tmp_path: Path) -> None:
    """LiteLLM answers `?variant=thumbnail` with the whole MP4: given up, the worker makes its own."""
    served = content(lambda: httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"}))
    async with provider(tmp_path, served) as (oa, _):
        result = await oa.fetch(
            UpstreamJob("video_1"), UpstreamStatus(UpstreamState.SUCCEEDED), tmp_path, ctx(tmp_path)
        )
    assert result.thumbnail is None and result.video.read_bytes() == MP4


async def test_a_result_link_that_is_gone_is_result_expired(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(404, {"error": {"message": "expired"}})) as (oa, _):
        with pytest.raises(ResultExpired):
            await oa.fetch(
                UpstreamJob("video_1"), UpstreamStatus(UpstreamState.SUCCEEDED), tmp_path, ctx(tmp_path)
            )
    assert not (tmp_path / "video.mp4").exists()


# cancel and lookup ----------------------------------------------------------------------------


async def test_cancel_deletes_the_job_and_a_job_already_gone_is_fine(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(404, {"error": {"message": "no such video"}})) as (oa, server):
        await oa.cancel(UpstreamJob("video_1"))
    [sent] = server.requests
    assert (sent.method, sent.url.path) == ("DELETE", "/v1/videos/video_1")


async def test_a_cancel_the_server_did_not_take_is_retryable(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(503, None)) as (oa, _):
        with pytest.raises(ProviderError) as raised:
            await oa.cancel(UpstreamJob("video_1"))
    assert raised.value.retryable


def listing(pages: dict[str | None, dict[str, Any]]) -> Handler:
    """`GET /videos` pages by their `after` cursor."""
    return lambda req: httpx.Response(200, json=pages[req.url.params.get("after")])


def item(job_id: str, created_at: int, **fields: Any) -> dict[str, Any]:
    values = {"prompt": "a red fox in the snow", "model": "sora-2", "size": "720x1280", "seconds": "8"}
    return {"id": job_id, "created_at": created_at, **values, **fields}


async def test_find_jobs_finds_the_matching_jobs_made_since_the_submit_oldest_first(tmp_path: Path) -> None:
    pages = {
        None: {
            "data": [
                item("v_new", SENT_AT_S + 30),
                item("v_other_prompt", SENT_AT_S + 20, prompt="a cat"),
                item("v_other_size", SENT_AT_S + 15, size="1280x720"),
            ],
            "has_more": True,
        },
        "v_other_size": {
            "data": [
                item("v_first", SENT_AT_S + 5),
                item("v_before_submit", SENT_AT_S - 3600),
                item("v_x", 0),
            ],
            "has_more": True,  # never asked for: everything further is older than the submit
        },
    }
    async with provider(tmp_path, listing(pages)) as (oa, server):
        found = await oa.find_jobs(request())
    assert [job.upstream_id for job in found] == ["v_first", "v_new"]
    assert [r.url.params.get("after") for r in server.requests] == [None, "v_other_size"]
    assert server.requests[0].url.params["order"] == "desc"


async def test_a_job_list_that_cannot_be_read_is_a_retryable_error(tmp_path: Path) -> None:
    async with provider(tmp_path, answer(200, {"object": "list"})) as (oa, _):
        with pytest.raises(ProviderError) as raised:
            await oa.find_jobs(request())
    assert raised.value.code == "upstream_bad_response" and raised.value.retryable


# what the kind declares -----------------------------------------------------------------------


def test_the_channels_options_decide_what_it_can_do() -> None:
    plain = ChannelSettings(name="oa", kind="openai", base_url="http://oa.test/v1", models=["sora-2"])
    traits = OpenAIVideosProvider.traits_for(plain)
    assert traits.can_cancel and traits.can_find_jobs and traits.remix.value == "none"
    limited = plain.model_copy(
        update={"options": {"cancel_by_delete": False, "lookup": False, "remix": True}}
    )
    traits = OpenAIVideosProvider.traits_for(limited)
    assert not traits.can_cancel and not traits.can_find_jobs and traits.remix.value == "upstream"
