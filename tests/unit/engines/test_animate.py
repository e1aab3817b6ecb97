"""The procedural animate engine: exact lengths, frame 0 = the cover crop, smooth motion, the text
card, previews, progress, cleanup, and the four target sizes."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter, ImageOps

import vidgate.engines.animate as animate
from vidgate.engines.animate import (
    COMMENT,
    AnimateJob,
    AnimateResult,
    iter_animate_frames,
    prompt_card,
    render_animate,
)
from vidgate.media.encode import rgb_to_yuv444p, yuv420p_to_rgb
from vidgate.media.probe import probe_mp4

Frame = npt.NDArray[np.uint8]

# --- helpers -------------------------------------------------------------------------------------


def synthetic_photo(width: int, height: int, seed: int) -> Image.Image:
    """Gradients, discs and sigma=12 grain, lightly smoothed: the worst case of media.md (grain is
    what resampling filters and x264 disagree on most; this scores 34.3 dB where media.md measured
    34.2 dB at 720p). Unsmoothed grain at 1080p, barely downscaled, is harsher than any photo."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    channels = [
        128 + 100 * np.sin(xs * 6 + seed) + 0 * ys,
        128 + 100 * np.cos(ys * 5 + seed) + 0 * xs,
        128 + 80 * np.sin((xs + ys) * 4.5 - seed),
    ]
    noisy = np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y, s = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(20, 300))
        draw.ellipse((x, y, x + s, y + s), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image.filter(ImageFilter.SMOOTH)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """Portrait, landscape and square sources, big enough for 1080p without upscaling."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed, size in enumerate(((1600, 2400), (2400, 1600), (1800, 1800))):
        path = folder / f"photo{seed}.png"
        synthetic_photo(*size, seed).save(path)
        paths.append(str(path))
    return (paths[0], paths[1], paths[2])


def psnr(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def reference_cover(path: str, width: int, height: int) -> Frame:
    """The independent reference: Pillow's own centred cover fit of the source."""
    with Image.open(path) as source:
        return np.asarray(ImageOps.fit(source.convert("RGB"), (width, height), centering=(0.5, 0.5)))


def decode(path: str) -> tuple[Frame, int]:
    """(frame 0 as RGB, number of frames that decode)."""
    with av.open(path) as container:
        frames = container.decode(video=0)
        first = next(frames).to_ndarray(format="rgb24")
        return np.asarray(first, dtype=np.uint8), 1 + sum(1 for _ in frames)


def check_video(result: AnimateResult, width: int, height: int, seconds: int) -> Frame:
    """Everything a client relies on, checked with PyAV; returns the decoded frame 0."""
    with av.open(result.video) as container:
        video = container.streams.video[0]
        cc = video.codec_context
        assert (cc.name, cc.pix_fmt, cc.width, cc.height) == ("h264", "yuv420p", width, height)
        assert video.average_rate == 24
        assert video.frames == seconds * 24
        assert container.duration is not None
        assert container.duration / 1e6 == pytest.approx(seconds, abs=1e-3)
        assert [a.codec_context.name for a in container.streams.audio] == ["aac"]
        assert container.metadata.get("comment") == COMMENT
    first, count = decode(result.video)
    assert count == seconds * 24  # decoded, not just what the sample table claims
    assert (result.frames, result.seconds, result.width, result.height) == (count, seconds, width, height)
    return first


def check_previews(result: AnimateResult, width: int, height: int, seconds: int) -> None:
    """Thumbnail: frame 0 within 640x640, WebP. Spritesheet: one tile per second (at most 10) of
    at most 256 px, five per row, JPEG."""
    with Image.open(result.thumbnail) as thumbnail:
        assert thumbnail.format == "WEBP"
        scale = min(1.0, 640 / max(width, height))
        assert thumbnail.size == (round(width * scale), round(height * scale))
    tile_scale = min(1.0, 256 / max(width, height))
    tile = (round(width * tile_scale), round(height * tile_scale))
    tiles = min(10, seconds)
    columns = min(5, tiles)
    with Image.open(result.spritesheet) as sheet:
        assert sheet.format == "JPEG"
        assert sheet.size == (columns * tile[0], -(-tiles // columns) * tile[1])


# --- lengths, frame 0, previews ------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(256, 144), (144, 256)])
def test_small_render_has_the_exact_length_and_streams(
    tmp_path: Path, photos: tuple[str, str, str], width: int, height: int
) -> None:
    result = render_animate(AnimateJob(photos, "three photos", width, height, 2), str(tmp_path))
    assert result.video == str(tmp_path / "video.mp4")
    assert result.thumbnail == str(tmp_path / "thumbnail.webp")
    assert result.spritesheet == str(tmp_path / "spritesheet.jpg")
    check_video(result, width, height, 2)
    check_previews(result, width, height, 2)


def test_frame_zero_is_the_centred_cover_crop_before_encoding(photos: tuple[str, str, str]) -> None:
    """No codec in the way: frame 0's luma against the luma of ImageOps.fit. They differ only in
    the resampling filters (ours: LANCZOS pre-scale then bilinear at 1.12x; Pillow's: bicubic in
    one go) on sigma=12 grain: measured 46-48 dB. Luma, because in RGB the 4:2:0 chroma alone caps
    PSNR at ~34 dB on this saturated image (the reference itself scores that through 4:2:0)."""
    width, height = 360, 640
    luma = next(iter_animate_frames(AnimateJob(photos, "p", width, height, 1)))[:height]
    assert psnr(luma, rgb_to_yuv444p(reference_cover(photos[0], width, height))[0]) >= 40
    assert psnr(luma, rgb_to_yuv444p(reference_cover(photos[1], width, height))[0]) < 20


def test_frames_keep_their_count_with_many_images_in_a_short_clip(tmp_path: Path) -> None:
    """Four images in one second: the crossfades shrink so each image still shows, and the total
    stays exactly seconds * fps."""
    paths = []
    for k, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))):
        path = tmp_path / f"c{k}.png"
        Image.new("RGB", (64, 36), colour).save(path)
        paths.append(str(path))
    job = AnimateJob(tuple(paths), "four", 64, 36, 1, fps=24)
    frames = [yuv420p_to_rgb(f) for f in iter_animate_frames(job)]
    assert len(frames) == 24
    centres = [tuple(int(c) for c in f[18, 32]) for f in frames]
    for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)):
        assert any(max(abs(a - b) for a, b in zip(c, colour, strict=True)) < 8 for c in centres), colour


# --- segment plan and motion ----------------------------------------------------------------------


@given(
    total=st.integers(min_value=1, max_value=2000),
    n_images=st.integers(min_value=1, max_value=8),
    crossfade=st.integers(min_value=0, max_value=40),
)
def test_segment_plan_covers_every_frame_with_at_most_two_images(
    total: int, n_images: int, crossfade: int
) -> None:
    if n_images > total:
        return
    segments = animate._plan_segments(total, n_images, crossfade)
    assert len(segments) == n_images
    assert segments[0].start == 0 and segments[-1].start + segments[-1].length == total
    for index in range(total):
        covering = [s for s in segments if s.covers(index)]
        assert 1 <= len(covering) <= 2
        if len(covering) == 2:
            assert 0 < covering[1].weight(index) < 1  # mid-crossfade: a true blend
    for segment in segments:
        solo = [
            i
            for i in range(segment.start, segment.start + segment.length)
            if sum(s.covers(i) for s in segments) == 1
        ]
        assert solo, "every image is seen on its own at least once"


def dot_track(frames: list[Frame], width: int, height: int) -> npt.NDArray[np.float64]:
    """Centroid of a bright dot in the Y plane of each frame."""
    track = []
    ys, xs = np.mgrid[0:height, 0:width]
    for frame in frames:
        luma = frame[:height].astype(np.float64) - 16
        luma[luma < 8] = 0
        mass = luma.sum()
        track.append(((xs * luma).sum() / mass, (ys * luma).sum() / mass))
    return np.array(track)


def wobble(tmp_path: Path) -> float:
    """RMS distance of the dot's path from a smooth curve. Zoom and pan are eased with the same
    cubic, so the true path is a polynomial of degree 6 in t: any residual is resampling error."""
    source = Image.new("RGB", (480, 270))
    ImageDraw.Draw(source).ellipse((340, 70, 352, 82), fill=(255, 255, 255))
    path = tmp_path / "dot.png"
    source.save(path)
    width, height = 320, 180
    frames = list(iter_animate_frames(AnimateJob((str(path),), "dot", width, height, 2)))
    track = dot_track(frames, width, height)
    t = np.linspace(0, 1, len(track))
    residuals = [track[:, k] - np.polyval(np.polyfit(t, track[:, k], 6), t) for k in (0, 1)]
    return float(np.sqrt(np.mean(np.square(residuals))))


def test_motion_is_smooth_to_a_fraction_of_a_pixel(tmp_path: Path) -> None:
    """media.md measured 0.009 px RMS for float resampling, 0.2 px for whole-pixel crops."""
    assert wobble(tmp_path) < 0.05


def test_the_smoothness_check_catches_whole_pixel_crops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above has teeth: rounding the crop box to whole pixels fails it."""
    exact = animate._Plate.box_at

    def rounded(self: animate._Plate, zoom: float, cx: float, cy: float) -> animate.Box:
        x0, y0, x1, y1 = exact(self, zoom, cx, cy)
        return (float(round(x0)), float(round(y0)), float(round(x1)), float(round(y1)))

    monkeypatch.setattr(animate._Plate, "box_at", rounded)
    assert wobble(tmp_path) > 0.1


# --- the text card --------------------------------------------------------------------------------


def test_text_card_is_deterministic_and_depends_on_the_prompt() -> None:
    a = np.asarray(prompt_card("a lighthouse in a storm", 256, 144))
    again = np.asarray(prompt_card("a lighthouse in a storm", 256, 144))
    other = np.asarray(prompt_card("a cat on a sofa", 256, 144))
    assert np.array_equal(a, again)
    assert a.shape == other.shape == (round(144 * animate.MAX_ZOOM), round(256 * animate.MAX_ZOOM), 3)
    assert psnr(a, other) < 25


def test_text_only_render_is_deterministic_and_moves(tmp_path: Path) -> None:
    job = AnimateJob((), "a lighthouse in a storm", 256, 144, 1)
    first = render_animate(job, str(tmp_path / "one"))
    second = render_animate(job, str(tmp_path / "two"))

    def frames(path: str) -> list[Frame]:
        with av.open(path) as container:
            return [
                np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in container.decode(video=0)
            ]

    one, two = frames(first.video), frames(second.video)
    assert len(one) == 24
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    assert psnr(one[0], one[-1]) < 40  # it drifts and zooms
    assert Path(first.thumbnail).read_bytes() == Path(second.thumbnail).read_bytes()


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   ",
        "x" * 4000,
        "word " * 800,
        "一只猫坐在沙发上看着窗外的雨" * 20,
        "https://example.com/" + "a" * 300,
    ],
)
def test_text_card_copes_with_any_prompt(prompt: str) -> None:
    card = prompt_card(prompt, 144, 256)
    assert card.size == (round(144 * animate.MAX_ZOOM), round(256 * animate.MAX_ZOOM))
    assert card.mode == "RGB"


# --- progress, failures, process pool -----------------------------------------------------------


def test_progress_rises_to_one_and_is_throttled(tmp_path: Path, photos: tuple[str, str, str]) -> None:
    calls: list[float] = []
    render_animate(AnimateJob(photos[:1], "p", 144, 256, 2), str(tmp_path), calls.append)
    assert calls[0] == 0.0 and calls[-1] == 1.0
    assert calls == sorted(calls)
    # 48 frames: per-frame calls would be 48+; the throttle allows ~10 per second of work.
    assert len(calls) < 48


def test_failure_leaves_no_partial_video(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        render_animate(AnimateJob((str(tmp_path / "missing.png"),), "p", 64, 36, 1), str(out))
    assert not (out / "video.mp4").exists()


def test_failure_mid_render_removes_the_video(
    tmp_path: Path, photos: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original: Callable[[animate._FrameRenderer, int], Frame] = animate._FrameRenderer.render

    def failing(self: animate._FrameRenderer, index: int) -> Frame:
        if index == 30:
            raise RuntimeError("disk on fire")
        return original(self, index)

    monkeypatch.setattr(animate._FrameRenderer, "render", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        render_animate(AnimateJob(photos[:1], "p", 64, 36, 2), str(tmp_path))
    assert not (tmp_path / "video.mp4").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 255},
        {"height": 0},
        {"seconds": 0},
        {"fps": 0},
        {"images": tuple(f"{k}.png" for k in range(30)), "seconds": 1},
    ],
)
def test_job_validation(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"images": (), "prompt": "p", "width": 256, "height": 144, "seconds": 1}
    values.update(kwargs)
    with pytest.raises(ValueError):
        AnimateJob(**values)  # type: ignore[arg-type]


def test_runs_in_a_spawned_process_pool(tmp_path: Path) -> None:
    """The worker runs renders in a process pool: the job, the function and the result must
    cross a process boundary."""
    job = AnimateJob((), "pickled", 64, 36, 1)
    assert pickle.loads(pickle.dumps(job)) == job
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = pool.submit(render_animate, job, str(tmp_path)).result(timeout=120)
    assert result.frames == 24
    assert probe_mp4(result.video).frames == 24


def test_thumbnail_is_frame_zero(tmp_path: Path, photos: tuple[str, str, str]) -> None:
    result = render_animate(AnimateJob(photos, "p", 144, 256, 1), str(tmp_path))
    first, _ = decode(result.video)
    with Image.open(result.thumbnail) as image:
        thumbnail = np.asarray(image.convert("RGB"))
    assert thumbnail.shape == first.shape
    assert psnr(thumbnail, first) > 28


# --- the four target sizes -------------------------------------------------------------------------

FULL_SIZES = [
    pytest.param(720, 1280, 10, id="720x1280-10s"),
    pytest.param(1280, 720, 10, id="1280x720-10s"),
    pytest.param(1080, 1920, 4, id="1080x1920-4s", marks=pytest.mark.slow),
    pytest.param(1920, 1080, 4, id="1920x1080-4s", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("width", "height", "seconds"), FULL_SIZES)
def test_target_sizes_end_to_end(
    tmp_path: Path, photos: tuple[str, str, str], width: int, height: int, seconds: int
) -> None:
    """Full resolution, through the encoder. PSNR threshold: media.md measured 34.2 dB for frame 0
    against ImageOps.fit at 720p on this kind of grainy synthetic image (the worst case; photos score
    higher), so >= 30 dB leaves room for codec noise while a crop misplaced by 80 px scores ~14 dB.
    The negative control (another input image) must stay < 20 dB.

    Measured here: 34.0-34.6 dB at all four sizes, 9.6-10.5 dB for the negative control. The first
    image has the clip's orientation, so it is downscaled as most photos are (when a source must
    be upscaled, two different upscaling filters disagree more on grain)."""
    portrait, landscape, square = photos
    images = (portrait, landscape, square) if height > width else (landscape, portrait, square)
    result = render_animate(AnimateJob(images, "three photos", width, height, seconds), str(tmp_path))
    first = check_video(result, width, height, seconds)
    assert psnr(first, reference_cover(images[0], width, height)) >= 30
    assert psnr(first, reference_cover(images[1], width, height)) < 20
    check_previews(result, width, height, seconds)
