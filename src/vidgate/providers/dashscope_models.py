"""The Wan models DashScope (Alibaba Cloud Model Studio) serves, and what each one takes. Pure: no IO.

Sources, as the vendor documents them (docs/channels.md, `dashscope` has the table with its links):
Model Studio's "Wan text-to-video API reference (2.1-2.6)", "Wan image-to-video: first frame API
reference", "Wan image-to-video: first and last frames API reference", and the model tables of the
Qwen Cloud developer guides (text-to-video, image-to-video). Three request shapes:

- text-to-video (`t2v`): `POST services/aigc/video-generation/video-synthesis`, the picture's shape as
  `parameters.size` "W*H", one of a fixed list per resolution tier (`T2V_SIZES`);
- image-to-video from a first frame (`i2v`): the same route, `input.img_url` and
  `parameters.resolution` "480P"/"720P"/"1080P"; the video keeps the image's aspect ratio, the tier
  only sets its pixel count;
- first and last frames (`kf2v`): `POST services/aigc/image2video/video-synthesis`,
  `input.first_frame_url` + `input.last_frame_url` and `parameters.resolution`; the video keeps the
  first frame's aspect ratio.

Every model takes `negative_prompt`, `seed` (0 to 2**31 - 1), `prompt_extend` and `watermark`. The 2.5
models and wan2.6-i2v-flash make sound unless `parameters.audio` is false; wan2.6-t2v and wan2.6-i2v are
listed as "video with audio" only; 2.1 and 2.2 are silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, size_text, sizes_for

Mode = Literal["t2v", "i2v", "kf2v"]

CREATE_PATHS: Final[dict[Mode, str]] = {
    "t2v": "services/aigc/video-generation/video-synthesis",
    "i2v": "services/aigc/video-generation/video-synthesis",
    "kf2v": "services/aigc/image2video/video-synthesis",
}
# `parameters.size` of the text-to-video models, by (resolution, aspect ratio): the vendor's list for
# each tier (480P has no 4:3 or 3:4).
T2V_SIZES: Final[dict[tuple[str, str], str]] = {
    ("480p", "16:9"): "832*480",
    ("480p", "9:16"): "480*832",
    ("480p", "1:1"): "624*624",
    ("720p", "16:9"): "1280*720",
    ("720p", "9:16"): "720*1280",
    ("720p", "1:1"): "960*960",
    ("720p", "4:3"): "1088*832",
    ("720p", "3:4"): "832*1088",
    ("1080p", "16:9"): "1920*1080",
    ("1080p", "9:16"): "1080*1920",
    ("1080p", "1:1"): "1440*1440",
    ("1080p", "4:3"): "1632*1248",
    ("1080p", "3:4"): "1248*1632",
}
# Image-led models follow their image's shape; a request may name any of these ratios to pick the tier.
IMAGE_LED_RATIOS: Final = ("16:9", "9:16", "1:1", "4:3", "3:4")
SEED_MAX: Final = 2**31 - 1
# Sides DashScope takes for an input image (img_url, first_frame_url, last_frame_url).
IMAGE_SIDE_RANGE: Final = (360, 2000)


@dataclass(frozen=True, slots=True)
class WanModel:
    name: str
    mode: Mode
    resolutions: tuple[str, ...]  # "480p", "720p", "1080p"
    durations: tuple[int, ...]
    audio: AudioSupport = AudioSupport.NONE  # OPTIONAL: `parameters.audio`, sound unless it is false

    @property
    def create_path(self) -> str:
        return CREATE_PATHS[self.mode]

    def t2v_size(self, resolution: str, aspect_ratio: str) -> str | None:
        """The `parameters.size` a text-to-video request of this shape is sent as (None: not made)."""
        if self.mode != "t2v" or resolution not in self.resolutions:
            return None
        return T2V_SIZES.get((resolution, aspect_ratio))

    def capabilities(self) -> ModelCapabilities:
        if self.mode == "t2v":
            sizes = frozenset(size_text(r, a) for (r, a) in T2V_SIZES if r in self.resolutions)
        else:
            sizes = sizes_for(self.resolutions, IMAGE_LED_RATIOS)
        return ModelCapabilities(
            durations=frozenset(self.durations),
            sizes=sizes,
            first_frame=self.mode != "t2v",
            last_frame=self.mode == "kf2v",
            reference_images=0,
            audio=self.audio,
            audio_default=self.audio is not AudioSupport.NONE,
            negative_prompt=True,
            seed=True,
            enhance_prompt=True,
            needs_first_frame=self.mode != "t2v",  # image-led models refuse a request without one
            needs_last_frame=self.mode == "kf2v",
            max_seed=2**31 - 1,  # DashScope's seed is [0, 2147483647]
        )


_R480_720_1080 = ("480p", "720p", "1080p")
_OPTIONAL, _ALWAYS = AudioSupport.OPTIONAL, AudioSupport.ALWAYS
_WAN26_DURATIONS = tuple(range(2, 16))  # any whole number of seconds from 2 to 15


def _models() -> dict[str, WanModel]:
    table = [
        WanModel("wan2.6-t2v", "t2v", ("720p", "1080p"), _WAN26_DURATIONS, audio=_ALWAYS),
        WanModel("wan2.6-i2v", "i2v", ("720p", "1080p"), _WAN26_DURATIONS, audio=_ALWAYS),
        WanModel("wan2.6-i2v-flash", "i2v", ("720p", "1080p"), _WAN26_DURATIONS, audio=_OPTIONAL),
        WanModel("wan2.5-t2v-preview", "t2v", _R480_720_1080, (5, 10), audio=_OPTIONAL),
        WanModel("wan2.5-i2v-preview", "i2v", _R480_720_1080, (5, 10), audio=_OPTIONAL),
        WanModel("wan2.2-t2v-plus", "t2v", ("480p", "1080p"), (5,)),
        WanModel("wan2.2-i2v-plus", "i2v", ("480p", "1080p"), (5,)),
        WanModel("wan2.2-i2v-flash", "i2v", _R480_720_1080, (5,)),
        WanModel("wan2.2-kf2v-flash", "kf2v", _R480_720_1080, (5,)),
    ]
    # The 2.1 models answer to both spellings (`wanx2.1-...` is the older one, still in the SDK).
    for prefix in ("wan2.1", "wanx2.1"):
        table += [
            WanModel(f"{prefix}-t2v-turbo", "t2v", ("480p", "720p"), (5,)),
            WanModel(f"{prefix}-t2v-plus", "t2v", ("720p",), (5,)),
            WanModel(f"{prefix}-i2v-turbo", "i2v", ("480p", "720p"), (3, 4, 5)),
            WanModel(f"{prefix}-i2v-plus", "i2v", ("720p",), (5,)),
            WanModel(f"{prefix}-kf2v-plus", "kf2v", ("720p",), (5,)),
        ]
    return {m.name: m for m in table}


MODELS: Final[dict[str, WanModel]] = _models()


def wan_model(name: str) -> WanModel | None:
    return MODELS.get(name)
