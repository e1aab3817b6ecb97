"""`create_app(settings)`: the HTTP API, and (by default) an embedded worker in the same process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI

from vidgate import __version__
from vidgate.api import (
    admin,
    console,
    health,
    media,
    metrics_endpoint,
    models,
    openai,
    unified,
    webhook_secret,
)
from vidgate.api.body_deadline import BodyDeadline
from vidgate.api.docs_pages import install_docs_pages
from vidgate.api.errors import install_error_handlers
from vidgate.api.limits import BodySizeLimit
from vidgate.api.observe import Observe
from vidgate.api.openapi_docs import install_openapi_docs
from vidgate.clock import Clock
from vidgate.config import Settings
from vidgate.net.policy import Resolver
from vidgate.runtime import open_runtime
from vidgate.worker.service import run_worker_services


def create_app(
    settings: Settings,
    *,
    run_worker: bool | None = None,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The ASGI app. `clock`, `resolver` and `upstream_transport` exist for tests and sandboxes;
    production uses the system's clock, DNS and network."""
    embedded = settings.embedded_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings, clock=clock, resolver=resolver, upstream_transport=upstream_transport
        ) as runtime:
            app.state.runtime = runtime
            if not embedded:
                yield
                return
            stop, force = anyio.Event(), anyio.Event()
            async with anyio.create_task_group() as tg:
                worker = await tg.start(run_worker_services, runtime, stop, force)
                runtime.wake_worker = worker.wake
                # For a second stop signal (api.signals): callable from a signal handler or any thread.
                loop = asyncio.get_running_loop()
                app.state.stop_worker_now = lambda: loop.call_soon_threadsafe(force.set)
                yield
                stop.set()

    # FastAPI's own /openapi.json, /docs and /redoc are off: api.docs_pages serves them (offline, the
    # admin API left out of the public document, framing refused).
    app = FastAPI(
        title="vidgate",
        version=__version__,
        summary="Video generation gateway: the relay unified format and OpenAI's /v1/videos, one task store.",
        lifespan=lifespan,
        # No badge from validator.swagger.io: it would send our document's URL to a third party.
        swagger_ui_parameters={"validatorUrl": None},
        # FastAPI's own OpenTelemetry hooks cost every request a look at the providers; vidgate has
        # its own metrics (/metrics) and logs.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # No redirect to the path with or without a trailing slash: Starlette builds its Location from
        # the Host header, and it would confirm that a path exists (the admin API's, to anyone).
        redirect_slashes=False,
    )
    install_openapi_docs(app)
    install_docs_pages(app)
    install_error_handlers(app)
    # Added last = outermost: the access log and metrics also see the 413s the size limit answers itself.
    app.add_middleware(
        BodySizeLimit, limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes + 64 * 1024
    )
    # Outside the size limit, so that what it drains before an early answer is under the deadlines too.
    app.add_middleware(
        BodyDeadline,
        idle_seconds=settings.http_body_idle_timeout_seconds,
        total_seconds=settings.http_body_timeout_seconds,
    )
    app.add_middleware(Observe)
    # Routers are tried in this order for every request: the ones clients poll come first.
    app.include_router(unified.router)
    app.include_router(openai.router)
    app.include_router(models.router)
    app.include_router(media.router)
    app.include_router(health.router)
    app.include_router(metrics_endpoint.router)
    app.include_router(webhook_secret.router)
    app.include_router(admin.router)
    app.include_router(console.router)
    return app
