"""What each Kling model takes through Kling AI's official API (the `kling` channel kind's table). Pure.

Sources, read in 2026 (docs/channels.md, `kling` has the same table with its links):
- Kling AI developer documentation (app.klingai.com/global/dev/document-api, the same pages in Chinese at
  app.klingai.com/cn/dev/document-api): "Video Generation - Text to Video" (`model_name` enum, `mode`
  std|pro, `duration` "5"|"10", `aspect_ratio` 16:9|9:16|1:1, `sound` on|off "only V2.6 and later",
  `cfg_scale` "not supported by kling-v2.x"), "Video Generation - Image to Video" (`image`, `image_tail`,
  the image rules: jpg/jpeg/png, at most 10 MB, sides of at least 300 px, aspect ratio 1:2.5 to 2.5:1,
  base64 without a `data:` prefix) and the "Capability Map" (which model makes what in which mode and
  length: the first-and-last-frame column, the resolution of each mode, v2.6's sound in pro mode only);
- for kling-v3 (3 to 15 s, std 720p / pro 1080p, `sound`, first and last frame in both modes), the
  capability map of the v3 release as resellers of the same API publish it (the official pages list the
  model under `model_name`).

Kling names the quality `mode`, not a resolution: std is 720p and pro 1080p on most models, kling-v1
makes 720p in both (std is sent), and the "master" models have one quality and take no `mode` at all.
vidgate routes by resolution, so each model maps a resolution to the mode that makes it.

Rules the routing tables express (`durations_with`, `resolutions_with`): a last frame only in pro mode
(1080p) on most models and only at 5 s on kling-v1; v2.6's sound only in pro mode. One they cannot (v2.6
makes a last frame only without sound) is refused by the adapter before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, sizes_for

__all__ = ["ASPECT_RATIOS", "MODELS", "KlingModel", "kling_model"]

# What `aspect_ratio` takes (text-to-video; an image-led video keeps its image's shape).
ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")
_STD_PRO: Final = {"720p": "std", "1080p": "pro"}
_FIVE_TEN: Final = (5, 10)


@dataclass(frozen=True, slots=True)
class KlingModel:
    """One model's row: what it makes, and in which mode."""

    name: str
    text: bool  # takes `POST /v1/videos/text2video` (False: image-to-video only)
    modes: Mapping[str, str]  # resolution -> the `mode` that makes it ("" for a master: none is sent)
    durations: tuple[int, ...]
    last_frame_at: frozenset[str] = frozenset()  # resolutions with `image_tail` (empty: none)
    last_frame_durations: frozenset[int] | None = None  # None: every duration
    sound_at: frozenset[str] = frozenset()  # resolutions where `sound: on` is made (empty: silent)
    cfg_scale: bool = False  # kling-v1.x only
    last_frame_silent_only: bool = False  # v2.6: a last frame only without sound

    @property
    def resolutions(self) -> tuple[str, ...]:
        return tuple(r for r in ("720p", "1080p") if r in self.modes)

    @property
    def has_sound(self) -> bool:
        return bool(self.sound_at)

    def mode_for(self, resolution: str | None) -> str | None:
        """The `mode` that makes `resolution` ("" for a master model: send none); None: not made."""
        return self.modes.get(resolution or "")

    def capabilities(self) -> ModelCapabilities:
        all_resolutions = frozenset(self.resolutions)
        resolutions_with: dict[str, frozenset[str]] = {}
        if self.last_frame_at and self.last_frame_at != all_resolutions:
            resolutions_with["last_frame"] = self.last_frame_at
        if self.sound_at and self.sound_at != all_resolutions:
            resolutions_with["audio"] = self.sound_at
        durations_with: dict[str, frozenset[int]] = {}
        if self.last_frame_durations is not None:
            durations_with["last_frame"] = self.last_frame_durations
        return ModelCapabilities(
            durations=frozenset(self.durations),
            sizes=sizes_for(self.resolutions, ASPECT_RATIOS),
            first_frame=True,
            last_frame=bool(self.last_frame_at),
            reference_images=0,  # multi-image reference is another endpoint (not mapped)
            audio=AudioSupport.OPTIONAL if self.sound_at else AudioSupport.NONE,
            audio_default=False,  # `sound` defaults to off; the adapter always says which it wants
            negative_prompt=True,
            seed=False,  # Kling takes no seed
            enhance_prompt=False,
            needs_first_frame=not self.text,
            durations_with=durations_with,
            resolutions_with=resolutions_with,
        )


_PRO: Final = frozenset({"1080p"})
_BOTH: Final = frozenset({"720p", "1080p"})

MODELS: Final[dict[str, KlingModel]] = {
    m.name: m
    for m in (
        # v1: 720p in both modes (std is sent); first and last frame at 5 s only.
        KlingModel(
            "kling-v1",
            text=True,
            modes={"720p": "std"},
            durations=_FIVE_TEN,
            last_frame_at=frozenset({"720p"}),
            last_frame_durations=frozenset({5}),
            cfg_scale=True,
        ),
        KlingModel(
            "kling-v1-5", text=False, modes=_STD_PRO, durations=_FIVE_TEN, last_frame_at=_PRO, cfg_scale=True
        ),
        KlingModel(
            "kling-v1-6", text=True, modes=_STD_PRO, durations=_FIVE_TEN, last_frame_at=_PRO, cfg_scale=True
        ),
        KlingModel("kling-v2-master", text=True, modes={"720p": ""}, durations=_FIVE_TEN),
        KlingModel("kling-v2-1", text=False, modes=_STD_PRO, durations=_FIVE_TEN, last_frame_at=_PRO),
        KlingModel("kling-v2-1-master", text=True, modes={"1080p": ""}, durations=_FIVE_TEN),
        KlingModel("kling-v2-5-turbo", text=True, modes=_STD_PRO, durations=_FIVE_TEN, last_frame_at=_PRO),
        # v2.6: sound only in pro mode; a last frame only in pro mode and only silent.
        KlingModel(
            "kling-v2-6",
            text=True,
            modes=_STD_PRO,
            durations=_FIVE_TEN,
            last_frame_at=_PRO,
            sound_at=_PRO,
            last_frame_silent_only=True,
        ),
        # v3: any whole second from 3 to 15, sound and a last frame in both modes.
        KlingModel(
            "kling-v3",
            text=True,
            modes=_STD_PRO,
            durations=tuple(range(3, 16)),
            last_frame_at=_BOTH,
            sound_at=_BOTH,
        ),
    )
}


def kling_model(name: str) -> KlingModel | None:
    """The table's row for a `model_name` (any letter case); None for a model it does not know."""
    return MODELS.get(name.strip().lower())
