"""The steps of a task: ingest -> submit -> poll (repeated) -> fetch. One step per claim.

Each step function takes the claim and returns an `Outcome` (what to record, what comes next,
when); it never writes the task itself except through `TaskStore.advance` for a save that must
precede a side effect. The runner commits the outcome fenced by the lease.
"""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import structlog
from PIL import Image

from vidgate import signing
from vidgate.clock import Clock
from vidgate.config import Settings
from vidgate.domain.requests import BLOB_REF_PREFIX, RELAY_EXTRAS
from vidgate.domain.routing import Catalog, RouteRequest
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus, WatermarkMode
from vidgate.media.images import ImageRejected, decode_image
from vidgate.media.previews import previews_from_mp4
from vidgate.media.probe import NotAVideo, probe_mp4
from vidgate.net.fetch import IMAGE, ContentRejected, FetchFailed, SafeFetcher
from vidgate.net.policy import UrlRejected
from vidgate.providers.base import (
    InputImage,
    Provider,
    ProviderError,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.store.blobs import BlobNotFound, BlobStore, input_key, media_key
from vidgate.store.tasks import Claim, TaskStore
from vidgate.views import webhook_event

log = structlog.get_logger("vidgate.worker")
# Webhook deliveries per task before giving up (spread over a few minutes by the backoff).
CALLBACK_ATTEMPTS = 6


@dataclass(frozen=True)
class Outcome:
    """What one step decided."""

    next_step: Step
    status: TaskStatus | None = None
    delay_seconds: float = 0.0
    changes: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    record_event: bool = True


class StepFailed(Exception):
    """End the task now with this error code (nothing to retry)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def failed(code: str, message: str) -> Outcome:
    return Outcome(
        Step.DONE,
        status=TaskStatus.FAILED,
        changes={"error_code": code, "error_message": message},
        message=f"{code}: {message}",
    )


def deadline_reached(task: Task, last_error: TaskError | None = None) -> Outcome:
    """The task ran out of time: `timeout`, or `watermark_removal_failed` when that is why (spec 3)."""
    last = last_error or task.last_error
    if last and last.code == "watermark_removal_failed":
        return failed(
            "watermark_removal_failed", f"No clean video before the task's deadline: {last.message}"
        )
    detail = f"; last error: {last.code}: {last.message}" if last else "."
    return failed("timeout", f"The task did not finish before its deadline{detail}")


def backoff_seconds(
    attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Exponential backoff with 'equal jitter' (half fixed, half random), never below Retry-After."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 30))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


@dataclass
class StepDeps:
    settings: Settings
    store: TaskStore
    blobs: BlobStore
    catalog: Catalog
    providers: Callable[[str], Provider]
    fetcher: SafeFetcher
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)


class Steps:
    def __init__(self, deps: StepDeps) -> None:
        self.deps = deps

    async def run(self, claim: Claim, ctx: StepContext, on_new_claim: Callable[[Claim], None]) -> Outcome:
        """Run the claimed task's current step and decide what follows; errors become outcomes."""
        task = claim.task
        try:
            if task.step is Step.INGEST:
                return await self.ingest(task)
            if task.step is Step.SUBMIT:
                return await self.submit(claim, ctx, on_new_claim)
            if task.step is Step.POLL:
                return await self.poll(task, ctx)
            if task.step is Step.FETCH:
                return await self.fetch(task, ctx)
            if task.step is Step.NOTIFY:
                return await self.notify(task)
            return failed(
                "internal_error", f"A {task.status.value} task has nothing to do at step {task.step}."
            )
        except StepFailed as exc:
            return failed(exc.code, exc.message)
        except ProviderError as exc:
            if exc.retryable:
                return self.retry(task, exc.code, exc.message, exc.retry_after)
            return failed(exc.code, exc.message)
        except LeaseLost:
            raise
        except Exception:
            # A bug or an unexpected library error: retried with backoff (bounded by max_attempts
            # and the deadline) so one bad step neither wedges the task nor loops forever.
            log.exception("step failed unexpectedly", task_id=task.id, step=task.step.value)
            return self.retry(task, "internal_error", "An internal error occurred while processing the task.")

    # Retry policy -----------------------------------------------------------------------------

    def retry(
        self,
        task: Task,
        code: str,
        message: str,
        retry_after: float | None = None,
        *,
        step: Step | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Try again later with backoff, unless attempts or the deadline have run out."""
        worker = self.deps.settings.worker
        attempts = task.attempts + 1
        if attempts > worker.max_attempts:
            return failed(code, f"{message} (gave up after {task.attempts} retries)")
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
                "last_error": {"code": code, "message": message},
                **(changes or {}),
            },
            message=f"retry {attempts} in {delay:.1f}s: {code}: {message}",
        )

    # ingest -----------------------------------------------------------------------------------

    async def ingest(self, task: Task) -> Outcome:
        """Fetch every input image through the SSRF-safe fetcher, check it, keep a normalised PNG."""
        inputs = []
        for index, ref in enumerate(task.images):
            param = f"images[{index}]"
            data = await self._image_bytes(ref, param)
            try:
                image = await anyio.to_thread.run_sync(
                    functools.partial(decode_image, data, max_pixels=self.deps.settings.max_image_pixels)
                )
            except ImageRejected as exc:
                raise StepFailed("invalid_image", f"{param}: {exc}") from exc
            png = await anyio.to_thread.run_sync(_png_bytes, image)
            key = input_key(task.id, index)
            await self.deps.blobs.put_bytes(png, key)
            source = ref if not ref.lower().startswith("data:") else task.input["images"][index]
            inputs.append(
                {"index": index, "source": source, "key": key, "width": image.width, "height": image.height}
            )
        return Outcome(Step.SUBMIT, changes={"inputs": inputs, "progress": 1})

    async def _image_bytes(self, ref: str, param: str) -> bytes:
        """The raw bytes of one input image: an upload in our storage, a data: URI, or a URL."""
        try:
            if ref.startswith(BLOB_REF_PREFIX):
                return await self.deps.blobs.read_bytes(ref[len(BLOB_REF_PREFIX) :])
            fetched = await self.deps.fetcher.fetch_bytes(
                ref, max_bytes=self.deps.settings.fetch_max_image_bytes, kind=IMAGE
            )
            return fetched.data
        except BlobNotFound as exc:
            raise StepFailed("invalid_image", f"{param}: the uploaded image is no longer stored.") from exc
        except UrlRejected as exc:
            raise StepFailed("image_fetch_failed", f"{param}: {exc.reason}") from exc
        except ContentRejected as exc:
            raise StepFailed("invalid_image", f"{param}: {exc.reason}") from exc
        except FetchFailed as exc:
            raise StepFailed("image_fetch_failed", f"{param}: {exc.reason}") from exc

    # submit -----------------------------------------------------------------------------------

    async def submit(self, claim: Claim, ctx: StepContext, on_new_claim: Callable[[Claim], None]) -> Outcome:
        """Choose a channel, save the choice, then hand the task over (built-in engines render here)."""
        task = claim.task
        channel = self._choose_channel(task)
        if channel is None:
            return failed("no_channel", "No configured channel can serve this task any more.")
        if task.status is TaskStatus.PENDING or task.channel != channel:
            # Saved BEFORE anything goes to the channel: a crash from here on resumes with it.
            advanced = await self.deps.store.advance(
                claim,
                now=self.deps.clock.now_ms(),
                status=TaskStatus.PROCESSING,
                changes={"channel": channel},
                message=f"channel {channel}",
            )
            if advanced is None:
                raise LeaseLost()
            on_new_claim(advanced)
            task = advanced.task
        request = self._submit_request(task)
        job = await self.deps.providers(channel).submit(request, ctx)
        return Outcome(
            Step.POLL,
            delay_seconds=job.poll_after or 0.0,
            changes={"upstream_id": job.upstream_id, "upstream_state": dict(job.memo)},
            message=f"submitted to {channel}",
        )

    def _choose_channel(self, task: Task) -> str | None:
        route = RouteRequest(
            task.model, task.seconds, f"{task.width}x{task.height}", len(task.images), task.watermark_mode
        )
        candidates = [c.name for c in self.deps.catalog.candidates(route)]
        if task.channel in candidates:
            return task.channel  # resuming after a crash or a retry: stay where we were
        return candidates[0] if candidates else None

    def _submit_request(self, task: Task) -> SubmitRequest:
        images = tuple(
            InputImage(i["index"], i["source"], i["key"], i["width"], i["height"])
            for i in (task.inputs or [])
        )
        extras: dict[str, Any] = {k: task.input[k] for k in RELAY_EXTRAS if k in task.input}
        return SubmitRequest(
            task_id=task.id,
            idempotency_key=f"{task.id}-{task.attempts}",
            model=task.model,
            prompt=task.prompt,
            width=task.width,
            height=task.height,
            seconds=task.seconds,
            watermark_mode=task.watermark_mode,
            private=task.private,
            images=images,
            extras=extras,
        )

    # poll -------------------------------------------------------------------------------------

    async def poll(self, task: Task, ctx: StepContext) -> Outcome:
        assert task.channel is not None and task.upstream_id is not None
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        status = await self.deps.providers(task.channel).poll(job, ctx)
        if status.state in (UpstreamState.QUEUED, UpstreamState.RUNNING):
            pace = status.poll_after or self.deps.settings.worker.default_poll_seconds
            progress = max(task.progress, min(99, status.progress or 0))
            return Outcome(Step.POLL, delay_seconds=pace, changes={"progress": progress}, record_event=False)
        if status.state is UpstreamState.FAILED:
            code = status.error_code or "upstream_failed"
            message = status.error_message or "The channel reported a failure without a reason."
            if status.retryable:
                return self.retry(task, code, message, step=Step.SUBMIT, changes={"upstream_id": None})
            return failed(code, message)
        if status.watermarked and task.watermark_mode is WatermarkMode.REQUIRE_CLEAN:
            # watermark: false means a marked video is never delivered: ask the channel again.
            return self.retry(
                task,
                "watermark_removal_failed",
                "The channel could only produce a watermarked video.",
                step=Step.SUBMIT,
                changes={"upstream_id": None},
            )
        memo = {**(task.upstream_state or {}), "result": _status_memo(status)}
        return Outcome(Step.FETCH, changes={"upstream_state": memo, "watermarked": bool(status.watermarked)})

    # fetch ------------------------------------------------------------------------------------

    async def fetch(self, task: Task, ctx: StepContext) -> Outcome:
        """Make the result ours: copy it into storage, check it is a real video, make previews."""
        assert task.channel is not None and task.upstream_id is not None
        status = _status_from_memo((task.upstream_state or {}).get("result", {}))
        stored = status.stored or await self._copy_result(task, status, ctx)
        return Outcome(
            Step.DONE,
            status=TaskStatus.COMPLETED,
            changes={"progress": 100, **asdict(stored)},  # StoredMedia's fields are the task's columns
        )

    async def _copy_result(self, task: Task, status: UpstreamStatus, ctx: StepContext) -> StoredMedia:
        assert task.channel is not None and task.upstream_id is not None
        dest = ctx.work_dir / "video.mp4"
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        await self.deps.providers(task.channel).fetch(job, status, dest, ctx)
        try:
            await anyio.to_thread.run_sync(probe_mp4, dest)
        except NotAVideo as exc:
            raise ProviderError(
                "invalid_upstream_video", f"The channel's result is not a playable MP4: {exc}", retryable=True
            ) from exc
        thumbnail, spritesheet = await anyio.to_thread.run_sync(previews_from_mp4, dest)
        video = await self.deps.blobs.put_file(dest, media_key(task.id, "video"), move=True)
        stored = StoredMedia.of(task.id, video)
        assert stored.thumbnail_key and stored.spritesheet_key
        await self.deps.blobs.put_bytes(thumbnail, stored.thumbnail_key)
        await self.deps.blobs.put_bytes(spritesheet, stored.spritesheet_key)
        return stored

    # notify -----------------------------------------------------------------------------------

    async def notify(self, task: Task) -> Outcome:
        """POST the signed end-of-task event to the callback_url; retried with backoff, then given up."""
        assert task.callback_url is not None
        settings = self.deps.settings
        body = json.dumps(webhook_event(self.deps, task), separators=(",", ":")).encode()
        now_s = self.deps.clock.now_ms() // 1000
        headers = {signing.SIGNATURE_HEADER: signing.webhook_signature(settings.signing_key(), now_s, body)}
        try:
            status = await self.deps.fetcher.post_json(task.callback_url, body, headers=headers, timeout=10)
            problem = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except FetchFailed as exc:
            problem = exc.reason
        if problem is None:
            return Outcome(Step.DONE, message="callback delivered")
        attempts = task.callback_attempts + 1
        if attempts >= CALLBACK_ATTEMPTS:
            return Outcome(
                Step.DONE, changes={"callback_attempts": attempts}, message=f"callback given up: {problem}"
            )
        delay = backoff_seconds(
            attempts, base=settings.worker.retry_base_seconds, cap=settings.worker.retry_max_seconds,
            retry_after=None, rng=self.deps.rng,
        )  # fmt: skip
        return Outcome(
            Step.NOTIFY,
            delay_seconds=delay,
            changes={"callback_attempts": attempts},
            message=f"callback attempt {attempts} failed: {problem}",
        )


class LeaseLost(Exception):
    """This worker no longer owns the task; drop whatever the step was doing."""


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # speed over size: it is an intermediate
    return buf.getvalue()


def _status_memo(status: UpstreamStatus) -> dict[str, Any]:
    memo: dict[str, Any] = {"result_url": status.result_url, "watermarked": status.watermarked}
    if status.stored is not None:
        memo["stored"] = asdict(status.stored)
    return memo


def _status_from_memo(memo: Mapping[str, Any]) -> UpstreamStatus:
    stored = memo.get("stored")
    return UpstreamStatus(
        UpstreamState.SUCCEEDED,
        result_url=memo.get("result_url"),
        watermarked=memo.get("watermarked"),
        stored=StoredMedia(**stored) if stored else None,
    )
