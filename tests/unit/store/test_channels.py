"""Channel health in the database (store/channels.py): the circuit breaker's state, shared by every
worker process, on SQLite and PostgreSQL (`db_url`), on a hand-moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from tests.conftest import SettingsFactory
from vidgate.clock import ManualClock
from vidgate.domain.circuit import CircuitState
from vidgate.runtime import Runtime, open_runtime
from vidgate.store import channels as channels_module
from vidgate.store.channels import ChannelHealthStore
from vidgate.store.dbtime import QueueClock
from vidgate.store.tables import channel_health

pytestmark = pytest.mark.anyio
T0 = 1_760_000_000_000
THRESHOLD = 3
COOLDOWN_MS = 30_000


@pytest.fixture
async def runtime(make_settings: SettingsFactory) -> AsyncIterator[Runtime]:
    async with open_runtime(make_settings()) as rt:
        yield rt


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def store_on(runtime: Runtime, clock: ManualClock) -> ChannelHealthStore:
    """One process's view of channel health (two of them play two worker processes)."""
    return ChannelHealthStore(
        runtime.engine, QueueClock(clock), failure_threshold=THRESHOLD, cooldown_ms=COOLDOWN_MS
    )


@pytest.fixture
def health(runtime: Runtime, clock: ManualClock) -> ChannelHealthStore:
    return store_on(runtime, clock)


async def rows(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(channel_health))).scalar_one())


async def test_a_channel_never_recorded_is_healthy_and_has_no_row(
    health: ChannelHealthStore, runtime: Runtime
) -> None:
    assert (await health.snapshot(fresh=True)).get("a") is None
    assert await rows(runtime) == 0


async def test_failures_below_the_threshold_are_counted_with_the_circuit_still_closed(
    health: ChannelHealthStore,
) -> None:
    for _ in range(THRESHOLD - 1):
        state = await health.record_failure("a", "HTTP 503")
    assert state.state is CircuitState.CLOSED and state.failures == THRESHOLD - 1
    saved = (await health.snapshot(fresh=True))["a"]
    assert saved.failures == THRESHOLD - 1 and saved.last_error == "HTTP 503" and saved.admits(T0)


async def test_the_failure_that_reaches_the_threshold_opens_the_circuit_for_the_cooldown(
    health: ChannelHealthStore, clock: ManualClock
) -> None:
    for _ in range(THRESHOLD):
        await health.record_failure("a", "HTTP 503")
    saved = (await health.snapshot(fresh=True))["a"]
    assert saved.state is CircuitState.OPEN and saved.open_until == T0 + COOLDOWN_MS
    assert not saved.admits(T0 + COOLDOWN_MS - 1) and saved.admits(T0 + COOLDOWN_MS)


async def test_a_success_closes_the_circuit_even_after_failures_another_process_counted(
    runtime: Runtime, clock: ManualClock
) -> None:
    worker_1, worker_2 = store_on(runtime, clock), store_on(runtime, clock)
    await worker_2.snapshot()  # worker 2 last looked before any failure
    for _ in range(THRESHOLD):
        await worker_1.record_failure("a", "HTTP 503")
    await worker_2.record_success("a")  # read from the database, not its stale snapshot
    closed = (await worker_1.snapshot(fresh=True))["a"]
    assert closed.state is CircuitState.CLOSED and closed.failures == 0 and closed.open_until is None


async def test_channels_are_counted_apart(health: ChannelHealthStore) -> None:
    for _ in range(THRESHOLD):
        await health.record_failure("a", "down")
    await health.record_failure("b", "down")
    snapshot = await health.snapshot(fresh=True)
    assert snapshot["a"].state is CircuitState.OPEN
    assert snapshot["b"].state is CircuitState.CLOSED and snapshot["b"].failures == 1


async def test_a_long_upstream_error_is_kept_cut_short(health: ChannelHealthStore) -> None:
    await health.record_failure("a", "x" * 5000)
    saved = (await health.snapshot(fresh=True))["a"]
    assert saved.last_error == "x" * 300


async def test_the_snapshot_is_reused_for_a_second_then_read_again(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(channels_module, "time", type("T", (), {"monotonic": staticmethod(lambda: now[0])}))
    reader, writer = store_on(runtime, clock), store_on(runtime, clock)
    assert await reader.snapshot() == {}
    await writer.record_failure("a", "down")
    now[0] += 0.5
    assert await reader.snapshot() == {}  # routing may see a failure a second late
    now[0] += 0.6
    assert (await reader.snapshot())["a"].failures == 1


async def test_failed_polls_are_counted_without_moving_the_circuit(health: ChannelHealthStore) -> None:
    for _ in range(THRESHOLD + 2):
        await health.record_poll("a", ok=False)
    saved = (await health.snapshot(fresh=True))["a"]
    assert saved.poll_failures == THRESHOLD + 2
    assert saved.state is CircuitState.CLOSED and saved.failures == 0  # polls of paid jobs go on


async def test_a_good_poll_clears_the_count_of_failed_ones(health: ChannelHealthStore) -> None:
    await health.record_poll("a", ok=False)
    await health.snapshot(fresh=True)
    await health.record_poll("a", ok=True)
    assert (await health.snapshot(fresh=True))["a"].poll_failures == 0


async def test_a_good_poll_of_a_healthy_channel_writes_nothing(
    health: ChannelHealthStore, runtime: Runtime
) -> None:
    await health.record_poll("a", ok=True)  # the hot path: thousands of polls in flight
    assert await rows(runtime) == 0


async def test_a_success_keeps_the_count_of_failed_polls(health: ChannelHealthStore) -> None:
    """Creates and polls are counted apart: an accepted create says nothing about the polls."""
    await health.record_poll("a", ok=False)
    await health.record_failure("a", "HTTP 503")
    await health.record_success("a")
    saved = (await health.snapshot(fresh=True))["a"]
    assert saved.failures == 0 and saved.poll_failures == 1
