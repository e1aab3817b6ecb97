"""Signed media links: GET/HEAD /files/{task}/{video.mp4|thumbnail.webp|spritesheet.jpg}?exp=&sig=."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vidgate import signing
from vidgate.api.deps import get_runtime
from vidgate.api.errors import error_response
from vidgate.api.ranges import blob_response
from vidgate.domain.tasks import Task
from vidgate.errors import NotFound
from vidgate.runtime import Runtime
from vidgate.store.blobs import MEDIA_FILES
from vidgate.views import VARIANT_TYPES, variant_key

router = APIRouter(tags=["media"])
_FILE_VARIANTS = {name: variant for variant, name in MEDIA_FILES.items()}


def _forbidden(message: str) -> Response:
    return error_response(403, message, type_="invalid_request_error", code="invalid_signature")


async def stream_variant(runtime: Runtime, task: Task, variant: str, request: Request) -> Response:
    """The stored bytes of one variant of a task, with Range support; 404 with a reason when gone."""
    key = variant_key(task, variant)
    if key is None:
        if task.media_deleted_at is not None:
            raise NotFound(f"The {variant} was deleted: {task.media_deleted_reason}.", code="media_deleted")
        raise NotFound(f"This task has no {variant} (status: {task.status.value}).", code="media_not_ready")
    size = await runtime.blobs.size(key)
    if size is None:
        raise NotFound(f"The {variant} is no longer stored.", code="media_deleted")
    return blob_response(
        runtime.blobs,
        key,
        size,
        media_type=VARIANT_TYPES[variant],
        range_header=request.headers.get("range"),
        head=request.method == "HEAD",
        filename=f"{task.id}-{MEDIA_FILES[variant]}",
    )


@router.api_route("/files/{task_id}/{filename}", methods=["GET", "HEAD"], include_in_schema=False)
async def signed_file(
    task_id: str, filename: str, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    variant = _FILE_VARIANTS.get(filename)
    exp = signing.parse_unix_seconds(request.query_params.get("exp", ""))
    sig = request.query_params.get("sig", "")
    if variant is None or exp is None or not sig:
        return _forbidden("This link is not a valid signed media link.")
    now_s = runtime.clock.now_ms() // 1000
    if not signing.verify(runtime.settings.signing_key(), task_id, variant, exp, sig, now_s=now_s):
        return _forbidden("This link's signature is invalid or has expired; query the task for a fresh link.")
    task = await runtime.tasks.get(task_id)
    if task is None:
        raise NotFound("The video was deleted.", code="media_deleted")
    return await stream_variant(runtime, task, variant, request)
