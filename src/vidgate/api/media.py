"""Signed media links: GET/HEAD /files/{task}/{video.mp4|thumbnail.webp|spritesheet.jpg}?exp=&sig=.

The HMAC is checked first, always. Then the bytes are streamed through the gateway (Range works), or,
with `media_delivery=redirect` on S3 storage, the answer is a 302 to a short-lived presigned URL.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vidgate import signing
from vidgate.api.deps import get_runtime
from vidgate.api.errors import error_response
from vidgate.api.ranges import blob_response
from vidgate.domain.tasks import Task
from vidgate.errors import NotFound
from vidgate.runtime import Runtime
from vidgate.store.blobs import MAX_PRESIGN_SECONDS, MEDIA_FILES, BlobNotFound
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
    try:
        return await blob_response(
            runtime.blobs,
            key,
            media_type=VARIANT_TYPES[variant],
            range_header=request.headers.get("range"),
            head=request.method == "HEAD",
            filename=f"{task.id}-{MEDIA_FILES[variant]}",
        )
    except BlobNotFound:
        raise NotFound(f"The {variant} is no longer stored.", code="media_deleted") from None


def presign_seconds(presign_max_s: int, link_expires_s: int, now_s: int) -> int:
    """How long a presigned URL for a signed link may live: the setting, never past the link's own
    expiry (a redirect must not stretch it), never past SigV4's 7 days; 0 when the link has expired."""
    return max(0, min(presign_max_s, link_expires_s - now_s, MAX_PRESIGN_SECONDS))


async def _redirect(
    runtime: Runtime, task: Task, variant: str, request: Request, ttl_s: int
) -> Response | None:
    """A 302 to a presigned URL of the bucket, or None when the store cannot presign (local files)."""
    key = variant_key(task, variant)
    if key is None:
        return None  # stream_variant says why there is nothing
    method: Literal["GET", "HEAD"] = "HEAD" if request.method == "HEAD" else "GET"
    url = await runtime.blobs.presign(key, method, ttl_s)
    if url is None:
        return None
    # The URL is a bearer credential for its lifetime: no shared cache keeps it, no Referer leaks it.
    headers = {"location": url, "cache-control": "private, no-store", "referrer-policy": "no-referrer"}
    return Response(status_code=302, headers=headers)


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
    if runtime.settings.media_delivery == "redirect":
        ttl_s = presign_seconds(runtime.settings.s3.presign_seconds, exp, now_s)
        if ttl_s < 1:  # verify() already refused an expired link; this guards the arithmetic
            return _forbidden("This link has expired; query the task for a fresh link.")
        redirect = await _redirect(runtime, task, variant, request, ttl_s)
        if redirect is not None:
            return redirect
    return await stream_variant(runtime, task, variant, request)
