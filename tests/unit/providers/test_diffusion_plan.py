"""The diffusion engine's arithmetic and model-directory checks: pure Python, no torch needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidgate.channel_config import ChannelSettings
from vidgate.providers.diffusion.model_dir import COMPONENTS, ModelDirError, check_model_dir
from vidgate.providers.diffusion.plan import (
    SegmentPlan,
    fit_frame,
    generation_size,
    join_segments,
    model_frames,
    plan_segments,
)
from vidgate.providers.registry import ChannelConfigError, check_channels


def fake_model_dir(root: Path, *, without: str | None = None, class_name: str = "WanPipeline") -> Path:
    """The files a Wan pipeline directory has (empty weights: only their presence is checked)."""
    index: dict[str, object] = {"_class_name": class_name}
    for component in COMPONENTS:
        index[component] = ["diffusers", "X"]
        if component == without:
            continue
        folder = root / component
        folder.mkdir(parents=True)
        for alternatives in COMPONENTS[component]:
            (folder / alternatives[0]).write_text("{}")
    (root / "model_index.json").write_text(json.dumps(index))
    return root


def test_generation_size_keeps_the_aspect_on_the_grid() -> None:
    assert generation_size(1280, 720, max_area=1280 * 704, grid=32) == (
        1280,
        704,
    )  # Wan2.2 TI2V-5B native size
    assert generation_size(720, 1280, max_area=1280 * 704, grid=32) == (704, 1280)
    assert generation_size(1280, 720, max_area=1024, grid=32) == (32, 32)  # never under one grid cell


@pytest.mark.parametrize(
    ("wanted", "temporal", "frames"), [(1, 4, 5), (5, 4, 5), (6, 4, 9), (121, 4, 121), (10, 8, 17)]
)
def test_model_frames_are_temporal_k_plus_one(wanted: int, temporal: int, frames: int) -> None:
    assert model_frames(wanted, temporal) == frames


def test_one_segment_when_it_fits_and_chained_segments_cover_longer_clips() -> None:
    assert plan_segments(96, segment_frames=121, temporal=4, crossfade=8) == SegmentPlan((97,), 0, 96)
    plan = plan_segments(240, segment_frames=121, temporal=4, crossfade=8)  # 10 s at 24 fps
    assert plan.frames[0] == 121 and all(f % 4 == 1 and f <= 121 for f in plan.frames)
    assert sum(plan.frames) - plan.crossfade * (len(plan.frames) - 1) >= 240
    segments = [np.full((n, 2, 2, 3), i * 100, np.uint8) for i, n in enumerate(plan.frames)]
    joined = join_segments(segments, plan)
    assert joined.shape == (240, 2, 2, 3)
    # The crossfade goes from the first segment's value to the second's.
    seam = joined[121 - plan.crossfade : 121, 0, 0, 0]
    assert seam[0] > 0 and seam[-1] < 100 and list(seam) == sorted(seam)


def test_fit_frame_gives_exactly_the_size_by_crop_or_letterbox() -> None:
    frame = np.full((32, 32, 3), 200, np.uint8)
    assert fit_frame(frame, 64, 36, "crop").shape == (36, 64, 3)
    boxed = fit_frame(frame, 64, 36, "letterbox")
    assert boxed.shape == (36, 64, 3) and boxed[0, 0].tolist() == [0, 0, 0] and boxed[18, 32, 0] == 200


def test_a_complete_directory_passes(tmp_path: Path) -> None:
    report = check_model_dir(fake_model_dir(tmp_path), "wan-ti2v")
    assert report.pipeline_class == "WanPipeline"


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_a_missing_component_is_named(tmp_path: Path, component: str) -> None:
    with pytest.raises(ModelDirError, match=f"component '{component}' is missing"):
        check_model_dir(fake_model_dir(tmp_path, without=component), "wan-ti2v")


def test_missing_weights_and_wrong_pipeline_are_named(tmp_path: Path) -> None:
    root = fake_model_dir(tmp_path)
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelDirError, match=r"'vae' is incomplete.*diffusion_pytorch_model\.safetensors"):
        check_model_dir(root, "wan-ti2v")
    with pytest.raises(ModelDirError, match="not a ltx pipeline"):
        check_model_dir(fake_model_dir(tmp_path / "other"), "ltx")
    with pytest.raises(ModelDirError, match="does not exist"):
        check_model_dir(tmp_path / "nowhere", "wan-ti2v")


def test_a_channel_on_an_incomplete_directory_fails_at_start(tmp_path: Path, make_settings) -> None:
    root = fake_model_dir(tmp_path, without="text_encoder")
    channel = ChannelSettings(name="gpu", kind="diffusion", models=["wan"], options={"model_dir": str(root)})
    with pytest.raises(ChannelConfigError, match="component 'text_encoder' is missing"):
        check_channels(make_settings(channels=[channel]))


def test_importing_the_app_and_the_kind_does_not_import_torch() -> None:
    code = (
        "import sys, vidgate.api.app, vidgate.providers.diffusion.provider, vidgate.cli; "
        "print('torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_models_check_exits_0_1_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vidgate.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["models", "check", str(fake_model_dir(tmp_path / "ok"))])
    assert ok.exit_code == 0 and "ok:" in ok.output
    broken = fake_model_dir(tmp_path / "broken", without="tokenizer")
    missing = runner.invoke(app, ["models", "check", str(broken)])
    assert missing.exit_code == 1 and "component 'tokenizer' is missing" in missing.output
    usage = runner.invoke(app, ["models", "check", str(broken), "--pipeline", "sdxl"])
    assert usage.exit_code == 2
