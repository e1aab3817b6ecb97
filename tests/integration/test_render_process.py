"""The render process leaves its lifetime to its parent: a Ctrl-C that reaches it (the terminal sends it
to the whole process group) neither kills nor fails the render, and it exits as soon as its parent's
end of the watch pipe closes, whatever became of the parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import pytest

from vidgate.engines.animate import AnimateJob
from vidgate.providers.base import StepContext
from vidgate.providers.render_process import EXIT_PARENT_GONE, _die_with_parent, render_in_subprocess

pytestmark = pytest.mark.anyio


async def test_a_sigint_reaching_the_render_neither_kills_nor_fails_it(tmp_path: Path) -> None:
    async def ignore(percent: int) -> None:
        return None

    ctx = StepContext(task_id="t", work_dir=tmp_path, report_progress=ignore)
    job = AnimateJob((), "ctrl-c", 640, 360, 4, 24)
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            results = []

            async def render() -> None:
                results.append(await render_in_subprocess(job, ctx))

            tg.start_soon(render)
            # This render's process, not another child of this test process (a media pool's, whose
            # SIGINT would break that pool for the tests after this one).
            while not (children := [c for c in multiprocessing.active_children() if c.name == "render-t"]):
                await anyio.sleep(0.01)
            # As soon as it exists: while its interpreter starts (the signal is held back until it
            # ignores it) or while it renders (ignored).
            os.kill(children[0].pid, signal.SIGINT)  # type: ignore[arg-type]
    [result] = results
    assert Path(result.video).stat().st_size > 0


def _guarded_sleep(parent_alive: Connection, parent_pid: int) -> None:
    _die_with_parent(parent_alive, parent_pid)
    time.sleep(120)


def test_the_render_process_exits_when_its_parents_end_of_the_watch_pipe_closes() -> None:
    spawn = multiprocessing.get_context("spawn")
    child_end, parent_end = spawn.Pipe(duplex=False)
    process = spawn.Process(target=_guarded_sleep, args=(child_end, os.getpid()))
    process.start()
    child_end.close()
    parent_end.close()  # as a dead parent's would be: the parent itself lives on, so no PDEATHSIG
    process.join(timeout=30)
    assert process.exitcode == EXIT_PARENT_GONE
