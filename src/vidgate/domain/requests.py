"""Turning a request body of either dialect into one normalised `VideoSpec`.

Validation is written out by hand rather than left to a pydantic model: relay clients send
`"watermark": "false"` and `"duration": "15"`, and every refusal must name the field in `param`
with a sentence a person can act on. Catalog checks (model served, duration and size allowed,
image count) happen here too, so both dialects refuse the same things in the same words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgate.domain.routing import Catalog, RouteRequest
from vidgate.domain.tasks import WatermarkMode
from vidgate.errors import InvalidRequest

ORIENTATIONS = ("portrait", "landscape")
SIZE_LABELS = ("small", "large")
# small = 720p, large = 1080p (spec section 1), as (width, height) for portrait.
_LABEL_PORTRAIT = {"small": (720, 1280), "large": (1080, 1920)}
OPENAI_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080")
_MAX_MODEL_CHARS = 100
_MAX_URL_CHARS = 8192
_MAX_STYLE_CHARS = 64
# An image already in our storage (an upload, a remix source's input); never accepted from clients,
# whose images must be http(s) URLs or data: URIs.
BLOB_REF_PREFIX = "blob:"
# Relay fields that are stored and forwarded to relay channels as they came.
RELAY_EXTRAS = ("style", "storyboard", "character_url", "character_timestamps")
# Server-specific generation fields (vLLM-Omni and other open-weight servers): checked for type and
# range, stored, and forwarded by channels whose options list them in `forward_fields`.
# name -> (type, minimum, maximum); strings are bounded by their maximum length.
PASSTHROUGH_FIELDS: dict[str, tuple[type, float, float]] = {
    "seed": (int, 0, 2**63 - 1),
    "negative_prompt": (str, 0, 2000),
    "num_inference_steps": (int, 1, 1000),
    "guidance_scale": (float, 0, 100),
    "guidance_scale_2": (float, 0, 100),
    "flow_shift": (float, 0, 100),
    "boundary_ratio": (float, 0, 1),
}
_TIMESTAMPS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class VideoSpec:
    """A request both dialects agree on; what the task row stores and providers receive."""

    model: str
    prompt: str
    images: tuple[str, ...]
    width: int
    height: int
    seconds: int
    watermark_mode: WatermarkMode
    private: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    passthrough: Mapping[str, Any] = field(default_factory=dict)

    @property
    def orientation(self) -> str:
        return "portrait" if self.height >= self.width else "landscape"

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def size_label(self) -> str:
        """`small` for 720p-class sizes, `large` for anything bigger (the unified dialect's words)."""
        return "small" if max(self.width, self.height) <= 1280 else "large"


# Field readers --------------------------------------------------------------------------------


def _present(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def read_str(body: Mapping[str, Any], key: str, *, max_chars: int, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidRequest(f"'{key}' is required.", param=key, code="missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{key}' must be a string.", param=key, code="invalid_type")
    if len(value) > max_chars:
        raise InvalidRequest(
            f"'{key}' is {len(value)} characters long; at most {max_chars} are allowed.", param=key
        )
    return value


def read_bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    """A JSON boolean or the strings "true"/"false" (any case), as relay clients send both."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidRequest(f"'{key}' must be true or false.", param=key, code="invalid_type")


def read_int(body: Mapping[str, Any], key: str) -> int | None:
    """An integer, an integral float (15.0), or a string of digits ("15"). Never a boolean."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be a whole number of seconds.", param=key, code="invalid_type")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
        return int(value.strip())
    raise InvalidRequest(f"'{key}' must be a whole number of seconds.", param=key, code="invalid_type")


def read_prompt(body: Mapping[str, Any], max_chars: int) -> str:
    prompt = read_str(body, "prompt", max_chars=max_chars, required=True)
    assert prompt is not None
    if not prompt.strip():
        raise InvalidRequest("'prompt' must not be empty.", param="prompt")
    return prompt


def read_model(body: Mapping[str, Any], catalog: Catalog, default: str | None = None) -> str:
    model = read_str(body, "model", max_chars=_MAX_MODEL_CHARS, required=default is None)
    if model is None:
        assert default is not None  # read_str raised for a required model
        model = default
    if not model.strip():
        raise InvalidRequest("'model' must not be empty.", param="model", code="missing_required_parameter")
    if not catalog.serving(model):
        known = ", ".join(catalog.models()) or "none"
        raise InvalidRequest(
            f"The model '{model}' is not served here. Available models: {known}.",
            param="model",
            code="model_not_found",
        )
    return model


def check_image_ref(value: Any, param: str) -> str:
    """Shape check only: an http(s) URL or an image data: URI. The fetch policy is checked elsewhere."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string (a URL or a data: URI).", param=param)
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        if not lowered.startswith("data:image/"):
            raise InvalidRequest(f"'{param}' is a data: URI but not of an image.", param=param)
        if text != value:  # a URL pasted with spaces is forgiven; inline data must be sent exactly
            raise InvalidRequest(
                f"'{param}' is a data: URI with whitespace around it; send it exactly as "
                "data:image/<type>;base64,<data>.",
                param=param,
                code="invalid_image",
            )
        return text
    if not lowered.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"'{param}' must be an http(s) URL or a data:image/...;base64, URI.", param=param
        )
    if len(text) > _MAX_URL_CHARS:
        raise InvalidRequest(f"'{param}' is longer than {_MAX_URL_CHARS} characters.", param=param)
    return text


def read_images(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("images")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("'images' must be an array of image URLs.", param="images", code="invalid_type")
    return tuple(check_image_ref(item, f"images[{i}]") for i, item in enumerate(value))


def _read_http_url(body: Mapping[str, Any], key: str) -> str | None:
    if not _present(body, key):
        return None
    url = read_str(body, key, max_chars=_MAX_URL_CHARS)
    assert url is not None
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidRequest(f"'{key}' must be an http(s) URL.", param=key)
    return url


def read_relay_extras(body: Mapping[str, Any]) -> dict[str, Any]:
    """`style`, `storyboard`, `character_url`, `character_timestamps`: stored and forwarded to relays."""
    extras: dict[str, Any] = {}
    style = read_str(body, "style", max_chars=_MAX_STYLE_CHARS)
    if style is not None:
        extras["style"] = style
    if _present(body, "storyboard"):
        extras["storyboard"] = read_bool(body, "storyboard", False)
    character_url = _read_http_url(body, "character_url")
    if character_url is not None:
        extras["character_url"] = character_url
    stamps = read_str(body, "character_timestamps", max_chars=32)
    if stamps is not None:
        match = _TIMESTAMPS_RE.match(stamps)
        start, end = (float(match.group(1)), float(match.group(2))) if match else (0.0, 0.0)
        if not match or not 1 <= end - start <= 3:
            raise InvalidRequest(
                "'character_timestamps' must be \"start,end\" in seconds with end - start between 1 and 3,"
                ' e.g. "1,3".',
                param="character_timestamps",
            )
        extras["character_timestamps"] = stamps.strip()
    return extras


def read_passthrough(body: Mapping[str, Any]) -> dict[str, Any]:
    """The server-specific fields present in `body`, typed (form fields arrive as strings)."""
    values: dict[str, Any] = {}
    for name, (kind, low, high) in PASSTHROUGH_FIELDS.items():
        raw = body.get(name)
        if raw is None:
            continue
        if kind is str:
            text = read_str(body, name, max_chars=int(high))
            if text is not None:
                values[name] = text
            continue
        number = _read_number(raw, name, integer=kind is int)
        if not low <= number <= high:
            raise InvalidRequest(f"'{name}' must be between {low:g} and {high:g}.", param=name)
        values[name] = number
    return values


def _read_number(raw: Any, name: str, *, integer: bool) -> float:
    what = "a whole number" if integer else "a number"
    if isinstance(raw, bool):
        raise InvalidRequest(f"'{name}' must be {what}.", param=name, code="invalid_type")
    try:
        number = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"'{name}' must be {what}.", param=name, code="invalid_type") from None
    if not math.isfinite(number) or (integer and not number.is_integer()):
        raise InvalidRequest(f"'{name}' must be {what}.", param=name, code="invalid_type")
    return int(number) if integer else number


# Size and duration ----------------------------------------------------------------------------


def size_from_label(label: str, orientation: str) -> tuple[int, int]:
    w, h = _LABEL_PORTRAIT[label]
    return (w, h) if orientation == "portrait" else (h, w)


def parse_wxh(text: str, param: str) -> tuple[int, int]:
    if text not in OPENAI_SIZES:
        raise InvalidRequest(
            f"'{param}' must be one of {', '.join(OPENAI_SIZES)}; got '{text}'.", param=param
        )
    w, h = text.split("x")
    return int(w), int(h)


def _read_choice(body: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = read_str(body, key, max_chars=32)
    if value is None:
        return None
    normalised = value.strip().lower()
    if normalised not in choices:
        raise InvalidRequest(f"'{key}' must be one of {', '.join(choices)}; got '{value}'.", param=key)
    return normalised


def _read_unified_size(body: Mapping[str, Any]) -> tuple[int, int]:
    """`size` small|large with `orientation`; a "WxH" size is accepted too (some clients send it)."""
    orientation = _read_choice(body, "orientation", ORIENTATIONS)
    raw_size = read_str(body, "size", max_chars=32)
    if raw_size is not None and "x" in raw_size.lower():
        width, height = parse_wxh(raw_size.strip().lower(), "size")
        implied = "portrait" if height >= width else "landscape"
        if orientation is not None and orientation != implied:
            raise InvalidRequest(
                f"'orientation' is {orientation} but 'size' {raw_size} is {implied}.", param="orientation"
            )
        return width, height
    label = _read_choice(body, "size", SIZE_LABELS) or "small"
    return size_from_label(label, orientation or "portrait")


def check_against_catalog(spec: VideoSpec, catalog: Catalog, *, duration_param: str, size_param: str) -> None:
    """Refuse, naming the field, anything no configured channel could serve."""
    allowed_durations = catalog.durations(spec.model)
    if spec.seconds not in allowed_durations:
        shown = ", ".join(str(d) for d in allowed_durations)
        raise InvalidRequest(
            f"A duration of {spec.seconds} s is not available for model '{spec.model}'. Allowed: {shown}.",
            param=duration_param,
            code="unsupported_duration",
        )
    allowed_sizes = catalog.sizes(spec.model)
    if spec.size not in allowed_sizes:
        raise InvalidRequest(
            f"Size {spec.size} is not available for model '{spec.model}'. "
            f"Allowed: {', '.join(allowed_sizes)}.",
            param=size_param,
            code="unsupported_size",
        )
    max_images = catalog.max_images(spec.model)
    if len(spec.images) > max_images:
        raise InvalidRequest(
            f"{len(spec.images)} images were sent; model '{spec.model}' takes at most {max_images}.",
            param="images",
            code="too_many_images",
        )
    route = RouteRequest(spec.model, spec.seconds, spec.size, len(spec.images), spec.watermark_mode)
    if catalog.candidates(route):
        return
    if spec.watermark_mode is WatermarkMode.REQUIRE_CLEAN and catalog.candidates(
        RouteRequest(spec.model, spec.seconds, spec.size, len(spec.images), WatermarkMode.PREFER_CLEAN)
    ):
        raise InvalidRequest(
            f"No channel for model '{spec.model}' can deliver a video without a watermark; "
            "send watermark: true to accept a marked one.",
            param="watermark",
        )
    raise InvalidRequest(
        f"No single channel serves model '{spec.model}' with {spec.seconds} s at {spec.size} "
        f"and {len(spec.images)} image(s).",
        param="model",
        code="unsupported_combination",
    )


# The two dialects -----------------------------------------------------------------------------


def _spec(
    body: Mapping[str, Any],
    catalog: Catalog,
    *,
    model: str,
    prompt: str,
    images: tuple[str, ...],
    size: tuple[int, int],
    seconds: int,
    duration_param: str,
) -> VideoSpec:
    """The fields both dialects share, read the same way, and the catalog check."""
    watermark = read_bool(body, "watermark", True)
    spec = VideoSpec(
        model=model,
        prompt=prompt,
        images=images,
        width=size[0],
        height=size[1],
        seconds=seconds,
        watermark_mode=WatermarkMode.PREFER_CLEAN if watermark else WatermarkMode.REQUIRE_CLEAN,
        private=read_bool(body, "private", False),
        extras=read_relay_extras(body),
        callback_url=_read_http_url(body, "callback_url"),
        passthrough=read_passthrough(body),
    )
    check_against_catalog(spec, catalog, duration_param=duration_param, size_param="size")
    return spec


def parse_unified(body: Mapping[str, Any], catalog: Catalog, *, max_prompt_chars: int) -> VideoSpec:
    """`POST /v1/video/create` body -> VideoSpec, with the contract's defaults and coercions."""
    model = read_model(body, catalog)
    prompt = read_prompt(body, max_prompt_chars)
    images = read_images(body)
    size = _read_unified_size(body)
    seconds = read_int(body, "duration")
    return _spec(
        body, catalog, model=model, prompt=prompt, images=images, size=size,
        seconds=10 if seconds is None else seconds, duration_param="duration",
    )  # fmt: skip


def parse_openai(
    body: Mapping[str, Any],
    catalog: Catalog,
    *,
    max_prompt_chars: int,
    images: tuple[str, ...] = (),
) -> VideoSpec:
    """`POST /v1/videos` fields (form or JSON) -> VideoSpec. `images` carries an input_reference."""
    model = read_model(body, catalog, default="sora-2")
    prompt = read_prompt(body, max_prompt_chars)
    seconds = read_int(body, "seconds")
    raw_size = read_str(body, "size", max_chars=32)
    size = parse_wxh(raw_size.strip().lower(), "size") if raw_size else (720, 1280)
    return _spec(
        body, catalog, model=model, prompt=prompt, images=images, size=size,
        seconds=4 if seconds is None else seconds, duration_param="seconds",
    )  # fmt: skip


def input_echo(spec: VideoSpec) -> dict[str, Any]:
    """What `detail.input` shows: the accepted request in the unified dialect's words."""
    echo: dict[str, Any] = {
        "model": spec.model,
        "prompt": spec.prompt,
        "images": [_echo_image(i) for i in spec.images],
        "orientation": spec.orientation,
        "size": spec.size_label,
        "duration": spec.seconds,
        "watermark": spec.watermark_mode is WatermarkMode.PREFER_CLEAN,
        "private": spec.private,
    }
    echo.update(spec.extras)
    echo.update(spec.passthrough)
    return echo


def _echo_image(ref: str) -> str:
    """An image as `detail.input` shows it: URLs as sent, data: URIs shortened (echoing megabytes of
    base64 on every poll would be absurd), our own storage references as a plain word."""
    if ref.startswith(BLOB_REF_PREFIX):
        return "(uploaded image)" if "/input_reference" in ref else "(image of the remixed video)"
    if ref[:5].lower() == "data:":
        head = ref.split(",", 1)[0]
        return f"{head},…({len(ref)} chars)"
    return ref
