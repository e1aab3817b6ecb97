"""The client's ends of a task: cancel and delete, recorded here (compare-and-set on the version, which
fences the worker holding the task) and carried out by the worker's cancel step when a channel may
still hold the task's job."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import insert, update

from vidgate.domain.lifecycle import step_after_client_end
from vidgate.domain.tasks import Task, TaskError, TaskStatus
from vidgate.errors import Conflict
from vidgate.store.tables import task_events, tasks
from vidgate.store.tasks.reads import TaskReads

_CAS_TRIES = 8


class ClientEnds(TaskReads):
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
            values["step"] = step_after_client_end(ended).value
        query = update(tasks).where(
            tasks.c.id == task.id, tasks.c.version == task.version, tasks.c.deleted_at.is_(None)
        )
        async with self._write() as conn:
            if (await conn.execute(query.values(**values))).rowcount != 1:
                return False
            await self._notify_due(conn)  # its cancel step (or webhook) is due now
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
