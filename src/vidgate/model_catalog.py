"""`GET /v1/models`: the models a key may use, what each can do, and what it costs. Pure: no IO.

The list is OpenAI's shape (`{object: "list", data: [{id, object: "model", created, owned_by}]}`, what
`client.models.list()` reads) with two additions per model: `capabilities`, the union of what the
enabled channels serving it can do (domain.capabilities), and `pricing`, what a create holds for each
duration, resolution and sound setting (the most any channel that could take it charges, as the
create's hold is), or null where no channel charges for it.
"""

from __future__ import annotations

from typing import Any

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, size_text
from vidgate.domain.routing import Catalog, RouteRequest
from vidgate.domain.tasks import WatermarkMode
from vidgate.money import format_credits

# OpenAI's `created` is when a model was made; vidgate cannot know that of a vendor's model, so every
# entry carries the same fixed time (2026-10-01, this catalog's first release) rather than a changing one.
CATALOG_CREATED = 1790812800


def model_list(catalog: Catalog, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    models = [m for m in catalog.models() if allowed is None or m in allowed]
    return {"object": "list", "data": [entry for m in models if (entry := model_entry(catalog, m))]}


def model_entry(catalog: Catalog, model: str) -> dict[str, Any] | None:
    """One model's entry (None: no enabled channel serves it)."""
    capabilities = catalog.capabilities(model)
    serving = catalog.serving(model)
    if capabilities is None or not serving:
        return None
    first = min(serving, key=lambda c: c.priority)
    return {
        "id": model,
        "object": "model",
        "created": CATALOG_CREATED,
        "owned_by": first.vendor,
        "capabilities": capabilities.describe(),
        "pricing": _pricing(catalog, model, capabilities),
    }


def _pricing(catalog: Catalog, model: str, capabilities: ModelCapabilities) -> dict[str, Any] | None:
    """Credits held per clip, by resolution (or size, for sizes no resolution word names), sound, and
    duration: `{"720p": {"silent": {"4": "0.8", ...}, "with_audio": {...}}}`."""
    if not any(c.pricing.for_model(model) for c in catalog.serving(model)):
        return None
    sounds = {
        AudioSupport.NONE: (False,),
        AudioSupport.ALWAYS: (True,),
        AudioSupport.OPTIONAL: (False, True),
    }[capabilities.audio]
    shapes = [(r, size_text(r, capabilities.aspect_ratios[0])) for r in capabilities.resolutions]
    if not shapes:  # only sizes no word names (1024x1792): price each size
        shapes = [(s, s) for s in sorted(capabilities.sizes)]
    prices: dict[str, Any] = {}
    for label, size in shapes:
        by_sound: dict[str, Any] = {}
        for audio in sounds:
            by_sound["with_audio" if audio else "silent"] = {
                str(seconds): format_credits(
                    catalog.max_price(
                        RouteRequest(model, seconds, size, 0, WatermarkMode.PREFER_CLEAN, audio=audio)
                    )
                )
                for seconds in sorted(capabilities.durations)
            }
        prices[label] = by_sound
    return {"currency": "credits", "per_clip": prices}
