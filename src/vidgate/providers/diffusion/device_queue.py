"""One GPU job at a time per device, on a thread that keeps the loaded pipelines warm.

Why a thread in the worker process and not a child process like `animate`'s renders: the model takes
tens of seconds and ~20 GB to load, so it must stay loaded between tasks, and a child per render would
load it every time. A long-lived child would keep it warm too, but cancel does not need a kill here:
diffusers calls back after every denoising step, and raising from that callback stops the job within
one step (the VAE decode is skipped). torch releases the GIL in its kernels, so the event loop stays
responsive. A CUDA out-of-memory error is caught on the thread and the cache emptied, so the worker
stays healthy.

Why a queue and not a lock: jobs are handed to a single-thread executor per device, so the order is
FIFO, nothing is held across the worker's steps or awaits, and a job cancelled while still queued
is simply dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DeviceQueue:
    """A single worker thread for one device, and the models it has loaded (loaded once, kept warm)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"diffusion-{device}")
        self._models: dict[tuple[str, ...], Any] = {}

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        return self._executor.submit(fn)

    def model(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        """The loaded model for `key`; call only from this queue's thread (jobs do)."""
        model = self._models.get(key)
        if model is None:
            self._models[key] = model = load()
        return model

    def loaded(self, key: tuple[str, ...]) -> bool:
        return key in self._models


_queues: dict[str, DeviceQueue] = {}
_queues_lock = threading.Lock()


def queue_for(device: str) -> DeviceQueue:
    """The process's queue for `device` (shared by every channel that uses it)."""
    with _queues_lock:
        queue = _queues.get(device)
        if queue is None:
            _queues[device] = queue = DeviceQueue(device)
        return queue
