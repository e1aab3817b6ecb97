"""The `fal` channel through the real gateway and worker, against the shipped fake's fal queue over
loopback: both dialects (`POST /v1/video/create` and `POST /v1/videos`) make text-to-video,
image-to-video, first-and-last-frame and sound videos through the presets' input mappings (the fake's
journal shows each model's own inputs, and its schemas refuse any other), what a model's mapping cannot
carry is refused at create naming the field, and fal's exhausted-balance refusal fails over. The paid-once
rules are in the shared vendor contract (`test_vendor_contract.py`); these run on SQLite only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aggregator_presets import FAL_HAILUO, FAL_KLING_I2V, FAL_MODELS, FAL_VEO, FAL_WAN
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
# Public names without the "/" of fal's ids: a unified task id is `<model>:task_<ulid>`.
PUBLIC = {"veo": FAL_VEO, "kling": FAL_KLING_I2V, "hailuo": FAL_HAILUO, "wan": FAL_WAN}


db_url = sqlite_db_url  # SQLite only: the shared vendor contract runs the kind on PostgreSQL too


def prompt(directives: str = "") -> str:
    return unique_prompt("a glass harbour at dawn", directives)


def fal(server: FakeServer, name: str = "fal", **overrides: Any) -> ChannelSettings:
    options = {"poll_seconds": 0.05, "models": {m: FAL_MODELS[m] for m in PUBLIC.values()}}
    return upstream_channel(
        "fal", server, name=name, base_url=f"{server.url}/fal", models=[], model_map=PUBLIC, options=options,
        **overrides,
    )  # fmt: skip


async def test_both_dialects_make_text_image_last_frame_and_sound_videos(
    start_gateway, upstream: FakeServer
) -> None:
    texts = [prompt() for _ in range(4)]
    async with start_gateway(**gateway_options(fal(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [
                await create_task(client, "/v1/video/create", {
                    "model": "veo", "prompt": texts[0], "duration": 6, "aspect_ratio": "9:16",
                    "resolution": "1080p", "seed": 7, "negative_prompt": "rain", "generate_audio": False,
                }),
                await create_task(client, "/v1/video/create", {
                    "model": "kling", "prompt": texts[1], "duration": 10, "resolution": "1080p",
                    "images": [png_data_uri()], "last_frame": png_data_uri(720, 960),
                }),
                await create_task(client, "/v1/videos", {
                    "model": "hailuo", "prompt": texts[2], "seconds": "6", "size": "1280x720",
                    "input_reference": {"image_url": png_data_uri()}, "last_frame": png_data_uri(600, 900),
                }),
                await create_task(client, "/v1/videos", {
                    "model": "wan", "prompt": texts[3], "seconds": "5", "size": "854x480",
                    "enhance_prompt": True,
                }),
            ]  # fmt: skip
            finals = await settle_all(gw, client, ids)
    assert [f["status"] for f in finals] == ["completed"] * 4, finals
    assert all(f["video_url"].startswith(gw.base_url) and f["detail"]["channel"] == "fal" for f in finals)
    made = [upstream.fake.journal.creates(text) for text in texts]
    assert all(len(m) == 1 for m in made)
    veo, kling, hailuo, wan = (m[0].detail for m in made)
    assert veo["model"] == FAL_VEO and veo["input"] == {
        "prompt": texts[0],
        "duration": "6s",
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "seed": 7,
        "negative_prompt": "rain",
        "generate_audio": False,
    }
    assert kling["image_url"].startswith("data:image/png") and kling["tail_image_url"].startswith(
        "data:image/png"
    )
    assert (kling["duration"], kling["cfg_scale"]) == ("10", 0.5)
    assert (hailuo["resolution"], hailuo["duration"]) == ("768P", "6") and "end_image_url" in hailuo
    assert (wan["resolution"], wan["aspect_ratio"], wan["enable_prompt_expansion"]) == ("480p", "16:9", True)
    assert all(m[0].detail["problems"] == [] for m in made)  # every input as the model's schema takes it
    assert_each_video_copied(upstream, texts)


async def test_what_a_mapping_cannot_carry_is_refused_at_create_naming_the_field(
    start_gateway, upstream: FakeServer
) -> None:
    image = png_data_uri()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "kling", "duration": 5, "resolution": "1080p", "images": [image], "seed": 3}, "seed"),
        ({"last_frame": image}, "last_frame"),  # Veo 3.1 text-to-video takes no frames
        ({"images": [image]}, "images"),
        ({"model": "kling", "duration": 5, "resolution": "1080p"}, "images"),  # image-to-video only
        ({"model": "wan", "duration": 5, "generate_audio": False}, "generate_audio"),  # always with sound
        ({"duration": 7}, "duration"),
        ({"resolution": "480p"}, "resolution"),
    ]
    asked = {"model": "veo", "duration": 8, "resolution": "720p", "aspect_ratio": "16:9"}
    bodies = [{**asked, "prompt": prompt(), **fields} for fields, _ in cases]
    refused = await refused_params(start_gateway, fal(upstream), bodies)
    assert refused == [param for _, param in cases]
    assert upstream.fake.journal.count("create") == 0


async def test_an_exhausted_balance_fails_over_to_the_next_channel(
    start_gateway, upstream: FakeServer
) -> None:
    """fal locks an account whose balance ran out (403, nothing queued): the next channel is tried."""
    text = prompt()
    broke = fal(upstream, name="a", priority=0, headers={"X-Fake": "exhausted_balance=1000"})
    body = {"model": "veo", "prompt": text, "duration": 4, "resolution": "720p", "aspect_ratio": "16:9"}
    await failed_over(start_gateway, upstream, broke, fal(upstream, name="b", priority=1), body, 403)
