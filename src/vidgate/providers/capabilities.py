"""What each model a channel serves can do there: its kind's word for it, then the operator's.

Three layers, each over the one before:
1. the kind's table of the vendor models it knows (`model_capabilities(channel, upstream_model)` on the
   provider class: Veo 3.1 makes 4/6/8 s with sound), or, for a model it does not know and for kinds
   with no table (openai, unified, engines), the channel's own `durations`, `sizes`, `orientations` and
   `max_images` with the kind's `generic_capabilities(channel)` (which optional fields it carries);
2. for a known model, the channel's `durations`/`sizes`/`orientations` narrow the table where the
   operator set them;
3. the channel's `capabilities` settings: `"*"` first, then the model's own entry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vidgate.channel_config import ChannelSettings, orientation_of
from vidgate.domain.capabilities import ModelCapabilities
from vidgate.domain.pricing import ANY_MODEL


def generic(channel: ChannelSettings, cls: Any, max_images: int) -> ModelCapabilities:
    """A model described by the channel's settings alone, with what the kind says it carries."""
    extra = cls.generic_capabilities(channel) if hasattr(cls, "generic_capabilities") else {}
    base = ModelCapabilities(
        durations=frozenset(channel.durations),
        sizes=frozenset(channel.usable_sizes),
        first_frame=max_images >= 1,
        reference_images=max_images if max_images > 1 else 0,
    )
    return replace(base, **extra)


def _narrowed(
    channel: ChannelSettings, known: ModelCapabilities, max_images: int | None
) -> ModelCapabilities:
    """A kind's table entry, narrowed by the channel-wide settings the operator wrote down."""
    chosen = channel.model_fields_set
    narrowed = known
    if "durations" in chosen:
        narrowed = replace(narrowed, durations=narrowed.durations & frozenset(channel.durations))
    if "sizes" in chosen or "orientations" in chosen:
        allowed = set(channel.usable_sizes) if "sizes" in chosen else None
        sizes = {
            s
            for s in narrowed.sizes
            if (allowed is None or s in allowed) and orientation_of(s) in channel.orientations
        }
        narrowed = replace(narrowed, sizes=frozenset(sizes))
    if max_images is not None:
        narrowed = replace(
            narrowed,
            first_frame=narrowed.first_frame and max_images >= 1,
            reference_images=min(narrowed.reference_images, max_images),
        )
    return narrowed


def model_capabilities(channel: ChannelSettings, cls: Any, max_images: int) -> dict[str, ModelCapabilities]:
    """Public model -> what it can do on `channel` (kind class `cls`)."""
    found: dict[str, ModelCapabilities] = {}
    for model in channel.public_models:
        lookup = getattr(cls, "model_capabilities", None)
        known = lookup(channel, channel.upstream_model(model)) if lookup is not None else None
        if known is None:
            capabilities = generic(channel, cls, max_images)
        else:
            capabilities = _narrowed(channel, known, channel.max_images)
        for key in (ANY_MODEL, model):
            override = channel.capabilities.get(key)
            if override is not None:
                capabilities = override.to_override().apply(capabilities)
        found[model] = capabilities
    return found


def uncarried_correction(channel: ChannelSettings, cannot: dict[str, str]) -> str | None:
    """Why the channel's `capabilities` turn on a field its kind maps to nothing (`cannot`: field -> the
    reason), naming the channel, the model and the field; None when every correction can be carried.
    A vendor kind reads it at start (`traits_for`): such a field would pass routing and reach nothing."""
    for model, settings in channel.capabilities.items():
        for name, why in cannot.items():
            if getattr(settings, name, None):
                return (
                    f"channel {channel.name!r}: capabilities of model {model!r} set {name}, but {why}: "
                    "the request field would reach nothing upstream"
                )
    return None
