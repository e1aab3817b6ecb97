"""`FakeUpstream`: the fake video-generation upstream as one Starlette app, and ways to run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from vidgate.testing.fake_upstream.control_routes import control_routes
from vidgate.testing.fake_upstream.dashscope_routes import dashscope_routes
from vidgate.testing.fake_upstream.fal_routes import fal_routes
from vidgate.testing.fake_upstream.journal import Journal
from vidgate.testing.fake_upstream.kling_routes import kling_routes
from vidgate.testing.fake_upstream.minimax_routes import minimax_routes
from vidgate.testing.fake_upstream.openai_routes import openai_routes
from vidgate.testing.fake_upstream.openrouter_routes import openrouter_routes
from vidgate.testing.fake_upstream.replicate_routes import replicate_routes
from vidgate.testing.fake_upstream.responses import openai_error
from vidgate.testing.fake_upstream.seedance_routes import seedance_routes
from vidgate.testing.fake_upstream.state import FakeSettings, FakeState
from vidgate.testing.fake_upstream.unified_routes import unified_routes
from vidgate.testing.fake_upstream.veo_routes import veo_routes

__all__ = ["FakeUpstream", "create_fake_upstream_app", "serve_fake_upstream"]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods answer in the OpenAI envelope too, not Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    return openai_error(exc.status_code, f"Unknown request URL: {request.method} {request.url.path}.")


class FakeUpstream:
    """A faithful, deterministic fake of the upstreams vidgate talks to, served over real HTTP.

    It speaks the OpenAI Videos API (`/v1/videos`, as OpenAI and vLLM-Omni serve it) and the relay
    "unified video format" (`/v1/video/create` + `/v1/video/query`), hands out real small MP4s, and takes
    faults and odd-but-real response shapes per request from directives (see the package docstring).

    `journal` records every request that matters; `base_url`, when set by whoever serves the app, is the
    base of absolute result URLs (otherwise each request's Host is used). All job timing follows `clock`,
    so a test can drive it by hand; only the latency and hang directives sleep for real.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        ready_seconds: float = 1.0,
        queue_seconds: float = 0.0,
        poll_after_ms: int = 500,
        clip_scale: int = 16,
        clip_fps: int = 4,
        cdn_base_url: str | None = None,
        hang_seconds: float = 5.0,
        video_file: Path | None = None,
    ) -> None:
        settings = FakeSettings(
            api_key=api_key,
            ready_seconds=ready_seconds,
            queue_seconds=queue_seconds,
            poll_after_ms=poll_after_ms,
            clip_scale=clip_scale,
            clip_fps=clip_fps,
            cdn_base_url=cdn_base_url,
            hang_seconds=hang_seconds,
            video_file=video_file,
        )
        self._state = FakeState(settings, clock)
        self.app: ASGIApp = Starlette(
            routes=[
                *kling_routes(self._state),  # before openai's /v1/videos/{video_id}: it would take them
                *openai_routes(self._state),
                *unified_routes(self._state),
                *veo_routes(self._state),
                *seedance_routes(self._state),
                *dashscope_routes(self._state),
                *minimax_routes(self._state),
                *fal_routes(self._state),
                *replicate_routes(self._state),
                *openrouter_routes(self._state),
                *control_routes(self._state),
            ],
            exception_handlers={HTTPException: _http_error},
        )

    @property
    def journal(self) -> Journal:
        """Every request the fake saw that matters, oldest first."""
        return self._state.journal

    @property
    def base_url(self) -> str | None:
        """The served base URL (e.g. `http://127.0.0.1:8123`), for absolute result links."""
        return self._state.base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._state.base_url = value

    def reset(self) -> None:
        """Forget every job, counter and journal entry (what `POST /_fake/reset` does)."""
        self._state.reset()


def create_fake_upstream_app(**kwargs: Any) -> FakeUpstream:
    """A `FakeUpstream` (same keyword arguments); serve its `.app`."""
    return FakeUpstream(**kwargs)


async def serve_fake_upstream(host: str, port: int, **kwargs: Any) -> None:
    """Run a `FakeUpstream` (keyword arguments as for it) with uvicorn on host:port until cancelled or
    interrupted; either way the server shuts down gracefully."""
    fake = FakeUpstream(**kwargs)
    if host not in ("0.0.0.0", "::", ""):  # a wildcard bind has no one address clients use: use Host
        fake.base_url = f"http://{host}:{port}"
    # A short graceful timeout: a request held by a hang directive must not hold the shutdown too.
    config = uvicorn.Config(
        fake.app, host=host, port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)

    async def run(scope: anyio.CancelScope) -> None:
        # Shielded, so that a cancel below turns into a graceful stop (should_exit) instead of tearing the
        # server down mid-request; and when the server stops on its own (a signal), end the wait too.
        with anyio.CancelScope(shield=True):
            await server.serve()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, tg.cancel_scope)
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
