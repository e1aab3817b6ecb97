"""Reading and validating DashScope's video-synthesis creates, as Model Studio's Wan API references
describe them (text-to-video, image-to-video from a first frame, from first and last frames).

What each model takes is the vendor's table in `vidgate.providers.dashscope_models`. A create that
breaks it is a 400 `InvalidParameter`, as DashScope answers: a model that does not exist or is sent to
the other create route, a missing prompt (text-to-video) or image (`img_url`; `first_frame_url` and
`last_frame_url` on the first-and-last-frame models), an image on a text-to-video model, a duration,
`size` or `resolution` the model is not made at, a seed outside 0..2**31-1, an image that is neither
an http(s) URL nor a base64 data: URI, or whose sides are outside 360..2000 px. Parameters DashScope
does not know are ignored (and journalled under `extra`), as is `audio` on a model that does not take
it.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from vidgate.domain.capabilities import AudioSupport
from vidgate.providers.dashscope_models import (
    IMAGE_SIDE_RANGE,
    SEED_MAX,
    T2V_SIZES,
    Mode,
    WanModel,
    wan_model,
)

__all__ = ["DashScopeRequest", "InvalidParameter", "journal_detail", "parse_dashscope"]

IMAGE_FIELDS: Final[dict[Mode, tuple[str, ...]]] = {
    "t2v": (),
    "i2v": ("img_url",),
    "kf2v": ("first_frame_url", "last_frame_url"),
}
_ALL_IMAGE_FIELDS: Final = ("img_url", "first_frame_url", "last_frame_url")
KNOWN_INPUT: Final = ("prompt", "negative_prompt", *_ALL_IMAGE_FIELDS, "audio_url")
KNOWN_PARAMETERS: Final = ("size", "resolution", "duration", "seed", "prompt_extend", "watermark", "audio")
# Output pixels of each resolution tier (the 16:9 size); image-led videos keep the image's shape.
TIER_PIXELS: Final = {"480P": 832 * 480, "720P": 1280 * 720, "1080P": 1920 * 1080}
DEFAULT_DURATION: Final = 5


class InvalidParameter(Exception):
    """DashScope's 400: `{"request_id", "code": "InvalidParameter", "message"}`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class DashScopeRequest:
    model: WanModel
    prompt: str
    negative_prompt: str | None
    images: dict[str, str]  # img_url / first_frame_url / last_frame_url -> as sent
    size: str | None  # text-to-video: "1280*720"
    resolution: str | None  # image-led: "720P"
    duration: int
    seed: int | None
    prompt_extend: bool
    watermark: bool
    audio: bool | None  # None: not sent
    width: int  # the video's pixels, before the fake's clip_scale shrinks them
    height: int
    body: dict[str, Any]  # exactly as received

    @property
    def makes_audio(self) -> bool:
        if self.model.audio is AudioSupport.OPTIONAL:
            return self.audio is not False
        return self.model.audio is AudioSupport.ALWAYS


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"{name} must be an object.")
    return value


def _flag(parameters: dict[str, Any], name: str, default: bool) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidParameter(f"parameters.{name} must be a boolean.")
    return value


def _image_size(value: str, field: str) -> tuple[int, int] | None:
    """The pixel size of a data: URI image (None for a URL: the fake does not fetch it)."""
    if value.lower().startswith(("http://", "https://")):
        return None
    head, sep, data = value.partition(",")
    if not (sep and head.lower().startswith("data:image/") and head.lower().endswith(";base64")):
        raise InvalidParameter(f"input.{field} must be an http(s) URL or data:{{MIME_type}};base64,{{data}}.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            width, height = image.size
    except (binascii.Error, UnidentifiedImageError, ValueError) as exc:
        raise InvalidParameter(f"input.{field} is not a readable image.") from exc
    low, high = IMAGE_SIDE_RANGE
    if not (low <= min(width, height) and max(width, height) <= high):
        raise InvalidParameter(
            f"input.{field}: the image is {width}x{height}; its width and height must be in [{low}, {high}]."
        )
    return width, height


def _output_size(resolution: str, shape: tuple[int, int] | None) -> tuple[int, int]:
    """An image-led video: about the tier's pixels, in the image's aspect ratio (16:9 if unknown)."""
    width, height = shape or (16, 9)
    pixels = TIER_PIXELS[resolution]
    out_w = math.sqrt(pixels * width / height)
    return round(out_w / 16) * 16, round(pixels / out_w / 16) * 16


def parse_dashscope(body: Any, route_mode: str) -> DashScopeRequest:
    """A valid create for the route (`t2v` or `i2v` share video-generation; `kf2v` is image2video),
    else InvalidParameter."""
    if not isinstance(body, dict):
        raise InvalidParameter("The request body must be a JSON object.")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidParameter("Field required: model.")
    model = wan_model(name)
    if model is None:
        raise InvalidParameter("Model not exist.")
    if (model.mode == "kf2v") != (route_mode == "kf2v"):
        raise InvalidParameter(f"Model {name} is not served at this URL; see its API reference.")
    inputs = _object(body.get("input"), "input")
    parameters = _object(body.get("parameters"), "parameters")
    prompt = inputs.get("prompt", "")
    if not isinstance(prompt, str) or (model.mode == "t2v" and not prompt.strip()):
        raise InvalidParameter("Field required: input.prompt.")
    negative = inputs.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise InvalidParameter("input.negative_prompt must be a string.")
    wanted = IMAGE_FIELDS[model.mode]
    images: dict[str, str] = {}
    shapes: dict[str, tuple[int, int] | None] = {}
    for field in _ALL_IMAGE_FIELDS:
        value = inputs.get(field)
        if value is None:
            if field in wanted:
                raise InvalidParameter(f"Field required: input.{field}.")
            continue
        if field not in wanted:
            raise InvalidParameter(f"Model {name} does not take input.{field}.")
        if not isinstance(value, str) or not value:
            raise InvalidParameter(f"input.{field} must be a string.")
        shapes[field] = _image_size(value, field)
        images[field] = value
    duration = parameters.get("duration", DEFAULT_DURATION)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration not in model.durations:
        shown = ", ".join(str(d) for d in model.durations)
        raise InvalidParameter(f"parameters.duration {duration!r} is not supported by {name}; use {shown}.")
    size = resolution = None
    if model.mode == "t2v":
        allowed = [s for (r, _), s in T2V_SIZES.items() if r in model.resolutions]
        size = parameters.get("size", T2V_SIZES[(model.resolutions[-1], "16:9")])
        if size not in allowed:
            raise InvalidParameter(
                f"parameters.size {size!r} is not supported by {name}; use {', '.join(allowed)}."
            )
        width, height = (int(p) for p in str(size).split("*"))
    else:
        allowed = [r.upper() for r in model.resolutions]
        resolution = parameters.get("resolution", allowed[-1])
        if resolution not in allowed:
            raise InvalidParameter(
                f"parameters.resolution {resolution!r} is not supported by {name}; use {', '.join(allowed)}."
            )
        first = "img_url" if model.mode == "i2v" else "first_frame_url"
        width, height = _output_size(str(resolution), shapes[first])
    seed = parameters.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX
    ):
        raise InvalidParameter(f"parameters.seed must be an integer in [0, {SEED_MAX}].")
    audio = parameters.get("audio")
    if audio is not None and not isinstance(audio, bool):
        raise InvalidParameter("parameters.audio must be a boolean.")
    return DashScopeRequest(
        model=model,
        prompt=prompt,
        negative_prompt=negative,
        images=images,
        size=size,
        resolution=resolution,
        duration=duration,
        seed=seed,
        prompt_extend=_flag(parameters, "prompt_extend", True),
        watermark=_flag(parameters, "watermark", False),
        audio=audio,
        width=width,
        height=height,
        body=body,
    )


def journal_detail(req: DashScopeRequest) -> dict[str, Any]:
    """What a create carried, for tests to assert passthrough: the parameters as received, each image
    as its kind (`url` or `data_uri`) and first 100 characters, and whatever DashScope ignores."""
    parameters = _object(req.body.get("parameters"), "parameters")
    inputs = _object(req.body.get("input"), "input")
    return {
        "model": req.model.name,
        "mode": req.model.mode,
        **{name: parameters[name] for name in KNOWN_PARAMETERS if name in parameters},
        "negative_prompt": req.negative_prompt,
        "images": {field: value[:100] for field, value in req.images.items()},
        "image_kinds": {
            field: "data_uri" if value.lower().startswith("data:") else "url"
            for field, value in req.images.items()
        },
        "makes_audio": req.makes_audio,
        "extra": {k: v for k, v in parameters.items() if k not in KNOWN_PARAMETERS},
        "extra_input": {k: v for k, v in inputs.items() if k not in KNOWN_INPUT},
    }
