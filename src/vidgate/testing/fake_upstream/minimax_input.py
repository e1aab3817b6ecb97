"""MiniMax's side of the fake's MiniMax dialect: its `base_resp` envelope and reading and checking
`POST /v1/video_generation` bodies as MiniMax's API reference describes them.

Sources (public pages, none copied; the fake keeps its own reading, apart from the adapter's table in
`vidgate.providers.minimax_models`, so that a mistake in one is caught by the other):
- MiniMax API reference (platform.minimax.io/docs; platform.minimaxi.com for mainland China): "Video
  Generation" (MiniMax-Hailuo-2.3, MiniMax-Hailuo-2.3-Fast, MiniMax-Hailuo-02 and the 01 models),
  "Text to Video", "Image to Video", "Start / End to Video", "Subject Reference to Video": `model`,
  `prompt` (at most 2000 characters; required without an image), `prompt_optimizer`, `fast_pretreatment`,
  `duration` (6 or 10; 6 only at 1080P; 6 only on the 01 models), `resolution` (512P for an image on
  Hailuo-02 only, 720P on the 01 models, 768P and 1080P on Hailuo), `first_frame_image`,
  `last_frame_image` (MiniMax-Hailuo-02, at 768P or 1080P), `subject_reference` (S2V-01:
  `[{type: "character", image: [one image]}]`), `callback_url`, `aigc_watermark`; images as a URL or a
  `data:image/...;base64,` URI, JPG/JPEG/PNG/WebP under 20 MB, short side over 300 px, aspect ratio
  between 2:5 and 5:2;
- "Error Codes": `base_resp: {status_code, status_msg}` in the body, with 1002 rate limit, 1004 and
  2049 the key, 1008 balance, 1026/1027 sensitive input/output, 2013 invalid parameters, 1000/1024/1033
  MiniMax's own trouble; MiniMax answers them with HTTP 200 (the official MiniMax-MCP client reads
  `base_resp` after a successful status for exactly that reason).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any, Final

from PIL import Image, UnidentifiedImageError
from starlette.responses import JSONResponse

__all__ = ["FAKE_MODELS", "MiniMaxCreate", "MiniMaxRefusal", "base_resp", "journal_detail", "parse_create"]

KNOWN_FIELDS: Final = frozenset(
    {"model", "prompt", "prompt_optimizer", "fast_pretreatment", "duration", "resolution",
     "first_frame_image", "last_frame_image", "subject_reference", "callback_url", "aigc_watermark"}
)  # fmt: skip
PROMPT_MAX: Final = 2000
IMAGE_MAX_BYTES: Final = 20 * 1024 * 1024
IMAGE_MIN_SHORT: Final = 300
# Output pixels per resolution word, 16:9 (an image-led video keeps the image's shape).
PIXELS: Final = {"512P": (912, 512), "720P": (1280, 720), "768P": (1366, 768), "1080P": (1920, 1080)}


class MiniMaxRefusal(Exception):
    """An error in MiniMax's envelope: `base_resp.status_code` and `status_msg` (HTTP 200 unless said)."""

    def __init__(self, code: int, message: str, http: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http = http

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return base_resp(self.code, self.message, http=self.http, headers=headers)


def base_resp(
    code: int, message: str, *, http: int = 200, headers: dict[str, str] | None = None, **fields: Any
) -> JSONResponse:
    """`{..., base_resp: {status_code, status_msg}}`: how MiniMax answers, errors included."""
    body = {**fields, "base_resp": {"status_code": code, "status_msg": message}}
    return JSONResponse(body, status_code=http, headers=headers)


@dataclass(frozen=True)
class FakeMiniMaxModel:
    text: bool  # makes a video from text alone
    image: bool  # takes first_frame_image
    last_frame: bool = False
    subject: bool = False
    resolutions: dict[str, tuple[int, ...]] = field(default_factory=dict)  # word -> durations
    default_resolution: str = "768P"
    image_only: frozenset[str] = frozenset()  # resolutions made from an image only
    last_frame_at: frozenset[str] = frozenset()


_HAILUO: dict[str, tuple[int, ...]] = {"768P": (6, 10), "1080P": (6,)}
_V01: dict[str, tuple[int, ...]] = {"720P": (6,)}
FAKE_MODELS: Final[dict[str, FakeMiniMaxModel]] = {
    "MiniMax-Hailuo-2.3": FakeMiniMaxModel(True, True, resolutions=_HAILUO),
    "MiniMax-Hailuo-2.3-Fast": FakeMiniMaxModel(False, True, resolutions=_HAILUO),
    "MiniMax-Hailuo-02": FakeMiniMaxModel(
        True,
        True,
        last_frame=True,
        resolutions={"512P": (6, 10), **_HAILUO},
        image_only=frozenset({"512P"}),
        last_frame_at=frozenset({"768P", "1080P"}),
    ),
    "T2V-01": FakeMiniMaxModel(True, False, resolutions=_V01, default_resolution="720P"),
    "T2V-01-Director": FakeMiniMaxModel(True, False, resolutions=_V01, default_resolution="720P"),
    "I2V-01": FakeMiniMaxModel(False, True, resolutions=_V01, default_resolution="720P"),
    "I2V-01-Director": FakeMiniMaxModel(False, True, resolutions=_V01, default_resolution="720P"),
    "I2V-01-live": FakeMiniMaxModel(False, True, resolutions=_V01, default_resolution="720P"),
    "video-01": FakeMiniMaxModel(True, True, resolutions=_V01, default_resolution="720P"),
    "S2V-01": FakeMiniMaxModel(False, False, subject=True, resolutions=_V01, default_resolution="720P"),
}


@dataclass
class MiniMaxCreate:
    model: str
    prompt: str
    duration: int
    resolution: str
    images: dict[str, str]  # first_frame_image / last_frame_image / subject_reference -> as sent
    width: int
    height: int
    body: dict[str, Any]


def _invalid(message: str) -> MiniMaxRefusal:
    return MiniMaxRefusal(2013, f"invalid params, {message}")


def _image_shape(value: Any, name: str) -> tuple[int, int] | None:
    """The pixel size of a data: URI image (None for a URL: the fake fetches nothing)."""
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} must be an image URL or a base64 data URL")
    if value.lower().startswith(("http://", "https://")):
        return None
    head, sep, data = value.partition(",")
    if not (sep and head.lower().startswith("data:image/") and head.lower().endswith(";base64")):
        raise _invalid(f"{name} must be an image URL or a data:image/...;base64, URL")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{name} is not valid base64") from None
    if len(raw) >= IMAGE_MAX_BYTES:
        raise _invalid(f"{name} must be smaller than 20MB")
    try:
        with Image.open(io.BytesIO(raw)) as picture:
            kind, (width, height) = picture.format, picture.size
    except (UnidentifiedImageError, OSError):
        raise _invalid(f"{name} is not a readable image") from None
    if kind not in ("JPEG", "PNG", "WEBP"):
        raise _invalid(f"{name} must be JPG, JPEG, PNG or WebP")
    if min(width, height) <= IMAGE_MIN_SHORT or max(width, height) / min(width, height) > 2.5:
        raise _invalid(f"{name} is {width}x{height}: its short side must exceed 300px, its ratio 2:5 to 5:2")
    return width, height


def _shape(resolution: str, image: tuple[int, int] | None) -> tuple[int, int]:
    width, height = PIXELS[resolution]
    if image is None or image[0] >= image[1]:
        return width, height
    return height, width  # a portrait image makes a portrait video


def parse_create(body: Any) -> MiniMaxCreate:
    """A create MiniMax would accept, else MiniMaxRefusal (2013, in an HTTP 200)."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise _invalid(f"unknown field {unknown[0]}")
    name = body.get("model")
    model = FAKE_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise _invalid(f"model {name} is not supported")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > PROMPT_MAX:
        raise _invalid(f"prompt must be a string of at most {PROMPT_MAX} characters")
    images: dict[str, str] = {}
    shape = None
    first = body.get("first_frame_image")
    if first is not None:
        if not model.image:
            raise _invalid(f"{name} does not take first_frame_image")
        shape = _image_shape(first, "first_frame_image")
        images["first_frame_image"] = first
    last = body.get("last_frame_image")
    if last is not None:
        if not model.last_frame:
            raise _invalid(f"{name} does not take last_frame_image")
        if first is None:
            raise _invalid("last_frame_image needs first_frame_image")
        _image_shape(last, "last_frame_image")
        images["last_frame_image"] = last
    subject = body.get("subject_reference")
    if subject is not None:
        if not model.subject:
            raise _invalid(f"{name} does not take subject_reference")
        item = subject[0] if isinstance(subject, list) and len(subject) == 1 else None
        pictures = item.get("image") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type") != "character" or not isinstance(pictures, list):
            raise _invalid("subject_reference must be [{type: character, image: [one image]}]")
        if len(pictures) != 1:
            raise _invalid("subject_reference takes one image")
        shape = _image_shape(pictures[0], "subject_reference.image")
        images["subject_reference"] = pictures[0]
    if not images and not model.text:
        raise _invalid(f"{name} needs an image")
    if model.subject and "subject_reference" not in images:
        raise _invalid(f"{name} needs subject_reference")
    if not images and not prompt.strip():
        raise _invalid("prompt is required without an image")
    resolution = body.get("resolution", model.default_resolution)
    if resolution not in model.resolutions:
        raise _invalid(f"resolution {resolution} is not supported by {name}")
    if resolution in model.image_only and not images:
        raise _invalid(f"{resolution} is made from an image only")
    if last is not None and resolution not in model.last_frame_at:
        raise _invalid(f"last_frame_image is not supported at {resolution}")
    duration = body.get("duration", 6)
    if isinstance(duration, bool) or duration not in model.resolutions[resolution]:
        raise _invalid(f"duration {duration} is not supported by {name} at {resolution}")
    for flag in ("prompt_optimizer", "fast_pretreatment", "aigc_watermark"):
        if flag in body and not isinstance(body[flag], bool):
            raise _invalid(f"{flag} must be a boolean")
    width, height = _shape(str(resolution), shape)
    return MiniMaxCreate(str(name), prompt, int(duration), str(resolution), images, width, height, body)


def journal_detail(req: MiniMaxCreate) -> dict[str, Any]:
    """What a create carried, for tests to assert passthrough: the parameters as received and each image
    as its kind (`url` or `data_uri`)."""
    body = req.body
    skipped = {"prompt", "first_frame_image", "last_frame_image", "subject_reference"}
    detail = {name: body.get(name) for name in sorted(KNOWN_FIELDS - skipped)}
    detail["images"] = {
        name: "data_uri" if value.lower().startswith("data:") else "url" for name, value in req.images.items()
    }
    return detail
