"""Small real MP4 clips for fakes and tests: moving colour bars, encoded with the product's writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidgate.media.encode import Mp4Writer


def make_clip(
    path: Path, *, width: int, height: int, seconds: float, fps: int = 8, comment: str | None = None
) -> Path:
    """Write a clip of exactly round(seconds * fps) frames; width and height must be even."""
    frames = round(seconds * fps)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    with Mp4Writer(path, width, height, fps=fps, preset="ultrafast", comment=comment) as writer:
        for i in range(frames):
            shift = i * 255.0 / max(frames, 1)
            r = (x + shift) % 256
            g = (y + shift) % 256
            b = np.full_like(r, (i * 37) % 256)
            frame = np.concatenate(np.broadcast_arrays(r, g, b), axis=2).astype(np.uint8)
            writer.write(frame)
    return path
