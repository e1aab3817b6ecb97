"""How `vidgate serve` stops: the first SIGINT or SIGTERM gracefully, a second one at once.

uvicorn's own handling stops gracefully on the first signal: it waits for open connections, then runs
the app's shutdown, where the embedded worker gives its running steps `shutdown_grace_seconds`. A second
SIGINT only sets uvicorn's `force_exit`, which stops the wait for connections but skips the app's
shutdown altogether (the worker's leases would be left to expire) and does nothing for a shutdown
already under way; a second SIGTERM does nothing at all. Here either second signal tells the app to
stop its worker now (`app.state.stop_worker_now`: running steps are stopped, render processes killed,
leases released) and the app's shutdown always runs, which is quick once the worker is stopping.
What the first stop waits for is said on stderr: uvicorn names open connections, the worker its running
steps (`worker.runner`), each with the hint that a second Ctrl-C stops at once. (Nothing is logged from
the signal handler itself: a write to stderr interrupted there by another would fail.)

`serve --workers N` (api.supervisor) runs this same server in each child, on the socket its parent bound,
and forwards each signal it gets to every child: so the two stages hold there too.

Once uvicorn has stopped for a SIGINT, further SIGINTs do nothing: uvicorn raises each signal it handled
again after it put the previous handler back, and one that came during a forced stop may still be
waiting in the event loop's wake-up pipe when the loop closes. With Python's handler (or asyncio's),
either one raised KeyboardInterrupt inside the loop's close; the close then failed ("Cannot close a
running event loop"), and the process exited 1 after a clean stop.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE


class TwoStageServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, app: FastAPI, on_started: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.app = app
        self.on_started = on_started  # called once the app has started and the server listens

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        again = self.should_exit
        super().handle_exit(sig, frame)
        if again:
            self.force_exit = True
            stop_now = getattr(self.app.state, "stop_worker_now", None)  # absent without a worker
            if stop_now is not None:
                stop_now()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Everything built at start (the app, its routes and models, SQLAlchemy's and pydantic's
            # caches: hundreds of thousands of objects that live as long as the process) leaves the
            # cyclic garbage collector's view. Otherwise each full collection walks them all, a pause
            # of about 100 ms that showed as the p99 of every route (docs/performance.md).
            gc.freeze()
            if self.on_started is not None:
                self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        lifespan_done = getattr(self.lifespan, "shutdown_event", None)
        if self.force_exit and lifespan_done is not None and not lifespan_done.is_set():
            await self.lifespan.shutdown()  # uvicorn skipped it: it is what releases the worker's leases


def run_uvicorn(
    app: FastAPI,
    *,
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """`uvicorn.run(app, **options)` for one process, with the stop described above; on `sockets`
    already bound (by a supervisor) when given. Exits with uvicorn's startup-failure status if the app
    or the server did not start."""
    server = TwoStageServer(uvicorn.Config(app, **options), app, on_started)
    if threading.current_thread() is threading.main_thread():  # signals are handled there only
        signal.signal(signal.SIGINT, _interrupt_until_stopping(server))
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before uvicorn handles signals
        server.run(sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _interrupt_until_stopping(server: uvicorn.Server) -> Callable[[int, FrameType | None], None]:
    """The SIGINT handler outside uvicorn's own (before it starts, and after it has stopped): a
    KeyboardInterrupt, as Python's, until the server is stopping; then nothing (see the module's
    docstring). Not Python's own handler, so asyncio's runner does not put its own in place either."""

    def on_sigint(sig: int, frame: FrameType | None) -> None:
        if not server.should_exit:
            raise KeyboardInterrupt

    return on_sigint
