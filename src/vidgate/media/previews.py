"""Thumbnails and spritesheets: the `thumbnail` and `spritesheet` variants of a video's content.

Two sources, one layout:

- `PreviewCollector` picks frames out of a render as they go by (the built-in engines already have
  every frame in memory once; this costs ~0.1 s instead of a decode pass of 0.2-2 s).
- `previews_from_mp4` makes them from an existing MP4 (a video fetched from an upstream) by decoding
  only a few keyframes: one pass over the packets (no decoding) finds the keyframes, then each chosen
  one is reached by a seek and decoded alone, straight to its small size. A 720p 10 s result costs
  about 2 % of a decode of every frame (bench/result_copy.py).

The thumbnail is frame 0 (what a player shows before pressing play), WebP. The spritesheet is up
to `max_tiles` small frames, about one per second, evenly spaced, JPEG, in a grid sized to the tiles
it got (up to `columns` wide, and never an empty cell). From an MP4 a tile is the keyframe nearest
its slot, so a video with sparse keyframes (one every 2 s is common) gets fewer tiles, still evenly
spread, rather than a decode of every frame between keyframes.
"""

from __future__ import annotations

import io
import os
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image

from vidgate.media.probe import NotAVideo, open_video

__all__ = ["PreviewCollector", "pick_tiles", "previews_from_mp4"]

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
        return _webp(self._thumbnail)

    def spritesheet_jpeg(self) -> bytes:
        """The collected tiles in time order, as JPEG, in a grid with no empty cell (see `grid`)."""
        if not self._tiles:
            raise ValueError("no spritesheet tile was added")
        tiles = [self._tiles[slot] for slot in sorted(self._tiles)]
        return _spritesheet(tiles, self.tile_size, self.columns)


def previews_from_mp4(
    path: str | os.PathLike[str], *, max_tiles: int = 10, columns: int = 5
) -> tuple[bytes, bytes]:
    """Return `(thumbnail_webp, spritesheet_jpeg)` of an MP4, decoding only the keyframes they show.

    Raises `NotAVideo` when the file has no decodable video.
    """
    with open_video(path, demuxer=None) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise NotAVideo("the video stream has no frame size")
        try:
            keyframes = _keyframe_times(container, stream)
            if not keyframes:
                raise NotAVideo("the video has no keyframe")
            base = stream.time_base or 1
            times = [float((at - keyframes[0]) * base) for at in keyframes]
            tiles = [keyframes[i] for i in pick_tiles(times, _seconds(container, stream), max_tiles)]
            thumb_size = _fit_within(width, height, _THUMB_MAX_SIDE)
            tile_size = _fit_within(width, height, _TILE_MAX_SIDE)
            # Seeking is cheap (the MP4 index), so each wanted keyframe is decoded alone: the decoder
            # skips everything else, and one slice thread means no frames held back in a pipeline. The
            # deblocking filter is skipped too (a fifth of a decode): its edges vanish at these sizes.
            stream.codec_context.skip_frame = "NONKEY"
            stream.codec_context.options = {"skip_loop_filter": "all"}
            stream.thread_type = "SLICE"
            frames = {at: _frame_at(container, stream, at) for at in {keyframes[0], *tiles}}
            thumbnail = _scaled(frames[keyframes[0]], thumb_size)
            sheet = [_scaled(frames[at], tile_size) for at in tiles]
        except (av.FFmpegError, ValueError) as exc:
            raise NotAVideo(f"the video does not decode: {exc}") from exc
    found = [tile for tile in sheet if tile is not None]
    if thumbnail is None or not found:
        raise NotAVideo("the video has no decodable frame")
    return _webp(thumbnail), _spritesheet(found, tile_size, columns)


def pick_tiles(keyframes: list[float], seconds: float, max_tiles: int) -> list[int]:
    """Which keyframes (their times in seconds, sorted) make the spritesheet, as indexes in time
    order: about one per second up to `max_tiles`, each the keyframe nearest the middle of its slice
    of the video, none twice."""
    wanted = max(1, min(max_tiles, round(seconds), len(keyframes)))
    span = seconds if seconds > 0 else keyframes[-1] + 1  # no duration known: up to the last keyframe
    free = set(range(len(keyframes)))
    chosen = []
    for k in range(wanted):
        target = (k + 0.5) * span / wanted
        nearest = min(free, key=lambda i: (abs(keyframes[i] - target), i))
        free.remove(nearest)
        chosen.append(nearest)
    return sorted(chosen)


def _keyframe_times(container: InputContainer, stream: VideoStream) -> list[int]:
    """Presentation times (in the stream's time base) of the keyframes, read from the packets alone."""
    return sorted(
        {packet.pts for packet in container.demux(stream) if packet.is_keyframe and packet.pts is not None}
    )


def _seconds(container: InputContainer, stream: VideoStream) -> float:
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _frame_at(container: InputContainer, stream: VideoStream, at: int) -> av.VideoFrame | None:
    """The keyframe at presentation time `at`; None if nothing decodes there."""
    container.seek(at, stream=stream, backward=True, any_frame=False)
    return next(iter(container.decode(stream)), None)


def _scaled(frame: av.VideoFrame | None, size: tuple[int, int]) -> Image.Image | None:
    """`frame` scaled to `size` and converted to RGB in one swscale pass (reading the frame's colour
    tags), with an area filter: what a downscale by 2-8x wants; no full-size RGB copy is made."""
    if frame is None:
        return None
    rgb = frame.reformat(*size, "rgb24", interpolation="AREA", threads=1)
    return Image.fromarray(rgb.to_ndarray(), "RGB")


def _webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    # method 2: half the CPU of the default 4 for a few per cent more bytes (a result copy makes one).
    image.save(out, "WEBP", quality=_WEBP_QUALITY, method=2)
    return out.getvalue()


def _spritesheet(tiles: list[Image.Image], tile_size: tuple[int, int], max_columns: int) -> bytes:
    columns, rows = grid(len(tiles), max_columns)
    tw, th = tile_size
    sheet = Image.new("RGB", (columns * tw, rows * th))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * tw, (k // columns) * th))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def grid(tiles: int, max_columns: int) -> tuple[int, int]:
    """(columns, rows) for `tiles` tiles with every cell filled: the widest row of at most
    `max_columns` that divides the count, else one row (a prime count over `max_columns`).

    A decode may yield fewer frames than the container promised, so the count is not always
    `max_tiles`: 8 tiles make 4x2, not a 5x2 sheet with two black cells."""
    for columns in range(min(max_columns, tiles), 0, -1):
        if tiles % columns == 0 and (columns > 1 or tiles == 1):
            return columns, tiles // columns
    return tiles, 1


def _fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) down (never up) so the long side is at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downscale(image: Image.Image, size: tuple[int, int], method: Image.Resampling) -> Image.Image:
    if image.size == size:
        return image.copy()
    # reducing_gap: a cheap integer box reduction first, then the real filter on the small image.
    return image.resize(size, method, reducing_gap=2.0)
