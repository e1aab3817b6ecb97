"""Does a burst of tasks on the built-in engine finish one by one, or all at the end?

N tasks, each with one input image (so each has an ingest, a render and a finish step), are created at
once on one worker (the built-in `animate` engine, R render processes, SQLite).
With the queue taken oldest task first, the k-th task should complete after about ceil(k / R) render
times; with the queue taken by due time (what vidgate did before), every task's step N ran before any
task's step N+1, so the first completion waited for most of the burst to render.

The run measures, side by side:
- one render alone (the unit: a clip's whole life with nothing else queued);
- the burst with the queue in FIFO order (today's `claim_due`);
- the same burst with the queue in due-time order (the old query, patched in for comparison).

For each it prints the completion time of the 1st, middle and last task, as seconds and as a ratio to
ceil(k / R) single-task times (1.0 is ideal; the old order's first task is the one that was late).

    .venv/bin/python bench/fifo_scheduling.py [--tasks 24] [--render-processes 1] [--seconds 4]

24 tasks is more than a worker runs at once (16 steps), the case where the old order starved.
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from PIL import Image

from vidgate.config import Settings, WorkerSettings
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import TERMINAL_STATUSES, WatermarkMode
from vidgate.logs import configure_logging
from vidgate.runtime import open_runtime
from vidgate.store.keys import KeyStore
from vidgate.store.tables import tasks as tasks_table
from vidgate.store.tasks import queue as task_queue
from vidgate.worker.service import run_worker_services


@contextmanager
def due_time_order() -> Iterator[None]:
    """The claim order before FIFO: by `next_run_at` only (for the side-by-side comparison)."""
    saved = task_queue._FIFO_ORDER, task_queue._fifo_key
    task_queue._FIFO_ORDER = (tasks_table.c.next_run_at,)
    task_queue._fifo_key = lambda task: (task.next_run_at, 0, "")
    try:
        yield
    finally:
        task_queue._FIFO_ORDER, task_queue._fifo_key = saved


def image_data_uri() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (640, 360), (40, 120, 200)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def completion_times(n: int, render_processes: int, seconds: int) -> list[float]:
    """Create `n` tasks at once on a fresh data dir; return each one's completion time (s), in
    creation order."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            worker=WorkerSettings(render_processes=render_processes, idle_poll_seconds=0.2),
        )
        async with open_runtime(settings) as runtime:
            owner = (await KeyStore(runtime.engine).create(name="bench", is_admin=False, now=0))[0].id
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                worker = await tg.start(run_worker_services, runtime, stop)
                started = time.monotonic()
                created = []
                image = image_data_uri()
                for i in range(n):
                    spec = VideoSpec(
                        "sora-2", f"task {i}", (image,), 720, 1280, seconds, WatermarkMode.PREFER_CLEAN
                    )
                    now = runtime.clock.now_ms()
                    created.append(
                        await runtime.tasks.create(
                            spec, owner=owner, dialect="unified", now=now, deadline_ms=3_600_000
                        )
                    )
                worker.wake()
                done: dict[str, float] = {}
                while len(done) < n:
                    for task in created:
                        if task.id not in done:
                            current = await runtime.tasks.get(task.id)
                            if current is not None and current.status in TERMINAL_STATUSES:
                                assert current.status.value == "completed", current.error
                                done[task.id] = time.monotonic() - started
                    await anyio.sleep(0.05)  # a sampling interval for the measurement, not a race fix
                stop.set()
            return [done[t.id] for t in created]


def report(label: str, times: list[float], unit: float, render_processes: int) -> None:
    ordered = sorted(times)
    picks = sorted({0, len(ordered) // 2, len(ordered) - 1})
    cells = []
    for k in picks:
        ideal = math.ceil((k + 1) / render_processes) * unit
        cells.append(f"#{k + 1} {ordered[k]:6.1f} s ({ordered[k] / ideal:4.2f})")
    print(f"{label:<28} " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--render-processes", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=4, help="clip length")
    args = parser.parse_args()
    r = args.render_processes
    configure_logging(Settings(log_level="warning"))
    [unit] = anyio.run(completion_times, 1, r, args.seconds)
    fifo = anyio.run(completion_times, args.tasks, r, args.seconds)
    with due_time_order():
        old = anyio.run(completion_times, args.tasks, r, args.seconds)
    print(f"{args.tasks} tasks, {r} render process(es), {args.seconds} s clips; one task alone: {unit:.1f} s")
    print("k-th completion, seconds (ratio to ceil(k/R) x one task alone; 1.0 is ideal):")
    report("FIFO (today)", fifo, unit, r)
    report("due-time order (before)", old, unit, r)
    print(f"first completion, due-time / FIFO: {min(old) / min(fifo):.2f}x")


if __name__ == "__main__":
    main()
