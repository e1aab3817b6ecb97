"""The one MP4 writer every engine uses: H.264 (libx264) + silent AAC, streamable, labelled.

Settings come from the measurements in `reference/media.md`: `veryfast` at CRF 23 is both the
fastest x264 preset on our slow-pan content and the smallest file; `+faststart` puts the `moov`
box first so a browser can start playing while downloading; a silent AAC stereo track makes
players and upload targets that insist on audio happy.

Colour: RGB frames are converted with the BT.709 matrix to limited-range YUV 4:2:0 and the
stream is tagged BT.709, so every player (and PyAV's own decoder, which reads the tags) maps
the colours back the same way. Untagged HD video is a coin toss between BT.601 and BT.709.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from types import TracebackType
from typing import Final, Self

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.reformatter import ColorRange, Colorspace
from av.video.stream import VideoStream

__all__ = ["AUDIO_SAMPLE_RATE", "Mp4Writer", "rgb_to_yuv444p", "yuv420p_to_rgb"]

AUDIO_SAMPLE_RATE: Final = 48_000
_AUDIO_BIT_RATE: Final = 64_000
# The AAC encoder consumes 1024-sample frames; feeding it in those units avoids PyAV re-chunking.
_AUDIO_CHUNK: Final = 1024
# AVCOL_PRI_BT709 / AVCOL_TRC_BT709 / AVCOL_SPC_BT709 / AVCOL_RANGE_MPEG in FFmpeg's enums.
_BT709: Final = 1
_RANGE_MPEG: Final = 1
# The same convention for swscale conversions.
_MATRIX: Final = Colorspace.ITU709
_RANGE: Final = ColorRange.MPEG


class Mp4Writer:
    """Stream frames into an H.264/AAC MP4 file.

    Use as a context manager: a clean exit finalises the file (flushes x264, writes a silent AAC
    track exactly as long as the video, rewrites `moov` to the front); an exception deletes the
    partial file. Frames are encoded as they arrive, so memory does not grow with duration.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: int = 24,
        *,
        crf: int = 23,
        preset: str = "veryfast",
        keyint: int = 48,
        comment: str | None = None,
    ) -> None:
        _check_geometry(width, height, fps)
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        if keyint < 1:
            raise ValueError(f"keyint must be positive, got {keyint}")
        self.path = os.fspath(path)
        self.width = width
        self.height = height
        self.fps = fps
        self._frames = 0
        self._audio_samples = 0
        self._closed = False
        self._silence = av.AudioFrame.from_ndarray(
            np.zeros((2, _AUDIO_CHUNK), dtype=np.float32), format="fltp", layout="stereo"
        )
        self._container: OutputContainer = av.open(
            self.path, mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        try:
            if comment is not None:
                self._container.metadata["comment"] = comment
            self._video = self._add_video(crf=crf, preset=preset, keyint=keyint)
            self._audio = self._add_audio()
        except BaseException:
            self._container.close()
            _unlink_quietly(self.path)
            raise

    def _add_video(self, *, crf: int, preset: str, keyint: int) -> VideoStream:
        stream = self._container.add_stream(
            "libx264", rate=self.fps, options={"crf": str(crf), "preset": preset, "profile": "high"}
        )
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = "yuv420p"
        cc = stream.codec_context
        # A keyframe every `keyint` frames (2 s at 24 fps) keeps seeking and thumbnailing cheap.
        cc.gop_size = keyint
        # PyAV defaults encoders to SLICE threads; x264's frame threads compress better and were
        # 15-20 % faster here (frames per wall-second, 2 vCPUs).
        cc.thread_type = "FRAME"
        cc.color_primaries = _BT709
        cc.color_trc = _BT709
        cc.colorspace = _BT709
        cc.color_range = _RANGE_MPEG
        return stream

    def _add_audio(self) -> AudioStream:
        stream = self._container.add_stream("aac", rate=AUDIO_SAMPLE_RATE, layout="stereo")
        stream.bit_rate = _AUDIO_BIT_RATE
        return stream

    @property
    def frames_written(self) -> int:
        """Number of video frames accepted so far."""
        return self._frames

    @property
    def seconds(self) -> float:
        """Duration of the video written so far."""
        return self._frames / self.fps

    def write(self, frame: npt.NDArray[np.uint8]) -> None:
        """Encode one RGB frame: a `(height, width, 3)` uint8 array."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 frame, got {frame.shape} {frame.dtype}"
            )
        # from_ndarray copies into FFmpeg's own padded buffers (~2 ms at 720p). A zero-copy
        # from_numpy_buffer is NOT safe as swscale input: its SIMD reads past the end of unpadded
        # buffers (it segfaulted converting a memory-mapped 1080p frame ending at a page boundary).
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        self._encode(rgb.reformat(format="yuv420p", dst_colorspace=_MATRIX, dst_color_range=_RANGE))

    def write_yuv420p(self, planes: npt.NDArray[np.uint8]) -> None:
        """Encode one frame already in BT.709 limited-range YUV 4:2:0.

        `planes` is a `(height * 3 // 2, width)` uint8 array holding the Y plane followed by the
        U and V planes, each flattened (PyAV's `yuv420p` ndarray layout). Renderers that work in
        YUV skip the RGB conversion, about a quarter of the encoder's cost at 720p.
        """
        if planes.shape != (self.height * 3 // 2, self.width) or planes.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height * 3 // 2}, {self.width}) uint8 yuv420p frame, "
                f"got {planes.shape} {planes.dtype}"
            )
        # A copy (0.5 ms at 720p), not a view: the encoder may keep a reference to the frame after
        # this call returns, and the caller is free to reuse its array.
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p"))

    def _encode(self, frame: av.VideoFrame) -> None:
        if self._closed:
            raise ValueError("the writer is closed")
        frame.pts = self._frames
        frame.time_base = Fraction(1, self.fps)
        self._container.mux(self._video.encode(frame))
        self._frames += 1
        # Silence follows the video as it grows, so audio and video interleave in the file.
        self._write_silence(self._samples_for(self._frames) // _AUDIO_CHUNK * _AUDIO_CHUNK)

    def _samples_for(self, frames: int) -> int:
        return frames * AUDIO_SAMPLE_RATE // self.fps

    def _write_silence(self, until: int) -> None:
        while self._audio_samples < until:
            n = min(_AUDIO_CHUNK, until - self._audio_samples)
            chunk = self._silence if n == _AUDIO_CHUNK else _silent_frame(n)
            chunk.pts = self._audio_samples
            chunk.sample_rate = AUDIO_SAMPLE_RATE
            chunk.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
            self._container.mux(self._audio.encode(chunk))
            self._audio_samples += n

    def close(self) -> None:
        """Finalise the file. Raises ValueError (and removes the file) if no frame was written."""
        if self._closed:
            return
        if self._frames == 0:
            self.abort()
            raise ValueError("no frames were written")
        self._closed = True
        try:
            self._container.mux(self._video.encode(None))
            self._write_silence(self._samples_for(self._frames))
            self._container.mux(self._audio.encode(None))
        except BaseException:
            self._container.close()
            _unlink_quietly(self.path)
            raise
        self._container.close()

    def abort(self) -> None:
        """Stop without finalising and delete the partial file."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        _unlink_quietly(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def rgb_to_yuv444p(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Convert an `(h, w, 3)` uint8 RGB array to `(3, h, w)` Y, U, V planes, in the writer's colour
    convention (BT.709, limited range). Any size works: nothing is subsampled yet."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    planes = frame.reformat(format="yuv444p", dst_colorspace=_MATRIX, dst_color_range=_RANGE)
    return np.asarray(planes.to_ndarray(), dtype=np.uint8)


def yuv420p_to_rgb(planes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Convert a `(h * 3 // 2, w)` yuv420p array (as `Mp4Writer.write_yuv420p` takes) to `(h, w, 3)`
    RGB, reading it in the writer's colour convention (BT.709, limited range)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p")
    rgb = frame.reformat(format="rgb24", src_colorspace=_MATRIX, src_color_range=_RANGE)
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)


def _check_geometry(width: int, height: int, fps: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if width % 2 or height % 2:
        # yuv420p stores one chroma sample per 2x2 block; odd sizes are rejected by x264.
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _silent_frame(samples: int) -> av.AudioFrame:
    return av.AudioFrame.from_ndarray(
        np.zeros((2, samples), dtype=np.float32), format="fltp", layout="stereo"
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
