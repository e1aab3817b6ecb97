"""The task's state machine (domain/lifecycle.py) as a table: every status change, and the step that
follows an end for every combination of what decides it (status x upstream id x submit intent x
deleted x callback)."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import task_row as base_task
from vidgate.domain import lifecycle
from vidgate.domain.lifecycle import (
    AFTER_THE_END,
    ALLOWED,
    IllegalTransition,
    check_transition,
    step_after_cancel,
    step_after_client_end,
    step_after_end,
)
from vidgate.domain.tasks import ACTIVE_STATUSES, Step, Task, TaskStatus
from vidgate.store.tables import DUE_WHERE

S = TaskStatus


def test_every_status_change_is_in_the_table() -> None:
    allowed = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert allowed == {
        (S.PENDING, S.PROCESSING),
        (S.PENDING, S.FAILED),
        (S.PENDING, S.CANCELLED),
        (S.PROCESSING, S.COMPLETED),
        (S.PROCESSING, S.FAILED),
        (S.PROCESSING, S.CANCELLED),
    }
    for current, target in itertools.product(TaskStatus, TaskStatus):
        if current == target or (current, target) in allowed:
            check_transition(current, target)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(current, target)


def task(*, upstream_id: str | None, intent: int | None, deleted: bool, callback: bool) -> Task:
    return base_task(
        upstream_id=upstream_id,
        submit_intent_at=intent,
        deleted_at=1 if deleted else None,
        callback_url="https://hooks.example.com/v" if callback else None,
    )


CASES = list(itertools.product([None, "job-1"], [None, 1_760_000_000_000], [False, True], [False, True]))


@pytest.mark.parametrize(("upstream_id", "intent", "deleted", "callback"), CASES)
def test_the_steps_after_an_end(
    upstream_id: str | None, intent: int | None, deleted: bool, callback: bool
) -> None:
    t = task(upstream_id=upstream_id, intent=intent, deleted=deleted, callback=callback)
    may_hold_a_job = upstream_id is not None or intent is not None
    notify = Step.NOTIFY if callback and not deleted else Step.DONE
    assert t.may_hold_upstream_job is may_hold_a_job
    assert step_after_cancel(t) is notify
    # A completed task's job has finished: nothing to stop; a failed one may still run upstream.
    assert step_after_end(t, S.COMPLETED) is notify
    assert step_after_end(t, S.FAILED) is (Step.CANCEL if may_hold_a_job else notify)
    # A client's cancel or delete stops the job (or deletes a finished one's copy) wherever there is one.
    assert step_after_client_end(t) is (Step.CANCEL if may_hold_a_job else notify)


def test_a_job_learnt_after_the_end_is_stopped() -> None:
    assert lifecycle.STEP_FOR_A_LATE_JOB is Step.CANCEL


def test_the_claim_query_looks_for_active_tasks_and_the_steps_after_an_end() -> None:
    statuses, _, steps = DUE_WHERE.partition(" OR ")
    assert {s.value for s in ACTIVE_STATUSES} == set(
        statuses.split("(")[1].rstrip(")").replace("'", "").split(", ")
    )
    assert {s.value for s in AFTER_THE_END} == set(
        steps.split("(")[1].rstrip(")").replace("'", "").split(", ")
    )
