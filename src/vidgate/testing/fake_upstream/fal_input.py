"""fal's side of the fake's fal dialect: the input schemas of the models it knows, and fal's error shapes.

The schemas are those of the models' pages on fal.ai ("Input Schema", and each endpoint's `llms.txt`):
`fal-ai/veo3.1` and `fal-ai/veo3.1/image-to-video` (Google Veo 3.1: `duration` "4s"/"6s"/"8s",
`generate_audio`, `resolution` 720p/1080p/4k, `auto_fix`, `safety_tolerance`), `fal-ai/kling-video/
v2.5-turbo/pro/{text,image}-to-video` (`duration` "5"/"10", `cfg_scale`, `tail_image_url` for the last
frame), `fal-ai/wan-25-preview/text-to-video` (`audio_url`, `enable_prompt_expansion`),
`fal-ai/bytedance/seedance/v1/pro/text-to-video` (`duration` "2" to "12", six ratios, `camera_fixed`) and
`fal-ai/minimax/hailuo-02/standard/image-to-video` (`resolution` "512P"/"768P", `prompt_optimizer`,
`end_image_url`). Every one answers `{"video": {"url", "content_type", "file_name", "file_size"}}` (the
File object of fal's output schemas).

Errors: fal answers `{"detail": "..."}` for a request it refuses (401 without a valid `Key`), a model's
validation error as 422 `{"detail": [{"loc": ["body", "<input>"], "msg", "type"}]}` (FastAPI's shape, which
fal's model apps use; a content-policy refusal is such an item with `type: "content_policy_violation"`),
and a request error as `{"detail", "error_type"}` with the type in `X-Fal-Error-Type` too ("Request
errors": `request_timeout`, `runner_disconnected`, ...).
"""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import JSONResponse

from vidgate.testing.fake_upstream.input_schemas import InputField, InputProblem, ModelSchema

__all__ = ["MODELS", "REQUEST_ERROR_STATUS", "fal_error", "validation_error"]

_PROMPT: Final = InputField("string", required=True)
_VEO_COMMON: Final[dict[str, InputField]] = {
    "prompt": _PROMPT,
    "duration": InputField("string", ("4s", "6s", "8s")),
    "negative_prompt": InputField("string"),
    "resolution": InputField("string", ("720p", "1080p", "4k")),
    "generate_audio": InputField("boolean"),
    "seed": InputField("integer"),
    "auto_fix": InputField("boolean"),
    "safety_tolerance": InputField("string", ("1", "2", "3", "4", "5", "6")),
}
_KLING_COMMON: Final[dict[str, InputField]] = {
    "prompt": _PROMPT,
    "duration": InputField("string", ("5", "10")),
    "negative_prompt": InputField("string"),
    "cfg_scale": InputField("number", minimum=0, maximum=1),
}

MODELS: Final[dict[str, ModelSchema]] = {
    "fal-ai/veo3.1": ModelSchema(
        {**_VEO_COMMON, "aspect_ratio": InputField("string", ("16:9", "9:16"))},
        duration="duration",
        default_seconds=8,
        resolution="resolution",
        aspect_ratio="aspect_ratio",
    ),
    "fal-ai/veo3.1/image-to-video": ModelSchema(
        {
            **_VEO_COMMON,
            "aspect_ratio": InputField("string", ("auto", "16:9", "9:16")),
            "image_url": InputField("url", required=True),
        },
        duration="duration",
        default_seconds=8,
        resolution="resolution",
        aspect_ratio="aspect_ratio",
    ),
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": ModelSchema(
        {**_KLING_COMMON, "aspect_ratio": InputField("string", ("16:9", "9:16", "1:1"))},
        duration="duration",
        default_resolution="1080p",
        aspect_ratio="aspect_ratio",
    ),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": ModelSchema(
        {
            **_KLING_COMMON,
            "image_url": InputField("url", required=True),
            "tail_image_url": InputField("url"),
        },
        duration="duration",
        default_resolution="1080p",
    ),
    "fal-ai/wan-25-preview/text-to-video": ModelSchema(
        {
            "prompt": _PROMPT,
            "aspect_ratio": InputField("string", ("16:9", "9:16", "1:1")),
            "resolution": InputField("string", ("480p", "720p", "1080p")),
            "duration": InputField("string", ("5", "10")),
            "audio_url": InputField("url"),
            "negative_prompt": InputField("string"),
            "enable_prompt_expansion": InputField("boolean"),
            "seed": InputField("integer"),
            "enable_safety_checker": InputField("boolean"),
        },
        duration="duration",
        default_resolution="1080p",
        resolution="resolution",
        aspect_ratio="aspect_ratio",
    ),
    "fal-ai/bytedance/seedance/v1/pro/text-to-video": ModelSchema(
        {
            "prompt": _PROMPT,
            "aspect_ratio": InputField("string", ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")),
            "resolution": InputField("string", ("480p", "720p", "1080p")),
            "duration": InputField("string", tuple(str(s) for s in range(2, 13))),
            "camera_fixed": InputField("boolean"),
            "seed": InputField("integer", minimum=-1, maximum=2**32 - 1),
            "enable_safety_checker": InputField("boolean"),
        },
        duration="duration",
        default_resolution="1080p",
        resolution="resolution",
        aspect_ratio="aspect_ratio",
    ),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": ModelSchema(
        {
            "prompt": _PROMPT,
            "image_url": InputField("url", required=True),
            "duration": InputField("string", ("6", "10")),
            "prompt_optimizer": InputField("boolean"),
            "resolution": InputField("string", ("512P", "768P")),
            "end_image_url": InputField("url"),
        },
        duration="duration",
        default_seconds=6,
        resolution="resolution",
        default_resolution="768P",
    ),
}

# The HTTP status fal answers a request error with ("Request errors", "Typical Status Code").
REQUEST_ERROR_STATUS: Final[dict[str, int]] = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_server_error": 500,
    "internal_error": 500,
    "request_cancelled": 400,
}


def fal_error(
    status: int, detail: Any, *, error_type: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """`{"detail": ...}` (and `error_type`, also as `X-Fal-Error-Type`, for a request error)."""
    body: dict[str, Any] = {"detail": detail}
    extra = dict(headers or {})
    if error_type is not None:
        body["error_type"] = error_type
        extra["X-Fal-Error-Type"] = error_type
    return JSONResponse(body, status_code=status, headers=extra)


def validation_error(problems: list[InputProblem]) -> JSONResponse:
    """A model's 422: one `{loc, msg, type}` per refused input."""
    detail = [
        {"loc": ["body", p.field], "msg": p.message, "type": _TYPES.get(p.kind, p.kind)} for p in problems
    ]
    return fal_error(422, detail)


_TYPES: Final = {"missing": "missing", "enum": "literal_error", "type": "type_error",
                 "extra": "extra_forbidden", "range": "value_error"}  # fmt: skip
