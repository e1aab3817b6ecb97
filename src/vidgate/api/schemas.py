"""Pydantic models for the OpenAPI document (and so for schemathesis and generated clients).

Request bodies are validated by `vidgate.domain.requests` (it must accept `"watermark": "false"`
and name fields in errors the way relay clients expect); these models describe the same shapes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in [
        (400, "Invalid request: the field is named in `error.param`."),
        (401, "Missing, unknown or revoked API key."),
        (402, "Creates: the key's available credits cannot cover the task's price (`insufficient_quota`)."),
        (403, "Creates: the key may not use this model (`model_not_allowed`)."),
        (404, "No such task for this key."),
        (408, "The request body stalled, or did not all arrive in time (`body_timeout`)."),
        (409, "State conflict (e.g. an Idempotency-Key reused with another body)."),
        (413, "Request body too large."),
        (415, "Unsupported Content-Type."),
        (429, "A rate limit or the cap on tasks in flight of this key; retry after `Retry-After`."),
        (500, "Internal error (no details are leaked)."),
        (503, "No channel can serve this now."),
    ]
}


class UnifiedCreateBody(BaseModel):
    """`POST /v1/video/create` (the relay 'unified video format')."""

    model: str = Field(examples=["sora-2"])
    prompt: str = Field(min_length=1, max_length=4000, examples=["make animate"])
    images: list[str] = Field(default_factory=list, description="http(s) URLs or data:image/...;base64, URIs")
    orientation: Literal["portrait", "landscape"] = "portrait"
    size: Literal["small", "large"] = "small"
    duration: int | str = Field(default=10, description="Seconds: 10, 15 (25 where a channel allows it)")
    watermark: bool | Literal["true", "false"] = True
    private: bool | Literal["true", "false"] = False
    style: str | None = None
    storyboard: bool | None = None
    character_url: str | None = None
    character_timestamps: str | None = Field(default=None, examples=["1,3"])
    callback_url: str | None = None


class UnifiedCreateResponse(BaseModel):
    id: str = Field(examples=["sora-2:task_01k6x15vhrff09dkkqjrzwhm60"])
    status: str = Field(examples=["pending"])
    status_update_time: int = Field(description="Unix milliseconds")


class TaskErrorModel(BaseModel):
    code: str
    message: str


class UnifiedQueryResponse(BaseModel):
    id: str
    object: Literal["video"]
    model: str
    status: Literal["pending", "processing", "completed", "failed", "cancelled"]
    progress: int
    created_at: int
    status_update_time: int
    completed_at: int | None
    size: str
    orientation: str
    duration: int
    width: int
    height: int
    video_url: str | None
    thumbnail_url: str | None
    spritesheet_url: str | None
    enhanced_prompt: str
    watermarked: bool | None
    error: TaskErrorModel | None
    fail_reason: str | None
    detail: dict[str, Any]


class OpenAIVideo(BaseModel):
    """The `Video` object of OpenAI's API."""

    id: str = Field(examples=["video_01k6x15vhrff09dkkqjrzwhm60"])
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    seconds: str
    size: str
    remixed_from_video_id: str | None
    error: TaskErrorModel | None


class OpenAIVideoList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIVideo]
    first_id: str | None
    last_id: str | None
    has_more: bool


class OpenAIDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"]
    deleted: bool


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }
