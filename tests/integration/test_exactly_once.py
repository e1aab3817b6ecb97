"""Upstream side effects happen exactly once: the defects of issue 7 (a-f), one test each.

Each of these failed on the code before the fix (checked against commit b76932a, with the scripted
channel's test options ported where a test needs them, and the store calls adapted to its signatures).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from tests.helpers import new_task, scripted_channel, until, worker_running
from vidgate.api.actions import cancel_task
from vidgate.clock import ManualClock, SystemClock
from vidgate.config import WorkerSettings
from vidgate.domain.tasks import Step, TaskStatus
from vidgate.store.tables import tasks
from vidgate.store.tasks import TaskStore
from vidgate.worker.runner import Worker
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio
QUICK = WorkerSettings(
    lease_seconds=5, idle_poll_seconds=0.05, retry_base_seconds=0.01, retry_max_seconds=0.05
)


def journal(state_dir: Path, task_id: str) -> list[dict]:
    path = state_dir / "journal.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for line in lines if (e := json.loads(line))["task"] == task_id]


def ops(state_dir: Path, task_id: str) -> list[str]:
    return [e["op"] for e in journal(state_dir, task_id)]


def accepted_upstream(state_dir: Path, task_id: str) -> Callable[[], Awaitable[bool]]:
    """A check for `until`: the scripted upstream has made the task's job."""

    async def check() -> bool:
        return "accepted" in ops(state_dir, task_id)

    return check


async def done(gw: Any, task_id: str) -> Any:
    """The task, once the worker has nothing left to do for it; else None."""
    task = await gw.runtime.tasks.get(task_id)
    return task if task.step is Step.DONE else None


async def run_to_rest(gw, task_id: str, worker: Worker | None = None, timeout: float = 30) -> object:
    """Run a worker until the task has ended and nothing is left to do for it."""
    worker = worker or build_worker(gw.runtime)
    stop = anyio.Event()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, stop)
            while not ((t := await gw.runtime.tasks.get(task_id)).status.is_terminal and t.step is Step.DONE):
                await anyio.sleep(0.02)
            stop.set()
    return await gw.runtime.tasks.get(task_id)


# 7a --------------------------------------------------------------------------------------------


async def test_7a_a_retry_after_an_unknown_outcome_reuses_the_idempotency_key(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1).model_copy(
        update={"honours_idempotency_key": True}
    )
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.COMPLETED
    entries = journal(tmp_path / "up", task.id)
    assert [e["op"] for e in entries if "submit" in e["op"]] == ["submit", "duplicate_submit"]
    assert [e["op"] for e in entries].count("accepted") == 1  # one upstream job, not two
    assert entries[0]["key"] == f"{task.id}-0"


async def test_7a_an_upstream_ignoring_keys_is_asked_for_the_job_not_sent_it_again(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1, dedupe=False).model_copy(
        update={"request_timeout_seconds": 0.2}  # lookups start once a create's own timeout has passed
    )
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.COMPLETED
    seen = ops(tmp_path / "up", task.id)
    assert seen.count("submit") == 1 and seen.count("accepted") == 1 and "find" in seen


async def test_7a_when_it_can_neither_dedupe_nor_be_asked_the_task_fails_rather_than_pay_twice(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1, dedupe=False, findable=False)
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw, deadline_s=2)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.FAILED and final.error.code == "upstream_outcome_unknown"
    assert ops(tmp_path / "up", task.id).count("submit") == 1


async def test_7a_only_a_deliberate_resubmission_gets_a_new_key(start_gateway, tmp_path) -> None:
    """Transient refusals are retries of one submission (one key); a job that FAILED retryably is
    resubmitted on purpose (a new key, so a deduping upstream does make a new job)."""
    channel = scripted_channel(
        tmp_path / "up", transient_submit_failures=2, fail_code="server_error", fail_retryable=True
    )
    async with start_gateway(
        run_worker=False,
        channels=[channel],
        worker=QUICK.model_copy(update={"max_attempts": 4, "resubmit_failed_jobs": 3}),
    ) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.FAILED and final.error.code == "server_error"
    keys = [e["key"] for e in journal(tmp_path / "up", task.id) if e["op"] == "submit"]
    assert keys[:3] == [f"{task.id}-0"] * 3  # two 503s and the accepted submit: one submission
    assert keys[3:] == [f"{task.id}-{n}" for n in range(1, len(keys) - 2)]


# 7b --------------------------------------------------------------------------------------------


async def test_7b_a_cancel_during_the_submit_keeps_the_job_id_and_stops_the_job(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=1.0, polls=1000)
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        async with worker_running(gw):
            await until(accepted_upstream(tmp_path / "up", task.id))  # the upstream has the job...
            await cancel_task(gw.runtime, task.id, owner=task.owner)  # ...and its answer is on its way
            t = await until(lambda: done(gw, task.id))
    assert t.status is TaskStatus.CANCELLED and t.upstream_id is not None
    [cancelled] = [e for e in journal(tmp_path / "up", task.id) if e["op"] == "cancel"]
    assert cancelled["job"] == t.upstream_id


# 7c --------------------------------------------------------------------------------------------


async def test_7c_a_heartbeat_does_not_lose_to_the_steps_own_writes(start_gateway, tmp_path) -> None:
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
        assert await store.heartbeat(claim, lease_ms=10_000) is not None
        assert await store.finish_step(advanced, now=clock.now_ms(), next_step=Step.SUBMIT) is not None


class FlakyHeartbeats(TaskStore):
    """The database hiccups on the first heartbeat only."""

    failed = 0

    async def heartbeat_many(self, *args, **kwargs):
        if not self.failed:
            self.failed += 1
            raise OperationalError("UPDATE tasks", {}, Exception("connection reset"))
        return await super().heartbeat_many(*args, **kwargs)


async def test_7c_one_failed_heartbeat_does_not_cancel_the_running_step(start_gateway, tmp_path) -> None:
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


# 7d --------------------------------------------------------------------------------------------


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


async def test_7d_a_wake_up_during_a_claim_is_not_lost(start_gateway, tmp_path) -> None:
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


# 7e --------------------------------------------------------------------------------------------


async def test_7e_a_worker_whose_clock_runs_fast_does_not_steal_a_live_lease(start_gateway, tmp_path) -> None:
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


# 7f --------------------------------------------------------------------------------------------


def complete_right_after_the_first_read(monkeypatch, gw, ulid: str) -> None:
    """Play a worker that completes the task just after the code under test first reads it."""
    real_get = gw.runtime.tasks.get
    raced = []

    async def get_then_complete(*args, **kwargs):
        snapshot = await real_get(*args, **kwargs)
        if not raced:
            raced.append(True)
            async with gw.runtime.engine.begin() as conn:
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == ulid)
                    .values(status="completed", step="done", version=tasks.c.version + 1)
                )
        return snapshot

    monkeypatch.setattr(gw.runtime.tasks, "get", get_then_complete)


async def test_7f_delete_succeeds_when_the_task_completes_between_its_read_and_its_cancel(
    start_gateway, tmp_path, monkeypatch
) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key()) as client:
            created = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p"})
            task_id = created.json()["id"]
            complete_right_after_the_first_read(monkeypatch, gw, task_id.rsplit("_", 1)[-1])
            response = await client.delete(f"/v1/videos/{task_id}")
            monkeypatch.undo()
            assert response.status_code == 200, response.text
            assert (await client.get(f"/v1/videos/{task_id}")).status_code == 404


async def test_7f_a_delete_never_overwrites_a_change_it_did_not_see(
    start_gateway, tmp_path, monkeypatch
) -> None:
    """The soft delete used to write the status it computed from an earlier read, without compare-and-set
    or an event: a task that completed in between was flipped to `cancelled`."""
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        task = await new_task(gw)
        complete_right_after_the_first_read(monkeypatch, gw, task.id)
        await gw.runtime.tasks.soft_delete(task.id, owner=task.owner, now=gw.runtime.clock.now_ms())
        monkeypatch.undo()
        async with gw.runtime.engine.connect() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.id == task.id))).mappings().one()
        events = await gw.runtime.tasks.events(task.id)
    assert row["status"] == "completed" and row["deleted_at"] is not None
    assert not [e for e in events if e.to_status == "cancelled"]
