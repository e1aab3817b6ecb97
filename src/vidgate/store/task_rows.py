"""What the task store hands out and takes back: rows as domain Tasks, claims, lease checks, events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus, WatermarkMode


@dataclass(frozen=True, slots=True)
class Claim:
    """A task this worker may work on while its lease lives, fenced by `token` and `version`."""

    task: Task
    worker: str

    @property
    def version(self) -> int:
        return self.task.version

    @property
    def token(self) -> str:
        assert self.task.lease_token is not None
        return self.task.lease_token


@dataclass(frozen=True, slots=True)
class LeaseCheck:
    """What a heartbeat learnt: the lease is still ours, and whether the client has ended the task."""

    status: TaskStatus
    deleted: bool

    @property
    def stopped_by_client(self) -> bool:
        return self.status is TaskStatus.CANCELLED or self.deleted


@dataclass(frozen=True, slots=True)
class TaskEvent:
    at: int
    kind: str
    from_status: str | None
    to_status: str | None
    step: str | None
    worker: str | None
    message: str | None


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body, to tell an idempotent retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def row_to_task(row: Mapping[Any, Any]) -> Task:  # a RowMapping, or a fast read's dict
    error = TaskError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    return Task(
        id=row["id"],
        owner=row["owner"],
        dialect=row["dialect"],
        model=row["model"],
        prompt=row["prompt"],
        status=TaskStatus(row["status"]),
        step=Step(row["step"]),
        progress=row["progress"],
        width=row["width"],
        height=row["height"],
        seconds=row["seconds"],
        orientation=row["orientation"],
        size_label=row["size_label"],
        watermark_mode=WatermarkMode(row["watermark_mode"]),
        private=row["private"],
        input=row["input"],
        images=tuple(row["images"]),
        created_at=row["created_at"],
        status_update_time=row["status_update_time"],
        completed_at=row["completed_at"],
        deadline_at=row["deadline_at"],
        next_run_at=row["next_run_at"],
        attempts=row["attempts"],
        version=row["version"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        lease_token=row["lease_token"],
        channel=row["channel"],
        upstream_id=row["upstream_id"],
        submissions=row["submissions"],
        submit_intent_at=row["submit_intent_at"],
        remix_upstream_id=row["remix_upstream_id"],
        inputs=row["inputs"],
        upstream_state=row["upstream_state"],
        watermarked=row["watermarked"],
        error=error,
        last_error=TaskError(**row["last_error"]) if row["last_error"] else None,
        video_key=row["video_key"],
        thumbnail_key=row["thumbnail_key"],
        spritesheet_key=row["spritesheet_key"],
        media_deleted_at=row["media_deleted_at"],
        media_deleted_reason=row["media_deleted_reason"],
        deleted_at=row["deleted_at"],
        remixed_from=row["remixed_from"],
        callback_url=row["callback_url"],
        callback_attempts=row["callback_attempts"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        request_id=row.get("request_id"),
        hold_amount=row.get("hold_amount"),
        charge_amount=row.get("charge_amount"),
    )


class ClaimLost(Exception):
    """This worker no longer owns the task (its lease went to another claim, or a client changed the
    task): drop whatever the step was doing."""
