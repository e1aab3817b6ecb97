"""The claim loop: lease due tasks, run one step each, commit the outcome, repeat.

- Concurrency is bounded by `worker.concurrency` steps at once per process.
- While a step runs, a heartbeat extends its lease; if the lease is lost (the task was cancelled,
  or this process stalled past its lease and another worker took over) the step is cancelled and
  its result dropped.
- A crashed worker's tasks are taken up by any worker once their leases expire.
- Stopping (SIGTERM) is graceful: no new claims, running steps get `shutdown_grace_seconds` to
  finish, and whatever is left is released so another worker can take it at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup

from vidgate.domain.tasks import Step, TaskStatus
from vidgate.ids import new_ulid
from vidgate.providers.base import StepContext
from vidgate.providers.registry import cancel_upstream
from vidgate.store.tasks import Claim
from vidgate.worker.steps import LeaseLost, Outcome, StepDeps, Steps, deadline_reached

log = structlog.get_logger("vidgate.worker")


def make_worker_id() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{new_ulid()[-8:]}"


@dataclass
class _Running:
    """One step in flight: its current claim (replaced when the step saves progress) and progress."""

    claim: Claim
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    progress: int | None = None
    lease_lost: bool = False


class Worker:
    def __init__(
        self, deps: StepDeps, *, worker_id: str | None = None, scratch_root: Path | None = None
    ) -> None:
        self.deps = deps
        self.steps = Steps(deps)
        self.id = worker_id or make_worker_id()
        self.settings = deps.settings.worker
        self.scratch_root = scratch_root or Path(tempfile.gettempdir()) / "vidgate-work"
        self._running: dict[str, _Running] = {}
        self._wake = anyio.Event()
        self._slot_freed = anyio.Event()
        self.steps_run = 0

    @property
    def lease_ms(self) -> int:
        return round(self.settings.lease_seconds * 1000)

    def wake(self) -> None:
        """Something became due (a task was created here): look now instead of at the next tick."""
        self._wake.set()

    # The loop ---------------------------------------------------------------------------------

    async def run(self, stop: anyio.Event) -> None:
        """Claim and run steps until `stop` is set, then shut down gracefully."""
        log.info("worker started", worker=self.id, concurrency=self.settings.concurrency)
        async with anyio.create_task_group() as steps_group:
            await self._claim_loop(stop, steps_group)
            await self._drain(steps_group)
        log.info("worker stopped", worker=self.id, steps_run=self.steps_run)

    async def _claim_loop(self, stop: anyio.Event, steps_group: TaskGroup) -> None:
        while not stop.is_set():
            claimed = 0
            free = self.settings.concurrency - len(self._running)
            if free > 0:
                try:
                    claims = await self.deps.store.claim_due(
                        worker=self.id, limit=free, now=self.deps.clock.now_ms(), lease_ms=self.lease_ms
                    )
                except Exception:  # the database went away for a moment: log, wait, go on
                    log.exception("claim failed", worker=self.id)
                    claims = []
                for claim in claims:
                    running = _Running(claim)
                    self._running[claim.task.id] = running
                    steps_group.start_soon(self._run_one, running)
                claimed = len(claims)
            if claimed == free and free > 0:
                continue  # there may be more due right now
            await self._idle(stop, wait_for_slot=free <= 0)

    async def _idle(self, stop: anyio.Event, *, wait_for_slot: bool) -> None:
        """Sleep until the next tick, a wake-up, a free slot (when full) or stop, whichever is first."""
        self._wake = anyio.Event()
        self._slot_freed = anyio.Event()
        jitter = self.deps.rng.uniform(0.8, 1.2)
        with anyio.move_on_after(self.settings.idle_poll_seconds * jitter):
            async with anyio.create_task_group() as tg:

                async def waiter(event: anyio.Event) -> None:
                    await event.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(waiter, stop)
                tg.start_soon(waiter, self._wake)
                if wait_for_slot:
                    tg.start_soon(waiter, self._slot_freed)

    async def _drain(self, steps_group: TaskGroup) -> None:
        if self._running:
            log.info(
                "waiting for running steps",
                count=len(self._running),
                grace=self.settings.shutdown_grace_seconds,
            )
        with anyio.move_on_after(self.settings.shutdown_grace_seconds):
            while self._running:
                self._slot_freed = anyio.Event()
                await self._slot_freed.wait()
        for running in list(self._running.values()):
            running.scope.cancel()  # _run_one releases the lease on its way out

    async def tick(self) -> int:
        """Claim what is due now and run it to the end of its step; for tests and tools.

        Returns the number of steps run. Unlike `run`, it never waits for anything to become due.
        """
        claims = await self.deps.store.claim_due(
            worker=self.id,
            limit=self.settings.concurrency,
            now=self.deps.clock.now_ms(),
            lease_ms=self.lease_ms,
        )
        async with anyio.create_task_group() as tg:
            for claim in claims:
                running = _Running(claim)
                self._running[claim.task.id] = running
                tg.start_soon(self._run_one, running)
        return len(claims)

    # One step ---------------------------------------------------------------------------------

    async def _run_one(self, running: _Running) -> None:
        task_id = running.claim.task.id
        log_ = log.bind(task_id=task_id, step=running.claim.task.step.value, worker=self.id)
        try:
            outcome = await self._step_with_heartbeat(running, log_)
            if outcome is not None:
                await self._commit(running, outcome, log_)
            elif not running.lease_lost:
                # Cancelled by shutdown: hand the task back so another worker can take it at once.
                with anyio.CancelScope(shield=True):
                    await self.deps.store.release(running.claim, now=self.deps.clock.now_ms())
        except Exception:
            log_.exception("step crashed; the task will be retried when its lease expires")
        finally:
            self._running.pop(task_id, None)
            self.steps_run += 1
            self._slot_freed.set()

    async def _step_with_heartbeat(
        self, running: _Running, log_: structlog.typing.FilteringBoundLogger
    ) -> Outcome | None:
        claim = running.claim
        task = claim.task
        now = self.deps.clock.now_ms()
        if task.step is Step.DONE:
            return None
        if now >= task.deadline_at and not task.status.is_terminal:
            await cancel_upstream(self.deps.providers, task)
            return deadline_reached(task)
        work_dir = self.scratch_root / f"{task.id}-{claim.version}"
        work_dir.mkdir(parents=True, exist_ok=True)

        async def report_progress(percent: int) -> None:
            running.progress = max(0, min(99, int(percent)))

        ctx = StepContext(task_id=task.id, work_dir=work_dir, report_progress=report_progress)

        def on_new_claim(new: Claim) -> None:
            running.claim = new

        box: list[Outcome] = []
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, running)
                with running.scope:
                    try:
                        box.append(await self.steps.run(claim, ctx, on_new_claim))
                    except LeaseLost:
                        running.lease_lost = True
                        log_.warning("lease lost while saving progress; dropping the step")
                tg.cancel_scope.cancel()  # stop the heartbeat
        finally:
            if running.lease_lost:
                await self._after_lease_lost(running)
            shutil.rmtree(work_dir, ignore_errors=True)
        # Empty box: cancelled by shutdown or by a lost lease.
        return box[0] if box and not running.lease_lost else None

    async def _heartbeat(self, running: _Running) -> None:
        interval = min(self.settings.lease_seconds / 3, 1.0)  # also how often progress is saved
        last_progress = running.claim.task.progress
        while True:
            await anyio.sleep(interval)
            progress = running.progress if running.progress != last_progress else None
            ok = await self.deps.store.heartbeat(
                running.claim, now=self.deps.clock.now_ms(), lease_ms=self.lease_ms, progress=progress
            )
            if not ok:
                running.lease_lost = True
                running.scope.cancel()
                return
            if progress is not None:
                last_progress = progress

    async def _after_lease_lost(self, running: _Running) -> None:
        """If we lost the task because it was cancelled, stop the upstream work too (best effort)."""
        with anyio.CancelScope(shield=True):
            task = await self.deps.store.get(running.claim.task.id)
            if task is not None and task.status is TaskStatus.CANCELLED:
                await cancel_upstream(self.deps.providers, task)

    async def _commit(
        self, running: _Running, outcome: Outcome, log_: structlog.typing.FilteringBoundLogger
    ) -> None:
        now = self.deps.clock.now_ms()
        next_step = outcome.next_step
        if outcome.status is not None and outcome.status.is_terminal and running.claim.task.callback_url:
            next_step = Step.NOTIFY  # the task ended: its webhook goes out as the next step
        changes = dict(outcome.changes)
        if running.progress is not None and "progress" not in changes:
            changes["progress"] = running.progress
        with anyio.CancelScope(shield=True):  # a half-done commit is worse than a late stop
            task = await self.deps.store.finish_step(
                running.claim,
                now=now,
                next_step=next_step,
                next_run_at=now + round(outcome.delay_seconds * 1000),
                status=outcome.status,
                changes=changes,
                event_kind="step" if outcome.record_event else None,
                message=outcome.message,
            )
        if task is None:
            log_.warning("lease lost before commit; result dropped")
            await self._after_lease_lost(running)
            return
        if outcome.status is not None:
            log_.info("task status", status=task.status.value, error=task.error.code if task.error else None)
        if outcome.delay_seconds == 0 and task.step is not Step.DONE:
            self.wake()  # the next step is due now: no reason to wait for the next tick
