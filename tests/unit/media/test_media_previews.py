"""Thumbnails and spritesheets, from frames during a render and from an existing MP4."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from vidgate.media.encode import Mp4Writer
from vidgate.media.previews import PreviewCollector, grid, pick_tiles, previews_from_mp4
from vidgate.media.probe import NotAVideo

# One distinct colour per second, far apart so JPEG and H.264 cannot blur them into each other.
PALETTE = [
    (230, 25, 25),
    (25, 230, 25),
    (25, 25, 230),
    (230, 230, 25),
    (25, 230, 230),
    (230, 25, 230),
    (240, 240, 240),
    (20, 20, 20),
    (240, 130, 20),
    (130, 20, 240),
    (20, 130, 60),
    (120, 120, 120),
]


def solid(colour: tuple[int, int, int], width: int, height: int) -> npt.NDArray[np.uint8]:
    return np.full((height, width, 3), colour, dtype=np.uint8)


def tile_colours(
    sheet: Image.Image, tile: tuple[int, int], count: int, columns: int
) -> list[tuple[int, ...]]:
    tw, th = tile
    centres = [((k % columns) * tw + tw // 2, (k // columns) * th + th // 2) for k in range(count)]
    return [tuple(int(c) for c in np.asarray(sheet)[y, x]) for x, y in centres]


def close_to(got: tuple[int, ...], want: tuple[int, int, int], tolerance: int = 24) -> bool:
    return max(abs(a - b) for a, b in zip(got, want, strict=True)) <= tolerance


def test_collector_picks_frame_zero_and_one_tile_per_second() -> None:
    collector = PreviewCollector(720, 1280, total_frames=240, fps=24)
    wanted = [i for i in range(240) if collector.wants(i)]
    assert wanted[0] == 0
    tiles = wanted[1:]
    assert len(tiles) == 10
    assert [i // 24 for i in tiles] == list(range(10))  # one inside each second
    assert collector.thumb_size == (360, 640)  # half size at 720p
    assert collector.tile_size == (144, 256)


def test_collector_caps_tiles_for_long_clips_and_copes_with_short_ones() -> None:
    long = PreviewCollector(1920, 1080, total_frames=25 * 24, fps=24)
    assert sum(long.wants(i) for i in range(25 * 24)) == 1 + 10
    short = PreviewCollector(64, 64, total_frames=3, fps=24)
    assert [i for i in range(3) if short.wants(i)] == [0, 1]  # thumbnail + a single tile


def test_collector_builds_a_time_ordered_sheet_and_a_webp_thumbnail() -> None:
    width, height, fps, seconds = 256, 144, 24, 10
    collector = PreviewCollector(width, height, seconds * fps, fps)
    for index in range(seconds * fps):
        if collector.wants(index):
            collector.add(index, solid(PALETTE[index // fps], width, height))
    assert collector.done

    thumbnail = Image.open(io.BytesIO(collector.thumbnail_webp()))
    assert thumbnail.format == "WEBP"
    assert thumbnail.size == (256, 144)  # already small: never upscaled
    pixel = thumbnail.convert("RGB").getpixel((128, 72))
    assert isinstance(pixel, tuple) and close_to(pixel, PALETTE[0])

    sheet = Image.open(io.BytesIO(collector.spritesheet_jpeg()))
    assert sheet.format == "JPEG"
    assert sheet.size == (5 * 256, 2 * 144)
    colours = tile_colours(sheet.convert("RGB"), (256, 144), 10, 5)
    assert all(close_to(got, want) for got, want in zip(colours, PALETTE[:10], strict=True)), colours


def test_a_sheet_with_fewer_tiles_than_planned_has_no_empty_cell() -> None:
    # The container promised 300 frames (12.5 s) but 240 decoded: the last two tiles never came.
    width, height, fps = 256, 144, 24
    collector = PreviewCollector(width, height, total_frames=300, fps=fps)
    for index in range(240):
        if collector.wants(index):
            collector.add(index, solid(PALETTE[index // fps], width, height))
    assert not collector.done
    sheet = Image.open(io.BytesIO(collector.spritesheet_jpeg())).convert("RGB")
    assert sheet.size == (4 * 256, 2 * 144)  # 8 tiles: 4x2, not 5x2 with two black cells
    colours = tile_colours(sheet, (256, 144), 8, 4)
    assert all(max(c) > 100 for c in colours), colours  # every cell holds a frame


@pytest.mark.parametrize(
    "tiles, columns_rows",
    [(1, (1, 1)), (2, (2, 1)), (5, (5, 1)), (6, (3, 2)), (7, (7, 1)), (8, (4, 2)), (9, (3, 3)), (10, (5, 2))],
)
def test_grid_fills_every_cell(tiles: int, columns_rows: tuple[int, int]) -> None:
    columns, rows = grid(tiles, 5)
    assert (columns, rows) == columns_rows and columns * rows == tiles


def test_collector_accepts_pil_images_of_any_size_and_ignores_unwanted_frames() -> None:
    collector = PreviewCollector(720, 1280, total_frames=48, fps=24)
    collector.add(5, Image.new("RGB", (10, 10)))  # not wanted: ignored
    assert not collector.has_thumbnail
    collector.add(0, Image.new("RGB", (72, 128), (255, 0, 0)))
    assert Image.open(io.BytesIO(collector.thumbnail_webp())).size == (360, 640)
    with pytest.raises(ValueError):
        collector.spritesheet_jpeg()  # no tile yet


def test_collector_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        PreviewCollector(0, 10, 10, 24)
    with pytest.raises(ValueError):
        PreviewCollector(10, 10, 0, 24)


def write_colour_clip(
    path: Path, seconds: int, width: int = 256, height: int = 144, fps: int = 24, keyint: int | None = None
) -> None:
    """One colour a second; a keyframe every `keyint` frames (default: every second, like many vendors)."""
    with Mp4Writer(path, width, height, fps, keyint=keyint or fps) as writer:
        for index in range(seconds * fps):
            writer.write(solid(PALETTE[index // fps], width, height))


def test_previews_from_mp4_decode_to_sensible_images(tmp_path: Path) -> None:
    clip = tmp_path / "upstream.mp4"
    write_colour_clip(clip, seconds=3)
    thumb_bytes, sheet_bytes = previews_from_mp4(clip)
    thumbnail = Image.open(io.BytesIO(thumb_bytes))
    assert thumbnail.format == "WEBP" and thumbnail.size == (256, 144)
    pixel = thumbnail.convert("RGB").getpixel((128, 72))
    assert isinstance(pixel, tuple) and close_to(pixel, PALETTE[0])
    sheet = Image.open(io.BytesIO(sheet_bytes))
    assert sheet.format == "JPEG" and sheet.size == (3 * 256, 144)
    colours = tile_colours(sheet.convert("RGB"), (256, 144), 3, 3)
    assert all(close_to(got, want) for got, want in zip(colours, PALETTE[:3], strict=True)), colours


def test_previews_from_a_portrait_720p_mp4_have_the_standard_sizes(tmp_path: Path) -> None:
    clip = tmp_path / "portrait.mp4"
    write_colour_clip(clip, seconds=2, width=720, height=1280, fps=12)
    thumb_bytes, sheet_bytes = previews_from_mp4(clip)
    assert Image.open(io.BytesIO(thumb_bytes)).size == (360, 640)
    assert Image.open(io.BytesIO(sheet_bytes)).size == (2 * 144, 256)


def test_previews_from_junk_raise_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(NotAVideo):
        previews_from_mp4(junk)


def test_a_video_with_sparse_keyframes_gets_a_tile_per_keyframe(tmp_path: Path) -> None:
    """Only keyframes are decoded (a 720p result costs a few keyframes, not every frame): with a
    keyframe every 2 s (and the encoder's own at some colour changes), the 6 s clip gets fewer than six
    tiles, each the frame at one of its keyframes."""
    clip = tmp_path / "sparse.mp4"
    write_colour_clip(clip, seconds=6, fps=12, keyint=24)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        times = [
            p.pts * stream.time_base for p in container.demux(stream) if p.is_keyframe and p.pts is not None
        ]
    assert 3 <= len(times) < 6
    _, sheet_bytes = previews_from_mp4(clip)
    sheet = Image.open(io.BytesIO(sheet_bytes))
    columns, rows = grid(len(times), 5)
    assert sheet.size == (columns * 256, rows * 144)
    colours = tile_colours(sheet.convert("RGB"), (256, 144), len(times), columns)
    wanted = [PALETTE[int(at)] for at in sorted(times)]
    assert all(close_to(got, want) for got, want in zip(colours, wanted, strict=True)), colours


@pytest.mark.parametrize(
    ("keyframes", "seconds", "chosen"),
    [
        ([k / 2 for k in range(20)], 10.0, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]),  # every 0.5 s: slot middles
        ([0.0, 2.0, 4.0, 6.0, 8.0], 10.0, [0, 1, 2, 3, 4]),  # fewer keyframes than seconds: each once
        ([0.0], 10.0, [0]),
        ([0.0, 1.0, 2.0], 0.4, [0]),  # under a second: one tile
        ([float(k) for k in range(60)], 60.0, [3, 9, 15, 21, 27, 33, 39, 45, 51, 57]),  # at most 10
    ],
)
def test_tiles_are_the_keyframes_nearest_each_slots_middle(
    keyframes: list[float], seconds: float, chosen: list[int]
) -> None:
    assert pick_tiles(keyframes, seconds, 10) == chosen
