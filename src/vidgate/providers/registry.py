"""Channel kind -> provider factory. Providers are built lazily, once per channel per process."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from vidgate.config import ChannelSettings, Settings
from vidgate.domain.tasks import Task
from vidgate.net.fetch import SafeFetcher
from vidgate.providers.base import Provider, UpstreamJob
from vidgate.store.blobs import BlobStore


@dataclass(frozen=True)
class ProviderDeps:
    settings: Settings
    blobs: BlobStore
    fetcher: SafeFetcher


log = structlog.get_logger("vidgate.providers")

Factory = Callable[[ChannelSettings, ProviderDeps], Provider]

# "module:attribute" so that a kind's heavy imports (PyAV, numpy) happen only if it is configured.
KINDS: dict[str, str] = {
    "animate": "vidgate.providers.animate:AnimateProvider",
    "scripted": "vidgate.testing.scripted:ScriptedProvider",
}


def factory_for(kind: str) -> Factory:
    target = KINDS.get(kind, kind if ":" in kind else None)
    if target is None:
        raise ValueError(f"unknown channel kind {kind!r}; known kinds: {sorted(KINDS)}")
    module_name, _, attribute = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module_name), attribute)
    return factory


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
            provider = factory_for(settings.kind)(settings, self.deps)
            self._built[channel] = provider
        return provider

    def check_kinds(self) -> None:
        """Fail at start, not at the first task, when a channel names an unknown kind."""
        for channel in self._channels.values():
            factory_for(channel.kind)

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()


async def cancel_upstream(providers: Callable[[str], Provider], task: Task) -> None:
    """Tell a task's channel to stop its job, best effort: a channel that will not stop is only logged."""
    if not task.channel or not task.upstream_id:
        return
    try:
        await providers(task.channel).cancel(UpstreamJob(task.upstream_id, memo=task.upstream_state or {}))
    except Exception:
        log.warning("upstream cancel failed", task_id=task.id, channel=task.channel, exc_info=True)
