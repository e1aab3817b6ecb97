"""GET /metrics: Prometheus text exposition of this process's metrics (every process's, in multiprocess
mode) and of the queue, read from the database.

Unauthenticated like /readyz unless `VIDGATE_METRICS_TOKEN` is set, when it needs that bearer token.
Either way, keep it off the public proxy: it shows traffic and backlog to whoever asks.
"""

from __future__ import annotations

import hmac

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from vidgate import metrics
from vidgate.api.deps import runtime_of
from vidgate.errors import AuthenticationFailed
from vidgate.store.queue_stats import QueueStats

router = APIRouter(include_in_schema=False)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def queue_stats(app: FastAPI) -> QueueStats:
    """The app's cached queue snapshot (one per runtime: tests run several gateways in a process)."""
    runtime = app.state.runtime
    stats: QueueStats | None = getattr(app.state, "queue_stats", None)
    if stats is None or stats.engine is not runtime.engine:
        stats = QueueStats(runtime.engine, runtime.tasks.queue_clock)
        app.state.queue_stats = stats
    return stats


@router.get("/metrics")
async def metrics_text(request: Request) -> Response:
    token = runtime_of(request).settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise AuthenticationFailed("/metrics needs `Authorization: Bearer <VIDGATE_METRICS_TOKEN>`.")
    stats = queue_stats(request.app)
    await stats.refresh_if_stale()
    if metrics.multiprocess_dir() is None:
        body = metrics.exposition(stats)
    else:  # it reads every process's files: not on the event loop
        body = await anyio.to_thread.run_sync(metrics.exposition, stats)
    return Response(body, media_type=CONTENT_TYPE)
