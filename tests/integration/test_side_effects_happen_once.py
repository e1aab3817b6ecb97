"""Upstream side effects happen exactly once: a paid create is made once however its answer is lost,
and a cancel that lands while the create is in flight still stops the job it made.

Each of these failed on the code before its fix (checked against commit b76932a, with the scripted
channel's test options ported where a test needs them, and the store calls adapted to its signatures).
Leases and claims: test_claims_and_leases.py; deletes racing the worker: test_delete_races.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import new_task, scripted_channel, until, worker_running
from tests.integration.worker_support import QUICK, accepted_upstream, done, journal, ops, run_to_rest
from vidgate.api.actions import cancel_task
from vidgate.domain.tasks import TaskStatus

pytestmark = pytest.mark.anyio


# one paid create per submission ----------------------------------------------------------------


async def test_a_retry_after_an_unknown_outcome_reuses_the_idempotency_key(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1).model_copy(
        update={"honours_idempotency_key": True}
    )
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.COMPLETED
    entries = journal(tmp_path / "up", task.id)
    assert [e["op"] for e in entries if "submit" in e["op"]] == ["submit", "duplicate_submit"]
    assert [e["op"] for e in entries].count("accepted") == 1  # one upstream job, not two
    assert entries[0]["key"] == f"{task.id}-0"


async def test_an_upstream_ignoring_keys_is_asked_for_the_job_not_sent_it_again(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1, dedupe=False).model_copy(
        update={"request_timeout_seconds": 0.2}  # lookups start once a create's own timeout has passed
    )
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.COMPLETED
    seen = ops(tmp_path / "up", task.id)
    assert seen.count("submit") == 1 and seen.count("accepted") == 1 and "find" in seen


async def test_when_it_can_neither_dedupe_nor_be_asked_the_task_fails_rather_than_pay_twice(
    start_gateway, tmp_path
) -> None:
    channel = scripted_channel(tmp_path / "up", accept_then_timeout=1, dedupe=False, findable=False)
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw, deadline_s=2)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.FAILED and final.error.code == "upstream_outcome_unknown"
    assert ops(tmp_path / "up", task.id).count("submit") == 1


async def test_only_a_deliberate_resubmission_gets_a_new_key(start_gateway, tmp_path) -> None:
    """Transient refusals are retries of one submission (one key); a job that FAILED retryably is
    resubmitted on purpose (a new key, so a deduping upstream does make a new job)."""
    channel = scripted_channel(
        tmp_path / "up", transient_submit_failures=2, fail_code="server_error", fail_retryable=True
    )
    async with start_gateway(
        run_worker=False,
        channels=[channel],
        worker=QUICK.model_copy(update={"max_attempts": 4, "resubmit_failed_jobs": 3}),
    ) as gw:
        task = await new_task(gw)
        final = await run_to_rest(gw, task.id)
    assert final.status is TaskStatus.FAILED and final.error.code == "server_error"
    keys = [e["key"] for e in journal(tmp_path / "up", task.id) if e["op"] == "submit"]
    assert keys[:3] == [f"{task.id}-0"] * 3  # two 503s and the accepted submit: one submission
    assert keys[3:] == [f"{task.id}-{n}" for n in range(1, len(keys) - 2)]


# a cancel during the submit --------------------------------------------------------------------


async def test_a_cancel_during_the_submit_keeps_the_job_id_and_stops_the_job(start_gateway, tmp_path) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=1.0, polls=1000)
    async with start_gateway(run_worker=False, channels=[channel], worker=QUICK) as gw:
        task = await new_task(gw)
        async with worker_running(gw):
            await until(accepted_upstream(tmp_path / "up", task.id))  # the upstream has the job...
            await cancel_task(gw.runtime, task.id, owner=task.owner)  # ...and its answer is on its way
            t = await until(lambda: done(gw, task.id))
            attempts = await gw.runtime.attempts.for_task(task.id)
    # The job's id is kept: on the task when the submit's own write won, else (the client's cancel
    # changed the task first) in the attempt the submit settled, where the cancel step reads it.
    [attempt] = attempts
    assert t.status is TaskStatus.CANCELLED and attempt.upstream_id is not None
    assert t.upstream_id in (None, attempt.upstream_id)
    [cancelled] = [e for e in journal(tmp_path / "up", task.id) if e["op"] == "cancel"]
    assert cancelled["job"] == attempt.upstream_id
