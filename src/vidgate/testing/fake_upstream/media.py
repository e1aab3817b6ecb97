"""Result bytes: real small MP4s (via `make_clip`), WebP thumbnails and JPEG spritesheets, cached.

Encoding a clip takes a noticeable fraction of a second, so each (kind, width, height, seconds) is made
once, in a worker thread (the event loop keeps answering polls meanwhile), and concurrent requests for
the same key wait for that one encode instead of starting their own.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final, Literal

import anyio
import anyio.to_thread
import numpy as np
from PIL import Image

from vidgate.testing.clips import make_clip

__all__ = ["CONTENT_TYPES", "VARIANTS", "MediaCache", "Variant", "clip_size"]

Variant = Literal["video", "thumbnail", "spritesheet"]

CONTENT_TYPES: Final[dict[str, str]] = {
    "video": "video/mp4",
    "thumbnail": "image/webp",
    "spritesheet": "image/jpeg",
}
VARIANTS: Final[dict[str, Variant]] = {
    "video": "video",
    "thumbnail": "thumbnail",
    "spritesheet": "spritesheet",
}
_MIN_SIDE: Final = 16
_SHEET_COLUMNS: Final = 5
_SHEET_MAX_TILES: Final = 10


def clip_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The delivered size: the requested one divided by `scale`, rounded down to even, at least 16 px."""

    def side(n: int) -> int:
        return max(_MIN_SIDE, (n // max(1, scale)) // 2 * 2)

    return side(width), side(height)


def _gradient(width: int, height: int, shift: int = 0) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    r, g = np.broadcast_arrays((x + shift) % 256, (y + shift) % 256)
    b = np.full_like(r, (shift * 37) % 256)
    return Image.fromarray(np.stack([r, g, b], axis=2).astype(np.uint8), "RGB")


def _encode_clip(width: int, height: int, seconds: int, fps: int) -> bytes:
    with tempfile.TemporaryDirectory(prefix="vidgate-fake-") as tmp:
        path = make_clip(Path(tmp) / "clip.mp4", width=width, height=height, seconds=seconds, fps=fps)
        return path.read_bytes()


def _thumbnail(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    _gradient(width, height).save(buf, "WEBP", quality=80)
    return buf.getvalue()


def _spritesheet(width: int, height: int, seconds: int) -> bytes:
    tiles = max(1, min(_SHEET_MAX_TILES, seconds))
    columns = min(_SHEET_COLUMNS, tiles)
    rows = -(-tiles // columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for k in range(tiles):
        sheet.paste(_gradient(width, height, shift=k * 25), ((k % columns) * width, (k // columns) * height))
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=80)
    return buf.getvalue()


class MediaCache:
    """Bytes for each variant of a result, by the job's requested size and duration."""

    def __init__(self, *, clip_scale: int, fps: int, video_file: Path | None = None) -> None:
        self.clip_scale = clip_scale
        self.fps = fps
        self.video_file = video_file
        self._bytes: dict[tuple[str, int, int, int], bytes] = {}
        self._locks: dict[tuple[str, int, int, int], anyio.Lock] = {}

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The pixel size a job of this requested size delivers."""
        return clip_size(width, height, self.clip_scale)

    async def get(self, variant: Variant, width: int, height: int, seconds: int) -> bytes:
        """The bytes of `variant` for a job of this requested size and duration (seconds >= 1)."""
        w, h = self.size_for(width, height)
        seconds = max(1, seconds)
        make: Callable[[], bytes]
        if variant == "video" and self.video_file is not None:
            make, seconds = self.video_file.read_bytes, 0  # the same file for every job
        elif variant == "video":
            make = partial(_encode_clip, w, h, seconds, self.fps)
        elif variant == "thumbnail":
            seconds = 0  # one thumbnail whatever the duration
            make = partial(_thumbnail, w, h)
        else:
            make = partial(_spritesheet, w, h, seconds)
        key = (variant, w, h, seconds)
        if key in self._bytes:
            return self._bytes[key]
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = anyio.Lock()
        async with lock:
            if key not in self._bytes:
                self._bytes[key] = await anyio.to_thread.run_sync(make)
        return self._bytes[key]
