"""`vidgate worker`'s own GET /metrics, on `worker.metrics_port` (VIDGATE_WORKER__METRICS_PORT).

A worker with no API process beside it (no shared VIDGATE_METRICS_DIR) has no /metrics of its own; this
serves one. It is a tiny HTTP/1.0-style server (one request per connection, then close) rather than
uvicorn, which would take over the worker's SIGINT and SIGTERM handling. It listens on `settings.host`
(loopback by default), and `VIDGATE_METRICS_TOKEN` guards it as it does the API's route.
"""

from __future__ import annotations

import hmac

import anyio
import structlog
from anyio.abc import SocketStream
from anyio.abc import TaskStatus as StartStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from vidgate import metrics
from vidgate.runtime import Runtime
from vidgate.store.queue_stats import QueueStats

log = structlog.get_logger("vidgate.worker")
_MAX_HEAD_BYTES = 8192
_HEAD_TIMEOUT_SECONDS = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


async def serve_worker_metrics(
    runtime: Runtime, port: int, *, task_status: StartStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; reports the bound port (useful with port 0) once listening."""
    stats = QueueStats(runtime.engine, runtime.tasks.queue_clock)
    token = runtime.settings.metrics_token
    listener = await anyio.create_tcp_listener(local_host=runtime.settings.host, local_port=port)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        log.info("worker metrics listening", host=runtime.settings.host, port=bound)
        task_status.started(bound)

        async def handle(stream: SocketStream) -> None:
            async with stream:
                try:
                    await _answer(stream, stats, token)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, TimeoutError):
                    pass  # a client that went away or never finished its request
                except Exception:
                    log.warning("worker metrics request failed", exc_info=True)

        await listener.serve(handle)


async def _answer(stream: SocketStream, stats: QueueStats, token: str | None) -> None:
    buffered = BufferedByteReceiveStream(stream)
    with anyio.fail_after(_HEAD_TIMEOUT_SECONDS):
        head = await buffered.receive_until(b"\r\n\r\n", _MAX_HEAD_BYTES)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, _, rest = request_line.partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    if path != "/metrics":
        await _send(stream, b"404 Not Found", b"not found\n")
        return
    if method != "GET":
        await _send(stream, b"405 Method Not Allowed", b"method not allowed\n")
        return
    if token is not None:
        headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in header_lines)}
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            await _send(stream, b"401 Unauthorized", b"/metrics needs Authorization: Bearer <token>\n")
            return
    await stats.refresh_if_stale()
    body = await anyio.to_thread.run_sync(metrics.exposition, stats)
    await _send(stream, b"200 OK", body, content_type=CONTENT_TYPE)


async def _send(
    stream: SocketStream, status: bytes, body: bytes, *, content_type: bytes = b"text/plain; charset=utf-8"
) -> None:
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )  # fmt: skip
    await stream.send(head + body)
