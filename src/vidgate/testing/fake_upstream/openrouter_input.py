"""OpenRouter's side of the fake's OpenRouter dialect: the video models it lists and how it checks a create.

OpenRouter lists each video model in `GET /api/v1/videos/models` with what it takes
(`supported_durations`, `supported_resolutions`, `supported_aspect_ratios`, `supported_sizes`,
`supported_frame_images`, `generate_audio`, `seed`, `allowed_passthrough_parameters`) and answers a value
outside those sets with a 400 (the `openrouter-video` skill: "An out-of-set value returns a 400"). The fake
lists Veo 3.1 (and its fast variant) and Sora 2 (and pro) with their makers' figures; `seed` and
`generate_audio` on a model without them are ignored, as OpenRouter documents ("honored only if the
model's ... capability is true"). Errors are `{"error": {"code": <HTTP status>, "message", "metadata"}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import JSONResponse

__all__ = ["MODELS", "VideoModel", "check_create", "openrouter_error"]


@dataclass(frozen=True)
class VideoModel:
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    frame_images: tuple[str, ...]
    generate_audio: bool
    seed: bool

    def listing(self, slug: str) -> dict[str, Any]:
        """The model as `GET /api/v1/videos/models` shows it."""
        return {
            "id": slug,
            "canonical_slug": slug,
            "name": slug,
            "supported_durations": list(self.durations),
            "supported_resolutions": list(self.resolutions),
            "supported_aspect_ratios": list(self.aspect_ratios),
            "supported_sizes": list(self.sizes),
            "supported_frame_images": list(self.frame_images),
            "generate_audio": self.generate_audio,
            "seed": self.seed,
            "allowed_passthrough_parameters": [],
        }


_VEO: Final = VideoModel(
    (4, 6, 8), ("720p", "1080p"), ("16:9", "9:16"), ("1280x720", "720x1280", "1920x1080", "1080x1920"),
    ("first_frame", "last_frame"), True, True,
)  # fmt: skip
_SORA_SIZES: Final = ("720x1280", "1280x720")
MODELS: Final[dict[str, VideoModel]] = {
    "google/veo-3.1": _VEO,
    "google/veo-3.1-fast": _VEO,
    "openai/sora-2": VideoModel(
        (4, 8, 12), ("720p",), ("16:9", "9:16"), _SORA_SIZES, ("first_frame",), True, False
    ),
    "openai/sora-2-pro": VideoModel(
        (4, 8, 12),
        ("720p",),
        ("16:9", "9:16"),
        (*_SORA_SIZES, "1024x1792", "1792x1024"),
        ("first_frame",),
        True,
        False,
    ),
}


def openrouter_error(
    status: int,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def check_create(body: dict[str, Any]) -> str | None:
    """Why OpenRouter would answer this create with a 400 (None: it is taken)."""
    model = MODELS.get(str(body.get("model")))
    if model is None:
        return f"{body.get('model')!r} is not a valid model ID"
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return "prompt is required"
    problems = [
        ("duration", body.get("duration"), model.durations),
        ("resolution", body.get("resolution"), model.resolutions),
        ("aspect_ratio", body.get("aspect_ratio"), model.aspect_ratios),
        ("size", body.get("size"), model.sizes),
    ]
    for name, value, allowed in problems:
        if value is not None and value not in allowed:
            return f"{name} {value!r} is not supported by {body['model']}; supported: {list(allowed)}"
    frames = body.get("frame_images") or []
    if not isinstance(frames, list):
        return "frame_images must be a list"
    for frame in frames:
        kind = frame.get("frame_type") if isinstance(frame, dict) else None
        url = frame.get("image_url", {}).get("url") if isinstance(frame, dict) else None
        if kind not in model.frame_images or not isinstance(url, str):
            return f"frame_images: frame_type {kind!r} is not supported by {body['model']}"
    return None
