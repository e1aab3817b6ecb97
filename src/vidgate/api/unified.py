"""The relay 'unified video format': POST /v1/video/create and GET /v1/video/query."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from vidgate.api.actions import check_urls_fetchable, create_task
from vidgate.api.deps import authenticate, get_runtime, runtime_of
from vidgate.api.inline_images import check_inline_images
from vidgate.api.json_body import read_json_object
from vidgate.api.json_response import json_response
from vidgate.api.observe import note_task
from vidgate.api.schemas import (
    ERROR_RESPONSES,
    UnifiedCreateBody,
    UnifiedCreateResponse,
    UnifiedQueryResponse,
    json_body_schema,
)
from vidgate.domain.requests import parse_unified
from vidgate.errors import NotFound
from vidgate.ids import parse_task_id, unified_id
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey
from vidgate.views import unified_view

router = APIRouter(tags=["unified"])


@router.post(
    "/v1/video/create",
    response_model=UnifiedCreateResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body_schema(UnifiedCreateBody),
    summary="Create a video task",
)
async def create_video(
    request: Request, key: ApiKey = Depends(authenticate), runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    body = await read_json_object(request)
    spec = parse_unified(body, runtime.catalog, max_prompt_chars=runtime.settings.max_prompt_chars)
    check_inline_images(runtime, spec)
    await check_urls_fetchable(runtime, spec)
    task = await create_task(
        runtime,
        spec,
        body=body,
        key=key,
        dialect="unified",
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return {
        "id": unified_id(task.model, task.id),
        "status": task.status.value,
        "status_update_time": task.status_update_time,
    }


@router.get(
    "/v1/video/query", response_model=UnifiedQueryResponse, responses=ERROR_RESPONSES, summary="Query a task"
)
async def query_video(
    request: Request,
    id: str = Query(description="The id from create, in any accepted form"),
    key: ApiKey = Depends(authenticate),
) -> Response:
    runtime = runtime_of(request)  # not a dependency: see openai.retrieve_video
    ulid = parse_task_id(id)
    task = await runtime.tasks.get(ulid, owner=key.id) if ulid else None
    if task is None:
        raise NotFound(f"No task with id '{id}'.", param="id")
    note_task(task.id)
    return json_response(unified_view(runtime, task))
