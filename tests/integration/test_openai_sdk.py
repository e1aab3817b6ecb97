"""The OpenAI dialect driven by the official `openai` SDK over loopback, against the built-in engine."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import av
import httpx
import openai
import pytest
from PIL import Image

from tests.helpers import query
from vidgate.config import default_channels

# The SDK marks every video method deprecated (OpenAI's Sora API shut down); silence exactly that warning.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings(
        "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
    ),
]


def reference_png(width: int = 640, height: int = 960) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 40):
        image.paste((x % 255, 120, 255 - x % 255), (x, 0, x + 20, height))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def sdk_gateway(start_gateway):
    async with start_gateway(run_worker=True, channels=default_channels()) as gw:
        key = await gw.new_key()
        client = openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0)
        yield gw, key, client
        await client.close()


async def test_create_and_poll_with_a_file_then_download_every_variant(sdk_gateway, tmp_path: Path) -> None:
    _, _, client = sdk_gateway
    video = await client.videos.create_and_poll(
        prompt="stripes drifting",
        model="sora-2",
        seconds="4",
        size="720x1280",
        input_reference=("ref.png", reference_png(), "image/png"),
        poll_interval_ms=200,
    )
    assert video.status == "completed", video.error
    assert video.id.startswith("video_")
    assert (video.seconds, video.size, video.progress, video.model) == ("4", "720x1280", 100, "sora-2")
    assert video.completed_at is not None and video.created_at <= video.completed_at
    assert video.prompt == "stripes drifting"

    content = await client.videos.download_content(video.id)
    path = tmp_path / "v.mp4"
    path.write_bytes(content.content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (720, 1280)
        assert sum(1 for _ in container.decode(stream)) == 4 * 24
        assert abs(container.duration / 1e6 - 4.0) < 0.1

    for variant, fmt in (("thumbnail", "WEBP"), ("spritesheet", "JPEG")):
        data = (await client.videos.download_content(video.id, variant=variant)).content
        image = Image.open(io.BytesIO(data))
        assert image.format == fmt and image.width > 0


async def test_input_reference_as_image_url_is_fetched(sdk_gateway) -> None:
    """`{"image_url": ...}` goes out as the multipart field `input_reference[image_url]`. (This SDK version
    refuses a dict in `input_reference` itself, so it travels in extra_body, encoded the same way.)"""
    gw, key, client = sdk_gateway
    # A data: URL needs no server; http(s) URLs go through the same fetcher (tested elsewhere).
    url = "data:image/png;base64," + base64.b64encode(reference_png(100, 100)).decode()
    video = await client.videos.create_and_poll(
        prompt="x", seconds="4", extra_body={"input_reference": {"image_url": url}}, poll_interval_ms=200
    )
    assert video.status == "completed", video.error
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {key}"}) as http:
        [echoed] = (await query(http, video.id))["detail"]["input"]["images"]
    assert echoed.startswith("data:image/png;base64,")


async def test_list_pages_in_both_orders(sdk_gateway) -> None:
    _, _, client = sdk_gateway
    made = [(await client.videos.create(prompt=f"p{i}", seconds="4")).id for i in range(5)]
    asc = [v.id async for v in client.videos.list(order="asc", limit=2)]
    assert asc == made
    desc = [v.id async for v in client.videos.list(order="desc", limit=2)]
    assert desc == made[::-1]
    page = await client.videos.list(limit=3, order="asc")
    assert [v.id for v in page.data] == made[:3] and page.has_more
    for video_id in made:  # clean up: deleting cancels the unfinished ones
        await client.videos.delete(video_id)


async def test_remix_makes_a_new_video_from_a_completed_one(sdk_gateway) -> None:
    _, _, client = sdk_gateway
    source = await client.videos.create_and_poll(
        prompt="first",
        seconds="4",
        input_reference=("ref.png", reference_png(), "image/png"),
        poll_interval_ms=200,
    )
    remix = await client.videos.remix(source.id, prompt="second")
    assert remix.remixed_from_video_id == source.id
    assert remix.status in ("queued", "in_progress")
    done = await client.videos.poll(remix.id, poll_interval_ms=200)
    assert done.status == "completed" and done.prompt == "second" and done.seconds == "4"
    # The remix reflects its new prompt: the same image under another prompt is not the same video.
    first = (await client.videos.download_content(source.id)).content
    second = (await client.videos.download_content(remix.id)).content
    assert first != second


async def test_delete_removes_the_video_and_its_media(sdk_gateway) -> None:
    gw, _, client = sdk_gateway
    video = await client.videos.create_and_poll(prompt="short-lived", seconds="4", poll_interval_ms=200)
    deleted = await client.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        await client.videos.download_content(video.id)
    assert not (gw.settings.media_dir / "videos" / video.id.removeprefix("video_")).exists()


async def test_invalid_seconds_and_size_are_bad_requests_with_a_useful_message(sdk_gateway) -> None:
    _, _, client = sdk_gateway
    with pytest.raises(openai.BadRequestError) as info:
        await client.videos.create(prompt="x", seconds="7")  # type: ignore[arg-type]
    assert info.value.body["param"] == "seconds" and "Allowed" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        await client.videos.create(prompt="x", size="640x480")  # type: ignore[arg-type]
    assert info.value.body["param"] == "size" and "720x1280" in info.value.message
    with pytest.raises(openai.BadRequestError):
        await client.videos.create(prompt="x", input_reference=("notes.txt", b"hello", "text/plain"))


async def test_a_wrong_key_is_an_authentication_error(sdk_gateway) -> None:
    gw, _, _ = sdk_gateway
    async with openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key="vg-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.videos.retrieve("video_01k6x15vhrff09dkkqjrzwhm60")


async def test_both_id_forms_resolve_on_both_dialects(sdk_gateway) -> None:
    gw, key, client = sdk_gateway
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {key}"}) as http:
        unified_id = (await http.post("/v1/video/create", json={"model": "sora-2", "prompt": "u"})).json()[
            "id"
        ]
        via_sdk = await client.videos.retrieve(unified_id)
        assert via_sdk.id == "video_" + unified_id.split("task_")[1]
        sdk_video = await client.videos.create(prompt="o", seconds="4")
        state = await query(http, sdk_video.id)
        assert state["id"] == f"sora-2:task_{sdk_video.id.removeprefix('video_')}"
        assert state["duration"] == 4


async def test_retrieve_paces_the_sdk_poll_loop(sdk_gateway) -> None:
    _, _, client = sdk_gateway
    video = await client.videos.create(prompt="x", seconds="4")
    raw = await client.videos.with_raw_response.retrieve(video.id)
    assert int(raw.headers["openai-poll-after-ms"]) >= 500
