"""The aggregators' declarative input mapping: what it derives (capabilities), what a request becomes
(each field on the model's own input, encoded as the model takes it), and what it refuses at start,
naming the channel, the model and the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.aggregator_presets import FAL_HAILUO, FAL_KLING_I2V, FAL_MODELS, FAL_VEO, FAL_WAN
from vidgate.config import ChannelSettings, Settings
from vidgate.domain.capabilities import AudioSupport, GenerationAsk, sizes_for
from vidgate.domain.tasks import WatermarkMode
from vidgate.providers.base import ProviderError, SubmitRequest
from vidgate.providers.input_mapping import (
    InputMapping,
    build_input,
    dig_path,
    sent_scalars,
    submission_seed,
)
from vidgate.providers.registry import ChannelConfigError, check_channels, profile_for


def mapping(model: str = FAL_VEO, **changes: Any) -> InputMapping:
    return InputMapping.model_validate({**FAL_MODELS[model], **changes})


def request(size: tuple[int, int] = (1280, 720), seconds: int = 8, **fields: Any) -> SubmitRequest:
    return SubmitRequest(
        task_id="01task",
        idempotency_key=fields.pop("key", "01task-0"),
        model="m",
        prompt="a lighthouse",
        width=size[0],
        height=size[1],
        seconds=seconds,
        watermark_mode=WatermarkMode.PREFER_CLEAN,
        private=False,
        **fields,
    )


def body(m: InputMapping, req: SubmitRequest, *, images: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"last_frame": None, "seed": req.seed, "audio": True, **kw}
    return build_input(m, req, images=images, **options)


def fal_channel(**overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": "fal",
        "kind": "fal",
        "base_url": "https://queue.fal.run",
        "api_key": "fal-key-123456",
        "models": [FAL_VEO, FAL_KLING_I2V],
        "options": {"models": {m: FAL_MODELS[m] for m in (FAL_VEO, FAL_KLING_I2V)}},
        **overrides,
    }
    return ChannelSettings(**values)


# What a mapping says ------------------------------------------------------------------------------


def test_capabilities_come_from_the_inputs_the_mapping_names() -> None:
    veo = mapping().capabilities()
    assert veo.durations == frozenset({4, 6, 8})
    assert veo.sizes == sizes_for(("720p", "1080p"), ("16:9", "9:16"))
    assert veo.audio is AudioSupport.OPTIONAL and veo.makes_audio(None) and not veo.makes_audio(False)
    assert veo.seed and veo.negative_prompt and not veo.enhance_prompt
    assert not veo.first_frame and not veo.last_frame and veo.max_images == 0
    kling = mapping(FAL_KLING_I2V).capabilities()
    assert kling.first_frame and kling.last_frame and kling.needs_first_frame and not kling.seed
    assert kling.audio is AudioSupport.NONE and kling.resolutions == ["1080p"]
    wan = mapping(FAL_WAN).capabilities()
    assert wan.audio is AudioSupport.ALWAYS and wan.enhance_prompt
    assert kling.refuses(GenerationAsk(image_count=1, options=frozenset({"seed"}))) == "seed"
    assert veo.refuses(GenerationAsk(image_count=1)) == "images"
    assert wan.refuses(GenerationAsk(audio=False)) == "generate_audio"


def test_a_request_lands_on_the_models_own_inputs_encoded_as_it_takes_them() -> None:
    veo = body(mapping(), request(passthrough={"seed": 7, "negative_prompt": "fog"}), audio=False)
    assert veo == {
        "prompt": "a lighthouse",
        "duration": "8s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 7,
        "negative_prompt": "fog",
        "generate_audio": False,
    }
    kling = body(
        mapping(FAL_KLING_I2V),
        request(size=(1080, 1920), seconds=10),
        images=("https://img.example/a.png",),
        last_frame="https://img.example/z.png",
    )
    assert kling == {
        "cfg_scale": 0.5,
        "prompt": "a lighthouse",
        "image_url": "https://img.example/a.png",
        "tail_image_url": "https://img.example/z.png",
        "duration": "10",
    }
    hailuo = body(
        mapping(FAL_HAILUO), request(seconds=6, enhance_prompt=False), images=("data:image/png;base64,AA",)
    )
    assert (
        hailuo["resolution"] == "768P" and hailuo["prompt_optimizer"] is False and hailuo["duration"] == "6"
    )
    numbers = body(mapping(duration_type="number", duration_suffix=""), request(seconds=4))
    assert numbers["duration"] == 4


def test_images_beyond_what_the_model_takes_are_refused_before_sending() -> None:
    refs = mapping(FAL_VEO, reference_images="image_urls", max_reference_images=3)
    sent = body(refs, request(), images=("https://a", "https://b"))
    assert sent["image_urls"] == ["https://a", "https://b"]
    with pytest.raises(ProviderError) as too_many:
        body(refs, request(), images=("https://a",) * 4)
    with pytest.raises(ProviderError) as no_last:
        body(mapping(), request(), last_frame="https://z")
    with pytest.raises(ProviderError) as size:
        body(mapping(), request(size=(1024, 1792)))
    with pytest.raises(ProviderError) as seed:
        body(mapping(max_seed=100), request(passthrough={"seed": 101}))
    codes = [e.value.code for e in (too_many, no_last, size, seed)]
    assert codes == ["too_many_images", "unsupported_combination", "unsupported_size", "invalid_seed"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seed": ""}, "seed"),
        ({"image": "  "}, "image"),
        ({"negative_prompt": "has space"}, "negative_prompt"),
        ({"seed": "prompt"}, "seed: input 'prompt' already takes prompt"),
        ({"fixed": {"seed": 1}}, "fixed"),
        ({"duration": None}, "durations"),
        ({"duration_type": "number"}, "duration_suffix"),
        ({"resolution": None}, "resolutions"),
        ({"aspect_ratio": None}, "aspect_ratios"),
        ({"resolution_values": {"480p": "480P"}}, "resolution_values"),
        ({"audio": None}, "audio_default"),
        ({"audio": None, "audio_default": False, "sound": "optional"}, "sound"),
        ({"sound": "always"}, "sound"),
        ({"image_required": True}, "image_required"),
        ({"last_frame_required": True}, "last_frame_required"),
        ({"max_reference_images": 2}, "max_reference_images"),
        ({"reference_images": "refs"}, "max_reference_images"),
        ({"durations": []}, "durations"),
        ({"result": "video..url"}, "result"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_a_mapping_that_maps_a_field_to_nothing_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        mapping(**changes)


def test_at_start_the_channel_model_and_field_are_named() -> None:
    missing = fal_channel(models=[FAL_VEO, FAL_KLING_I2V, FAL_WAN])
    with pytest.raises(
        ChannelConfigError, match=rf"channel 'fal' \(kind fal\): model '{FAL_WAN}' has no input"
    ):
        check_channels(Settings(channels=[missing]))
    stray = fal_channel(models=[FAL_VEO])
    with pytest.raises(ChannelConfigError, match=rf"maps model '{FAL_KLING_I2V}', which the channel"):
        check_channels(Settings(channels=[stray]))
    options = {"models": {FAL_VEO: {**FAL_MODELS[FAL_VEO], "seed": ""}}}
    empty = fal_channel(models=[FAL_VEO], options=options)
    with pytest.raises(ChannelConfigError, match=rf"'fal'.*options\.models\.{FAL_VEO}\.seed"):
        check_channels(Settings(channels=[empty]))
    seedless = fal_channel(capabilities={FAL_KLING_I2V: {"seed": True}})
    with pytest.raises(ChannelConfigError, match=rf"model '{FAL_KLING_I2V}': seed: no input"):
        check_channels(Settings(channels=[seedless]))
    loud = fal_channel(capabilities={FAL_KLING_I2V: {"audio": "optional"}})
    with pytest.raises(ChannelConfigError, match="audio: no input switches the sound"):
        check_channels(Settings(channels=[loud]))
    longer = fal_channel(durations=[5, 12], capabilities={FAL_VEO: {"durations": [12]}})
    with pytest.raises(ChannelConfigError, match=r"durations \[12\]"):
        check_channels(Settings(channels=[longer]))
    bad_id = fal_channel(models=["veo3"], options={"models": {"veo3": FAL_MODELS[FAL_VEO]}})
    with pytest.raises(ChannelConfigError, match="'veo3' is not a fal model id"):
        check_channels(Settings(channels=[bad_id]))


def test_corrections_that_narrow_are_kept_and_public_names_map_to_upstream_ids() -> None:
    narrowed = fal_channel(
        models=["veo"],
        model_map={"veo": FAL_VEO},
        options={"models": {FAL_VEO: FAL_MODELS[FAL_VEO]}},
        capabilities={"veo": {"resolutions": ["720p"], "audio": "always"}},
    )
    check_channels(Settings(channels=[narrowed]))
    caps = profile_for(narrowed).capabilities["veo"]
    assert caps.resolutions == ["720p"] and caps.audio is AudioSupport.ALWAYS


def test_pieces() -> None:
    output = {"videos": [{"url": "https://cdn/a.mp4"}], "video": {"url": "https://cdn/b.mp4"}}
    assert dig_path(output, "videos.0.url") == "https://cdn/a.mp4"
    assert dig_path(output, "video.url") == "https://cdn/b.mp4"
    assert dig_path(output, "videos.3.url") is None and dig_path("x", "") == "x"
    first = submission_seed(request(key="01a-0"), tag=True, max_seed=2**31 - 1)
    assert first == submission_seed(request(key="01a-0"), tag=True, max_seed=2**31 - 1)
    assert first != submission_seed(request(key="01a-1"), tag=True, max_seed=2**31 - 1)
    assert first is not None and 0 <= first < 2**31
    assert submission_seed(request(passthrough={"seed": 3}), tag=True, max_seed=9) == 3
    assert submission_seed(request(), tag=False, max_seed=9) is None
    assert sent_scalars({"prompt": "p", "image": "data:image/png;base64,AA", "n": 2, "l": [1]}) == {
        "prompt": "p",
        "n": 2,
    }
