"""The built-in `animate` channel: renders on this machine, in a separate process per clip.

It is procedural (keyframed pan/zoom and crossfades over the input images, or an animated card
from the prompt), not a generative model; tasks it serves say `engine: "animate"`.

Each render runs in its own spawned process (`render_process`), at most `worker.render_processes` at
once per worker process: the event loop stays free for the API, and a cancelled or abandoned render
(the task was cancelled, the lease lost, the worker stopping or killed) is killed at once instead of
running on.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, Field, field_validator

from vidgate.channel_config import ChannelSettings
from vidgate.domain.routing import ChannelTraits, RemixSupport
from vidgate.engines.animate import AnimateJob
from vidgate.engines.card_fonts import INSTALL_HINT, check_font_file, cjk_capable, default_font_path
from vidgate.providers.base import (
    ProbeResult,
    ProviderError,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
)
from vidgate.providers.builtin_engine import StoredResultEngine
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.render_process import render_in_subprocess
from vidgate.store.blobs import media_key

log = structlog.get_logger("vidgate.animate")


class AnimateOptions(BaseModel, extra="forbid"):
    fps: int = Field(default=24, ge=1, le=60, description="Frames per second of the rendered clip.")
    font: str | None = Field(
        default=None,
        description="Font file for the prompt card (default: an installed font that can draw CJK).",
    )

    @field_validator("font")
    @classmethod
    def _loadable(cls, font: str | None) -> str | None:
        return None if font is None else check_font_file(font)


class AnimateProvider(StoredResultEngine):
    engine_name = "animate"
    traits = ChannelTraits(builtin_engine=True, remix=RemixSupport.RERENDER)
    Options = AnimateOptions
    needs_base_url = False
    default_max_images = 4

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.blobs = deps.blobs
        options = AnimateOptions.model_validate(channel.options)
        self.fps, self.font = options.fps, options.font
        font_path = self.font or default_font_path()
        draws_cjk = cjk_capable(font_path)
        font_name = Path(font_path).name if font_path else "Pillow's built-in font"
        self.font_note = f"prompt card font {font_name} ({'CJK' if draws_cjk else 'no CJK glyphs'})"
        if not draws_cjk:
            log.warning(
                "the prompt card's font cannot draw Chinese, Japanese or Korean prompts",
                channel=channel.name,
                font=font_name,
                hint=INSTALL_HINT,
            )
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
                tuple(images),
                request.prompt,
                request.width,
                request.height,
                request.seconds,
                self.fps,
                font=self.font,
            )
        except ValueError as exc:
            raise ProviderError("invalid_request", str(exc)) from exc
        if self._slots is None:
            self._slots = anyio.Semaphore(self.processes)
        async with self._slots:
            result = await render_in_subprocess(job, ctx)
        video = await self.blobs.put_file(Path(result.video), media_key(request.task_id, "video"), move=True)
        stored = StoredMedia.of(request.task_id, video)
        assert stored.thumbnail_key and stored.spritesheet_key
        await self.blobs.put_file(Path(result.thumbnail), stored.thumbnail_key, move=True)
        await self.blobs.put_file(Path(result.spritesheet), stored.spritesheet_key, move=True)
        memo: dict[str, Any] = {"stored": asdict(stored)}
        if result.warnings:
            memo["warnings"] = list(result.warnings)  # shown in the task's detail
        return UpstreamJob(f"animate:{request.task_id}", memo=memo)

    async def probe(self) -> ProbeResult:
        return ProbeResult(
            True, f"built-in engine, renders on this machine at {self.fps} fps; {self.font_note}"
        )

    async def aclose(self) -> None:
        return None
