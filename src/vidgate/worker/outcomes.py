"""What a step decides (`Outcome`) and the pure rules behind the decisions every step shares: how a
task fails, what its deadline ends it with, how long a retry waits, which error it remembers."""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from vidgate.domain.lifecycle import step_after_end
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus
from vidgate.providers.base import UpstreamJob
from vidgate.store.task_rows import Claim


@dataclass(frozen=True)
class Outcome:
    """What one step decided."""

    next_step: Step
    status: TaskStatus | None = None
    delay_seconds: float = 0.0
    changes: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    record_event: bool = True

    @property
    def is_routine_repoll(self) -> bool:
        """A poll that found the job still running: nothing to record but the next poll's time."""
        return self.next_step is Step.POLL and self.status is None and not self.record_event


class StepFailed(Exception):
    """End the task now with this error code (nothing to retry)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StepRun(Protocol):
    """What a running step may tell the runner."""

    def new_claim(self, claim: Claim) -> None:
        """The step saved progress: later writes are fenced by this claim's version."""

    def submit_in_flight(self, *, paid: bool) -> AbstractContextManager[None]:
        """While inside, a client's cancel does not interrupt the step (a paid submit must finish)."""


def failed(code: str, message: str, *, then: Step = Step.DONE) -> Outcome:
    return Outcome(
        then,
        status=TaskStatus.FAILED,
        changes={"error_code": code, "error_message": message},
        message=f"{code}: {message}",
    )


def deadline_reached(task: Task, last_error: TaskError | None = None) -> Outcome:
    """The task ran out of time: `timeout`, or the reason that kept it from finishing when there is a
    precise one (`watermark_removal_failed`, spec 3; `upstream_outcome_unknown`)."""
    last = last_error or task.last_error
    if task.last_error and task.last_error.code == "watermark_removal_failed":
        last = task.last_error  # the reason it went round, whatever stopped the last round (remembered_error)
    then = step_after_end(task, TaskStatus.FAILED)
    if last and last.code == "watermark_removal_failed":
        return failed(
            "watermark_removal_failed",
            f"No clean video before the task's deadline: {last.message}",
            then=then,
        )
    unknown = task.submit_intent_at is not None and task.upstream_id is None
    if last and last.code == "upstream_outcome_unknown" and unknown:
        return failed("upstream_outcome_unknown", last.message, then=then)
    detail = f"; last error: {last.code}: {last.message}" if last else "."
    return failed("timeout", f"The task did not finish before its deadline{detail}", then=then)


def backoff_seconds(
    attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Exponential backoff with 'equal jitter' (half fixed, half random), never below Retry-After."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 30))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


def remembered_error(task: Task, code: str, message: str) -> dict[str, str]:
    """The error to remember as the reason the task is still going round. A failed clean output stays
    it (whatever transient trouble comes after), so a `watermark: false` task that runs out of time
    fails with `watermark_removal_failed` as the contract says, not with the last hiccup."""
    kept = task.last_error
    if kept is not None and kept.code == "watermark_removal_failed":
        return {"code": kept.code, "message": kept.message}
    return {"code": code, "message": message}


def accepted(job: UpstreamJob, message: str) -> Outcome:
    """The channel has the job: keep its id (the intent is resolved) and start polling it."""
    return Outcome(
        Step.POLL,
        status=TaskStatus.PROCESSING,
        delay_seconds=job.poll_after or 0.0,
        changes={"upstream_id": job.upstream_id, "upstream_state": dict(job.memo), "submit_intent_at": None},
        message=message,
    )
