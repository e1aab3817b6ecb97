"""Fixtures for the worker's unit tests: a World (tests/unit/worker/world.py) on SQLite in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SettingsFactory
from tests.helpers import scripted_channel
from tests.unit.worker.world import T0, FakeProvider, World
from vidgate.clock import ManualClock
from vidgate.config import WorkerSettings
from vidgate.runtime import open_runtime

QUICK = WorkerSettings(retry_base_seconds=0.5, retry_max_seconds=2, default_poll_seconds=7)

WorldFactory = Callable[..., AbstractAsyncContextManager[World]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the steps' decisions, not the store (tests/contract is)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


def channels(tmp_path: Path, **overrides: Any) -> list[Any]:
    """Two channels serving sora-2: `a` first, then `b`."""
    return [
        scripted_channel(tmp_path / "a", name="a").model_copy(update={"priority": 0, **overrides}),
        scripted_channel(tmp_path / "b", name="b").model_copy(update={"priority": 1, **overrides}),
    ]


@pytest.fixture
def make_world(make_settings: SettingsFactory, tmp_path: Path) -> WorldFactory:
    """`async with make_world(**settings) as world:` (channels `a` and `b`, quick retries by default)."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[World]:
        overrides.setdefault("channels", channels(tmp_path))
        overrides.setdefault("worker", QUICK)
        settings = make_settings(**overrides)
        clock = ManualClock(T0)
        async with open_runtime(settings, clock=clock) as runtime:
            upstreams = {c.name: FakeProvider(c.name) for c in settings.channels}
            yield World(runtime, clock, upstreams, tmp_path / "work")

    return make


@pytest.fixture
async def world(make_world: WorldFactory) -> AsyncIterator[World]:
    async with make_world() as w:
        yield w
