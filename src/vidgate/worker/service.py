"""Running a worker inside a process: the claim loop plus the media retention sweep."""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus as StartStatus

from vidgate.runtime import Runtime
from vidgate.store.blobs import delete_task_files
from vidgate.worker.deps import StepDeps
from vidgate.worker.runner import Worker

log = structlog.get_logger("vidgate.worker")
_RETENTION_SWEEP_SECONDS = 600.0


def build_worker(runtime: Runtime) -> Worker:
    deps = StepDeps(
        settings=runtime.settings,
        store=runtime.tasks,
        health=runtime.health,
        blobs=runtime.blobs,
        catalog=runtime.catalog,
        providers=runtime.providers,
        fetcher=runtime.fetcher,
        clock=runtime.clock,
    )
    return Worker(deps, scratch_root=runtime.settings.data_dir / "work")


async def run_worker_services(
    runtime: Runtime, stop: anyio.Event, *, task_status: StartStatus[Worker] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run until `stop` is set. Reports the Worker through `task_status` once it is running."""
    worker = build_worker(runtime)
    async with anyio.create_task_group() as tg:
        if runtime.settings.media_retention_days is not None:
            tg.start_soon(_retention_loop, runtime, stop)
        task_status.started(worker)
        await worker.run(stop)
        tg.cancel_scope.cancel()


async def delete_expired_media(runtime: Runtime) -> int:
    """Delete media older than the retention setting; the task stays, with the reason recorded."""
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


async def _retention_loop(runtime: Runtime, stop: anyio.Event) -> None:
    while not stop.is_set():
        try:
            deleted = await delete_expired_media(runtime)
            if deleted:
                log.info("media retention", deleted=deleted)
        except Exception:
            log.exception("media retention sweep failed")
        with anyio.move_on_after(_RETENTION_SWEEP_SECONDS):
            await stop.wait()
