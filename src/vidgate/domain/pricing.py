"""What a video costs on a channel (docs/accounts.md). Pure: no IO; amounts in micro-credits.

A channel prices each model per clip, per second of video, or both (`per_clip + per_second * seconds`),
optionally with another price for some sizes; `"*"` prices every model the channel serves that has no
price of its own. A model without a price costs nothing there, and a channel without pricing charges
nothing, so the embedded default needs no accounts at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANY_MODEL = "*"


@dataclass(frozen=True, slots=True)
class Price:
    per_clip: int = 0
    per_second: int = 0

    def of(self, seconds: int) -> int:
        return self.per_clip + self.per_second * seconds

    def describe(self) -> dict[str, int]:
        return {"per_clip": self.per_clip, "per_second": self.per_second}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    base: Price
    sizes: Mapping[str, Price] = field(default_factory=dict)  # "WxH" -> the price at that size

    def of(self, size: str, seconds: int) -> int:
        return self.sizes.get(size, self.base).of(seconds)


@dataclass(frozen=True, slots=True)
class PriceList:
    models: Mapping[str, ModelPrice] = field(default_factory=dict)

    def price(self, model: str, size: str, seconds: int) -> int:
        priced = self.models.get(model) or self.models.get(ANY_MODEL)
        return 0 if priced is None else priced.of(size, seconds)

    def describe(self) -> dict[str, Any] | None:
        """The price list as the admin API shows it (None: this channel charges nothing)."""
        if not self.models:
            return None
        return {
            model: {**p.base.describe(), "sizes": {s: sp.describe() for s, sp in p.sizes.items()}}
            for model, p in self.models.items()
        }


FREE = PriceList()
