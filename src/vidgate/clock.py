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
