"""Creating tasks: every create path, each holding the task's price in the transaction that inserts it.

- Grouped creates (one commit for all that arrived meanwhile): on SQLite through the create writer
  (store/create_batch.py), on PostgreSQL through `_insert_group`.
- A transaction of its own: a key with `max_active_tasks` (its count cannot be grouped), and every
  create of a store built without either grouping.
- An idempotency key answers a replay of the same request with the first task, and another request
  under it with a 409, whichever path the first one took.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.requests import VideoSpec, input_echo
from vidgate.domain.tasks import Step, Task, TaskStatus
from vidgate.errors import Conflict, InsufficientQuota, RateLimited
from vidgate.ids import new_ulid
from vidgate.store import ledger
from vidgate.store.create_batch import DB_NOW, DbNowPlus, NewTask
from vidgate.store.tables import api_keys, ledger_entries, task_events, tasks
from vidgate.store.task_rows import row_to_task
from vidgate.store.tasks._common import _ACTIVE
from vidgate.store.tasks.reads import TaskReads

# Retry-After of a create refused by the cap on tasks in flight (a task takes seconds to minutes).
ACTIVE_CAP_RETRY_AFTER_S = 5


class TaskCreates(TaskReads):
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
        first_step = Step.INGEST if spec.all_images else Step.SUBMIT  # nothing to ingest: skip the step
        values = {
            "id": ulid,
            "owner": owner,
            "dialect": dialect,
            "model": spec.model,
            "prompt": spec.prompt,
            "images": list(spec.all_images),
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
            "inputs": None if spec.all_images else [],
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
            await self._notify_due(conn)
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
                await self._notify_due(conn)  # one for the whole group
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
