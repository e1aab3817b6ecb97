"""Worker behaviour, driven step by step with a manual clock: retries, deadlines, leases, shutdown, cancel."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.helpers import new_task, scripted_channel
from vidgate.api.actions import cancel_task
from vidgate.clock import ManualClock
from vidgate.config import WorkerSettings
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import Step, TaskStatus, WatermarkMode
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio


async def run_until_done(
    gw, worker, clock: ManualClock, task_id: str, *, step_s: float = 1.0, max_ticks: int = 200
):
    for _ in range(max_ticks):
        task = await gw.runtime.tasks.get(task_id)
        if task.status.is_terminal and task.step is Step.DONE:  # ended, with nothing left to do
            return task
        clock.advance(step_s)
        await worker.tick()
    raise AssertionError("task did not finish")


def journal_ops(state_dir, task_id: str) -> list[str]:
    path = state_dir / "journal.jsonl"
    return [e["op"] for line in path.read_text().splitlines() if (e := json.loads(line))["task"] == task_id]


async def test_transient_submit_failures_back_off_and_then_succeed(start_gateway, tmp_path) -> None:
    clock = ManualClock()
    channel = scripted_channel(tmp_path / "up", transient_submit_failures=2)
    async with start_gateway(run_worker=False, clock=clock, channels=[channel]) as gw:
        task = await new_task(gw)
        done = await run_until_done(gw, build_worker(gw.runtime), clock, task.id)
        assert done.status is TaskStatus.COMPLETED
        assert done.attempts == 2
        retries = [
            e.message
            for e in await gw.runtime.tasks.events(task.id)
            if e.message and e.message.startswith("retry")
        ]
        assert len(retries) == 2 and "upstream_unavailable" in retries[0]
    assert journal_ops(tmp_path / "up", task.id).count("submit") == 3


async def test_a_task_past_its_deadline_fails_with_timeout(start_gateway, tmp_path) -> None:
    clock = ManualClock()
    channel = scripted_channel(tmp_path / "up", polls=1000, poll_after=1)
    async with start_gateway(run_worker=False, clock=clock, channels=[channel]) as gw:
        task = await new_task(gw, deadline_s=30)
        done = await run_until_done(gw, build_worker(gw.runtime), clock, task.id, step_s=2)
        assert done.status is TaskStatus.FAILED
        assert done.error.code == "timeout"
        assert done.completed_at >= task.deadline_at
    assert "cancel" in journal_ops(tmp_path / "up", task.id)  # the upstream job is told to stop


async def test_a_crashed_workers_task_is_taken_over_after_its_lease_expires(start_gateway, tmp_path) -> None:
    clock = ManualClock()
    async with start_gateway(
        run_worker=False, clock=clock, channels=[scripted_channel(tmp_path / "up")]
    ) as gw:
        task = await new_task(gw)
        store = gw.runtime.tasks
        # Worker "dead" claims the task and never comes back.
        [claim] = await store.claim_due(worker="dead", limit=1, lease_ms=5000)
        survivor = build_worker(gw.runtime)
        clock.advance(4)
        assert await survivor.tick() == 0  # the lease still holds
        clock.advance(2)
        done = await run_until_done(gw, survivor, clock, task.id)
        assert done.status is TaskStatus.COMPLETED
        assert await store.finish_step(claim, now=clock.now_ms(), next_step=Step.SUBMIT) is None


async def test_require_clean_never_delivers_a_marked_video(start_gateway, tmp_path) -> None:
    clock = ManualClock()
    channel = scripted_channel(tmp_path / "up", watermarked=True)
    channel = channel.model_copy(update={"watermark_free": "optional"})
    async with start_gateway(run_worker=False, clock=clock, channels=[channel]) as gw:
        strict = await new_task(
            gw, VideoSpec("sora-2", "p", (), 720, 1280, 10, WatermarkMode.REQUIRE_CLEAN), deadline_s=120
        )
        lenient = await new_task(gw)
        worker = build_worker(gw.runtime)
        done_lenient = await run_until_done(gw, worker, clock, lenient.id)
        done_strict = await run_until_done(gw, worker, clock, strict.id, step_s=5)
    assert done_lenient.status is TaskStatus.COMPLETED and done_lenient.watermarked is True
    assert done_strict.status is TaskStatus.FAILED
    assert done_strict.error.code == "watermark_removal_failed"
    assert done_strict.video_key is None
    assert journal_ops(tmp_path / "up", strict.id).count("submit") > 1  # it kept asking for a clean one


async def test_graceful_stop_releases_a_running_step_for_another_worker(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=60)
    worker_settings = WorkerSettings(lease_seconds=30, idle_poll_seconds=0.02, shutdown_grace_seconds=0.2)
    async with start_gateway(run_worker=False, channels=[channel], worker=worker_settings) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        stop = anyio.Event()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run, stop)
                while not (tmp_path / "up" / "journal.jsonl").exists():  # the submit has begun
                    await anyio.sleep(0.02)
                stop.set()
        released = await gw.runtime.tasks.get(task.id)
        # The submit was cut short: its intent stays saved, so whoever takes the task over first finds
        # out whether the upstream made the job (it does not blindly submit again).
        assert released.lease_owner is None and released.submit_intent_at is not None
        assert released.next_run_at <= gw.runtime.clock.now_ms()  # due again at once


async def test_a_graceful_stop_says_what_it_waits_for_and_how_to_stop_at_once(
    start_gateway, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: a Ctrl-C during a render waited out the 30 s grace with no word of what it waited for."""
    from structlog.testing import capture_logs

    from vidgate.worker import runner

    monkeypatch.setattr(runner, "DRAIN_REMINDER_S", 0.3)  # (10 s in production)
    channel = scripted_channel(tmp_path / "up", submit_seconds=60)
    worker_settings = WorkerSettings(lease_seconds=30, idle_poll_seconds=0.02, shutdown_grace_seconds=1.0)
    async with start_gateway(run_worker=False, channels=[channel], worker=worker_settings) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        stop = anyio.Event()
        with anyio.fail_after(30), capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run, stop)
                while not (tmp_path / "up" / "journal.jsonl").exists():  # the submit has begun
                    await anyio.sleep(0.02)
                stop.set()
    events = [e["event"] for e in logs]
    [waiting] = [e for e in logs if e["event"].startswith("waiting for running steps")]
    assert waiting["log_level"] == "warning" and waiting["count"] == 1 and waiting["grace"] == 1.0
    assert waiting["event"] == (
        f"waiting for running steps to finish (up to 1 s): 1 task: the submit of task {task.id} on scripted; "
        "press Ctrl-C again (or send a second SIGTERM) to stop them at once"
    )
    assert waiting["steps"] == [f"submit of task {task.id} on scripted"]
    reminders = [e for e in events if e.startswith("still waiting for running steps (")]
    assert reminders and all(f"submit of task {task.id}" in e and "Ctrl-C again" in e for e in reminders)
    order = [events.index(e) for e in (waiting["event"], reminders[0], "stopping running steps")]
    assert order == sorted(order)


async def test_cancelling_a_task_stops_its_running_step_and_the_upstream_job(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", polls=1000, poll_after=0.01)
    worker_settings = WorkerSettings(lease_seconds=0.3, idle_poll_seconds=0.02)
    async with start_gateway(run_worker=False, channels=[channel], worker=worker_settings) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        stop = anyio.Event()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run, stop)
                while (t := await gw.runtime.tasks.get(task.id)).upstream_id is None:
                    await anyio.sleep(0.02)
                await cancel_task(gw.runtime, task.id, owner=t.owner)
                # The API only records the cancel; the worker's cancel step stops the upstream job.
                while (await gw.runtime.tasks.get(task.id)).step is not Step.DONE:
                    await anyio.sleep(0.02)
                stop.set()
        final = await gw.runtime.tasks.get(task.id)
        assert final.status is TaskStatus.CANCELLED and final.error.code == "cancelled"
    assert journal_ops(tmp_path / "up", task.id).count("cancel") == 1
