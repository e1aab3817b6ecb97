"""The steps of a task: ingest -> submit -> poll (repeated) -> fetch, then cancel and notify when due.

Each step function takes the claim and returns an `Outcome` (what to record, what comes next,
when); it never writes the task itself except through `TaskStore.advance`/`admit` for a save that
must precede a side effect (a submit's intent). The runner commits the outcome fenced by the lease.

The money rules live in `submit`: a submit's intent is saved before it is sent; a submit whose
outcome is unknown (the request went out, no answer came back) keeps the task on its channel and is
only sent again where that cannot create a second job (see `_resolve_unknown_submit`); failover to
another channel happens only while no upstream can have accepted the job.
"""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import anyio
import structlog
from PIL import Image

from vidgate import signing
from vidgate.clock import Clock
from vidgate.config import Settings
from vidgate.domain.circuit import CircuitState
from vidgate.domain.requests import BLOB_REF_PREFIX, PASSTHROUGH_FIELDS, RELAY_EXTRAS
from vidgate.domain.routing import Catalog, ChannelProfile, RouteRequest
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus, WatermarkMode, delivered_watermark
from vidgate.media.images import ImageRejected, decode_image
from vidgate.media.previews import previews_from_mp4
from vidgate.media.probe import NotAVideo, probe_mp4
from vidgate.media.sniff import sniff_image
from vidgate.net.fetch import IMAGE, ContentRejected, FetchFailed, SafeFetcher
from vidgate.net.policy import UrlRejected
from vidgate.providers.base import (
    InputImage,
    Provider,
    ProviderError,
    ResultExpired,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.store.blobs import BlobNotFound, BlobStore, input_key, media_key
from vidgate.store.channels import ChannelHealthStore
from vidgate.store.tasks import Claim, ClaimLost, TaskStore, after_cancel_step
from vidgate.views import webhook_event

log = structlog.get_logger("vidgate.worker")
# Webhook deliveries per task before giving up (spread over a few minutes by the backoff).
CALLBACK_ATTEMPTS = 6
# Tries to stop a job upstream before the cancel step gives up (and says so in an event).
CANCEL_ATTEMPTS = 6


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


def _after_failure(task: Task) -> Step:
    """A task that fails while its channel may still hold a job goes to the cancel step first."""
    return Step.CANCEL if task.may_hold_upstream_job else Step.DONE


def deadline_reached(task: Task, last_error: TaskError | None = None) -> Outcome:
    """The task ran out of time: `timeout`, or the reason that kept it from finishing when there is a
    precise one (`watermark_removal_failed`, spec 3; `upstream_outcome_unknown`)."""
    last = last_error or task.last_error
    if task.last_error and task.last_error.code == "watermark_removal_failed":
        last = task.last_error  # the reason it went round, whatever stopped the last round (remembered_error)
    then = _after_failure(task)
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


@dataclass
class StepDeps:
    settings: Settings
    store: TaskStore
    health: ChannelHealthStore
    blobs: BlobStore
    catalog: Catalog
    providers: Callable[[str], Provider]
    fetcher: SafeFetcher
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)


class Steps:
    def __init__(self, deps: StepDeps) -> None:
        self.deps = deps

    async def run(self, claim: Claim, ctx: StepContext, run: StepRun) -> Outcome:
        """Run the claimed task's current step and decide what follows; errors become outcomes."""
        task = claim.task
        try:
            if task.step is Step.INGEST:
                return await self.ingest(task)
            if task.step is Step.SUBMIT:
                return await self.submit(claim, ctx, run)
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
                return self.retry(task, exc.code, exc.message, exc.retry_after)
            return failed(exc.code, exc.message, then=_after_failure(task))
        except ClaimLost:
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
        limited: bool = True,
    ) -> Outcome:
        """Try again later with backoff, unless attempts (when `limited`) or the deadline have run out."""
        worker = self.deps.settings.worker
        attempts = task.attempts + 1
        if limited and attempts > worker.max_attempts:
            return failed(
                code, f"{message} (gave up after {task.attempts} retries)", then=_after_failure(task)
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

    async def submit(self, claim: Claim, ctx: StepContext, run: StepRun) -> Outcome:
        """Choose a channel, save the intent, then hand the task over (built-in engines render here)."""
        task = claim.task
        if task.submit_intent_at is not None and task.upstream_id is None and task.channel:
            return await self._resolve_unknown_submit(claim, ctx, run)
        if task.remix_upstream_id is not None:
            channel = self.deps.catalog.by_name(task.channel or "")
            if channel is None or not channel.enabled:
                return failed(
                    "remix_unsupported", f"The channel {task.channel} of the remixed video is gone."
                )
            return await self._submit_along(claim, ctx, run, [channel], held_back={}, pinned=True)
        health = await self.deps.health.snapshot()
        # The plan is advisory (admission re-checks under the database's clock), so this process's
        # clock is good enough for it and saves a round trip per submit.
        plan = self.deps.catalog.plan(
            _route(task), now_ms=self.deps.clock.now_ms(), health=health, rng=self.deps.rng
        )
        if not plan.channels and not plan.held_back:
            return failed("no_channel", "No configured channel can serve this task any more.")
        return await self._submit_along(claim, ctx, run, list(plan.channels), held_back=plan.held_back)

    async def _submit_along(
        self,
        claim: Claim,
        ctx: StepContext,
        run: StepRun,
        channels: list[ChannelProfile],
        *,
        held_back: Mapping[str, str],
        pinned: bool = False,
        replaying_unknown: bool = False,
    ) -> Outcome:
        """Try `channels` in order until one accepts; fail over only on refusals that prove the job
        was not made (connect errors, 429, 5xx, refused credentials). `replaying_unknown`: this is
        the same submission again after an unknown outcome, so a retryable refusal proves nothing about
        the first one and the intent stays saved."""
        refused: dict[str, str] = dict(held_back)
        failures: list[tuple[str, ProviderError]] = []
        for channel in channels:
            health = (await self.deps.health.snapshot()).get(channel.name)
            admitted = await self.deps.store.admit(
                claim,
                channel=channel.name,
                max_concurrent=channel.max_concurrent,
                now=self.deps.clock.now_ms(),
                # A built-in engine works right away; an upstream task is processing once accepted.
                status=TaskStatus.PROCESSING if channel.traits.builtin_engine else None,
                known_healthy=health is None or health.state is CircuitState.CLOSED,
            )
            if isinstance(admitted, str):
                refused[channel.name] = admitted
                continue
            run.new_claim(admitted)
            claim = admitted
            request = self._submit_request(claim.task)
            try:
                with run.submit_in_flight(paid=not channel.traits.builtin_engine):
                    job = await self.deps.providers(channel.name).submit(request, ctx)
            except UpstreamOutcomeUnknown as exc:
                await self.deps.health.record_failure(channel.name, exc.message)
                return self._after_unknown_outcome(claim.task, channel, exc)
            except ProviderError as exc:
                if exc.retryable:
                    await self.deps.health.record_failure(channel.name, exc.message)
                if replaying_unknown and exc.retryable:
                    return self.retry(claim.task, exc.code, exc.message, exc.retry_after)
                claim = await self._clear_intent(claim, run)
                if not exc.retryable:
                    return failed(exc.code, exc.message)
                failures.append((channel.name, exc))
                if pinned:
                    break
                continue
            await self.deps.health.record_success(channel.name)
            return _accepted(job, f"submitted to {channel.name}")
        task = claim.task
        if failures:
            summary = "; ".join(f"{name}: {exc.message}" for name, exc in failures)
            last = failures[-1][1]
            retry_after = min((e.retry_after for _, e in failures if e.retry_after is not None), default=None)
            return self.retry(task, last.code, f"No channel accepted the task ({summary}).", retry_after)
        return self._wait_for_a_channel(task, refused)

    def _wait_for_a_channel(self, task: Task, refused: Mapping[str, str]) -> Outcome:
        """Every suitable channel is full or its circuit is open: stay as we are and look again soon,
        until the deadline. Not an attempt: nothing was tried."""
        reasons = "; ".join(f"{name}: {why}" for name, why in refused.items())
        message = f"Every suitable channel is busy or down ({reasons})."
        settings = self.deps.settings.worker
        delay = settings.busy_retry_seconds * self.deps.rng.uniform(0.8, 1.2)
        if self.deps.clock.now_ms() + delay * 1000 >= task.deadline_at:
            return deadline_reached(task, last_error=TaskError("channels_busy", message))
        remembered = remembered_error(task, "channels_busy", message)
        return Outcome(
            Step.SUBMIT,
            delay_seconds=delay,
            changes={"last_error": remembered},
            message=f"waiting for a channel: {reasons}",
            # one event when the waiting starts, not one per look
            record_event=task.last_error is None or task.last_error.code != remembered["code"],
        )

    async def _clear_intent(self, claim: Claim, run: StepRun) -> Claim:
        """The channel answered that it did not take the job: nothing is held upstream any more."""
        cleared = await self.deps.store.advance(
            claim, now=self.deps.clock.now_ms(), changes={"submit_intent_at": None}
        )
        if cleared is None:
            raise ClaimLost()
        run.new_claim(cleared)
        return cleared

    def _after_unknown_outcome(self, task: Task, channel: ChannelProfile, exc: ProviderError) -> Outcome:
        """The submit went out and no answer came back. The task stays on this channel with its intent
        saved; the next run of this step decides how to learn the outcome."""
        return self.retry(task, exc.code, exc.message, exc.retry_after, limited=channel.safe_to_resubmit)

    async def _resolve_unknown_submit(self, claim: Claim, ctx: StepContext, run: StepRun) -> Outcome:
        """A submit of this task was sent (or was about to be) and its outcome is unknown: a read timeout,
        a dropped connection, or a worker that died mid-call. Sending it again could make and bill a
        second job, so:
        - a channel that honours idempotency keys (or a built-in engine) gets the same submission again,
          with the same key: it answers with the job it already has, or makes the only one;
        - a channel that can be asked is asked; a job found is adopted, none found means none was made;
        - otherwise nothing is sent: the task waits and fails at its deadline with
          `upstream_outcome_unknown`, rather than pay twice.
        """
        task = claim.task
        channel = self.deps.catalog.by_name(task.channel or "")
        if channel is None:
            return deadline_reached(
                task,
                TaskError("upstream_outcome_unknown", f"The channel {task.channel} is no longer configured."),
            )
        if channel.safe_to_resubmit:
            return await self._submit_along(
                claim, ctx, run, [channel], held_back={}, pinned=True, replaying_unknown=True
            )
        if channel.traits.can_find_jobs:
            try:
                job = await self.deps.providers(channel.name).find_job(self._submit_request(task))
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                return self.retry(task, exc.code, f"Looking for the job failed: {exc.message}", limited=False)
            if job is not None:
                return _accepted(job, f"found the job on {channel.name} after an unknown outcome")
            cleared = await self._clear_intent(claim, run)
            return await self.submit(cleared, ctx, run)
        message = (
            f"A submit to {channel.name} may have been accepted (no answer came back); this channel "
            "ignores idempotency keys and cannot be asked, so it is not sent again to avoid paying twice."
        )
        wait_s = max(0.0, (task.deadline_at - self.deps.clock.now_ms()) / 1000)
        return Outcome(
            Step.SUBMIT,
            delay_seconds=wait_s,
            changes={"last_error": {"code": "upstream_outcome_unknown", "message": message}},
            message=message,
        )

    def _submit_request(self, task: Task) -> SubmitRequest:
        images = tuple(
            InputImage(i["index"], i["source"], i["key"], i["width"], i["height"])
            for i in (task.inputs or [])
        )
        extras: dict[str, Any] = {k: task.input[k] for k in RELAY_EXTRAS if k in task.input}
        passthrough: dict[str, Any] = {k: task.input[k] for k in PASSTHROUGH_FIELDS if k in task.input}
        return SubmitRequest(
            task_id=task.id,
            idempotency_key=task.submit_key,
            model=task.model,
            prompt=task.prompt,
            width=task.width,
            height=task.height,
            seconds=task.seconds,
            watermark_mode=task.watermark_mode,
            private=task.private,
            images=images,
            extras=extras,
            passthrough=passthrough,
            remix_of_upstream_id=task.remix_upstream_id,
            sent_at_ms=task.submit_intent_at or self.deps.clock.now_ms(),
        )

    # poll -------------------------------------------------------------------------------------

    async def poll(self, task: Task, ctx: StepContext) -> Outcome:
        assert task.channel is not None and task.upstream_id is not None
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        try:
            status = await self.deps.providers(task.channel).poll(job, ctx)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            await self.deps.health.record_failure(task.channel, exc.message)
            return self._poll_again_after_error(task, exc)
        await self.deps.health.record_success(task.channel)
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
            if status.retryable:
                # A failed clean output is retried until the deadline (spec 3), anything else a few times.
                return self.resubmit(task, code, message, limited=code != "watermark_removal_failed")
            return failed(code, message)
        channel = self.deps.catalog.by_name(task.channel)
        declared = channel.watermark_free if channel else "optional"
        watermarked = delivered_watermark(declared, status.watermarked)
        if watermarked is not False and task.watermark_mode is WatermarkMode.REQUIRE_CLEAN:
            # watermark: false means a marked video (or one nobody vouches for) is never delivered.
            why = "a watermarked video" if watermarked else "a video it could not say is free of watermarks"
            return self.resubmit(
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
        """Make the result ours: copy it into storage, check it is a real video, make previews."""
        assert task.channel is not None and task.upstream_id is not None
        status = _status_from_memo((task.upstream_state or {}).get("result", {}))
        try:
            stored = status.stored or await self._copy_result(task, status, ctx)
        except ResultExpired as exc:
            return self.retry(task, exc.code, exc.message, step=Step.POLL)  # a fresh link comes with a poll
        return Outcome(
            Step.DONE,
            status=TaskStatus.COMPLETED,
            changes={
                "progress": 100,
                "last_error": None,
                **asdict(stored),
            },  # StoredMedia's fields are columns
        )

    async def _copy_result(self, task: Task, status: UpstreamStatus, ctx: StepContext) -> StoredMedia:
        assert task.channel is not None and task.upstream_id is not None
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {})
        result = await self.deps.providers(task.channel).fetch(job, status, ctx.work_dir, ctx)
        try:
            await anyio.to_thread.run_sync(probe_mp4, result.video)
        except NotAVideo as exc:
            raise ProviderError(
                "invalid_upstream_video", f"The channel's result is not a playable MP4: {exc}", retryable=True
            ) from exc
        thumbnail, spritesheet = await anyio.to_thread.run_sync(previews_from_mp4, result.video)
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
        then = after_cancel_step(task)
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
        job = UpstreamJob(task.upstream_id, memo=task.upstream_state or {}) if task.upstream_id else None
        try:
            if job is None and channel.traits.can_find_jobs:
                job = await provider.find_job(self._submit_request(task))
            if job is None:
                return Outcome(
                    then,
                    changes={"submit_intent_at": None},
                    message=f"no job of this task was found on {channel.name}; nothing to stop",
                )
            await provider.cancel(job)
        except ProviderError as exc:
            return self._cancel_again_later(task, then, exc)
        return Outcome(
            then,
            changes={"submit_intent_at": None},
            message=f"asked {channel.name} to stop job {job.upstream_id}",
        )

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


def remembered_error(task: Task, code: str, message: str) -> dict[str, str]:
    """The error to remember as the reason the task is still going round. A failed clean output stays
    it (whatever transient trouble comes after), so a `watermark: false` task that runs out of time
    fails with `watermark_removal_failed` as the contract says, not with the last hiccup."""
    kept = task.last_error
    if kept is not None and kept.code == "watermark_removal_failed":
        return {"code": kept.code, "message": kept.message}
    return {"code": code, "message": message}


def _accepted(job: UpstreamJob, message: str) -> Outcome:
    """The channel has the job: keep its id (the intent is resolved) and start polling it."""
    return Outcome(
        Step.POLL,
        status=TaskStatus.PROCESSING,
        delay_seconds=job.poll_after or 0.0,
        changes={"upstream_id": job.upstream_id, "upstream_state": dict(job.memo), "submit_intent_at": None},
        message=message,
    )


def _route(task: Task) -> RouteRequest:
    return RouteRequest(
        task.model, task.seconds, f"{task.width}x{task.height}", len(task.images), task.watermark_mode
    )


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
