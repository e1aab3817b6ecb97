"""The `diffusion` channel: generates on this machine with an open-weight model (see the package doc).

submit: the first input image (if any) and the prompt go to the device's queue (`device_queue`), which
runs the denoising steps; the frames are then fitted to exactly the requested size and length and
encoded by the same MP4 writer as `animate`, with previews, into our storage. The seed used is kept in
the task's upstream memo and shown in the query's `detail.seed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from vidgate import metrics
from vidgate.channel_config import ChannelSettings
from vidgate.domain.routing import ChannelTraits, RemixSupport
from vidgate.media.encode import Mp4Writer
from vidgate.media.previews import PreviewCollector
from vidgate.providers.base import (
    ProbeResult,
    ProviderError,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
)
from vidgate.providers.builtin_engine import StoredResultEngine
from vidgate.providers.diffusion.device_queue import DeviceQueue, queue_for
from vidgate.providers.diffusion.options import DiffusionOptions
from vidgate.providers.diffusion.plan import Frames, fit_frame, generation_size, plan_segments
from vidgate.providers.registry import ProviderDeps
from vidgate.store.blobs import media_key

log = structlog.get_logger("vidgate.diffusion")

COMMENT = "engine=diffusion"
_PROGRESS_READ_SECONDS = 0.5
# Progress: the denoising steps are 2..95 %, the fit, encode and upload the rest.
_STEPS_FROM, _STEPS_TO = 2, 95


class DiffusionProvider(StoredResultEngine):
    engine_name = "diffusion"
    traits = ChannelTraits(builtin_engine=True, remix=RemixSupport.RERENDER)
    Options = DiffusionOptions
    needs_base_url = False
    default_max_images = 1
    max_images_limit = 1

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """The denoiser takes both (a client's values win over the channel's defaults); it is silent."""
        return {"seed": True, "negative_prompt": True}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.blobs = deps.blobs
        self.name = channel.name
        self.options = DiffusionOptions.model_validate(channel.options)
        self.queue: DeviceQueue = queue_for(self.options.device)
        o = self.options
        self._model_key = (os.path.abspath(o.model_dir), o.pipeline, o.device, o.dtype)

    def _load(self) -> Any:
        from vidgate.providers.diffusion.loader import load_pipelines

        o = self.options
        return self.queue.model(
            self._model_key, lambda: load_pipelines(o.model_dir, o.pipeline, o.device, o.dtype)
        )

    def seed_for(self, request: SubmitRequest) -> int:
        if "seed" in request.passthrough:
            return int(request.passthrough["seed"])
        if self.options.seed == "fixed":
            return self.options.fixed_seed
        # Derived from the task: a retried submit of the same task makes the same video.
        return int.from_bytes(hashlib.sha256(request.task_id.encode()).digest()[:4], "big")

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        from vidgate.providers.diffusion.generate import GenerationJob

        o = self.options
        image_path = None
        if request.images:
            image_path = ctx.work_dir / "input-0.png"
            await self.blobs.copy_to_file(request.images[0].key, image_path)
        steps = min(int(request.passthrough.get("num_inference_steps", o.default_steps)), o.max_steps)
        guidance = float(request.passthrough.get("guidance_scale", o.default_guidance))
        negative = str(request.passthrough.get("negative_prompt", o.negative_prompt))
        seed = self.seed_for(request)
        fps = o.output_fps
        total = request.seconds * fps
        progress = _Progress()
        cancelled = threading.Event()

        def work() -> tuple[Frames, dict[str, Any]]:
            from vidgate.providers.diffusion.generate import run_generation

            loaded = self._load()
            gen_w, gen_h = generation_size(request.width, request.height, max_area=o.area, grid=loaded.grid)
            plan = plan_segments(
                total,
                segment_frames=o.frames_per_segment,
                temporal=loaded.temporal,
                crossfade=o.crossfade_frames,
            )
            job = GenerationJob(
                request.prompt,
                negative,
                str(image_path) if image_path else None,
                gen_w,
                gen_h,
                plan,
                steps,
                guidance,
                seed,
                o.max_sequence_length,
                fps,
            )
            frames = run_generation(loaded, job, progress.step, cancelled)
            info = {"generated": f"{gen_w}x{gen_h}", "segments": list(plan.frames), "steps": steps}
            return frames, info

        frames, info = await self._run_on_queue(work, progress, cancelled, ctx)
        out = ctx.work_dir / "out"
        out.mkdir(parents=True, exist_ok=True)
        await ctx.report_progress(_STEPS_TO)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _encode, frames, request.width, request.height, fps, o.fit, out)
        video = await self.blobs.put_file(out / "video.mp4", media_key(request.task_id, "video"), move=True)
        stored = StoredMedia.of(request.task_id, video)
        assert stored.thumbnail_key and stored.spritesheet_key
        await self.blobs.put_file(out / "thumbnail.webp", stored.thumbnail_key, move=True)
        await self.blobs.put_file(out / "spritesheet.jpg", stored.spritesheet_key, move=True)
        memo: dict[str, Any] = {"stored": asdict(stored), "seed": seed, "diffusion": info}
        return UpstreamJob(f"diffusion:{request.task_id}", memo=memo)

    async def _run_on_queue(
        self, work: Any, progress: _Progress, cancelled: threading.Event, ctx: StepContext
    ) -> tuple[Frames, dict[str, Any]]:
        from vidgate.providers.diffusion.generate import GenerationCancelled, GpuOutOfMemory

        future = self.queue.submit(work)
        waiting = asyncio.wrap_future(future)
        try:
            while not waiting.done():
                # asyncio.wait does not cancel `waiting` on a timeout (nor when this step is cancelled).
                await asyncio.wait({waiting}, timeout=_PROGRESS_READ_SECONDS)
                await ctx.report_progress(_STEPS_FROM + round((_STEPS_TO - _STEPS_FROM) * progress.fraction))
        finally:
            if not waiting.done():
                # Cancelled (the task, a lost lease, the worker stopping): a queued job never starts, a
                # running one stops at its next denoising step. Nothing waits for that here.
                cancelled.set()
                future.cancel()
        try:
            result: tuple[Frames, dict[str, Any]] = waiting.result()
        except GpuOutOfMemory as exc:
            raise ProviderError("gpu_out_of_memory", f"The GPU ran out of memory: {exc}") from None
        except GenerationCancelled:
            raise ProviderError("cancelled", "The generation was cancelled.") from None
        except ProviderError:
            raise
        except Exception as exc:
            log.exception("generation failed", channel=self.name)
            raise ProviderError(
                "generation_failed", f"The diffusion engine failed: {type(exc).__name__}: {exc}"
            ) from None
        metrics.observe_render("diffusion", progress.elapsed())
        return result

    async def probe(self) -> ProbeResult:
        o = self.options
        warm = "loaded" if self.queue.loaded(self._model_key) else "not loaded yet"
        return ProbeResult(True, f"{o.pipeline} from {o.model_dir} on {o.device} ({o.dtype}), {warm}")

    async def aclose(self) -> None:
        return None  # the device queue and its model outlive channels (one per device, per process)


class _Progress:
    """Denoising steps done, written by the queue thread and read by the event loop (a float store is
    atomic under the GIL)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.fraction = 0.0

    def step(self, done: int, total: int) -> None:
        self.fraction = done / total

    def elapsed(self) -> float:
        return time.perf_counter() - self._started


def _encode(frames: Frames, width: int, height: int, fps: int, fit: str, out: Path) -> None:
    """Exactly `width`x`height`, every frame, into out/video.mp4 with its thumbnail and spritesheet."""
    collector = PreviewCollector(width, height, len(frames), fps)
    with Mp4Writer(out / "video.mp4", width, height, fps, comment=COMMENT) as writer:
        for index, frame in enumerate(frames):
            fitted = fit_frame(frame, width, height, fit)
            writer.write(fitted)
            if collector.wants(index):
                collector.add(index, fitted)
    (out / "thumbnail.webp").write_bytes(collector.thumbnail_webp())
    (out / "spritesheet.jpg").write_bytes(collector.spritesheet_jpeg())
