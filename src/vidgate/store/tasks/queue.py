"""The queue: claiming due tasks (leases with a fresh token), heartbeats, giving a task back, and which
claims still hold a live lease."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, Update, bindparam, case, or_, select, text, tuple_, update

from vidgate.domain.tasks import Step, Task, TaskStatus
from vidgate.store.dbtime import prepared_now
from vidgate.store.tables import DUE_WHERE, tasks
from vidgate.store.task_rows import Claim, LeaseCheck, row_to_task
from vidgate.store.tasks._common import StoreBase, _never_lower

# The claim's queue order (see `claim_due`), in SQL and in Python: started tasks before new ingests,
# then oldest first; the id breaks ties between tasks created in the same millisecond.
_FIFO_ORDER = (case((tasks.c.step == Step.INGEST.value, 1), else_=0), tasks.c.created_at, tasks.c.id)


def _fifo_key(task: Task) -> tuple[int, int, str]:
    return (1 if task.step is Step.INGEST else 0, task.created_at, task.id)


class TaskQueue(StoreBase):
    # The queue --------------------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        worker: str,
        limit: int,
        lease_ms: int,
        only: Collection[Step] | None = None,
        skip: Collection[Step] | None = None,
    ) -> list[Claim]:
        """Lease up to `limit` due tasks to `worker`.

        A task is due when it is active (or has a cancel or a webhook left to do), its `next_run_at`
        has come, and nobody holds a live lease (an expired lease means its worker died or stalled).
        On PostgreSQL, FOR UPDATE SKIP LOCKED lets concurrent workers pick disjoint rows without
        waiting; SQLite drops the clause and its single writer (BEGIN IMMEDIATE) makes it safe.
        `only` / `skip` limit the claim to some steps (the runner budgets media work apart from polls).

        Among due tasks the oldest goes first, and a task already under way goes ahead of a new
        ingest: ordering by due time instead would run every task's step N before any task's step
        N+1, so with a backlog no task would finish until the whole backlog had been rendered.

        The rows are found through the partial index `ix_tasks_due`: its predicate is written here word
        for word (`DUE_WHERE`, literals rather than bound values), so that both planners can tell the
        index covers the query; with bound values SQLite scanned the whole table at every claim.
        """
        params: dict[str, Any] = {"worker": worker, "limit": limit, "lease_ms": lease_ms}
        params.update(token=_new_token(), **self.queue_clock.now_params())
        claim = _claim_statement(
            frozenset(only) if only else None, frozenset(skip) if skip else None, self.queue_clock.injected
        )
        async with self._write() as conn:
            rows = (await conn.execute(claim, params)).mappings().all()
        # The rows of one claim share a token; that is enough, because fences compare (id, token) and
        # every claim of the same row gets a new one. RETURNING keeps no order: restore the queue's, so
        # the runner starts (and queues for render slots) the oldest first.
        claimed = sorted((row_to_task(r) for r in rows), key=_fifo_key)
        return [Claim(task, worker) for task in claimed]

    async def heartbeat_many(
        self, beats: Sequence[tuple[Claim, int | None]], *, lease_ms: int
    ) -> dict[str, LeaseCheck]:
        """Extend the leases of these claims (recording progress where given), in one statement.

        Fenced by each claim's token only, never by version: a step's own writes bump the version, and
        a heartbeat must not lose to them. Returns, for each claim still held, whether the client has
        cancelled or deleted the task (so the runner can stop work that no longer matters); a claim
        missing from the result has lost its lease to another claim.
        """
        if not beats:
            return {}
        progress = {claim.task.id: p for claim, p in beats if p is not None}
        values: dict[str, Any] = {"lease_expires_at": self.queue_clock.expr() + lease_ms}
        if progress:
            values["progress"] = _never_lower(case(progress, value=tasks.c.id, else_=tasks.c.progress))
        query = (
            update(tasks)
            .where(tuple_(tasks.c.id, tasks.c.lease_token).in_([(c.task.id, c.token) for c, _ in beats]))
            .values(**values)
            .returning(tasks.c.id, tasks.c.status, tasks.c.deleted_at)
        )
        async with self._write() as conn:
            rows = (await conn.execute(query)).all()
        return {row[0]: LeaseCheck(TaskStatus(row[1]), row[2] is not None) for row in rows}

    async def release(self, claim: Claim) -> bool:
        """Give a task back (a graceful stop, or a step whose outcome lost to a client's change), due
        at once so another worker can take it. Fenced by the token: whatever the version, the lease is
        still ours to give back."""
        query = (
            update(tasks)
            .where(tasks.c.id == claim.task.id, tasks.c.lease_token == claim.token)
            .values(
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
                next_run_at=self.queue_clock.expr(),
            )
        )
        async with self._write() as conn:
            if (await conn.execute(query)).rowcount != 1:
                return False
            await self._notify_due(conn)
            return True

    async def live_claims(self, claims: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (task id, lease token) pairs still hold an unexpired lease."""
        live: set[tuple[str, str]] = set()
        pairs = list(claims)
        now = self.queue_clock.expr()
        async with self.engine.connect() as conn:
            for start in range(0, len(pairs), 500):
                query = select(tasks.c.id, tasks.c.lease_token).where(
                    tuple_(tasks.c.id, tasks.c.lease_token).in_(pairs[start : start + 500]),
                    tasks.c.lease_expires_at >= now,
                )
                live.update((row[0], row[1]) for row in (await conn.execute(query)).all())
        return live


def _new_token() -> str:
    return secrets.token_hex(16)


@functools.cache
def _claim_statement(
    only: frozenset[Step] | None, skip: frozenset[Step] | None, injected_clock: bool
) -> Update:
    """The claim statement for these step filters, built once with bound parameters (`worker`, `limit`,
    `token`, `lease_ms`; `now` for an injected clock, else the database's clock): building it and working
    out its cache key anew cost SQLAlchemy as much as running it."""
    now = prepared_now(injected_clock)
    due = (
        select(tasks.c.id)
        .where(
            text(f"({DUE_WHERE})"),
            tasks.c.next_run_at <= now,
            or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
            *([tasks.c.step.in_(sorted(s.value for s in only))] if only else []),
            *([tasks.c.step.not_in(sorted(s.value for s in skip))] if skip else []),
        )
        .order_by(*_FIFO_ORDER)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(tasks)
        .where(tasks.c.id.in_(due.scalar_subquery()))
        .values(
            lease_owner=bindparam("worker"),
            lease_token=bindparam("token"),
            lease_expires_at=now + bindparam("lease_ms", type_=BigInteger()),
            version=tasks.c.version + 1,
        )
        .returning(*tasks.c)
    )
