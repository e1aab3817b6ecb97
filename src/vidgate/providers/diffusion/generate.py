"""One generation on a loaded model: segments chained on the last frame, progress per denoising step,
cancel between steps. Runs on the device's queue thread (see `device_queue`); imports torch.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vidgate.providers.diffusion.loader import LoadedPipelines
from vidgate.providers.diffusion.plan import Frames, SegmentPlan, as_uint8, conditioning_image, join_segments


class GenerationCancelled(Exception):
    """Raised from the step callback: the pipeline stops before its remaining steps and the VAE decode."""


class GpuOutOfMemory(Exception):
    """The device ran out of memory; its cache has been emptied so that the next job can run."""


@dataclass(frozen=True)
class GenerationJob:
    prompt: str
    negative_prompt: str
    image_path: str | None  # the first input image, or None for text-to-video
    gen_width: int
    gen_height: int
    plan: SegmentPlan
    steps: int
    guidance: float
    seed: int
    max_sequence_length: int
    fps: int


StepReporter = Callable[[int, int], None]  # (steps done, steps in all)


def pipeline_args(
    loaded: LoadedPipelines, job: GenerationJob, *, frames: int, seed: int, image: Image.Image | None
) -> dict[str, Any]:
    """The keyword arguments of one segment's pipeline call (bench/diffusion_gpu.py makes the same
    call straight into diffusers, to show what this engine adds)."""
    import torch

    args: dict[str, Any] = {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt or None,
        "height": job.gen_height,
        "width": job.gen_width,
        "num_frames": frames,
        "num_inference_steps": job.steps,
        "guidance_scale": job.guidance,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "output_type": "np",
        "max_sequence_length": job.max_sequence_length,
    }
    if loaded.pipeline == "ltx":
        args["frame_rate"] = job.fps
    if image is not None:
        args["image"] = image
    return args


def run_generation(
    loaded: LoadedPipelines, job: GenerationJob, on_step: StepReporter, cancelled: threading.Event
) -> Frames:
    """Frames (N, gen_height, gen_width, 3) for the whole plan, `job.plan.total` of them."""
    import torch

    total_steps = job.steps * len(job.plan.frames)
    done = 0

    def step_end(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        if cancelled.is_set():
            raise GenerationCancelled()
        done += 1
        on_step(done, total_steps)
        return kwargs

    segments: list[Frames] = []
    image: Image.Image | None = None
    if job.image_path is not None:
        image = conditioning_image(job.image_path, job.gen_width, job.gen_height)
    try:
        for index, frames in enumerate(job.plan.frames):
            if cancelled.is_set():
                raise GenerationCancelled()
            # One generator per segment, seeded from the job's seed: the same seed and inputs give the
            # same video, segment by segment.
            args = pipeline_args(loaded, job, frames=frames, seed=job.seed + index, image=image)
            args["callback_on_step_end"] = step_end
            pipe = loaded.text_to_video if image is None else loaded.image_to_video
            with torch.inference_mode():
                output = pipe(**args).frames
            segment = as_uint8(output[0])[:frames]
            segments.append(segment)
            # The next segment starts from this one's last frame (image-to-video on it).
            image = Image.fromarray(segment[-1])
    except torch.OutOfMemoryError as exc:
        segments.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise GpuOutOfMemory(str(exc).splitlines()[0] if str(exc) else "CUDA out of memory") from None
    return join_segments(segments, job.plan)
