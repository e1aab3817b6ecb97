"""Bounded request bodies: refuse by Content-Length up front, count what actually arrives, and read out
the rest of a body before an answer that comes early.

An answer sent while the client is still sending (a 413, a 401 checked before the body is read, a 400
half way through a form) must not be followed by a close with body bytes unread: the kernel then resets
the connection, and a client that writes its whole body before it reads (Node's fetch, so the official
openai npm SDK) gets ECONNRESET instead of the answer, and retries the upload. Nor may the connection be
kept with the body still coming: uvicorn discards the rest for as long as it keeps coming, so an endless
body would hold the connection for good. So the rest is read and discarded first, up to twice the
limit (and within the body deadlines of `api.body_deadline`, which wraps the `receive` used here); a
body that ends within that gets the answer on a clean connection, one that does not is cut off: the
answer goes out with `Connection: close`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.errors import PayloadTooLarge, RequestTimeout

# How much of a body is read and discarded, at most, to get an early answer to the client: a multiple
# of the request's limit, so a client can cost us no more than two requests at the limit would.
DRAIN_FACTOR = 2


class BodySizeLimit:
    """ASGI middleware. Uploads (multipart) get `upload_limit`; everything else `limit`.

    A declared Content-Length over the limit is answered 413 before the app runs (the body is drained
    first, unless it is over the drain bound too). A chunked body is counted as it streams and reading
    stops with PayloadTooLarge at the limit, which the error handlers turn into the same 413.
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
        declared = headers.get("content-length", "")
        # ASCII digits only ("²".isdigit() is true, and int() refuses it).
        has_length = declared.isascii() and declared.isdigit()
        if (has_length and _is_zero(declared)) or (not has_length and "transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body (every poll): nothing to count or drain
            return
        is_upload = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.upload_limit if is_upload else self.limit
        body = _Body(
            receive,
            limit=limit,
            bound=DRAIN_FACTOR * limit,
            declared=declared if has_length else None,
            expects_continue=headers.get("expect", "").lower() == "100-continue",
        )
        send = body.drain_before(send)
        if has_length and _exceeds(declared, limit):
            await _reject(send, limit)
            return
        await self.app(scope, body.receive, send)


class _Body:
    """One request's body as the app reads it: counted against the limit, drained before an answer."""

    def __init__(
        self, receive: Receive, *, limit: int, bound: int, declared: str | None, expects_continue: bool
    ) -> None:
        self._receive = receive
        self.limit = limit
        self.bound = bound
        self.declared = declared
        self.expects_continue = expects_continue
        self.received = 0
        self.asked = False  # the server was asked for the body (so a waiting client was told to send it)
        self.ended = False  # nothing more to read: the body is whole, or the client left

    async def receive(self) -> Message:
        message = await self._next()
        if self.received > self.limit:
            raise PayloadTooLarge(
                f"The request body is larger than {self.limit} bytes.", headers={"Connection": "close"}
            )
        return message

    async def _next(self) -> Message:
        self.asked = True
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.ended = not message.get("more_body", False)
        else:
            self.ended = True  # http.disconnect
        return message

    def drain_before(self, send: Send) -> Send:
        async def send_drained(message: Message) -> None:
            if message["type"] == "http.response.start" and not self.ended and not await self._drain():
                headers = list(message.get("headers", ()))
                if (b"connection", b"close") not in ((k.lower(), v.lower()) for k, v in headers):
                    message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        return send_drained

    async def _drain(self) -> bool:
        """Read and discard the rest of the body; whether it all came (else the connection must close)."""
        if self.expects_continue and not self.asked:
            return False  # the client holds its body back until told to send it: never tell it
        if self.declared is not None and _exceeds(self.declared, self.bound):
            return False  # more than we would ever read: answer at once
        try:
            while not self.ended and self.received <= self.bound:
                await self._next()
        except RequestTimeout:
            return False
        return self.ended and self.received <= self.bound


def _is_zero(digits: str) -> bool:
    return not digits.lstrip("0")


def _exceeds(digits: str, limit: int) -> bool:
    # A number longer than the limit's own is over it without converting (int() refuses past 4300 digits).
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
