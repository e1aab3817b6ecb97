"""Which channels can serve a request, in the order to try them (spec section 3: watermark policy)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vidgate.domain.tasks import WatermarkMode

# Preference order for `watermark: true` (prefer clean): clean-always first, marked-only last.
_CLEANLINESS_RANK = {"always": 0, "optional": 1, "never": 2}


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """What a channel declares it can do; built from the channel settings."""

    name: str
    kind: str
    models: frozenset[str]
    durations: frozenset[int]
    sizes: frozenset[str]
    max_images: int
    watermark_free: str
    priority: int = 0
    enabled: bool = True

    def serves(self, model: str) -> bool:
        return self.enabled and model in self.models

    def allows_watermark_mode(self, mode: WatermarkMode) -> bool:
        return mode is WatermarkMode.PREFER_CLEAN or self.watermark_free in ("always", "optional")


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    seconds: int
    size: str  # "WxH"
    image_count: int
    watermark_mode: WatermarkMode


class Catalog:
    """The configured channels, answering 'what can model X do' for request validation."""

    def __init__(self, channels: Iterable[ChannelProfile]) -> None:
        self.channels: tuple[ChannelProfile, ...] = tuple(channels)

    def serving(self, model: str) -> list[ChannelProfile]:
        return [c for c in self.channels if c.serves(model)]

    def models(self) -> list[str]:
        return sorted({m for c in self.channels if c.enabled for m in c.models})

    def durations(self, model: str) -> list[int]:
        return sorted({d for c in self.serving(model) for d in c.durations})

    def sizes(self, model: str) -> list[str]:
        return sorted({s for c in self.serving(model) for s in c.sizes})

    def max_images(self, model: str) -> int:
        return max((c.max_images for c in self.serving(model)), default=0)

    def candidates(self, request: RouteRequest, exclude: Sequence[str] = ()) -> list[ChannelProfile]:
        """Channels that can take this request, best first.

        Order: cleanliness (always, optional, never), then the channel's priority, then its
        position in the configuration, so the order is stable and an operator controls it.
        """
        fitting = [
            (i, c)
            for i, c in enumerate(self.channels)
            if c.serves(request.model)
            and c.name not in exclude
            and request.seconds in c.durations
            and request.size in c.sizes
            and request.image_count <= c.max_images
            and c.allows_watermark_mode(request.watermark_mode)
        ]
        fitting.sort(key=lambda ic: (_CLEANLINESS_RANK[ic[1].watermark_free], ic[1].priority, ic[0]))
        return [c for _, c in fitting]

    def by_name(self, name: str) -> ChannelProfile | None:
        return next((c for c in self.channels if c.name == name), None)
