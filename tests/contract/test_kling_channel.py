"""The `kling` channel through the real gateway and worker, against the shipped fake's Kling routes over
loopback: both dialects (`POST /v1/video/create` and `POST /v1/videos`) make text-to-video and
image-to-video, first-and-last-frame and sound videos as Kling takes them (the fake's journal shows what
Kling received, its signed tokens checked), the model table's ties are refused at create naming the field,
and Kling's code-in-an-HTTP-200 refusals fail over to the next channel. The paid-once rules for the kind
are in the shared vendor contract (`test_vendor_contract.py`); these run on SQLite only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.contract.conftest import (
    FAKE_KEY,
    FakeServer,
    assert_each_video_copied,
    create_task,
    failed_over,
    gateway_options,
    png_data_uri,
    refused_params,
    settle_all,
    sqlite_db_url,
    unique_prompt,
    upstream_channel,
)
from vidgate.config import ChannelSettings
from vidgate.ids import parse_task_id

pytestmark = pytest.mark.anyio
V16, V26, V3 = "kling-v1-6", "kling-v2-6", "kling-v3"


db_url = sqlite_db_url  # SQLite only: the shared vendor contract runs the kind on PostgreSQL too


def prompt(directives: str = "") -> str:
    return unique_prompt("a paper lantern on a river", directives)


def kling(server: FakeServer, name: str = "kling", **overrides: Any) -> ChannelSettings:
    options = {"access_key": "ak-fake-upstream", "secret_key": FAKE_KEY, "poll_seconds": 0.05}
    return upstream_channel(
        "kling", server, name=name, base_url=server.url, models=[V16, V26, V3], options=options, **overrides
    )


# What a unified create carries unless a test says otherwise (and its prompt).
BASE = {"model": V16, "duration": 5, "aspect_ratio": "16:9", "resolution": "720p"}


async def unified(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    return await create_task(client, "/v1/video/create", {**BASE, "prompt": text, **fields})


async def openai(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    return await create_task(client, "/v1/videos", {"prompt": text, **fields})


async def submit_key(gw: Any, task_id: str) -> str:
    ulid = parse_task_id(task_id)
    assert ulid is not None
    key: str = (await gw.runtime.tasks.get(ulid)).submit_key
    return key


async def test_both_dialects_make_text_image_last_frame_and_sound_videos(
    start_gateway, upstream: FakeServer
) -> None:
    texts = [prompt() for _ in range(4)]
    async with start_gateway(**gateway_options(kling(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [
                await unified(client, texts[0], negative_prompt="smoke", aspect_ratio="9:16"),
                await unified(
                    client,
                    texts[1],
                    images=[png_data_uri()],
                    last_frame=png_data_uri(720, 960),
                    resolution="1080p",
                ),
                await openai(
                    client, texts[2], model=V26, seconds="10", size="1920x1080", generate_audio=True
                ),
                await openai(
                    client,
                    texts[3],
                    model=V3,
                    seconds="7",
                    size="720x1280",
                    input_reference={"image_url": png_data_uri()},
                    last_frame=png_data_uri(600, 900),
                ),
            ]
            finals = await settle_all(gw, client, ids)
            keys = [await submit_key(gw, task_id) for task_id in ids]
    assert [f["status"] for f in finals] == ["completed"] * 4, finals
    assert all(f["video_url"].startswith(gw.base_url) and f["detail"]["channel"] == "kling" for f in finals)
    made = [upstream.fake.journal.creates(text) for text in texts]
    assert all(len(m) == 1 for m in made)
    text, framed, loud, reference = (m[0].detail for m in made)
    assert (text["route"], text["mode"], text["aspect_ratio"], text["duration"]) == (
        "text2video",
        "std",
        "9:16",
        "5",
    )
    assert text["negative_prompt"] == "smoke" and text["sound"] is None and text["model_name"] == V16
    assert (framed["route"], framed["mode"], framed["image"], framed["image_tail"]) == (
        "image2video",
        "pro",
        "base64",
        "base64",
    )
    assert (loud["model_name"], loud["sound"], loud["mode"], loud["duration"]) == (V26, "on", "pro", "10")
    assert (reference["route"], reference["model_name"], reference["duration"]) == ("image2video", V3, "7")
    assert reference["image_tail"] == "base64" and reference["sound"] == "off"
    # Each create named its submission: what a lost answer is looked up by.
    assert [d["external_task_id"] for d in (text, framed, loud, reference)] == keys
    assert_each_video_copied(upstream, texts)


async def test_what_no_kling_model_can_make_is_refused_at_create_naming_the_field(
    start_gateway, upstream: FakeServer
) -> None:
    image = png_data_uri()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"seed": 7}, "seed"),  # Kling takes no seed
        ({"images": [image], "last_frame": image}, "resolution"),  # v1.6: a last frame in pro mode only
        ({"model": V26, "generate_audio": True}, "resolution"),  # v2.6: sound in pro mode only
        ({"generate_audio": True}, "generate_audio"),  # v1.6 is silent
        ({"duration": 6}, "duration"),
    ]
    bodies = [
        {"model": V16, "prompt": prompt(), "duration": 5, "resolution": "720p", **fields}
        for fields, _ in cases
    ]
    refused = await refused_params(start_gateway, kling(upstream), bodies)
    assert refused == [param for _, param in cases]
    assert upstream.fake.journal.count("create") == 0


async def test_a_refusal_inside_an_http_200_fails_over_to_the_next_channel(
    start_gateway, upstream: FakeServer
) -> None:
    """Kling answers some refusals with HTTP 200 and a non-zero `code` (here 1102, a used-up resource
    pack): no task was made, so the next channel is tried at once."""
    text = prompt()
    refusing = kling(
        upstream, name="a", priority=0, headers={"X-Fake": "http200_error=1000; kling_code=1102"}
    )
    body = {**BASE, "prompt": text}
    await failed_over(start_gateway, upstream, refusing, kling(upstream, name="b", priority=1), body, 200)
