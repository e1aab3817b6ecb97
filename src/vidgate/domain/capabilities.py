"""What a model can do on a channel, and what a request asks of it. Pure: no IO.

Today's video models differ in every option: Veo 3.x makes 4, 6 or 8 s with sound at 16:9 or 9:16,
Wan 2.2's first-last-frame model takes two images and no sound, Seedance takes up to four reference
images at six aspect ratios. Each channel kind declares a `ModelCapabilities` for the vendor models it
knows (an operator can override any of it per model in the channel's `capabilities`), routing sends a
task only where its model can do everything the request asks, and a request no channel can honour is
refused at create naming the field (never silently dropped).

Sizes stay the one currency of routing: a resolution word and an aspect ratio name one canonical
`WxH` (`canonical_size`), so `720p` + `9:16` is `720x1280`, the size OpenAI's dialect sends.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

RESOLUTIONS = ("480p", "720p", "1080p")
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
_RATIO_PARTS = {ratio: tuple(int(p) for p in ratio.split(":")) for ratio in ASPECT_RATIOS}
# Optional request fields a model either honours or refuses (booleans and images are checked apart).
OPTIONAL_FIELDS = ("seed", "negative_prompt", "enhance_prompt")
_FEATURE_WORDS = {
    "last_frame": "a last frame",
    "reference_images": "reference images",
    "audio": "sound",
    "text_to_video": "a video from text alone",
}


class AudioSupport(enum.StrEnum):
    NONE = "none"  # silent videos only
    OPTIONAL = "optional"  # with or without sound, as asked
    ALWAYS = "always"  # always with sound


def canonical_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """The (width, height) a resolution word and an aspect ratio stand for: the short side is the
    resolution's number, the long side the nearest even number for the ratio (854x480, 1680x720)."""
    short = int(resolution.removesuffix("p"))
    a, b = _RATIO_PARTS[aspect_ratio]
    long = round(short * max(a, b) / min(a, b) / 2) * 2
    return (long, short) if a > b else (short, long)


def size_text(resolution: str, aspect_ratio: str) -> str:
    width, height = canonical_size(resolution, aspect_ratio)
    return f"{width}x{height}"


# Every size a resolution word and an aspect ratio can name, and the way back.
CANONICAL_SIZES: dict[str, tuple[str, str]] = {
    size_text(r, a): (r, a) for r in RESOLUTIONS for a in ASPECT_RATIOS
}
# Sora's six sizes (9:16 and 16:9 at 720p and 1080p, and sora-2-pro's 1024x1792): what a channel takes
# unless it says otherwise. Every size a request may name is one of these or a canonical one.
CLASSIC_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080")
ALL_SIZES = tuple(dict.fromkeys([*CLASSIC_SIZES, *CANONICAL_SIZES]))


def describe_size(size: str) -> tuple[str | None, str | None]:
    """(resolution, aspect_ratio) of a `WxH` size; None for a size no word names (1024x1792)."""
    return CANONICAL_SIZES.get(size, (None, None))


def sizes_for(resolutions: Iterable[str], aspect_ratios: Iterable[str]) -> frozenset[str]:
    ratios = list(aspect_ratios)
    return frozenset(size_text(r, a) for r in resolutions for a in ratios)


@dataclass(frozen=True, slots=True)
class GenerationAsk:
    """What a request asks of a model beyond model, duration and size."""

    image_count: int = 0  # images[]: a first frame, or reference images
    last_frame: bool = False
    audio: bool | None = None  # None: the client did not say
    options: frozenset[str] = frozenset()  # which of OPTIONAL_FIELDS it sets
    seed: int | None = None

    def features(self, size: str) -> set[str]:
        """What a model may tie to a duration, an aspect ratio or a resolution: the resolution word, a
        last frame, reference images (more than one image), sound asked for (`audio`), and a video made
        from text alone, no image (`text_to_video`)."""
        found = {f for f in (describe_size(size)[0],) if f}
        if self.last_frame:
            found.add("last_frame")
        if self.image_count > 1:
            found.add("reference_images")
        if self.audio is True:
            found.add("audio")
        if self.image_count == 0 and not self.last_frame:
            found.add("text_to_video")
        return found


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """What one model can do on one channel."""

    durations: frozenset[int]
    sizes: frozenset[str]  # "WxH"
    first_frame: bool = True  # one image in images[] is the first frame
    last_frame: bool = False  # `last_frame` is honoured (first-last-frame models)
    reference_images: int = 0  # how many images[] it takes as references (0: none)
    audio: AudioSupport = AudioSupport.NONE
    audio_default: bool = False  # whether it makes sound when the request does not say
    negative_prompt: bool = False
    seed: bool = False
    enhance_prompt: bool = False
    needs_first_frame: bool = False  # image-to-video models: images[] must hold an image (first or reference)
    needs_last_frame: bool = False  # first-last-frame models
    max_seed: int = 2**32 - 1
    # Features (a resolution word, "last_frame", "reference_images", "audio", "text_to_video") only made
    # at some durations, aspect ratios or resolutions: Veo 3.1 makes 1080p, last frames and references
    # only at 8 s; Kling 1.6 makes last frames only in its pro mode (1080p).
    durations_with: Mapping[str, frozenset[int]] = field(default_factory=dict)
    aspect_ratios_with: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resolutions_with: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def max_images(self) -> int:
        return max(int(self.first_frame), self.reference_images)

    @property
    def resolutions(self) -> list[str]:
        return [r for r in RESOLUTIONS if any(describe_size(s)[0] == r for s in self.sizes)]

    @property
    def aspect_ratios(self) -> list[str]:
        return [a for a in ASPECT_RATIOS if any(describe_size(s)[1] == a for s in self.sizes)]

    def makes_audio(self, asked: bool | None) -> bool:
        """Whether a video made for a request asking `asked` has sound (pricing depends on it)."""
        if self.audio is AudioSupport.NONE:
            return False
        if self.audio is AudioSupport.ALWAYS:
            return True
        return self.audio_default if asked is None else asked

    def refuses(self, ask: GenerationAsk) -> str | None:
        """The request field this model cannot honour (None: it can honour them all)."""
        if ask.image_count > self.max_images or (self.needs_first_frame and ask.image_count == 0):
            return "images"
        if (ask.last_frame and not self.last_frame) or (self.needs_last_frame and not ask.last_frame):
            return "last_frame"
        if ask.audio is True and self.audio is AudioSupport.NONE:
            return "generate_audio"
        if ask.audio is False and self.audio is AudioSupport.ALWAYS:
            return "generate_audio"
        for name in OPTIONAL_FIELDS:
            if name in ask.options and not getattr(self, name):
                return name
        if ask.seed is not None and ask.seed > self.max_seed:
            return "seed"
        return None

    def conflict(self, seconds: int, size: str, ask: GenerationAsk) -> tuple[str, str] | None:
        """(param, why) when what the request asks is made, but not at this duration, aspect ratio or
        resolution."""
        resolution, ratio = describe_size(size)
        for feature in sorted(ask.features(size)):
            durations = self.durations_with.get(feature)
            if durations is not None and seconds not in durations:
                shown = ", ".join(f"{d} s" for d in sorted(durations))
                return "duration", f"{_FEATURE_WORDS.get(feature, feature)} is made only at {shown}"
            ratios = self.aspect_ratios_with.get(feature)
            if ratios is not None and ratio not in ratios:
                return "aspect_ratio", f"{_FEATURE_WORDS.get(feature, feature)} is made only at " + ", ".join(
                    sorted(ratios)
                )
            resolutions = self.resolutions_with.get(feature)
            if resolutions is not None and resolution not in resolutions:
                shown = ", ".join(r for r in RESOLUTIONS if r in resolutions)
                return "resolution", f"{_FEATURE_WORDS.get(feature, feature)} is made only at {shown}"
        return None

    def describe(self) -> dict[str, Any]:
        """As `GET /v1/models` and `vidgate channels` show it."""
        return {
            "durations": sorted(self.durations),
            "resolutions": self.resolutions,
            "aspect_ratios": self.aspect_ratios,
            "sizes": sorted(self.sizes, key=_size_order),
            "audio": self.audio.value,
            "audio_default": self.makes_audio(None),
            "images": {
                "first_frame": self.first_frame,
                "last_frame": self.last_frame,
                "reference_images": self.reference_images,
                "max": self.max_images,
                "first_frame_required": self.needs_first_frame,
                "last_frame_required": self.needs_last_frame,
            },
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "max_seed": self.max_seed if self.seed else None,
            "enhance_prompt": self.enhance_prompt,
            "durations_with": {f: sorted(d) for f, d in self.durations_with.items()},
            "aspect_ratios_with": {f: sorted(a) for f, a in self.aspect_ratios_with.items()},
            "resolutions_with": {
                f: [r for r in RESOLUTIONS if r in rs] for f, rs in self.resolutions_with.items()
            },
        }


def merge(capabilities: Iterable[ModelCapabilities]) -> ModelCapabilities | None:
    """What a model can do somewhere: the union over the channels that serve it (None: nowhere)."""
    found = list(capabilities)
    if not found:
        return None
    # Silent somewhere, with sound elsewhere: the client may ask for either.
    audio_kinds = {c.audio for c in found}
    audio = audio_kinds.pop() if len(audio_kinds) == 1 else AudioSupport.OPTIONAL
    return ModelCapabilities(
        durations=frozenset().union(*(c.durations for c in found)),
        sizes=frozenset().union(*(c.sizes for c in found)),
        first_frame=any(c.first_frame for c in found),
        last_frame=any(c.last_frame for c in found),
        reference_images=max(c.reference_images for c in found),
        audio=audio,
        audio_default=any(c.makes_audio(None) for c in found),
        negative_prompt=any(c.negative_prompt for c in found),
        seed=any(c.seed for c in found),
        enhance_prompt=any(c.enhance_prompt for c in found),
        needs_first_frame=all(c.needs_first_frame for c in found),
        needs_last_frame=all(c.needs_last_frame for c in found),
        max_seed=max(c.max_seed for c in found),
        # A tie holds everywhere only if every channel has it; conflicts are checked per channel anyway.
        durations_with=_common_ties([c.durations_with for c in found]),
        aspect_ratios_with=_common_ties([c.aspect_ratios_with for c in found]),
        resolutions_with=_common_ties([c.resolutions_with for c in found]),
    )


def _common_ties(ties: list[Mapping[str, frozenset[Any]]]) -> dict[str, frozenset[Any]]:
    shared = set(ties[0]).intersection(*ties[1:])
    return {f: frozenset().union(*(t[f] for t in ties)) for f in shared}


@dataclass(frozen=True, slots=True)
class CapabilityOverride:
    """An operator's corrections to a model's capabilities on one channel (every field optional)."""

    durations: tuple[int, ...] | None = None
    resolutions: tuple[str, ...] | None = None
    aspect_ratios: tuple[str, ...] | None = None
    values: Mapping[str, Any] = field(default_factory=dict)  # the other fields, by name

    def apply(self, base: ModelCapabilities) -> ModelCapabilities:
        changed = replace(base, **dict(self.values))
        if self.durations is not None:
            changed = replace(changed, durations=frozenset(self.durations))
        if self.resolutions is not None or self.aspect_ratios is not None:
            resolutions = self.resolutions if self.resolutions is not None else base.resolutions
            ratios = self.aspect_ratios if self.aspect_ratios is not None else base.aspect_ratios
            changed = replace(changed, sizes=sizes_for(resolutions, ratios))
        return changed


def _size_order(size: str) -> tuple[int, int]:
    width, height = (int(p) for p in size.split("x"))
    return (min(width, height), width)
