"""Probe an MP4 with PyAV: what the gateway checks before it stores or serves a video."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.stream import VideoStream

__all__ = [
    "DURATION_TOLERANCE_S",
    "NotAVideo",
    "VideoInfo",
    "differences",
    "open_video",
    "probe_mp4",
]

# How far a result's duration may be from the one asked before it counts as different: containers end
# on a whole frame or audio packet (a vendor's "5 s" clip lasts 5.04 s), so a small gap is no mismatch.
DURATION_TOLERANCE_S = 0.5

# Force FFmpeg's MP4/MOV demuxer. Left to probe, FFmpeg happily opens a PNG as a one-frame "video"
# (or a WebM, or an MPEG-TS); forced, anything that is not ISO-BMFF fails with InvalidDataError.
_MP4_DEMUXER = "mp4"


class NotAVideo(ValueError):
    """The file is not an MP4/MOV with a video stream (junk, truncated, an image, an HTML page...)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a probe found. `seconds` is the container duration; `frames` comes from the sample table
    (or from decoding, see `probe_mp4(count_frames=True)`)."""

    width: int
    height: int
    seconds: float
    frames: int
    fps: float
    video_codec: str
    pix_fmt: str
    audio_codec: str | None
    comment: str | None

    def facts(self) -> dict[str, int | float]:
        """What a task's `detail.video` shows of it: `{width, height, seconds}`."""
        return {"width": self.width, "height": self.height, "seconds": round(self.seconds, 2)}


def differences(info: VideoInfo, *, width: int, height: int, seconds: float) -> list[str]:
    """How a video differs from the one asked for, as clauses ("is 80x44, not the 1280x720 asked
    for"): its size exactly, its duration beyond `DURATION_TOLERANCE_S`. Empty when it is the same."""
    found = []
    if (info.width, info.height) != (width, height):
        found.append(f"is {info.width}x{info.height}, not the {width}x{height} asked for")
    if abs(info.seconds - seconds) > DURATION_TOLERANCE_S:
        found.append(f"lasts {info.seconds:.2f} s, not the {seconds:g} s asked for")
    return found


@contextmanager
def open_video(
    path: str | os.PathLike[str], *, demuxer: str | None = _MP4_DEMUXER
) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The open container and its first video stream; `NotAVideo` for junk or a file without video.

    `demuxer=None` lets FFmpeg probe the format (for previews of whatever an upstream sent).
    A missing file raises `FileNotFoundError` as usual.
    """
    try:
        container = av.open(os.fspath(path), mode="r", format=demuxer)
    except FileNotFoundError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise NotAVideo(f"not {'an MP4' if demuxer else 'a video'} file: {exc}") from exc
    with container:
        if not container.streams.video:
            raise NotAVideo("the file has no video stream")
        yield container, container.streams.video[0]


def probe_mp4(path: str | os.PathLike[str], *, count_frames: bool = False) -> VideoInfo:
    """Read stream parameters from an MP4 without decoding it (unless `count_frames`, which decodes
    every frame to count them: slower, but it proves the whole stream decodes and is not truncated).

    Raises `NotAVideo` when the file is not an MP4 with a video stream, or cannot be decoded.
    A missing file raises `FileNotFoundError` as usual.
    """
    with open_video(path) as (container, stream):
        frames = stream.frames
        if count_frames:
            decoded = _count_frames(container, stream)
            if frames and decoded < frames:
                # moov-first files keep a full sample table even when the media data was cut off.
                raise NotAVideo(f"the video is truncated: {decoded} of {frames} frames decode")
            frames = decoded
        audio = container.streams.audio
        cc = stream.codec_context
        fps = float(stream.average_rate or stream.base_rate or 0)
        seconds = _seconds(container, stream)
        if frames == 0 and fps:
            # Fragmented MP4s have no sample table; estimate rather than report zero.
            frames = round(seconds * fps)
        return VideoInfo(
            width=cc.width,
            height=cc.height,
            seconds=seconds,
            frames=frames,
            fps=fps,
            video_codec=cc.name,
            pix_fmt=cc.pix_fmt or "",
            audio_codec=audio[0].codec_context.name if audio else None,
            comment=container.metadata.get("comment"),
        )


def _seconds(container: InputContainer, stream: VideoStream) -> float:
    if container.duration is not None:
        # av.time_base is 1/1_000_000 (AV_TIME_BASE).
        return float(Fraction(container.duration, 1_000_000))
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _count_frames(container: InputContainer, stream: VideoStream) -> int:
    stream.thread_type = "AUTO"
    try:
        return sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, ValueError) as exc:
        raise NotAVideo(f"the video stream does not decode: {exc}") from exc
