"""The `minimax` channel through the real gateway and worker, against the shipped fake's MiniMax routes
over loopback: both dialects (`POST /v1/video/create` and `POST /v1/videos`) make text-to-video,
image-to-video and first-and-last-frame videos as MiniMax takes them (the fake's journal shows what it
received, and the result comes through the file_id -> files/retrieve step), what the models cannot make is
refused at create naming the field, and a refusal MiniMax puts in an HTTP 200 fails over to the next
channel. The paid-once rules for the kind are in the shared vendor contract (`test_vendor_contract.py`);
these run on SQLite only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.contract.conftest import (
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

pytestmark = pytest.mark.anyio
HAILUO_23, HAILUO_02 = "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02"


db_url = sqlite_db_url  # SQLite only: the shared vendor contract runs the kind on PostgreSQL too


def prompt(directives: str = "") -> str:
    return unique_prompt("a tin robot in the rain", directives)


def minimax(server: FakeServer, name: str = "hailuo", **overrides: Any) -> ChannelSettings:
    return upstream_channel(
        "minimax",
        server,
        name=name,
        base_url=server.url,
        models=[HAILUO_23, HAILUO_02],
        options={"poll_seconds": 0.05},
        **overrides,
    )


# What a unified create carries unless a test says otherwise (and its prompt).
BASE = {"model": HAILUO_23, "duration": 6, "aspect_ratio": "16:9", "resolution": "720p"}


async def unified(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    return await create_task(client, "/v1/video/create", {**BASE, "prompt": text, **fields})


async def openai(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    return await create_task(client, "/v1/videos", {"prompt": text, **fields})


async def test_both_dialects_make_text_image_and_last_frame_videos(
    start_gateway, upstream: FakeServer
) -> None:
    texts = [prompt() for _ in range(4)]
    async with start_gateway(**gateway_options(minimax(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [
                await unified(client, texts[0], duration=10, enhance_prompt=False),
                await unified(client, texts[1], images=[png_data_uri()], aspect_ratio="9:16"),
                await openai(client, texts[2], model=HAILUO_23, seconds="6", size="1920x1080"),
                await openai(
                    client,
                    texts[3],
                    model=HAILUO_02,
                    seconds="6",
                    size="1080x1920",
                    input_reference={"image_url": png_data_uri()},
                    last_frame=png_data_uri(600, 900),
                ),
            ]
            finals = await settle_all(gw, client, ids)
    assert [f["status"] for f in finals] == ["completed"] * 4, finals
    assert all(f["video_url"].startswith(gw.base_url) and f["detail"]["channel"] == "hailuo" for f in finals)
    made = [upstream.fake.journal.creates(text) for text in texts]
    assert all(len(m) == 1 for m in made)
    text, image, large, framed = (m[0].detail for m in made)
    assert (text["model"], text["resolution"], text["duration"], text["prompt_optimizer"]) == (
        HAILUO_23,
        "768P",
        10,
        False,
    )
    assert text["images"] == {} and text["aigc_watermark"] is False
    assert (image["images"], image["prompt_optimizer"]) == ({"first_frame_image": "data_uri"}, True)
    assert (large["resolution"], large["duration"]) == ("1080P", 6)
    assert framed["model"] == HAILUO_02 and framed["resolution"] == "1080P"
    assert framed["images"] == {"first_frame_image": "data_uri", "last_frame_image": "data_uri"}
    retrievals = upstream.fake.journal.entries("file_get")
    assert {e.job for e in retrievals} == {m[0].job for m in made}  # each video came through its file_id
    assert_each_video_copied(upstream, texts)


async def test_what_the_models_cannot_make_is_refused_at_create_naming_the_field(
    start_gateway, upstream: FakeServer
) -> None:
    image = png_data_uri()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"seed": 7}, "seed"),  # MiniMax takes no seed
        ({"generate_audio": True}, "generate_audio"),  # Hailuo is silent
        ({"aspect_ratio": "9:16"}, "aspect_ratio"),  # a video from text alone is 16:9
        ({"resolution": "1080p", "duration": 10}, "duration"),  # 1080P is 6 s only
        ({"images": [image], "last_frame": image}, "last_frame"),  # 2.3 takes no last frame
        ({"negative_prompt": "rain"}, "negative_prompt"),
    ]
    bodies = [
        {"model": HAILUO_23, "prompt": prompt(), "duration": 6, "resolution": "720p", **fields}
        for fields, _ in cases
    ]
    refused = await refused_params(start_gateway, minimax(upstream), bodies)
    assert refused == [param for _, param in cases]
    assert upstream.fake.journal.count("create") == 0


async def test_a_refusal_inside_an_http_200_fails_over_to_the_next_channel(
    start_gateway, upstream: FakeServer
) -> None:
    """MiniMax answers HTTP 200 with `base_resp.status_code` 1008 (the balance is too low): no task was
    made, so the next channel is tried at once."""
    text = prompt()
    broke = minimax(
        upstream, name="a", priority=0, headers={"X-Fake": "http200_error=1000; minimax_code=1008"}
    )
    body = {**BASE, "prompt": text}
    await failed_over(start_gateway, upstream, broke, minimax(upstream, name="b", priority=1), body, 200)
