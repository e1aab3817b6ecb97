"""Which status may follow which. Every status change in the store is checked against this table."""

from __future__ import annotations

from vidgate.domain.tasks import TaskStatus

S = TaskStatus

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELLED}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"a {current.value} task cannot become {target.value}")
        self.current = current
        self.target = target


def check_transition(current: TaskStatus, target: TaskStatus) -> None:
    """Raise IllegalTransition unless `target` may follow `current` (staying put is always fine)."""
    if current != target and target not in ALLOWED[current]:
        raise IllegalTransition(current, target)
