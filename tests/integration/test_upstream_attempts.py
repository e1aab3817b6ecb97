"""The record of upstream create attempts, on SQLite and PostgreSQL: numbered per task,
settled once, a job owned by one task at most; and the two ways a billed job used to be lost (a lease
that ran out while the submit was finishing, a database error on the commit after it) now keep it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.helpers import new_task, record_attempt, scripted_channel, until, worker_running
from tests.integration.worker_support import QUICK, accepted_upstream, done, ops, run_to_rest
from vidgate.domain.tasks import TaskStatus
from vidgate.store.attempts import AttemptOutcome, AttemptStore, accepted_job, paid_creates
from vidgate.store.tables import tasks
from vidgate.store.tasks import TaskStore
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio


async def test_attempts_are_numbered_settled_once_and_never_share_a_job(gateway: Any) -> None:
    store: AttemptStore = gateway.runtime.attempts
    first = await record_attempt(gateway.runtime, "t1", "up", "t1-0")
    second = await record_attempt(gateway.runtime, "t1", "up", "t1-0")  # a replay of the same submission
    other = await record_attempt(gateway.runtime, "t2", "up", "t2-0")
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.outcome is AttemptOutcome.PENDING and first.sent_at > 0

    assert await store.settle(first, AttemptOutcome.UNKNOWN, error=("upstream_timeout", "no answer"))
    assert await store.settle(first, AttemptOutcome.ADOPTED, upstream_id="job-1", memo={"m": 1})
    assert not await store.settle(first, AttemptOutcome.REFUSED)  # settled: a late writer changes nothing
    assert not await store.settle(other, AttemptOutcome.ADOPTED, upstream_id="job-1")  # t1's job
    assert await store.settle(other, AttemptOutcome.ACCEPTED, upstream_id="job-2")
    assert await store.settle(second, AttemptOutcome.REFUSED, error=("upstream_rate_limited", "429"))

    mine = await store.for_task("t1")
    assert [(a.number, a.outcome, a.upstream_id) for a in mine] == [
        (1, AttemptOutcome.ADOPTED, "job-1"),
        (2, AttemptOutcome.REFUSED, None),
    ]
    assert mine[0].memo == {"m": 1} and mine[0].settled_at is not None
    assert paid_creates(mine) == 1  # one key that may have made a job
    found = accepted_job(mine, "t1-0")
    assert found is not None and found.upstream_id == "job-1"
    assert await store.owned("up", ["job-1", "job-2", "job-3"]) == {"job-1", "job-2"}


async def test_two_writers_never_give_one_task_two_attempts_with_one_number(gateway: Any) -> None:
    """A submit records its attempt while it holds the task's fenced claim, so two writers never number
    one task at once. Were they to, the unique (task, number) refuses the loser rather than record
    twins (PostgreSQL; SQLite's single writer numbers them one after the other)."""
    numbers: list[int] = []
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            numbers.append((await record_attempt(gateway.runtime, "t3", "up", "t3-0")).number)
        except IntegrityError:
            refused += 1

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert len(numbers) + refused == 8 and numbers
    assert len(set(numbers)) == len(numbers)
    kept = await gateway.runtime.attempts.for_task("t3")
    assert sorted(a.number for a in kept) == sorted(numbers)


async def test_a_job_accepted_while_the_lease_ran_out_is_kept_not_paid_for_again(
    start_gateway: Any, tmp_path: Any
) -> None:
    """The worker's lease is taken over while its accepted submit is finishing: its commit and the
    token-fenced fallback both lose, so the job id used to be dropped (a billed job nobody tracked; on a
    channel that can neither dedupe nor be asked the task then failed `upstream_outcome_unknown`). The
    attempt record is not fenced: the next claim keeps the job."""
    channel = scripted_channel(tmp_path / "up", submit_seconds=1.0, dedupe=False, findable=False)
    channel = channel.model_copy(update={"request_timeout_seconds": 2.0})
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        async with worker_running(gw):
            await until(accepted_upstream(tmp_path / "up", task.id))  # the upstream has the job...
            async with gw.runtime.engine.begin() as conn:  # ...and another claim takes the task over
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task.id)
                    .values(lease_token="taken-over", lease_expires_at=0)
                )
            t = await until(lambda: done(gw, task.id))
        attempts = await gw.runtime.attempts.for_task(task.id)
    assert t.status is TaskStatus.COMPLETED, t.error
    assert ops(tmp_path / "up", task.id).count("accepted") == 1  # one paid job
    assert [a.upstream_id for a in attempts] == [t.upstream_id]


class CommitFailsOnce(TaskStore):
    """The database drops the connection on the commit right after an accepted submit."""

    failed = 0

    async def finish_step(self, claim: Any, **kwargs: Any) -> Any:
        if kwargs.get("changes", {}).get("upstream_id") and not self.failed:
            self.failed += 1
            raise OperationalError("UPDATE tasks", {}, Exception("server closed the connection"))
        return await super().finish_step(claim, **kwargs)


async def test_a_transient_database_error_on_the_commit_after_a_submit_is_retried(
    start_gateway: Any, tmp_path: Any
) -> None:
    channel = scripted_channel(tmp_path / "up", dedupe=False, findable=False)
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        flaky = CommitFailsOnce(gw.runtime.engine)
        worker.deps.store = flaky
        worker.steps.deps.store = flaky
        final = await run_to_rest(gw, task.id, worker)
    assert flaky.failed == 1
    assert final.status is TaskStatus.COMPLETED
    assert ops(tmp_path / "up", task.id).count("accepted") == 1
