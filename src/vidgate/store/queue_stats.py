"""The queue's state for /metrics: tasks by active status, steps due now, the age of the oldest due one.

One aggregate over the rows the claim query's partial index (`ix_tasks_due`) covers: active tasks and
ended ones with a webhook or a cancel left to send. Ended tasks pile up forever, so they are never
counted here; the worker counts tasks as they end instead (`vidgate_tasks_ended_total`).

The snapshot is cached for a few seconds: several Prometheus servers scraping several processes must
not turn into a query each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.store.dbtime import QueueClock
from vidgate.store.tables import DUE_WHERE, tasks

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

_ACTIVE = ("pending", "processing")


@dataclass(frozen=True)
class QueueSnapshot:
    by_status: dict[str, int]  # pending, processing
    due: int  # steps whose time has come and that no live lease holds
    oldest_due_age_seconds: float  # how long the longest-waiting of those has waited (0: none waits)


EMPTY = QueueSnapshot({s: 0 for s in _ACTIVE}, 0, 0.0)


async def read_queue(engine: AsyncEngine, queue_clock: QueueClock) -> QueueSnapshot:
    now = queue_clock.expr()
    is_due = and_(
        tasks.c.next_run_at <= now,
        or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
    )
    query = (
        select(
            tasks.c.status,
            func.count(),
            func.sum(case((is_due, 1), else_=0)),
            func.min(case((is_due, tasks.c.next_run_at), else_=None)),
            now,
        )
        .where(text(DUE_WHERE))  # the index's own predicate, word for word, so the planner uses it
        .group_by(tasks.c.status)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    by_status = {s: 0 for s in _ACTIVE}
    due, oldest, now_ms = 0, None, 0
    for status, count, due_here, oldest_here, row_now in rows:
        now_ms = int(row_now)
        if status in by_status:
            by_status[status] = int(count)
        due += int(due_here or 0)
        if oldest_here is not None and (oldest is None or oldest_here < oldest):
            oldest = int(oldest_here)
    age = max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0
    return QueueSnapshot(by_status, due, age)


class QueueStats:
    """A cached `QueueSnapshot` and the Prometheus collector that shows it.

    `collect()` is synchronous (prometheus_client calls it), so the /metrics handler awaits
    `refresh_if_stale()` first and the collector only reads the snapshot."""

    def __init__(self, engine: AsyncEngine, queue_clock: QueueClock, *, max_age_seconds: float = 5.0) -> None:
        self.engine = engine
        self.queue_clock = queue_clock
        self.max_age_seconds = max_age_seconds
        self.snapshot = EMPTY
        self._read_at: float | None = None
        self._lock = anyio.Lock()

    async def refresh_if_stale(self) -> QueueSnapshot:
        if self._fresh():
            return self.snapshot
        async with self._lock:  # concurrent scrapes share one query
            if not self._fresh():
                self.snapshot = await read_queue(self.engine, self.queue_clock)
                self._read_at = time.monotonic()
        return self.snapshot

    def _fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self.max_age_seconds

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        snap = self.snapshot
        by_status = GaugeMetricFamily("vidgate_tasks", "Tasks pending or processing now", labels=["status"])
        for status, count in snap.by_status.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "vidgate_queue_due", "Steps due now that no worker holds (the backlog)", value=snap.due
        )
        yield GaugeMetricFamily(
            "vidgate_queue_oldest_due_age_seconds",
            "How long the longest-waiting due step has waited for a worker",
            value=snap.oldest_due_age_seconds,
        )
