"""The `replicate` channel through the real gateway and worker, against the shipped fake's predictions API
over loopback: both dialects make text-to-video, image-to-video, first-and-last-frame and sound videos
through the presets' input mappings (the fake validates each input as Replicate does, at create), what a
mapping cannot carry is refused at create naming the field, and Replicate's 402 (no credit) fails over.
The paid-once rules are in the shared vendor contract; these run on SQLite only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aggregator_presets import REPLICATE_KLING, REPLICATE_MODELS, REPLICATE_VEO
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
PUBLIC = {"veo-fast": REPLICATE_VEO, "kling": REPLICATE_KLING}


db_url = sqlite_db_url  # SQLite only: the shared vendor contract runs the kind on PostgreSQL too


def prompt(directives: str = "") -> str:
    return unique_prompt("a copper kite over salt flats", directives)


def replicate(server: FakeServer, name: str = "replicate", **overrides: Any) -> ChannelSettings:
    options = {"poll_seconds": 0.05, "models": REPLICATE_MODELS}
    return upstream_channel(
        "replicate", server, name=name, base_url=server.api, models=[], model_map=PUBLIC, options=options,
        **overrides,
    )  # fmt: skip


async def test_both_dialects_make_text_image_last_frame_and_sound_videos(
    start_gateway, upstream: FakeServer
) -> None:
    texts = [prompt() for _ in range(3)]
    async with start_gateway(**gateway_options(replicate(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [
                await create_task(client, "/v1/video/create", {
                    "model": "veo-fast", "prompt": texts[0], "duration": 4, "aspect_ratio": "9:16",
                    "resolution": "1080p", "seed": 7, "negative_prompt": "fog", "generate_audio": False,
                }),
                await create_task(client, "/v1/videos", {
                    "model": "veo-fast", "prompt": texts[1], "seconds": "8", "size": "1280x720",
                    "input_reference": {"image_url": png_data_uri()}, "last_frame": png_data_uri(600, 900),
                }),
                await create_task(client, "/v1/video/create", {
                    "model": "kling", "prompt": texts[2], "duration": 10, "resolution": "1080p",
                    "aspect_ratio": "1:1", "images": [png_data_uri()], "generate_audio": True,
                }),
            ]  # fmt: skip
            finals = await settle_all(gw, client, ids)
    assert [f["status"] for f in finals] == ["completed"] * 3, finals
    assert all(f["video_url"].startswith(gw.base_url) for f in finals)
    made = [upstream.fake.journal.creates(text) for text in texts]
    assert all(len(m) == 1 for m in made)
    text, framed, kling = (m[0].detail for m in made)
    assert text["model"] == REPLICATE_VEO and text["input"] == {
        "prompt": texts[0],
        "duration": 4,
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "seed": 7,
        "negative_prompt": "fog",
        "generate_audio": False,
    }
    assert framed["image"].startswith("data:image/png") and framed["last_frame"].startswith("data:image/png")
    assert framed["generate_audio"] is True and isinstance(
        framed["seed"], int
    )  # a seed tied to the submission
    assert kling["model"] == REPLICATE_KLING and kling["start_image"].startswith("data:image/png")
    assert (kling["duration"], kling["aspect_ratio"], kling["generate_audio"]) == (10, "1:1", True)
    assert_each_video_copied(upstream, texts)


async def test_what_a_mapping_cannot_carry_is_refused_at_create_naming_the_field(
    start_gateway, upstream: FakeServer
) -> None:
    image = png_data_uri()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "kling", "duration": 5, "resolution": "1080p", "seed": 3}, "seed"),
        ({"model": "kling", "duration": 5, "resolution": "1080p", "last_frame": image}, "last_frame"),
        ({"images": [image, image]}, "images"),
        ({"duration": 5}, "duration"),
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
    ]
    asked = {"model": "veo-fast", "duration": 8, "resolution": "720p", "aspect_ratio": "16:9"}
    bodies = [{**asked, "prompt": prompt(), **fields} for fields, _ in cases]
    refused = await refused_params(start_gateway, replicate(upstream), bodies)
    assert refused == [param for _, param in cases]
    assert upstream.fake.journal.count("create") == 0


async def test_a_lack_of_credit_fails_over_to_the_next_channel(start_gateway, upstream: FakeServer) -> None:
    """Replicate answers 402 "Insufficient credit" before making a prediction: the next channel is tried."""
    text = prompt()
    broke = replicate(upstream, name="a", priority=0, headers={"X-Fake": "payment_required=1000"})
    body = {"model": "veo-fast", "prompt": text, "duration": 6, "resolution": "720p"}
    await failed_over(start_gateway, upstream, broke, replicate(upstream, name="b", priority=1), body, 402)
