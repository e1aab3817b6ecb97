"""Work that arrives while a batch is running goes in the next batch (grouped creates, coalesced reads).

`Batcher.submit(item)` queues the item; if no batch is running, the caller runs one with everything
queued so far, and returns once that batch has answered. Items that arrive meanwhile wait; when the
batch ends, one of their callers runs the next batch. Nothing waits for a batch to fill, so a lone
item goes at once, and under load batches grow by themselves. No caller ever runs more than the
batch it is in: a caller that ran one batch is not kept busy with the ones after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`run(items)` answers each item, in order, with its result or the exception it alone failed
    with; if `run` raises, every item of the batch fails with that."""

    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], *, max_size: int
    ) -> None:
        self._run = run
        self._max = max_size
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Future[None] | None = None  # done when the running batch ends

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        while not future.done():
            if self._running is None:
                self._running = asyncio.get_running_loop().create_future()
                try:
                    # Shielded: this batch is also other callers'; this caller's cancellation (its
                    # client gone) must not leave their items half done.
                    with anyio.CancelScope(shield=True):
                        await self._run_one_batch()
                finally:
                    ended, self._running = self._running, None
                    ended.set_result(None)
            else:
                waits: list[asyncio.Future[object]] = [future, self._running]  # type: ignore[list-item]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return future.result()

    async def _run_one_batch(self) -> None:
        batch, self._queue = self._queue[: self._max], self._queue[self._max :]
        try:
            outcomes = await self._run([item for item, _ in batch])
        except Exception as exc:  # the whole batch failed: every item in it did
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
