"""The media pool: a result's probe and previews run in other processes, and a lost one is replaced."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from vidgate.media.previews import previews_from_mp4
from vidgate.media.probe import probe_mp4
from vidgate.testing.clips import make_clip
from vidgate.worker.media_pool import MediaPool, processes_for

pytestmark = pytest.mark.anyio


def pid_of(_: Path) -> int:
    return os.getpid()


def die(_: Path) -> None:
    os._exit(3)  # as the OOM killer would end it: no exception, no clean-up


async def test_probe_and_previews_run_in_another_process_with_the_same_answers(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=36, seconds=2)
    pool = MediaPool(1)
    assert await pool._run(pid_of, clip) != os.getpid()
    assert await pool.probe(clip) == probe_mp4(clip)
    assert await pool.previews(clip) == previews_from_mp4(clip)


async def test_no_processes_means_threads_of_this_one(tmp_path: Path) -> None:
    assert await MediaPool(0)._run(pid_of, tmp_path) == os.getpid()


async def test_a_pool_whose_process_died_is_replaced_for_the_next_call(tmp_path: Path) -> None:
    pool = MediaPool(2)
    with pytest.raises(BrokenProcessPool):
        await pool._run(die, tmp_path)
    assert await pool._run(pid_of, tmp_path) != os.getpid()


def test_unset_means_one_process_per_core() -> None:
    assert processes_for(None) == (os.cpu_count() or 1)
    assert processes_for(0) == 0 and processes_for(3) == 3
