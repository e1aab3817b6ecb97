"""The database's clock as a SQL expression, for decisions several hosts must agree on.

Leases and due times are compared across worker processes on different hosts; comparing each host's
wall clock with times another host wrote breaks as soon as two clocks drift apart (a worker whose clock
runs a minute fast would see every live lease as expired). So the queue takes "now" from the one clock
every process shares: the database's. Tests inject a `Clock` instead and the same queries use it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from vidgate.clock import Clock


class db_now_ms(FunctionElement[int]):
    """Unix milliseconds according to the database server."""

    type = BigInteger()
    inherit_cache = True


@compiles(db_now_ms, "postgresql")
def _now_postgresql(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(), not now(): now() is frozen at the start of the transaction.
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"


@compiles(db_now_ms, "sqlite")
def _now_sqlite(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    # julianday('now') has sub-millisecond resolution; 2440587.5 is the Julian day of the Unix epoch.
    return "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"


def prepared_now(injected_clock: bool) -> ColumnElement[int]:
    """'Now' in a statement built once and cached: the database's clock, or (an injected clock) the bound
    parameter `now`, which `QueueClock.now_params` fills at each run."""
    return bindparam("now", type_=BigInteger()) if injected_clock else db_now_ms()


class QueueClock:
    """'Now' for queue and lease decisions: the database's clock, or an injected one (tests)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock

    @property
    def injected(self) -> bool:
        return self.clock is not None

    def now_params(self) -> dict[str, int]:
        """The parameters a statement built with `prepared_now(self.injected)` needs at each run."""
        return {} if self.clock is None else {"now": self.clock.now_ms()}

    def expr(self) -> ColumnElement[int]:
        if self.clock is None:
            return db_now_ms()
        return literal(self.clock.now_ms(), BigInteger())

    async def now_ms(self, conn: AsyncConnection) -> int:
        """'Now' as a number, read in `conn` (one round trip unless a clock was injected)."""
        if self.clock is not None:
            return self.clock.now_ms()
        return int((await conn.execute(select(db_now_ms()))).scalar_one())
