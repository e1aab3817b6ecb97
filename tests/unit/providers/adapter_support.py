"""What the adapters' unit tests share: a recording stand-in for the upstream behind `httpx.MockTransport`,
a stand-in for the SSRF-safe fetcher, a step context, and the head of an MP4."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vidgate.providers.base import StepContext

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 200
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Answers each request with `handler` and keeps it (give it to `httpx.MockTransport`)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)


class StubFetcher:
    """The SSRF-safe fetcher's seam, for links on someone else's host: records them; writes an MP4 or
    raises what it is given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.urls: list[str] = []

    async def fetch_to_file(self, url: str, dest: Path, **_: Any) -> str:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        dest.write_bytes(MP4)
        return "video/mp4"


def step_context(tmp_path: Path) -> StepContext:
    """A step's context for task 01task in `tmp_path`, whose progress reports go nowhere."""

    async def report(_: int) -> None:
        return None

    return StepContext("01task", tmp_path, report)
