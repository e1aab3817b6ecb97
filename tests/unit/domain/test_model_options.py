"""Today's model options in both dialects (seed, negative_prompt, generate_audio/audio, resolution,
aspect_ratio, last_frame, enhance_prompt): read, checked against what each model can do, and refused
naming the field and the models that can, never silently dropped."""

from __future__ import annotations

import pytest

from vidgate.domain.capabilities import (
    AudioSupport,
    CapabilityOverride,
    GenerationAsk,
    ModelCapabilities,
    canonical_size,
    describe_size,
    merge,
    sizes_for,
)
from vidgate.domain.pricing import ModelPrice, Price, PriceList
from vidgate.domain.requests import VideoSpec, input_echo, parse_openai, parse_unified
from vidgate.domain.routing import Catalog, ChannelProfile, RouteRequest
from vidgate.domain.tasks import WatermarkMode
from vidgate.errors import InvalidRequest

PNG = "data:image/png;base64,iVBORw0KGgo="

VEO = ModelCapabilities(
    durations=frozenset({4, 6, 8}),
    sizes=sizes_for(["720p", "1080p"], ["16:9", "9:16"]),
    first_frame=True,
    last_frame=True,
    reference_images=3,
    audio=AudioSupport.ALWAYS,
    negative_prompt=True,
    seed=True,
)
WAN = ModelCapabilities(
    durations=frozenset({5, 10}),
    sizes=sizes_for(["480p", "720p", "1080p"], ["16:9", "9:16", "1:1", "4:3", "3:4"]),
    audio=AudioSupport.OPTIONAL,
    seed=True,
    negative_prompt=True,
    enhance_prompt=True,
)
SILENT = ModelCapabilities(durations=frozenset({4, 8}), sizes=sizes_for(["720p"], ["9:16", "16:9"]))


def profile(
    name: str, model: str, caps: ModelCapabilities, pricing: PriceList | None = None
) -> ChannelProfile:
    return ChannelProfile(
        name, "scripted", frozenset({model}), caps.durations, caps.sizes, caps.max_images, "always",
        capabilities={model: caps}, **({"pricing": pricing} if pricing else {}),
    )  # fmt: skip


CATALOG = Catalog(
    [profile("veo", "veo-3.1", VEO), profile("wan", "wan2.6", WAN), profile("s", "silent", SILENT)]
)


def unified(body: dict) -> VideoSpec:
    return parse_unified({"prompt": "a fox", **body}, CATALOG, max_prompt_chars=4000)


def openai(body: dict) -> VideoSpec:
    return parse_openai({"prompt": "a fox", **body}, CATALOG, max_prompt_chars=4000)


def refusal(body: dict, parse=unified) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    return info.value


def test_resolution_words_and_ratios_name_canonical_sizes_and_back() -> None:
    assert canonical_size("720p", "9:16") == (720, 1280)
    assert canonical_size("1080p", "16:9") == (1920, 1080)
    assert canonical_size("480p", "16:9") == (854, 480)
    assert canonical_size("720p", "21:9") == (1680, 720)
    assert canonical_size("1080p", "1:1") == (1080, 1080)
    assert describe_size("1440x1080") == ("1080p", "4:3")
    assert describe_size("1024x1792") == (None, None)


def test_both_dialects_read_every_option_and_keep_them_on_the_task() -> None:
    body = {
        "model": "wan2.6", "duration": 5, "resolution": "480p", "aspect_ratio": "4:3", "seed": 7,
        "negative_prompt": "blur", "generate_audio": "true", "enhance_prompt": False,
    }  # fmt: skip
    spec = unified(body)
    assert (spec.width, spec.height, spec.generate_audio, spec.enhance_prompt) == (640, 480, True, False)
    assert spec.passthrough == {"seed": 7, "negative_prompt": "blur"}
    echo = input_echo(spec)
    assert echo["resolution"] == "480p" and echo["aspect_ratio"] == "4:3"
    assert echo["generate_audio"] is True and echo["enhance_prompt"] is False
    route = spec.route
    assert route.audio is True and route.options == {"seed", "negative_prompt", "enhance_prompt"}
    # The OpenAI dialect: the same names as extra fields (form values arrive as strings).
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items() if k != "duration"}
    spec = openai({**form, "seconds": "10"})
    assert (spec.width, spec.height, spec.seconds, spec.generate_audio) == (640, 480, 10, True)


def test_relays_audio_is_generate_audio_and_disagreeing_is_refused() -> None:
    assert unified({"model": "wan2.6", "duration": 5, "audio": False}).generate_audio is False
    assert (
        refusal({"model": "wan2.6", "duration": 5, "audio": True, "generate_audio": False}).param == "audio"
    )


def test_orientation_and_size_labels_still_map_to_the_classic_sizes() -> None:
    spec = unified({"model": "veo-3.1", "duration": 8, "orientation": "landscape", "size": "large"})
    assert spec.size == "1920x1080"
    assert unified({"model": "veo-3.1", "duration": 8}).size == "720x1280"
    assert openai({"model": "veo-3.1", "seconds": "8", "aspect_ratio": "16:9"}).size == "1280x720"
    assert openai({"model": "veo-3.1", "seconds": "8", "size": "1280x720", "aspect_ratio": "16:9"}).size == (
        "1280x720"
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"orientation": "portrait", "aspect_ratio": "16:9"}, "aspect_ratio"),
        ({"orientation": "landscape", "aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"size": "large", "resolution": "720p"}, "resolution"),
        ({"size": "1280x720", "aspect_ratio": "9:16"}, "aspect_ratio"),
        ({"size": "1280x720", "resolution": "1080p"}, "resolution"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"resolution": "4k"}, "resolution"),
    ],
)
def test_contradicting_or_unknown_shapes_are_refused_naming_the_field(body: dict, param: str) -> None:
    assert refusal({"model": "veo-3.1", "duration": 8, **body}).param == param


@pytest.mark.parametrize(
    ("body", "param", "able"),
    [
        ({"model": "silent", "duration": 4, "generate_audio": True}, "generate_audio", ["veo-3.1", "wan2.6"]),
        ({"model": "silent", "duration": 4, "audio": True}, "audio", ["veo-3.1", "wan2.6"]),
        (
            {"model": "veo-3.1", "duration": 8, "generate_audio": False},
            "generate_audio",
            ["silent", "wan2.6"],
        ),
        ({"model": "veo-3.1", "duration": 8, "aspect_ratio": "21:9"}, "aspect_ratio", []),
        ({"model": "silent", "duration": 4, "resolution": "1080p"}, "resolution", ["veo-3.1", "wan2.6"]),
        ({"model": "silent", "duration": 4, "size": "large"}, "size", ["veo-3.1", "wan2.6"]),
        ({"model": "veo-3.1", "duration": 5}, "duration", []),
        ({"model": "wan2.6", "duration": 5, "last_frame": PNG}, "last_frame", ["veo-3.1"]),
        ({"model": "silent", "duration": 4, "seed": 3}, "seed", ["veo-3.1", "wan2.6"]),
        (
            {"model": "silent", "duration": 4, "negative_prompt": "x"},
            "negative_prompt",
            ["veo-3.1", "wan2.6"],
        ),
        ({"model": "veo-3.1", "duration": 8, "enhance_prompt": True}, "enhance_prompt", ["wan2.6"]),
        ({"model": "wan2.6", "duration": 5, "images": [PNG, PNG]}, "images", []),
    ],
)
def test_an_option_the_model_cannot_honour_is_a_400_naming_it_and_the_models_that_can(
    body: dict, param: str, able: list[str]
) -> None:
    error = refusal(body)
    assert error.param == param, error.message
    for model in able:
        assert model in error.message, error.message


def test_a_last_frame_is_stored_after_the_images_and_routed_apart_from_them() -> None:
    spec = unified({"model": "veo-3.1", "duration": 8, "images": [PNG], "last_frame": PNG})
    assert spec.all_images == (PNG, PNG)
    assert spec.named_images() == [("images[0]", PNG), ("last_frame", PNG)]
    assert spec.route.image_count == 1 and spec.route.last_frame
    assert refusal({"model": "veo-3.1", "duration": 8, "last_frame": "ftp://x"}).param == "last_frame"


def test_routing_sends_a_task_only_where_its_model_honours_every_option() -> None:
    loud = ModelCapabilities(frozenset({8}), sizes_for(["720p"], ["9:16"]), audio=AudioSupport.ALWAYS)
    quiet = ModelCapabilities(frozenset({8}), sizes_for(["720p"], ["9:16"]))
    catalog = Catalog([profile("loud", "m", loud), profile("quiet", "m", quiet)])
    ask = RouteRequest("m", 8, "720x1280", 0, WatermarkMode.PREFER_CLEAN, audio=True)
    assert [c.name for c in catalog.candidates(ask)] == ["loud"]
    silent = RouteRequest("m", 8, "720x1280", 0, WatermarkMode.PREFER_CLEAN, audio=False)
    assert [c.name for c in catalog.candidates(silent)] == ["quiet"]
    merged = catalog.capabilities("m")
    assert merged is not None and merged.audio is AudioSupport.OPTIONAL


def test_prices_follow_resolution_and_sound() -> None:
    veo_price = ModelPrice(
        Price(per_second=200_000, with_audio=Price(per_second=400_000)),
        resolutions={"1080p": Price(per_second=300_000, with_audio=Price(per_second=600_000))},
    )
    wan = profile("wan", "wan2.6", WAN, PriceList({"wan2.6": veo_price}))
    assert wan.price(RouteRequest("wan2.6", 5, "1280x720", 0, WatermarkMode.PREFER_CLEAN)) == 1_000_000
    assert (
        wan.price(RouteRequest("wan2.6", 5, "1280x720", 0, WatermarkMode.PREFER_CLEAN, audio=True))
        == 2_000_000
    )
    assert wan.price(RouteRequest("wan2.6", 10, "1920x1080", 0, WatermarkMode.PREFER_CLEAN, audio=True)) == (
        6_000_000
    )
    # A model that always makes sound is charged the sound price whatever the request says.
    veo = profile("veo", "veo-3.1", VEO, PriceList({"veo-3.1": veo_price}))
    assert veo.price(RouteRequest("veo-3.1", 8, "1280x720", 0, WatermarkMode.PREFER_CLEAN)) == 3_200_000


def test_an_operator_override_replaces_only_what_it_names() -> None:
    changed = CapabilityOverride(aspect_ratios=("16:9",), values={"seed": False}).apply(VEO)
    assert changed.aspect_ratios == ["16:9"] and changed.resolutions == ["720p", "1080p"]
    assert not changed.seed and changed.last_frame and changed.durations == VEO.durations


def test_merging_takes_the_union_and_refusals_name_one_field() -> None:
    merged = merge([VEO, WAN])
    assert merged is not None and merged.durations == {4, 5, 6, 8, 10} and merged.enhance_prompt
    assert SILENT.refuses(GenerationAsk(audio=True)) == "generate_audio"
    assert VEO.refuses(GenerationAsk(image_count=4)) == "images"
    assert VEO.refuses(GenerationAsk(image_count=3, last_frame=True, options=frozenset({"seed"}))) is None
    assert merge([]) is None


TIED = ModelCapabilities(
    durations=frozenset({4, 6, 8}),
    sizes=sizes_for(["720p", "1080p"], ["16:9", "9:16"]),
    last_frame=True,
    reference_images=3,
    audio=AudioSupport.ALWAYS,
    seed=True,
    max_seed=2**31 - 1,
    durations_with={"1080p": frozenset({8}), "last_frame": frozenset({8})},
    aspect_ratios_with={"reference_images": frozenset({"16:9"})},
)
I2V = ModelCapabilities(durations=frozenset({5}), sizes=sizes_for(["720p"], ["16:9"]), needs_first_frame=True)
KF2V = ModelCapabilities(
    durations=frozenset({5}), sizes=sizes_for(["720p"], ["16:9"]), last_frame=True, needs_first_frame=True,
    needs_last_frame=True,
)  # fmt: skip
TIES = Catalog([profile("t", "tied", TIED), profile("i", "i2v", I2V), profile("k", "kf2v", KF2V)])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tied", "duration": 4, "resolution": "1080p", "aspect_ratio": "16:9"}, "duration"),
        (
            {"model": "tied", "duration": 6, "aspect_ratio": "16:9", "images": [PNG], "last_frame": PNG},
            "duration",
        ),
        ({"model": "tied", "duration": 8, "aspect_ratio": "9:16", "images": [PNG, PNG]}, "aspect_ratio"),
        ({"model": "tied", "duration": 8, "seed": 2**31}, "seed"),
        ({"model": "i2v", "duration": 5, "aspect_ratio": "16:9"}, "images"),
        ({"model": "kf2v", "duration": 5, "aspect_ratio": "16:9", "images": [PNG]}, "last_frame"),
    ],
)
def test_what_a_model_makes_only_in_some_shapes_or_needs_is_refused_at_create(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_unified({"prompt": "x", **body}, TIES, max_prompt_chars=100)
    assert info.value.param == param, info.value.message


def test_the_same_features_in_the_shapes_that_allow_them_are_taken() -> None:
    for body in (
        {"model": "tied", "duration": 8, "resolution": "1080p", "aspect_ratio": "9:16"},
        {"model": "tied", "duration": 8, "aspect_ratio": "16:9", "images": [PNG, PNG, PNG]},
        {"model": "tied", "duration": 4, "seed": 2**31 - 1},
        {"model": "kf2v", "duration": 5, "aspect_ratio": "16:9", "images": [PNG], "last_frame": PNG},
    ):
        parse_unified({"prompt": "x", **body}, TIES, max_prompt_chars=100)
