"""Reading and validating `POST /v1/video/create` bodies of the relay "unified video format"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from vidgate.testing.fake_upstream.responses import BadRequest

__all__ = ["KNOWN_FIELDS", "UnifiedRequest", "journal_detail", "parse_unified"]

KNOWN_FIELDS: Final = (
    "model",
    "prompt",
    "images",
    "orientation",
    "size",
    "duration",
    "watermark",
    "private",
    "style",
    "storyboard",
    "character_url",
    "character_timestamps",
)
# (size, orientation) -> requested pixels, before the fake's clip_scale shrinks them.
PIXELS: Final[dict[tuple[str, str], tuple[int, int]]] = {
    ("small", "portrait"): (720, 1280),
    ("small", "landscape"): (1280, 720),
    ("large", "portrait"): (1080, 1920),
    ("large", "landscape"): (1920, 1080),
}
DEFAULT_DURATION: Final = 10  # what relays document as the usual default


@dataclass(frozen=True)
class UnifiedRequest:
    model: str
    prompt: str
    images: list[str]
    size: str
    width: int
    height: int
    duration: int
    watermark: bool
    body: dict[str, Any]  # exactly as received


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    """A JSON boolean or the strings "true"/"false" (relay docs type these as strings)."""
    value = body.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"Invalid value for '{name}': expected a boolean.", name)


def _duration(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    raise BadRequest(f"Invalid value for 'duration': {value!r}. Expected a positive integer.", "duration")


def parse_unified(body: Any) -> UnifiedRequest:
    """A valid create request, else BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", None, "invalid_json")
    model, prompt = body.get("model"), body.get("prompt")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    images = body.get("images", [])
    if images is None:
        images = []
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise BadRequest("Invalid value for 'images': expected a list of URL strings.", "images")
    orientation = body.get("orientation", "portrait")
    size = body.get("size", "small")
    if (size, orientation) not in PIXELS:
        param = "size" if size not in ("small", "large") else "orientation"
        raise BadRequest(f"Invalid value for '{param}': {body.get(param)!r}.", param)
    width, height = PIXELS[(size, orientation)]
    duration = _duration(body.get("duration", DEFAULT_DURATION))
    watermark = _flag(body, "watermark", True)  # default true: try clean, fall back to watermarked
    _flag(body, "private", False)
    return UnifiedRequest(model, prompt, images, size, width, height, duration, watermark, body)


def journal_detail(req: UnifiedRequest) -> dict[str, Any]:
    """The create fields for the journal: known ones exactly as received, images as a count plus the first
    100 characters of each (data: URIs are long), anything else under "extra"."""
    detail: dict[str, Any] = {
        name: req.body[name] for name in KNOWN_FIELDS if name in req.body and name not in ("prompt", "images")
    }
    detail["images"] = len(req.images)
    detail["image_values"] = [value[:100] for value in req.images]
    detail["extra"] = {k: v for k, v in req.body.items() if k not in KNOWN_FIELDS}
    return detail
