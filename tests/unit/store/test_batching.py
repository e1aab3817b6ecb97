"""store/batching.py: items that arrive while a batch runs go in the next one; each caller runs at most
its own batch; failures reach exactly the items they belong to."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from vidgate.store.batching import Batcher

pytestmark = pytest.mark.anyio


async def until(condition: object) -> None:
    with anyio.fail_after(5):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0)


async def test_a_caller_returns_after_its_own_batch_while_the_next_one_runs() -> None:
    gates: list[anyio.Event] = []
    batches: list[list[int]] = []

    async def run(items: list[int]) -> Sequence[int | Exception]:
        batches.append(items)
        gates.append(anyio.Event())
        await gates[-1].wait()
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_size=10)
    results: dict[int, int] = {}

    async def submit(i: int) -> None:
        results[i] = await batcher.submit(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(submit, 1)
        await until(lambda: len(gates) == 1)
        tg.start_soon(submit, 2)
        tg.start_soon(submit, 3)
        await until(lambda: len(batcher._queue) == 2)  # waiting for the running batch
        gates[0].set()
        await until(lambda: len(gates) == 2)  # the next batch, run by one of its own callers
        await until(lambda: 1 in results)  # the first caller is free while batch 2 still runs
        assert 2 not in results and 3 not in results
        gates[1].set()
    assert batches == [[1], [2, 3]]
    assert results == {1: 10, 2: 20, 3: 30}


async def test_a_lone_item_goes_at_once_and_batches_respect_their_size() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> Sequence[int | Exception]:
        batches.append(items)
        await anyio.sleep(0)
        return items

    batcher: Batcher[int, int] = Batcher(run, max_size=2)
    assert await batcher.submit(7) == 7
    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(batcher.submit, i)
    assert batches[0] == [7] and all(len(b) <= 2 for b in batches)
    assert sorted(i for b in batches[1:] for i in b) == [0, 1, 2, 3, 4]


async def test_an_item_fails_alone_and_a_failed_batch_fails_all_of_it() -> None:
    async def run(items: list[int]) -> Sequence[int | Exception]:
        if 0 in items:
            raise OSError("disk full")
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_size=10)
    with pytest.raises(ValueError, match="bad -1"):
        await batcher.submit(-1)
    outcomes: dict[int, object] = {}

    async def submit(i: int) -> None:
        try:
            outcomes[i] = await batcher.submit(i)
        except Exception as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(submit, 5)
        await anyio.sleep(0)
        tg.start_soon(submit, 0)
        tg.start_soon(submit, 6)
    assert outcomes[5] == 5 or isinstance(outcomes[5], OSError)
    assert isinstance(outcomes[0], OSError)
    assert isinstance(outcomes[6], OSError) or outcomes[6] == 6
    assert await batcher.submit(9) == 9  # the batcher is healthy after a failed batch


async def test_a_cancelled_caller_does_not_strand_the_others() -> None:
    gate = anyio.Event()

    async def run(items: list[int]) -> Sequence[int | Exception]:
        await gate.wait()
        return items

    batcher: Batcher[int, int] = Batcher(run, max_size=10)
    results: dict[int, int] = {}

    async def submit(i: int) -> None:
        results[i] = await batcher.submit(i)

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as first:
            first.start_soon(submit, 1)
            await until(lambda: batcher._running is not None)
            tg.start_soon(submit, 2)
            await until(lambda: len(batcher._queue) == 1)
            first.cancel_scope.cancel()  # its batch is shielded: it still finishes
            gate.set()
    assert results == {1: 1, 2: 2}
