"""Channel health (the circuit breaker's state) in the database, so every worker process shares it.

Writes are rare by design: a failure always writes (it may open the circuit), a success writes only
when the channel was not already healthy. Readers use a snapshot refreshed at most every second,
which is what routing needs (a channel's circuit opening a second late costs one more try).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.domain.circuit import ChannelHealth, CircuitState, after_failure, after_success
from vidgate.store.db import write_transaction
from vidgate.store.dbtime import QueueClock
from vidgate.store.tables import channel_health

_SNAPSHOT_SECONDS = 1.0
_MAX_ERROR_CHARS = 300


def _health(row: RowMapping | None) -> ChannelHealth:
    if row is None:
        return ChannelHealth()
    return ChannelHealth(
        CircuitState(row["state"]),
        row["failures"],
        row["open_until"],
        row["probe_until"],
        row["last_error"],
        row["poll_failures"],
    )


async def lock_health(conn: AsyncConnection, channel: str, *, now: int) -> ChannelHealth:
    """The channel's health row, locked until `conn`'s transaction ends (made on first use)."""
    query = select(channel_health).where(channel_health.c.channel == channel).with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(
            dialect.insert(channel_health)
            .values(channel=channel, state=CircuitState.CLOSED.value, failures=0, updated_at=now)
            .on_conflict_do_nothing()
        )
        row = (await conn.execute(query)).mappings().first()
    return _health(row)


async def save_health(conn: AsyncConnection, channel: str, health: ChannelHealth, *, now: int) -> None:
    await conn.execute(
        update(channel_health)
        .where(channel_health.c.channel == channel)
        .values(
            state=health.state.value,
            failures=health.failures,
            open_until=health.open_until,
            probe_until=health.probe_until,
            last_error=(health.last_error or "")[:_MAX_ERROR_CHARS] or None,
            poll_failures=health.poll_failures,
            updated_at=now,
        )
    )


class ChannelHealthStore:
    """Records upstream call outcomes per channel and answers with the circuit states."""

    def __init__(
        self, engine: AsyncEngine, queue_clock: QueueClock, *, failure_threshold: int, cooldown_ms: int
    ) -> None:
        self.engine = engine
        self.queue_clock = queue_clock
        self.failure_threshold = failure_threshold
        self.cooldown_ms = cooldown_ms
        self._snapshot: dict[str, ChannelHealth] = {}
        self._snapshot_at = -1e9

    async def snapshot(self, *, fresh: bool = False) -> Mapping[str, ChannelHealth]:
        """Every channel's health as last recorded (channels never recorded are healthy)."""
        if fresh or time.monotonic() - self._snapshot_at > _SNAPSHOT_SECONDS:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(select(channel_health))).mappings().all()
            self._snapshot = {r["channel"]: _health(r) for r in rows}
            self._snapshot_at = time.monotonic()
        return self._snapshot

    async def record_failure(self, channel: str, error: str) -> ChannelHealth:
        """A create failed (a refusal or an unknown outcome): it counts towards opening the circuit."""
        async with write_transaction(self.engine) as conn:
            now = await self.queue_clock.now_ms(conn)
            health = after_failure(
                await lock_health(conn, channel, now=now),
                now,
                threshold=self.failure_threshold,
                cooldown_ms=self.cooldown_ms,
                error=error,
            )
            await save_health(conn, channel, health, now=now)
        self._snapshot = {**self._snapshot, channel: health}
        return health

    async def record_success(self, channel: str) -> None:
        """A create was accepted: the circuit closes. Read from the database, not the snapshot, so that
        failures another process counted a moment ago are reset too ('consecutive' across processes).
        Every accepted create comes here, so the usual case (the row says healthy already) is one plain
        read: no write transaction, no wait for SQLite's writer. A failure counted after that read is
        simply ordered after this success, as it would be had it come a moment later."""
        async with self.engine.connect() as conn:
            query = select(channel_health).where(channel_health.c.channel == channel)
            row = (await conn.execute(query)).mappings().first()
        if row is not None and after_success(known := _health(row)) == known:
            self._snapshot = {**self._snapshot, channel: known}
            return
        async with write_transaction(self.engine) as conn:
            now = await self.queue_clock.now_ms(conn)
            current = await lock_health(conn, channel, now=now)
            health = after_success(current)
            if health != current:
                await save_health(conn, channel, health, now=now)
        self._snapshot = {**self._snapshot, channel: health}

    async def record_poll(self, channel: str, *, ok: bool) -> None:
        """A poll's outcome: counted for operators, never moving the circuit. A success writes only when
        failures were counted (polls are the hot path)."""
        if ok:
            known = (await self.snapshot()).get(channel)
            if known is None or known.poll_failures == 0:
                return
            values: dict[str, Any] = {"poll_failures": 0}
        else:
            values = {"poll_failures": channel_health.c.poll_failures + 1}
        async with write_transaction(self.engine) as conn:
            now = await self.queue_clock.now_ms(conn)
            await lock_health(conn, channel, now=now)  # made on first use
            await conn.execute(
                update(channel_health).where(channel_health.c.channel == channel).values(**values)
            )
