"""The submit step: choose a channel, save the intent, hand the task over, and settle what happened.

The money rules live here: a submit's intent is saved before it is sent; a submit whose outcome is
unknown (the request went out, no answer came back) keeps the task on its channel and is only sent
again where that cannot create a second job (`_resolve_unknown_submit`); failover to another channel
happens only while no upstream can have accepted the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidgate.domain.circuit import CircuitState
from vidgate.domain.requests import PASSTHROUGH_FIELDS, RELAY_EXTRAS
from vidgate.domain.routing import ChannelProfile, RouteRequest
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamOutcomeUnknown,
)
from vidgate.store.task_rows import Claim, ClaimLost
from vidgate.worker.deps import Retries, StepDeps
from vidgate.worker.outcomes import Outcome, StepRun, accepted, deadline_reached, failed, remembered_error


class Submitter:
    def __init__(self, deps: StepDeps, retries: Retries) -> None:
        self.deps = deps
        self.retries = retries

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
                charge=_charge_on(channel, claim.task),
            )
            if isinstance(admitted, str):
                refused[channel.name] = admitted
                continue
            run.new_claim(admitted)
            claim = admitted
            request = self.request_for(claim.task)
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
                    return self.retries.retry(claim.task, exc.code, exc.message, exc.retry_after)
                claim = await self._clear_intent(claim, run)
                if not exc.retryable:
                    return failed(exc.code, exc.message)
                failures.append((channel.name, exc))
                if pinned:
                    break
                continue
            await self.deps.health.record_success(channel.name)
            return accepted(job, f"submitted to {channel.name}")
        task = claim.task
        if failures:
            summary = "; ".join(f"{name}: {exc.message}" for name, exc in failures)
            last = failures[-1][1]
            retry_after = min((e.retry_after for _, e in failures if e.retry_after is not None), default=None)
            return self.retries.retry(
                task, last.code, f"No channel accepted the task ({summary}).", retry_after
            )
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
        return self.retries.retry(
            task, exc.code, exc.message, exc.retry_after, limited=channel.safe_to_resubmit
        )

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
                job = await self.deps.providers(channel.name).find_job(self.request_for(task))
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                return self.retries.retry(
                    task, exc.code, f"Looking for the job failed: {exc.message}", limited=False
                )
            if job is not None:
                return accepted(job, f"found the job on {channel.name} after an unknown outcome")
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

    def request_for(self, task: Task) -> SubmitRequest:
        """The current submission of `task`, as its channel receives it."""
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


def _charge_on(channel: ChannelProfile, task: Task) -> int | None:
    """What the task will cost on `channel` if it completes: its price there, never more than was held
    at create (a price raised since, or a pricier channel added, is the operator's loss, not the
    client's). None: nothing was held, nothing is charged."""
    if not task.hold_amount:
        return None
    return min(task.hold_amount, channel.price(_route(task)))


def _route(task: Task) -> RouteRequest:
    return RouteRequest(
        task.model, task.seconds, f"{task.width}x{task.height}", len(task.images), task.watermark_mode
    )
