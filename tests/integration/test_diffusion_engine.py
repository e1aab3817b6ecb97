"""The diffusion engine on a tiny random Wan2.2 TI2V-5B-shaped pipeline built in code (tests/tiny_diffusion),
saved with save_pretrained and loaded back through the provider's loader; then the full gateway path."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from tests.helpers import wait_for_status
from tests.tiny_diffusion import build_tiny_ltx, build_tiny_wan_ti2v, require_diffusion_stack
from vidgate.channel_config import ChannelSettings

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_diffusion_stack()
    import torch

    torch.set_num_threads(1)  # tiny tensors: threads only cost time on a shared machine
    return build_tiny_wan_ti2v(tmp_path_factory.mktemp("tiny-wan") / "model")


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    from vidgate.providers.diffusion.loader import load_pipelines

    return load_pipelines(str(tiny_model_dir), "wan-ti2v", "cpu", "float32")


def job(total: int, *, seed: int = 1, image: str | None = None, segment: int = 9, crossfade: int = 2) -> Any:
    from vidgate.providers.diffusion.generate import GenerationJob
    from vidgate.providers.diffusion.plan import plan_segments

    plan = plan_segments(total, segment_frames=segment, temporal=4, crossfade=crossfade)
    return GenerationJob("a cat on a boat", "", image, 32, 32, plan, 2, 5.0, seed, 16, 8)


def generate(loaded: Any, j: Any, steps: list[tuple[int, int]] | None = None, cancel: Any = None) -> Any:
    from vidgate.providers.diffusion.generate import run_generation

    def on_step(done: int, total: int) -> None:
        if steps is not None:
            steps.append((done, total))
        if cancel is not None:
            cancel(done)

    return run_generation(loaded, j, on_step, threading.Event() if cancel is None else cancel.event)


def test_the_loader_reads_the_grid_and_text_to_video_has_the_frames(loaded: Any) -> None:
    assert (loaded.grid, loaded.temporal) == (32, 4)
    steps: list[tuple[int, int]] = []
    frames = generate(loaded, job(7), steps)
    assert frames.shape == (7, 32, 32, 3) and frames.dtype == np.uint8
    assert steps == [(1, 2), (2, 2)]  # progress once per denoising step


def test_same_seed_same_frames_other_seed_other_frames(loaded: Any) -> None:
    a, b, c = (
        generate(loaded, job(5, seed=3)),
        generate(loaded, job(5, seed=3)),
        generate(loaded, job(5, seed=4)),
    )
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_chained_segments_give_exactly_the_frames_and_count_every_step(loaded: Any) -> None:
    steps: list[tuple[int, int]] = []
    frames = generate(loaded, job(13, segment=9, crossfade=2), steps)  # segments of 9 and 9, overlap 2
    assert frames.shape == (13, 32, 32, 3)
    assert steps[-1] == (4, 4)


def test_image_to_video_from_a_png(loaded: Any, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(path)
    with_image = generate(loaded, job(5, image=str(path)))
    assert with_image.shape == (5, 32, 32, 3)
    assert not np.array_equal(with_image, generate(loaded, job(5)))


class CancelAt:
    def __init__(self, step: int) -> None:
        self.step, self.event = step, threading.Event()

    def __call__(self, done: int) -> None:
        if done == self.step:
            self.event.set()  # what the provider does when the task's step is cancelled


def test_cancel_stops_between_steps_and_skips_the_decode(
    loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidgate.providers.diffusion.generate import GenerationCancelled

    decodes: list[int] = []
    vae = loaded.text_to_video.vae
    real_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    steps: list[tuple[int, int]] = []
    with pytest.raises(GenerationCancelled):
        generate(loaded, job(5), steps, CancelAt(1))
    assert steps == [(1, 2)] and decodes == []


@pytest.fixture
def tiny_channel(tiny_model_dir: Path) -> Iterator[list[ChannelSettings]]:
    options = {
        "model_dir": str(tiny_model_dir),
        "device": "cpu",
        "dtype": "float32",
        "steps": 2,
        "fps": 2,
        "max_area": 1024,
        # 4 s at 2 fps = 8 frames: two chained 5-frame segments overlapping by one, on the full path.
        "segment_frames": 5,
        "crossfade_frames": 1,
        "max_sequence_length": 16,
    }
    yield [ChannelSettings(name="gpu", kind="diffusion", models=["wan2.2"], options=options)]


async def test_the_gateway_makes_a_playable_mp4_with_its_seed(
    start_gateway, tiny_channel, tmp_path: Path
) -> None:
    png = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(png, "PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    async with start_gateway(run_worker=True, channels=tiny_channel) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "wan2.2", "prompt": "a paper boat", "orientation": "landscape", "duration": 4}
            r = await client.post("/v1/video/create", json={**body, "images": [data_uri], "seed": 42})
            assert r.status_code == 200, r.text
            state = await wait_for_status(client, r.json()["id"], timeout=240)
            assert state["status"] == "completed", state
            assert state["detail"]["engine"] == "diffusion" and state["detail"]["seed"] == 42
            assert state["progress"] == 100
            video = (await client.get(state["video_url"])).content
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert float(stream.average_rate) == 2
        assert sum(1 for _ in container.decode(stream)) == 8  # 4 s at 2 fps, from two chained segments


async def test_out_of_memory_fails_the_task_with_its_code_and_the_worker_goes_on(
    start_gateway, tiny_channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from diffusers import WanTransformer3DModel

    real_forward = WanTransformer3DModel.forward
    calls: list[int] = []

    def forward_once_out_of_memory(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(WanTransformer3DModel, "forward", forward_once_out_of_memory)
    async with start_gateway(run_worker=True, channels=tiny_channel) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "wan2.2", "prompt": "a red boat", "orientation": "portrait", "duration": 4}
            first = (await client.post("/v1/video/create", json=body)).json()["id"]
            failed = await wait_for_status(client, first, timeout=240)
            assert failed["status"] == "failed"
            assert failed["error"]["code"] == "gpu_out_of_memory", failed["error"]
            assert "out of memory" in failed["error"]["message"]
            second = (await client.post("/v1/video/create", json=body)).json()["id"]
            done = await wait_for_status(client, second, timeout=240)
            assert done["status"] == "completed", done


async def test_a_cancelled_step_sets_the_cancel_flag_and_the_queue_runs_the_next_job(tiny_channel) -> None:
    """The provider's side of cancel: the job on the device thread sees the flag (the step callback then
    raises); jobs run one at a time, in order."""
    import anyio

    from vidgate.providers.base import StepContext
    from vidgate.providers.diffusion.generate import GenerationCancelled
    from vidgate.providers.diffusion.provider import DiffusionProvider, _Progress

    provider = DiffusionProvider(tiny_channel[0], deps=_Deps())  # type: ignore[arg-type]

    async def no_progress(_: int) -> None:
        return None

    ctx = StepContext("t", Path("."), no_progress)
    started, cancelled, order = threading.Event(), threading.Event(), []

    def blocking() -> Any:
        order.append("first")
        started.set()
        assert cancelled.wait(30)
        raise GenerationCancelled()

    def after() -> Any:
        order.append("second")
        return np.zeros((1, 2, 2, 3), np.uint8), {}

    async with anyio.create_task_group() as tg:
        tg.start_soon(provider._run_on_queue, blocking, _Progress(), cancelled, ctx)
        await anyio.to_thread.run_sync(started.wait, 30)
        tg.cancel_scope.cancel()
    assert cancelled.is_set()
    frames, _ = await provider._run_on_queue(after, _Progress(), threading.Event(), ctx)
    assert order == ["first", "second"] and frames.shape == (1, 2, 2, 3)


class _Deps:
    blobs = None


def test_ltx_loads_from_its_directory_and_makes_both_kinds_of_clip(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from vidgate.providers.diffusion.generate import GenerationJob, run_generation
    from vidgate.providers.diffusion.loader import load_pipelines
    from vidgate.providers.diffusion.plan import plan_segments

    ltx = load_pipelines(str(build_tiny_ltx(tmp_path / "ltx")), "ltx", "cpu", "float32")
    assert (ltx.grid, ltx.temporal) == (4, 4)  # the tiny VAE scales by 4 in space and time (8k+1 on 0.9.x)
    path = tmp_path / "in.png"
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(path)
    plan = plan_segments(12, segment_frames=9, temporal=ltx.temporal, crossfade=2)
    for image in (None, str(path)):
        steps: list[int] = []
        j = GenerationJob("a boat", "", image, 32, 32, plan, 2, 3.0, 5, 16, 8)
        frames = run_generation(ltx, j, lambda done, total, seen=steps: seen.append(done), threading.Event())
        assert frames.shape == (12, 32, 32, 3) and steps == [1, 2, 3, 4]


def test_the_gpu_bench_runs_its_tiny_mode_on_cpu(tiny_model_dir: Path) -> None:
    from bench.diffusion_gpu import main

    results = main(["--tiny"])
    assert [r["pipeline"] for r in results] == ["wan-ti2v", "ltx"]
    for r in results:
        assert r["frames"] == 9 and r["steps_reported"] == 2 and r["stage_calls"]["vae_decode"] == 1
        assert r["diffusers_call_s"] > 0 and r["engine_over_diffusers"] > 0  # measured side by side


async def test_a_remix_generates_again_from_the_source_image_with_the_new_prompt(
    start_gateway, tiny_channel
) -> None:
    png = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(png, "PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    async with start_gateway(run_worker=True, channels=tiny_channel) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "wan2.2", "prompt": "a paper boat", "orientation": "landscape", "duration": 4}
            r = await client.post("/v1/video/create", json={**body, "images": [data_uri]})
            source = await wait_for_status(client, r.json()["id"], timeout=240)
            assert source["status"] == "completed", source
            openai_id = "video_" + source["id"].split(":task_")[-1]
            r = await client.post(f"/v1/videos/{openai_id}/remix", json={"prompt": "a red cat"})
            assert r.status_code == 200, r.text
            remix = await wait_for_status(client, r.json()["id"], timeout=240)
            assert remix["status"] == "completed", remix
            assert remix["detail"]["input"]["images"], "the remix keeps the source's image"
            first = (await client.get(source["video_url"])).content
            second = (await client.get(remix["video_url"])).content
    assert first != second
