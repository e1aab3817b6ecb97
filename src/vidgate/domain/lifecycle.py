"""A task's whole life in one place: which status may follow which, and which step follows an end.

A task has a `status` (what the client sees) and a `step` (what the worker does next). While it is
active (pending, processing) the steps run ingest -> submit -> poll -> fetch. Once it ends, by the
worker or by the client, at most two steps are left, in this order:

- `cancel`, while a channel may still hold a job of the task (an upstream id is known, or a submit's
  outcome is unknown): the channel is told to stop it. A completed task's job has finished: none.
- `notify`, when the task has a `callback_url` and was not deleted: its webhook is sent.

A job id learnt after the task ended (an accepted submit whose answer came after a cancel) sends the
task to `cancel` too. A task is due for the worker while it is active or has one of those steps left
(`tables.DUE_WHERE` says the same in SQL). Every status change is checked against `ALLOWED`.

Pure: the store, the worker and the API ask this module, none of them decides on its own.
"""

from __future__ import annotations

from vidgate.domain.tasks import Step, Task, TaskStatus

S = TaskStatus

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELLED}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
# The steps an ended task may still have (the claim query looks for them beside the active tasks).
AFTER_THE_END = (Step.CANCEL, Step.NOTIFY)


class IllegalTransition(ValueError):
    def __init__(self, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"a {current.value} task cannot become {target.value}")
        self.current = current
        self.target = target


def check_transition(current: TaskStatus, target: TaskStatus) -> None:
    """Raise IllegalTransition unless `target` may follow `current` (staying put is always fine)."""
    if current != target and target not in ALLOWED[current]:
        raise IllegalTransition(current, target)


def step_after_end(task: Task, ended_as: TaskStatus) -> Step:
    """The step that follows when the worker ends `task` (as it is now) as `ended_as`."""
    if ended_as is not S.COMPLETED and task.may_hold_upstream_job:
        return Step.CANCEL
    return step_after_cancel(task)


def step_after_client_end(task: Task) -> Step:
    """The step that follows a client's cancel or delete of `task` (as it is after it): a job a channel
    may hold is stopped, or, for a finished task that is deleted, its copy upstream is deleted too."""
    return Step.CANCEL if task.may_hold_upstream_job else step_after_cancel(task)


def step_after_cancel(task: Task) -> Step:
    """What is left once nothing can be running upstream any more: the webhook, unless there is none
    or the task was deleted (its owner no longer wants to hear of it)."""
    return Step.NOTIFY if task.callback_url and task.deleted_at is None else Step.DONE


# A job id recorded after the task changed under its submit: an ended task goes to this step to stop it
# (the store writes it in SQL, in the same statement that records the id).
STEP_FOR_A_LATE_JOB = Step.CANCEL
