"""The relay 'unified video format': POST /v1/video/create and GET /v1/video/query."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from vidgate.api.actions import check_urls_fetchable, create_task
from vidgate.api.deps import authenticate, get_runtime
from vidgate.api.schemas import (
    ERROR_RESPONSES,
    UnifiedCreateBody,
    UnifiedCreateResponse,
    UnifiedQueryResponse,
    json_body_schema,
)
from vidgate.domain.requests import parse_unified
from vidgate.errors import InvalidRequest, NotFound, UnsupportedMediaType
from vidgate.ids import parse_task_id, unified_id
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey
from vidgate.views import unified_view

router = APIRouter(tags=["unified"])


async def read_json_object(request: Request) -> dict[str, Any]:
    # Relay clients are sloppy with Content-Type (often none, sometimes text/plain), so any body is
    # tried as JSON; only form encodings, which can never be the JSON this route takes, are a 415.
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        raise UnsupportedMediaType("This route takes a JSON body (Content-Type: application/json).")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


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
    await check_urls_fetchable(runtime, spec)
    task = await create_task(
        runtime,
        spec,
        body=body,
        owner=key.id,
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
    id: str = Query(description="The id from create, in any accepted form"),
    key: ApiKey = Depends(authenticate),
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    ulid = parse_task_id(id)
    task = await runtime.tasks.get(ulid, owner=key.id) if ulid else None
    if task is None:
        raise NotFound(f"No task with id '{id}'.", param="id")
    return unified_view(runtime, task)
