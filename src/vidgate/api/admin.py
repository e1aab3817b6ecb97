"""The admin API under `/v1/admin` (docs/admin-api.md): keys (and their webhook secrets), every key's
tasks, usage, channel status.

Admin keys only, checked against the database on every request (not the key cache). Any other
caller (no key, an unknown, revoked or ordinary key) gets exactly the 404 an unknown route gets, on
every path and method here, so the routes' existence is never confirmed.
The routes are thin: parse and check the input (400 naming `param`), call the store, render. Changes
to keys go through `KeyStore` (it keeps its key cache right: a revoked key stops working at once in
this process); the reads across keys are `vidgate.store.admin_queries`.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.api import admin_schemas as s
from vidgate.api.deps import admin_key_of, runtime_of
from vidgate.api.json_body import read_json_object
from vidgate.api.json_response import json_response
from vidgate.api.schemas import ERROR_RESPONSES, json_body_schema
from vidgate.api.webhook_secret import WebhookSecretObject, webhook_secret_answer
from vidgate.domain.circuit import ChannelHealth
from vidgate.domain.tasks import TaskStatus
from vidgate.errors import InvalidRequest, NotFound
from vidgate.ids import openai_id, parse_task_id, unified_id
from vidgate.runtime import Runtime
from vidgate.store import admin_queries
from vidgate.store.attempts import Attempt
from vidgate.store.keys import LIMIT_FIELDS, ApiKey
from vidgate.store.ledger import LedgerEntry

router = APIRouter(tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (400, 401, 404, 409, 413, 429, 500)
}
_ERRORS[404] = {**ERROR_RESPONSES[404], "description": "No such key; or the caller's key is not an admin's."}
_KEY_ID = re.compile(r"[0-9a-z]{1,32}")
_MAX_TIME_S = 10**11  # Unix seconds; far beyond any real time, and times 1000 still fits a BIGINT
RECENT_WINDOW_S = 3600
_INTERVALS = {"none": None, "day": 86_400_000, "hour": 3_600_000}
_DEFAULT_USAGE_RANGE_S = 30 * 86_400

Model = TypeVar("Model", bound=BaseModel)


async def require_admin(request: Request) -> ApiKey:
    """The caller's key when it is an active admin's, read from the database on this request (never
    the key cache: a revocation anywhere is seen by the next admin request everywhere). Anyone else
    (no key, an unknown, revoked or ordinary key) gets the answer of a route that does not exist (the
    same exception Starlette raises for one, through the same handler), and counts against no rate
    limit (an unknown route counts against none either)."""
    key = await admin_key_of(request)
    if key is None:
        raise StarletteHTTPException(status_code=404)
    await runtime_of(request).rate_limiter.check(key, create=False)
    return key


# Rendering ---------------------------------------------------------------------------------------------


def _s(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "hint": key.key_hint,
        "admin": key.is_admin,
        "created_at": _s(key.created_at),
        "revoked_at": _s(key.revoked_at),
        "balance": key.balance,
        "held": key.held,
        "available": key.available,
        "requests_per_minute": key.requests_per_minute,
        "creates_per_minute": key.creates_per_minute,
        "max_active_tasks": key.max_active_tasks,
        "allowed_models": None if key.allowed_models is None else list(key.allowed_models),
    }


def ledger_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "object": "ledger_entry",
        "id": entry.id,
        "key_id": entry.key_id,
        "task_id": entry.task_id,
        "attempt": entry.attempt,
        "kind": entry.kind,
        "amount": entry.amount,
        "created_at": _s(entry.created_at),
        "reference": entry.reference,
        "note": entry.note,
    }


def task_view(task: admin_queries.AdminTask) -> dict[str, Any]:
    return {
        "object": "admin.task",
        "id": task.id,
        # The id its own dialect shows (views.py), so an admin can match what the client reported.
        "video_id": openai_id(task.id) if task.dialect == "openai" else unified_id(task.model, task.id),
        "key_id": task.key_id,
        "key_name": task.key_name,
        "dialect": task.dialect,
        "model": task.model,
        "status": task.status.value,
        "progress": task.progress,
        "channel": task.channel,
        "size": f"{task.width}x{task.height}",
        "seconds": task.seconds,
        "created_at": _s(task.created_at),
        "completed_at": _s(task.completed_at),
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "hold_amount": task.hold_amount,
        "charge_amount": task.charge_amount,
        "deleted": task.deleted,
    }


def _page(data: list[dict[str, Any]], has_more: bool) -> Response:
    return json_response(
        {"object": "list", "data": data, "has_more": has_more, "last_id": data[-1]["id"] if data else None}
    )


# Input -------------------------------------------------------------------------------------------------


async def _body(request: Request, model: type[Model]) -> Model:
    """The JSON body as `model`, read only after the key was checked (so a non-admin never learns
    anything from a 400), else a 400 naming the first field at fault."""
    raw = await read_json_object(request)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = [str(p) for p in first["loc"]]
        param = loc[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:]) if loc else None
        if first["type"] == "missing":
            raise InvalidRequest(
                f"'{param}' is required.", param=param, code="missing_required_parameter"
            ) from None
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            raise InvalidRequest(f"Unknown field '{param}'. Known fields: {known}.", param=param) from None
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"Invalid '{param}': {message}.", param=param) from None


def _key_id(raw: str) -> str:
    return raw.strip().lower()


async def _existing_key(runtime: Runtime, key_id: str) -> ApiKey:
    key = await runtime.keys.get(_key_id(key_id)) if _KEY_ID.fullmatch(_key_id(key_id)) else None
    if key is None:
        raise NotFound(f"No API key with id '{key_id}'.", param="key_id")
    return key


def _time_ms(value: int | None) -> int | None:
    return None if value is None else value * 1000


def _seconds_query(description: str) -> Any:
    return Query(default=None, ge=0, le=_MAX_TIME_S, description=description)


def _json_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """The route's body in the OpenAPI document, with the example Swagger UI's "Try it out" starts
    from (otherwise it would make one up from the schema: a key with balance 0 and a model "string")."""
    extra = json_body_schema(model)
    extra["requestBody"]["content"]["application/json"]["example"] = example
    return extra


_LIMIT = Query(default=20, ge=1, le=100, description="Items per page, 1 to 100.")


# Keys --------------------------------------------------------------------------------------------------


@router.post(
    "/v1/admin/keys",
    status_code=201,
    response_model=s.CreatedKeyObject,
    responses=_ERRORS,
    openapi_extra=_json_body(s.KeyCreateBody, {"name": "acme-prod", "balance": 25_000_000}),
    summary="Create an API key",
)
async def create_key(request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """The new key, with the key itself in `key`: shown this once (only its hash is stored)."""
    body = await _body(request, s.KeyCreateBody)
    runtime = runtime_of(request)
    record, plaintext = await runtime.keys.create(
        name=body.name,
        is_admin=body.admin,
        now=runtime.clock.now_ms(),
        limits={name: getattr(body, name) for name in LIMIT_FIELDS},
        balance=body.balance,
        allowed_models=body.allowed_models,
    )
    # no-store: the answer carries a secret, which no cache on the way should keep.
    return json_response(
        {**key_view(record), "key": plaintext}, status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get("/v1/admin/keys", response_model=s.KeyList, responses=_ERRORS, summary="List API keys")
async def list_keys(
    request: Request,
    include_revoked: bool = Query(default=True, description="false: active keys only."),
    after: str | None = Query(default=None, description="The last id of the previous page."),
    limit: int = _LIMIT,
    _: ApiKey = Depends(require_admin),
) -> Response:
    """Oldest first."""
    if after is not None and not _KEY_ID.fullmatch(_key_id(after)):
        raise InvalidRequest(f"'after' is not an API key id: '{after}'.", param="after")
    keys, has_more = await admin_queries.keys_page(
        runtime_of(request).engine,
        include_revoked=include_revoked,
        after=None if after is None else _key_id(after),
        limit=limit,
    )
    return _page([key_view(k) for k in keys], has_more)


@router.get("/v1/admin/keys/{key_id}", response_model=s.KeyObject, responses=_ERRORS, summary="Get a key")
async def get_key(key_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    return json_response(key_view(await _existing_key(runtime_of(request), key_id)))


@router.patch(
    "/v1/admin/keys/{key_id}",
    response_model=s.KeyObject,
    responses=_ERRORS,
    openapi_extra=_json_body(s.KeyLimitsBody, {"max_active_tasks": 8}),
    summary="Change a key's limits and models",
)
async def update_key(key_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """Only the fields sent change; `null` sets a limit back to the gateway's default, or lets the key
    use every model. API processes see the change within `VIDGATE_KEY_CACHE_SECONDS`."""
    runtime = runtime_of(request)
    key = await _existing_key(runtime, key_id)
    body = await _body(request, s.KeyLimitsBody)
    sent = body.model_fields_set
    limits = {name: getattr(body, name) for name in LIMIT_FIELDS if name in sent}
    changed: ApiKey | None = key
    if limits:
        changed = await runtime.keys.set_limits(key.id, limits)
    if "allowed_models" in sent:
        changed = await runtime.keys.set_allowed_models(key.id, body.allowed_models)
    if changed is None:
        raise NotFound(f"No API key with id '{key_id}'.", param="key_id")
    return json_response(key_view(changed))


@router.post(
    "/v1/admin/keys/{key_id}/revoke", response_model=s.KeyObject, responses=_ERRORS, summary="Revoke a key"
)
async def revoke_key(key_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """From now on the key gets 401 (at once in this process; in other API processes within
    `VIDGATE_KEY_CACHE_SECONDS`), and the admin API refuses it at once in every process. Revoking
    a revoked key returns it as it is."""
    runtime = runtime_of(request)
    key = await _existing_key(runtime, key_id)
    await runtime.keys.revoke(key.id, now=runtime.clock.now_ms())
    return json_response(key_view(await _existing_key(runtime, key.id)))


@router.post(
    "/v1/admin/keys/{key_id}/topup",
    response_model=s.KeyObject,
    responses=_ERRORS,
    openapi_extra=_json_body(s.TopupBody, {"amount": 10_000_000, "note": "invoice 42"}),
    summary="Add credits to a key's balance",
)
async def topup_key(key_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """A `topup` ledger entry and the balance it adds to. With `Idempotency-Key`, a retry of the same
    top-up changes nothing more (the same key with another amount is a 409); an unlimited key is a
    409 `key_unlimited`."""
    runtime = runtime_of(request)
    key = await _existing_key(runtime, key_id)
    body = await _body(request, s.TopupBody)
    reference = request.headers.get("idempotency-key")
    if reference is not None and not 1 <= len(reference) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters long.", param="Idempotency-Key")
    changed = await runtime.keys.topup(
        key.id, body.amount, now=runtime.clock.now_ms(), reference=reference, note=body.note
    )
    if changed is None:
        raise NotFound(f"No API key with id '{key_id}'.", param="key_id")
    return json_response(key_view(changed))


@router.get(
    "/v1/admin/keys/{key_id}/ledger",
    response_model=s.LedgerList,
    responses=_ERRORS,
    summary="A key's ledger entries",
)
async def key_ledger(
    key_id: str,
    request: Request,
    after: int | None = Query(default=None, ge=0, description="The last id of the previous page."),
    limit: int = _LIMIT,
    _: ApiKey = Depends(require_admin),
) -> Response:
    """Every movement of the key's credits, oldest first: holds, captures and releases of its tasks,
    top-ups and adjustments."""
    runtime = runtime_of(request)
    key = await _existing_key(runtime, key_id)
    entries, has_more = await runtime.keys.ledger(key.id, after=after, limit=limit)
    return _page([ledger_view(e) for e in entries], has_more)


@router.get(
    "/v1/admin/keys/{key_id}/webhook_secret",
    response_model=WebhookSecretObject,
    responses=_ERRORS,
    summary="The secret that signs a key's webhooks",
)
async def key_webhook_secret(key_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """What the key itself reads at `GET /v1/webhook_secret`: hand it to the key's webhook receiver."""
    runtime = runtime_of(request)
    return webhook_secret_answer(runtime, await _existing_key(runtime, key_id))


@router.post(
    "/v1/admin/keys/{key_id}/webhook_secret/rotate",
    response_model=WebhookSecretObject,
    responses=_ERRORS,
    summary="Replace the secret that signs a key's webhooks",
)
async def rotate_key_webhook_secret(
    key_id: str, request: Request, _: ApiKey = Depends(require_admin)
) -> Response:
    """A new secret signs the key's webhooks from the next delivery on (e.g. after the old one leaked);
    the old one signs nothing more. Answers the new secret."""
    runtime = runtime_of(request)
    key = await _existing_key(runtime, key_id)
    rotated = await runtime.keys.rotate_webhook_secret(key.id)
    if rotated is None:
        raise NotFound(f"No API key with id '{key_id}'.", param="key_id")
    return webhook_secret_answer(runtime, rotated)


# Tasks and usage ---------------------------------------------------------------------------------------


@router.get("/v1/admin/tasks", response_model=s.AdminTaskList, responses=_ERRORS, summary="Every key's tasks")
async def list_tasks(
    request: Request,
    status: s.TaskStatusName | None = Query(default=None),
    channel: str | None = Query(default=None, max_length=64),
    model: str | None = Query(default=None, max_length=100),
    key_id: str | None = Query(default=None, max_length=32),
    created_after: int | None = _seconds_query("Created at or after this Unix time (s)."),
    created_before: int | None = _seconds_query("Created before this Unix time (s)."),
    after: str | None = Query(default=None, description="The last id of the previous page."),
    limit: int = _LIMIT,
    _: ApiKey = Depends(require_admin),
) -> Response:
    """Newest first, deleted tasks included (`deleted: true`)."""
    if created_after is not None and created_before is not None and created_after > created_before:
        raise InvalidRequest("'created_after' is later than 'created_before'.", param="created_after")
    cursor = None
    if after is not None and (cursor := parse_task_id(after)) is None:
        raise InvalidRequest(f"'after' is not a task id: '{after}'.", param="after")
    filters = admin_queries.TaskFilter(
        status=None if status is None else TaskStatus(status),
        channel=channel,
        model=model,
        key_id=None if key_id is None else _key_id(key_id),
        created_from=_time_ms(created_after),
        created_before=_time_ms(created_before),
    )
    found, has_more = await admin_queries.tasks_page(
        runtime_of(request).engine, filters, after=cursor, limit=limit
    )
    return _page([task_view(t) for t in found], has_more)


@router.get(
    "/v1/admin/tasks/{task_id}",
    response_model=s.AdminTaskDetail,
    responses=_ERRORS,
    summary="One task, with every upstream create it sent",
)
async def get_task(task_id: str, request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """The task as the list shows it, plus `attempts`: every create sent to a channel for it, in order
    (docs/channels.md "Paying once"), so an operator can see each upstream job it may have caused."""
    runtime = runtime_of(request)
    ulid = parse_task_id(task_id)
    task = None if ulid is None else await admin_queries.task_by_id(runtime.engine, ulid)
    if task is None:
        raise NotFound(f"No task with id '{task_id}'.", param="task_id")
    attempts = await runtime.attempts.for_task(task.id)
    return json_response({**task_view(task), "attempts": [attempt_view(a) for a in attempts]})


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "channel": attempt.channel,
        "idempotency_key": attempt.idempotency_key,
        "sent_at": _s(attempt.sent_at),
        "outcome": attempt.outcome.value,
        "upstream_id": attempt.upstream_id,
        "error": {"code": attempt.error_code, "message": attempt.error_message or ""}
        if attempt.error_code
        else None,
        "settled_at": _s(attempt.settled_at),
    }


@router.get(
    "/v1/admin/usage", response_model=s.UsageReport, responses=_ERRORS, summary="Usage per key and model"
)
async def usage(
    request: Request,
    start: int | None = _seconds_query("From this Unix time (s), inclusive; default: 30 days before end."),
    end: int | None = _seconds_query("To this Unix time (s), exclusive; default: now (the next second)."),
    key_id: str | None = Query(default=None, max_length=32),
    model: str | None = Query(default=None, max_length=100),
    interval: Literal["none", "day", "hour"] = Query(default="none", description="Buckets (UTC)."),
    _: ApiKey = Depends(require_admin),
) -> Response:
    """Tasks created in [start, end), counted per key and model (and per UTC day or hour of their
    creation with `interval`), with the credits their ledger entries charged and refunded."""
    runtime = runtime_of(request)
    if end is None:
        end = runtime.clock.now_ms() // 1000 + 1  # the end of this second: a task made now is in range
    if start is None:
        start = max(0, end - _DEFAULT_USAGE_RANGE_S)
    if start >= end:
        raise InvalidRequest(f"'start' ({start}) must be before 'end' ({end}).", param="start")
    rows = await admin_queries.usage(
        runtime.engine,
        start=start * 1000,
        end=end * 1000,
        key_id=None if key_id is None else _key_id(key_id),
        model=model,
        bucket_ms=_INTERVALS[interval],
    )
    data = [
        {
            "key_id": r.key_id,
            "key_name": r.key_name,
            "model": r.model,
            "period_start": _s(r.period_start),
            "tasks": r.tasks,
            "completed": r.completed,
            "failed": r.failed,
            "cancelled": r.cancelled,
            "seconds_completed": r.seconds_completed,
            "credits_charged": r.credits_charged,
            "credits_refunded": r.credits_refunded,
        }
        for r in rows
    ]
    return json_response({"object": "list", "start": start, "end": end, "interval": interval, "data": data})


# Channels ----------------------------------------------------------------------------------------------


@router.get("/v1/admin/channels", response_model=s.ChannelList, responses=_ERRORS, summary="Channel status")
async def channels(request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    """Each configured channel: its settings, its circuit breaker as every worker shares it, the
    tasks it holds now, and how its tasks ended over the last hour."""
    runtime = runtime_of(request)
    health = await runtime.health.snapshot(fresh=True)
    in_flight = await runtime.tasks.active_per_channel()
    now = runtime.clock.now_ms()
    recent = await admin_queries.recent_outcomes(
        runtime.engine,
        since=now - RECENT_WINDOW_S * 1000,
        # A task ends about its deadline after its creation at the latest; an hour more for the
        # step that was running then (a render is not interrupted).
        max_task_age_ms=round((runtime.settings.worker.task_deadline_seconds + 2 * RECENT_WINDOW_S) * 1000),
    )
    data = []
    for channel in runtime.catalog.channels:
        circuit = health.get(channel.name, ChannelHealth())
        outcomes = recent.get(channel.name, admin_queries.RecentOutcomes())
        ended = outcomes.completed + outcomes.failed
        data.append(
            {
                "name": channel.name,
                "kind": channel.kind,
                "enabled": channel.enabled,
                "models": sorted(channel.models),
                "priority": channel.priority,
                "max_concurrent": channel.max_concurrent,
                "circuit": {
                    "state": circuit.state.value,
                    "failures": circuit.failures,
                    "open_until": _s(circuit.open_until),
                    "last_error": circuit.last_error,
                },
                "in_flight": in_flight.get(channel.name, 0),
                "recent": {
                    "window_seconds": RECENT_WINDOW_S,
                    "completed": outcomes.completed,
                    "failed": outcomes.failed,
                    "error_rate": round(outcomes.failed / ended, 4) if ended else None,
                },
                "pricing": channel.pricing.describe(),
                "capabilities": {m: channel.capabilities_of(m).describe() for m in sorted(channel.models)},
            }
        )
    return json_response({"object": "list", "data": data})


# Last: every other path and method under /v1/admin. For a non-admin key it must answer what an unknown
# route answers; without it, a known path with another method would answer 405 and confirm the path.
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/v1/admin/{rest:path}", methods=_ANY_METHOD, include_in_schema=False)
async def no_such_admin_route(request: Request, _: ApiKey = Depends(require_admin)) -> Response:
    path = request.scope["path"]
    allowed = sorted(
        {
            method
            for route in router.routes
            if isinstance(route, APIRoute)
            and route.path_regex.fullmatch(path)
            and "{rest:path}" not in route.path
            for method in route.methods or ()
        }
    )
    if allowed:  # what Starlette answers for a route that exists, for an admin only
        raise StarletteHTTPException(status_code=405, headers={"Allow": ", ".join(allowed)})
    raise StarletteHTTPException(status_code=404)
