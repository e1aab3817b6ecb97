"""Time as the store and worker see it: integer Unix milliseconds from an injectable clock.

Milliseconds in BIGINT columns behave the same on SQLite and PostgreSQL (no time-zone or
precision surprises), and tests drive leases, backoff and deadlines with `ManualClock`
instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 1_760_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += round(seconds * 1000)


class DatabaseAlignedClock:
    """The database's clock as well as this process knows it: its own clock plus the offset last seen.

    Deadlines and cooldowns are written on the database's clock (the one every host shares); a worker
    whose own clock is a minute off would end tasks a minute early or late. The worker learns the
    offset for free at every claim (a claimed lease ends at the database's 'now' + the lease), so its
    comparisons stay within a round trip of the database's time.
    """

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.offset_ms = 0

    def now_ms(self) -> int:
        return self.base.now_ms() + self.offset_ms

    def observe(self, database_now_ms: int) -> None:
        self.offset_ms = database_now_ms - self.base.now_ms()
