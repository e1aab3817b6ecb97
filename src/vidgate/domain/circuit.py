"""A per-channel circuit breaker, as pure state transitions (the store keeps the state in the database,
so every worker process sees the same circuit).

closed --N consecutive failures--> open --cooldown passed, one task admitted--> half_open (a probe)
half_open --the probe (or any call) succeeds--> closed;  half_open --it fails--> open again
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # consecutive
    open_until: int | None = None  # ms: an open circuit refuses new jobs until then
    probe_until: int | None = None  # ms: a half-open probe is in flight until then
    last_error: str | None = None

    def admits(self, now_ms: int) -> bool:
        """May a new job go to this channel now (possibly as the half-open probe)?"""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            return self.open_until is None or now_ms >= self.open_until
        return self.probe_until is None or now_ms >= self.probe_until  # the last probe never reported

    def describe(self, now_ms: int) -> str:
        if self.state is CircuitState.OPEN and self.open_until is not None:
            wait = max(0, self.open_until - now_ms) / 1000
            return f"circuit open for {wait:.0f} more s after {self.failures} failures ({self.last_error})"
        if self.state is CircuitState.HALF_OPEN:
            return "circuit half-open: a probe job is in flight"
        return "circuit closed"


def after_admission(health: ChannelHealth, now_ms: int, *, probe_ms: int) -> ChannelHealth:
    """A job was admitted: when the circuit was not closed, that job is the half-open probe."""
    if health.state is CircuitState.CLOSED:
        return health
    return replace(health, state=CircuitState.HALF_OPEN, probe_until=now_ms + probe_ms)


def after_failure(
    health: ChannelHealth, now_ms: int, *, threshold: int, cooldown_ms: int, error: str
) -> ChannelHealth:
    failures = health.failures + 1
    if health.state is CircuitState.HALF_OPEN or failures >= threshold:
        return ChannelHealth(CircuitState.OPEN, failures, now_ms + cooldown_ms, None, error)
    return replace(health, failures=failures, last_error=error)


def after_success(health: ChannelHealth) -> ChannelHealth:
    return ChannelHealth() if health != ChannelHealth() else health
