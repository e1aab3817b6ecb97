"""How much does the animate engine cost on top of the encoder it feeds?

For each size, renders a 10 s clip from three synthetic photos (portrait, landscape, square,
with grain so x264 has real work) and compares, side by side and interleaved:

- render:      `render_animate` end to end (load + pre-scale images, generate frames, encode,
               previews), what a user waits for;
- encode-only: the very same frames, pre-rendered to a raw file on disk (numpy memmap) and fed
               to `Mp4Writer` with the same settings: `write_yuv420p` (the path the renderer uses)
               and, for reference, `write` with the frames converted to RGB (the path an engine
               that produces RGB frames would use).

ratio = render / encode-only, per repetition (adjacent runs share the VM's current noise), then
the median over repetitions. Wall and CPU (process) time are both reported: on an oversubscribed
VM the CPU ratio is the steadier one. Target: render / encode-only(yuv) <= 1.3.

    .venv/bin/python bench/animate_vs_encode.py [--reps 3] [--sizes 720x1280,1080x1920] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from vidgate.engines.animate import AnimateJob, iter_animate_frames, render_animate
from vidgate.media.encode import Mp4Writer, yuv420p_to_rgb


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def get(self, clock: str) -> float:
        return self.wall if clock == "wall" else self.cpu


def synthetic_photo(width: int, height: int, seed: int) -> Image.Image:
    """Gradients, shapes and sigma=12 grain: harder to encode than most photos (as in media.md)."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = np.stack(
        [
            128 + 100 * np.sin(xs * 6 + seed) + 0 * ys,
            128 + 100 * np.cos(ys * 5) + 0 * xs,
            128 + 80 * np.sin((xs + ys) * 4.5),
        ],
        axis=-1,
    )
    noisy = base + rng.normal(0, 12, base.shape).astype(np.float32)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y, s = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(20, 240))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + s, y + s), fill=colour)
    return image.filter(ImageFilter.SMOOTH)


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def prerender(job: AnimateJob, path: str) -> np.memmap[tuple[int, ...], np.dtype[np.uint8]]:
    """The renderer's own frames, written to a raw file so the encode-only side reads, not renders."""
    shape = (job.total_frames, job.height * 3 // 2, job.width)
    frames = np.memmap(path, dtype=np.uint8, mode="w+", shape=shape)
    count = 0
    for index, planes in enumerate(iter_animate_frames(job)):
        frames[index] = planes
        count += 1
    assert count == job.total_frames
    frames.flush()
    return frames


def to_rgb_file(
    yuv: npt.NDArray[np.uint8], job: AnimateJob, path: str
) -> np.memmap[tuple[int, ...], np.dtype[np.uint8]]:
    rgb = np.memmap(path, dtype=np.uint8, mode="w+", shape=(len(yuv), job.height, job.width, 3))
    for index in range(len(yuv)):
        rgb[index] = yuv420p_to_rgb(np.asarray(yuv[index]))
    rgb.flush()
    return rgb


def encode_yuv(frames: npt.NDArray[np.uint8], job: AnimateJob, out: str) -> None:
    with Mp4Writer(out, job.width, job.height, job.fps) as writer:
        for index in range(len(frames)):
            writer.write_yuv420p(np.asarray(frames[index]))


def encode_rgb(frames: npt.NDArray[np.uint8], job: AnimateJob, out: str) -> None:
    with Mp4Writer(out, job.width, job.height, job.fps) as writer:
        for index in range(len(frames)):
            writer.write(np.asarray(frames[index]))


def bench_size(width: int, height: int, seconds: int, reps: int, images: tuple[str, ...], tmp: str) -> None:
    job = AnimateJob(images, "bench", width, height, seconds)
    yuv = prerender(job, os.path.join(tmp, "frames.yuv"))
    rgb = to_rgb_file(yuv, job, os.path.join(tmp, "frames.rgb"))
    out = os.path.join(tmp, "encode-only.mp4")
    runs: dict[str, list[Timing]] = {"render": [], "enc_yuv": [], "enc_rgb": []}
    for _ in range(reps):
        # Interleaved, so slow and fast phases of the VM hit every variant.
        runs["render"].append(timed(lambda: render_animate(job, os.path.join(tmp, "render"))))
        runs["enc_yuv"].append(timed(lambda: encode_yuv(yuv, job, out)))
        runs["enc_rgb"].append(timed(lambda: encode_rgb(rgb, job, out)))
    report(f"{width}x{height} {seconds}s", runs)
    # Unlinking a mapped file is fine on POSIX; the space is freed when the maps go.
    for name in ("frames.yuv", "frames.rgb"):
        os.unlink(os.path.join(tmp, name))


def ratio(runs: dict[str, list[Timing]], base: str, clock: str) -> float:
    return statistics.median(
        r.get(clock) / b.get(clock) for r, b in zip(runs["render"], runs[base], strict=True)
    )


def report(label: str, runs: dict[str, list[Timing]]) -> None:
    def med(name: str, clock: str) -> float:
        return statistics.median(t.get(clock) for t in runs[name])

    cells = [
        label,
        f"{med('render', 'wall'):.2f}",
        f"{med('enc_yuv', 'wall'):.2f}",
        f"{med('enc_rgb', 'wall'):.2f}",
        f"**{ratio(runs, 'enc_yuv', 'wall'):.2f}**",
        f"{ratio(runs, 'enc_rgb', 'wall'):.2f}",
        f"{ratio(runs, 'enc_yuv', 'cpu'):.2f}",
        f"{ratio(runs, 'enc_rgb', 'cpu'):.2f}",
    ]
    print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sizes", default="720x1280,1080x1920")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidgate-bench-") as tmp:
        images = []
        for k, (w, h) in enumerate(((1600, 2400), (2400, 1600), (1800, 1800))):
            path = os.path.join(tmp, f"src{k}.png")
            synthetic_photo(w, h, k).save(path)
            images.append(path)
        print(f"cpus={os.cpu_count()} reps={args.reps} (medians; ratios are per-rep render/encode, median)")
        print(
            "| clip | render s | enc-only yuv s | enc-only rgb s | wall ratio vs yuv | wall ratio vs rgb "
            "| CPU ratio vs yuv | CPU ratio vs rgb |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            bench_size(width, height, args.seconds, args.reps, tuple(images), tmp)


if __name__ == "__main__":
    main()
