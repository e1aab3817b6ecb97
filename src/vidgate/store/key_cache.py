"""Authenticated keys, remembered for a few seconds so a poll does not read its key from the database.

Entries are keyed by the key's SHA-256 digest (never the key) and live `ttl` seconds from the moment
they were read; an expired entry is never served, so a key revoked in any process stops working within
`ttl` seconds everywhere (docs/scaling.md). A revocation in this process takes effect at once. Unknown
keys are not remembered: a flood of wrong keys costs reads, never a wrong answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeyCache(Generic[V]):
    def __init__(
        self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()

    async def get(self, digest: str, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value remembered for `digest` if younger than `ttl`, else `load()`'s (None is not kept)."""
        if self.ttl <= 0:
            return await load()
        hit = self._entries.get(digest)
        if hit is not None:
            value, read_at = hit
            if self._clock() - read_at < self.ttl:
                return value
            del self._entries[digest]
        read_at = self._clock()  # before the read: an entry never outlives ttl from what it saw
        loaded = await load()
        if loaded is not None:
            self._entries[digest] = (loaded, read_at)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)  # the oldest read goes first
        return loaded

    def forget(self, matches: Callable[[V], bool]) -> None:
        """Drop every entry whose value `matches` (a key revoked by this process)."""
        for digest in [d for d, (value, _) in self._entries.items() if matches(value)]:
            del self._entries[digest]
