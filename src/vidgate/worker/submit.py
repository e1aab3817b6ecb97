"""The submit step: choose a channel, save the intent, hand the task over, and settle what happened.

The money rules live here, in one place (docs/channels.md "Paid submits"):
- A paid create is recorded in the attempts table (`store/attempts.py`) before it is sent, and settled
  after; whoever learns a job's id records it there, lease or no lease.
- A provider answers a create in one of three ways: a job (accepted), `UpstreamOutcomeUnknown` (the
  request went out and nothing proves whether a job was made), or another `ProviderError`: a refusal
  that proves no job was made. Failover to another channel happens only after such a refusal.
- An unknown outcome is resolved without paying twice (`_resolve_unknown_submit`): the job an attempt
  already recorded is kept; a channel that dedupes gets the same submission again; a channel that can
  list its jobs is asked over a window; otherwise nothing is sent and the task fails at its deadline.
- The creates that may have made a job are counted from the attempts table, across every worker, and
  capped (`VIDGATE_WORKER__MAX_PAID_CREATES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from vidgate.domain.circuit import CircuitState
from vidgate.domain.requests import PASSTHROUGH_FIELDS, RELAY_EXTRAS, route_request
from vidgate.domain.routing import ChannelProfile, RouteRequest
from vidgate.domain.tasks import Step, Task, TaskError, TaskStatus
from vidgate.providers.base import (
    InputImage,
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
)
from vidgate.store.attempts import Attempt, AttemptOutcome, accepted_job, paid_creates
from vidgate.store.task_rows import Claim, ClaimLost
from vidgate.worker.deps import Retries, StepDeps
from vidgate.worker.outcomes import Outcome, StepRun, accepted, deadline_reached, failed, remembered_error

AUTH_REFUSED = "upstream_auth_failed"
_LOOKUP_INTERVAL_S = (0.2, 10.0)  # how often to look for a job of unknown outcome: window/10, clamped
# A submit still `pending` this long past its request timeout has no worker waiting for it any more.
_PENDING_GRACE_S = 5.0


class Submitter:
    def __init__(self, deps: StepDeps, retries: Retries) -> None:
        self.deps = deps
        self.retries = retries
        self._channels = {c.name: c for c in deps.settings.channels}

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
        refused_us = _auth_refused(task)
        # On the database's clock, as the circuits' cooldowns were written (admission checks again).
        plan = self.deps.catalog.plan(
            _route(task),
            now_ms=self.deps.clock.now_ms(),
            health=health,
            rng=self.deps.rng,
            exclude=refused_us,
        )
        if not plan.channels and not plan.held_back:
            if refused_us:
                return _credentials_refused(refused_us)
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
        """Try `channels` in order until one accepts. Only a refusal (any ProviderError but
        `UpstreamOutcomeUnknown`) proves that no job was made, so only a refusal moves on to the next
        channel; a refusal of our credentials rules the channel out for this task. `replaying_unknown`:
        this is the same submission again after an unknown outcome, so a retryable refusal proves
        nothing about the first one and the intent stays saved."""
        refused: dict[str, str] = dict(held_back)
        failures: list[tuple[str, ProviderError]] = []
        auth_refused = _auth_refused(claim.task)
        # A task's first submission, never admitted to a channel, has no attempts (they are recorded only
        # at admission, which sets the channel for good): a burst's submits skip the read.
        first = claim.task.channel is None and claim.task.submissions == 0
        attempts = [] if first else await self.deps.attempts.for_task(claim.task.id)
        cap = self.deps.settings.worker.max_paid_creates
        for channel in channels:
            paid = not channel.traits.builtin_engine
            new_create = _is_new_create(attempts, channel.name, claim.task.submit_key)
            if paid and new_create and paid_creates(attempts) >= cap:
                return _cap_reached(claim.task, paid_creates(attempts))
            health = (await self.deps.health.snapshot()).get(channel.name)
            admitted = await self.deps.store.admit_to_send(
                claim,
                channel=channel.name,
                max_concurrent=channel.max_concurrent,
                now=self.deps.clock.now_ms(),
                # A built-in engine works right away; an upstream task is processing once accepted.
                status=TaskStatus.PROCESSING if channel.traits.builtin_engine else None,
                known_healthy=health is None or health.state is CircuitState.CLOSED,
                charge=_charge_on(channel, claim.task),
                # A paid create's attempt is committed with the intent, before it is sent: every job
                # the task may cause is in the table.
                attempt_key=claim.task.submit_key if paid else None,
            )
            if isinstance(admitted, str):
                refused[channel.name] = admitted
                continue
            run.new_claim(admitted.claim)
            claim, attempt = admitted.claim, admitted.attempt
            request = self.request_for(claim.task)
            try:
                with run.submit_in_flight(paid=paid):
                    job = await self.deps.providers(channel.name).submit(request, ctx)
                    # Still shielded from a client's cancel until the job's id is recorded: a cancel
                    # noticed in between stopped the step, and the job was found only by a lookup.
                    held_elsewhere = attempt is not None and not await self.deps.attempts.settle(
                        attempt, AttemptOutcome.ACCEPTED, upstream_id=job.upstream_id, memo=job.memo
                    )
            except UpstreamOutcomeUnknown as exc:
                await self._settle(attempt, AttemptOutcome.UNKNOWN, error=exc)
                await self.deps.health.record_failure(channel.name, exc.message)
                return self._after_unknown_outcome(claim.task, channel, exc)
            except ProviderError as exc:  # a refusal: no job was made
                await self._settle(attempt, AttemptOutcome.REFUSED, error=exc)
                if exc.retryable:
                    await self.deps.health.record_failure(channel.name, exc.message)
                if replaying_unknown and exc.retryable and exc.code != AUTH_REFUSED:
                    return self.retries.retry(claim.task, exc.code, exc.message, exc.retry_after)
                claim = await self._clear_intent(claim, run)
                if exc.code == AUTH_REFUSED:
                    auth_refused.append(channel.name)
                elif not exc.retryable:
                    return failed(exc.code, exc.message)
                failures.append((channel.name, exc))
                if pinned:
                    break
                continue
            if held_elsewhere:
                return failed(
                    "upstream_job_conflict",
                    f"{channel.name} answered with job {job.upstream_id}, which another task already holds.",
                )
            await self.deps.health.record_success(channel.name)
            return accepted(self._paced(job) if paid else job, f"submitted to {channel.name}")
        task = claim.task
        # The channels that refused our credentials stay ruled out for this task's later tries.
        remembered = (
            {"upstream_state": {**(task.upstream_state or {}), "auth_refused": auth_refused}}
            if auth_refused
            else {}
        )
        only_credentials = failures and all(exc.code == AUTH_REFUSED for _, exc in failures)
        if only_credentials and not refused and (pinned or not self._others_remain(task, auth_refused)):
            return _credentials_refused(auth_refused)
        if failures:
            summary = "; ".join(f"{name}: {exc.message}" for name, exc in failures)
            last = failures[-1][1]
            retry_after = min((e.retry_after for _, e in failures if e.retry_after is not None), default=None)
            return self.retries.retry(
                task,
                last.code,
                f"No channel accepted the task ({summary}).",
                retry_after,
                changes=remembered,
            )
        return self._wait_for_a_channel(task, refused, changes=remembered)

    def _paced(self, job: UpstreamJob) -> UpstreamJob:
        """An upstream job whose create named no pace is first polled at the worker's default pace, not
        at once: no upstream has a video the moment it accepts the job, and in a burst of creates the
        poll after each cost the worker a fifth of its CPU, taken from the submits still waiting
        (docs/performance.md). A built-in engine's job (its render is the submit) is polled at once."""
        if job.poll_after is not None:
            return job
        return replace(job, poll_after=self.deps.settings.worker.default_poll_seconds)

    def _others_remain(self, task: Task, ruled_out: list[str]) -> bool:
        return bool(self.deps.catalog.candidates(_route(task), exclude=ruled_out))

    async def _settle(
        self, attempt: Attempt | None, outcome: AttemptOutcome, *, error: ProviderError
    ) -> None:
        if attempt is not None:
            await self.deps.attempts.settle(attempt, outcome, error=(error.code, error.message))

    def _wait_for_a_channel(
        self, task: Task, refused: Mapping[str, str], *, changes: Mapping[str, Any] | None = None
    ) -> Outcome:
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
            changes={"last_error": remembered, **(changes or {})},
            message=f"waiting for a channel: {reasons}",
            # one event when the waiting starts, not one per look
            record_event=task.last_error is None or task.last_error.code != remembered["code"],
        )

    async def _clear_intent(self, claim: Claim, run: StepRun) -> Claim:
        """Nothing is held upstream for this submission (a refusal, or a lookup that found nothing)."""
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
        a 5xx, a dropped connection, or a worker that died mid-call. Sending it again could make and bill
        a second job, so, in this order:
        - a job an attempt of this submission recorded (a worker whose lease ran out, or whose commit
          failed, after the upstream accepted) is kept;
        - a channel that honours idempotency keys (or a built-in engine) gets the same submission again,
          with the same key: it answers with the job it already has, or makes the only one;
        - a submission that was never recorded as sent (the worker stopped before it) is sent;
        - a channel that can list its jobs is asked, over its lookup window (`_look_for_the_job`);
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
        attempts = await self.deps.attempts.for_task(task.id)
        if (found := accepted_job(attempts, task.submit_key)) is not None:
            return _kept(found)
        if channel.safe_to_resubmit:
            return await self._submit_along(
                claim, ctx, run, [channel], held_back={}, pinned=True, replaying_unknown=True
            )
        mine = [a for a in attempts if a.channel == channel.name and a.idempotency_key == task.submit_key]
        # Past the job-holding attempts kept above, what may have made a job is still open (pending or
        # unknown): the latest such attempt is the one to resolve.
        open_attempts = [a for a in mine if a.outcome.may_have_made_a_job]
        if not open_attempts:
            cleared = await self._clear_intent(claim, run)  # never sent, or proven not made
            return await self.submit(cleared, ctx, run)
        latest = open_attempts[-1]
        if latest.outcome is AttemptOutcome.PENDING:
            # Another worker (whose lease this claim took over) may still be waiting for the answer:
            # give it the create's timeout to record what it learns before deciding anything.
            settled_by = latest.sent_at + round(
                (self._channels[channel.name].request_timeout_seconds + _PENDING_GRACE_S) * 1000
            )
            now = await self.deps.store.now_ms()
            if now < settled_by:
                return self._look_again(
                    task, (settled_by - now) / 1000, "a submit of this task is still waiting for its answer"
                )
        if channel.traits.can_find_jobs:
            return await self._look_for_the_job(claim, ctx, run, channel, latest)
        return self._wait_for_the_deadline(task, channel)

    def _wait_for_the_deadline(self, task: Task, channel: ChannelProfile) -> Outcome:
        message = (
            f"A submit to {channel.name} may have been accepted (no proof either way came back); this "
            "channel ignores idempotency keys and cannot be asked, so it is not sent again to avoid "
            "paying twice."
        )
        wait_s = max(0.0, (task.deadline_at - self.deps.clock.now_ms()) / 1000)
        return Outcome(
            Step.SUBMIT,
            delay_seconds=wait_s,
            changes={"last_error": {"code": "upstream_outcome_unknown", "message": message}},
            message=message,
        )

    async def _look_for_the_job(
        self, claim: Claim, ctx: StepContext, run: StepRun, channel: ChannelProfile, attempt: Attempt
    ) -> Outcome:
        """Ask the channel for the job `attempt` may have made. Lookups start once the create's own
        request timeout has passed (a slow create is still being made until then) and go on over the
        channel's lookup window, all on the database's clock. Only jobs made since the attempt was sent
        and owned by no other task are adopted; a window without one means no job was made, and the
        submission is sent again."""
        task = claim.task
        settings = self._channels[channel.name]
        now = await self.deps.store.now_ms()
        start = attempt.sent_at + round(settings.request_timeout_seconds * 1000)
        end = attempt.sent_at + round(settings.lookup_window * 1000)
        interval = min(max(settings.lookup_window / 10, _LOOKUP_INTERVAL_S[0]), _LOOKUP_INTERVAL_S[1])
        if now < start:
            return self._look_again(task, (start - now) / 1000, f"looking for the job on {channel.name} soon")
        try:
            job = await self.adopt_a_found_job(task, attempt)
        except ProviderError as exc:
            if not exc.retryable:  # e.g. a list route that answers 400: this channel cannot be asked
                return self._wait_for_the_deadline(task, channel)
            return self._look_again(task, interval, f"looking for the job failed: {exc.code}: {exc.message}")
        if job is not None:
            return accepted(job, f"found the job on {channel.name} after an unknown outcome")
        if (found := accepted_job(await self.deps.attempts.for_task(task.id), task.submit_key)) is not None:
            return _kept(found)  # another worker settled it meanwhile
        if now < end:
            return self._look_again(task, interval, f"no job of this task on {channel.name} yet")
        if not await self.deps.attempts.settle(
            attempt,
            AttemptOutcome.NOT_FOUND,
            error=("not_found", f"no job appeared within {settings.lookup_window:g} s of the create"),
        ):
            return self._look_again(task, interval, "the attempt was settled meanwhile")
        cleared = await self._clear_intent(claim, run)
        return await self.submit(cleared, ctx, run)

    async def adopt_a_found_job(self, task: Task, attempt: Attempt) -> UpstreamJob | None:
        """Ask `attempt`'s channel for the jobs it may have made (same parameters, made since it was
        sent) and adopt the first no other task owns: recorded on the attempt, the database refusing a
        second owner. None when there is none to adopt. Raises the channel's ProviderError."""
        request = replace(self.request_for(task), sent_at_ms=attempt.sent_at)
        candidates = await self.deps.providers(attempt.channel).find_jobs(request)
        owned = await self.deps.attempts.owned(attempt.channel, [job.upstream_id for job in candidates])
        for job in candidates:
            if job.upstream_id not in owned and await self.deps.attempts.settle(
                attempt, AttemptOutcome.ADOPTED, upstream_id=job.upstream_id, memo=job.memo
            ):
                return job
        return None

    def _look_again(self, task: Task, delay: float, message: str) -> Outcome:
        error = TaskError("upstream_outcome_unknown", f"The create's outcome is not known yet: {message}.")
        if self.deps.clock.now_ms() + delay * 1000 >= task.deadline_at:
            return deadline_reached(task, last_error=error)
        return Outcome(
            Step.SUBMIT,
            delay_seconds=delay,
            changes={"last_error": {"code": error.code, "message": error.message}},
            message=message,
            record_event=task.last_error is None or task.last_error.code != error.code,
        )

    def request_for(self, task: Task) -> SubmitRequest:
        """The current submission of `task`, as its channel receives it."""
        images = tuple(
            InputImage(i["index"], i["source"], i["key"], i["width"], i["height"])
            for i in (task.inputs or [])
        )
        extras: dict[str, Any] = {k: task.input[k] for k in RELAY_EXTRAS if k in task.input}
        passthrough: dict[str, Any] = {k: task.input[k] for k in PASSTHROUGH_FIELDS if k in task.input}
        last_frame = images[-1] if images and task.input.get("last_frame") is not None else None
        if last_frame is not None:
            images = images[:-1]
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
            last_frame=last_frame,
            generate_audio=task.input.get("generate_audio"),
            enhance_prompt=task.input.get("enhance_prompt"),
        )


def _charge_on(channel: ChannelProfile, task: Task) -> int | None:
    """What the task will cost on `channel` if it completes: its price there, never more than was held
    at create (a price raised since, or a pricier channel added, is the operator's loss, not the
    client's). None: nothing was held, nothing is charged."""
    if not task.hold_amount:
        return None
    return min(task.hold_amount, channel.price(_route(task)))


def _route(task: Task) -> RouteRequest:
    return route_request(
        task.model, task.seconds, f"{task.width}x{task.height}", task.images, task.watermark_mode, task.input
    )


def _is_new_create(attempts: Sequence[Attempt], channel: str, key: str) -> bool:
    """Whether sending `key` to `channel` could make a job none of the task's attempts already counts
    (a replay of a key that may have made one is not a new paid create)."""
    return not any(
        a.channel == channel and a.idempotency_key == key and a.outcome.may_have_made_a_job for a in attempts
    )


def _cap_reached(task: Task, made: int) -> Outcome:
    last = task.last_error
    code, reason = (last.code, last.message) if last else ("paid_creates_exhausted", "No video yet.")
    return failed(
        code,
        f"{reason} Not submitted again: {made} upstream create(s) of this task may already have made a "
        "paid job, the most VIDGATE_WORKER__MAX_PAID_CREATES allows.",
    )


def _auth_refused(task: Task) -> list[str]:
    """The channels that refused our credentials for this task: ruled out for it."""
    return list((task.upstream_state or {}).get("auth_refused", []))


def _credentials_refused(channels: Sequence[str]) -> Outcome:
    names = ", ".join(channels)
    return failed(
        AUTH_REFUSED,
        f"The channel(s) {names} refused the gateway's credentials (HTTP 401/403) and no other channel "
        "can serve this task: the operator must fix the channel's api_key.",
    )


def _kept(found: Attempt) -> Outcome:
    assert found.upstream_id is not None
    return accepted(
        UpstreamJob(found.upstream_id, memo=found.memo or {}),
        f"kept job {found.upstream_id} that attempt {found.number} on {found.channel} recorded",
    )
