"""Replicate's side of the fake's Replicate dialect: the models it knows and Replicate's error shapes.

The models are those the example configuration ships presets for, with the inputs their pages list
("Input schema" on replicate.com/<owner>/<name>/api; the version's `openapi_schema`): `google/veo-3.1-fast`
(`image`, `last_frame`, `duration` 4/6/8 as an integer, `resolution` 720p/1080p, `generate_audio`,
`seed`, `negative_prompt`) and `kwaivgi/kling-v2.6` (`start_image`, `duration` 5/10, `aspect_ratio`
16:9/9:16/1:1, `generate_audio`, `negative_prompt`); both output one URL (`{"format": "uri", "type":
"string"}`). Each has one version id, so a channel may pin `owner/name:<version>`.

Errors are problem details (`replicate-go`'s `APIError`: `{type, title, status, detail}`), with
`invalid_fields: [{type, field, description}]` on a 422 for invalid input.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from starlette.responses import JSONResponse

from vidgate.testing.fake_upstream.input_schemas import InputField, InputProblem, ModelSchema

__all__ = ["MODELS", "VERSIONS", "invalid_input", "problem"]

_PROMPT: Final = InputField("string", required=True)

MODELS: Final[dict[str, ModelSchema]] = {
    "google/veo-3.1-fast": ModelSchema(
        {
            "prompt": _PROMPT,
            "aspect_ratio": InputField("string", ("16:9", "9:16")),
            "duration": InputField("integer", (4, 6, 8)),
            "image": InputField("url"),
            "last_frame": InputField("url"),
            "negative_prompt": InputField("string"),
            "resolution": InputField("string", ("720p", "1080p")),
            "generate_audio": InputField("boolean"),
            "seed": InputField("integer"),
        },
        duration="duration",
        default_seconds=8,
        resolution="resolution",
        default_resolution="1080p",
        aspect_ratio="aspect_ratio",
        output="url",
    ),
    "kwaivgi/kling-v2.6": ModelSchema(
        {
            "prompt": _PROMPT,
            "negative_prompt": InputField("string"),
            "start_image": InputField("url"),
            "aspect_ratio": InputField("string", ("16:9", "9:16", "1:1")),
            "duration": InputField("integer", (5, 10)),
            "generate_audio": InputField("boolean"),
        },
        duration="duration",
        default_resolution="1080p",
        aspect_ratio="aspect_ratio",
        output="url",
    ),
}

# One version per model: a 64-hex id, as Replicate's are.
VERSIONS: Final[dict[str, str]] = {
    hashlib.sha256(f"fake-version:{model}".encode()).hexdigest(): model for model in MODELS
}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Replicate's problem details."""
    return JSONResponse({"title": title, "detail": detail, "status": status, **extra}, status_code=status)


def invalid_input(problems: list[InputProblem]) -> JSONResponse:
    """A 422 naming each invalid input (`input.<name>`)."""
    fields = [{"type": p.kind, "field": f"input.{p.field}", "description": p.message} for p in problems]
    detail = "\n".join(f"- input.{p.field}: {p.message}" for p in problems)
    return problem(422, "Input validation failed", detail, invalid_fields=fields)
