"""The `diffusion` kind's channel options, checked at start (the model directory included)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vidgate.providers.diffusion.model_dir import ModelDirError, check_model_dir

# What one model call makes at most, per pipeline (Wan2.2 TI2V-5B: 121 frames = 5 s at 24 fps; LTX:
# up to 257 frames, 161 kept as the default segment for memory) and its native area (1280x704, 768x512).
SEGMENT_FRAMES = {"wan-ti2v": 121, "ltx": 161}
MAX_AREA = {"wan-ti2v": 1280 * 704, "ltx": 768 * 512}
DEFAULT_FPS = {"wan-ti2v": 24, "ltx": 24}
DEFAULT_STEPS = {"wan-ti2v": 50, "ltx": 40}
DEFAULT_GUIDANCE = {"wan-ti2v": 5.0, "ltx": 3.0}


class DiffusionOptions(BaseModel, extra="forbid"):
    model_dir: str = Field(description="A local diffusers pipeline directory; nothing is downloaded.")
    pipeline: Literal["wan-ti2v", "ltx"] = "wan-ti2v"
    device: str = Field(default="cuda", pattern=r"^(cpu|cuda(:\d+)?)$", description="cpu, cuda or cuda:N")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    steps: int | None = Field(
        default=None, ge=1, le=200, description="Denoising steps (default per pipeline)."
    )
    max_steps: int = Field(default=100, ge=1, le=1000, description="Cap on a request's num_inference_steps.")
    guidance: float | None = Field(
        default=None, ge=0, le=50, description="Guidance scale (default per pipeline)."
    )
    fps: int | None = Field(
        default=None, ge=1, le=60, description="Output frame rate (default: the model's)."
    )
    seed: Literal["per_task", "fixed"] = Field(
        default="per_task",
        description="per_task: derived from the task (a retry makes the same video); fixed: fixed_seed.",
    )
    fixed_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    segment_frames: int | None = Field(
        default=None, ge=5, le=1000, description="Frames per model call; longer clips are chained segments."
    )
    crossfade_frames: int = Field(default=8, ge=0, le=64, description="Frames blended where segments join.")
    max_area: int | None = Field(
        default=None, ge=256, description="Pixels the model generates at (default: its native area)."
    )
    fit: Literal["crop", "letterbox"] = Field(default="crop", description="How frames meet the exact size.")
    max_sequence_length: int = Field(default=512, ge=8, le=1024, description="Prompt tokens kept.")
    negative_prompt: str = ""

    @model_validator(mode="after")
    def _model_dir_complete(self) -> DiffusionOptions:
        try:
            check_model_dir(self.model_dir, self.pipeline)
        except ModelDirError as exc:
            raise ValueError(str(exc)) from None
        if self.crossfade_frames >= self.frames_per_segment // 2:
            raise ValueError("crossfade_frames must be under half of segment_frames")
        return self

    @property
    def frames_per_segment(self) -> int:
        return self.segment_frames or SEGMENT_FRAMES[self.pipeline]

    @property
    def output_fps(self) -> int:
        return self.fps or DEFAULT_FPS[self.pipeline]

    @property
    def area(self) -> int:
        return self.max_area or MAX_AREA[self.pipeline]

    @property
    def default_steps(self) -> int:
        return self.steps or DEFAULT_STEPS[self.pipeline]

    @property
    def default_guidance(self) -> float:
        return DEFAULT_GUIDANCE[self.pipeline] if self.guidance is None else self.guidance
