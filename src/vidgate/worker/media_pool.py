"""Where a worker does the CPU-heavy part of a result copy: probing the video and making its previews
(`inspect_video`, one call for both).

In worker processes of their own (`worker.media_processes`; unset, the default: one per usable core, at
most `media_concurrency`; 0 runs the same functions on threads of this process), so that a burst of
results never holds the GIL the event loop needs for polls and submits: the loop only waits on a future.
The bound on queued media work is the worker's `media_concurrency` (the runner claims no more media
steps than that), so the pool's queue never grows past it.

The pool is made on first use, once per process, and shared by every event loop in it (one per test, one
for a `vidgate worker`). The worker warms it (`MediaPool.warm`) when it first polls an upstream job, so
that its first result copy does not wait for the processes to start (about 1.5 s of CPU each: a fresh
Python and the media libraries), which on a loaded machine, right after a deploy or a restart, can take
longer than the copy itself. Its processes are started with `spawn` (a fork of a process that runs
threads and an event loop could inherit a held lock). Each watches its parent and ends within
`PARENT_CHECK_SECONDS` of its death: a killed worker (SIGKILL, the OOM killer) runs no clean-up, and its
pool processes would otherwise wait on the work queue forever (each holds the queue's pipe open for its
siblings, so none of them sees it close). They run niced (`NICENESS`): when the cores are short, polls
and submits come first.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio

from vidgate.media.previews import previews_from_mp4
from vidgate.media.probe import VideoInfo, probe_mp4
from vidgate.providers.base import ProviderError

T = TypeVar("T")

PARENT_CHECK_SECONDS = 0.5
# Pool processes run at a lower scheduling priority than the worker, so that on a busy machine the
# cores go to the event loop that polls and submits first, and media work takes what is left.
NICENESS = 10

_lock = threading.Lock()
_pools: dict[int, ProcessPoolExecutor] = {}


def processes_for(setting: int | None, media_concurrency: int) -> int:
    """The pool size a `worker.media_processes` setting means: 0, no pool; unset, one per core this
    process may use, and no more than the media steps that run at once (`media_concurrency`): a process
    more would never get work."""
    return min(usable_cores(), media_concurrency) if setting is None else setting


def usable_cores(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on: its CPU affinity, and in a container with a CPU limit (a
    cgroup v2 quota, as Kubernetes sets it) that limit rounded up. `os.cpu_count()` counts the host's
    cores, which would start a process per host core in a pod limited to one."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup_cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity is the bound
    return max(1, cores)


@dataclass(frozen=True)
class Inspected:
    """What a result copy learns from the video: its facts, and its previews."""

    info: VideoInfo
    thumbnail: bytes  # WebP
    spritesheet: bytes  # JPEG


def inspect_video(video: Path) -> Inspected:
    """Probe an MP4, then make its previews: one call into the pool for both (a call costs a round trip
    to another process, and the file is read once into the page cache for the two). `NotAVideo` when
    either finds no playable video."""
    info = probe_mp4(video)
    thumbnail, spritesheet = previews_from_mp4(video)
    return Inspected(info, thumbnail, spritesheet)


def process_id() -> int:
    """The pool process's id. A call of it is the warm-up: to find this function a fresh pool process
    imports this module, and with it the media libraries."""
    return os.getpid()


def _start_pool_process(parent: int) -> None:
    """A pool process's initializer: lower its priority (`NICENESS`), and start a daemon thread that ends
    the process once `parent` is gone (its parent is then some other process: init, or a subreaper)."""
    os.nice(NICENESS)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="vidgate-parent-watch", daemon=True).start()


def _pool(size: int) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ProcessPoolExecutor(
                size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_pool_process,
                initargs=(os.getpid(),),
            )
        return pool


def _forget(size: int, pool: ProcessPoolExecutor) -> None:
    with _lock:
        if _pools.get(size) is pool:
            del _pools[size]
    pool.shutdown(wait=False, cancel_futures=True)


class MediaPool:
    """Runs media functions in the shared process pool of `processes` processes (0: on threads)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        # The calls that started the processes (`warm`), each answering with its process's id.
        self.warming: list[Future[int]] = []

    def warm(self) -> None:
        """Start the pool's processes in the background, once (with threads there is nothing to start).
        Nobody waits for them: a pool that breaks meanwhile is replaced by the next `inspect`, as
        always."""
        if self.processes and not self.warming:
            pool = _pool(self.processes)
            try:
                # Each call finds no idle process and so starts one (a pool started with `spawn` grows
                # on demand), until there are `processes` of them.
                self.warming = [pool.submit(process_id) for _ in range(self.processes)]
            except BrokenProcessPool:
                _forget(self.processes, pool)  # a process of it died: the next call starts a new one

    async def inspect(self, video: Path) -> Inspected:
        return await self._run(inspect_video, video)

    async def _run(self, function: Callable[[Path], T], video: Path) -> T:
        if self.processes == 0:
            return await anyio.to_thread.run_sync(function, video)
        pool = _pool(self.processes)
        try:
            return await asyncio.wrap_future(pool.submit(function, video))
        except BrokenProcessPool as exc:
            # A pool process died (the OOM killer, say): the next call gets a new pool, and this step is
            # tried again by the caller's retry rules like any other transient failure.
            _forget(self.processes, pool)
            raise ProviderError(
                "media_worker_lost",
                "A media process ended while it read the result; trying again.",
                retryable=True,
            ) from exc
