"""What the adapters' unit tests share: a recording stand-in for the upstream behind `httpx.MockTransport`,
a stand-in for the SSRF-safe fetcher, a step context, the head of an MP4, and the rig every adapter's
tests stand on (a hand-driven clock, a request, its images, an adapter on a transport, the fake upstream
on that clock). What is a vendor's own (its channel, its default model and prompt, its answers) stays in
its test module."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from PIL import Image

from vidgate.config import ChannelSettings, Settings
from vidgate.domain.tasks import WatermarkMode
from vidgate.providers.base import InputImage, StepContext, SubmitRequest
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore
from vidgate.testing.fake_upstream import FakeUpstream

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


# The rig ------------------------------------------------------------------------------------------

T0 = 1_700_000_000.0


class Clock:
    """A hand-driven clock for the fake upstream's jobs: it reads `now`, which a test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def submit_request(
    model: str,
    *,
    prompt: str,
    seconds: int,
    size: tuple[int, int] = (1280, 720),
    key: str = "01task-0",
    watermark_mode: WatermarkMode = WatermarkMode.PREFER_CLEAN,
    **fields: Any,
) -> SubmitRequest:
    """A submission of task 01task (public, `size` as width x height, `key` its idempotency key)."""
    return SubmitRequest(
        task_id="01task",
        idempotency_key=key,
        model=model,
        prompt=prompt,
        width=size[0],
        height=size[1],
        seconds=seconds,
        watermark_mode=watermark_mode,
        private=False,
        **fields,
    )


def input_image(
    index: int, source: str = "https://img.example/fox.png", size: tuple[int, int] = (640, 360)
) -> InputImage:
    """The request's image `index`, given by `source` (a URL, a data URI), stored at its usual key."""
    return InputImage(index, source, f"inputs/01task/{index}.png", *size)


async def uploaded_image(
    tmp_path: Path, index: int, size: tuple[int, int], color: tuple[int, int, int]
) -> InputImage:
    """An uploaded image: a PNG of one `color`, put into the blob store under `tmp_path/media`."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    await LocalBlobStore(tmp_path / "media").put_bytes(buf.getvalue(), f"inputs/01task/{index}.png")
    return InputImage(index, "upload", f"inputs/01task/{index}.png", *size)


class _Adapter(Protocol):
    async def aclose(self) -> None: ...


A = TypeVar("A", bound=_Adapter)


@asynccontextmanager
async def adapter_on(
    make: Callable[[ChannelSettings, ProviderDeps], A],
    channel: ChannelSettings,
    transport: httpx.AsyncBaseTransport,
    tmp_path: Path,
    fetcher: Any = None,
) -> AsyncIterator[A]:
    """The adapter `make` builds for `channel`, its upstream behind `transport` (blobs and settings in
    `tmp_path`, a StubFetcher unless `fetcher` is given); closed on the way out."""
    deps = ProviderDeps(
        Settings(data_dir=tmp_path, channels=[channel]),
        LocalBlobStore(tmp_path / "media"),
        fetcher or StubFetcher(),
        UpstreamHttp(transport),
    )
    adapter = make(channel, deps)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def fake_upstream(api_key: str, clock: Clock, cdn_base_url: str) -> FakeUpstream:
    """The fake upstream taking `api_key`, whose jobs are ready 10 s after they start on `clock`."""
    return FakeUpstream(api_key=api_key, clock=clock, ready_seconds=10, cdn_base_url=cdn_base_url)


def asgi(fake: FakeUpstream) -> httpx.ASGITransport:
    """A transport straight into the fake upstream's app."""
    return httpx.ASGITransport(fake.app)


def captured(answer: dict[str, Any]) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport that answers every request 200 with `answer`, and the list it keeps them in."""
    recorder = Recorder(lambda _: httpx.Response(200, json=answer))
    return recorder.requests, httpx.MockTransport(recorder)


def body_of(req: httpx.Request) -> dict[str, Any]:
    """A recorded request's JSON body."""
    parsed: dict[str, Any] = httpx.Response(200, content=req.content).json()
    return parsed
