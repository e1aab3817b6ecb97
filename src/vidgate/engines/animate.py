"""The built-in "animate" engine: procedural pan/zoom ("Ken Burns") over the request's images.

No model, no GPU: each input image becomes a keyframe that slowly pushes in or pulls out with a
little drift, consecutive images crossfade, and a request without images gets a deterministic
animated title card made from the prompt. The output is labelled as such in the MP4 comment.

Design choices, measured in `reference/media.md` and `bench/animate_vs_encode.py`:

- Per-frame float resampling (`Image.resize(size, BILINEAR, box=float_box)`, or OpenCV's
  `warpAffine` when cv2 happens to be installed, about twice as fast): the crop box is never
  rounded to whole pixels, which is what makes ffmpeg's `zoompan` shimmer (0.009 px RMS wobble
  here, against ~0.2 px for whole-pixel crops).
- Frames are rendered directly in YUV 4:2:0 (three single-band planes per source, the chroma at
  half size): 1.5 bytes per pixel to resample instead of the 4 Pillow uses for RGB (11 ms instead
  of 17 ms per 720p frame), and the encoder is spared its own RGB->YUV conversion.
- Each source is pre-scaled once (LANCZOS) so that the crop box at the deepest zoom is exactly
  the output size: every frame is a gentle downscale (1.0x to 1.12x), never an upscale, and the
  per-frame filter stays small (30 % cheaper than a 1.5x margin).
- A few threads render frames ahead of the encoder (Pillow and OpenCV release the GIL) and the
  frames are streamed into x264: a handful are in memory at once, whatever the duration.

`render_animate` is a plain top-level function on plain arguments so the worker can run it in a
process pool.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import importlib
import math
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vidgate.engines.card_fonts import Font, card_font_warning, default_font_path, load_font
from vidgate.media.encode import Mp4Writer, rgb_to_yuv444p, yuv420p_to_rgb
from vidgate.media.images import cover_box
from vidgate.media.previews import PreviewCollector

__all__ = [
    "COMMENT",
    "AnimateJob",
    "AnimateResult",
    "iter_animate_frames",
    "prompt_card",
    "render_animate",
]

COMMENT: Final = "engine=animate; procedural pan/zoom, not a generative model"
MAX_ZOOM: Final = 1.12
CROSSFADE_SECONDS: Final = 0.75
# How far the box centre drifts at the zoomed-in end, as a fraction of the box size.
_DRIFT: Final = 0.08
# Drift direction per image, cycled; fixed so that renders are reproducible.
_DIRECTIONS: Final = ((0.8, -0.6), (-0.9, -0.4), (0.5, 0.9), (-0.6, 0.8))
_MAX_THREADS: Final = 4
_CARD_MAX_CHARS: Final = 600
_PROGRESS_INTERVAL_S: Final = 0.1

Frame = npt.NDArray[np.uint8]


def _optional_cv2() -> Any:
    """OpenCV if it happens to be installed (it is an optional speed-up, 150 MB, not a dependency)."""
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None


_cv2: Any = _optional_cv2()

VIDEO_NAME: Final = "video.mp4"
THUMBNAIL_NAME: Final = "thumbnail.webp"
SPRITESHEET_NAME: Final = "spritesheet.jpg"


@dataclass(frozen=True)
class AnimateJob:
    """One render. `images` are paths to already-normalised RGB image files (e.g. PNG written after
    `vidgate.media.images.decode_image`); an empty tuple renders a title card from `prompt`."""

    images: tuple[str, ...]
    prompt: str
    width: int
    height: int
    seconds: int
    fps: int = 24
    font: str | None = None  # the title card's font file; None: see card_fonts.default_font_path

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be positive and even, got {self.width}x{self.height}")
        if self.seconds <= 0 or self.fps <= 0:
            raise ValueError("seconds and fps must be positive")
        if len(self.images) > self.total_frames:
            raise ValueError("more images than frames")

    @property
    def total_frames(self) -> int:
        """Exactly `seconds * fps`: the length every caller and test relies on."""
        return self.seconds * self.fps


@dataclass(frozen=True)
class AnimateResult:
    """Where the outputs went (all inside the `out_dir` given to `render_animate`) and what they are."""

    video: str
    thumbnail: str
    spritesheet: str
    frames: int
    seconds: float
    width: int
    height: int
    # What the task's detail should say (e.g. the card's font could not draw part of the prompt).
    warnings: tuple[str, ...] = ()


def render_animate(
    job: AnimateJob,
    out_dir: str,
    progress: Callable[[float], None] | None = None,
    *,
    threads: int | None = None,
) -> AnimateResult:
    """Render `job` to `out_dir/video.mp4`, `thumbnail.webp` and `spritesheet.jpg`.

    `progress`, if given, is called with a fraction in [0, 1], at most about ten times a second
    and always with 1.0 at the end (it may cross a process boundary, so calls are kept few).
    `threads` frame-rendering threads run ahead of the encoder (default: up to 4, one per CPU).
    On failure the partial video is removed and the exception propagates.
    """
    os.makedirs(out_dir, exist_ok=True)
    video = os.path.join(out_dir, VIDEO_NAME)
    report = _Throttled(progress)
    report(0.0)
    total = job.total_frames
    renderer = _FrameRenderer(job)
    collector = PreviewCollector(job.width, job.height, total, job.fps)
    workers = threads if threads is not None else min(_MAX_THREADS, os.cpu_count() or 1)
    frames = _render_ahead(renderer, max(1, workers))
    # closing(): cancel the frames rendered ahead promptly if encoding fails half-way.
    with (
        contextlib.closing(frames),
        Mp4Writer(video, job.width, job.height, job.fps, comment=COMMENT) as writer,
    ):
        for index, planes in enumerate(frames):
            writer.write_yuv420p(planes)
            if collector.wants(index):
                collector.add(index, yuv420p_to_rgb(planes))
            # The last few percent are the encoder flush and the preview files.
            report(0.97 * (index + 1) / total)
        if writer.frames_written != total:
            # Not an `assert`: it must hold under `python -O` too. Raising inside the `with`
            # deletes the partial file.
            raise RuntimeError(f"rendered {writer.frames_written} frames, expected {total}")
    thumbnail = _write_bytes(os.path.join(out_dir, THUMBNAIL_NAME), collector.thumbnail_webp())
    spritesheet = _write_bytes(os.path.join(out_dir, SPRITESHEET_NAME), collector.spritesheet_jpeg())
    report(1.0, force=True)
    return AnimateResult(
        video=video,
        thumbnail=thumbnail,
        spritesheet=spritesheet,
        frames=total,
        seconds=total / job.fps,
        width=job.width,
        height=job.height,
        warnings=_warnings(job),
    )


def _warnings(job: AnimateJob) -> tuple[str, ...]:
    if job.images:
        return ()  # no title card
    font_warning = card_font_warning(_card_text(job.prompt), job.font or default_font_path())
    return (font_warning,) if font_warning else ()


def iter_animate_frames(job: AnimateJob) -> Iterator[Frame]:
    """Yield the job's `total_frames` frames in order, one at a time, in the calling thread.

    Each frame is a `(height * 3 // 2, width)` uint8 yuv420p array (BT.709 limited range, the
    layout `Mp4Writer.write_yuv420p` takes). Frame 0 is exactly the centred cover crop of the
    first image at zoom 1.0.
    """
    renderer = _FrameRenderer(job)
    for index in range(renderer.total):
        yield renderer.render(index)


class _FrameRenderer:
    """Everything prepared once per job; `render(i)` is then a pure function of the frame index,
    safe to call from several threads (the planes are only read)."""

    def __init__(self, job: AnimateJob) -> None:
        self.total = job.total_frames
        self._plates = [_Plate.build(src, job.width, job.height) for src in _sources(job)]
        turn = _prompt_turn(job.prompt) if job.images else 0.0
        self._moves = [_Move.for_image(i, plate, turn) for i, plate in enumerate(self._plates)]
        self._segments = _plan_segments(self.total, len(self._plates), round(CROSSFADE_SECONDS * job.fps))

    def render(self, index: int) -> Frame:
        frame: Frame | None = None
        for plate, move, segment in zip(self._plates, self._moves, self._segments, strict=True):
            if not segment.covers(index):
                continue
            layer = plate.render(move, segment.eased(index))
            frame = layer if frame is None else _blend(frame, layer, segment.weight(index))
        if frame is None:
            raise RuntimeError(f"no image covers frame {index}")
        return frame


def _render_ahead(renderer: _FrameRenderer, workers: int) -> Generator[Frame, None, None]:
    """Yield `renderer`'s frames in order while `workers` threads render the next few.

    Pillow's resize and OpenCV release the GIL, so rendering overlaps with x264 and with itself.
    The window is small: at most `2 * workers + 2` frames exist at once.
    """
    ahead = 2 * workers + 2
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="animate-frame")
    pending: deque[Future[Frame]] = deque()
    submitted = 0
    try:
        while pending or submitted < renderer.total:
            while submitted < renderer.total and len(pending) < ahead:
                pending.append(pool.submit(renderer.render, submitted))
                submitted += 1
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _sources(job: AnimateJob) -> Iterator[Image.Image]:
    """The job's images, one at a time (a full-size source can be 100+ MB; only its plate is kept),
    or the title card when there are none."""
    if not job.images:
        yield prompt_card(job.prompt, job.width, job.height, font=job.font)
    for path in job.images:
        with Image.open(path) as im:
            yield im.convert("RGB")


# --- geometry ----------------------------------------------------------------------------------

Box = tuple[float, float, float, float]


class _Plane:
    """One 8-bit plane that can be cropped with a float box and resized in one step.

    OpenCV's `warpAffine` (when importable) is about twice as fast as Pillow's `resize(box=)` on a
    plane; both resample bilinearly at the exact float position, so motion stays smooth.
    """

    def __init__(self, pixels: Frame) -> None:
        self.height, self.width = pixels.shape
        if _cv2 is not None:
            self._array = np.ascontiguousarray(pixels)
        else:
            # copy(): an image made by fromarray is read-only and Pillow would copy it lazily on
            # first use, a write that concurrent render threads must not race on.
            self._image = Image.fromarray(pixels).copy()

    def resample(self, box: Box, size: tuple[int, int]) -> Frame:
        if _cv2 is None:
            return np.asarray(self._image.resize(size, Image.Resampling.BILINEAR, box=box))
        w, h = size
        sx, sy = (box[2] - box[0]) / w, (box[3] - box[1]) / h
        # Inverse map from output pixel centres to source coordinates (pixel centres at +0.5).
        matrix = np.array([[sx, 0.0, box[0] + 0.5 * sx - 0.5], [0.0, sy, box[1] + 0.5 * sy - 0.5]])
        flags = _cv2.INTER_LINEAR | _cv2.WARP_INVERSE_MAP
        out = _cv2.warpAffine(self._array, matrix, size, flags=flags, borderMode=_cv2.BORDER_REPLICATE)
        return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class _Plate:
    """One source, pre-scaled and split into Y, U, V planes (U, V at half size), ready to crop.

    `box_w` x `box_h` is the cover crop at zoom 1.0, in plate (luma) pixels.
    """

    y: _Plane
    u: _Plane
    v: _Plane
    box_w: float
    box_h: float
    out_w: int
    out_h: int

    @classmethod
    def build(cls, source: Image.Image, width: int, height: int) -> _Plate:
        x0, _, x1, _ = cover_box(source.width, source.height, width, height)
        # Scale so that the box at MAX_ZOOM is exactly the output: frames then only ever downscale
        # by 1.0-1.12x. A larger margin (the 1.5x of media.md) costs ~35 % more per frame for no
        # visible gain at these zooms. Sources smaller than that are used as they are (upscaled
        # per frame) rather than blown up once. (0.995, not 1.0: when a card's rounded size lands
        # a hair below, resampling the whole source would only blur it.)
        scale = MAX_ZOOM * width / (x1 - x0)
        if scale < 0.995:
            size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
            source = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        y, u, v = rgb_to_yuv444p(np.asarray(source))
        x0, y0, x1, y1 = cover_box(source.width, source.height, width, height)
        # 2x2 averaging puts each chroma sample at the centre of its four luma samples, so a luma
        # box maps to the chroma plane as box / 2 exactly.
        return cls(_Plane(y), _Plane(_halve(u)), _Plane(_halve(v)), x1 - x0, y1 - y0, width, height)

    def box_at(self, zoom: float, cx: float, cy: float) -> Box:
        """The crop box of size cover/zoom centred on (cx, cy), kept inside the plate."""
        w, h = self.box_w / zoom, self.box_h / zoom
        pw, ph = self.y.width, self.y.height
        x0 = min(max(cx - w / 2, 0.0), pw - w)
        y0 = min(max(cy - h / 2, 0.0), ph - h)
        return (max(x0, 0.0), max(y0, 0.0), min(x0 + w, float(pw)), min(y0 + h, float(ph)))

    def render(self, move: _Move, eased: float) -> Frame:
        box = self.box_at(*move.at(eased))
        half = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)
        w, h = self.out_w, self.out_h
        out = np.empty((h * 3 // 2, w), dtype=np.uint8)
        flat = out.reshape(-1)
        luma, chroma = w * h, (w // 2) * (h // 2)
        flat[:luma] = self.y.resample(box, (w, h)).reshape(-1)
        flat[luma : luma + chroma] = self.u.resample(half, (w // 2, h // 2)).reshape(-1)
        flat[luma + chroma :] = self.v.resample(half, (w // 2, h // 2)).reshape(-1)
        return out


def _halve(plane: Frame) -> Frame:
    """2x2 box average (the last row/column of an odd size averages what exists)."""
    return np.asarray(Image.fromarray(plane).reduce(2), dtype=np.uint8)


@dataclass(frozen=True)
class _Move:
    """Zoom and box centre at the start (eased=0) and end (eased=1) of an image's segment."""

    zoom0: float
    zoom1: float
    c0: tuple[float, float]
    c1: tuple[float, float]

    @classmethod
    def for_image(cls, index: int, plate: _Plate, turn: float = 0.0) -> _Move:
        """Even images push in from the centred cover crop, odd ones pull back out to it, so
        consecutive images move against each other; the zoomed-in end drifts off-centre, in a
        direction turned by `turn` radians (see `_prompt_turn`)."""
        centre = (plate.y.width / 2, plate.y.height / 2)
        bx, by = _DIRECTIONS[index % len(_DIRECTIONS)]
        cos, sin = math.cos(turn), math.sin(turn)
        dx, dy = bx * cos - by * sin, bx * sin + by * cos
        drifted = (centre[0] + dx * _DRIFT * plate.box_w, centre[1] + dy * _DRIFT * plate.box_h)
        # Clamp the drifted end where it is used (at MAX_ZOOM); with the zoom and the centre eased
        # together, a box inside the plate at both ends is inside it in between too.
        x0, y0, x1, y1 = plate.box_at(MAX_ZOOM, *drifted)
        drifted = ((x0 + x1) / 2, (y0 + y1) / 2)
        if index % 2 == 0:
            return cls(1.0, MAX_ZOOM, centre, drifted)
        return cls(MAX_ZOOM, 1.0, drifted, centre)

    def at(self, eased: float) -> tuple[float, float, float]:
        """(zoom, cx, cy) at `eased` in [0, 1]."""
        zoom = self.zoom0 + (self.zoom1 - self.zoom0) * eased
        cx = self.c0[0] + (self.c1[0] - self.c0[0]) * eased
        cy = self.c0[1] + (self.c1[1] - self.c0[1]) * eased
        return zoom, cx, cy


@dataclass(frozen=True)
class _Segment:
    """Frames [start, start + length) belong to one image; the first `fade_in` of them crossfade
    with the previous image."""

    start: int
    length: int
    fade_in: int

    def covers(self, index: int) -> bool:
        return self.start <= index < self.start + self.length

    def eased(self, index: int) -> float:
        """Smoothstep over the whole segment: motion starts and ends at rest."""
        t = (index - self.start) / max(1, self.length - 1)
        return t * t * (3.0 - 2.0 * t)

    def weight(self, index: int) -> float:
        """Opacity over the previous image; strictly between 0 and 1 during the crossfade so no
        frame of it is a copy of either image."""
        k = index - self.start
        return 1.0 if k >= self.fade_in else (k + 1) / (self.fade_in + 1)


def _prompt_turn(prompt: str) -> float:
    """How far the prompt turns the drift of every image, in radians: a render of images follows its
    prompt (a remix of the same images with a new prompt moves differently, never a copy of the source
    video), and the same prompt always gives the same motion. An empty prompt keeps the plain
    directions."""
    if not prompt.strip():
        return 0.0
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 2 * math.pi


def _plan_segments(total: int, n_images: int, crossfade: int) -> list[_Segment]:
    """Split `total` frames among `n_images` overlapping by `crossfade` frames, exactly.

    Lengths sum to `total + (n - 1) * crossfade`. The crossfade shrinks when the clip is too short
    for every image to be seen alone between its fades (never more than two images at once).
    """
    if n_images == 1:
        return [_Segment(0, total, 0)]
    crossfade = max(0, min(crossfade, (total - n_images) // (n_images + 1)))
    base, extra = divmod(total + (n_images - 1) * crossfade, n_images)
    segments, start = [], 0
    for i in range(n_images):
        length = base + (1 if i < extra else 0)
        segments.append(_Segment(start, length, crossfade if i else 0))
        start += length - crossfade
    if segments[-1].start + segments[-1].length != total:
        raise RuntimeError("segment plan does not cover the clip exactly")
    return segments


def _blend(below: Frame, above: Frame, weight: float) -> Frame:
    """Linear crossfade in 8.8 fixed point (uint16 cannot overflow: 255 * 256 < 65536).

    Blending YUV is the same as blending RGB: the conversion is affine.
    """
    w = round(weight * 256)
    mixed = below.astype(np.uint16) * (256 - w)
    mixed += above.astype(np.uint16) * w
    mixed += 128
    return (mixed >> 8).astype(np.uint8)


# --- the title card -----------------------------------------------------------------------------


def prompt_card(prompt: str, width: int, height: int, *, font: str | None = None) -> Image.Image:
    """A title card for a text-only request: a gradient whose colours come from a hash of the prompt,
    with the prompt wrapped on it. Deterministic: the same prompt always gives the same pixels.

    It is `MAX_ZOOM` times the output size, so the pan/zoom never upscales it. `font` is a font
    file (default: `card_fonts.default_font_path()`).
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    card = _gradient((round(width * MAX_ZOOM), round(height * MAX_ZOOM)), digest)
    _draw_text(card, _card_text(prompt), width, height, font or default_font_path())
    return card


def _card_text(prompt: str) -> str:
    text = prompt.strip() or " "
    if len(text) > _CARD_MAX_CHARS:
        # A card shows a few hundred characters at most; wrapping 4000 would only cost time.
        text = text[:_CARD_MAX_CHARS] + "…"
    return text


def _gradient(size: tuple[int, int], digest: bytes) -> Image.Image:
    """Diagonal two-colour gradient plus a soft glow, dark enough for white text, lightly dithered so
    x264 does not turn it into bands."""
    w, h = size
    hue = digest[0] / 255
    first = np.array(colorsys.hsv_to_rgb(hue, 0.55 + digest[1] / 1020, 0.42), dtype=np.float32)
    second = np.array(colorsys.hsv_to_rgb((hue + 0.18 + digest[2] / 850) % 1.0, 0.65, 0.22), dtype=np.float32)
    glow = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.5, 0.5), dtype=np.float32)
    # Open grids broadcast to (h, w) only where needed: a 1080p card is 2.6 MP.
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    t = ((xs / w + ys / h) / 2)[..., None]
    rgb = first * (1 - t) + second * t
    gx, gy = w * (0.25 + digest[3] / 510), h * (0.25 + digest[4] / 510)
    radius = 0.45 * max(w, h)
    falloff = np.exp(-(((xs - gx) ** 2 + (ys - gy) ** 2) / (radius * radius)))[..., None]
    rgb = rgb + 0.35 * glow * falloff
    noise = np.random.default_rng(int.from_bytes(digest[:8], "big")).random((h, w, 1), dtype=np.float32)
    pixels = np.clip(rgb * 255 + noise - 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _draw_text(card: Image.Image, text: str, width: int, height: int, font_path: str | None) -> None:
    """Centre `text` on `card` in the largest size that fits, with a soft shadow.

    `width` x `height` (the output size) is the crop at the deepest zoom; it drifts by up to 6 % of
    the width, so a block within 72 % of it is always fully in view.
    """
    short_side = min(width, height)
    max_w = 0.72 * width
    max_h = 0.6 * height
    for fraction in (0.075, 0.06, 0.05, 0.042):
        font = load_font(font_path, max(10, round(short_side * fraction)))
        line_h = round(font.size * 1.3) if isinstance(font, ImageFont.FreeTypeFont) else 14
        max_lines = max(1, int(max_h // line_h))
        lines = _wrap(text, font, max_w)
        if len(lines) <= max_lines:
            break
    lines = _truncate(lines, max_lines, font, max_w)
    block_h = line_h * len(lines)
    top = (card.height - block_h) / 2
    shadow = Image.new("L", card.size, 0)
    shadow_draw = ImageDraw.Draw(shadow)
    offset = max(1, line_h // 16)
    positions = []
    for k, line in enumerate(lines):
        x = (card.width - font.getlength(line)) / 2
        y = top + k * line_h
        positions.append((x, y, line))
        shadow_draw.text((x + offset, y + offset), line, font=font, fill=170)
    shadow = shadow.filter(ImageFilter.GaussianBlur(radius=max(1, line_h // 10)))
    card.paste((0, 0, 0), (0, 0, *card.size), shadow)
    draw = ImageDraw.Draw(card)
    for x, y, line in positions:
        draw.text((x, y), line, font=font, fill=(255, 255, 255))


def _wrap(text: str, font: Font, max_w: float) -> list[str]:
    """Greedy word wrap; words wider than a line (URLs, CJK without spaces) are split by character."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in _split_long_words(paragraph.split(), font, max_w):
            candidate = f"{current} {word}" if current else word
            if current and font.getlength(candidate) > max_w:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def _split_long_words(words: Sequence[str], font: Font, max_w: float) -> Iterator[str]:
    for word in words:
        while font.getlength(word) > max_w and len(word) > 1:
            cut = max(1, _fitting_prefix(word, font, max_w))
            yield word[:cut]
            word = word[cut:]
        yield word


def _fitting_prefix(word: str, font: Font, max_w: float) -> int:
    """Length of the longest prefix of `word` no wider than `max_w` (binary search)."""
    lo, hi = 0, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= max_w:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _truncate(lines: list[str], max_lines: int, font: Font, max_w: float) -> list[str]:
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    last = kept[-1]
    while last and font.getlength(last + " …") > max_w:
        last = last[:-1]
    kept[-1] = (last.rstrip() + " …").strip()
    return kept


# --- plumbing -----------------------------------------------------------------------------------


class _Throttled:
    """Forward progress at most every `_PROGRESS_INTERVAL_S` (the callback may do file I/O)."""

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self._callback = callback
        self._last = -math.inf

    def __call__(self, fraction: float, *, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or now - self._last >= _PROGRESS_INTERVAL_S:
            self._last = now
            self._callback(min(1.0, max(0.0, fraction)))


def _write_bytes(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path
