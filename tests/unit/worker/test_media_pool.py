"""The media pool: a result's probe and previews run in other processes, and a lost one is replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from vidgate.media.previews import previews_from_mp4
from vidgate.media.probe import NotAVideo, probe_mp4
from vidgate.providers.base import ProviderError
from vidgate.testing.clips import make_clip
from vidgate.worker.media_pool import NICENESS, MediaPool, _pool, processes_for, usable_cores

pytestmark = pytest.mark.anyio


def pid_of(_: Path) -> int:
    return os.getpid()


def die(_: Path) -> None:
    os._exit(3)  # as the OOM killer would end it: no exception, no clean-up


async def test_probe_and_previews_run_in_another_process_with_the_same_answers(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=36, seconds=2)
    pool = MediaPool(1)
    assert await pool._run(pid_of, clip) != os.getpid()
    inspected = await pool.inspect(clip)
    assert inspected.info == probe_mp4(clip)
    assert (inspected.thumbnail, inspected.spritesheet) == previews_from_mp4(clip)


async def test_a_file_that_is_no_video_is_refused_by_the_pool_as_by_the_probe(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"<html>an error page, not a video</html>")
    with pytest.raises(NotAVideo):
        await MediaPool(1).inspect(junk)


def niceness(_: Path) -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


async def test_media_work_runs_at_a_lower_priority_than_the_worker(tmp_path: Path) -> None:
    assert await MediaPool(1)._run(niceness, tmp_path) == min(19, niceness(tmp_path) + NICENESS)


async def test_no_processes_means_threads_of_this_one(tmp_path: Path) -> None:
    assert await MediaPool(0)._run(pid_of, tmp_path) == os.getpid()


async def test_a_pool_whose_process_died_is_replaced_for_the_next_call(tmp_path: Path) -> None:
    pool = MediaPool(2)
    with pytest.raises(ProviderError) as lost:
        await pool._run(die, tmp_path)
    assert lost.value.code == "media_worker_lost" and lost.value.retryable
    assert await pool._run(pid_of, tmp_path) != os.getpid()


async def test_warming_a_pool_whose_process_died_starts_a_new_one_next_time(tmp_path: Path) -> None:
    """A pool breaks when one of its processes dies, and is replaced at its next call: a warm-up must
    not take that call's place and fail the step that made it (seen as every task of a test failing)."""
    broken = _pool(3)
    with pytest.raises(BrokenProcessPool):
        broken.submit(die, tmp_path).result(timeout=60)
    pool = MediaPool(3)
    pool.warm()  # no error: the broken pool is let go
    assert pool.warming == []
    pool.warm()
    assert [call.result(timeout=60) != os.getpid() for call in pool.warming] == [True] * 3


def test_unset_means_one_process_per_usable_core_and_no_more_than_the_media_steps_at_once() -> None:
    cores = len(os.sched_getaffinity(0))
    assert processes_for(None, media_concurrency=64) == usable_cores() <= cores
    assert processes_for(None, media_concurrency=1) == 1
    assert processes_for(0, media_concurrency=4) == 0 and processes_for(3, media_concurrency=4) == 3


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [("max 100000", None), ("100000 100000", 1), ("150000 100000", 2), ("50000 100000", 1)],
)
def test_a_container_cpu_limit_bounds_the_cores(tmp_path: Path, cpu_max: str, limit: int | None) -> None:
    cores = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert usable_cores(tmp_path / "cpu.max") == (cores if limit is None else min(cores, limit))
    assert usable_cores(tmp_path / "absent") == cores


# A worker with a pool: it probes a clip (which starts the pool's processes), prints their pids, and waits
# to be killed.
WORKER_WITH_A_POOL = """
import asyncio, sys
from pathlib import Path
from vidgate.worker import media_pool

async def main():
    await media_pool.MediaPool(2).inspect(Path(sys.argv[1]))
    print(*media_pool._pools[2]._processes, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


def test_the_pool_processes_end_with_a_killed_worker(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=36, seconds=1)
    with subprocess.Popen(
        [sys.executable, "-c", WORKER_WITH_A_POOL, str(clip)], stdout=subprocess.PIPE
    ) as worker:
        try:
            assert worker.stdout is not None
            pids = [int(pid) for pid in worker.stdout.readline().split()]
            assert pids and all(_running(pid) for pid in pids)
        finally:
            worker.kill()  # SIGKILL: no clean-up runs in the worker
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _running(pid)], "pool processes outlived their killed worker"
