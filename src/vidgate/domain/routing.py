"""Which channels may serve a request, and in which order to try them. Pure: no IO.

Order (spec section 3 and the channel settings): first what can serve at all (model, duration, size,
image count, watermark policy, enabled), then the operator's `priority` (what the operator says goes
first does go first: a clean but crude last resort must not outrank the paid model), then cleanliness
within a priority (always, optional, never), then a weighted random order among channels that tie on
both, so `weight` spreads load. Channels whose circuit is open are held back; saturation (`max_concurrent`)
is checked atomically when a task is admitted to a channel, not here.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vidgate.domain.capabilities import GenerationAsk, ModelCapabilities, merge
from vidgate.domain.circuit import ChannelHealth
from vidgate.domain.pricing import FREE, PriceList
from vidgate.domain.tasks import WatermarkMode

# Preference order for `watermark: true` (prefer clean): clean-always first, marked-only last.
_CLEANLINESS_RANK = {"always": 0, "optional": 1, "never": 2}


class RemixSupport(enum.StrEnum):
    NONE = "none"
    RERENDER = "rerender"  # a built-in engine renders the source's inputs again with the new prompt
    UPSTREAM = "upstream"  # the upstream remixes its own job (OpenAI `POST /videos/{id}/remix`)


@dataclass(frozen=True, slots=True)
class ChannelTraits:
    """What a channel kind can do, declared by its provider class (never guessed from the kind name)."""

    builtin_engine: bool = False  # renders on this machine: no upstream, nothing billed
    remix: RemixSupport = RemixSupport.NONE
    can_cancel: bool = False  # the dialect has a way to stop (or delete) a job
    can_find_jobs: bool = False  # it can be asked whether a job was made (after an unknown outcome)


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """What a channel declares it can do; built from the channel settings and its kind's traits."""

    name: str
    kind: str
    models: frozenset[str]
    durations: frozenset[int]
    sizes: frozenset[str]  # "WxH", already limited to the allowed orientations
    max_images: int
    watermark_free: str
    priority: int = 0
    weight: float = 1.0
    max_concurrent: int | None = None
    enabled: bool = True
    honours_idempotency_key: bool = False
    traits: ChannelTraits = field(default_factory=ChannelTraits)
    pricing: PriceList = FREE
    vendor: str = "vidgate"  # who makes the models it serves (`owned_by` in GET /v1/models)
    # Per public model; a model missing here can do what the channel-wide fields above say, no more.
    capabilities: Mapping[str, ModelCapabilities] = field(default_factory=dict)

    def capabilities_of(self, model: str) -> ModelCapabilities:
        found = self.capabilities.get(model)
        if found is not None:
            return found
        return ModelCapabilities(self.durations, self.sizes, first_frame=self.max_images >= 1,
                                 reference_images=self.max_images if self.max_images > 1 else 0)  # fmt: skip

    def price(self, request: RouteRequest) -> int:
        """What `request` costs on this channel, in micro-credits."""
        audio = self.capabilities_of(request.model).makes_audio(request.audio)
        return self.pricing.price(request.model, request.size, request.seconds, audio)

    def serves(self, model: str) -> bool:
        return self.enabled and model in self.models

    def allows_watermark_mode(self, mode: WatermarkMode) -> bool:
        return mode is WatermarkMode.PREFER_CLEAN or self.watermark_free in ("always", "optional")

    def fits(self, request: RouteRequest) -> bool:
        if not self.serves(request.model) or not self.allows_watermark_mode(request.watermark_mode):
            return False
        model = self.capabilities_of(request.model)
        ask = request.ask
        return (
            request.seconds in model.durations
            and request.size in model.sizes
            and model.refuses(ask) is None
            and model.conflict(request.seconds, request.size, ask) is None
        )

    @property
    def safe_to_resubmit(self) -> bool:
        """Whether sending a submit again after an unknown outcome cannot make a second paid job."""
        return self.traits.builtin_engine or self.honours_idempotency_key


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    seconds: int
    size: str  # "WxH"
    image_count: int  # images[] (first frame or references; the last frame is apart)
    watermark_mode: WatermarkMode
    last_frame: bool = False
    audio: bool | None = None
    options: frozenset[str] = frozenset()  # which of capabilities.OPTIONAL_FIELDS are set
    seed: int | None = None

    @property
    def ask(self) -> GenerationAsk:
        return GenerationAsk(self.image_count, self.last_frame, self.audio, self.options, self.seed)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Channels to try, best first, and those held back with the reason (circuit open)."""

    channels: tuple[ChannelProfile, ...]
    held_back: Mapping[str, str]


class Catalog:
    """The configured channels, answering 'what can model X do' and 'where may this task go'."""

    def __init__(self, channels: Iterable[ChannelProfile]) -> None:
        self.channels: tuple[ChannelProfile, ...] = tuple(channels)
        self._by_name = {c.name: c for c in self.channels}

    def serving(self, model: str) -> list[ChannelProfile]:
        return [c for c in self.channels if c.serves(model)]

    def models(self) -> list[str]:
        return sorted({m for c in self.channels if c.enabled for m in c.models})

    def capabilities(self, model: str) -> ModelCapabilities | None:
        """What `model` can do on some channel: the union over the enabled channels serving it."""
        return merge(c.capabilities_of(model) for c in self.serving(model))

    def durations(self, model: str) -> list[int]:
        return sorted({d for c in self.serving(model) for d in c.capabilities_of(model).durations})

    def sizes(self, model: str) -> list[str]:
        return sorted({s for c in self.serving(model) for s in c.capabilities_of(model).sizes})

    def max_images(self, model: str) -> int:
        return max((c.capabilities_of(model).max_images for c in self.serving(model)), default=0)

    def candidates(self, request: RouteRequest, exclude: Sequence[str] = ()) -> list[ChannelProfile]:
        """Channels that can take this request in a stable order (priority, cleanliness, position)."""
        fitting = [(i, c) for i, c in enumerate(self.channels) if c.fits(request) and c.name not in exclude]
        fitting.sort(key=lambda ic: (ic[1].priority, _CLEANLINESS_RANK[ic[1].watermark_free], ic[0]))
        return [c for _, c in fitting]

    def plan(
        self,
        request: RouteRequest,
        *,
        now_ms: int,
        health: Mapping[str, ChannelHealth],
        rng: random.Random,
        exclude: Sequence[str] = (),
    ) -> RoutePlan:
        """The channels to try for `request` now, in order (see the module docstring)."""
        held_back: dict[str, str] = {}
        ranked: list[tuple[int, int, float, ChannelProfile]] = []
        for channel in self.candidates(request, exclude):
            state = health.get(channel.name)
            if state is not None and not state.admits(now_ms):
                held_back[channel.name] = state.describe(now_ms)
                continue
            rank = _CLEANLINESS_RANK[channel.watermark_free]
            ranked.append((channel.priority, rank, _weighted_key(rng, channel.weight), channel))
        ranked.sort(key=lambda r: (r[0], r[1], r[2]))
        return RoutePlan(tuple(r[3] for r in ranked), held_back)

    def max_price(self, request: RouteRequest) -> int:
        """The most `request` can cost on any channel that could take it: what a create holds, since
        which channel serves it is only decided when it is submitted."""
        return max((c.price(request) for c in self.candidates(request)), default=0)

    def by_name(self, name: str) -> ChannelProfile | None:
        return self._by_name.get(name)


def _weighted_key(rng: random.Random, weight: float) -> float:
    """Sorting by this key gives a weighted random order (Efraimidis-Spirakis: -ln(U) / w)."""
    return -math.log(1.0 - rng.random()) / weight
