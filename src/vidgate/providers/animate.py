"""The built-in `animate` channel: renders on this machine, in a separate process per clip.

It is procedural (keyframed pan/zoom and crossfades over the input images, or an animated card
from the prompt), not a generative model; tasks it serves say `engine: "animate"`.

Each render runs in its own spawned process, at most `worker.render_processes` at once per worker
process: the event loop stays free for the API, and a cancelled or abandoned render (the task was
cancelled, the lease lost, the worker stopping) is killed at once instead of running on. Progress
crosses the process boundary through a small file that the parent reads while it waits.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.routing import ChannelTraits, RemixSupport
from vidgate.engines.animate import AnimateJob, AnimateResult, render_animate
from vidgate.providers.base import (
    FetchedResult,
    ProbeResult,
    ProviderError,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.registry import ProviderDeps
from vidgate.store.blobs import media_key

_PROGRESS_READ_SECONDS = 0.5


class AnimateOptions(BaseModel, extra="forbid"):
    fps: int = Field(default=24, ge=1, le=60, description="Frames per second of the rendered clip.")


class AnimateProvider:
    traits = ChannelTraits(builtin_engine=True, remix=RemixSupport.RERENDER)
    Options = AnimateOptions
    needs_base_url = False
    default_max_images = 4

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.blobs = deps.blobs
        self.fps = AnimateOptions.model_validate(channel.options).fps
        self.processes = deps.settings.worker.render_processes
        self._slots: anyio.Semaphore | None = None

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        """Render the clip and store it with its previews; `poll` then reports it done."""
        images = []
        for image in request.images:
            path = ctx.work_dir / f"input-{image.index}.png"
            await self.blobs.copy_to_file(image.key, path)
            images.append(str(path))
        try:
            job = AnimateJob(
                tuple(images), request.prompt, request.width, request.height, request.seconds, self.fps
            )
        except ValueError as exc:
            raise ProviderError("invalid_request", str(exc)) from exc
        if self._slots is None:
            self._slots = anyio.Semaphore(self.processes)
        async with self._slots:
            result = await _render_in_subprocess(job, ctx)
        video = await self.blobs.put_file(Path(result.video), media_key(request.task_id, "video"), move=True)
        stored = StoredMedia.of(request.task_id, video)
        assert stored.thumbnail_key and stored.spritesheet_key
        await self.blobs.put_file(Path(result.thumbnail), stored.thumbnail_key, move=True)
        await self.blobs.put_file(Path(result.spritesheet), stored.spritesheet_key, move=True)
        return UpstreamJob(f"animate:{request.task_id}", memo={"stored": asdict(stored)})

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        stored = job.memo.get("stored")
        if not stored:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="render_lost",
                error_message="no rendered video",
                retryable=True,
            )
        return UpstreamStatus(
            UpstreamState.SUCCEEDED, progress=100, watermarked=False, stored=StoredMedia(**stored)
        )

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        raise ProviderError("internal_error", "the animate engine stores its result while rendering")

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # a render in progress is killed when its step is cancelled

    async def find_job(self, request: SubmitRequest) -> UpstreamJob | None:
        return None  # renders leave nothing behind to find: a lost one is simply rendered again

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, f"built-in engine, renders on this machine at {self.fps} fps")

    async def aclose(self) -> None:
        return None


class ProgressFile:
    """A picklable progress callback: writes the fraction to a file the parent process reads."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, fraction: float) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{fraction:.4f}")
        os.replace(tmp, self.path)


def _render_child(conn: Connection, job: AnimateJob, out_dir: str, progress_path: str) -> None:
    try:
        conn.send(("ok", render_animate(job, out_dir, ProgressFile(progress_path))))
    except BaseException as exc:  # report everything; the parent decides what it means
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


async def _render_in_subprocess(job: AnimateJob, ctx: StepContext) -> AnimateResult:
    out_dir = ctx.work_dir / "out"
    progress_path = ctx.work_dir / "progress"
    spawn = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop
    parent, child = spawn.Pipe(duplex=False)
    process = spawn.Process(
        target=_render_child,
        args=(child, job, str(out_dir), str(progress_path)),
        name=f"render-{ctx.task_id}",
    )
    process.start()
    child.close()
    outcome: tuple[str, Any] | None = None
    try:
        while not parent.poll():
            if not process.is_alive() and not parent.poll():
                raise ProviderError(
                    "render_crashed",
                    f"the render process died (exit code {process.exitcode})",
                    retryable=True,
                )
            await anyio.sleep(_PROGRESS_READ_SECONDS)
            await ctx.report_progress(_read_progress(progress_path))
        outcome = parent.recv()
    finally:
        if outcome is None and process.is_alive():
            process.kill()  # cancelled: the task was cancelled, its lease lost, or the worker is stopping
        with anyio.CancelScope(shield=True):  # reap the child even when we are being cancelled
            await anyio.to_thread.run_sync(process.join, 10)
        parent.close()
    assert outcome is not None  # the loop only ends with a message received
    kind, value = outcome
    if kind == "error":
        raise ProviderError("render_failed", f"The animate engine failed: {value}")
    assert isinstance(value, AnimateResult)
    return value


def _read_progress(path: Path) -> int:
    try:
        return round(float(path.read_text()) * 100)
    except (OSError, ValueError):
        return 0
