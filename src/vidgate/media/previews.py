"""Thumbnails and spritesheets: the `thumbnail` and `spritesheet` variants of a video's content.

Two sources, one layout:

- `PreviewCollector` picks frames out of a render as they go by (the built-in engines already have
  every frame in memory once; this costs ~0.1 s instead of a decode pass of 0.2-2 s).
- `previews_from_mp4` decodes an existing MP4 (a video fetched from an upstream) once, front to
  back, keeping only the few frames it needs, so memory stays bounded whatever the length.

The thumbnail is frame 0 (what a player shows before pressing play), WebP. The spritesheet is up
to `max_tiles` small frames, about one per second, evenly spaced, JPEG, in a grid sized to the tiles
it got (up to `columns` wide, and never an empty cell).
"""

from __future__ import annotations

import io
import os
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from vidgate.media.probe import NotAVideo, open_video

__all__ = ["PreviewCollector", "previews_from_mp4"]

_THUMB_MAX_SIDE: Final = 640
_TILE_MAX_SIDE: Final = 256
_WEBP_QUALITY: Final = 80
_JPEG_QUALITY: Final = 80


class PreviewCollector:
    """Collect a thumbnail and spritesheet tiles from a stream of frames, by frame index.

    Call `wants(i)` to learn whether frame `i` is needed (so a renderer can skip converting the
    others) and `add(i, frame)` for those; then `thumbnail_webp()` and `spritesheet_jpeg()`.
    Only the downscaled tiles are kept, never full frames.
    """

    def __init__(
        self,
        width: int,
        height: int,
        total_frames: int,
        fps: float,
        *,
        max_tiles: int = 10,
        columns: int = 5,
    ) -> None:
        if width <= 0 or height <= 0 or total_frames <= 0 or fps <= 0:
            raise ValueError("width, height, total_frames and fps must be positive")
        if max_tiles <= 0 or columns <= 0:
            raise ValueError("max_tiles and columns must be positive")
        self.width = width
        self.height = height
        self.thumb_size = _fit_within(width, height, _THUMB_MAX_SIDE)
        self.tile_size = _fit_within(width, height, _TILE_MAX_SIDE)
        self.columns = columns
        n_tiles = max(1, min(max_tiles, round(total_frames / fps), total_frames))
        # The middle of each of n equal slices: about one tile per second, none at the very start
        # (that is the thumbnail) and none in the last frame (often a fade).
        self._tile_slots = {
            min(total_frames - 1, int((k + 0.5) * total_frames / n_tiles)): k for k in range(n_tiles)
        }
        self._tiles: dict[int, Image.Image] = {}
        self._thumbnail: Image.Image | None = None

    @property
    def has_thumbnail(self) -> bool:
        """True once frame 0 has been added."""
        return self._thumbnail is not None

    @property
    def done(self) -> bool:
        """True once the thumbnail and every tile have been collected."""
        return self._thumbnail is not None and len(self._tiles) == len(self._tile_slots)

    def wants(self, index: int) -> bool:
        """Whether frame `index` (0-based) will be used."""
        return index == 0 or index in self._tile_slots

    def add(self, index: int, frame: Image.Image | npt.NDArray[np.uint8]) -> None:
        """Offer frame `index` (an RGB image or `(h, w, 3)` uint8 array, any size); unwanted ones are
        ignored. Frames are downscaled immediately."""
        if not self.wants(index):
            return
        image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame, "RGB")
        image = image.convert("RGB") if image.mode != "RGB" else image
        if index == 0:
            self._thumbnail = _downscale(image, self.thumb_size, Image.Resampling.LANCZOS)
        slot = self._tile_slots.get(index)
        if slot is not None:
            self._tiles[slot] = _downscale(image, self.tile_size, Image.Resampling.BILINEAR)

    def thumbnail_webp(self) -> bytes:
        """Frame 0, fitted within 640x640 (half size at 720p), as WebP."""
        if self._thumbnail is None:
            raise ValueError("frame 0 was never added")
        out = io.BytesIO()
        self._thumbnail.save(out, "WEBP", quality=_WEBP_QUALITY, method=4)
        return out.getvalue()

    def spritesheet_jpeg(self) -> bytes:
        """The collected tiles in time order, as JPEG, in a grid with no empty cell (see `grid`)."""
        if not self._tiles:
            raise ValueError("no spritesheet tile was added")
        tiles = [self._tiles[slot] for slot in sorted(self._tiles)]
        columns, rows = grid(len(tiles), self.columns)
        tw, th = self.tile_size
        sheet = Image.new("RGB", (columns * tw, rows * th))
        for k, tile in enumerate(tiles):
            sheet.paste(tile, ((k % columns) * tw, (k // columns) * th))
        out = io.BytesIO()
        sheet.save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        return out.getvalue()


def previews_from_mp4(
    path: str | os.PathLike[str], *, max_tiles: int = 10, columns: int = 5
) -> tuple[bytes, bytes]:
    """Decode an MP4 once and return `(thumbnail_webp, spritesheet_jpeg)`.

    Frames are decoded front to back and dropped unless they are the thumbnail or a tile, so memory
    does not depend on the video's length. Raises `NotAVideo` when the file has no decodable video.
    """
    with open_video(path, demuxer=None) as (container, stream):
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.base_rate or 24)
        total = stream.frames or _estimate_frames(container.duration, fps)
        collector = PreviewCollector(
            stream.codec_context.width,
            stream.codec_context.height,
            max(total, 1),
            fps,
            max_tiles=max_tiles,
            columns=columns,
        )
        try:
            for index, frame in enumerate(container.decode(stream)):
                if collector.wants(index):
                    # to_ndarray reads the stream's colour tags (BT.709 or not) when converting.
                    collector.add(index, np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
                if collector.done:
                    break
        except (av.FFmpegError, ValueError) as exc:
            raise NotAVideo(f"the video does not decode: {exc}") from exc
    if not collector.has_thumbnail:
        raise NotAVideo("the video has no decodable frame")
    return collector.thumbnail_webp(), collector.spritesheet_jpeg()


def grid(tiles: int, max_columns: int) -> tuple[int, int]:
    """(columns, rows) for `tiles` tiles with every cell filled: the widest row of at most
    `max_columns` that divides the count, else one row (a prime count over `max_columns`).

    A decode may yield fewer frames than the container promised, so the count is not always
    `max_tiles`: 8 tiles make 4x2, not a 5x2 sheet with two black cells."""
    for columns in range(min(max_columns, tiles), 0, -1):
        if tiles % columns == 0 and (columns > 1 or tiles == 1):
            return columns, tiles // columns
    return tiles, 1


def _estimate_frames(duration_us: int | None, fps: float) -> int:
    """Frame count from the container duration, for MP4s without a sample table (fragmented)."""
    if not duration_us:
        return 1
    return max(1, round(duration_us / 1_000_000 * fps))


def _fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) down (never up) so the long side is at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downscale(image: Image.Image, size: tuple[int, int], method: Image.Resampling) -> Image.Image:
    if image.size == size:
        return image.copy()
    # reducing_gap: a cheap integer box reduction first, then the real filter on the small image.
    return image.resize(size, method, reducing_gap=2.0)
