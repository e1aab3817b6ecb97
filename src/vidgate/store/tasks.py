"""TaskStore: the tasks table as a durable record AND a work queue.

Rules every write here follows:
- A status change is compare-and-set on `version` and appends a `task_events` row in the same
  transaction. Zero rows updated means someone else changed the task first: the caller stops.
- A claim is a lease with a fresh `lease_token`. A worker's writes are fenced by that token AND the
  version it last wrote, so a worker whose lease expired (it stalled, or was killed and came back)
  cannot overwrite the work of the worker that took the task over, and a client's cancel (which bumps
  the version) makes the running step's outcome lose. Heartbeats are fenced by the token alone: they
  must never race the step's own writes.
- Two writes are fenced by the token alone because they record facts about the upstream that must not
  be lost whatever the client did meanwhile: `save_upstream_job` (an accepted job's id) and `release`.
- "Now" for leases and due times comes from the database's clock (`QueueClock`), the one clock every
  worker host shares; times shown to clients (`created_at`, `status_update_time`) come from the caller.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.clock import Clock
from vidgate.domain.circuit import after_admission
from vidgate.domain.requests import VideoSpec, input_echo
from vidgate.domain.tasks import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Step,
    Task,
    TaskError,
    TaskStatus,
    TaskSummary,
    summary_from_row,
)
from vidgate.domain.transitions import check_transition
from vidgate.errors import Conflict, InsufficientQuota, RateLimited
from vidgate.ids import new_ulid
from vidgate.store import ledger
from vidgate.store.batching import Batcher
from vidgate.store.channels import lock_health, save_health
from vidgate.store.create_batch import DB_NOW, DbNowPlus, NewTask, SqliteCreateWriter
from vidgate.store.db import write_transaction
from vidgate.store.dbtime import QueueClock
from vidgate.store.fast_reads import FastReads, page_statement
from vidgate.store.tables import api_keys, ledger_entries, task_events, tasks
from vidgate.store.task_rows import (
    Claim,
    ClaimLost,
    LeaseCheck,
    TaskEvent,
    after_cancel_step,
    row_to_task,
)

_ACTIVE = [s.value for s in ACTIVE_STATUSES]
# The claim's queue order (see `claim_due`), in SQL and in Python: started tasks before new ingests,
# then oldest first; the id breaks ties between tasks created in the same millisecond.
_FIFO_ORDER = (case((tasks.c.step == Step.INGEST.value, 1), else_=0), tasks.c.created_at, tasks.c.id)


def _fifo_key(task: Task) -> tuple[int, int, str]:
    return (1 if task.step is Step.INGEST else 0, task.created_at, task.id)


_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_CAS_TRIES = 8
# Retry-After of a create refused by the cap on tasks in flight (a task takes seconds to minutes).
ACTIVE_CAP_RETRY_AFTER_S = 5


class TaskStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        reads: FastReads | None = None,
        creates: SqliteCreateWriter | None = None,
        refunds: ledger.RefundPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.refunds = refunds or ledger.RefundPolicy()  # which ended tasks are charged (store/ledger.py)
        self.queue_clock = QueueClock(clock)
        self._reads = reads  # the hot paths' reads (`get`, `list_page`) in one driver call
        self._creates = creates  # SQLite: new tasks committed in groups (store/create_batch.py)
        # PostgreSQL: the same grouping, in one transaction per group (`_insert_group`).
        self._pg_groups: Batcher[NewTask, None] | None = None
        if engine.dialect.name == "postgresql":
            self._pg_groups = Batcher(self._insert_group, max_size=256)

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self.engine)

    async def now_ms(self) -> int:
        """The queue clock's 'now' as a number (the database's, unless a clock was injected)."""
        async with self.engine.connect() as conn:
            return await self.queue_clock.now_ms(conn)

    # Creating and reading ---------------------------------------------------------------------

    async def create(
        self,
        spec: VideoSpec,
        *,
        owner: str,
        dialect: str,
        now: int,
        deadline_ms: int,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        remixed_from: str | None = None,
        task_id: str | None = None,
        pinned_channel: str | None = None,
        remix_upstream_id: str | None = None,
        max_active_tasks: int | None = None,
        request_id: str | None = None,
        hold: int = 0,
    ) -> Task:
        """Save a new pending task (and its `created` event) before anything is sent anywhere.

        With an `idempotency_key`, a retry of the same request returns the first task; a
        different request under the same key is a 409. `pinned_channel` with `remix_upstream_id`
        makes an upstream remix: it can only go to the channel that holds the source job.
        `max_active_tasks`: refuse (429) when the owner already has that many pending or processing.
        `hold`: the most the task may cost (micro-credits), held on the owner's key in the same
        transaction (store/ledger.py); 402 when the key's balance cannot cover it.
        """
        if idempotency_key is not None:
            existing = await self._by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return self._idempotent_match(existing, request_hash)
        ulid = task_id or new_ulid()
        first_step = Step.INGEST if spec.images else Step.SUBMIT  # nothing to ingest: skip the step
        values = {
            "id": ulid,
            "owner": owner,
            "dialect": dialect,
            "model": spec.model,
            "prompt": spec.prompt,
            "images": list(spec.images),
            "width": spec.width,
            "height": spec.height,
            "seconds": spec.seconds,
            "orientation": spec.orientation,
            "size_label": spec.size_label,
            "watermark_mode": spec.watermark_mode.value,
            "private": spec.private,
            "input": input_echo(spec),
            "callback_url": spec.callback_url,
            "remixed_from": remixed_from,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "request_id": request_id,  # the create request's id, so the worker's log lines carry it
            "status": TaskStatus.PENDING.value,
            "step": first_step.value,
            "inputs": None if spec.images else [],
            "progress": 0,
            "created_at": now,
            "status_update_time": now,
            "attempts": 0,
            "version": 0,
            "channel": pinned_channel,
            "remix_upstream_id": remix_upstream_id,
            "hold_amount": hold or None,
        }
        event = {
            "task_id": ulid,
            "at": now,
            "kind": "created",
            "to_status": "pending",
            "step": first_step.value,
        }
        try:
            replay = await self._insert_new(
                NewTask(values, event, hold, deadline_ms),
                cap=max_active_tasks,
                idempotency_key=idempotency_key,
            )
            if replay is not None:  # refused, but a concurrent create with this key won: answer with it
                return self._idempotent_match(replay, request_hash)
        except (IntegrityError, InsufficientQuota):
            # Two concurrent creates with one idempotency key: the loser (refused by the unique key, or
            # by a balance the winner's hold used up) answers with the winner's task.
            if idempotency_key is None:
                raise
            existing = await self._by_idempotency_key(owner, idempotency_key)
            if existing is None:
                raise
            return self._idempotent_match(existing, request_hash)
        task = await self.get(ulid)
        assert task is not None
        return task

    async def _insert_new(self, new: NewTask, *, cap: int | None, idempotency_key: str | None) -> Task | None:
        """Insert a new task and its first event in one transaction, due at once by the queue clock,
        holding its price on the owner's key in that transaction (`ledger.hold`; InsufficientQuota).

        Creates go in groups (one commit for all that arrived meanwhile; SQLite: store/create_batch.py,
        PostgreSQL: `_insert_group`). With `cap` (the owner's limit on tasks in flight) the owner's
        active tasks are counted in the same transaction (see `_admit_within_cap`), which a group cannot
        do, so such a create takes a transaction of its own: refused (429), or the task an idempotency
        key already names is returned instead (a replay is answered, never refused). On SQLite every
        writer holds the one writer lock, so counts and balances stay exact either way.
        """
        if cap is None:
            if self._creates is not None:
                clock = self._clock_columns(new, markers=True)
                await self._creates.insert(replace(new, row={**new.row, **clock}))
                return None
            if self._pg_groups is not None:
                await self._pg_groups.submit(new)
                return None
        owner = new.row["owner"]
        async with self._write() as conn:
            try:
                if cap is not None:
                    await _admit_within_cap(conn, owner, cap)
                if new.hold:
                    await ledger.hold(
                        conn, key_id=owner, task_id=new.row["id"], amount=new.hold, now=new.row["created_at"]
                    )
            except (RateLimited, InsufficientQuota):
                replay = None if idempotency_key is None else await _by_key_in(conn, owner, idempotency_key)
                if replay is None:
                    raise
                return replay
            await conn.execute(insert(tasks).values(**new.row, **self._clock_columns(new)))
            await conn.execute(insert(task_events).values(**new.event))
        return None

    def _clock_columns(self, new: NewTask, *, markers: bool = False) -> dict[str, Any]:
        """A new task is due at once and ends by its deadline, both on the queue clock (the database's,
        the one every host shares: a worker on another host compares them with its own view of it).
        `markers`: for the SQLite create writer, which compiles its own statements."""
        if self.queue_clock.clock is not None:
            now = self.queue_clock.clock.now_ms()
            return {"next_run_at": now, "deadline_at": now + new.deadline_ms}
        if markers:
            return {"next_run_at": DB_NOW, "deadline_at": DbNowPlus(new.deadline_ms)}
        now_expr = self.queue_clock.expr()
        return {"next_run_at": now_expr, "deadline_at": now_expr + new.deadline_ms}

    async def _insert_group(self, group: list[NewTask]) -> list[Exception | None]:
        """PostgreSQL: the new tasks queued meanwhile, in one transaction. Holds first, one conditional
        UPDATE each in key order (so two groups lock keys in the same order and never deadlock); a task
        its key cannot cover fails alone with InsufficientQuota. Then one multi-row INSERT: a task a
        unique constraint refuses (an idempotency key used concurrently) is skipped, its hold given
        back, and it fails alone with IntegrityError, as its own INSERT would have."""
        outcomes: dict[int, Exception | None] = {}
        async with self._write() as conn:
            for i, new in sorted(enumerate(group), key=lambda item: item[1].row["owner"]):
                if new.hold:
                    params = {"key_id": new.row["owner"], "amount": new.hold}
                    if (await conn.execute(ledger.HOLD_STATEMENT, params)).first() is None:
                        outcomes[i] = ledger.insufficient(
                            new.hold, await ledger.available(conn, new.row["owner"])
                        )
            held = [(i, new) for i, new in enumerate(group) if i not in outcomes]
            inserted: set[str] = set()
            if held:
                rows = [{**new.row, **self._clock_columns(new)} for _, new in held]
                insert_all = pg_insert(tasks).values(rows).on_conflict_do_nothing().returning(tasks.c.id)
                inserted = set((await conn.execute(insert_all)).scalars())
            refused = IntegrityError(
                "INSERT INTO tasks", None, Exception("a unique constraint refused the task")
            )
            events, entries = [], []
            for i, new in held:
                if new.row["id"] not in inserted:
                    outcomes[i] = refused
                    if new.hold:  # give back what was held for a task that was not made
                        await conn.execute(
                            update(api_keys)
                            .where(api_keys.c.id == new.row["owner"])
                            .values(held=api_keys.c.held - new.hold)
                        )
                    continue
                events.append(new.event)
                if new.hold:
                    entries.append(ledger.hold_entry(key_id=new.row["owner"], task_id=new.row["id"],
                                                     amount=new.hold, now=new.row["created_at"]))  # fmt: skip
            if events:
                await conn.execute(insert(task_events), events)
            if entries:
                await conn.execute(insert(ledger_entries), entries)
        return [outcomes.get(i) for i in range(len(group))]

    @staticmethod
    def _idempotent_match(existing: Task, request_hash: str | None) -> Task:
        if existing.request_hash != request_hash:
            raise Conflict(
                "This Idempotency-Key was already used with a different request body.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return existing

    async def _by_idempotency_key(self, owner: str, key: str) -> Task | None:
        async with self.engine.connect() as conn:
            return await _by_key_in(conn, owner, key)

    async def get(self, ulid: str, *, owner: str | None = None, include_deleted: bool = False) -> Task | None:
        """The task, or None when it does not exist, was deleted, or belongs to another owner."""
        if self._reads is not None and not include_deleted:
            return await self._reads.task(ulid, owner=owner)
        query = select(tasks).where(tasks.c.id == ulid)
        if not include_deleted:
            query = query.where(tasks.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return row_to_task(row) if row else None

    async def list_page(
        self,
        *,
        owner: str,
        after: str | None,
        limit: int,
        descending: bool,
        status: TaskStatus | None = None,
    ) -> tuple[list[TaskSummary], bool]:
        """One page of an owner's tasks by id (= creation time), only those in `status` if given, and
        whether more follow."""
        wanted = None if status is None else status.value
        if self._reads is not None:
            return await self._reads.page(
                owner=owner, after=after, limit=limit, descending=descending, status=wanted
            )
        query = page_statement(descending=descending, after=after is not None, status=wanted is not None)
        params = {"owner": owner, "after": after, "limit": limit + 1, "status": wanted}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query, params)).all()
        return [summary_from_row(tuple(r)) for r in rows[:limit]], len(rows) > limit

    async def events(self, ulid: str) -> list[TaskEvent]:
        query = select(task_events).where(task_events.c.task_id == ulid).order_by(task_events.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            TaskEvent(
                r["at"], r["kind"], r["from_status"], r["to_status"], r["step"], r["worker"], r["message"]
            )
            for r in rows
        ]

    async def active_per_channel(self) -> dict[str, int]:
        """Tasks that occupy a slot of each channel now (what `max_concurrent` limits)."""
        query = select(tasks.c.channel, func.count()).where(_occupies_slot()).group_by(tasks.c.channel)
        async with self.engine.connect() as conn:
            return {channel: n for channel, n in (await conn.execute(query)).all()}

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
        """
        now = self.queue_clock.expr()
        due = (
            select(tasks.c.id)
            .where(
                or_(tasks.c.status.in_(_ACTIVE), tasks.c.step.in_([Step.NOTIFY.value, Step.CANCEL.value])),
                tasks.c.next_run_at <= now,
                or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
                *([tasks.c.step.in_([s.value for s in only])] if only else []),
                *([tasks.c.step.not_in([s.value for s in skip])] if skip else []),
            )
            .order_by(*_FIFO_ORDER)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(tasks)
            .where(tasks.c.id.in_(due.scalar_subquery()))
            .values(
                lease_owner=worker,
                lease_token=_new_token(),
                lease_expires_at=now + lease_ms,
                version=tasks.c.version + 1,
            )
            .returning(*tasks.c)
        )
        async with self._write() as conn:
            rows = (await conn.execute(claim)).mappings().all()
        # The rows of one claim share a token; that is enough, because fences compare (id, token) and
        # every claim of the same row gets a new one. RETURNING keeps no order: restore the queue's, so
        # the runner starts (and queues for render slots) the oldest first.
        claimed = sorted((row_to_task(r) for r in rows), key=_fifo_key)
        return [Claim(task, worker) for task in claimed]

    async def heartbeat(
        self, claim: Claim, *, lease_ms: int, progress: int | None = None
    ) -> LeaseCheck | None:
        """Extend one claim's lease (see `heartbeat_many`). None: the lease is lost to another claim."""
        return (await self.heartbeat_many([(claim, progress)], lease_ms=lease_ms)).get(claim.task.id)

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
            return (await conn.execute(query)).rowcount == 1

    async def finish_step(
        self,
        claim: Claim,
        *,
        now: int,
        next_step: Step,
        delay_ms: int = 0,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        event_kind: str | None = "step",
        message: str | None = None,
    ) -> Task | None:
        """Record one step's outcome and release the lease, fenced by the claim.

        Returns the updated task, or None when the claim was lost (lease expired and another
        worker took over, or the client cancelled): the caller must then drop its result.
        A status change always writes an event; otherwise `event_kind=None` writes none (a
        routine re-poll is not worth a row). The task is due again `delay_ms` from now.
        """
        release = {
            "next_run_at": self.queue_clock.expr() + delay_ms,
            "lease_owner": None,
            "lease_token": None,
            "lease_expires_at": None,
        }
        row = await self._apply(
            claim,
            now=now,
            step=next_step,
            status=status,
            changes={**(changes or {}), **release},
            event_kind=event_kind,
            message=message,
        )
        return row_to_task(row) if row else None

    async def repoll_later(self, claim: Claim, *, delay_ms: int, changes: Mapping[str, Any]) -> bool:
        """`finish_step` for a poll that found the job still running (the hot path): one statement (in
        autocommit on PostgreSQL: one round trip), no event, nothing read back. False when the claim was
        lost."""
        query = (
            update(tasks)
            .where(*_fence(claim))
            .values(
                **_monotonic(changes),
                version=claim.version + 1,
                next_run_at=self.queue_clock.expr() + delay_ms,
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
            )
        )
        if self.engine.dialect.name != "postgresql":
            # SQLite: a plain write transaction is as cheap (no round trips), and its connections must
            # keep the isolation handling db.create_engine gave them (AUTOCOMMIT would reset it).
            async with self._write() as conn:
                return (await conn.execute(query)).rowcount == 1
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return (await conn.execute(query)).rowcount == 1

    async def advance(
        self,
        claim: Claim,
        *,
        now: int,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        message: str | None = None,
    ) -> Claim | None:
        """Save progress in the middle of a step and keep the lease (e.g. a submit's intent, written
        before anything is sent). Returns the claim at its new version, or None when it was lost."""
        row = await self._apply(
            claim,
            now=now,
            step=claim.task.step,
            status=status,
            changes=changes or {},
            event_kind="step" if message else None,
            message=message,
        )
        return Claim(row_to_task(row), claim.worker) if row else None

    async def admit(
        self,
        claim: Claim,
        *,
        channel: str,
        max_concurrent: int | None,
        now: int,
        status: TaskStatus | None = None,
        known_healthy: bool = False,
        charge: int | None = None,
    ) -> Claim | str:
        """Admit the task to `channel` and save the submit's intent, in one transaction: refused (the
        reason as a string) when the channel's circuit is open or all its `max_concurrent` slots are
        taken. The channel's health row is locked meanwhile, so concurrent admissions on other worker
        processes count the same slots (on SQLite, BEGIN IMMEDIATE already serialises writers).
        `known_healthy` (the channel's circuit was closed a moment ago) with no slot limit skips the
        lock: nothing is counted, and a circuit that opened within that moment costs one more try.
        `charge`: what the task costs on this channel (micro-credits), captured if it completes.
        Raises ClaimLost when the claim no longer holds."""
        priced = {} if charge is None else {"charge_amount": charge}
        if known_healthy and max_concurrent is None:
            admitted_claim = await self.advance(
                claim,
                now=now,
                status=status,
                changes={"channel": channel, "submit_intent_at": self.queue_clock.expr(), **priced},
                message=f"submitting to channel {channel}",
            )
            if admitted_claim is None:
                raise ClaimLost()
            return admitted_claim
        async with self._write() as conn:
            queue_now = await self.queue_clock.now_ms(conn)
            health = await lock_health(conn, channel, now=queue_now)
            if not health.admits(queue_now):
                return health.describe(queue_now)
            if max_concurrent is not None:
                busy = (
                    await conn.execute(
                        select(func.count())
                        .select_from(tasks)
                        .where(_occupies_slot(), tasks.c.channel == channel, tasks.c.id != claim.task.id)
                    )
                ).scalar_one()
                if busy >= max_concurrent:
                    return f"all {max_concurrent} slots are in use"
            admitted = after_admission(health, queue_now, probe_ms=60_000)
            if admitted != health:
                await save_health(conn, channel, admitted, now=queue_now)
            row = await self._apply_in(
                conn,
                claim,
                now=now,
                step=claim.task.step,
                status=status,
                changes={"channel": channel, "submit_intent_at": queue_now, **priced},
                event_kind="step",
                message=f"submitting to channel {channel}",
            )
            if row is None:
                raise ClaimLost()  # rolls the health change back with it
        return Claim(row_to_task(row), claim.worker)

    async def save_upstream_job(
        self, claim: Claim, *, now: int, upstream_id: str, memo: Mapping[str, Any]
    ) -> Task | None:
        """Record an accepted upstream job even though the step's outcome lost to a client's change
        (the task was cancelled or deleted while the submit was in flight). Fenced by the token only:
        the id must be kept so that the job can be stopped. A task that has ended goes to the cancel
        step; anything else stays as it is for the step's normal handling."""
        query = (
            update(tasks)
            .where(tasks.c.id == claim.task.id, tasks.c.lease_token == claim.token)
            .values(
                upstream_id=upstream_id,
                upstream_state=dict(memo),
                submit_intent_at=None,
                step=_case_ended(Step.CANCEL.value),
                version=tasks.c.version + 1,
            )
            .returning(*tasks.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is not None:
                await conn.execute(
                    insert(task_events).values(
                        task_id=claim.task.id,
                        at=now,
                        kind="upstream_job",
                        step=row["step"],
                        worker=claim.worker,
                        message=f"kept upstream job {upstream_id} after the task changed",
                    )
                )
        return row_to_task(row) if row else None

    async def _apply(
        self,
        claim: Claim,
        *,
        now: int,
        step: Step,
        status: TaskStatus | None,
        changes: Mapping[str, Any],
        event_kind: str | None,
        message: str | None,
    ) -> RowMapping | None:
        try:
            async with self._write() as conn:
                row = await self._apply_in(
                    conn,
                    claim,
                    now=now,
                    step=step,
                    status=status,
                    changes=changes,
                    event_kind=event_kind,
                    message=message,
                )
                if row is None:
                    raise ClaimLost()  # roll back: no event for a write that did not happen
                return row
        except ClaimLost:
            return None

    async def _apply_in(
        self,
        conn: AsyncConnection,
        claim: Claim,
        *,
        now: int,
        step: Step,
        status: TaskStatus | None,
        changes: Mapping[str, Any],
        event_kind: str | None,
        message: str | None,
    ) -> RowMapping | None:
        current = claim.task
        target = status or current.status
        check_transition(current.status, target)
        values: dict[str, Any] = {**_monotonic(changes), "step": step.value, "version": claim.version + 1}
        status_changed = target != current.status
        if status_changed:
            values.update(status=target.value, status_update_time=max(now, current.status_update_time + 1))
            if target.is_terminal:
                values["completed_at"] = now
        query = update(tasks).where(*_fence(claim)).values(**values).returning(*tasks.c)
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        if status_changed and target.is_terminal:
            await self._resolve_hold(conn, row_to_task(row), now=now)
        if status_changed or event_kind is not None:
            await conn.execute(
                insert(task_events).values(
                    task_id=current.id,
                    at=now,
                    kind="status" if status_changed else event_kind,
                    from_status=current.status.value if status_changed else None,
                    to_status=target.value if status_changed else None,
                    step=step.value,
                    worker=claim.worker,
                    message=message,
                )
            )
        return row

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

    # Client-side changes ----------------------------------------------------------------------

    async def cancel(self, ulid: str, *, owner: str, now: int) -> Task | None:
        """Cancel an active task (compare-and-set; the version bump fences the worker holding it).

        The worker's lease is left alone: a submit in flight finishes and keeps its job's id, and the
        cancel step then tells the channel to stop. Returns the task as it is afterwards, or None when
        it does not exist for this owner. Cancelling a finished task is a 409.
        """
        for _ in range(_CAS_TRIES):
            task = await self.get(ulid, owner=owner)
            if task is None:
                return None
            if task.status.is_terminal:
                raise Conflict(f"The task is already {task.status.value}.", code="task_finished")
            if await self._end_by_client(task, now=now, deleted=False):
                return await self.get(ulid, owner=owner)
        raise Conflict("The task changed while it was being cancelled; try again.", code="busy")

    async def soft_delete(self, ulid: str, *, owner: str, now: int) -> Task | None:
        """Hide a task from every read (its media is deleted by the caller); an active one is cancelled
        in the same compare-and-set. A channel that may hold its job is told to stop (or delete it) by
        the cancel step. Returns the task as it was before, or None when there is none to delete."""
        for _ in range(_CAS_TRIES):
            task = await self.get(ulid, owner=owner)
            if task is None:
                return None
            if await self._end_by_client(task, now=now, deleted=True):
                return task
        raise Conflict("The task changed while it was being deleted; try again.", code="busy")

    async def _end_by_client(self, task: Task, *, now: int, deleted: bool) -> bool:
        values: dict[str, Any] = {"version": task.version + 1, "next_run_at": self.queue_clock.expr()}
        cancelling = not task.status.is_terminal
        if cancelling:
            values.update(
                status=TaskStatus.CANCELLED.value,
                status_update_time=max(now, task.status_update_time + 1),
                completed_at=now,
                error_code="cancelled",
                error_message="Cancelled at the client's request.",
            )
        if deleted:
            values["deleted_at"] = now
            values["idempotency_key"] = None  # the key is free again: a new create with it makes a new task
        ended = replace(task, deleted_at=now if deleted else task.deleted_at)
        if cancelling or deleted:
            values["step"] = (Step.CANCEL if ended.may_hold_upstream_job else after_cancel_step(ended)).value
        query = update(tasks).where(
            tasks.c.id == task.id, tasks.c.version == task.version, tasks.c.deleted_at.is_(None)
        )
        async with self._write() as conn:
            if (await conn.execute(query.values(**values))).rowcount != 1:
                return False
            if cancelling:
                cancelled = replace(task, status=TaskStatus.CANCELLED, error=TaskError("cancelled", ""))
                await self._resolve_hold(conn, cancelled, now=now)
                await conn.execute(
                    insert(task_events).values(
                        task_id=task.id,
                        at=now,
                        kind="status",
                        from_status=task.status.value,
                        to_status=TaskStatus.CANCELLED.value,
                        step=values["step"],
                    )
                )
            if deleted:
                await conn.execute(
                    insert(task_events).values(task_id=task.id, at=now, kind="deleted", step=values["step"])
                )
        return True

    async def mark_media_deleted(self, ulid: str, *, now: int, reason: str) -> None:
        query = (
            update(tasks)
            .where(tasks.c.id == ulid)
            .values(
                video_key=None,
                thumbnail_key=None,
                spritesheet_key=None,
                media_deleted_at=now,
                media_deleted_reason=reason,
            )
        )
        async with self._write() as conn:
            await conn.execute(query)
            await conn.execute(
                insert(task_events).values(task_id=ulid, at=now, kind="media_deleted", message=reason)
            )

    async def media_older_than(self, cutoff_ms: int, limit: int = 100) -> list[Task]:
        """Ended tasks whose files are due for deletion under the retention setting: the media of a
        completed one, and the inputs (uploads, ingested images) of every one, whatever its outcome."""
        query = (
            select(tasks)
            .where(
                and_(
                    tasks.c.completed_at.is_not(None),
                    tasks.c.completed_at < cutoff_ms,
                    tasks.c.media_deleted_at.is_(None),
                )
            )
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [row_to_task(r) for r in rows]

    async def deleted_with_files(self, limit: int = 100) -> list[Task]:
        """Deleted tasks whose files have not been swept yet and that no live claim holds (so no step
        can still be storing files for them)."""
        now = self.queue_clock.expr()
        query = (
            select(tasks)
            .where(
                tasks.c.deleted_at.is_not(None),
                tasks.c.media_deleted_at.is_(None),
                or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
            )
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [row_to_task(r) for r in rows]

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


def _fence(claim: Claim) -> Sequence[Any]:
    return (
        tasks.c.id == claim.task.id,
        tasks.c.version == claim.version,
        tasks.c.lease_token == claim.token,
    )


async def _by_key_in(conn: AsyncConnection, owner: str, idempotency_key: str) -> Task | None:
    query = select(tasks).where(tasks.c.owner == owner, tasks.c.idempotency_key == idempotency_key)
    row = (await conn.execute(query)).mappings().first()
    return row_to_task(row) if row else None


async def _admit_within_cap(conn: AsyncConnection, owner: str, cap: int) -> None:
    """Inside the create's write transaction: pass when `owner` has fewer than `cap` tasks pending or
    processing, else raise RateLimited. Exact under concurrent creates because writers are serialised
    first: SQLite's BEGIN IMMEDIATE already did, and on PostgreSQL the owner's key row is locked here,
    so a second create of the same key waits for the first to commit and then counts its task."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(api_keys.c.id).where(api_keys.c.id == owner).with_for_update())
    # Counting stops at `cap` rows: only "at least cap" matters.
    active = select(tasks.c.id).where(tasks.c.owner == owner, tasks.c.status.in_(_ACTIVE)).limit(cap)
    count = (await conn.execute(select(func.count()).select_from(active.subquery()))).scalar_one()
    if count < cap:
        return
    raise RateLimited(
        f"This API key already has {cap} tasks pending or processing, its limit. "
        "Retry when one has finished (or cancel one).",
        code="too_many_active_tasks",
        headers={"retry-after": str(ACTIVE_CAP_RETRY_AFTER_S)},
    )


def _occupies_slot() -> Any:
    return and_(
        tasks.c.channel.is_not(None),
        tasks.c.status.in_(_ACTIVE),
        or_(tasks.c.upstream_id.is_not(None), tasks.c.submit_intent_at.is_not(None)),
    )


def _case_ended(step_if_ended: str) -> Any:
    return case((tasks.c.status.in_(_TERMINAL), step_if_ended), else_=tasks.c.step)


def _never_lower(progress: Any) -> Any:
    """Progress only goes up: a client polling a task must never see it move back (a late heartbeat
    of an older reading, a retried step starting its count again)."""
    return case((tasks.c.progress > progress, tasks.c.progress), else_=progress)


def _monotonic(changes: Mapping[str, Any]) -> Mapping[str, Any]:
    if "progress" not in changes:
        return changes
    return {**changes, "progress": _never_lower(changes["progress"])}


def _new_token() -> str:
    return secrets.token_hex(16)
