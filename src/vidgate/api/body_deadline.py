"""Deadlines for reading a request's body, and a client that leaves mid-body told apart from a failure.

uvicorn bounds a request's head (`api.http_server`) and the idle time between requests, but not its
body: a client that sends its body a byte now and then, or stops half way, would hold the connection
(and the route's coroutine, and a multipart upload's spooled file) for as long as it likes. Here every
`receive` of a body part waits at most the idle deadline, and the whole body must be in within the total
deadline of the first `receive`; past either, `receive` raises RequestTimeout, which the error handlers
answer 408 `body_timeout` with `Connection: close`. The clock starts when the app first asks for the
body, not when the request arrived: until then the server is what is slow (a client blocked by flow
control, waiting on our authentication, is not to blame).

One middleware for every route, so that every way of reading a body (JSON, multipart, the admin API, the
bodies drained before an early answer in `api.limits`) is bounded alike.

Once the body has all arrived the deadlines end: a later `receive` is the app waiting to hear of a
disconnect (a streamed answer does that all along) and must wait as long as the answer takes.

A client that disconnects before its body is whole is logged here ("client disconnected", info, no
traceback) and counted; Starlette then raises ClientDisconnect, which `api.errors` answers with a 499
for the access log and metrics, a status that never goes on the wire (the client is gone).
"""

from __future__ import annotations

import anyio
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate import metrics
from vidgate.errors import RequestTimeout

log = structlog.get_logger("vidgate.api")


class BodyDeadline:
    """ASGI middleware: `idle_seconds` per wait for body bytes, `total_seconds` for the whole body."""

    def __init__(self, app: ASGIApp, *, idle_seconds: float, total_seconds: float) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _PacedBody(receive, idle_seconds=self.idle_seconds, total_seconds=self.total_seconds)
        await self.app(scope, body.receive, send)


class _PacedBody:
    """One request's `receive`, with the deadlines while its body is incomplete."""

    def __init__(self, receive: Receive, *, idle_seconds: float, total_seconds: float) -> None:
        self._receive = receive
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds
        self.deadline: float | None = None  # the total deadline, on the event loop's clock
        self.received = 0
        self.ended = False  # the body is whole, the client left, or a deadline passed
        self.timed_out: RequestTimeout | None = None

    async def receive(self) -> Message:
        if self.timed_out is not None:
            raise self.timed_out  # whoever asks again (an error answer draining) gets the same refusal
        if self.ended:
            return await self._receive()
        now = anyio.current_time()
        if self.deadline is None:
            self.deadline = now + self.total_seconds
        left = self.deadline - now
        idle = self.idle_seconds < left
        message: Message | None = None
        with anyio.move_on_after(self.idle_seconds if idle else left):
            message = await self._receive()
        if message is None:
            raise self._time_out("idle_timeout" if idle else "total_timeout")
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.ended = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.ended = True
            metrics.count_incomplete_body("client_disconnected")
            log.info("client disconnected", received_bytes=self.received)
        return message

    def _time_out(self, reason: str) -> RequestTimeout:
        self.ended = True
        metrics.count_incomplete_body(reason)
        log.info("request body timed out", reason=reason, received_bytes=self.received)
        if reason == "idle_timeout":
            message = f"Nothing of the request body arrived for {self.idle_seconds:g} s; it was abandoned."
        else:
            message = (
                f"The request body did not arrive whole within {self.total_seconds:g} s; it was abandoned."
            )
        # Close: the rest of the body may still come, and would be read as the next request.
        self.timed_out = RequestTimeout(message, headers={"Connection": "close"})
        return self.timed_out
