"""Reading tasks: one by id, a page of an owner's, a task's events, and the slots each channel has
taken. `get` and `list_page` take the hot paths' fast reads (store/fast_reads.py) when the store has
them; everything else, and every read of a deleted task, goes through SQLAlchemy."""

from __future__ import annotations

from sqlalchemy import func, select

from vidgate.domain.tasks import Task, TaskStatus, TaskSummary, summary_from_row
from vidgate.store.fast_reads import page_statement
from vidgate.store.tables import task_events, tasks
from vidgate.store.task_rows import TaskEvent, row_to_task
from vidgate.store.tasks._common import StoreBase, _occupies_slot


class TaskReads(StoreBase):
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
