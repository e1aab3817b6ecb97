"""How `vidgate serve` runs uvicorn: timeouts and a connection limit, so idle or slow clients cannot hold
the server's sockets forever.

uvicorn itself closes a kept-alive connection that stays idle after an answer, but it has no deadline for
a request's head: a connection that never sends a byte, or sends its headers a byte at a time
(slowloris), stays open for good, and enough of them exhaust the file descriptors. `HeadDeadlineProtocol`
adds that deadline.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vidgate.config import Settings


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request line and headers have not all
    arrived within `head_timeout` seconds of the connection opening or of the previous answer.

    The deadline is for the whole head, not per read, so trickling bytes does not extend it. A request
    body's deadlines are the application's (`api.body_deadline`: they answer 408 in the API's envelope,
    under any ASGI server); uvicorn's keep-alive timer closes idle connections between requests."""

    _head_deadline: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, head_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request already read its head; otherwise the next one starts its clock now.
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_deadline_passed)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for `uvicorn.Config` (all but where to listen) that `vidgate serve` uses,
    in one process or in each of `--workers N`: bounds on what clients can hold, no uvicorn logging."""
    return {
        # A partial of a module-level class, not a class made here: it pickles, and uvicorn only calls it.
        "http": functools.partial(HeadDeadlineProtocol, head_timeout=settings.http_header_timeout_seconds),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        # uvicorn answers 503 once the open connections, this one included, reach its limit: +1 so
        # that `http_max_connections` connections are served.
        "limit_concurrency": settings.http_max_connections + 1,
        "log_config": None,
        "access_log": False,  # access lines would carry signed-link signatures; see the request log instead
        "timeout_graceful_shutdown": int(settings.worker.shutdown_grace_seconds) + 5,
    }
