"""Upstream jobs: what a create made, how its status unfolds over the fake's clock, and the job table."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from ulid import ULID

from vidgate.testing.fake_upstream.directives import Directives, parse_directives

__all__ = ["Job", "JobDialect", "JobStore", "Outcome", "Phase", "Snapshot", "decide_outcome", "new_ids"]

Phase = Literal["queued", "running", "completed", "failed"]
JobDialect = Literal[
    "openai", "unified", "veo", "seedance", "dashscope", "kling", "minimax", "fal", "replicate", "openrouter"
]  # fmt: skip

MODERATION_MESSAGE = "Your request was blocked by our moderation system."
WATERMARK_MESSAGE = "The watermark could not be removed from the generated video."
CANCELLED_MESSAGE = "The job was cancelled before it finished."


@dataclass(frozen=True)
class Outcome:
    """How a job ends, fixed at creation so that polling cannot change it."""

    fail_code: str | None = None
    fail_message: str | None = None
    watermarked: bool = False


def decide_outcome(
    directives: Directives, ordinal: int, watermark: bool | None, credential: str | None = None
) -> Outcome:
    """The ending for the `ordinal`-th job of its prompt.

    `watermark` is the unified create's request (None where the dialect has no such field): with
    `watermark_fail` in force, a forced clean video (false) fails and a best-effort one (true) falls back
    to a watermarked result, as relays document. `echo_key=job`: the job fails with the create's
    `credential` echoed back in its error's code and (upper-cased) message.
    """
    if directives.text("echo_key") == "job" and credential:
        return Outcome(credential, f"Billing failed for key {credential.upper()}: the job was stopped.")
    if directives.text("moderation") == "job":
        return Outcome("moderation_blocked", MODERATION_MESSAGE)
    code = directives.text("fail")
    if code and (not directives.has("fail_jobs") or ordinal <= directives.count("fail_jobs")):
        return Outcome(code, f"The fake upstream was told to fail this job ({code}).")
    if watermark is not None and ordinal <= directives.count("watermark_fail"):
        if watermark is False:
            return Outcome("watermark_removal_failed", WATERMARK_MESSAGE)
        return Outcome(watermarked=True)
    return Outcome()


@dataclass(frozen=True)
class Snapshot:
    """A job's state at one instant of the fake's clock."""

    phase: Phase
    progress: int
    changed_at: float  # when the current status began (clock time)
    finished_at: float | None  # when it completed or failed
    error_code: str | None = None
    error_message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in ("completed", "failed")


@dataclass
class Job:
    """One upstream job. `id` is what the create answered; `short_id` the part after a `<model>:`."""

    id: str
    short_id: str
    dialect: JobDialect
    seq: int
    model: str
    prompt: str
    header: str | None  # the create's X-Fake header: later requests about the job still see it
    created: float
    queue_s: float
    ready_s: float
    width: int  # requested pixel size (the clip is this divided by clip_scale)
    height: int
    seconds: int
    size: str  # as the dialect echoes it: "720x1280" or "small"/"large"
    input: dict[str, Any]  # the create fields as received
    outcome: Outcome = field(default_factory=Outcome)
    remixed_from: str | None = None
    deleted: bool = False
    stopped_at: float | None = None  # a delete while unfinished: it never completes
    polls: int = 0
    # Signed CDN links issued by queries: (file name, signature) -> expiry (unix seconds).
    links: dict[tuple[str, str], float] = field(default_factory=dict)
    links_issued: int = 0  # every link ever issued, revoked ones too: no two share a signature

    def directives(self, *headers: str | None) -> Directives:
        """The job's directives (prompt and create header) plus those of a later request's header."""
        return parse_directives(self.prompt, self.header, *headers)

    @property
    def ends_at(self) -> float:
        """Clock time at which the job reaches its terminal status."""
        return self.created + max(self.ready_s, self.queue_s)

    def snapshot(self, now: float) -> Snapshot:
        """Queued for queue_s, then in progress with progress rising linearly to 99, then terminal."""
        if self.stopped_at is not None and self.stopped_at < self.ends_at and now >= self.stopped_at:
            return Snapshot("failed", 0, self.stopped_at, self.stopped_at, "cancelled", CANCELLED_MESSAGE)
        elapsed = now - self.created
        if now >= self.ends_at:
            if self.outcome.fail_code is not None:
                return Snapshot(
                    "failed", 0, self.ends_at, self.ends_at, self.outcome.fail_code, self.outcome.fail_message
                )
            return Snapshot("completed", 100, self.ends_at, self.ends_at)
        if elapsed < self.queue_s:
            return Snapshot("queued", 0, self.created, None)
        running_for = max(self.ready_s, self.queue_s) - self.queue_s
        progress = min(99, int(100 * (elapsed - self.queue_s) / running_for)) if running_for > 0 else 99
        return Snapshot("running", progress, self.created + self.queue_s, None)


def new_ids(dialect: JobDialect, model: str, unix_now: float) -> tuple[str, str]:
    """(id, short id) in the dialect's style: `video_<32 hex>`, or `<model>:task_<lowercase ULID>`."""
    if dialect == "openai":
        vid = f"video_{secrets.token_hex(16)}"
        return vid, vid
    short = f"task_{str(ULID.from_timestamp(unix_now)).lower()}"
    return f"{model}:{short}", short


class JobStore:
    """Jobs by id and by short id, plus the Idempotency-Key table (keys are scoped per dialect)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._short: dict[str, Job] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, job: Job, key: str | None) -> None:
        self._jobs[job.id] = job
        self._short[job.short_id] = job
        if key is not None:
            self._keys[(job.dialect, key)] = job.id

    def get(self, job_id: str, dialect: JobDialect | None = None) -> Job | None:
        """By full or short id (the unified query accepts both); None when unknown or of another dialect."""
        job = self._jobs.get(job_id) or self._short.get(job_id)
        if job is None or (dialect is not None and job.dialect != dialect):
            return None
        return job

    def by_key(self, dialect: JobDialect, key: str) -> Job | None:
        job_id = self._keys.get((dialect, key))
        return self._jobs.get(job_id) if job_id else None

    def listing(self, dialect: JobDialect) -> list[Job]:
        """This dialect's jobs in creation order, deleted ones included (callers filter)."""
        return sorted((j for j in self._jobs.values() if j.dialect == dialect), key=lambda j: j.seq)

    def clear(self) -> None:
        self._jobs.clear()
        self._short.clear()
        self._keys.clear()
