"""OpenAI's Videos API (`client.videos.*` of the `openai` SDK) over the same task store.

Ids are shown as `video_<ulid>`; every route also accepts the unified dialect's `sora-2:task_<ulid>`
(and the reverse), so a task made on one dialect is readable on the other.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.datastructures import UploadFile

from vidgate.api.actions import cancel_task, check_urls_fetchable, create_task, delete_task
from vidgate.api.deps import authenticate, get_runtime, runtime_of
from vidgate.api.inline_images import check_inline_images
from vidgate.api.json_body import check_storable, read_json_object
from vidgate.api.json_response import json_response
from vidgate.api.media import stream_variant
from vidgate.api.observe import note_task
from vidgate.api.schemas import ERROR_RESPONSES, OpenAIDeleted, OpenAIVideo, OpenAIVideoList
from vidgate.domain.requests import BLOB_REF_PREFIX, PASSTHROUGH_FIELDS, check_image_ref, parse_openai
from vidgate.domain.routing import RemixSupport
from vidgate.domain.tasks import Task, TaskStatus, WatermarkMode
from vidgate.errors import Conflict, InvalidRequest, NotFound
from vidgate.ids import new_ulid, openai_id, parse_task_id
from vidgate.media.sniff import sniff_image
from vidgate.runtime import Runtime
from vidgate.store.blobs import upload_key
from vidgate.store.keys import ApiKey
from vidgate.views import openai_view

router = APIRouter(tags=["openai"])

# What create_and_poll waits between retrieves when the caller sets no interval (SDK default: 1 s).
POLL_AFTER_MS = {TaskStatus.PENDING: 1000, TaskStatus.PROCESSING: 2000}
# The list's status filter takes vidgate's statuses and OpenAI's names for the two active ones.
ListStatus = Literal["pending", "processing", "completed", "failed", "cancelled", "queued", "in_progress"]
_OPENAI_STATUS_NAMES = {"queued": "pending", "in_progress": "processing"}
_FORM_FIELDS = frozenset(
    {"prompt", "model", "seconds", "size", "watermark", "private", "style", "storyboard", "character_url",
     "character_timestamps", "callback_url", "input_reference[image_url]", "input_reference[file_id]",
     "input_reference", "resolution", "aspect_ratio", "generate_audio", "audio", "last_frame",
     "enhance_prompt", *PASSTHROUGH_FIELDS}
)  # fmt: skip


async def resolve_task(runtime: Runtime, raw_id: str, owner: str) -> Task:
    ulid = parse_task_id(raw_id)
    task = await runtime.tasks.get(ulid, owner=owner) if ulid else None
    if task is None:
        raise NotFound(f"No video found with id '{raw_id}'.", param="video_id")
    note_task(task.id)
    return task


# Create ------------------------------------------------------------------------------------------


async def _read_form(request: Request, runtime: Runtime) -> tuple[dict[str, Any], bytes | None]:
    """The known form fields, and the bytes of an uploaded `input_reference` (checked to be an image)."""
    fields: dict[str, Any] = {}
    upload: bytes | None = None
    # The context closes the spooled upload files however this ends.
    async with request.form(max_files=1, max_fields=32, max_part_size=64 * 1024) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "input_reference":
                    raise InvalidRequest(f"Unexpected file field '{name}'.", param=name)
                if not value.filename and not await value.read(1):
                    continue  # a form's file input left empty (browsers, Swagger UI): no image
                await value.seek(0)
                upload = await _upload_bytes(value, runtime)
            elif name in _FORM_FIELDS and not (name.startswith("input_reference") and value == ""):
                fields[name] = value  # (an empty input_reference field is one left blank: absent)
    check_storable(fields)
    return fields, upload


async def _upload_bytes(upload: UploadFile, runtime: Runtime) -> bytes:
    limit = runtime.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InvalidRequest(f"'input_reference' is larger than {limit} bytes.", param="input_reference")
    if sniff_image(data[:64]) is None:
        raise InvalidRequest(
            "'input_reference' must be an image (PNG, JPEG, WebP, GIF, AVIF, BMP or TIFF).",
            param="input_reference",
            code="invalid_image",
        )
    return data


def _reference_url(fields: dict[str, Any]) -> str | None:
    """`input_reference[image_url]` (multipart), `{"image_url": ...}` or a bare URL string (JSON)."""
    if fields.get("input_reference[file_id]") or (
        isinstance(fields.get("input_reference"), dict) and fields["input_reference"].get("file_id")
    ):
        raise InvalidRequest(
            "input_reference.file_id is not supported here; upload the image or pass image_url.",
            param="input_reference",
        )
    value = fields.get("input_reference[image_url]", fields.get("input_reference"))
    if isinstance(value, dict):
        value = value.get("image_url")
    if value is None:
        return None
    return check_image_ref(value, "input_reference")


@router.post("/v1/videos", response_model=OpenAIVideo, responses=ERROR_RESPONSES, summary="Create a video")
async def create_video(
    request: Request, key: ApiKey = Depends(authenticate), runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Multipart as the SDK sends it (`input_reference` a file or `input_reference[image_url]`), or JSON."""
    content_type = request.headers.get("content-type", "").lower()
    upload_data: bytes | None = None
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        fields, upload_data = await _read_form(request, runtime)
    else:
        fields = await read_json_object(request)
    task_id = new_ulid()
    if upload_data is not None:
        images: tuple[str, ...] = (f"{BLOB_REF_PREFIX}{upload_key(task_id)}",)
    else:
        url = _reference_url(fields)
        images = (url,) if url else ()
    spec = parse_openai(
        fields, runtime.catalog, max_prompt_chars=runtime.settings.max_prompt_chars, images=images
    )
    check_inline_images(runtime, spec, first_param="input_reference", indexed=False)
    await check_urls_fetchable(runtime, spec, first_param="input_reference", indexed=False)
    fingerprint_body = {k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool, dict))}
    if upload_data is not None:
        fingerprint_body["input_reference"] = hashlib.sha256(upload_data).hexdigest()
    task = await create_task(
        runtime,
        spec,
        body=fingerprint_body,
        key=key,
        dialect="openai",
        task_id=task_id,
        idempotency_key=request.headers.get("idempotency-key"),
        upload=upload_data,
    )
    return openai_view(runtime, task)


# Read ----------------------------------------------------------------------------------------------


@router.get(
    "/v1/videos/{video_id}", response_model=OpenAIVideo, responses=ERROR_RESPONSES, summary="Retrieve"
)
async def retrieve_video(video_id: str, request: Request, key: ApiKey = Depends(authenticate)) -> Response:
    # The runtime straight from the request, not `Depends(get_runtime)`: on the routes clients poll,
    # each dependency FastAPI solves is a measurable share of the request (docs/performance.md).
    runtime = runtime_of(request)
    task = await resolve_task(runtime, video_id, key.id)
    headers = (
        {"openai-poll-after-ms": str(POLL_AFTER_MS[task.status])} if task.status in POLL_AFTER_MS else None
    )
    return json_response(openai_view(runtime, task), headers=headers)


@router.get("/v1/videos", response_model=OpenAIVideoList, responses=ERROR_RESPONSES, summary="List videos")
async def list_videos(
    request: Request,
    after: str | None = Query(default=None, description="Id of the last video of the previous page"),
    limit: int = Query(default=20, ge=1, le=100),
    order: Literal["asc", "desc"] = Query(default="desc"),
    status: ListStatus | None = Query(
        default=None,
        description="Only videos in this status (a vidgate extension): vidgate's own `pending`, "
        "`processing`, `completed`, `failed`, `cancelled`, or OpenAI's `queued` and `in_progress`. "
        "`failed` leaves out cancelled videos (which this dialect shows as failed with code `cancelled`).",
    ),
    key: ApiKey = Depends(authenticate),
) -> Response:
    runtime = runtime_of(request)  # not a dependency: see retrieve_video
    cursor = None
    if after is not None:
        cursor = parse_task_id(after)
        if cursor is None:
            raise InvalidRequest(f"'after' is not a video id: '{after}'.", param="after")
    tasks, has_more = await runtime.tasks.list_page(
        owner=key.id,
        after=cursor,
        limit=limit,
        descending=order == "desc",
        status=None if status is None else TaskStatus(_OPENAI_STATUS_NAMES.get(status, status)),
    )
    data = [openai_view(runtime, t) for t in tasks]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


@router.api_route(
    "/v1/videos/{video_id}/content",
    methods=["GET", "HEAD"],
    responses={**ERROR_RESPONSES, 200: {"content": {"video/mp4": {}, "image/webp": {}, "image/jpeg": {}}}},
    response_class=Response,
    summary="Download the video, its thumbnail or its spritesheet",
)
async def download_content(
    video_id: str,
    request: Request,
    variant: Literal["video", "thumbnail", "spritesheet"] = Query(default="video"),
    key: ApiKey = Depends(authenticate),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    task = await resolve_task(runtime, video_id, key.id)
    if task.status is not TaskStatus.COMPLETED:
        raise Conflict(
            f"The video is {task.status.value}; its content exists once it is completed.", code="not_ready"
        )
    return await stream_variant(runtime, task, variant, request)


# Change -----------------------------------------------------------------------------------------------


@router.delete(
    "/v1/videos/{video_id}", response_model=OpenAIDeleted, responses=ERROR_RESPONSES, summary="Delete"
)
async def delete_video(
    video_id: str, key: ApiKey = Depends(authenticate), runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Removes the stored media and the task; an unfinished task is cancelled in the same step."""
    task = await resolve_task(runtime, video_id, key.id)
    if await delete_task(runtime, task.id, owner=key.id) is None:
        raise NotFound(f"No video found with id '{video_id}'.", param="video_id")  # deleted meanwhile
    return {"id": openai_id(task.id), "object": "video.deleted", "deleted": True}


@router.post(
    "/v1/videos/{video_id}/cancel",
    response_model=OpenAIVideo,
    responses=ERROR_RESPONSES,
    summary="Cancel a video",
)
async def cancel_video(
    video_id: str, key: ApiKey = Depends(authenticate), runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Stops an unfinished task (the worker then stops its channel's job) and keeps it readable, unlike
    delete; the answer shows it `failed` with code `cancelled`. A finished task is a 409 `task_finished`."""
    task = await resolve_task(runtime, video_id, key.id)
    cancelled = await cancel_task(runtime, task.id, owner=key.id)
    if cancelled is None:
        raise NotFound(f"No video found with id '{video_id}'.", param="video_id")  # deleted meanwhile
    return openai_view(runtime, cancelled)


@router.post(
    "/v1/videos/{video_id}/remix",
    response_model=OpenAIVideo,
    responses=ERROR_RESPONSES,
    summary="Remix a video",
)
async def remix_video(
    video_id: str,
    request: Request,
    key: ApiKey = Depends(authenticate),
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """A new task from a completed one with a new prompt: a built-in engine re-renders the source's
    images; an upstream that remixes its own jobs gets the source's job id; other channels answer 400."""
    body = await read_json_object(request)
    source = await resolve_task(runtime, video_id, key.id)
    if source.status is not TaskStatus.COMPLETED:
        raise Conflict(
            f"Only a completed video can be remixed; this one is {source.status.value}.", code="not_ready"
        )
    channel = runtime.catalog.by_name(source.channel) if source.channel else None
    remix = channel.traits.remix if channel else RemixSupport.NONE
    if (
        channel is None
        or remix is RemixSupport.NONE
        or (remix is RemixSupport.UPSTREAM and not source.upstream_id)
    ):
        raise InvalidRequest(
            f"The channel that made this video ({source.channel}) cannot remix it.",
            param="video_id",
            code="remix_unsupported",
        )
    upstream = remix is RemixSupport.UPSTREAM
    images = () if upstream else tuple(f"{BLOB_REF_PREFIX}{item['key']}" for item in source.inputs or [])
    fields = {
        "prompt": body.get("prompt"),
        "model": source.model,
        "seconds": source.seconds,
        "size": f"{source.width}x{source.height}",
        "watermark": source.watermark_mode is WatermarkMode.PREFER_CLEAN,
        "private": source.private,
    }
    spec = parse_openai(
        fields, runtime.catalog, max_prompt_chars=runtime.settings.max_prompt_chars, images=images
    )
    task = await create_task(
        runtime,
        spec,
        body={"remix_of": source.id, **body},
        key=key,
        dialect="openai",
        idempotency_key=request.headers.get("idempotency-key"),
        remixed_from=source.id,
        # The upstream's remix works on its own job: the new task can only go where the source is.
        pinned_channel=channel.name if upstream else None,
        remix_upstream_id=source.upstream_id if upstream else None,
    )
    return openai_view(runtime, task)
