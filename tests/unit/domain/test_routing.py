"""Routing is pure: capabilities, watermark policy, priority, weighted random among equals, circuits."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

from vidgate.config import Settings
from vidgate.domain.circuit import (
    ChannelHealth,
    CircuitState,
    after_admission,
    after_failure,
    after_success,
)
from vidgate.domain.routing import Catalog, ChannelProfile, RouteRequest
from vidgate.domain.tasks import WatermarkMode
from vidgate.providers.registry import catalog_from_settings

SIZES = frozenset({"720x1280", "1280x720"})


def channel(name: str, **kw) -> ChannelProfile:
    values = {
        "models": frozenset({"sora-2"}),
        "durations": frozenset({10, 15}),
        "sizes": SIZES,
        "max_images": 1,
        "watermark_free": "always",
        **kw,
    }
    return ChannelProfile(name=name, kind="openai", **values)


def request(**kw) -> RouteRequest:
    values = {
        "model": "sora-2",
        "seconds": 10,
        "size": "720x1280",
        "image_count": 0,
        "watermark_mode": WatermarkMode.PREFER_CLEAN,
        **kw,
    }
    return RouteRequest(**values)


def plan(catalog: Catalog, req: RouteRequest, health=None, seed: int = 0, now: int = 1000) -> list[str]:
    return [
        c.name for c in catalog.plan(req, now_ms=now, health=health or {}, rng=random.Random(seed)).channels
    ]


def test_capabilities_filter_the_channels() -> None:
    catalog = Catalog([channel("a"), channel("b", durations=frozenset({10})), channel("c", max_images=4)])
    assert plan(catalog, request(seconds=15)) == ["a", "c"] or plan(catalog, request(seconds=15)) == [
        "c",
        "a",
    ]
    assert plan(catalog, request(image_count=2)) == ["c"]
    assert plan(catalog, request(size="1920x1080")) == []
    assert plan(catalog, request(model="veo3")) == []


def test_priority_then_cleanliness_order_the_channels() -> None:
    catalog = Catalog(
        [
            channel("marked", watermark_free="never"),
            channel("relay", watermark_free="optional"),
            channel("official-backup", priority=5),
            channel("official", priority=1),
        ]
    )
    assert plan(catalog, request()) == ["relay", "marked", "official", "official-backup"]
    # watermark: false never goes where only marked videos come from
    assert plan(catalog, request(watermark_mode=WatermarkMode.REQUIRE_CLEAN)) == [
        "relay",
        "official",
        "official-backup",
    ]


def test_the_example_configs_last_resort_comes_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/vidgate.example.toml calls the built-in engine (always clean, priority 9) the last
    resort, yet every 10/15/25 s sora-2 task went to it rather than to the relay at priority 2."""
    monkeypatch.setenv("VIDGATE_CONFIG", str(Path(__file__).parents[3] / "docs" / "vidgate.example.toml"))
    monkeypatch.setenv("OFFICIAL_API_KEY", "sk-official")
    monkeypatch.setenv("RELAY_CN_KEY", "sk-relay")
    for name in (
        "GEMINI_API_KEY",
        "ARK_API_KEY",
        "DASHSCOPE_API_KEY",
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "MINIMAX_API_KEY",
        "FAL_KEY",
        "REPLICATE_API_TOKEN",
        "OPENROUTER_API_KEY",
    ):
        monkeypatch.setenv(name, f"sk-{name.lower()}")
    catalog = catalog_from_settings(Settings())
    for seconds in (10, 15, 25):
        for seed in range(10):
            order = plan(catalog, request(seconds=seconds), seed=seed)
            assert order == ["relay-cn", "animate"], (seconds, order)


def test_cleanliness_decides_within_a_priority() -> None:
    catalog = Catalog(
        [
            channel("marked", watermark_free="never", priority=1),
            channel("relay", watermark_free="optional", priority=1),
            channel("clean", watermark_free="always", priority=1),
        ]
    )
    assert plan(catalog, request()) == ["clean", "relay", "marked"]


def test_weight_spreads_tasks_among_equals() -> None:
    catalog = Catalog([channel("heavy", weight=3), channel("light", weight=1), channel("later", priority=1)])
    firsts = collections.Counter(plan(catalog, request(), seed=i)[0] for i in range(4000))
    assert set(firsts) == {"heavy", "light"}  # a lower priority never comes first while equals are up
    assert 2.6 < firsts["heavy"] / firsts["light"] < 3.4


def test_an_open_circuit_holds_a_channel_back_until_its_cooldown_ends() -> None:
    catalog = Catalog([channel("a"), channel("b", priority=1)])
    opened = after_failure(ChannelHealth(), 1000, threshold=1, cooldown_ms=30_000, error="HTTP 503")
    assert opened.state is CircuitState.OPEN
    result = catalog.plan(request(), now_ms=2000, health={"a": opened}, rng=random.Random(0))
    assert [c.name for c in result.channels] == ["b"] and "circuit open" in result.held_back["a"]
    assert plan(catalog, request(), health={"a": opened}, now=31_000) == ["a", "b"]  # the half-open probe


def test_circuit_transitions() -> None:
    health = ChannelHealth()
    for n in range(1, 3):
        health = after_failure(health, 0, threshold=3, cooldown_ms=10, error="x")
        assert health.state is CircuitState.CLOSED and health.failures == n
    health = after_failure(health, 0, threshold=3, cooldown_ms=10, error="x")
    assert health.state is CircuitState.OPEN and health.open_until == 10 and not health.admits(5)
    probing = after_admission(health, 10, probe_ms=1000)
    assert probing.state is CircuitState.HALF_OPEN and not probing.admits(500) and probing.admits(1010)
    reopened = after_failure(probing, 20, threshold=3, cooldown_ms=10, error="y")
    assert reopened.state is CircuitState.OPEN and reopened.open_until == 30
    assert after_success(reopened) == ChannelHealth()
    assert after_admission(ChannelHealth(), 0, probe_ms=1) == ChannelHealth()
