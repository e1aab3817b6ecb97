"""One error envelope for both dialects: `{"error": {"message", "type", "param", "code"}}`, for every
error, the unexpected ones included (answered without dropping the client's keep-alive connection)."""

from __future__ import annotations

import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.errors import VidgateError

log = structlog.get_logger("vidgate.api")

_STATUS_CODES = {
    400: "invalid_value",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


_INTERNAL_MESSAGE = "The server had an error while processing your request."
# nginx's status for "the client closed the request before the answer": what the access log and metrics
# record for a client that left mid-body. It never reaches the wire (the server drops an answer to a
# connection that is gone).
CLIENT_CLOSED_REQUEST = 499


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot carry (an unpaired surrogate) spelled as an escape: messages
    echo what clients sent, and one such character would make the error itself unencodable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def envelope(
    message: str, *, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    shown_param = None if param is None else printable(param)
    return {"error": {"message": printable(message), "type": type_, "param": shown_param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        envelope(message, type_=type_, param=param, code=code), status_code=status, headers=headers
    )


def _param_from_loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


async def _vidgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VidgateError)
    if exc.status_code >= 500:
        log.error("request failed", code=exc.code, message=exc.message)
    return error_response(
        exc.status_code,
        exc.message,
        type_=exc.error_type,
        param=exc.param,
        code=exc.code,
        headers=exc.headers,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return error_response(
            400, "The request body is not valid JSON.", type_="invalid_request_error", code="invalid_json"
        )
    param = _param_from_loc(loc)
    message = str(first.get("msg", "Invalid request."))
    return error_response(
        400,
        f"Invalid '{param}': {message}." if param else message,
        type_="invalid_request_error",
        param=param,
        code="invalid_value",
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route."
    return error_response(
        exc.status_code,
        message,
        type_="invalid_request_error",
        code=_STATUS_CODES.get(exc.status_code),
        headers=dict(exc.headers or {}),
    )


async def _client_gone(_: Request, exc: Exception) -> Response:
    # Not an error of ours, and already logged and counted where the disconnect was seen
    # (api.body_deadline): no traceback, no 500.
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Only what escapes the outer middlewares gets here (UnexpectedErrors answers the rest); Starlette
    # re-raises it after this answer, and the server logs that traceback, so it is not logged here.
    return error_response(500, _INTERNAL_MESSAGE, type_="server_error", code="internal_error")


class UnexpectedErrors:
    """ASGI middleware: an exception the handlers did not turn into an answer becomes the contract's
    500, logged once. Starlette's own last-resort handler answers and then re-raises, and a server
    that sees an exception drops the keep-alive connection, failing the client's next request too.

    An exception after the answer has started cannot be turned into a 500: it is re-raised, so the
    server closes the connection and the client sees a truncated response rather than a wrong one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch_start)
        except Exception as exc:
            if started:
                raise
            # Formatted here, not by the log renderer: some render each frame's local variables (where
            # settings and keys live), and the text is made printable (a message may echo a client's).
            log.error(
                "unhandled error",
                method=scope["method"],
                path=printable(scope["path"]),  # the path only: media links carry signatures in the query
                exception=printable("".join(traceback.format_exception(exc))),
            )
            response = error_response(500, _INTERNAL_MESSAGE, type_="server_error", code="internal_error")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VidgateError, _vidgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
    # Innermost of the middlewares (the app adds its own after this), so the access log records the 500.
    app.add_middleware(UnexpectedErrors)
