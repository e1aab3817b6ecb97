"""Ark's side of the fake's Seedance dialect: reading and checking create bodies, and Ark's error envelope.

Where each rule comes from (public pages, none copied):
- the create body (`model`, `content[]` with `text` and `image_url` items and their `role`, `ratio`,
  `duration`, `frames`, `resolution`, `seed`, `watermark`, `generate_audio`, `camera_fixed`,
  `return_last_frame`, `service_tier`, `execution_expires_after`, `callback_url`, `safety_identifier`,
  `priority`, `draft`, `tools`): BytePlus ModelArk "Video Generation API" (docs.byteplus.com/docs/
  ModelArk/1520757), Volcengine Ark 视频生成 API (volcengine.com/docs/82379/1520757), and the
  `volcenginesdkarkruntime` SDK's `content_generation.tasks.create` and `create_task_content_param`;
- per model: 1.0 pro/lite 2-12 s, 1.5 pro 4-12 s, 2.0 4-15 s; 480p/720p/1080p (2.0 fast and 1.5 pro's
  first release: no 1080p; the fake follows the later pages that list it for 1.5 pro); the six ratios
  plus `adaptive`; first/last frames on 1.0 pro, 1.0 lite i2v, 1.5 pro and 2.0; 1-4 reference images on
  1.0 lite i2v, up to 9 on 2.0; `camera_fixed` not with reference images; seeds -1..2^32-1;
- the error envelope `{"error": {"code", "message", "param", "type"}}` and its codes (`MissingParameter`,
  `InvalidParameter`, `AuthenticationError`, `InputTextSensitiveContentDetected`, ...): ModelArk "Common
  error codes" (docs.byteplus.com/docs/ModelArk/1299023). A model the account cannot reach answers 404
  `InvalidEndpointOrModel.NotFound`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.responses import JSONResponse

from vidgate.domain.capabilities import canonical_size

__all__ = [
    "ARK_RATIOS",
    "RULES",
    "ArkCreate",
    "ArkError",
    "ark_error",
    "family",
    "journal_detail",
    "parse_create",
]

ARK_RATIOS: Final = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
ROLES: Final = ("first_frame", "last_frame", "reference_image")
SEED_RANGE: Final = (-1, 2**32 - 1)
TIERS: Final = ("default", "flex")
EXPIRY_RANGE: Final = (3600, 259200)
# Fields Ark takes besides those this fake checks closely; anything else is refused (a typo in an adapter
# shows up as a 400 here rather than as a field silently dropped).
OTHER_FIELDS: Final = ("callback_url", "safety_identifier", "priority", "draft", "tools")
_TYPES: Final = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                 429: "TooManyRequests", 500: "InternalServiceError"}  # fmt: skip
_FAMILY_PREFIXES: Final = ("doubao-", "dreamina-")
_DATED: Final = re.compile(r"-\d{6}$")


@dataclass(frozen=True)
class ModelRules:
    """What Ark checks a create against, per model family."""

    durations: range
    resolutions: tuple[str, ...]
    default_resolution: str
    first_frame: bool
    last_frame: bool
    references: int  # reference images it takes (0: none)
    audio: bool  # generate_audio means something (other models ignore it)
    auto_duration: bool = False  # `duration: -1` (the model picks)
    needs_image: bool = False  # image-to-video only: a create without an image is refused


_ALL: Final = ("480p", "720p", "1080p")
RULES: Final[dict[str, ModelRules]] = {
    "seedance-1-0-pro": ModelRules(range(2, 13), _ALL, "1080p", True, True, 0, False),
    "seedance-1-0-pro-fast": ModelRules(range(2, 13), _ALL, "1080p", True, False, 0, False),
    "seedance-1-0-lite-t2v": ModelRules(range(2, 13), _ALL, "720p", False, False, 0, False),
    "seedance-1-0-lite-i2v": ModelRules(range(2, 13), _ALL, "720p", True, True, 4, False, needs_image=True),
    "seedance-1-5-pro": ModelRules(range(4, 13), _ALL, "720p", True, True, 0, True, True),
    "seedance-2-0": ModelRules(range(4, 16), _ALL, "720p", True, True, 9, True, True),
    "seedance-2-0-fast": ModelRules(range(4, 16), ("480p", "720p"), "720p", True, True, 9, True, True),
}


class ArkError(Exception):
    """A refusal in Ark's envelope."""

    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return ark_error(self.status, self.code, self.message, self.param, headers=headers)


def ark_error(
    status: int, code: str, message: str, param: str = "", *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """`{"error": {"code", "message", "param", "type"}}` with Ark's request-id tail on the message."""
    body = {
        "error": {
            "code": code,
            "message": f"{message} Request id: 021fake{status}",
            "param": param,
            "type": _TYPES.get(status, "BadRequest"),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def family(model: str) -> str | None:
    name = model.strip().lower()
    for prefix in _FAMILY_PREFIXES:
        name = name.removeprefix(prefix)
    name = _DATED.sub("", name)
    return name if name in RULES else None


@dataclass(frozen=True)
class ArkCreate:
    """A create Ark would accept, with what it would make of the defaults."""

    model: str
    rules: ModelRules
    text: str
    images: list[tuple[str, str]]  # (role, url) in the order sent
    ratio: str  # as sent (or its default); `adaptive` is resolved by the route
    duration: int
    resolution: str
    seed: int | None
    width: int
    height: int
    body: dict[str, Any] = field(default_factory=dict)  # exactly as received


def _invalid(param: str, detail: str) -> ArkError:
    message = f"The parameter `{param}` specified in the request is not valid: {detail}."
    return ArkError(400, "InvalidParameter", message, param)


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _invalid(name, "expected a boolean")


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "expected an integer")
    return value


def _image_url(item: dict[str, Any], index: int) -> str:
    image = item.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not url:
        raise ArkError(400, "MissingParameter", f"content[{index}].image_url.url is required.", "content")
    if not url.lower().startswith(("http://", "https://", "data:image/")):
        raise _invalid("content", f"content[{index}].image_url.url must be an http(s) URL or base64 image")
    return url


def _content(body: dict[str, Any], rules: ModelRules) -> tuple[str, list[tuple[str, str]]]:
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise ArkError(400, "MissingParameter", "The request is missing `content`.", "content")
    texts: list[str] = []
    images: list[tuple[str, str | None]] = []
    for index, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif kind == "image_url" and isinstance(item, dict):
            role = item.get("role")
            if role is not None and role not in ROLES:
                raise _invalid("content", f"content[{index}].role must be one of {', '.join(ROLES)}")
            images.append((_image_url(item, index), role))
        else:
            raise _invalid("content", f"content[{index}] must be a text or an image_url item")
    if len(texts) > 1:
        raise _invalid("content", "at most one text item")
    if not texts and not images:
        raise ArkError(400, "MissingParameter", "The request needs a text prompt or an image.", "content")
    # One image without a role is a first frame; two or more must all say what they are.
    if len(images) == 1 and images[0][1] is None:
        images = [(images[0][0], "first_frame")]
    if any(role is None for _, role in images):
        raise _invalid("content", "every image needs a role when more than one is sent")
    roles = [str(role) for _, role in images]
    _check_roles(roles, rules)
    return (texts[0] if texts else ""), [(str(role), url) for url, role in images]


def _check_roles(roles: list[str], rules: ModelRules) -> None:
    firsts, lasts, references = (roles.count(r) for r in ROLES)
    if firsts > 1 or lasts > 1:
        raise _invalid("content", "at most one first_frame and one last_frame")
    if references and (firsts or lasts):
        raise _invalid("content", "reference_image cannot be combined with first_frame or last_frame")
    if lasts and not firsts:
        raise _invalid("content", "last_frame needs a first_frame")
    if firsts and not rules.first_frame:
        raise _invalid("content", "this model takes no image")
    if lasts and not rules.last_frame:
        raise _invalid("content", "this model takes no last_frame")
    if references and not rules.references:
        raise _invalid("content", "this model takes no reference_image")
    if references > rules.references:
        raise _invalid("content", f"this model takes 1 to {rules.references} reference images")


def parse_create(body: Any) -> ArkCreate:
    """A create Ark would accept, else ArkError naming the parameter."""
    if not isinstance(body, dict):
        raise ArkError(400, "InvalidParameter", "The request body is not a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ArkError(400, "MissingParameter", "The request is missing `model`.", "model")
    name = family(model)
    if name is None:
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
            "model",
        )
    rules = RULES[name]
    unknown = sorted(set(body) - {*_CHECKED, *OTHER_FIELDS})
    if unknown:
        raise _invalid(unknown[0], "unknown parameter")
    text, images = _content(body, rules)
    roles = [role for role, _ in images]
    ratio = body.get("ratio", "adaptive" if "first_frame" in roles else "16:9")
    if ratio not in ARK_RATIOS:
        raise _invalid("ratio", f"one of {', '.join(ARK_RATIOS)}")
    duration = _integer(body, "duration")
    frames = _integer(body, "frames")
    if duration is not None and frames is not None:
        raise _invalid("frames", "duration and frames cannot both be set")
    if frames is not None:
        if not 29 <= frames <= 289 or (frames - 25) % 4:
            raise _invalid("frames", "25 + 4n, between 29 and 289")
        duration = round(frames / 24)
    elif duration is None:
        duration = 5
    elif duration not in rules.durations and not (duration == -1 and rules.auto_duration):
        shown = f"{rules.durations.start}~{rules.durations.stop - 1}"
        raise _invalid("duration", f"this model takes {shown} seconds")
    resolution = body.get("resolution", rules.default_resolution)
    if resolution not in rules.resolutions:
        raise _invalid("resolution", f"this model takes {', '.join(rules.resolutions)}")
    seed = _integer(body, "seed")
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise _invalid("seed", f"between {SEED_RANGE[0]} and {SEED_RANGE[1]}")
    for name_ in ("watermark", "generate_audio", "camera_fixed", "return_last_frame", "draft"):
        _flag(body, name_)
    if body.get("camera_fixed") is not None and "reference_image" in roles:
        raise _invalid("camera_fixed", "not supported with reference images")
    tier = body.get("service_tier")
    if tier is not None and tier not in TIERS:
        raise _invalid("service_tier", "default or flex")
    expiry = _integer(body, "execution_expires_after")
    if expiry is not None and not EXPIRY_RANGE[0] <= expiry <= EXPIRY_RANGE[1]:
        raise _invalid("execution_expires_after", f"between {EXPIRY_RANGE[0]} and {EXPIRY_RANGE[1]}")
    if rules.needs_image and not roles:  # checked after the parameters, which Ark reports first
        raise _invalid(
            "content", "this model makes videos from images: send a first frame or reference images"
        )
    shape = "16:9" if ratio == "adaptive" else str(ratio)
    width, height = canonical_size(str(resolution), shape)
    made = duration if duration > 0 else 5  # `-1`: the model picks; the fake picks 5 s
    return ArkCreate(model, rules, text, images, str(ratio), made, str(resolution), seed, width, height, body)


_CHECKED: Final = (
    "model",
    "content",
    "ratio",
    "duration",
    "frames",
    "resolution",
    "seed",
    "watermark",
    "generate_audio",
    "camera_fixed",
    "return_last_frame",
    "service_tier",
    "execution_expires_after",
)


def journal_detail(req: ArkCreate) -> dict[str, Any]:
    """What the create carried, for tests to assert passthrough: every parameter as received (None when
    not sent), the images' roles in order and the first 100 characters of each, other fields apart."""
    body = req.body
    detail: dict[str, Any] = {name: body.get(name) for name in _CHECKED if name != "content"}
    detail["text"] = req.text
    detail["roles"] = [role for role, _ in req.images]
    detail["images"] = len(req.images)
    detail["image_values"] = [url[:100] for _, url in req.images]
    detail["extra"] = {k: v for k, v in body.items() if k in OTHER_FIELDS}
    return detail
