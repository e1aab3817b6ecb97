"""TaskStore: the tasks table as a durable record AND a work queue.

Rules every write here follows (see docs in the architecture note):
- A status change is compare-and-set on `version` and appends a `task_events` row in the same
  transaction. Zero rows updated means someone else changed the task first: the caller stops.
- A worker's writes are fenced by its lease (`lease_owner`) and the version it claimed at, so a
  worker whose lease expired (it stalled, or was killed and came back) cannot overwrite the work
  of the worker that took the task over.
- Claiming bumps `version`, so two claims of one task never share a version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.domain.requests import VideoSpec, input_echo
from vidgate.domain.tasks import (
    ACTIVE_STATUSES,
    Step,
    Task,
    TaskError,
    TaskStatus,
    WatermarkMode,
)
from vidgate.domain.transitions import check_transition
from vidgate.errors import Conflict
from vidgate.ids import new_ulid
from vidgate.store.db import WRITE_OPTION
from vidgate.store.tables import task_events, tasks

_ACTIVE = [s.value for s in ACTIVE_STATUSES]


@dataclass(frozen=True, slots=True)
class Claim:
    """A task this worker may work on until `lease_expires_at`, fenced by `version`."""

    task: Task
    worker: str

    @property
    def version(self) -> int:
        return self.task.version


@dataclass(frozen=True, slots=True)
class TaskEvent:
    at: int
    kind: str
    from_status: str | None
    to_status: str | None
    step: str | None
    worker: str | None
    message: str | None


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body, to tell an idempotent retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def row_to_task(row: RowMapping) -> Task:
    error = TaskError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    return Task(
        id=row["id"],
        owner=row["owner"],
        dialect=row["dialect"],
        model=row["model"],
        prompt=row["prompt"],
        status=TaskStatus(row["status"]),
        step=Step(row["step"]),
        progress=row["progress"],
        width=row["width"],
        height=row["height"],
        seconds=row["seconds"],
        orientation=row["orientation"],
        size_label=row["size_label"],
        watermark_mode=WatermarkMode(row["watermark_mode"]),
        private=row["private"],
        input=row["input"],
        images=tuple(row["images"]),
        created_at=row["created_at"],
        status_update_time=row["status_update_time"],
        completed_at=row["completed_at"],
        deadline_at=row["deadline_at"],
        next_run_at=row["next_run_at"],
        attempts=row["attempts"],
        version=row["version"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        channel=row["channel"],
        upstream_id=row["upstream_id"],
        inputs=row["inputs"],
        upstream_state=row["upstream_state"],
        watermarked=row["watermarked"],
        error=error,
        last_error=TaskError(**row["last_error"]) if row["last_error"] else None,
        video_key=row["video_key"],
        thumbnail_key=row["thumbnail_key"],
        spritesheet_key=row["spritesheet_key"],
        media_deleted_at=row["media_deleted_at"],
        media_deleted_reason=row["media_deleted_reason"],
        remixed_from=row["remixed_from"],
        callback_url=row["callback_url"],
        callback_attempts=row["callback_attempts"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
    )


class TaskStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn

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
    ) -> Task:
        """Save a new pending task (and its `created` event) before anything is sent anywhere.

        With an `idempotency_key`, a retry of the same request returns the first task; a
        different request under the same key is a 409.
        """
        if idempotency_key is not None:
            existing = await self._by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return self._idempotent_match(existing, request_hash)
        ulid = task_id or new_ulid()
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
            "status": TaskStatus.PENDING.value,
            "step": Step.INGEST.value,
            "progress": 0,
            "created_at": now,
            "status_update_time": now,
            "next_run_at": now,
            "deadline_at": now + deadline_ms,
            "attempts": 0,
            "version": 0,
        }
        try:
            async with self._write() as conn:
                await conn.execute(insert(tasks).values(**values))
                await conn.execute(
                    insert(task_events).values(
                        task_id=ulid, at=now, kind="created", to_status="pending", step=Step.INGEST.value
                    )
                )
        except IntegrityError:
            # Two concurrent creates with one idempotency key: the loser answers with the winner's task.
            if idempotency_key is None:
                raise
            existing = await self._by_idempotency_key(owner, idempotency_key)
            if existing is None:
                raise
            return self._idempotent_match(existing, request_hash)
        task = await self.get(ulid)
        assert task is not None
        return task

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
        query = select(tasks).where(tasks.c.owner == owner, tasks.c.idempotency_key == key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return row_to_task(row) if row else None

    async def get(self, ulid: str, *, owner: str | None = None) -> Task | None:
        """The task, or None when it does not exist, was deleted, or belongs to another owner."""
        query = select(tasks).where(tasks.c.id == ulid, tasks.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return row_to_task(row) if row else None

    async def list_page(
        self, *, owner: str, after: str | None, limit: int, descending: bool
    ) -> tuple[list[Task], bool]:
        """One page of an owner's tasks by id (= creation time), and whether more follow."""
        query = select(tasks).where(tasks.c.owner == owner, tasks.c.deleted_at.is_(None))
        if after is not None:
            query = query.where(tasks.c.id < after if descending else tasks.c.id > after)
        query = query.order_by(tasks.c.id.desc() if descending else tasks.c.id.asc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [row_to_task(r) for r in rows[:limit]], len(rows) > limit

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

    # The queue --------------------------------------------------------------------------------

    async def claim_due(self, *, worker: str, limit: int, now: int, lease_ms: int) -> list[Claim]:
        """Lease up to `limit` due tasks to `worker`.

        A task is due when it is active (or has a webhook to send), its `next_run_at` has come, and
        nobody holds a live lease
        (an expired lease means its worker died or stalled). On PostgreSQL, FOR UPDATE SKIP LOCKED
        lets concurrent workers pick disjoint rows without waiting; SQLite drops the clause and its
        single writer (BEGIN IMMEDIATE) makes the same statement safe.
        """
        due = (
            select(tasks.c.id)
            .where(
                or_(tasks.c.status.in_(_ACTIVE), tasks.c.step == Step.NOTIFY.value),
                tasks.c.next_run_at <= now,
                or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
            )
            .order_by(tasks.c.next_run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(tasks)
            .where(tasks.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=worker, lease_expires_at=now + lease_ms, version=tasks.c.version + 1)
            .returning(*tasks.c)
        )
        async with self._write() as conn:
            rows = (await conn.execute(claim)).mappings().all()
        return [Claim(row_to_task(r), worker) for r in rows]

    async def heartbeat(self, claim: Claim, *, now: int, lease_ms: int, progress: int | None = None) -> bool:
        """Extend a live lease (and optionally record progress). False: the lease is lost."""
        values: dict[str, Any] = {"lease_expires_at": now + lease_ms}
        if progress is not None:
            values["progress"] = progress
        query = update(tasks).where(*self._fence(claim)).values(**values)
        async with self._write() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def release(self, claim: Claim, *, now: int) -> bool:
        """Give a task back untouched (graceful shutdown), so another worker can take it at once."""
        query = (
            update(tasks)
            .where(*self._fence(claim))
            .values(lease_owner=None, lease_expires_at=None, next_run_at=now)
        )
        async with self._write() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def finish_step(
        self,
        claim: Claim,
        *,
        now: int,
        next_step: Step,
        next_run_at: int,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        event_kind: str | None = "step",
        message: str | None = None,
    ) -> Task | None:
        """Record one step's outcome and release the lease, fenced by the claim.

        Returns the updated task, or None when the claim was lost (lease expired and another
        worker took over, or the task was cancelled): the caller must then drop its result.
        A status change always writes an event; otherwise `event_kind=None` writes none (a
        routine re-poll is not worth a row).
        """
        release = {"next_run_at": next_run_at, "lease_owner": None, "lease_expires_at": None}
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

    async def advance(
        self,
        claim: Claim,
        *,
        now: int,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        message: str | None = None,
    ) -> Claim | None:
        """Save progress in the middle of a step and keep the lease (e.g. the channel chosen,
        written before anything is sent to it). Returns the claim at its new version, or None."""
        row = await self._apply(
            claim,
            now=now,
            step=claim.task.step,
            status=status,
            changes=changes or {},
            event_kind="step",
            message=message,
        )
        return Claim(row_to_task(row), claim.worker) if row else None

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
        current = claim.task
        target = status or current.status
        check_transition(current.status, target)
        values: dict[str, Any] = {**changes, "step": step.value, "version": claim.version + 1}
        status_changed = target != current.status
        if status_changed:
            values.update(status=target.value, status_update_time=max(now, current.status_update_time + 1))
            if target.is_terminal:
                values["completed_at"] = now
        query = update(tasks).where(*self._fence(claim)).values(**values).returning(*tasks.c)
        async with self._write() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
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

    @staticmethod
    def _fence(claim: Claim) -> Sequence[Any]:
        return (
            tasks.c.id == claim.task.id,
            tasks.c.version == claim.version,
            tasks.c.lease_owner == claim.worker,
        )

    # Client-side changes ----------------------------------------------------------------------

    async def cancel(self, ulid: str, *, owner: str, now: int) -> Task | None:
        """Cancel an active task; a worker's lease does not protect it (the version bump fences it).

        Returns the task as it is afterwards, or None when it does not exist for this owner.
        Cancelling a finished task is a 409.
        """
        for _ in range(5):
            task = await self.get(ulid, owner=owner)
            if task is None:
                return None
            if task.status.is_terminal:
                raise Conflict(f"The task is already {task.status.value}.", code="task_finished")
            query = (
                update(tasks)
                .where(tasks.c.id == ulid, tasks.c.version == task.version)
                .values(
                    status=TaskStatus.CANCELLED.value,
                    step=(Step.NOTIFY if task.callback_url else Step.DONE).value,
                    next_run_at=now,
                    status_update_time=max(now, task.status_update_time + 1),
                    completed_at=now,
                    error_code="cancelled",
                    error_message="Cancelled at the client's request.",
                    version=task.version + 1,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            async with self._write() as conn:
                won = (await conn.execute(query)).rowcount == 1
                if won:
                    await conn.execute(
                        insert(task_events).values(
                            task_id=ulid,
                            at=now,
                            kind="status",
                            from_status=task.status.value,
                            to_status="cancelled",
                            step=Step.DONE.value,
                        )
                    )
            if won:
                return await self.get(ulid, owner=owner)
        raise Conflict("The task changed while it was being cancelled; try again.", code="busy")

    async def soft_delete(self, ulid: str, *, owner: str, now: int) -> Task | None:
        """Hide a task from every read (its media is deleted by the caller). Active tasks are cancelled."""
        task = await self.get(ulid, owner=owner)
        if task is None:
            return None
        query = (
            update(tasks)
            .where(tasks.c.id == ulid, tasks.c.owner == owner, tasks.c.deleted_at.is_(None))
            .values(
                deleted_at=now,
                status=(TaskStatus.CANCELLED.value if task.status in ACTIVE_STATUSES else tasks.c.status),
                step=Step.DONE.value,
                version=tasks.c.version + 1,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        async with self._write() as conn:
            await conn.execute(query)
            await conn.execute(
                insert(task_events).values(task_id=ulid, at=now, kind="deleted", step=Step.DONE.value)
            )
        return task

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
        """Completed tasks whose media is due for deletion under the retention setting."""
        query = (
            select(tasks)
            .where(
                and_(
                    tasks.c.completed_at.is_not(None),
                    tasks.c.completed_at < cutoff_ms,
                    or_(tasks.c.video_key.is_not(None), tasks.c.thumbnail_key.is_not(None)),
                )
            )
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [row_to_task(r) for r in rows]
