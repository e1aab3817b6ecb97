"""Retention: ended tasks whose files are due for deletion, deleted tasks whose files are still to be
swept, and the record that a task's media is gone."""

from __future__ import annotations

from sqlalchemy import and_, insert, or_, select, update

from vidgate.domain.tasks import Task
from vidgate.store.tables import task_events, tasks
from vidgate.store.task_rows import row_to_task
from vidgate.store.tasks._common import StoreBase


class Retention(StoreBase):
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
