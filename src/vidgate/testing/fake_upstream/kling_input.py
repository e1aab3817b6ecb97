"""Kling's side of the fake's Kling dialect: its tokens, its error envelope, and reading and checking
create bodies as Kling's developer documentation describes them.

Sources (public pages, none copied; the fake keeps its own reading, apart from the adapter's table in
`vidgate.providers.kling_models`, so that a mistake in one is caught by the other):
- "API authentication" (app.klingai.com/global/dev/document-api, and its Chinese twin): a JWT (RFC 7519)
  signed HS256 with the secret key, `iss` the access key, `exp` and `nbf`, sent as `Authorization: Bearer`;
- "Error Code": `{code, message, request_id}` with the HTTP status its table gives: 401 1000-1004
  (authentication: failed, empty, invalid, not yet valid, expired), 429 1100-1102 (account: abnormal, in
  arrears, resource pack used up), 403 1103 (no permission for the model), 400 1200/1201 (parameters),
  404 1202/1203 (method, resource such as a model), 400 1300/1301 (policy, content safety), 429 1302-1304
  (rate, concurrency, IP allow-list), 500/503/504 5000-5002;
- "Video Generation - Text to Video" and "- Image to Video": the fields each create takes (`model_name`,
  `prompt` and `negative_prompt` up to 2500 characters, `duration` "5"|"10" as a string, `mode` std|pro,
  `aspect_ratio` 16:9|9:16|1:1 on text-to-video only, `image`/`image_tail` as a URL or base64 WITHOUT a
  `data:` prefix, jpg/jpeg/png, at most 10 MB, sides of at least 300 px, aspect ratio 1:2.5 to 2.5:1,
  `sound` on|off "only V2.6 and later", `cfg_scale` [0, 1] "not supported by kling-v2.x",
  `external_task_id` "unique within a single user account"), and the "Capability Map" (which model makes
  which mode, length and first-and-last-frame video). A parameter Kling does not know is refused with
  1201 ("key misspelled or value invalid"), so a typo in an adapter shows up here.
"""

from __future__ import annotations

import base64
import binascii
import io
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from PIL import Image, UnidentifiedImageError
from starlette.responses import JSONResponse

from vidgate.domain.capabilities import canonical_size

__all__ = [
    "FAKE_MODELS",
    "FakeKlingModel",
    "KlingCreate",
    "KlingRefusal",
    "check_token",
    "journal_detail",
    "kling_error",
    "parse_create",
]

TEXT_FIELDS: Final = frozenset(
    {"model_name", "model", "prompt", "negative_prompt", "sound", "cfg_scale", "mode", "camera_control",
     "aspect_ratio", "duration", "watermark_info", "callback_url", "external_task_id"}
)  # fmt: skip
IMAGE_FIELDS: Final = frozenset(
    {"model_name", "model", "image", "image_tail", "prompt", "negative_prompt", "voice_list", "sound",
     "cfg_scale", "mode", "static_mask", "dynamic_masks", "camera_control", "duration", "watermark_info",
     "callback_url", "external_task_id"}
)  # fmt: skip
RATIOS: Final = ("16:9", "9:16", "1:1")
TEXT_MAX: Final = 2500
IMAGE_MAX_BYTES: Final = 10 * 1024 * 1024
IMAGE_MIN_SIDE: Final = 300
IMAGE_MAX_RATIO: Final = 2.5


class KlingRefusal(Exception):
    """An error answered in Kling's envelope: HTTP status, business code, message."""

    def __init__(self, http: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.code = code
        self.message = message

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return kling_error(self.http, self.code, self.message, headers=headers)


def kling_error(http: int, code: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{code, message, request_id}`, Kling's envelope, with the HTTP status given (200 for the answers
    that carry an error in an HTTP 200)."""
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    return JSONResponse(body, status_code=http, headers=headers)


def check_token(authorization: str | None, secret_key: str | None) -> str | None:
    """The token's `iss` (the access key) when the Bearer token is one Kling would take, signed with
    `secret_key`; raises KlingRefusal (401, 1001-1004) otherwise. None when the fake checks no key. The
    validity window is wall time (a JWT's), not the fake's job clock."""
    if secret_key is None:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise KlingRefusal(401, 1001, "Authorization is empty")
    try:
        with warnings.catch_warnings():  # PyJWT warns about HMAC keys under 32 bytes (tests use short ones)
            warnings.filterwarnings("ignore", message=r"The HMAC key is \d+ bytes long")
            claims = jwt.decode(
                token, secret_key, algorithms=["HS256"], options={"require": ["iss", "exp", "nbf"]}
            )
    except jwt.ImmatureSignatureError:
        raise KlingRefusal(401, 1003, "Authorization is not yet valid") from None
    except jwt.ExpiredSignatureError:
        raise KlingRefusal(401, 1004, "Authorization has expired") from None
    except jwt.InvalidTokenError:
        raise KlingRefusal(401, 1002, "Authorization is invalid") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise KlingRefusal(401, 1002, "Authorization is invalid")
    return issuer


@dataclass(frozen=True)
class FakeKlingModel:
    """What Kling checks a create against, per model (the fake's own reading of the capability map)."""

    text: bool  # text2video takes it
    modes: dict[str, str]  # mode -> resolution ("pro" alone for the master models)
    durations: tuple[str, ...]
    tail_modes: frozenset[str] = frozenset()  # modes with image_tail
    tail_durations: frozenset[str] | None = None
    sound_modes: frozenset[str] = frozenset()  # modes with sound on
    tail_silent_only: bool = False
    cfg_scale: bool = False

    @property
    def default_mode(self) -> str:
        return "std" if "std" in self.modes else next(iter(self.modes))


_FIVE_TEN = ("5", "10")
_STD_PRO = {"std": "720p", "pro": "1080p"}
FAKE_MODELS: Final[dict[str, FakeKlingModel]] = {
    "kling-v1": FakeKlingModel(
        True,
        {"std": "720p", "pro": "720p"},
        _FIVE_TEN,
        frozenset({"std", "pro"}),
        frozenset({"5"}),
        cfg_scale=True,
    ),
    "kling-v1-5": FakeKlingModel(False, _STD_PRO, _FIVE_TEN, frozenset({"pro"}), cfg_scale=True),
    "kling-v1-6": FakeKlingModel(True, _STD_PRO, _FIVE_TEN, frozenset({"pro"}), cfg_scale=True),
    "kling-v2-master": FakeKlingModel(True, {"pro": "720p"}, _FIVE_TEN),
    "kling-v2-1": FakeKlingModel(False, _STD_PRO, _FIVE_TEN, frozenset({"pro"})),
    "kling-v2-1-master": FakeKlingModel(True, {"pro": "1080p"}, _FIVE_TEN),
    "kling-v2-5-turbo": FakeKlingModel(True, _STD_PRO, _FIVE_TEN, frozenset({"pro"})),
    "kling-v2-6": FakeKlingModel(
        True, _STD_PRO, _FIVE_TEN, frozenset({"pro"}), sound_modes=frozenset({"pro"}), tail_silent_only=True
    ),
    "kling-v3": FakeKlingModel(
        True,
        _STD_PRO,
        tuple(str(s) for s in range(3, 16)),
        frozenset({"std", "pro"}),
        sound_modes=frozenset({"std", "pro"}),
    ),
}


@dataclass
class KlingCreate:
    """A create Kling would accept, with what it would make."""

    route: str
    model: str
    prompt: str
    mode: str
    resolution: str
    duration: int
    ratio: str | None
    image: str | None
    image_tail: str | None
    sound: str | None
    external_task_id: str | None
    width: int
    height: int
    body: dict[str, Any] = field(default_factory=dict)


def _invalid(message: str) -> KlingRefusal:
    return KlingRefusal(400, 1201, message)


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"Invalid parameter: {name} must be a string")
    if len(value) > TEXT_MAX:
        raise _invalid(f"Invalid parameter: {name} cannot exceed {TEXT_MAX} characters")
    return value


def _image_shape(value: Any, name: str) -> tuple[int, int] | None:
    """The pixel size of a base64 image (None for a URL: the fake fetches nothing)."""
    if not isinstance(value, str) or not value:
        raise _invalid(f"Invalid parameter: {name} must be an image URL or its Base64 encoding")
    if value.lower().startswith(("http://", "https://")):
        return None
    if value.lower().startswith("data:"):
        raise _invalid(f"Invalid parameter: {name} must be the Base64 string itself, without a data: prefix")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"Invalid parameter: {name} is neither a URL nor valid Base64") from None
    if len(raw) > IMAGE_MAX_BYTES:
        raise _invalid(f"Invalid parameter: {name} cannot exceed 10MB")
    try:
        with Image.open(io.BytesIO(raw)) as picture:
            kind, (width, height) = picture.format, picture.size
    except (UnidentifiedImageError, OSError):
        raise _invalid(f"Invalid parameter: {name} is not a readable image") from None
    if kind not in ("JPEG", "PNG"):
        raise _invalid(f"Invalid parameter: {name} must be a .jpg, .jpeg or .png image")
    ratio = max(width, height) / max(1, min(width, height))
    if min(width, height) < IMAGE_MIN_SIDE or ratio > IMAGE_MAX_RATIO:
        raise _invalid(
            f"Invalid parameter: {name} is {width}x{height}; its sides must be at least {IMAGE_MIN_SIDE}px "
            "and its aspect ratio between 1:2.5 and 2.5:1"
        )
    return width, height


def _shape_of(resolution: str, image: tuple[int, int] | None) -> tuple[int, int]:
    """An image-led video keeps the image's shape at the mode's resolution (16:9 for a URL)."""
    short = int(resolution.removesuffix("p"))
    width, height = image or (16, 9)
    long = round(short * max(width, height) / min(width, height) / 2) * 2
    return (long, short) if width >= height else (short, long)


def parse_create(route: str, body: Any) -> KlingCreate:
    """A create of `route` (text2video or image2video) Kling would accept, else KlingRefusal."""
    if not isinstance(body, dict):
        raise _invalid("Invalid parameter: the request body must be a JSON object")
    allowed = TEXT_FIELDS if route == "text2video" else IMAGE_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"Invalid parameter: unknown field {unknown[0]}")
    name = body.get("model_name") or body.get("model") or "kling-v1"
    model = FAKE_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise KlingRefusal(404, 1203, f"model {name} does not exist")
    if route == "text2video" and not model.text:
        raise _invalid(f"Invalid parameter: model_name {name} does not support text to video")
    prompt = _text(body, "prompt") or ""
    _text(body, "negative_prompt")
    if route == "text2video" and not prompt.strip():
        raise _invalid("Invalid parameter: prompt is required")
    mode = body.get("mode", model.default_mode)
    if mode not in model.modes:
        raise _invalid(f"Invalid parameter: mode {mode} is not supported by {name}")
    duration = body.get("duration", "5")
    if not isinstance(duration, str) or duration not in model.durations:
        raise _invalid(f"Invalid parameter: duration must be one of {', '.join(model.durations)} (a string)")
    ratio = None
    if route == "text2video":
        ratio = body.get("aspect_ratio", "16:9")
        if ratio not in RATIOS:
            raise _invalid(f"Invalid parameter: aspect_ratio must be one of {', '.join(RATIOS)}")
    image, tail = body.get("image"), body.get("image_tail")
    shape = None
    if route == "image2video":
        if image is None and tail is None:
            raise _invalid("Invalid parameter: image and image_tail cannot both be empty")
        if image is not None:
            shape = _image_shape(image, "image")
        if tail is not None:
            tail_shape = _image_shape(tail, "image_tail")
            shape = shape or tail_shape
            if mode not in model.tail_modes or (
                model.tail_durations is not None and duration not in model.tail_durations
            ):
                raise _invalid(
                    f"Invalid parameter: image_tail is not supported by {name} in {mode} {duration}s"
                )
            if body.get("camera_control") or body.get("static_mask") or body.get("dynamic_masks"):
                raise _invalid("Invalid parameter: image+image_tail, masks and camera_control are exclusive")
    sound = body.get("sound")
    if sound is not None and sound not in ("on", "off"):
        raise _invalid("Invalid parameter: sound must be on or off")
    if sound == "on" and mode not in model.sound_modes:
        raise _invalid(f"Invalid parameter: sound is not supported by {name} in {mode} mode")
    if sound == "on" and tail is not None and model.tail_silent_only:
        raise _invalid(f"Invalid parameter: {name} makes first-and-last-frame videos without sound only")
    cfg = body.get("cfg_scale")
    if cfg is not None:
        if not model.cfg_scale:
            raise _invalid(f"Invalid parameter: cfg_scale is not supported by {name}")
        if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0 <= cfg <= 1:
            raise _invalid("Invalid parameter: cfg_scale must be within [0, 1]")
    external = body.get("external_task_id")
    if external is not None and (not isinstance(external, str) or not external):
        raise _invalid("Invalid parameter: external_task_id must be a string")
    resolution = model.modes[mode]
    if ratio is not None:
        width, height = canonical_size(resolution, ratio)
    else:
        width, height = _shape_of(resolution, shape)
    return KlingCreate(
        route=route,
        model=name,
        prompt=prompt,
        mode=mode,
        resolution=resolution,
        duration=int(duration),
        ratio=ratio,
        image=image,
        image_tail=tail,
        sound=sound,
        external_task_id=external,
        width=width,
        height=height,
        body=body,
    )


def journal_detail(req: KlingCreate) -> dict[str, Any]:
    """What a create carried, for tests to assert passthrough: the parameters as received (images by kind
    and first 60 characters), and what Kling made of the defaults."""
    body = req.body
    detail: dict[str, Any] = {
        name: body.get(name)
        for name in ("model_name", "negative_prompt", "duration", "mode", "aspect_ratio", "sound",
                     "cfg_scale", "external_task_id")
    }  # fmt: skip
    detail.update(route=req.route, resolution=req.resolution, mode_made=req.mode)
    for name in ("image", "image_tail"):
        value = body.get(name)
        detail[name] = None if value is None else ("url" if value.lower().startswith("http") else "base64")
        detail[f"{name}_head"] = None if value is None else value[:60]
    return detail
