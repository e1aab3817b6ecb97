"""probe_mp4: what a stored or fetched MP4 is, and refusing what is not one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidgate.media.encode import Mp4Writer
from vidgate.media.probe import NotAVideo, VideoInfo, differences, probe_mp4


def make_clip(path: Path, frames: int = 30, fps: int = 30, comment: str | None = "made by a test") -> Path:
    with Mp4Writer(path, 160, 92, fps, comment=comment) as writer:
        for i in range(frames):
            writer.write(np.full((92, 160, 3), (i * 8) % 256, dtype=np.uint8))
    return path


def test_probe_reports_the_stream_parameters(tmp_path: Path) -> None:
    info = probe_mp4(make_clip(tmp_path / "a.mp4"))
    assert info == VideoInfo(
        width=160,
        height=92,
        seconds=1.0,
        frames=30,
        fps=30.0,
        video_codec="h264",
        pix_fmt="yuv420p",
        audio_codec="aac",
        comment="made by a test",
    )


def test_probe_can_count_frames_by_decoding(tmp_path: Path) -> None:
    info = probe_mp4(make_clip(tmp_path / "a.mp4", frames=17, fps=24, comment=None), count_frames=True)
    assert info.frames == 17
    assert info.comment is None
    assert info.seconds == pytest.approx(17 / 24, abs=1e-3)


def test_junk_is_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"<html>502 Bad Gateway</html>" * 20)
    with pytest.raises(NotAVideo):
        probe_mp4(junk)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotAVideo):
        probe_mp4(empty)


def test_an_image_is_not_a_video(tmp_path: Path) -> None:
    """Left to probe, FFmpeg would open a PNG as a one-frame video."""
    png = tmp_path / "frame.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(png)
    with pytest.raises(NotAVideo):
        probe_mp4(png)


def test_truncated_video_is_caught_when_counting_frames(tmp_path: Path) -> None:
    """moov-first files keep their full sample table when the media data is cut off; only a
    decode pass notices (as missing frames or as a decode error, depending on the cut)."""
    clip = make_clip(tmp_path / "a.mp4", frames=90)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert probe_mp4(cut).frames == 90
    with pytest.raises(NotAVideo):
        probe_mp4(cut, count_frames=True)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_mp4(tmp_path / "nope.mp4")


def test_not_a_video_is_a_value_error() -> None:
    assert issubclass(NotAVideo, ValueError)


def test_differences_from_what_was_asked_are_the_size_exactly_and_the_duration_beyond_a_tolerance() -> None:
    """Issue 21: an 80x44 clip for a 1280x720 task was accepted without a word."""
    info = VideoInfo(80, 44, 4.04, 97, 24.0, "h264", "yuv420p", None, None)
    assert info.facts() == {"width": 80, "height": 44, "seconds": 4.04}
    assert differences(info, width=80, height=44, seconds=4) == []  # 0.04 s over: containers round
    assert differences(info, width=1280, height=720, seconds=4) == ["is 80x44, not the 1280x720 asked for"]
    assert differences(info, width=44, height=80, seconds=4) == ["is 80x44, not the 44x80 asked for"]
    assert differences(info, width=80, height=44, seconds=8) == ["lasts 4.04 s, not the 8 s asked for"]
    assert differences(info, width=1280, height=720, seconds=3) == [
        "is 80x44, not the 1280x720 asked for",
        "lasts 4.04 s, not the 3 s asked for",
    ]
    assert differences(info, width=80, height=44, seconds=4.5) == []  # within DURATION_TOLERANCE_S
