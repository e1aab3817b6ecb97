"""Running a worker inside a process: the claim loop, the wake-ups from other processes (PostgreSQL's
LISTEN: worker/wakeups.py) and housekeeping (the files of deleted tasks, media and inputs past their
retention, scratch directories of claims that are over)."""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus as StartStatus

from vidgate.clock import DatabaseAlignedClock
from vidgate.runtime import Runtime
from vidgate.store.blobs import delete_task_files
from vidgate.worker.deps import StepDeps
from vidgate.worker.runner import Worker
from vidgate.worker.wakeups import listen_for_wakeups

log = structlog.get_logger("vidgate.worker")
_HOUSEKEEPING_SECONDS = 600.0


def build_worker(runtime: Runtime) -> Worker:
    deps = StepDeps(
        settings=runtime.settings,
        store=runtime.tasks,
        attempts=runtime.attempts,
        health=runtime.health,
        blobs=runtime.blobs,
        catalog=runtime.catalog,
        providers=runtime.providers,
        fetcher=runtime.fetcher,
        # The worker compares deadlines and cooldowns written on the database's clock.
        clock=DatabaseAlignedClock(runtime.clock),
    )
    return Worker(deps, scratch_root=runtime.settings.data_dir / "work")


async def run_worker_services(
    runtime: Runtime,
    stop: anyio.Event,
    force: anyio.Event | None = None,
    *,
    task_status: StartStatus[Worker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `stop` is set (running steps get their grace period) or `force` is (they are stopped
    at once). Reports the Worker through `task_status` once it is running."""
    worker = build_worker(runtime)
    for channel in runtime.catalog.channels:
        if channel.enabled and channel.traits.builtin_engine:
            runtime.providers(channel.name)  # built now, so its checks warn at start (the card's font)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_housekeeping, runtime, worker, stop)
        if runtime.settings.worker.wakeups and runtime.engine.dialect.name == "postgresql":
            # Listening before the worker reports started: a task created from then on wakes it.
            await tg.start(listen_for_wakeups, runtime.settings.resolved_database_url, worker.wake)
        task_status.started(worker)
        await worker.run(stop, force=force)
        tg.cancel_scope.cancel()


async def delete_files_of_deleted_tasks(runtime: Runtime) -> int:
    """Remove whatever is still stored for deleted tasks that no step holds any more.

    The API removes a task's files when it is deleted, and a step that stores files after that
    removes them itself (`worker.leftovers`); this finds what a process killed in between left."""
    now = runtime.clock.now_ms()
    swept = 0
    while batch := await runtime.tasks.deleted_with_files():
        for task in batch:
            await delete_task_files(runtime.blobs, task.id)
            await runtime.tasks.mark_media_deleted(task.id, now=now, reason="the task was deleted")
            swept += 1
    return swept


async def delete_expired_media(runtime: Runtime) -> int:
    """Delete the files of tasks that ended longer ago than the retention setting: a completed task's
    media, and every ended task's inputs. The task stays, with the reason recorded."""
    days = runtime.settings.media_retention_days
    if days is None:
        return 0
    now = runtime.clock.now_ms()
    deleted = 0
    while batch := await runtime.tasks.media_older_than(now - round(days * 86_400_000)):
        for task in batch:
            await delete_task_files(runtime.blobs, task.id)
            await runtime.tasks.mark_media_deleted(
                task.id, now=now, reason=f"the retention period of {days:g} days ended"
            )
            deleted += 1
    return deleted


async def _housekeeping(runtime: Runtime, worker: Worker, stop: anyio.Event) -> None:
    """Every few minutes (and at start, where `Worker.run` sweeps its scratch itself)."""
    while True:
        try:
            swept = await delete_files_of_deleted_tasks(runtime)
            if swept:
                log.info("removed the files of deleted tasks", tasks=swept)
            deleted = await delete_expired_media(runtime)
            if deleted:
                log.info("media retention", deleted=deleted)
        except Exception:
            log.exception("housekeeping sweep failed")
        with anyio.move_on_after(_HOUSEKEEPING_SECONDS):
            await stop.wait()
        if stop.is_set():
            return
        await worker.sweep_scratch()
