"""Per-prompt counters behind the "first N" directives."""

from __future__ import annotations

from collections import Counter

__all__ = ["Counters"]


class Counters:
    """Counts keyed by (kind, exact prompt), so each test scenario (one unique prompt) has its own.

    A fault counts only the times it fired: with `#429=1 #5xx=1` the first create answers 429 and the
    second 503, because the second never reaches a 429 that has run out. Faults therefore chain in the
    order a handler checks them.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str | None]] = Counter()

    def fire(self, kind: str, prompt: str | None, limit: int) -> bool:
        """True (and counted) while fewer than `limit` of this kind have fired for this prompt."""
        key = (kind, prompt)
        if self._counts[key] >= limit:
            return False
        self._counts[key] += 1
        return True

    def bump(self, kind: str, prompt: str | None) -> int:
        """Count one more and return the new count (1 for the first)."""
        key = (kind, prompt)
        self._counts[key] += 1
        return self._counts[key]

    def clear(self) -> None:
        self._counts.clear()
