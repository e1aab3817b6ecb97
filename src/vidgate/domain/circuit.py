"""A per-channel circuit breaker, as pure state transitions (the store keeps the state in the database,
so every worker process sees the same circuit).

closed --N consecutive failures--> open --cooldown passed, one task admitted--> half_open (a probe)
half_open --the probe succeeds--> closed;  half_open --it fails--> open again

Only creates move the circuit: it guards whether NEW jobs go to the channel. Polls of jobs already in
flight are counted apart (`poll_failures`, for operators): a channel whose creates fail can still answer
the polls of yesterday's jobs, and that must not close its circuit.
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
    poll_failures: int = 0  # consecutive failed polls (never moves the circuit)

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
        return replace(
            health,
            state=CircuitState.OPEN,
            failures=failures,
            open_until=now_ms + cooldown_ms,
            probe_until=None,
            last_error=error,
        )
    return replace(health, failures=failures, last_error=error)


def after_success(health: ChannelHealth) -> ChannelHealth:
    """A create succeeded: the circuit closes (the poll count is not the circuit's to reset)."""
    healthy = ChannelHealth(poll_failures=health.poll_failures)
    return healthy if health != healthy else health
