"""The steps of a task: ingest -> submit -> poll (repeated) -> fetch, then cancel and notify when due.

Each step function takes the claim and returns an `Outcome` (what to record, what comes next,
when); it never writes the task itself except through `TaskStore.advance`/`admit` for a save that
must precede a side effect (a submit's intent: see `worker.submit`). The runner commits the outcome
fenced by the lease.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

import anyio
import structlog
from PIL import Image

from vidgate import signing
from vidgate.domain.lifecycle import step_after_cancel, step_after_end
from vidgate.domain.requests import BLOB_REF_PREFIX
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus, WatermarkMode, delivered_watermark
from vidgate.media.images import ImageRejected, decode_image
from vidgate.media.probe import NotAVideo, differences
from vidgate.media.sniff import sniff_image
from vidgate.net.fetch import IMAGE, ContentRejected, FetchFailed
from vidgate.net.policy import UrlRejected
from vidgate.providers.base import (
    FetchedResult,
    ProviderError,
    ResultExpired,
    StepContext,
    StoredMedia,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.store.blobs import BlobNotFound, input_key, media_key
from vidgate.store.keys import webhook_secret_generation
from vidgate.store.task_rows import Claim, ClaimLost
from vidgate.views import webhook_event
from vidgate.worker.deps import Retries, StepDeps
from vidgate.worker.media_pool import Inspected, MediaPool, processes_for
from vidgate.worker.outcomes import (
    Outcome,
    StepFailed,
    StepRun,
    backoff_seconds,
    deadline_reached,
    failed,
    remembered_error,
)
from vidgate.worker.submit import Submitter

log = structlog.get_logger("vidgate.worker")
# Webhook deliveries per task before giving up (spread over a few minutes by the backoff).
CALLBACK_ATTEMPTS = 6
# Tries to stop a job upstream before the cancel step gives up (and says so in an event).
CANCEL_ATTEMPTS = 6


class Steps:
    def __init__(self, deps: StepDeps) -> None:
        self.deps = deps
        self.retries = Retries(deps)
        self.submitter = Submitter(deps, self.retries)
        worker = deps.settings.worker
        self.media = MediaPool(processes_for(worker.media_processes, worker.media_concurrency))

    async def run(self, claim: Claim, ctx: StepContext, run: StepRun) -> Outcome:
        """Run the claimed task's current step and decide what follows; errors become outcomes."""
        task = claim.task
        try:
            if task.step is Step.INGEST:
                return await self.ingest(task)
            if task.step is Step.SUBMIT:
                return await self.submitter.submit(claim, ctx, run)
            if task.step is Step.POLL:
                return await self.poll(task, ctx)
            if task.step is Step.FETCH:
                return await self.fetch(task, ctx)
            if task.step is Step.CANCEL:
                return await self.cancel(task)
            if task.step is Step.NOTIFY:
                return await self.notify(task)
            return failed(
                "internal_error", f"A {task.status.value} task has nothing to do at step {task.step}."
            )
        except StepFailed as exc:
            return failed(exc.code, exc.message)
        except ProviderError as exc:
            if exc.retryable:
                return self.retries.retry(task, exc.code, exc.message, exc.retry_after)
            return failed(exc.code, exc.message, then=step_after_end(task, TaskStatus.FAILED))
        except ClaimLost:
            raise
        except Exception:
            # A bug or an unexpected library error: retried with backoff (bounded by max_attempts
            # and the deadline) so one bad step neither wedges the task nor loops forever.
            log.exception("step failed unexpectedly", task_id=task.id, step=task.step.value)
            return self.retries.retry(
                task, "internal_error", "An internal error occurred while processing the task."
            )

    # ingest -----------------------------------------------------------------------------------

    async def ingest(self, task: Task) -> Outcome:
        """Fetch every input image through the SSRF-safe fetcher, check it, keep a normalised PNG."""
        inputs = []
        last_frame_at = len(task.images) - 1 if task.input.get("last_frame") is not None else None
        for index, ref in enumerate(task.images):
            param = "last_frame" if index == last_frame_at else f"images[{index}]"
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
            echoed = task.input["last_frame"] if index == last_frame_at else task.input["images"][index]
            source = ref if not ref.lower().startswith("data:") else echoed
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

    # poll -------------------------------------------------------------------------------------

    async def poll(self, task: Task, ctx: StepContext) -> Outcome:
        assert task.channel is not None and task.upstream_id is not None
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        channel = self.deps.catalog.by_name(task.channel)
        if channel is not None and not channel.traits.builtin_engine:
            self.media.warm()  # an upstream's result will be copied: have the media processes ready
        try:
            status = await self.deps.providers(task.channel).poll(job, ctx)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            await self.deps.health.record_poll(task.channel, ok=False)
            return self._poll_again_after_error(task, exc)
        await self.deps.health.record_poll(task.channel, ok=True)
        memo = dict(task.upstream_state or {})
        if status.state in (UpstreamState.QUEUED, UpstreamState.RUNNING):
            pace = status.poll_after or self.deps.settings.worker.default_poll_seconds
            progress = max(task.progress, min(99, status.progress or 0))
            changes: dict[str, Any] = {"progress": progress}
            if memo.pop("poll_errors", None) is not None:
                changes.update(upstream_state=memo, last_error=None)
            return Outcome(Step.POLL, delay_seconds=pace, changes=changes, record_event=False)
        if status.state is UpstreamState.FAILED:
            code = status.error_code or "upstream_failed"
            message = status.error_message or "The channel reported a failure without a reason."
            if status.retryable and code == "watermark_removal_failed":
                # A failed clean output is submitted again until the deadline (spec 3).
                return self.retries.resubmit(task, code, message, limited=False)
            if status.retryable and task.submissions < self.deps.settings.worker.resubmit_failed_jobs:
                # Each resubmission is a new paid job: only as many as the operator allows (default none).
                return self.retries.resubmit(task, code, message)
            return failed(code, message)
        declared = channel.watermark_free if channel else "optional"
        watermarked = delivered_watermark(declared, status.watermarked)
        if watermarked is not False and task.watermark_mode is WatermarkMode.REQUIRE_CLEAN:
            # watermark: false means a marked video (or one nobody vouches for) is never delivered.
            why = "a watermarked video" if watermarked else "a video it could not say is free of watermarks"
            return self.retries.resubmit(
                task, "watermark_removal_failed", f"The channel could only produce {why}.", limited=False
            )
        memo.pop("poll_errors", None)
        memo["result"] = _status_memo(status)
        return Outcome(Step.FETCH, changes={"upstream_state": memo, "watermarked": watermarked})

    def _poll_again_after_error(self, task: Task, exc: ProviderError) -> Outcome:
        """The channel did not answer this poll. Its job is paid for and may be fine, so polls go on
        with backoff until the deadline (they do not use up the task's attempts)."""
        memo = dict(task.upstream_state or {})
        errors = int(memo.get("poll_errors", 0)) + 1
        memo["poll_errors"] = errors
        worker = self.deps.settings.worker
        delay = backoff_seconds(
            errors - 1,
            base=worker.retry_base_seconds,
            cap=worker.retry_max_seconds,
            retry_after=exc.retry_after,
            rng=self.deps.rng,
        )
        if self.deps.clock.now_ms() + delay * 1000 >= task.deadline_at:
            return deadline_reached(task, last_error=TaskError(exc.code, exc.message))
        return Outcome(
            Step.POLL,
            delay_seconds=delay,
            changes={"upstream_state": memo, "last_error": remembered_error(task, exc.code, exc.message)},
            message=f"poll failed ({errors} in a row), again in {delay:.1f}s: {exc.code}: {exc.message}",
        )

    # fetch ------------------------------------------------------------------------------------

    async def fetch(self, task: Task, ctx: StepContext) -> Outcome:
        """Make the result ours: copy it into storage, check it is a real video, make previews.

        A copied result's real size and duration go to `detail.video`; when they are not what the task
        asked for, a warning goes to `detail.warnings`, or, on a channel with `strict_result`, the task
        fails with `result_mismatch`. (A built-in engine's stored result is made at the asked size.)"""
        assert task.channel is not None and task.upstream_id is not None
        status = _status_from_memo((task.upstream_state or {}).get("result", {}))
        memo: dict[str, Any] | None = None
        try:
            if status.stored is not None:
                stored = status.stored
            else:
                result, inspected = await self._copy_result(task, status, ctx)
                info = inspected.info
                memo = dict(task.upstream_state or {})
                memo["video"] = info.facts()
                found = differences(info, width=task.width, height=task.height, seconds=task.seconds)
                if found and self._strict_result(task.channel):
                    return _result_mismatch(task, memo, found)
                if found:
                    warning = f"the channel's video {' and '.join(found)}"
                    memo["warnings"] = [*(w for w in memo.get("warnings", []) if w != warning), warning]
                stored = await self._store_result(task, result, inspected)
        except ResultExpired as exc:
            return self.retries.retry(
                task, exc.code, exc.message, step=Step.POLL
            )  # a fresh link comes with a poll
        changes: dict[str, Any] = {"progress": 100, "last_error": None, **asdict(stored)}  # columns
        if memo is not None:
            changes["upstream_state"] = memo
        return Outcome(Step.DONE, status=TaskStatus.COMPLETED, changes=changes)

    def _strict_result(self, channel: str) -> bool:
        settings = next((c for c in self.deps.settings.channels if c.name == channel), None)
        return settings is not None and settings.strict_result

    async def _copy_result(
        self, task: Task, status: UpstreamStatus, ctx: StepContext
    ) -> tuple[FetchedResult, Inspected]:
        """The channel's result in the step's scratch directory, proven an MP4 that decodes, what it
        really is, and its previews."""
        assert task.channel is not None and task.upstream_id is not None
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        result = await self.deps.providers(task.channel).fetch(job, status, ctx.work_dir, ctx)
        try:
            return result, await self.media.inspect(result.video)
        except NotAVideo as exc:
            raise ProviderError(
                "invalid_upstream_video", f"The channel's result is not a playable MP4: {exc}", retryable=True
            ) from exc

    async def _store_result(self, task: Task, result: FetchedResult, inspected: Inspected) -> StoredMedia:
        """The video, its thumbnail and its spritesheet into storage."""
        thumbnail, spritesheet = inspected.thumbnail, inspected.spritesheet
        if result.thumbnail is not None:
            upstream_thumbnail = await anyio.Path(result.thumbnail).read_bytes()
            if sniff_image(upstream_thumbnail[:64]) == "image/webp":
                thumbnail = upstream_thumbnail  # the channel's own, when it is what we serve (WebP)
        video = await self.deps.blobs.put_file(result.video, media_key(task.id, "video"), move=True)
        stored = StoredMedia.of(task.id, video)
        assert stored.thumbnail_key and stored.spritesheet_key
        await self.deps.blobs.put_bytes(thumbnail, stored.thumbnail_key)
        await self.deps.blobs.put_bytes(spritesheet, stored.spritesheet_key)
        return stored

    # cancel -----------------------------------------------------------------------------------

    async def cancel(self, task: Task) -> Outcome:
        """The task ended (cancelled, deleted, failed, timed out) while its channel may still hold its
        job: tell the channel to stop it (or delete it), so nothing keeps running and billing."""
        then = step_after_cancel(task)
        channel = self.deps.catalog.by_name(task.channel or "")
        if channel is None:
            return Outcome(
                then,
                changes={"submit_intent_at": None},
                message=f"channel {task.channel} is no longer configured; its job cannot be stopped",
            )
        if channel.traits.builtin_engine:
            # A render is killed with its step; nothing runs elsewhere.
            return Outcome(then, changes={"submit_intent_at": None}, record_event=False)
        if not channel.traits.can_cancel:
            left = "its copy stays upstream" if task.status is TaskStatus.COMPLETED else "it runs to its end"
            return Outcome(
                then,
                changes={"submit_intent_at": None},
                message=f"channel {channel.name} has no way to stop or delete a job: {left}",
            )
        provider = self.deps.providers(channel.name)
        try:
            jobs = await self._jobs_to_stop(task, channel.name, channel.traits.can_find_jobs)
            if not jobs:
                return Outcome(
                    then,
                    changes={"submit_intent_at": None},
                    message=f"no job of this task was found on {channel.name}; nothing to stop",
                )
            for job in jobs:  # cancels are idempotent: a retry after a failure asks again for all
                await provider.cancel(job)
        except ProviderError as exc:
            return self._cancel_again_later(task, then, exc)
        return Outcome(
            then,
            changes={"submit_intent_at": None},
            message=f"asked {channel.name} to stop job {', '.join(j.upstream_id for j in jobs)}",
        )

    async def _jobs_to_stop(self, task: Task, channel: str, can_find: bool) -> list[UpstreamJob]:
        """Every job of the task on `channel`: its current one and every one an attempt recorded (a
        worker that lost its lease may have recorded one the task row never got); for an attempt of
        unknown outcome, the job a lookup finds, adopted first so that no other task can claim it."""
        attempts = await self.deps.attempts.for_task(task.id)
        jobs = {a.upstream_id: a.memo or {} for a in attempts if a.channel == channel and a.upstream_id}
        if task.upstream_id:
            jobs[task.upstream_id] = task.upstream_state or {}
        open_attempts = [a for a in attempts if a.channel == channel and not a.outcome.settled]
        for attempt in open_attempts if can_find else ():
            if (found := await self.submitter.adopt_a_found_job(task, attempt)) is not None:
                jobs[found.upstream_id] = found.memo
        return [UpstreamJob(upstream_id, memo=memo) for upstream_id, memo in jobs.items()]

    def _cancel_again_later(self, task: Task, then: Step, exc: ProviderError) -> Outcome:
        memo = dict(task.upstream_state or {})
        tries = int(memo.get("cancel_attempts", 0)) + 1
        memo["cancel_attempts"] = tries
        if not exc.retryable or tries >= CANCEL_ATTEMPTS:
            return Outcome(
                then,
                changes={"upstream_state": memo},
                message=f"stopping the upstream job failed ({tries} tries), given up: {exc.message}",
            )
        worker = self.deps.settings.worker
        delay = backoff_seconds(
            tries,
            base=worker.retry_base_seconds,
            cap=worker.retry_max_seconds,
            retry_after=exc.retry_after,
            rng=self.deps.rng,
        )
        return Outcome(
            Step.CANCEL,
            delay_seconds=delay,
            changes={"upstream_state": memo},
            message=f"stopping the upstream job failed, again in {delay:.1f}s: {exc.message}",
        )

    # notify -----------------------------------------------------------------------------------

    async def notify(self, task: Task) -> Outcome:
        """POST the signed end-of-task event to the callback_url; retried with backoff, then given up.
        Signed with the webhook secret of the task's key as it is now (a rotation since the last
        attempt applies to this one), never with one secret for every key: see signing.py."""
        assert task.callback_url is not None
        settings = self.deps.settings
        body = json.dumps(webhook_event(self.deps, task), separators=(",", ":")).encode()
        now_s = self.deps.clock.now_ms() // 1000
        generation = await webhook_secret_generation(self.deps.store.engine, task.owner)
        secret = signing.key_webhook_secret(settings.signing_key(), task.owner, generation)
        headers = {signing.SIGNATURE_HEADER: signing.webhook_signature(secret, now_s, body)}
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
            attempts,
            base=settings.worker.retry_base_seconds,
            cap=settings.worker.retry_max_seconds,
            retry_after=None,
            rng=self.deps.rng,
        )
        return Outcome(
            Step.NOTIFY,
            delay_seconds=delay,
            changes={"callback_attempts": attempts},
            message=f"callback attempt {attempts} failed: {problem}",
        )


def _result_mismatch(task: Task, memo: dict[str, Any], found: list[str]) -> Outcome:
    """A channel with `strict_result` made a video other than the one asked for: the task fails (its
    `detail.video` still says what came), and the job's copy upstream is deleted like any failed one's."""
    what = " and ".join(found)
    message = f"The channel's video {what}; the channel's strict_result setting refuses such a result."
    failure = failed("result_mismatch", message, then=step_after_end(task, TaskStatus.FAILED))
    return replace(failure, changes={**failure.changes, "upstream_state": memo})


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
