"""Bounded request bodies: refuse by Content-Length up front, and count what actually arrives."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.errors import PayloadTooLarge


class BodySizeLimit:
    """ASGI middleware. Uploads (multipart) get `upload_limit`; everything else `limit`.

    A declared Content-Length over the limit is answered 413 before the body is read. A chunked
    body is counted as it streams and reading stops with PayloadTooLarge at the limit, which the
    error handlers turn into the same 413.
    """

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        is_upload = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.upload_limit if is_upload else self.limit
        declared = headers.get("content-length", "")
        # ASCII digits only ("²".isdigit() is true, and int() refuses it); a number longer than the
        # limit's own is over it without converting, which int() refuses past 4300 digits.
        if declared.isascii() and declared.isdigit() and _exceeds(declared, limit):
            await _reject(send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            return message

        await self.app(scope, counting_receive, send)


def _exceeds(digits: str, limit: int) -> bool:
    significant = digits.lstrip("0")
    return len(significant) > len(str(limit)) or int(significant or "0") > limit


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "message": f"The request body is larger than {limit} bytes.",
                "type": "invalid_request_error",
                "param": None,
                "code": "payload_too_large",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
