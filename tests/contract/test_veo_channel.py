"""A `veo` channel (Google Veo through the Gemini API) end to end: the real gateway and worker over loopback
against the shipped fake's Gemini routes. The fake's journal proves what Google would have been sent, how
many jobs were made, and that the storage behind the keyed download never saw the key."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from tests.contract.conftest import FakeServer, gateway_options, png_data_uri, upstream_channel
from tests.contract.test_upstream_contract import settled
from vidgate.config import ChannelSettings

pytestmark = pytest.mark.anyio
V31 = "veo-3.1-generate-preview"


def prompt(directives: str = "") -> str:
    """A prompt unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"a copper kettle {uuid.uuid4().hex[:8]} {directives}".strip()


def veo_channel(server: FakeServer, **overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "base_url": f"{server.url}/v1beta",
        "models": [V31],
        "options": {"poll_seconds": 0.05},
        **overrides,
    }
    return upstream_channel("veo", server, name="veo", **values)


async def create(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    body = {"model": V31, "prompt": text, "duration": 8, "aspect_ratio": "16:9", "resolution": "720p"}
    response = await client.post("/v1/video/create", json={**body, **fields})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def run(
    start_gateway: Any, server: FakeServer, text: str, *, channel: Any = None, **fields: Any
) -> Any:
    worker = fields.pop("worker", {})
    options = gateway_options(channel or veo_channel(server), **worker)
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text, **fields))
            if final["status"] == "completed":
                assert final["video_url"].startswith(gw.base_url)  # our copy, not Google's link
                async with httpx.AsyncClient() as plain:
                    video = (await plain.get(final["video_url"])).content
                final["_video"] = video
    return final


def assert_plays(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "result.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) > 0


def storage_requests(server: FakeServer, text: str) -> list[Any]:
    """What the storage behind the keyed download was asked (and with which credentials)."""
    return [e for e in server.fake.journal.entries("storage_get") if e.prompt == text]


def api_downloads(server: FakeServer, text: str) -> list[int]:
    """The statuses the Gemini API's own `files/...:download` answered (it needs the key)."""
    return [
        e.status for e in server.fake.journal.entries("download") if e.prompt == text and e.dialect == "veo"
    ]


async def test_text_to_video_lands_in_our_storage_with_every_field_passed_through(
    start_gateway, upstream: FakeServer, tmp_path: Path
) -> None:
    text = prompt()
    final = await run(start_gateway, upstream, text, seed=7, negative_prompt="fog, rain", generate_audio=True)
    assert final["status"] == "completed", final
    assert final["detail"]["channel"] == "veo"
    assert_plays(final["_video"], tmp_path)
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["seed"] == 7 and made.detail["negativePrompt"] == "fog, rain"
    assert made.detail["aspectRatio"] == "16:9" and made.detail["durationSeconds"] == 8
    assert made.detail["resolution"] == "720p" and made.detail["personGeneration"] == "allow_all"
    assert "generateAudio" not in made.detail  # Veo 3.1 always makes sound; the Gemini API has no switch
    assert made.detail["key_in"] == "header" and not made.detail["image"]
    # The keyed download answered a redirect; the storage it pointed at never saw the key.
    assert api_downloads(upstream, text) == [302]
    [storage] = storage_requests(upstream, text)
    assert not storage.detail["key_header"] and not storage.detail["key_param"]
    assert not storage.detail["authorization"]


async def test_image_to_video_sends_the_first_frame_inline(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    final = await run(start_gateway, upstream, text, images=[png_data_uri()], aspect_ratio="9:16", duration=4)
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["image"] and made.detail["image_mime"] == "image/png"
    assert not made.detail["last_frame"] and made.detail["reference_images"] == 0
    assert made.detail["aspectRatio"] == "9:16" and made.detail["durationSeconds"] == 4
    assert made.detail["personGeneration"] == "allow_adult"  # what image-to-video takes


async def test_first_and_last_frames_make_an_interpolation(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    final = await run(
        start_gateway, upstream, text, images=[png_data_uri()], last_frame=png_data_uri(480, 640)
    )
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["image"] and made.detail["last_frame"]


async def test_a_video_the_safety_filters_blocked_fails_with_content_policy(
    start_gateway, upstream: FakeServer
) -> None:
    """Google finishes the operation with raiMediaFilteredCount and no video (and charges nothing): never
    a success without a video (new-api billed these, QuantumNous/new-api#6838)."""
    text = prompt("#filtered")
    final = await run(start_gateway, upstream, text)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "content_policy"
    assert "safety filters" in final["error"]["message"]
    assert len(upstream.fake.journal.creates(text)) == 1


async def test_a_create_answered_5xx_after_the_job_was_made_never_makes_a_second(
    start_gateway, upstream: FakeServer
) -> None:
    """Google has no idempotency and no way to list operations: after an unknown outcome nothing is sent
    again and the task fails at its deadline, rather than pay twice."""
    text = prompt("#accept_then_5xx=1")
    final = await run(start_gateway, upstream, text, worker={"task_deadline_seconds": 4})
    assert final["status"] == "failed" and final["error"]["code"] == "upstream_outcome_unknown", final
    assert upstream.ops(text) == ["create"]  # one job, and nothing after it


async def test_a_quota_refusal_is_retried_and_completes(start_gateway, upstream: FakeServer) -> None:
    text = prompt("#429=2 #retry_after=0.1")
    final = await run(start_gateway, upstream, text)
    assert final["status"] == "completed", final
    assert upstream.ops(text).count("rejected_create") == 2
    assert len(upstream.fake.journal.creates(text)) == 1


async def test_an_expired_storage_link_is_fetched_again_through_a_fresh_redirect(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#expired_link=1")
    final = await run(start_gateway, upstream, text)
    assert final["status"] == "completed", final
    assert api_downloads(upstream, text) == [302, 302] and len(storage_requests(upstream, text)) == 2
    assert not any(e.detail["key_header"] for e in storage_requests(upstream, text))


async def test_a_wrong_key_fails_the_task_with_upstream_auth_failed(
    start_gateway, upstream: FakeServer
) -> None:
    """Google answers an unknown key with HTTP 400 INVALID_ARGUMENT, reason API_KEY_INVALID: read as refused
    credentials, not as a refused request."""
    text = prompt()
    final = await run(
        start_gateway, upstream, text, channel=veo_channel(upstream, api_key="AIza-not-the-key")
    )
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "upstream_auth_failed" and "veo" in final["error"]["message"]
    assert upstream.fake.journal.creates(text) == []


async def test_a_combination_the_model_cannot_make_is_refused_at_create(
    start_gateway, upstream: FakeServer
) -> None:
    """Veo 3.1 makes 1080p only at 8 seconds: a 400 naming the duration, and nothing sent to Google."""
    text = prompt()
    async with start_gateway(**gateway_options(veo_channel(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {
                "model": V31,
                "prompt": text,
                "duration": 6,
                "aspect_ratio": "16:9",
                "resolution": "1080p",
            }
            refused = await client.post("/v1/video/create", json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] == "duration"
            assert refused.json()["error"]["code"] == "unsupported_combination"
            assert (await client.post("/v1/video/create", json={**body, "duration": 8})).status_code == 200
    assert [e.op for e in upstream.fake.journal.entries(prompt=text) if e.op != "poll"][:1] == ["create"]


async def test_the_openai_dialect_reaches_veo_too(start_gateway, upstream: FakeServer) -> None:
    """`POST /v1/videos` with OpenAI's fields: `seconds` and a `size` that names 720p at 9:16."""
    text = prompt()
    async with start_gateway(**gateway_options(veo_channel(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": V31, "prompt": text, "seconds": "6", "size": "720x1280", "seed": 11}
            response = await client.post("/v1/videos", json=body)
            assert response.status_code == 200, response.text
            video_id = response.json()["id"]
            final = await settled(gw, client, video_id)
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["aspectRatio"] == "9:16" and made.detail["durationSeconds"] == 6
    assert made.detail["resolution"] == "720p" and made.detail["seed"] == 11
