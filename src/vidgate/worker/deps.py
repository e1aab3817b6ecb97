"""What every step may use (`StepDeps`), and the retry policy they share (`Retries`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgate.clock import DatabaseAlignedClock
from vidgate.config import Settings
from vidgate.domain.lifecycle import step_after_end
from vidgate.domain.routing import Catalog
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus
from vidgate.net.fetch import SafeFetcher
from vidgate.providers.base import Provider
from vidgate.store.attempts import AttemptStore
from vidgate.store.blobs import BlobStore
from vidgate.store.channels import ChannelHealthStore
from vidgate.store.tasks import TaskStore
from vidgate.worker.outcomes import (
    Outcome,
    backoff_seconds,
    deadline_reached,
    failed,
    remembered_error,
)


@dataclass
class StepDeps:
    settings: Settings
    store: TaskStore
    attempts: AttemptStore
    health: ChannelHealthStore
    blobs: BlobStore
    catalog: Catalog
    providers: Callable[[str], Provider]
    fetcher: SafeFetcher
    clock: DatabaseAlignedClock  # the database's time as this process knows it (see clock.py)
    rng: random.Random = field(default_factory=random.Random)


class Retries:
    """When a step's trouble is worth another go, and when the task has had enough."""

    def __init__(self, deps: StepDeps) -> None:
        self.deps = deps

    def retry(
        self,
        task: Task,
        code: str,
        message: str,
        retry_after: float | None = None,
        *,
        step: Step | None = None,
        changes: Mapping[str, Any] | None = None,
        limited: bool = True,
    ) -> Outcome:
        """Try again later with backoff, unless attempts (when `limited`) or the deadline have run out."""
        worker = self.deps.settings.worker
        attempts = task.attempts + 1
        if limited and attempts > worker.max_attempts:
            return failed(
                code,
                f"{message} (gave up after {task.attempts} retries)",
                then=step_after_end(task, TaskStatus.FAILED),
            )
        delay = backoff_seconds(
            task.attempts,
            base=worker.retry_base_seconds,
            cap=worker.retry_max_seconds,
            retry_after=retry_after,
            rng=self.deps.rng,
        )
        if self.deps.clock.now_ms() + delay * 1000 >= task.deadline_at:
            return deadline_reached(task, last_error=TaskError(code, message))
        return Outcome(
            step or task.step,
            delay_seconds=delay,
            changes={
                "attempts": attempts,
                "last_error": remembered_error(task, code, message),
                **(changes or {}),
            },
            message=f"retry {attempts} in {delay:.1f}s: {code}: {message}",
        )

    def resubmit(self, task: Task, code: str, message: str, *, limited: bool = True) -> Outcome:
        """A deliberate new submission (the last job failed retryably, or came out marked): a new
        idempotency key, so an upstream that dedupes does make a new job."""
        return self.retry(
            task,
            code,
            message,
            step=Step.SUBMIT,
            changes={"upstream_id": None, "submissions": task.submissions + 1},
            limited=limited,
        )
