"""Responses shared by both dialects: the OpenAI error envelope, auth, and the deliberately broken ones."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "BadRequest",
    "DroppedResponse",
    "TruncatedJSONResponse",
    "bearer_token",
    "check_auth",
    "json_bytes",
    "openai_error",
    "retry_headers",
]


def json_bytes(content: Any) -> bytes:
    """Compact JSON, as APIs send it."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"error": {"message", "type", "param", "code"}}`, the envelope OpenAI and new-api relays use."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def retry_headers(seconds: float) -> dict[str, str]:
    """Retry-After (seconds, fractional kept so tests can be quick) and the `retry-after-ms` the OpenAI SDK
    reads first."""
    text = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
    return {"retry-after": text, "retry-after-ms": str(round(seconds * 1000))}


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def check_auth(request: Request, api_key: str | None) -> JSONResponse | None:
    """None when the request may proceed, else the 401 OpenAI answers a wrong or missing key with."""
    if api_key is None or bearer_token(request) == api_key:
        return None
    return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")


class DroppedResponse(Response):
    """Announce the whole body, send half of it, and return: uvicorn then closes the connection, so the
    client sees an incomplete response (httpx: RemoteProtocolError) although the server did the work."""

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(json_bytes(content), status_code=status_code, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send(
            {"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True}
        )


class TruncatedJSONResponse(Response):
    """A complete HTTP 200 response whose JSON body is cut in half (a proxy or upstream bug)."""

    def __init__(self, content: Any) -> None:
        body = json_bytes(content)
        super().__init__(body[: max(1, len(body) // 2)], status_code=200, media_type="application/json")


class BadRequest(Exception):
    """A 400 in the OpenAI envelope, naming the offending parameter."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        return openai_error(400, self.message, param=self.param, code=self.code)
