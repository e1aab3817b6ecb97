"""The circuit breaker guards creates only, counts them the same in every process, and runs on the
database's clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import FakeServer, gateway_options, upstream_channel
from tests.contract.test_upstream_contract import create, prompt, settled
from tests.helpers import wait_for_status
from vidgate.domain.circuit import CircuitState
from vidgate.store.channels import ChannelHealthStore
from vidgate.store.db import create_engine
from vidgate.store.dbtime import QueueClock

pytestmark = pytest.mark.anyio


async def test_a_job_in_flight_answering_its_polls_does_not_close_an_open_circuit(
    start_gateway, upstream: FakeServer
) -> None:
    """Before, every successful poll closed the circuit during its cooldown, so a channel whose creates
    failed was never kept out while it had jobs in flight."""
    channel = upstream_channel("openai", upstream, name="up")
    options = gateway_options(channel, circuit_failures=2, circuit_cooldown_seconds=600)
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, prompt("#ready=1.5"))
            await wait_for_status(client, task_id, ("processing",))  # the upstream has its job
            for _ in range(2):  # meanwhile, two creates of other tasks fail
                await gw.runtime.health.record_failure("up", "HTTP 429 from upstream")
            final = await settled(gw, client, task_id)
            health = (await gw.runtime.health.snapshot(fresh=True))["up"]
    assert final["status"] == "completed", final
    assert upstream.fake.journal.count("poll") >= 1
    assert health.state is CircuitState.OPEN, health
    assert health.poll_failures == 0


async def test_consecutive_create_failures_are_counted_alike_in_every_process(make_settings: Any) -> None:
    """A success seen by one process resets the failures another counted, though its own snapshot
    (refreshed once a second) still said the channel was healthy."""
    settings = make_settings()
    from vidgate.store import db

    await db.upgrade(settings.resolved_database_url)
    engines = [create_engine(settings.resolved_database_url) for _ in range(2)]
    try:
        one, two = (
            ChannelHealthStore(e, QueueClock(), failure_threshold=5, cooldown_ms=60_000) for e in engines
        )
        await two.snapshot()  # "healthy", and cached
        await one.record_failure("up", "503")
        await one.record_failure("up", "503")
        await two.record_success("up")  # its snapshot is stale: it must still reset the database's count
        after = await one.record_failure("up", "503")
        assert after.failures == 1, after
    finally:
        for engine in engines:
            await engine.dispose()


async def test_poll_failures_are_counted_apart_and_never_open_the_circuit(make_settings: Any) -> None:
    settings = make_settings()
    from vidgate.store import db

    await db.upgrade(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    try:
        store = ChannelHealthStore(engine, QueueClock(), failure_threshold=2, cooldown_ms=60_000)
        for _ in range(5):
            await store.record_poll("up", ok=False)
        health = (await store.snapshot(fresh=True))["up"]
        assert health.state is CircuitState.CLOSED and health.poll_failures == 5
        await store.record_poll("up", ok=True)
        assert (await store.snapshot(fresh=True))["up"].poll_failures == 0
    finally:
        await engine.dispose()
