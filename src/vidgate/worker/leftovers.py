"""Files a step stored for a task that ended under it: nobody points at them, so they are removed.

A step that stores files (ingested inputs, a rendered or fetched video and its previews) does so before
its fenced commit. When the client deletes the task in between, the API removes the task's files
before the step's files land, the commit is refused, and the files would stay on disk with no task
pointing at them. When the task was cancelled (or failed by another worker) instead, its media can
never be shown either. So a file step that ends without committing hands the task to
`remove_unclaimed_files`. A task that is still active is left alone: the worker that holds it now may
be storing the very same keys.
"""

from __future__ import annotations

from vidgate.store.blobs import BlobStore, delete_task_files, media_prefix
from vidgate.store.tasks import TaskStore


async def remove_unclaimed_files(store: TaskStore, blobs: BlobStore, task_id: str) -> None:
    task = await store.get(task_id, include_deleted=True)
    if task is None or task.deleted_at is not None:
        await delete_task_files(blobs, task_id)  # everything: the delete already removed the rest
    elif task.status.is_terminal and task.video_key is None:
        # Ended without a video: only media that can never be served goes; inputs follow retention.
        await blobs.delete_prefix(media_prefix(task_id))
