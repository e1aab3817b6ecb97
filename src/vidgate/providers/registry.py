"""Channel kind -> provider class; channel settings -> checked options and the routing profile.

Providers are built lazily, once per channel per process. A kind is a provider class that declares
its `traits` (what routing and the API may rely on), its `Options` model (a typo in a channel's
`options` is an error at start, naming the key), whether it needs a `base_url`, and its image limits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from vidgate.channel_config import ChannelSettings
from vidgate.config import Settings
from vidgate.domain.routing import Catalog, ChannelProfile
from vidgate.net.fetch import SafeFetcher
from vidgate.providers.base import Provider
from vidgate.providers.capabilities import model_capabilities
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import BlobStore


@dataclass(frozen=True)
class ProviderDeps:
    settings: Settings
    blobs: BlobStore
    fetcher: SafeFetcher  # for URLs an upstream hands us (a relay's CDN links): SSRF-safe
    http: UpstreamHttp  # for the channels' own addresses


log = structlog.get_logger("vidgate.providers")

Factory = Callable[[ChannelSettings, ProviderDeps], Provider]

# "module:attribute" so that a kind's heavy imports (PyAV, numpy) happen only if it is configured.
KINDS: dict[str, str] = {
    "animate": "vidgate.providers.animate:AnimateProvider",
    "diffusion": "vidgate.providers.diffusion.provider:DiffusionProvider",
    "openai": "vidgate.providers.openai_videos:OpenAIVideosProvider",
    "unified": "vidgate.providers.unified:UnifiedRelayProvider",
    "veo": "vidgate.providers.veo:VeoProvider",
    "seedance": "vidgate.providers.seedance:SeedanceProvider",
    "dashscope": "vidgate.providers.dashscope:DashScopeProvider",
    "kling": "vidgate.providers.kling:KlingProvider",
    "minimax": "vidgate.providers.minimax:MiniMaxProvider",
    "fal": "vidgate.providers.fal:FalProvider",
    "replicate": "vidgate.providers.replicate:ReplicateProvider",
    "openrouter": "vidgate.providers.openrouter:OpenRouterProvider",
    "scripted": "vidgate.testing.scripted:ScriptedProvider",
}


class ChannelConfigError(ValueError):
    """A channel's settings do not suit its kind (said at start, naming the channel and the key)."""


def provider_class(kind: str) -> Any:
    target = KINDS.get(kind, kind if ":" in kind else None)
    if target is None:
        raise ChannelConfigError(f"unknown channel kind {kind!r}; known kinds: {sorted(KINDS)}")
    module_name, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ChannelConfigError(f"channel kind {kind!r} cannot be loaded: {exc}") from exc


def channel_options(channel: ChannelSettings, cls: Any | None = None) -> Any:
    """The channel's `options`, validated by its kind's `Options` model."""
    model: type[BaseModel] | None = getattr(cls or provider_class(channel.kind), "Options", None)
    if model is None:
        return channel.options
    try:
        return model.model_validate(channel.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise ChannelConfigError(f"channel {channel.name!r} (kind {channel.kind}): {problems}") from None


def check_channels(settings: Settings) -> None:
    """Everything about the channels that can be known before the first task, or ChannelConfigError."""
    for channel in settings.channels:
        cls = provider_class(channel.kind)
        channel_options(channel, cls)
        kind_checks = getattr(cls, "check_channel", None)
        if kind_checks is not None:
            kind_checks(channel)  # what only the kind can check (the aggregators' model mappings)
        if getattr(cls, "needs_base_url", False) and not channel.base_url:
            raise ChannelConfigError(f"channel {channel.name!r} (kind {channel.kind}) needs a base_url")
        limit = getattr(cls, "max_images_limit", 16)
        if channel.max_images is not None and channel.max_images > limit:
            raise ChannelConfigError(
                f"channel {channel.name!r}: max_images is {channel.max_images}, but kind {channel.kind} "
                f"takes at most {limit}"
            )
        image_inputs = getattr(cls, "image_inputs", None)
        if (
            channel.image_input is not None
            and image_inputs is not None
            and channel.image_input not in image_inputs
        ):
            raise ChannelConfigError(
                f"channel {channel.name!r}: image_input {channel.image_input!r} is not one of "
                f"{sorted(image_inputs)} for kind {channel.kind}"
            )
        for model, capabilities in profile_for(channel).capabilities.items():
            if not capabilities.durations or not capabilities.sizes:
                raise ChannelConfigError(
                    f"channel {channel.name!r}: model {model!r} is left with no "
                    f"{'durations' if not capabilities.durations else 'sizes'} it can make "
                    "(its kind's list, narrowed by the channel's durations, sizes and orientations)"
                )


def profile_for(channel: ChannelSettings) -> ChannelProfile:
    cls = provider_class(channel.kind)
    max_images = channel.max_images
    if max_images is None:
        max_images = getattr(cls, "default_max_images", 4)
    return ChannelProfile(
        name=channel.name,
        kind=channel.kind,
        models=frozenset(channel.public_models),
        durations=frozenset(channel.durations),
        sizes=frozenset(channel.usable_sizes),
        max_images=max_images,
        watermark_free=channel.watermark_free or str(getattr(cls, "default_watermark_free", "always")),
        priority=channel.priority,
        weight=channel.weight,
        max_concurrent=channel.max_concurrent,
        enabled=channel.enabled,
        honours_idempotency_key=channel.honours_idempotency_key,
        traits=cls.traits_for(channel) if hasattr(cls, "traits_for") else cls.traits,
        pricing=channel.price_list,
        capabilities=model_capabilities(channel, cls, max_images),
        vendor=str(getattr(cls, "vendor", "vidgate")),
    )


def catalog_from_settings(settings: Settings) -> Catalog:
    return Catalog(profile_for(c) for c in settings.channels)


class ProviderRegistry:
    """One provider instance per configured channel, built on first use."""

    def __init__(self, deps: ProviderDeps) -> None:
        self.deps = deps
        self._channels = {c.name: c for c in deps.settings.channels}
        self._built: dict[str, Provider] = {}

    def __call__(self, channel: str) -> Provider:
        provider = self._built.get(channel)
        if provider is None:
            settings = self._channels.get(channel)
            if settings is None:
                raise KeyError(f"channel {channel!r} is not configured")
            factory: Factory = provider_class(settings.kind)
            built: Provider = SecretScrubbing(factory(settings, self.deps), settings.redactor)
            self._built[channel] = provider = built
        return provider

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()
