"""What a video costs on a channel (docs/accounts.md). Pure: no IO; amounts in micro-credits.

A channel prices each model per clip, per second of video, or both (`per_clip + per_second * seconds`),
optionally with other prices for some resolutions ("1080p") or sizes ("1792x1024"; a size wins over its
resolution), and at each of those levels a `with_audio` price for videos with sound (Veo charges about
twice per second for them). `"*"` prices every model the channel serves that has no price of its own.
A model without a price costs nothing there, and a channel without pricing charges nothing, so the
embedded default needs no accounts at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgate.domain.capabilities import describe_size

ANY_MODEL = "*"


@dataclass(frozen=True, slots=True)
class Price:
    per_clip: int = 0
    per_second: int = 0
    with_audio: Price | None = None  # the price instead when the video has sound

    def of(self, seconds: int, audio: bool = False) -> int:
        if audio and self.with_audio is not None:
            return self.with_audio.of(seconds)
        return self.per_clip + self.per_second * seconds

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"per_clip": self.per_clip, "per_second": self.per_second}
        if self.with_audio is not None:
            shown["with_audio"] = self.with_audio.describe()
        return shown


@dataclass(frozen=True, slots=True)
class ModelPrice:
    base: Price
    sizes: Mapping[str, Price] = field(default_factory=dict)  # "WxH" -> the price at that size
    resolutions: Mapping[str, Price] = field(default_factory=dict)  # "1080p" -> the price at it

    def at(self, size: str) -> Price:
        """The price that applies at `size`: the size's own, else its resolution's, else the base."""
        if size in self.sizes:
            return self.sizes[size]
        resolution = describe_size(size)[0]
        return self.resolutions.get(resolution or "", self.base)

    def of(self, size: str, seconds: int, audio: bool = False) -> int:
        return self.at(size).of(seconds, audio)

    def describe(self) -> dict[str, Any]:
        return {
            **self.base.describe(),
            "resolutions": {r: p.describe() for r, p in self.resolutions.items()},
            "sizes": {s: p.describe() for s, p in self.sizes.items()},
        }


@dataclass(frozen=True, slots=True)
class PriceList:
    models: Mapping[str, ModelPrice] = field(default_factory=dict)

    def for_model(self, model: str) -> ModelPrice | None:
        return self.models.get(model) or self.models.get(ANY_MODEL)

    def price(self, model: str, size: str, seconds: int, audio: bool = False) -> int:
        priced = self.for_model(model)
        return 0 if priced is None else priced.of(size, seconds, audio)

    def describe(self) -> dict[str, Any] | None:
        """The price list as the admin API shows it (None: this channel charges nothing)."""
        if not self.models:
            return None
        return {model: p.describe() for model, p in self.models.items()}


FREE = PriceList()
