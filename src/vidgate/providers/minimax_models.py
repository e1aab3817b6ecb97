"""What each MiniMax (Hailuo) video model takes through MiniMax's API (the `minimax` kind's table). Pure.

Sources, read in 2026 (docs/channels.md, `minimax` has the same table with its links): MiniMax's API
reference (platform.minimax.io/docs, the same pages on platform.minimaxi.com for mainland China): "Video
Generation" (the models and the three calls), "Text to Video", "Image to Video", "Start / End to Video",
"Subject Reference to Video" (`model`, `prompt` up to 2000 characters, `prompt_optimizer`,
`fast_pretreatment`, `duration`, `resolution`, `first_frame_image`, `last_frame_image`,
`subject_reference`, `aigc_watermark`; which model takes which duration at which resolution; image rules:
JPG/JPEG/PNG/WebP under 20 MB, short side over 300 px, aspect ratio between 2:5 and 5:2), "Query Video
Generation Task Status", "Download the Video File" and "Error Codes"; and the official MiniMax-MCP server
(github.com/MiniMax-AI/MiniMax-MCP, `generate_video`: the same three calls).

MiniMax names resolutions 512P, 720P, 768P and 1080P. vidgate routes by 480p/720p/1080p, so MiniMax's
768P (1366x768) is what a 720p request makes on the Hailuo models, and 512P what a 480p one makes: the
video is MiniMax's size (its real size is in the task's `detail.video`). A video from text alone is 16:9;
one from an image keeps the image's shape, so a request's aspect ratio picks nothing there (the routing
tables say so: `aspect_ratios_with["text_to_video"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, sizes_for

__all__ = ["IMAGE_RATIOS", "MODELS", "MiniMaxModel", "minimax_model"]

Input = Literal["text", "image", "last_frame", "subject"]
# Ratios a request may name for a video from an image (the video keeps the image's shape).
IMAGE_RATIOS: Final = ("16:9", "9:16", "1:1", "4:3", "3:4")
TEXT_RATIO: Final = "16:9"
_HAILUO: Final = {"720p": "768P", "1080p": "1080P"}
_HAILUO_02: Final = {"480p": "512P", "720p": "768P", "1080p": "1080P"}
_V01: Final = {"720p": "720P"}


@dataclass(frozen=True, slots=True)
class MiniMaxModel:
    """One model's row."""

    name: str
    inputs: frozenset[Input]  # text: text alone; image: a first frame; last_frame; subject: S2V
    resolutions: Mapping[str, str]  # vidgate resolution -> MiniMax's word
    durations: tuple[int, ...]
    durations_at: Mapping[str, frozenset[int]] = field(default_factory=dict)  # e.g. 1080p: 6 s only
    text_at: frozenset[str] | None = None  # resolutions a video from text alone is made at (None: all)
    last_frame_at: frozenset[str] | None = None  # resolutions with a last frame (None: all)

    def resolution_word(self, resolution: str | None) -> str | None:
        return self.resolutions.get(resolution or "")

    @property
    def takes_images(self) -> bool:
        return bool(self.inputs & {"image", "subject"})

    def capabilities(self) -> ModelCapabilities:
        ours = tuple(r for r in ("480p", "720p", "1080p") if r in self.resolutions)
        ratios = IMAGE_RATIOS if self.takes_images else (TEXT_RATIO,)
        aspect_ratios_with: dict[str, frozenset[str]] = {}
        if "text" in self.inputs and self.takes_images:
            aspect_ratios_with["text_to_video"] = frozenset({TEXT_RATIO})
        resolutions_with: dict[str, frozenset[str]] = {}
        if self.text_at is not None:
            resolutions_with["text_to_video"] = self.text_at
        if self.last_frame_at is not None:
            resolutions_with["last_frame"] = self.last_frame_at
        subject = "subject" in self.inputs
        return ModelCapabilities(
            durations=frozenset(self.durations),
            sizes=sizes_for(ours, ratios),
            first_frame="image" in self.inputs,
            last_frame="last_frame" in self.inputs,
            reference_images=1 if subject else 0,  # S2V-01: one character image
            audio=AudioSupport.NONE,  # Hailuo videos are silent
            negative_prompt=False,
            seed=False,
            enhance_prompt=True,  # `prompt_optimizer`
            needs_first_frame="text" not in self.inputs,  # image-to-video and subject models
            durations_with=dict(self.durations_at),
            aspect_ratios_with=aspect_ratios_with,
            resolutions_with=resolutions_with,
        )


_SIX_TEN: Final = (6, 10)
_1080_SIX: Final = {"1080p": frozenset({6})}
_768_1080: Final = frozenset({"720p", "1080p"})


def _v01(name: str, *inputs: Input) -> MiniMaxModel:
    return MiniMaxModel(name, frozenset(inputs), _V01, (6,))


MODELS: Final[dict[str, MiniMaxModel]] = {
    m.name.lower(): m
    for m in (
        MiniMaxModel("MiniMax-Hailuo-2.3", frozenset({"text", "image"}), _HAILUO, _SIX_TEN, _1080_SIX),
        MiniMaxModel("MiniMax-Hailuo-2.3-Fast", frozenset({"image"}), _HAILUO, _SIX_TEN, _1080_SIX),
        MiniMaxModel(
            "MiniMax-Hailuo-02",
            frozenset({"text", "image", "last_frame"}),
            _HAILUO_02,
            _SIX_TEN,
            _1080_SIX,
            text_at=_768_1080,  # 512P is made from an image only
            last_frame_at=_768_1080,
        ),
        _v01("T2V-01", "text"),
        _v01("T2V-01-Director", "text"),
        _v01("I2V-01", "image"),
        _v01("I2V-01-Director", "image"),
        _v01("I2V-01-live", "image"),
        _v01("video-01", "text", "image"),  # the first model's name, text or a first frame
        _v01("S2V-01", "subject"),
    )
}


def minimax_model(name: str) -> MiniMaxModel | None:
    """The table's row for a model name (any letter case); None for a model it does not know."""
    return MODELS.get(name.strip().lower())
