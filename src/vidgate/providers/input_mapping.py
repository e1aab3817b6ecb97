"""The declarative input mapping of the aggregator kinds (`fal`, `replicate`): which input of one model
takes which of vidgate's request fields, what values it takes, and where its result URL is.

Every model behind an aggregator names its inputs its own way (`image_url` or `start_image` or
`first_frame_url`; `duration` as the number 5, the string "5" or the string "8s"), so a channel says it
per model in `options.models`, keyed by the upstream model id (after `model_map`):

```toml
[channels.options.models."fal-ai/veo3.1/image-to-video"]
image = "image_url"                  # the first frame
image_required = true                # an image-to-video model: no image, no video
duration = "duration"
durations = [4, 6, 8]
duration_type = "string"             # "number" (5) or "string" ("5")
duration_suffix = "s"                # "8s"
aspect_ratio = "aspect_ratio"
aspect_ratios = ["16:9", "9:16"]
resolution = "resolution"
resolutions = ["720p", "1080p"]
seed = "seed"
negative_prompt = "negative_prompt"
audio = "generate_audio"             # the sound switch (then sound is "optional")
audio_default = true                 # what the model does when a request does not say
fixed = { safety_tolerance = "4" }   # sent with every create
result = "video.url"                 # where the video's URL is in the output
```

What a model can do (its `ModelCapabilities`: routing, `GET /v1/models`, the 400 at create naming a field
it cannot take) is derived from the mapping, so a request never carries a field the model has no input
for. A mapping that maps a request field to nothing (an empty input name, a list of values no input
carries, a companion setting without its input, two fields on one input) is an error at start naming the
channel, the model and the field; so is a served model without a mapping (`check_mappings`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import (
    ASPECT_RATIOS,
    RESOLUTIONS,
    AudioSupport,
    ModelCapabilities,
    sizes_for,
)
from vidgate.providers.base import ProviderError, SubmitRequest
from vidgate.providers.registry import ChannelConfigError

__all__ = [
    "InputMapping",
    "build_input",
    "check_mappings",
    "dig_path",
    "overreach",
    "sent_scalars",
    "submission_seed",
]

# An input's name: one key of the model's input object (no nesting: every aggregator takes a flat one).
_INPUT_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_RESULT_PATH: Final = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# The request fields a mapping can route, in the order they are reported.
_FIELD_INPUTS: Final = (
    "prompt",
    "image",
    "last_frame",
    "reference_images",
    "duration",
    "aspect_ratio",
    "resolution",
    "seed",
    "negative_prompt",
    "enhance_prompt",
    "audio",
)

Resolution = Literal["480p", "720p", "1080p"]
AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]
_DEFAULT_RATIOS: Final[tuple[AspectRatio, ...]] = ("16:9", "9:16")
_DEFAULT_RESOLUTIONS: Final[tuple[Resolution, ...]] = ("720p",)


class InputMapping(BaseModel, extra="forbid"):
    """One model's inputs, as an aggregator takes them (see the module docstring)."""

    prompt: str = Field(default="prompt", description="The input that takes the prompt.")
    image: str | None = Field(default=None, description="The input that takes the first frame (a URL).")
    image_required: bool = Field(default=False, description="An image-to-video model: an image is required.")
    last_frame: str | None = Field(default=None, description="The input that takes the last frame.")
    last_frame_required: bool = Field(default=False, description="A first-and-last-frame model.")
    reference_images: str | None = Field(
        default=None, description="The input that takes reference images (a list of URLs)."
    )
    max_reference_images: int = Field(default=0, ge=0, le=16, description="How many it takes.")
    duration: str | None = Field(default=None, description="The input that takes the length.")
    durations: list[int] = Field(min_length=1, description="The lengths (seconds) the model makes.")
    duration_type: Literal["number", "string"] = Field(
        default="number", description='How the length is sent: 5 ("number") or "5" ("string").'
    )
    duration_suffix: str = Field(default="", max_length=8, description='Appended to a string length ("8s").')
    aspect_ratio: str | None = Field(default=None, description="The input that takes the aspect ratio.")
    aspect_ratios: list[AspectRatio] = Field(
        default_factory=lambda: list(_DEFAULT_RATIOS), min_length=1, description="The ratios it makes."
    )
    resolution: str | None = Field(default=None, description="The input that takes the resolution.")
    resolutions: list[Resolution] = Field(
        default_factory=lambda: list(_DEFAULT_RESOLUTIONS),
        min_length=1,
        description="The resolutions it makes.",
    )
    resolution_values: dict[str, str] = Field(
        default_factory=dict, description='The model\'s word for a resolution ({"720p" = "768P"}).'
    )
    seed: str | None = Field(default=None, description="The input that takes the seed.")
    max_seed: int = Field(default=2**32 - 1, ge=0, le=2**32 - 1, description="The largest seed it takes.")
    negative_prompt: str | None = Field(default=None, description="The input that takes a negative prompt.")
    enhance_prompt: str | None = Field(default=None, description="The model's prompt-rewriting switch.")
    audio: str | None = Field(default=None, description="The model's sound switch (a boolean input).")
    audio_default: bool = Field(
        default=False, description="With `audio`: whether it makes sound when a request does not say."
    )
    sound: Literal["none", "optional", "always"] | None = Field(
        default=None,
        description='Default: "optional" with `audio`, else "none"; "always" for a model that '
        "always makes sound and has no switch.",
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="Inputs sent with every create.")
    result: str | None = Field(
        default=None, description='Where the video URL is in the output ("video.url"); default: the kind\'s.'
    )

    @field_validator(*_FIELD_INPUTS)
    @classmethod
    def _names_an_input(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                "maps the request field to nothing: name the model's input, or leave the key out"
            )
        if not _INPUT_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an input name (letters, digits, _ . -; at most 64)")
        return value

    @field_validator("durations")
    @classmethod
    def _positive(cls, durations: list[int]) -> list[int]:
        if any(d <= 0 for d in durations):
            raise ValueError("durations are whole seconds above 0")
        return sorted(set(durations))

    @field_validator("result")
    @classmethod
    def _a_path(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not _RESULT_PATH.fullmatch(value):
            raise ValueError(f"{value!r} is not a path like video.url or videos.0.url")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> InputMapping:
        """Each rule names the field it is about (the error reaches the operator with the channel and
        model in front of it)."""
        inputs = self.inputs()
        seen: dict[str, str] = {}
        for field, name in inputs.items():
            if name in seen:
                raise ValueError(f"{field}: input {name!r} already takes {seen[name]}")
            seen[name] = field
        clash = sorted(set(self.fixed) & set(seen))
        if clash:
            raise ValueError(f"fixed: {clash} are mapped from request fields already")
        rules: list[tuple[bool, str]] = [
            (self.image_required and self.image is None and self.reference_images is None,
             "image_required: no input takes an image (set image)"),
            (self.last_frame_required and self.last_frame is None,
             "last_frame_required: no input takes a last frame (set last_frame)"),
            (self.reference_images is not None and self.max_reference_images < 1,
             "max_reference_images: reference_images takes at least 1"),
            (self.reference_images is None and self.max_reference_images > 0,
             "max_reference_images: no input takes reference images (set reference_images)"),
            (self.duration is None and len(self.durations) > 1,
             "durations: several lengths, but no input takes the length (set duration)"),
            (self.duration_suffix != "" and self.duration_type != "string",
             'duration_suffix: only a string length has a suffix (set duration_type = "string")'),
            (self.resolution is None and len(self.resolutions) > 1,
             "resolutions: several resolutions, but no input takes the resolution (set resolution)"),
            (bool(set(self.resolution_values) - set(self.resolutions)),
             "resolution_values: a resolution the model does not make (see resolutions)"),
            (self.resolution is None and bool(self.resolution_values),
             "resolution_values: no input takes the resolution (set resolution)"),
            (self.aspect_ratio is None and len(self.aspect_ratios) > 1 and not self.image_required,
             "aspect_ratios: several ratios, but no input takes the ratio (set aspect_ratio); only a model "
             "that always starts from an image takes the image's shape"),
            (self.audio is None and self.sound == "optional",
             'sound: "optional" needs the model\'s sound switch (set audio)'),
            (self.audio is not None and self.sound in ("none", "always"),
             f"sound: {self.sound!r} contradicts audio, the model's sound switch"),
            (self.audio is None and self.audio_default,
             "audio_default: no input switches the sound (set audio)"),
        ]  # fmt: skip
        for broken, why in rules:
            if broken:
                raise ValueError(why)
        return self

    # What it says -----------------------------------------------------------------------------

    def inputs(self) -> dict[str, str]:
        """Request field -> the model's input, for the fields this model takes."""
        return {f: name for f in _FIELD_INPUTS if (name := getattr(self, f)) is not None}

    @property
    def audio_support(self) -> AudioSupport:
        if self.audio is not None:
            return AudioSupport.OPTIONAL
        return AudioSupport.ALWAYS if self.sound == "always" else AudioSupport.NONE

    def capabilities(self) -> ModelCapabilities:
        """What the model can do, as the mapping declares it (nothing it has no input for)."""
        audio = self.audio_support
        return ModelCapabilities(
            durations=frozenset(self.durations),
            sizes=sizes_for(
                [r for r in RESOLUTIONS if r in self.resolutions],
                [a for a in ASPECT_RATIOS if a in self.aspect_ratios],
            ),
            first_frame=self.image is not None,
            last_frame=self.last_frame is not None,
            reference_images=self.max_reference_images if self.reference_images is not None else 0,
            audio=audio,
            audio_default=audio is AudioSupport.ALWAYS
            or (audio is AudioSupport.OPTIONAL and self.audio_default),
            negative_prompt=self.negative_prompt is not None,
            seed=self.seed is not None,
            enhance_prompt=self.enhance_prompt is not None,
            needs_first_frame=self.image_required,
            needs_last_frame=self.last_frame_required,
            max_seed=self.max_seed,
        )

    def encode_duration(self, seconds: int) -> int | str:
        if self.duration_type == "number":
            return seconds
        return f"{seconds}{self.duration_suffix}"


def dig_path(value: Any, path: str) -> Any:
    """`value` at a dotted path (`video.url`, `videos.0.url`; "" is `value` itself); None where a step is
    missing. A number steps into a list."""
    if path == "":
        return value
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def build_input(
    mapping: InputMapping,
    request: SubmitRequest,
    *,
    images: Sequence[str],
    last_frame: str | None,
    seed: int | None,
    audio: bool,
) -> dict[str, Any]:
    """The model's input object for `request`. `images` are the request's images as the aggregator
    takes them (URLs or data URIs), `last_frame` likewise; `seed` is the seed to send (the client's, or
    the caller's own; None: none); `audio` whether the video is to have sound (what routing and pricing
    decided: sent wherever the model has a switch, so that it never rests on the model's default).
    Routing has already refused what the mapping cannot carry; what it cannot check (a size no ratio
    names, more images than inputs) is refused here, before sending."""
    body: dict[str, Any] = dict(mapping.fixed)
    body[mapping.prompt] = request.prompt
    _place_images(mapping, body, images, last_frame)
    if mapping.duration is not None:
        if request.seconds not in mapping.durations:
            raise ProviderError(
                "unsupported_duration", f"This model makes {mapping.durations} s, not {request.seconds} s."
            )
        body[mapping.duration] = mapping.encode_duration(request.seconds)
    resolution, ratio = request.resolution, request.aspect_ratio
    if resolution not in mapping.resolutions or ratio not in mapping.aspect_ratios:
        raise ProviderError(
            "unsupported_size",
            f"This model makes {', '.join(mapping.resolutions)} at {', '.join(mapping.aspect_ratios)}; "
            f"{request.size} is none of them.",
        )
    if mapping.aspect_ratio is not None:
        body[mapping.aspect_ratio] = ratio
    if mapping.resolution is not None:
        body[mapping.resolution] = mapping.resolution_values.get(str(resolution), resolution)
    if mapping.seed is not None and seed is not None:
        if not 0 <= seed <= mapping.max_seed:
            raise ProviderError(
                "invalid_seed", f"This model takes a seed from 0 to {mapping.max_seed}; got {seed}."
            )
        body[mapping.seed] = seed
    if mapping.negative_prompt is not None and request.negative_prompt is not None:
        body[mapping.negative_prompt] = request.negative_prompt
    if mapping.enhance_prompt is not None and request.enhance_prompt is not None:
        body[mapping.enhance_prompt] = request.enhance_prompt
    if mapping.audio is not None:
        body[mapping.audio] = audio
    return body


def _place_images(
    mapping: InputMapping, body: dict[str, Any], images: Sequence[str], last_frame: str | None
) -> None:
    """One image is the first frame where the model takes one, else a reference; more are references."""
    if len(images) == 1 and mapping.image is not None:
        body[mapping.image] = images[0]
    elif images:
        if mapping.reference_images is None or len(images) > mapping.max_reference_images:
            raise ProviderError(
                "too_many_images", f"This model takes no {len(images)} image(s) as a frame or references."
            )
        body[mapping.reference_images] = list(images)
    if last_frame is not None:
        if mapping.last_frame is None:
            raise ProviderError("unsupported_combination", "This model takes no last frame.")
        body[mapping.last_frame] = last_frame


def submission_seed(request: SubmitRequest, *, tag: bool, max_seed: int) -> int | None:
    """The seed a create carries: the client's, else (with `tag`) one derived from the submission's
    idempotency key: random to the model, the same for a retry of one submission, new for a
    resubmission, and what tells this submission's job from a twin's in a lookup."""
    if request.seed is not None or not tag:
        return request.seed
    digest = hashlib.sha256(f"vidgate-seed:{request.idempotency_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (max_seed + 1)


def sent_scalars(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a lookup can compare of a sent input: its scalars, data: URIs left out (an aggregator may
    store them elsewhere or not echo them)."""
    return {
        key: value
        for key, value in body.items()
        if isinstance(value, (str, int, float, bool))
        and not (isinstance(value, str) and value.lower().startswith("data:"))
    }


def overreach(carried: ModelCapabilities, final: ModelCapabilities) -> str | None:
    """The first thing `final` (a model's capabilities after the channel's own settings and
    `capabilities` corrections) lets a request ask that the mapping (`carried`) sends nowhere; None
    when the corrections only narrow it."""
    extra_durations = sorted(final.durations - carried.durations)
    if extra_durations:
        return f"durations {extra_durations}: the mapping's durations do not list them"
    extra_sizes = sorted(final.sizes - carried.sizes)
    if extra_sizes:
        return f"resolutions/aspect_ratios (sizes {extra_sizes}): the mapping's lists do not have them"
    for name in ("first_frame", "last_frame", "negative_prompt", "seed", "enhance_prompt"):
        if getattr(final, name) and not getattr(carried, name):
            return f"{name}: no input of the model takes it"
    if final.reference_images > carried.reference_images:
        return f"reference_images: the mapping takes {carried.reference_images}"
    if final.seed and final.max_seed > carried.max_seed:
        return f"max_seed: the mapping's max_seed is {carried.max_seed}"
    if carried.audio is AudioSupport.NONE and final.audio is not AudioSupport.NONE:
        return "audio: no input switches the sound (the mapping says the model is silent)"
    if carried.audio is AudioSupport.ALWAYS and final.audio is not AudioSupport.ALWAYS:
        return "audio: the model always makes sound and has no switch to turn it off"
    return None


def check_mappings(
    channel: ChannelSettings,
    mappings: Mapping[str, InputMapping],
    capabilities: Mapping[str, ModelCapabilities],
    *,
    what: str = "model",
) -> None:
    """Every model the channel serves has a mapping, every mapping names a model it serves, and the
    channel's own settings and `capabilities` (the merged `capabilities`, public model -> what routing
    will let through) ask nothing of a model that its mapping sends nowhere; or ChannelConfigError
    naming the channel, the model and the field."""
    served = {channel.upstream_model(m): m for m in channel.public_models}
    for upstream, public in served.items():
        if upstream not in mappings:
            shown = upstream if upstream == public else f"{upstream} (public {public})"
            raise ChannelConfigError(
                f"channel {channel.name!r} (kind {channel.kind}): {what} {shown!r} has no input mapping: "
                f'add [channels.options.models."{upstream}"] saying which of its inputs take the prompt, '
                "the image, the duration and the rest (docs/channels.md)"
            )
    for upstream in mappings:
        if upstream not in served:
            raise ChannelConfigError(
                f"channel {channel.name!r} (kind {channel.kind}): options.models maps {what} {upstream!r}, "
                "which the channel does not serve (models and model_map name the upstream models)"
            )
    for public, final in capabilities.items():
        mapping = mappings.get(channel.upstream_model(public))
        problem = None if mapping is None else overreach(mapping.capabilities(), final)
        if problem is not None:
            raise ChannelConfigError(
                f"channel {channel.name!r} (kind {channel.kind}): model {public!r}: {problem}; a request "
                "asking for it would reach nothing upstream (correct options.models or capabilities)"
            )
