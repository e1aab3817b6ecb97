"""The pure rules of the worker's steps: which error a task ends with, and what it remembers meanwhile."""

from __future__ import annotations

from tests.helpers import task_row as task
from vidgate.domain.tasks import Step, TaskError
from vidgate.worker.outcomes import deadline_reached, remembered_error

WATERMARK = TaskError("watermark_removal_failed", "only a marked video")


def test_a_failed_clean_output_stays_the_reason_whatever_comes_after() -> None:
    assert remembered_error(task(last_error=WATERMARK), "upstream_timeout", "slow") == {
        "code": "watermark_removal_failed", "message": "only a marked video"}  # fmt: skip
    assert remembered_error(task(), "upstream_timeout", "slow") == {
        "code": "upstream_timeout",
        "message": "slow",
    }


def test_the_deadline_names_the_reason_the_task_went_round() -> None:
    ended = deadline_reached(task(last_error=WATERMARK), TaskError("channels_busy", "all full"))
    assert ended.changes["error_code"] == "watermark_removal_failed"
    assert (
        deadline_reached(task(last_error=TaskError("upstream_timeout", "slow"))).changes["error_code"]
        == "timeout"
    )


def test_an_unknown_outcome_is_the_reason_only_while_it_is_unresolved() -> None:
    unknown = TaskError("upstream_outcome_unknown", "no answer")
    pending = deadline_reached(task(last_error=unknown, submit_intent_at=5, channel="up"))
    assert pending.changes["error_code"] == "upstream_outcome_unknown"
    assert pending.next_step is Step.CANCEL  # the channel may hold a job: try to stop it
    resolved = deadline_reached(task(last_error=unknown, upstream_id="v1", channel="up"))
    assert resolved.changes["error_code"] == "timeout" and resolved.next_step is Step.CANCEL
    assert deadline_reached(task()).next_step is Step.DONE  # nothing upstream: nothing to stop
