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
from dataclasses import dataclass, field, replace
from typing import Any

from vidgate.domain.capabilities import (
    ALL_SIZES,
    ASPECT_RATIOS,
    OPTIONAL_FIELDS,
    RESOLUTIONS,
    canonical_size,
    describe_size,
)
from vidgate.domain.routing import Catalog, RouteRequest
from vidgate.domain.tasks import WatermarkMode
from vidgate.errors import InvalidRequest

ORIENTATIONS = ("portrait", "landscape")
SIZE_LABELS = ("small", "large")
# small = 720p, large = 1080p (spec section 1).
_LABEL_RESOLUTION = {"small": "720p", "large": "1080p"}
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
    "seed": (int, 0, 2**32 - 1),  # Veo, Seedance and OpenRouter take an unsigned 32-bit seed
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
    last_frame: str | None = None  # an image (URL or data: URI) for first-last-frame models
    generate_audio: bool | None = None  # None: the client did not say
    enhance_prompt: bool | None = None

    @property
    def all_images(self) -> tuple[str, ...]:
        """Every image the task fetches, as stored: images[], then the last frame."""
        return (*self.images, self.last_frame) if self.last_frame else self.images

    def named_images(self, first_param: str = "images", indexed: bool = True) -> list[tuple[str, str]]:
        """(param, image) for each image, named as a refusal names it: `images[1]`, `last_frame`."""
        named = [
            (f"{first_param}[{i}]" if indexed else first_param, ref) for i, ref in enumerate(self.images)
        ]
        if self.last_frame:
            named.append(("last_frame", self.last_frame))
        return named

    @property
    def route(self) -> RouteRequest:
        return route_request(
            self.model, self.seconds, self.size, self.all_images, self.watermark_mode, input_echo(self)
        )

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
    value = read_optional_bool(body, key)
    return default if value is None else value


def read_optional_bool(body: Mapping[str, Any], key: str) -> bool | None:
    """As `read_bool`, None when the field is absent."""
    value = body.get(key)
    if value is None:
        return None
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


def parse_wxh(text: str, param: str) -> tuple[int, int]:
    if text not in ALL_SIZES:
        raise InvalidRequest(f"'{param}' must be one of {', '.join(ALL_SIZES)}; got '{text}'.", param=param)
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


def _orientation_of(width: int, height: int) -> str:
    return "portrait" if height >= width else "landscape"


def _read_shape(
    body: Mapping[str, Any], *, size: tuple[int, int] | None, size_param: str, label: str | None = None
) -> tuple[int, int]:
    """(width, height) from whichever of `size` (already read), the `small|large` label, `orientation`,
    `resolution` and `aspect_ratio` the client sent; any two that disagree are a 400 naming the later
    one. Unsaid: 720p, portrait (9:16)."""
    orientation = _read_choice(body, "orientation", ORIENTATIONS)
    resolution = _read_choice(body, "resolution", RESOLUTIONS)
    aspect_ratio = _read_choice(body, "aspect_ratio", ASPECT_RATIOS)
    if size is not None:
        width, height = size
        implied = _orientation_of(width, height)
        if orientation is not None and orientation != implied:
            raise InvalidRequest(
                f"'orientation' is {orientation} but '{size_param}' {width}x{height} is {implied}.",
                param="orientation",
            )
        size_resolution, size_ratio = describe_size(f"{width}x{height}")
        for param, asked, named in (
            ("resolution", resolution, size_resolution),
            ("aspect_ratio", aspect_ratio, size_ratio),
        ):
            if asked is not None and asked != named:
                raise InvalidRequest(
                    f"'{param}' is {asked} but '{size_param}' {width}x{height} is "
                    f"{named or 'not a ' + param.replace('_', ' ') + ' one can name'}; send one of them.",
                    param=param,
                )
        return width, height
    if resolution is not None and label is not None and _LABEL_RESOLUTION[label] != resolution:
        raise InvalidRequest(
            f"'resolution' is {resolution} but 'size' {label} means {_LABEL_RESOLUTION[label]}.",
            param="resolution",
        )
    chosen_resolution = resolution or _LABEL_RESOLUTION[label or "small"]
    if aspect_ratio is not None:
        width, height = canonical_size(chosen_resolution, aspect_ratio)
        if orientation is not None and _orientation_of(width, height) != orientation:
            raise InvalidRequest(
                f"'aspect_ratio' {aspect_ratio} is not {orientation}; send an aspect ratio that is, "
                "or leave out 'orientation'.",
                param="aspect_ratio",
            )
        return width, height
    return canonical_size(chosen_resolution, "16:9" if orientation == "landscape" else "9:16")


def _read_unified_size(body: Mapping[str, Any]) -> tuple[int, int]:
    """`size` small|large with `orientation`, or `resolution` with `aspect_ratio`; a "WxH" size is
    accepted too (some clients send it)."""
    raw_size = read_str(body, "size", max_chars=32)
    if raw_size is not None and "x" in raw_size.lower():
        return _read_shape(body, size=parse_wxh(raw_size.strip().lower(), "size"), size_param="size")
    label = _read_choice(body, "size", SIZE_LABELS)
    return _read_shape(body, size=None, size_param="size", label=label)


_SHAPE_FIELDS = ("size", "orientation", "resolution", "aspect_ratio")


def check_against_catalog(
    spec: VideoSpec, catalog: Catalog, *, duration_param: str, sent: frozenset[str] = frozenset()
) -> None:
    """Refuse, naming the field (of those `sent`, where several say the same thing), anything no
    configured channel could serve."""
    allowed_durations = catalog.durations(spec.model)
    if spec.seconds not in allowed_durations:
        shown = ", ".join(str(d) for d in allowed_durations)
        raise InvalidRequest(
            f"A duration of {spec.seconds} s is not available for model '{spec.model}'. Allowed: {shown}.",
            param=duration_param,
            code="unsupported_duration",
        )
    _check_size(spec, catalog, sent)
    max_images = catalog.max_images(spec.model)
    if len(spec.images) > max_images:
        raise InvalidRequest(
            f"{len(spec.images)} images were sent; model '{spec.model}' takes at most {max_images}.",
            param="images",
            code="too_many_images",
        )
    _check_asks(
        spec,
        catalog,
        audio_param="audio" if "generate_audio" not in sent and "audio" in sent else "generate_audio",
    )
    route = spec.route
    if catalog.candidates(route):
        return
    _check_ties(spec, catalog, route, duration_param)
    if spec.watermark_mode is WatermarkMode.REQUIRE_CLEAN and catalog.candidates(
        replace(route, watermark_mode=WatermarkMode.PREFER_CLEAN)
    ):
        raise InvalidRequest(
            f"No channel for model '{spec.model}' can deliver a video without a watermark; "
            "send watermark: true to accept a marked one.",
            param="watermark",
        )
    raise InvalidRequest(
        f"No single channel serves model '{spec.model}' with {spec.seconds} s at {spec.size} "
        f"and {len(spec.images)} image(s) with the options asked.",
        param="model",
        code="unsupported_combination",
    )


def _check_size(spec: VideoSpec, catalog: Catalog, sent: frozenset[str]) -> None:
    """A size the model is not made at, named by the field the client used to ask for it."""
    allowed_sizes = catalog.sizes(spec.model)
    if spec.size in allowed_sizes:
        return
    resolution, ratio = describe_size(spec.size)
    resolutions = {describe_size(s)[0] for s in allowed_sizes}
    ratios = {describe_size(s)[1] for s in allowed_sizes}
    if resolution is not None and resolution not in resolutions:
        param = "resolution" if "resolution" in sent else "size"
        what, shown = resolution, [r for r in RESOLUTIONS if r in resolutions]
    elif ratio is not None and ratio not in ratios:
        param = "aspect_ratio" if "aspect_ratio" in sent else "size"
        what, shown = f"an aspect ratio of {ratio}", [a for a in ASPECT_RATIOS if a in ratios]
    else:
        param, what, shown = "size", f"size {spec.size}", list(allowed_sizes)
    if param == "size":  # asked for by size: answered in sizes
        shown = list(allowed_sizes)
    able = [m for m in catalog.models() if spec.size in catalog.sizes(m)]
    raise InvalidRequest(
        f"Model '{spec.model}' is not available at {what} ({spec.size}). "
        f"Allowed: {', '.join(shown) or 'none'}." + (f" Models that are: {', '.join(able)}." if able else ""),
        param=param,
        code="unsupported_size",
    )


# What each refused field is, in a refusal's words.
_ASK_WORDS = {
    "images": "more than one image",
    "last_frame": "a last frame",
    "generate_audio": "that audio setting",
    "seed": "a seed",
    "negative_prompt": "a negative prompt",
    "enhance_prompt": "prompt enhancement",
}


def _check_ties(spec: VideoSpec, catalog: Catalog, route: RouteRequest, duration_param: str) -> None:
    """A feature the model makes, but not at this duration or aspect ratio, on every channel serving it."""
    conflicts = [
        c.capabilities_of(spec.model).conflict(spec.seconds, spec.size, route.ask)
        for c in catalog.serving(spec.model)
    ]
    if conflicts and all(conflicts):
        param, why = conflicts[0]  # type: ignore[misc]
        raise InvalidRequest(
            f"Model '{spec.model}': {why}.",
            param=duration_param if param == "duration" else param,
            code="unsupported_combination",
        )


def _check_asks(spec: VideoSpec, catalog: Catalog, *, audio_param: str) -> None:
    """Each option the request sets must be one some channel's copy of the model honours."""
    ask = spec.route.ask
    capabilities = catalog.capabilities(spec.model)
    refused = capabilities.refuses(ask) if capabilities is not None else None
    if refused is None:
        return
    able = [
        m
        for m in catalog.models()
        if (c := catalog.capabilities(m)) is not None and c.refuses(ask) != refused
    ]
    what = _ASK_WORDS[refused]
    if refused == "generate_audio":
        what = "sound" if ask.audio else "a silent video"
    elif refused == "images" and capabilities is not None and ask.image_count > capabilities.max_images:
        what = f"more than {capabilities.max_images} image(s)"
    elif refused == "seed" and capabilities is not None and capabilities.seed:
        what = f"a seed above {capabilities.max_seed}"
    elif refused == "images" and capabilities is not None and ask.image_count < 1:
        what = "a request without a first frame (images[0])"
    elif refused == "last_frame" and not ask.last_frame:
        what = "a request without a last frame (last_frame)"
    raise InvalidRequest(
        f"Model '{spec.model}' cannot take {what} here."
        + (f" Models that can: {', '.join(able)}." if able else " No model served here can."),
        param=audio_param if refused == "generate_audio" else refused,
        code="unsupported_option",
    )


def route_request(
    model: str,
    seconds: int,
    size: str,
    all_images: tuple[str, ...] | list[str],
    watermark_mode: WatermarkMode,
    echo: Mapping[str, Any],
) -> RouteRequest:
    """What routing needs of a request (a spec at create, a stored task at submit: `echo` is its
    `detail.input`, where the options it set are kept)."""
    has_last_frame = echo.get("last_frame") is not None
    return RouteRequest(
        model,
        seconds,
        size,
        len(all_images) - (1 if has_last_frame else 0),
        watermark_mode,
        last_frame=has_last_frame,
        audio=echo.get("generate_audio"),
        options=frozenset(name for name in OPTIONAL_FIELDS if echo.get(name) is not None),
        seed=echo.get("seed"),
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
    last_frame = body.get("last_frame")
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
        last_frame=None if last_frame is None else check_image_ref(last_frame, "last_frame"),
        generate_audio=_read_audio(body),
        enhance_prompt=read_optional_bool(body, "enhance_prompt"),
    )
    sent = frozenset(k for k in (*_SHAPE_FIELDS, "audio", "generate_audio") if body.get(k) is not None)
    check_against_catalog(spec, catalog, duration_param=duration_param, sent=sent)
    return spec


def _read_audio(body: Mapping[str, Any]) -> bool | None:
    """`generate_audio`, or `audio` as relays send it; both, disagreeing, is a 400."""
    generate_audio = read_optional_bool(body, "generate_audio")
    audio = read_optional_bool(body, "audio")
    if generate_audio is not None and audio is not None and generate_audio != audio:
        raise InvalidRequest("'audio' and 'generate_audio' disagree; send one of them.", param="audio")
    return generate_audio if generate_audio is not None else audio


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
    wxh = parse_wxh(raw_size.strip().lower(), "size") if raw_size else None
    size = _read_shape(body, size=wxh, size_param="size")
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
    resolution, aspect_ratio = describe_size(spec.size)
    if resolution is not None:
        echo["resolution"], echo["aspect_ratio"] = resolution, aspect_ratio
    if spec.last_frame is not None:
        echo["last_frame"] = _echo_image(spec.last_frame)
    for name in ("generate_audio", "enhance_prompt"):
        if getattr(spec, name) is not None:
            echo[name] = getattr(spec, name)
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
