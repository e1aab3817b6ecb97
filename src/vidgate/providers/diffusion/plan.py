"""The arithmetic of a generation, without torch: the model's size grid, how many frames each model
call makes, how chained segments join, and how the result meets exactly the requested WxH and length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from vidgate.media.images import cover_box

Frames = npt.NDArray[np.uint8]  # (frames, height, width, 3)


def generation_size(width: int, height: int, *, max_area: int, grid: int) -> tuple[int, int]:
    """The size the model generates at: the request's aspect ratio at about `max_area` pixels, each side
    a multiple of `grid` (the VAE's spatial factor times the transformer's patch), at least one grid."""
    aspect = width / height
    gen_w = max(grid, round(math.sqrt(max_area * aspect) / grid) * grid)
    gen_h = max(grid, round(math.sqrt(max_area / aspect) / grid) * grid)
    return gen_w, gen_h


def model_frames(wanted: int, temporal: int) -> int:
    """The smallest count the model can make (`temporal`*k + 1) that is at least `wanted`."""
    return max(1, math.ceil((wanted - 1) / temporal)) * temporal + 1


@dataclass(frozen=True)
class SegmentPlan:
    frames: tuple[int, ...]  # what each model call makes (each temporal*k + 1)
    crossfade: int  # frames blended where two segments join
    total: int  # frames delivered (the request's seconds * fps)


def plan_segments(total: int, *, segment_frames: int, temporal: int, crossfade: int) -> SegmentPlan:
    """Model calls that together cover `total` frames: one if it fits, else segments of at most
    `segment_frames`, each after the first starting from its predecessor's last frame and overlapping it
    by `crossfade` frames (the overlap is blended). The last segment is no longer than needed."""
    longest = (segment_frames - 1) // temporal * temporal + 1  # the longest allowed model length
    if total <= longest:
        return SegmentPlan((min(longest, model_frames(total, temporal)),), 0, total)
    frames = [longest]
    covered = longest
    while covered < total:
        # A segment's first frame repeats its predecessor's last: the overlap is at least that frame.
        overlap = max(1, crossfade)
        length = min(longest, model_frames(total - covered + overlap, temporal))
        frames.append(length)
        covered += length - overlap
    return SegmentPlan(tuple(frames), max(1, crossfade), total)


def join_segments(segments: Sequence[Frames], plan: SegmentPlan) -> Frames:
    """Concatenate the segments, blending each overlap linearly, and keep exactly `plan.total` frames."""
    out = segments[0]
    c = plan.crossfade
    for seg in segments[1:]:
        weights = (np.arange(1, c + 1, dtype=np.float32) / (c + 1))[:, None, None, None]
        blended = out[-c:].astype(np.float32) * (1 - weights) + seg[:c].astype(np.float32) * weights
        out = np.concatenate([out[:-c], np.rint(blended).astype(np.uint8), seg[c:]])
    if len(out) < plan.total:
        raise RuntimeError(f"the segments made {len(out)} frames, {plan.total} were planned")
    return out[: plan.total]


def fit_frame(frame: Frames, width: int, height: int, mode: str) -> Frames:
    """One frame at exactly `width`x`height`: scaled to cover and centre-cropped, or letterboxed."""
    image = Image.fromarray(frame)
    if image.size == (width, height):
        return frame
    if mode == "crop":
        box = cover_box(image.width, image.height, width, height)
        return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC, box=box))
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(
        image.resize(inner, Image.Resampling.BICUBIC), ((width - inner[0]) // 2, (height - inner[1]) // 2)
    )
    return np.asarray(canvas)


def conditioning_image(path: str, width: int, height: int) -> Image.Image:
    """The first input image on the model's grid: scaled to cover `width`x`height`, centre-cropped."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    box = cover_box(image.width, image.height, width, height)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


def as_uint8(frames: npt.NDArray[np.floating]) -> Frames:
    """A pipeline's float frames in [0, 1] as RGB bytes."""
    out: Frames = np.rint(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)
    return out
