"""How a task looks on the wire in each dialect (API responses and webhook payloads)."""

from __future__ import annotations

import math
from typing import Any, Protocol

from vidgate import signing
from vidgate.clock import Clock
from vidgate.config import Settings
from vidgate.domain.routing import Catalog
from vidgate.domain.tasks import Task, TaskStatus, TaskSummary
from vidgate.ids import openai_id, unified_id
from vidgate.store.blobs import MEDIA_FILES


class ViewContext(Protocol):
    """What rendering a view needs (a Runtime in the API, the step dependencies in the worker)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def catalog(self) -> Catalog: ...


VARIANT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
# Signed links expire on hour boundaries, so repeated polls return the same URL (caches stay warm).
_EXPIRY_BUCKET_S = 3600


def variant_key(task: Task, variant: str) -> str | None:
    return {"video": task.video_key, "thumbnail": task.thumbnail_key, "spritesheet": task.spritesheet_key}[
        variant
    ]


def signed_url(ctx: ViewContext, task: Task, variant: str) -> str | None:
    if variant_key(task, variant) is None:
        return None
    settings = ctx.settings
    now_s = ctx.clock.now_ms() // 1000
    expires = math.ceil((now_s + settings.signed_url_ttl_seconds) / _EXPIRY_BUCKET_S) * _EXPIRY_BUCKET_S
    sig = signing.sign(settings.signing_key(), task.id, variant, expires)
    return f"{settings.base_url}/files/{task.id}/{MEDIA_FILES[variant]}?exp={expires}&sig={sig}"


def _seconds(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def media_expires_at(ctx: ViewContext, task: Task | TaskSummary) -> int | None:
    days = ctx.settings.media_retention_days
    if days is None or task.completed_at is None or task.status is not TaskStatus.COMPLETED:
        return None
    return _seconds(task.completed_at + round(days * 86_400_000))


def unified_view(ctx: ViewContext, task: Task) -> dict[str, Any]:
    """`GET /v1/video/query`: the superset shape; fields that do not apply are null, never missing."""
    detail: dict[str, Any] = {
        "input": task.input,
        "channel": task.channel,
        "attempts": task.attempts,
        "submissions": task.submissions_made,
    }
    channel = ctx.catalog.by_name(task.channel) if task.channel else None
    if channel is not None and channel.traits.builtin_engine:
        detail["engine"] = channel.kind
    if task.last_error is not None and not task.status.is_terminal:
        # Why a task is still going round (retries, a busy channel, an unknown outcome): never blind.
        detail["last_error"] = {"code": task.last_error.code, "message": task.last_error.message}
    if task.media_deleted_at is not None:
        detail["media_deleted_at"] = _seconds(task.media_deleted_at)
        detail["media_deleted_reason"] = task.media_deleted_reason
    if task.remixed_from:
        detail["remixed_from"] = unified_id(task.model, task.remixed_from)
    if (video := (task.upstream_state or {}).get("video")) is not None:
        detail["video"] = video  # what a copied result really is: {width, height, seconds} (worker.steps)
    if warnings := (task.upstream_state or {}).get("warnings"):
        detail["warnings"] = warnings  # what the channel noticed, e.g. glyphs its card font lacked
    if (seed := (task.upstream_state or {}).get("seed")) is not None:
        detail["seed"] = seed  # the diffusion engine's seed: the same seed and inputs make the same video
    return {
        "id": unified_id(task.model, task.id),
        "object": "video",
        "model": task.model,
        "status": task.status.value,
        "progress": task.progress,
        "created_at": _seconds(task.created_at),
        "status_update_time": task.status_update_time,
        "completed_at": _seconds(task.completed_at),
        "size": task.size_label,
        "orientation": task.orientation,
        "duration": task.seconds,
        "width": task.width,
        "height": task.height,
        "video_url": signed_url(ctx, task, "video"),
        "thumbnail_url": signed_url(ctx, task, "thumbnail"),
        "spritesheet_url": signed_url(ctx, task, "spritesheet"),
        "enhanced_prompt": "",
        "watermarked": task.watermarked,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "fail_reason": task.error.message if task.error else None,
        "detail": detail,
    }


_OPENAI_STATUS = {
    TaskStatus.PENDING: "queued",
    TaskStatus.PROCESSING: "in_progress",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "failed",  # the SDK knows only four statuses; the code says `cancelled`
}


def openai_view(ctx: ViewContext, task: Task | TaskSummary) -> dict[str, Any]:
    """The `Video` object of OpenAI's API (what `client.videos.*` parses); a list's summaries carry
    every field it needs."""
    error = {"code": task.error.code, "message": task.error.message} if task.error else None
    return {
        "id": openai_id(task.id),
        "object": "video",
        "model": task.model,
        "status": _OPENAI_STATUS[task.status],
        "progress": task.progress,
        "created_at": _seconds(task.created_at),
        "completed_at": _seconds(task.completed_at),
        "expires_at": media_expires_at(ctx, task),
        "prompt": task.prompt,
        "seconds": str(task.seconds),
        "size": f"{task.width}x{task.height}",
        "remixed_from_video_id": openai_id(task.remixed_from) if task.remixed_from else None,
        "error": error,
    }


def webhook_event(ctx: ViewContext, task: Task) -> dict[str, Any]:
    """The body POSTed to a task's callback_url when it ends, in the dialect it was created with."""
    data = openai_view(ctx, task) if task.dialect == "openai" else unified_view(ctx, task)
    return {
        "id": f"evt_{task.id}",
        "object": "event",
        "type": f"video.{data['status']}",
        "created_at": ctx.clock.now_ms() // 1000,
        "data": data,
    }
