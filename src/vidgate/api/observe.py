"""One pure-ASGI middleware on every request: its request id, its metrics, and its access log line.

- Request id: the client's `X-Request-Id` when it is a plain token (`[A-Za-z0-9._-]{1,64}`), else a new
  ULID. It is answered in `x-request-id`, bound into structlog's context for every line logged while
  the request runs, and saved on a task it creates (`tasks.request_id`), so the worker's lines about
  that task carry it too.
- Metrics: `vidgate_http_requests_total` and `vidgate_http_request_duration_seconds`, labelled by the
  matched route's template (`/v1/videos/{video_id}`), never the raw path: ids would make a new series
  per task. A request no route matched is `unmatched`.
- Access line: method, route, status, milliseconds, the caller's key id and the task's id (never the
  key, and never the query string: signed links carry their signature there).

Routes record the task they served with `note_task(ulid)`; the line reads it from the request's state.
This runs on every request, so it does no more than that: no BaseHTTPMiddleware (a task per request),
no Request object, one header scan.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate import metrics
from vidgate.ids import new_ulid

log = structlog.get_logger("vidgate.access")

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Methods as labels: anything else is "other", so a client inventing methods cannot add series.
_METHODS = {m: m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
# The running request's state dict (the same one `request.state` writes to), for `note_task`: the
# helpers that resolve a task have no Request to hand.
_STATE: ContextVar[dict[str, Any] | None] = ContextVar("vidgate_request_state", default=None)


def note_task(ulid: str) -> None:
    """Name the task this request is about in its access line (a no-op outside a request)."""
    state = _STATE.get()
    if state is not None:
        state["task_id"] = ulid


def current_request_id() -> str | None:
    """The running request's id (None outside a request)."""
    state = _STATE.get()
    return None if state is None else state.get("request_id")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return new_ulid()


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"])
        echoed = (REQUEST_ID_HEADER, request_id.encode())
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500  # if the app raises before answering, that is what the client gets

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        state_token = _STATE.set(state)
        log_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = _METHODS.get(scope["method"], "other")
            metrics.observe_request(route, method, status, elapsed)
            log.info(
                "request",
                method=method,
                route=route,
                # A path no route knows is worth seeing; a known route's path adds only ids.
                **({"path": scope["path"]} if route == "unmatched" else {}),
                status=status,
                ms=round(elapsed * 1000, 1),
                key_id=state.get("api_key_id"),
                task_id=state.get("task_id"),
            )
            structlog.contextvars.reset_contextvars(**log_tokens)
            _STATE.reset(state_token)
