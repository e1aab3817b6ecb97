"""The claim loop: lease due tasks, run one step each, commit the outcome, repeat.

- Concurrency is bounded by `worker.concurrency` steps at once per process.
- While steps run, one heartbeat loop per worker extends the leases of every step that has run for
  a while, in one statement (fenced by each claim's token, never by version, so it cannot race the
  steps' own writes). A heartbeat that fails is retried until the lease would really have expired;
  only then is the step given up. Quick steps (a poll) never cost a heartbeat at all.
- A client's cancel or delete reaches a running step through the heartbeat: the step is stopped,
  except a submit to a paid upstream, which is let finish so that its job's id is kept and the cancel
  step can stop that job.
- A new task is claimed at once: a create in the same process, or on PostgreSQL in any process, wakes
  the claim loop (`wake`, worker/wakeups.py); otherwise it looks every `idle_poll_seconds`. A claim is
  one statement unless the media budget could be overrun (then media steps first, then the rest).
- A crashed worker's tasks are taken up by any worker once their leases expire.
- Stopping (SIGTERM) is graceful: no new claims, running steps get `shutdown_grace_seconds` to
  finish, and whatever is left is released so another worker can take it at once. A forced stop (a
  second signal) does not wait: running steps are stopped and released at once.
- A step that writes files does so in a scratch directory of its own claim (`worker.scratch`), removed
  when it ends; the directories a killed process left are swept at start and after each such step. A
  file step that ends without committing removes what it stored for a task the client ended meanwhile
  (`worker.leftovers`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskGroup

from vidgate import metrics
from vidgate.domain.lifecycle import step_after_cancel
from vidgate.domain.tasks import Step
from vidgate.ids import new_ulid
from vidgate.private_files import make_private_dirs
from vidgate.providers.base import StepContext
from vidgate.store.db import with_retries
from vidgate.store.task_rows import Claim, ClaimLost
from vidgate.worker.deps import StepDeps
from vidgate.worker.leftovers import remove_unclaimed_files
from vidgate.worker.outcomes import Outcome, deadline_reached
from vidgate.worker.scratch import scratch_dir, sweep_scratch
from vidgate.worker.steps import Steps

log = structlog.get_logger("vidgate.worker")
# Steps that may write scratch files (inputs handed to a renderer, a downloaded result). A submit writes
# files only on a built-in engine (its render): where no channel is one, a submit is a plain upstream call
# and costs no directory and no sweep (`Worker.steps_with_files`).
_STEPS_WITH_FILES = frozenset({Step.INGEST, Step.SUBMIT, Step.FETCH})
_STEPS_WITH_FILES_UPSTREAM_ONLY = frozenset({Step.INGEST, Step.FETCH})
# Steps that decode and encode media (images in, videos and previews out): CPU-heavy, so at most
# `media_concurrency` of them run at once, and the cheap polls that detect completions never queue
# behind a burst of downloads.
MEDIA_STEPS = frozenset({Step.INGEST, Step.FETCH})
# While a graceful stop waits for running steps, it says so again this often (a grace can be long).
DRAIN_REMINDER_S = 10.0
_DESCRIBED_STEPS = 5  # running steps a stop message names, the rest counted
# A second SIGINT or SIGTERM forces the stop: `api.signals` for `serve`, the CLI for `vidgate worker`.
_STOP_NOW_HINT = "press Ctrl-C again (or send a second SIGTERM) to stop them at once"


def make_worker_id() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{new_ulid()[-8:]}"


@dataclass
class _Running:
    """One step in flight: its current claim (replaced when the step saves progress) and progress."""

    claim: Claim
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    progress: int | None = None
    saved_progress: int = 0
    lease_ok_at: float = field(default_factory=time.monotonic)  # the lease was last known held then
    lease_lost: bool = False
    stopped_by_client: bool = False
    protected: int = 0  # >0 while a paid submit is in flight: a client's cancel waits for it

    def new_claim(self, claim: Claim) -> None:
        self.claim = claim

    @contextmanager
    def submit_in_flight(self, *, paid: bool) -> Iterator[None]:
        if not paid:
            yield
            return
        self.protected += 1
        try:
            yield
        finally:
            self.protected -= 1


class Worker:
    def __init__(self, deps: StepDeps, *, scratch_root: Path, worker_id: str | None = None) -> None:
        self.deps = deps
        self.steps = Steps(deps)
        self.id = worker_id or make_worker_id()
        self.settings = deps.settings.worker
        self.scratch_root = scratch_root  # may be shared with other processes: see worker.scratch
        self._running: dict[str, _Running] = {}
        builtin = any(channel.traits.builtin_engine for channel in deps.catalog.channels)
        self.steps_with_files = _STEPS_WITH_FILES if builtin else _STEPS_WITH_FILES_UPSTREAM_ONLY
        self._wake = anyio.Event()
        self._slot_freed = anyio.Event()
        self._media_slot_freed = anyio.Event()
        self.steps_run = 0

    @property
    def lease_ms(self) -> int:
        return round(self.settings.lease_seconds * 1000)

    def wake(self) -> None:
        """Something became due (a task was created in this process, or another process NOTIFYed:
        worker/wakeups.py): look now instead of at the next tick."""
        self._wake.set()

    # The loop ---------------------------------------------------------------------------------

    async def run(self, stop: anyio.Event, *, force: anyio.Event | None = None) -> None:
        """Claim and run steps until `stop` is set, then shut down gracefully: running steps get
        `shutdown_grace_seconds`. Once `force` is set (with or without `stop`), stop at once: running
        steps are stopped and their tasks released."""
        force = force or anyio.Event()
        log.info("worker started", worker=self.id, concurrency=self.settings.concurrency)
        await self.sweep_scratch()
        async with anyio.create_task_group() as beats:
            beats.start_soon(self._heartbeats)
            async with anyio.create_task_group() as steps_group:
                await self._claim_loop((stop, force), steps_group)
                await self._drain(force)
            beats.cancel_scope.cancel()  # every step has ended (and released its task)
        log.info("worker stopped", worker=self.id, steps_run=self.steps_run)

    async def _claim_loop(self, stops: tuple[anyio.Event, ...], steps_group: TaskGroup) -> None:
        while not any(stop.is_set() for stop in stops):
            # Fresh events BEFORE looking: a wake-up or a freed slot that arrives while the claim runs
            # sets these, and the idle wait below returns at once instead of sleeping a full tick.
            self._slot_freed = anyio.Event()
            self._media_slot_freed = anyio.Event()
            free = self.settings.concurrency - len(self._running)
            media_waiting = False
            if free > 0:
                self._wake = anyio.Event()
                claims, full, media_waiting = await self._claim(free)
                for claim in claims:
                    self._start(claim, steps_group)
                if full:
                    continue  # there may be more due right now
            await self._idle(stops, wait_for_slot=free <= 0, wait_for_media_slot=media_waiting)

    async def _claim(self, free: int) -> tuple[list[Claim], bool, bool]:
        """Claim up to `free` due steps, media steps within their own budget. Returns the claims,
        whether a claim came back full (more may be due right now), and whether the media budget is
        used up (more media steps may be waiting for it).

        One statement when the media budget cannot be overrun (it has room for all `free`: the usual
        case while slots free up a few at a time); else the media steps first, within their budget,
        then the rest."""
        media_running = sum(1 for r in self._running.values() if r.claim.task.step in MEDIA_STEPS)
        media_free = min(free, self.settings.media_concurrency - media_running)
        store, lease_ms = self.deps.store, self.lease_ms
        try:
            if media_free >= free:
                claims = await store.claim_due(worker=self.id, limit=free, lease_ms=lease_ms)
                media_claimed = sum(1 for c in claims if c.task.step in MEDIA_STEPS)
                full = len(claims) == free
            else:
                media = []
                if media_free > 0:
                    media = await store.claim_due(
                        worker=self.id, limit=media_free, lease_ms=lease_ms, only=MEDIA_STEPS
                    )
                rest = free - len(media)
                light = await store.claim_due(worker=self.id, limit=rest, lease_ms=lease_ms, skip=MEDIA_STEPS)
                claims, media_claimed, full = media + light, len(media), len(light) == rest
        except Exception:  # the database went away for a moment: log, wait, go on
            log.exception("claim failed", worker=self.id)
            return [], False, False
        if claims and claims[0].task.lease_expires_at is not None:  # its lease ends at the database's now
            self.deps.clock.observe(claims[0].task.lease_expires_at - lease_ms)
        return claims, full, media_free <= 0 or media_claimed == media_free

    async def _idle(
        self, stops: tuple[anyio.Event, ...], *, wait_for_slot: bool, wait_for_media_slot: bool
    ) -> None:
        """Sleep until the next tick, a wake-up (when a slot is free), a freed slot (when full), a freed
        media slot (when media steps may be waiting for one) or stop."""
        jitter = self.deps.rng.uniform(0.8, 1.2)
        events = [*stops, self._slot_freed if wait_for_slot else self._wake]
        if wait_for_media_slot and not wait_for_slot:
            events.append(self._media_slot_freed)
        with anyio.move_on_after(self.settings.idle_poll_seconds * jitter):
            await _wait_any(*events)

    async def _drain(self, force: anyio.Event) -> None:
        """Give the running steps the grace period, saying on stderr what is waited for (and how to
        stop at once) when it starts and every `DRAIN_REMINDER_S` while it lasts; then stop the rest."""
        grace = self.settings.shutdown_grace_seconds
        if self._running and not force.is_set():
            log.warning(
                f"waiting for running steps to finish (up to {grace:g} s): {self._describe_running()}; "
                f"{_STOP_NOW_HINT}",
                count=len(self._running),
                grace=grace,
                steps=[_step_label(r, self.deps) for r in self._running.values()],
            )
        ends_at = anyio.current_time() + grace
        with anyio.move_on_after(grace):
            while self._running and not force.is_set():
                self._slot_freed = anyio.Event()
                with anyio.move_on_after(DRAIN_REMINDER_S) as reminder:
                    await _wait_any(self._slot_freed, force)
                if reminder.cancelled_caught and self._running and not force.is_set():
                    left = max(0.0, ends_at - anyio.current_time())
                    log.warning(
                        f"still waiting for running steps ({left:.0f} s left): {self._describe_running()}; "
                        f"{_STOP_NOW_HINT}",
                        count=len(self._running),
                        seconds_left=round(left, 1),
                    )
        if self._running:
            log.info("stopping running steps", count=len(self._running), forced=force.is_set())
        for running in list(self._running.values()):
            running.scope.cancel()  # _run_one releases the lease on its way out

    def _describe_running(self) -> str:
        """What is running, for a stop message: "2 tasks: the render of task 01K… on animate, the submit of
        task 01J… on relay" (five at most named)."""
        labels = [_step_label(r, self.deps) for r in self._running.values()]
        shown = ", ".join(f"the {label}" for label in labels[:_DESCRIBED_STEPS])
        more = f" and {len(labels) - _DESCRIBED_STEPS} more" if len(labels) > _DESCRIBED_STEPS else ""
        return f"{len(labels)} task{'' if len(labels) == 1 else 's'}: {shown}{more}"

    async def tick(self) -> int:
        """Claim what is due now and run it to the end of its step; for tests and tools.

        Returns the number of steps run. Unlike `run`, it never waits for anything to become due.
        """
        claims, _, _ = await self._claim(self.settings.concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeats)
            async with anyio.create_task_group() as steps:
                for claim in claims:
                    self._start(claim, steps)
            tg.cancel_scope.cancel()
        return len(claims)

    # One step ---------------------------------------------------------------------------------

    def _start(self, claim: Claim, group: TaskGroup) -> None:
        earlier = self._running.get(claim.task.id)
        if earlier is not None:
            # This worker claimed the task again: its earlier claim's lease ran out while the step ran
            # (heartbeats that came too late: a starved event loop, a slow database). That claim is
            # void, and every write of its step would lose to the new one: it stops as a lost lease does.
            self._lose_lease(earlier)
        running = _Running(claim)
        self._running[claim.task.id] = running
        group.start_soon(self._run_one, running)

    async def _run_one(self, running: _Running) -> None:
        task = running.claim.task
        task_id, step = task.id, task.step
        # Every line logged while the step runs (the worker's, the providers', the webhook's, the
        # outbound requests') names the task, the step and the create request's id: the context is
        # this task's own (anyio copies it per task), so nothing leaks into other steps.
        context = {"task_id": task_id, "step": step.value, "worker": self.id}
        if task.request_id is not None:
            context["request_id"] = task.request_id
        result = "stopped"  # the step's outcome in vidgate_step_duration_seconds (cancelled: stopped)
        started = time.perf_counter()
        running_gauge = metrics.steps_running()
        running_gauge.inc()
        with structlog.contextvars.bound_contextvars(**context):
            try:
                outcome = await self._run_step(running, log)
                with anyio.CancelScope(shield=True):  # a half-done commit is worse than a late stop
                    committed = False
                    if outcome is not None:
                        # Retried on a transient database error: an accepted submit's job id rides on it.
                        committed = await with_retries(lambda: self._commit(running, outcome, log))
                        result = "committed" if committed else "lost"
                    else:
                        # Stopped (shutdown, a client's cancel) or the lease was lost: hand the task back
                        # so whatever is next can run at once (a no-op if another claim holds it now).
                        result = "lost" if running.lease_lost else "stopped"
                        await self.deps.store.release(running.claim)
                        self.wake()
                    if step in self.steps_with_files:
                        if not committed:
                            await self._remove_unclaimed_files(task_id)
                        await self.sweep_scratch()
            except Exception:
                result = "crashed"
                log.exception("step crashed; the task will be retried when its lease expires")
            finally:
                running_gauge.dec()
                metrics.observe_step(step.value, result, time.perf_counter() - started)
                if self._running.get(task_id) is running:  # not a later claim's run of the same task
                    del self._running[task_id]
                self.steps_run += 1
                self._slot_freed.set()
                if running.claim.task.step in MEDIA_STEPS:
                    self._media_slot_freed.set()

    async def _run_step(
        self, running: _Running, log_: structlog.typing.FilteringBoundLogger
    ) -> Outcome | None:
        claim = running.claim
        task = claim.task
        if task.step is Step.DONE:
            return None
        if self.deps.clock.now_ms() >= task.deadline_at and not task.status.is_terminal:
            return deadline_reached(task)
        work_dir = scratch_dir(self.scratch_root, claim)
        if task.step in self.steps_with_files:  # polls are the hot path: no directory churn for them
            make_private_dirs(work_dir)

        async def report_progress(percent: int) -> None:
            running.progress = max(0, min(99, int(percent)))

        ctx = StepContext(task_id=task.id, work_dir=work_dir, report_progress=report_progress)
        running.saved_progress = task.progress
        box: list[Outcome] = []
        try:
            with running.scope:
                try:
                    box.append(await self.steps.run(claim, ctx, running))
                except ClaimLost:
                    running.lease_lost = True
                    log_.info("the task changed under the step (lease lost or client's change)")
        finally:
            if task.step in self.steps_with_files:
                shutil.rmtree(work_dir, ignore_errors=True)
        # Empty box: stopped by shutdown, by the client, or by a lost lease. A full one is committed even
        # when the lease looked lost: the commit is fenced anyway, and if it loses, an upstream job the
        # step made is still saved while the token is ours (see _commit).
        return box[0] if box else None

    async def _heartbeats(self) -> None:
        """Extend the leases of the steps that have been running for a while, all in one statement,
        and save their progress (which only ever goes up). Learns of a lost lease or a client's cancel."""
        interval = min(self.settings.lease_seconds / 3, 1.0)
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            # A step that has run half an interval gets beaten; quick ones (polls) never need it.
            due = [r for r in self._running.values() if now - r.lease_ok_at >= interval / 2]
            if not due:
                continue
            beats = [(r.claim, r.progress if (r.progress or 0) > r.saved_progress else None) for r in due]
            try:
                # Shielded: a database call cut off mid-way (the worker stopping) costs its connection.
                with anyio.CancelScope(shield=True):
                    checks = await self.deps.store.heartbeat_many(beats, lease_ms=self.lease_ms)
            except Exception:
                log.warning("heartbeat failed; retrying", worker=self.id, exc_info=True)
                for running in due:  # give up only the steps whose lease would really have run out
                    if now - running.lease_ok_at >= self.settings.lease_seconds - interval:
                        log.error(
                            "heartbeats failed for a whole lease; giving the step up",
                            task_id=running.claim.task.id,
                        )
                        self._lose_lease(running)
                continue
            for running, (_, progress) in zip(due, beats, strict=True):
                check = checks.get(running.claim.task.id)
                if check is None:
                    self._lose_lease(running)
                    continue
                running.lease_ok_at = now
                if progress is not None:
                    running.saved_progress = progress
                if check.stopped_by_client and not running.stopped_by_client:
                    running.stopped_by_client = True
                    if not running.protected:
                        running.scope.cancel()

    @staticmethod
    def _lose_lease(running: _Running) -> None:
        running.lease_lost = True
        if not running.protected:  # a paid submit in flight is let finish: see _commit
            running.scope.cancel()

    async def _remove_unclaimed_files(self, task_id: str) -> None:
        try:
            await remove_unclaimed_files(self.deps.store, self.deps.blobs, task_id)
        except Exception:  # the sweep of deleted tasks (worker.service) finds them later
            log.warning("removing the files of an ended task failed", task_id=task_id, exc_info=True)

    async def sweep_scratch(self) -> None:
        """Remove the scratch directories of claims that are over (a killed process's, mostly)."""
        running = [r.claim for r in self._running.values()]
        try:
            removed = await sweep_scratch(self.scratch_root, self.deps.store, running=running)
        except Exception:  # the database went away for a moment: the next sweep will do it
            log.warning("scratch sweep failed", worker=self.id, exc_info=True)
            return
        if removed:
            log.info("removed scratch directories of claims that are over", count=removed)

    async def _commit(
        self, running: _Running, outcome: Outcome, log_: structlog.typing.FilteringBoundLogger
    ) -> bool:
        """Record the step's outcome; False when it lost to a change of the task (it is dropped)."""
        now = self.deps.clock.now_ms()
        next_step = outcome.next_step
        ended = outcome.status is not None and outcome.status.is_terminal
        if ended and next_step is Step.DONE:
            next_step = step_after_cancel(running.claim.task)  # its webhook, if it has one, goes out next
        changes = dict(outcome.changes)
        if running.progress is not None and running.progress > running.claim.task.progress:
            changes.setdefault("progress", running.progress)
        if outcome.is_routine_repoll:
            # The hot path (thousands of jobs in flight): one statement, no event, nothing read back.
            delay_ms = round(outcome.delay_seconds * 1000)
            if await self.deps.store.repoll_later(running.claim, delay_ms=delay_ms, changes=changes):
                return True
            log_.info("the task changed before the poll's commit; its outcome is dropped")
            await self.deps.store.release(running.claim)
            self.wake()
            return False
        task = await self.deps.store.finish_step(
            running.claim,
            now=now,
            next_step=next_step,
            delay_ms=round(outcome.delay_seconds * 1000),
            status=outcome.status,
            changes=changes,
            event_kind="step" if outcome.record_event else None,
            message=outcome.message,
        )
        if task is None:
            upstream_id = outcome.changes.get("upstream_id")
            if upstream_id:  # an accepted job must never be forgotten, whatever happened meanwhile
                await self.deps.store.save_upstream_job(
                    running.claim,
                    now=now,
                    upstream_id=upstream_id,
                    memo=outcome.changes.get("upstream_state") or {},
                )
            log_.info("the task changed before the step's commit; its outcome is dropped")
            await self.deps.store.release(running.claim)
            self.wake()
            return False
        if outcome.status is not None and outcome.status is not running.claim.task.status:
            log_.info("task status", status=task.status.value, error=task.error.code if task.error else None)
            if task.status.is_terminal:
                metrics.count_task_ended(task.status.value)
        if outcome.delay_seconds == 0 and task.step is not Step.DONE:
            self.wake()  # the next step is due now: no reason to wait for the next tick
        return True


def _step_label(running: _Running, deps: StepDeps) -> str:
    """One running step for a stop message, "render of task 01K… on animate" (a built-in engine's submit
    is its render)."""
    task = running.claim.task
    channel = deps.catalog.by_name(task.channel) if task.channel else None
    builtin = channel is not None and channel.traits.builtin_engine
    step = "render" if builtin and task.step is Step.SUBMIT else task.step.value
    return f"{step} of task {task.id}" + (f" on {task.channel}" if task.channel else "")


async def _wait_any(*events: anyio.Event) -> None:
    """Return once any of `events` is set."""
    async with anyio.create_task_group() as tg:

        async def waiter(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(waiter, event)
