"""The task: what a client asked for, where it stands, and the worker bookkeeping beside it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TaskStatus(enum.StrEnum):
    #: accepted and durable; inputs are being checked, nothing sent anywhere yet
    PENDING = "pending"
    #: handed to a channel (submitted upstream, or rendering on this machine)
    PROCESSING = "processing"
    #: the video is in our storage
    COMPLETED = "completed"
    #: ended with an error code (`timeout`, `invalid_image`, an upstream's refusal, ...)
    FAILED = "failed"
    #: stopped at a client's request
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})


class Step(enum.StrEnum):
    """What the worker does next with a task; one step per claim."""

    INGEST = "ingest"  # fetch and normalise input images into our storage
    SUBMIT = "submit"  # choose a channel and hand the task over (built-in engines render here)
    POLL = "poll"  # ask the channel how it is going
    FETCH = "fetch"  # copy the result into our storage, make previews
    CANCEL = "cancel"  # the task ended while the channel may still hold its job: tell it to stop
    NOTIFY = "notify"  # the task has ended: POST the signed webhook to its callback_url
    DONE = "done"  # nothing left to do


class WatermarkMode(enum.StrEnum):
    """What `watermark` on the wire means (spec section 3)."""

    PREFER_CLEAN = "prefer_clean"  # watermark: true (default): clean if possible, else a marked video
    REQUIRE_CLEAN = "require_clean"  # watermark: false: only a clean video, retried until the deadline


def delivered_watermark(declared: str, reported: bool | None) -> bool | None:
    """Whether a delivered video carries a watermark: the upstream's explicit word when it gave one,
    else what the channel's declaration settles (`always` clean, `never` marked), else unknown."""
    if reported is not None:
        return reported
    return {"always": False, "never": True}.get(declared)


@dataclass(frozen=True, slots=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Task:
    """A row of the tasks table, as the domain sees it."""

    id: str
    owner: str
    dialect: str
    model: str
    prompt: str
    status: TaskStatus
    step: Step
    progress: int
    width: int
    height: int
    seconds: int
    orientation: str
    size_label: str
    watermark_mode: WatermarkMode
    private: bool
    input: dict[str, Any]
    images: tuple[str, ...]
    created_at: int
    status_update_time: int
    completed_at: int | None
    deadline_at: int
    next_run_at: int
    attempts: int
    version: int
    lease_owner: str | None
    lease_expires_at: int | None
    lease_token: str | None
    channel: str | None
    upstream_id: str | None
    # Deliberate submissions so far; the idempotency key of the current one is `<id>-<submissions>`.
    submissions: int
    # Set (ms) just before a submit is sent, cleared once its outcome is known: while set with no
    # upstream_id, the channel may hold a job we do not know the id of.
    submit_intent_at: int | None
    remix_upstream_id: str | None  # a remix on the upstream: the source task's upstream job
    inputs: list[dict[str, Any]] | None
    upstream_state: dict[str, Any] | None
    watermarked: bool | None
    error: TaskError | None
    last_error: TaskError | None  # the latest failure that was retried (the task may still succeed)
    video_key: str | None
    thumbnail_key: str | None
    spritesheet_key: str | None
    media_deleted_at: int | None
    media_deleted_reason: str | None
    deleted_at: int | None
    remixed_from: str | None
    callback_url: str | None
    callback_attempts: int
    idempotency_key: str | None
    request_hash: str | None
    request_id: str | None = None  # the create request's id (x-request-id), carried into worker logs
    hold_amount: int | None = None  # micro-credits held at create for its price (store/ledger.py)
    charge_amount: int | None = None  # its price on the channel it was admitted to (<= the hold)

    @property
    def submit_key(self) -> str:
        """The idempotency key of the current submission: the same for every retry of it."""
        return f"{self.id}-{self.submissions}"

    @property
    def submissions_made(self) -> int:
        """How many upstream jobs this task has caused (or may have: a submit of unknown outcome counts):
        earlier deliberate submissions, plus the current one once it went out."""
        return self.submissions + (1 if self.may_hold_upstream_job else 0)

    @property
    def may_hold_upstream_job(self) -> bool:
        """Whether a channel may be working on this task (a job id known, or a submit of unknown outcome)."""
        return self.upstream_id is not None or self.submit_intent_at is not None


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """What a list of tasks shows of each (OpenAI's `Video` object): a page reads only these columns."""

    id: str
    model: str
    prompt: str
    status: TaskStatus
    progress: int
    width: int
    height: int
    seconds: int
    created_at: int
    completed_at: int | None
    remixed_from: str | None
    error: TaskError | None


SUMMARY_COLUMNS = ("id", "model", "prompt", "status", "progress", "width", "height", "seconds",
                   "created_at", "completed_at", "remixed_from", "error_code", "error_message")  # fmt: skip


def summary_from_row(row: tuple[Any, ...]) -> TaskSummary:
    """A TaskSummary from a row of SUMMARY_COLUMNS, in that order."""
    (id_, model, prompt, status, progress, width, height, seconds,
     created_at, completed_at, remixed_from, error_code, error_message) = row  # fmt: skip
    error = TaskError(error_code, error_message or "") if error_code else None
    return TaskSummary(id_, model, prompt, TaskStatus(status), progress, width, height, seconds,
                       created_at, completed_at, remixed_from, error)  # fmt: skip
