"""The MP4 writer: stream layout, exact durations, faststart, colour tags, failure cleanup."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from vidgate.media.encode import Mp4Writer, rgb_to_yuv444p, yuv420p_to_rgb

W, H = 256, 144


def moving_frame(index: int, width: int = W, height: int = H) -> npt.NDArray[np.uint8]:
    """A gradient with a bar that moves one step per frame: cheap, and not static for x264."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    x = (index * 4) % (width - 8)
    frame[:, x : x + 8] = 255
    return frame


def write_clip(path: Path, frames: int, fps: int = 24, **kwargs: object) -> None:
    with Mp4Writer(path, W, H, fps, **kwargs) as writer:  # type: ignore[arg-type]
        for i in range(frames):
            writer.write(moving_frame(i))
        assert writer.frames_written == frames


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


def test_writes_h264_high_yuv420p_with_silent_aac_and_the_comment(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, 48, comment="engine=test; hello")
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        cc = video.codec_context
        assert (cc.name, cc.profile, cc.pix_fmt) == ("h264", "High", "yuv420p")
        assert (cc.width, cc.height) == (W, H)
        assert video.average_rate == 24
        assert video.frames == 48
        assert container.duration == 2_000_000  # microseconds
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 48_000
        assert audio.codec_context.channels == 2
        assert container.metadata["comment"] == "engine=test; hello"
        assert sum(1 for _ in container.decode(video)) == 48
    with av.open(str(path)) as container:
        samples = 0
        for frame in container.decode(audio=0):
            assert not np.any(frame.to_ndarray())  # silence
            samples += frame.samples
        assert samples == pytest.approx(96_000, abs=1024)


@pytest.mark.parametrize(("frames", "fps"), [(1, 24), (7, 24), (301, 30), (250, 25)])
def test_audio_covers_exactly_the_video_duration(tmp_path: Path, frames: int, fps: int) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, frames, fps)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        expected = frames / fps
        for stream in (video, audio):
            assert stream.duration is not None and stream.time_base is not None
            assert float(stream.duration * stream.time_base) == pytest.approx(expected, abs=1e-3)
        assert container.duration is not None
        assert container.duration / 1e6 == pytest.approx(expected, abs=1e-3)


def test_moov_comes_before_mdat(tmp_path: Path) -> None:
    """+faststart: a browser can start playing before the whole file has arrived."""
    path = tmp_path / "clip.mp4"
    write_clip(path, 24)
    boxes = top_level_boxes(path)
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")


def test_colours_survive_the_round_trip(tmp_path: Path) -> None:
    """The stream is tagged BT.709 and converted with BT.709, so saturated colours come back
    (a BT.601/709 mix-up shifts pure red by ~20 levels in green/blue)."""
    path = tmp_path / "clip.mp4"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (250, 200, 20)]
    with Mp4Writer(path, W, H, crf=10) as writer:
        for colour in colours:
            writer.write(np.full((H, W, 3), colour, dtype=np.uint8))
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24")[H // 2, W // 2] for f in container.decode(video=0)]
        cc = container.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc) == (1, 1, 1)  # BT.709
    for got, want in zip(decoded, colours, strict=True):
        assert np.abs(got.astype(int) - np.array(want)).max() <= 6, (got, want)


def test_yuv_input_matches_rgb_input(tmp_path: Path) -> None:
    rgb = moving_frame(3)
    planes = rgb_to_yuv444p(rgb)
    assert planes.shape == (3, H, W)
    y, u, v = planes

    def halve(plane: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.asarray(plane.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3)).round(), dtype=np.uint8)

    yuv420 = np.concatenate([y.ravel(), halve(u).ravel(), halve(v).ravel()]).reshape(H * 3 // 2, W)
    back = yuv420p_to_rgb(yuv420)
    assert back.shape == (H, W, 3)
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 3
    path = tmp_path / "yuv.mp4"
    with Mp4Writer(path, W, H) as writer:
        writer.write_yuv420p(yuv420)
        assert writer.frames_written == 1
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 4


@pytest.mark.parametrize(("width", "height"), [(255, 144), (256, 143), (0, 144), (-2, 144)])
def test_odd_or_empty_sizes_are_refused(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError):
        Mp4Writer(tmp_path / "x.mp4", width, height)
    assert not (tmp_path / "x.mp4").exists()


def test_bad_settings_and_frames_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Mp4Writer(tmp_path / "x.mp4", W, H, crf=60)
    with pytest.raises(ValueError):
        Mp4Writer(tmp_path / "x.mp4", W, H, fps=0)
    with Mp4Writer(tmp_path / "ok.mp4", W, H) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((H, W + 2, 3), dtype=np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((H, W, 3), dtype=np.float32))
        with pytest.raises(ValueError):
            writer.write_yuv420p(np.zeros((H, W), dtype=np.uint8))
        writer.write(moving_frame(0))


def test_an_exception_inside_the_block_removes_the_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="boom"), Mp4Writer(path, W, H) as writer:
        writer.write(moving_frame(0))
        raise RuntimeError("boom")
    assert not path.exists()


def test_closing_without_frames_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    writer = Mp4Writer(path, W, H)
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert not path.exists()


def test_close_is_idempotent_and_writing_after_close_fails(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    writer = Mp4Writer(path, W, H)
    writer.write(moving_frame(0))
    writer.close()
    writer.close()
    assert writer.seconds == pytest.approx(1 / 24)
    with pytest.raises(ValueError, match="closed"):
        writer.write(moving_frame(1))
    assert path.stat().st_size > 0
