"""The fake's state, shared by its route modules: settings, clock, jobs, counters, journal, media."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request

from vidgate.testing.fake_upstream.counters import Counters
from vidgate.testing.fake_upstream.directives import Directives
from vidgate.testing.fake_upstream.jobs import JobStore
from vidgate.testing.fake_upstream.journal import Dialect, Journal, JournalEntry
from vidgate.testing.fake_upstream.media import MediaCache

__all__ = ["FakeSettings", "FakeState"]

# A clock reading at least this (Sept 2001 in Unix seconds) is taken to already be Unix time.
_UNIX_LIKE = 1e9


@dataclass(frozen=True)
class FakeSettings:
    """The constructor's defaults; directives override them per request."""

    api_key: str | None
    ready_seconds: float
    queue_seconds: float
    poll_after_ms: int
    clip_scale: int
    clip_fps: int
    cdn_base_url: str | None
    hang_seconds: float
    video_file: Path | None = None  # served as every job's video instead of a made clip (a real-size one)


class FakeState:
    """Everything the routes share. Mutated only on the event loop, never across an await between a check
    and its update, so concurrent requests cannot both create the job one Idempotency-Key names."""

    def __init__(self, settings: FakeSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.journal = Journal()
        self.jobs = JobStore()
        self.counters = Counters()
        self.media = MediaCache(
            clip_scale=settings.clip_scale, fps=settings.clip_fps, video_file=settings.video_file
        )
        self.base_url: str | None = None
        # Timestamps on the wire are Unix time. A clock that already reads Unix time (a test's manual
        # clock) is used as is, which keeps them deterministic; a monotonic one is anchored once, here.
        start = clock()
        self._unix_offset = 0.0 if start >= _UNIX_LIKE else time.time() - start

    def now(self) -> float:
        return self.clock()

    def unix(self, at: float) -> float:
        """Unix seconds for a clock reading."""
        return at + self._unix_offset

    def public_base(self, request: Request, *, cdn: bool = False) -> str:
        """The base of absolute URLs: the CDN base for result links, else the served base URL, else the
        request's own (Host header)."""
        if cdn and self.settings.cdn_base_url:
            return self.settings.cdn_base_url.rstrip("/")
        if self.base_url:
            return self.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    def record(
        self,
        op: str,
        dialect: Dialect,
        status: int,
        *,
        job: str | None = None,
        key: str | None = None,
        prompt: str | None = None,
        **detail: Any,
    ) -> None:
        self.journal.append(JournalEntry(op, dialect, job, key, prompt, status, self.now(), detail))

    async def delay(self, directives: Directives, *, create: bool = False) -> None:
        """The `latency` directive: hold the response back (real time, not the clock). A create also
        waits `create_latency` before its job exists: a create slower than the caller's timeout."""
        seconds = directives.number("latency", 0.0) + (
            directives.number("create_latency", 0.0) if create else 0
        )
        if seconds > 0:
            await anyio.sleep(seconds)

    async def hang(self) -> None:
        await anyio.sleep(self.settings.hang_seconds)

    def reset(self) -> None:
        """Forget jobs, counters and the journal (the media cache is only bytes and is kept)."""
        self.jobs.clear()
        self.counters.clear()
        self.journal.clear()
