"""The `openrouter` channel through the real gateway and worker, against the shipped fake's video API over
loopback: both dialects make text-to-video, first-and-last-frame, reference and sound videos as OpenRouter
takes them (`frame_images`, `input_references`, `size` for a size no ratio names; the fake refuses values
outside a model's sets), the model table's ties are refused at create naming the field, and a 402 (no
credits) fails over. The paid-once rules are in the shared vendor contract; these run on SQLite only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import (
    FakeServer,
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
PUBLIC = {"veo": "google/veo-3.1", "sora-pro": "openai/sora-2-pro"}


db_url = sqlite_db_url  # SQLite only: the shared vendor contract runs the kind on PostgreSQL too


def prompt(directives: str = "") -> str:
    return unique_prompt("a night train through snow", directives)


def openrouter(server: FakeServer, name: str = "openrouter", **overrides: Any) -> ChannelSettings:
    return upstream_channel(
        "openrouter", server, name=name, base_url=f"{server.url}/api/v1", models=[], model_map=PUBLIC,
        options={"poll_seconds": 0.05}, **overrides,
    )  # fmt: skip


async def test_both_dialects_make_text_frames_references_and_sound_videos(
    start_gateway, upstream: FakeServer
) -> None:
    texts = [prompt() for _ in range(4)]
    async with start_gateway(**gateway_options(openrouter(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [
                await create_task(client, "/v1/video/create", {
                    "model": "veo", "prompt": texts[0], "duration": 6, "aspect_ratio": "9:16",
                    "resolution": "720p", "seed": 7, "generate_audio": False,
                }),
                await create_task(client, "/v1/videos", {
                    "model": "veo", "prompt": texts[1], "seconds": "8", "size": "1920x1080",
                    "input_reference": {"image_url": png_data_uri()}, "last_frame": png_data_uri(600, 900),
                }),
                await create_task(client, "/v1/video/create", {
                    "model": "veo", "prompt": texts[2], "duration": 8, "aspect_ratio": "16:9",
                    "resolution": "720p", "images": [png_data_uri(), png_data_uri(400, 400)],
                }),
                await create_task(client, "/v1/videos", {
                    "model": "sora-pro", "prompt": texts[3], "seconds": "12", "size": "1024x1792",
                }),
            ]  # fmt: skip
            finals = await settle_all(gw, client, ids)
    assert [f["status"] for f in finals] == ["completed"] * 4, finals
    assert all(f["video_url"].startswith(gw.base_url) for f in finals)
    made = [upstream.fake.journal.creates(text) for text in texts]
    assert all(len(m) == 1 for m in made)
    text, framed, refs, tall = (m[0].detail for m in made)
    assert (text["model"], text["duration"], text["aspect_ratio"], text["resolution"]) == (
        "google/veo-3.1",
        6,
        "9:16",
        "720p",
    )
    assert text["seed"] == 7 and text["generate_audio"] is False and "frame_images" not in text
    assert [f["frame_type"] for f in framed["frame_images"]] == ["first_frame", "last_frame"]
    assert (framed["resolution"], framed["generate_audio"]) == ("1080p", True)
    assert len(refs["input_references"]) == 2 and "frame_images" not in refs
    assert tall["size"] == "1024x1792" and "resolution" not in tall and "generate_audio" not in tall
    # Each video came from the content endpoint (the provider's storage). A download cut short is
    # retried (it costs nothing upstream), so a loaded machine may fetch one twice.
    content = upstream.fake.journal.entries("content")
    assert {e.status for e in content} == {200}
    assert {e.job for e in content} == {m[0].job for m in made}


async def test_what_the_model_cannot_make_is_refused_at_create_naming_the_field(
    start_gateway, upstream: FakeServer
) -> None:
    image = png_data_uri()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"resolution": "1080p", "duration": 4}, "duration"),  # Veo 3.1: 1080p at 8 s only
        ({"images": [image], "last_frame": image, "duration": 6}, "duration"),  # a last frame at 8 s only
        ({"model": "sora-pro", "duration": 8, "seed": 3}, "seed"),
        (
            {"model": "sora-pro", "duration": 8, "generate_audio": False},
            "generate_audio",
        ),  # always with sound
        ({"negative_prompt": "rain"}, "negative_prompt"),  # only through the provider's passthrough
    ]
    asked = {"model": "veo", "duration": 8, "resolution": "720p", "aspect_ratio": "16:9"}
    bodies = [{**asked, "prompt": prompt(), **fields} for fields, _ in cases]
    refused = await refused_params(start_gateway, openrouter(upstream), bodies)
    assert refused == [param for _, param in cases]
    assert upstream.fake.journal.count("create") == 0


async def test_a_lack_of_credits_fails_over_to_the_next_channel(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    broke = openrouter(upstream, name="a", priority=0, headers={"X-Fake": "payment_required=1000"})
    body = {"model": "veo", "prompt": text, "duration": 4, "resolution": "720p", "aspect_ratio": "16:9"}
    await failed_over(start_gateway, upstream, broke, openrouter(upstream, name="b", priority=1), body, 402)
