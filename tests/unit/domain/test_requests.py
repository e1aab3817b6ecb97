"""Request normalisation: the contract's defaults, relay coercions, and refusals that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidgate.domain.requests import VideoSpec, input_echo, parse_openai, parse_unified
from vidgate.domain.routing import Catalog, ChannelProfile
from vidgate.domain.tasks import WatermarkMode
from vidgate.errors import InvalidRequest

ALL_SIZES = frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080"})


def channel(
    name: str = "c",
    *,
    models=("sora-2", "sora-2-pro"),
    durations=(10, 15),
    watermark_free="always",
    max_images=4,
    sizes=ALL_SIZES,
) -> ChannelProfile:
    return ChannelProfile(
        name,
        "scripted",
        frozenset(models),
        frozenset(durations),
        frozenset(sizes),
        max_images,
        watermark_free,
    )


CATALOG = Catalog([channel(), channel("pro", models=("sora-2-pro",), durations=(10, 15, 25))])


def unified(body: dict) -> VideoSpec:
    return parse_unified(body, CATALOG, max_prompt_chars=4000)


def refusal(body: dict, parse=unified) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    return info.value


def seed_example_body() -> dict:
    """The example body of the seed page, exactly as published (CRLFs, spacing and all)."""
    seed = Path(__file__).parents[3] / "docs" / "seed-video-create-sora-2.json"
    return json.loads(seed.read_text())


def test_seed_example_body_is_accepted_verbatim() -> None:
    spec = unified(seed_example_body())
    assert (spec.model, spec.width, spec.height, spec.seconds) == ("sora-2", 1080, 1920, 15)
    assert spec.watermark_mode is WatermarkMode.REQUIRE_CLEAN
    assert spec.images == ("https://filesystem.site/cdn/20250612/998IGmUiM2koBGZM3UnZeImbPBNIUL.png",)


def test_defaults() -> None:
    spec = unified({"model": "sora-2", "prompt": "x"})
    assert spec.images == ()
    assert (spec.orientation, spec.size_label, spec.width, spec.height) == ("portrait", "small", 720, 1280)
    assert spec.seconds == 10
    assert spec.watermark_mode is WatermarkMode.PREFER_CLEAN
    assert spec.private is False


@pytest.mark.parametrize(
    "value, expected", [(False, False), ("false", False), ("FALSE", False), (True, True), ("true", True)]
)
def test_watermark_accepts_booleans_and_their_strings(value, expected) -> None:
    spec = unified({"model": "sora-2", "prompt": "x", "watermark": value})
    assert (spec.watermark_mode is WatermarkMode.PREFER_CLEAN) is expected


@pytest.mark.parametrize("value", [15, "15", 15.0, " 15 "])
def test_duration_accepts_int_and_numeric_string(value) -> None:
    assert unified({"model": "sora-2", "prompt": "x", "duration": value}).seconds == 15


def test_landscape_large_is_1080p() -> None:
    spec = unified({"model": "sora-2", "prompt": "x", "orientation": "landscape", "size": "large"})
    assert (spec.width, spec.height, spec.orientation, spec.size_label) == (1920, 1080, "landscape", "large")


def test_wxh_size_is_accepted_and_must_agree_with_orientation() -> None:
    assert unified({"model": "sora-2", "prompt": "x", "size": "1280x720"}).orientation == "landscape"
    assert (
        refusal({"model": "sora-2", "prompt": "x", "size": "1280x720", "orientation": "portrait"}).param
        == "orientation"
    )


def test_25_seconds_only_where_a_channel_declares_it() -> None:
    assert unified({"model": "sora-2-pro", "prompt": "x", "duration": 25}).seconds == 25
    err = refusal({"model": "sora-2", "prompt": "x", "duration": 25})
    assert err.param == "duration"
    assert "10, 15" in err.message


@pytest.mark.parametrize(
    "body, param",
    [
        ({"prompt": "x"}, "model"),
        ({"model": "veo9", "prompt": "x"}, "model"),
        ({"model": 3, "prompt": "x"}, "model"),
        ({"model": "sora-2"}, "prompt"),
        ({"model": "sora-2", "prompt": "   "}, "prompt"),
        ({"model": "sora-2", "prompt": "x" * 4001}, "prompt"),
        ({"model": "sora-2", "prompt": ["x"]}, "prompt"),
        ({"model": "sora-2", "prompt": "x", "orientation": "diagonal"}, "orientation"),
        ({"model": "sora-2", "prompt": "x", "size": "huge"}, "size"),
        ({"model": "sora-2", "prompt": "x", "size": "640x480"}, "size"),
        ({"model": "sora-2", "prompt": "x", "duration": 7}, "duration"),
        ({"model": "sora-2", "prompt": "x", "duration": "ten"}, "duration"),
        ({"model": "sora-2", "prompt": "x", "duration": True}, "duration"),
        ({"model": "sora-2", "prompt": "x", "duration": 10.5}, "duration"),
        ({"model": "sora-2", "prompt": "x", "watermark": "no"}, "watermark"),
        ({"model": "sora-2", "prompt": "x", "watermark": 0}, "watermark"),
        ({"model": "sora-2", "prompt": "x", "private": "maybe"}, "private"),
        ({"model": "sora-2", "prompt": "x", "images": "http://a/b.png"}, "images"),
        ({"model": "sora-2", "prompt": "x", "images": ["ftp://a/b.png"]}, "images[0]"),
        ({"model": "sora-2", "prompt": "x", "images": ["https://a/b.png", 7]}, "images[1]"),
        ({"model": "sora-2", "prompt": "x", "images": ["data:text/plain;base64,aGk="]}, "images[0]"),
        ({"model": "sora-2", "prompt": "x", "images": ["https://a/x.png"] * 5}, "images"),
        ({"model": "sora-2", "prompt": "x", "character_timestamps": "1,9"}, "character_timestamps"),
        ({"model": "sora-2", "prompt": "x", "character_url": "file:///etc/passwd"}, "character_url"),
        ({"model": "sora-2", "prompt": "x", "callback_url": "gopher://x"}, "callback_url"),
        ({"model": "sora-2", "prompt": "x", "style": 5}, "style"),
    ],
)
def test_bad_input_is_refused_naming_the_field(body, param) -> None:
    err = refusal(body)
    assert err.param == param
    assert err.status_code == 400
    assert err.message


def test_require_clean_needs_a_channel_that_can_deliver_clean() -> None:
    marked_only = Catalog([channel(watermark_free="never")])
    spec = parse_unified({"model": "sora-2", "prompt": "x"}, marked_only, max_prompt_chars=10)
    assert spec.watermark_mode is WatermarkMode.PREFER_CLEAN
    with pytest.raises(InvalidRequest) as info:
        parse_unified(
            {"model": "sora-2", "prompt": "x", "watermark": False}, marked_only, max_prompt_chars=10
        )
    assert info.value.param == "watermark"


def test_relay_extras_are_kept_for_the_echo() -> None:
    spec = unified(
        {
            "model": "sora-2",
            "prompt": "x",
            "style": "anime",
            "storyboard": "true",
            "character_timestamps": "1,3",
            "private": "true",
        }
    )
    echo = input_echo(spec)
    assert echo["style"] == "anime" and echo["storyboard"] is True and echo["character_timestamps"] == "1,3"
    assert echo["private"] is True


def test_data_uris_are_shortened_in_the_echo() -> None:
    uri = "data:image/png;base64," + "A" * 1000
    echo = input_echo(unified({"model": "sora-2", "prompt": "x", "images": [uri]}))
    assert len(echo["images"][0]) < 60


def test_openai_fields() -> None:
    catalog = Catalog([channel(durations=(4, 8, 12))])
    spec = parse_openai({"prompt": "x", "seconds": "8", "size": "1280x720"}, catalog, max_prompt_chars=100)
    assert (spec.model, spec.seconds, spec.width, spec.height) == ("sora-2", 8, 1280, 720)
    with pytest.raises(InvalidRequest) as info:
        parse_openai({"prompt": "x", "seconds": "5"}, catalog, max_prompt_chars=100)
    assert info.value.param == "seconds"
    with pytest.raises(InvalidRequest) as info:
        parse_openai({"prompt": "x", "size": "100x100"}, catalog, max_prompt_chars=100)
    assert info.value.param == "size"
