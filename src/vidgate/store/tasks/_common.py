"""What every part of the task store shares: the state `TaskStore.__init__` sets, the write transaction,
the queue clock's "now", the hold resolution of an ended task (fenced writes and client ends both end
tasks), and the SQL conditions more than one part builds on."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, case, or_, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.domain.tasks import ACTIVE_STATUSES, Task
from vidgate.store import ledger
from vidgate.store.batching import Batcher
from vidgate.store.create_batch import NewTask, SqliteCreateWriter
from vidgate.store.db import write_transaction
from vidgate.store.dbtime import QueueClock
from vidgate.store.fast_reads import FastReads
from vidgate.store.tables import tasks

_ACTIVE = [s.value for s in ACTIVE_STATUSES]
# PostgreSQL's notification channel for "a task became due now" (a create, a client's cancel or delete, a
# task given back): every worker process LISTENs on it (worker/wakeups.py) and claims at once.
DUE_CHANNEL = "vidgate_due"
_NOTIFY_DUE = text(f"NOTIFY {DUE_CHANNEL}")


class StoreBase:
    """The state the parts of `TaskStore` work on: `TaskStore.__init__` sets it (and says what each is)."""

    engine: AsyncEngine
    refunds: ledger.RefundPolicy
    queue_clock: QueueClock
    _reads: FastReads | None
    _creates: SqliteCreateWriter | None
    _pg_groups: Batcher[NewTask, None] | None
    notify_due: bool

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self.engine)

    async def _notify_due(self, conn: AsyncConnection) -> None:
        """In a write transaction that made a task due now: on PostgreSQL, NOTIFY the workers (delivered
        when it commits, once per transaction however many tasks it made due; nothing if it rolls back).
        SQLite has no notifications: workers in other processes find the task at their idle tick."""
        if self.notify_due and conn.dialect.name == "postgresql":
            await conn.execute(_NOTIFY_DUE)

    async def now_ms(self) -> int:
        """The queue clock's 'now' as a number (the database's, unless a clock was injected)."""
        async with self.engine.connect() as conn:
            return await self.queue_clock.now_ms(conn)

    async def _resolve_hold(self, conn: AsyncConnection, ended: Task, *, now: int) -> None:
        """In the transaction of the compare-and-set that ended the task: capture what it costs out of
        its hold and release the rest (store/ledger.py), so the status change and the money move
        commit together or not at all."""
        if not ended.hold_amount:
            return
        capture = self.refunds.charge(
            hold=ended.hold_amount,
            charge=ended.charge_amount,
            status=ended.status,
            error_code=ended.error.code if ended.error else None,
        )
        await ledger.resolve_hold(
            conn,
            key_id=ended.owner,
            task_id=ended.id,
            hold_amount=ended.hold_amount,
            capture=capture,
            now=now,
        )


def _occupies_slot() -> Any:
    return and_(
        tasks.c.channel.is_not(None),
        tasks.c.status.in_(_ACTIVE),
        or_(tasks.c.upstream_id.is_not(None), tasks.c.submit_intent_at.is_not(None)),
    )


def _never_lower(progress: Any) -> Any:
    """Progress only goes up: a client polling a task must never see it move back (a late heartbeat
    of an older reading, a retried step starting its count again)."""
    return case((tasks.c.progress > progress, tasks.c.progress), else_=progress)
