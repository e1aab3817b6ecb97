"""Claims and leases under the races that once made a step run twice or stall: a heartbeat against
the step's own writes, a heartbeat the database drops, a heartbeat so late that the worker claims the
task again, a wake-up that arrives during a claim, and a worker whose clock runs fast.

Each of these failed on the code before its fix (checked against commit b76932a, with the store calls
adapted to its signatures; the late heartbeat's against 5e67db6).
"""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy.exc import OperationalError

from tests.helpers import new_task, scripted_channel
from tests.integration.worker_support import QUICK, ops, run_to_rest
from vidgate.clock import ManualClock, SystemClock
from vidgate.domain.tasks import Step, TaskStatus
from vidgate.store.tasks import TaskStore
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio


# heartbeats ------------------------------------------------------------------------------------


async def test_a_heartbeat_does_not_lose_to_the_steps_own_writes(start_gateway, tmp_path) -> None:
    clock = ManualClock()
    async with start_gateway(
        run_worker=False, clock=clock, channels=[scripted_channel(tmp_path / "up")]
    ) as gw:
        await new_task(gw)
        store = gw.runtime.tasks
        [claim] = await store.claim_due(worker="w", limit=1, lease_ms=10_000)
        advanced = await store.advance(claim, now=clock.now_ms(), changes={"progress": 5})
        assert advanced is not None
        # The heartbeat still holds the claim it started with (older version): the lease must hold.
        assert claim.task.id in await store.heartbeat_many([(claim, None)], lease_ms=10_000)
        assert await store.finish_step(advanced, now=clock.now_ms(), next_step=Step.SUBMIT) is not None


class FlakyHeartbeats(TaskStore):
    """The database hiccups on the first heartbeat only."""

    failed = 0

    async def heartbeat_many(self, *args, **kwargs):
        if not self.failed:
            self.failed += 1
            raise OperationalError("UPDATE tasks", {}, Exception("connection reset"))
        return await super().heartbeat_many(*args, **kwargs)


async def test_one_failed_heartbeat_does_not_cancel_the_running_step(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=2.5)
    settings = QUICK.model_copy(update={"lease_seconds": 6})  # heartbeats every 1 s (the lease is 6 s)
    async with start_gateway(run_worker=False, channels=[channel], worker=settings) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        flaky = FlakyHeartbeats(gw.runtime.engine)
        worker.deps.store = flaky
        worker.steps.deps.store = flaky
        final = await run_to_rest(gw, task.id, worker)
    assert flaky.failed == 1
    assert final.status is TaskStatus.COMPLETED
    seen = ops(tmp_path / "up", task.id)
    assert seen.count("submit") == 1 and "duplicate_submit" not in seen  # the submit was never cut short


class StalledUntilClaimedAgain(TaskStore):
    """The first heartbeat hangs (a starved event loop, a slow database) until the lease it should have
    extended has run out and the worker has claimed the task again at the same step."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.claimed: set[tuple[str, Step]] = set()
        self.claimed_again = anyio.Event()
        self.stalled = False

    async def claim_due(self, **kwargs):
        claims = await super().claim_due(**kwargs)
        for claim in claims:
            if (claim.task.id, claim.task.step) in self.claimed:
                self.claimed_again.set()
            self.claimed.add((claim.task.id, claim.task.step))
        return claims

    async def heartbeat_many(self, *args, **kwargs):
        if not self.stalled:
            self.stalled = True
            await self.claimed_again.wait()
        return await super().heartbeat_many(*args, **kwargs)


async def test_a_task_claimed_again_after_its_lease_ran_out_runs_once_more_and_no_more(
    start_gateway, tmp_path
) -> None:
    """Seen in a full test run as a render redone every few seconds for minutes: the run whose lease had
    run out ended, took the new run's place out of the worker's table as it left, and the new run, no
    longer heartbeaten, lost its lease in turn, and so on. Now the void run is stopped when the task is
    claimed again, and a run only ever removes itself."""
    lease = 1.5
    settings = QUICK.model_copy(update={"lease_seconds": lease})  # heartbeats every 0.5 s
    async with start_gateway(
        run_worker=False, channels=[scripted_channel(tmp_path / "up")], worker=settings
    ) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        store = StalledUntilClaimedAgain(gw.runtime.engine)
        worker.deps.store = store
        worker.steps.deps.store = store
        first_steps: list[str] = []  # the token of each claim that ran the task's first step
        first_run_stopped = anyio.Event()
        real_run = worker.steps.run

        async def run(claim, ctx, running):
            if claim.task.step is task.step:
                first_steps.append(claim.token)
                if len(first_steps) == 1:
                    try:
                        await anyio.sleep(60)  # outlives its lease: only being stopped ends it
                    finally:
                        first_run_stopped.set()
                await anyio.sleep(3 * lease)  # longer than a lease: only heartbeats keep it
            return await real_run(claim, ctx, running)

        worker.steps.run = run
        final = await run_to_rest(gw, task.id, worker, timeout=20)
    assert first_run_stopped.is_set()
    assert len(first_steps) == 2, first_steps  # the stalled claim's run and one more, never a third
    assert final.status is TaskStatus.COMPLETED
    assert ops(tmp_path / "up", task.id).count("submit") == 1


# wake-ups --------------------------------------------------------------------------------------


class WakeDuringClaim(TaskStore):
    """Plays an API request that creates a task and wakes the worker while the worker is claiming."""

    def __init__(self, engine, on_first_claim) -> None:
        super().__init__(engine)
        self.on_first_claim = on_first_claim

    async def claim_due(self, **kwargs):
        claims = await super().claim_due(**kwargs)
        if self.on_first_claim is not None:
            hook, self.on_first_claim = self.on_first_claim, None
            await hook()
        return claims


async def test_a_wake_up_during_a_claim_is_not_lost(start_gateway, tmp_path) -> None:
    settings = QUICK.model_copy(update={"idle_poll_seconds": 60})  # only a wake-up can make it look again
    async with start_gateway(
        run_worker=False, channels=[scripted_channel(tmp_path / "up")], worker=settings
    ) as gw:
        worker = build_worker(gw.runtime)
        created = []

        async def create_and_wake() -> None:
            created.append(await new_task(gw))
            worker.wake()

        store = WakeDuringClaim(gw.runtime.engine, create_and_wake)
        worker.deps.store = store
        worker.steps.deps.store = store
        stop = anyio.Event()
        with anyio.fail_after(10):  # far less than the 60 s idle tick
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run, stop)
                while not created or (await gw.runtime.tasks.get(created[0].id)).upstream_id is None:
                    await anyio.sleep(0.02)
                stop.set()


# clocks ----------------------------------------------------------------------------------------


async def test_a_worker_whose_clock_runs_fast_does_not_steal_a_live_lease(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=3)
    settings = QUICK.model_copy(update={"lease_seconds": 30})
    async with start_gateway(run_worker=False, channels=[channel], worker=settings) as gw:
        task = await new_task(gw)
        holder = build_worker(gw.runtime)
        fast = build_worker(gw.runtime)
        fast.deps.clock = ManualClock(SystemClock().now_ms() + 120_000)  # two minutes ahead of everyone
        fast.steps.deps.clock = fast.deps.clock
        stop = anyio.Event()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(holder.run, stop)
                while "accepted" not in ops(tmp_path / "up", task.id):
                    await anyio.sleep(0.01)
                stolen = await fast.tick()
                stop.set()
    assert stolen == 0
    assert ops(tmp_path / "up", task.id).count("submit") == 1
