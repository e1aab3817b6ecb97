"""The submit step's money decisions (worker/submit.py), on a real SQLite store with fake upstreams
(tests/unit/worker/world.py): which channel gets a task, when a refusal moves it on, how a create of
unknown outcome is resolved without paying twice, and the cap on paid creates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.helpers import record_attempt, scripted_channel
from tests.unit.worker.conftest import QUICK, WorldFactory, channels
from tests.unit.worker.world import FakeRun, World
from vidgate.domain.tasks import Step, TaskStatus
from vidgate.providers.base import ProviderError, UpstreamJob, UpstreamOutcomeUnknown
from vidgate.store.attempts import AttemptOutcome
from vidgate.store.tables import upstream_attempts
from vidgate.store.task_rows import ClaimLost
from vidgate.worker.outcomes import Outcome

pytestmark = pytest.mark.anyio


def refusal(code: str = "upstream_unavailable", *, retryable: bool = True) -> ProviderError:
    return ProviderError(code, f"{code}: refused", retryable=retryable)


AUTH = refusal("upstream_auth_failed")
LOST = UpstreamOutcomeUnknown("create: no answer in time after the request was sent")


async def outcomes_of(world: World, task_id: str) -> list[tuple[str, AttemptOutcome, str | None]]:
    return [(a.channel, a.outcome, a.upstream_id) for a in await world.runtime.attempts.for_task(task_id)]


# where a task goes -----------------------------------------------------------------------------


async def test_the_first_channel_that_accepts_gets_the_task_and_its_attempt_records_the_job(
    world: World,
) -> None:
    world.upstreams["a"].will("submit", UpstreamJob("job-1", poll_after=2.0, memo={"k": "v"}))
    task = await world.new_task()
    claim = await world.claim(task.id)
    run = FakeRun()
    outcome = await world.run(claim, run)
    assert outcome.next_step is Step.POLL and outcome.status is TaskStatus.PROCESSING
    assert outcome.delay_seconds == 2.0
    assert outcome.changes == {"upstream_id": "job-1", "upstream_state": {"k": "v"}, "submit_intent_at": None}
    [request] = world.upstreams["a"].args("submit")
    assert request.idempotency_key == f"{task.id}-0" and request.prompt == task.prompt
    assert run.paid_in_flight == [True]  # a client's cancel does not cut a paid create short
    [admitted] = run.claims  # the intent was saved before the create went out
    assert admitted.task.channel == "a" and admitted.task.submit_intent_at is not None
    assert await outcomes_of(world, task.id) == [("a", AttemptOutcome.ACCEPTED, "job-1")]
    assert world.upstreams["b"].calls == []


async def test_a_job_whose_create_named_no_pace_is_first_polled_at_the_default_pace(world: World) -> None:
    world.upstreams["a"].will("submit", UpstreamJob("job-1"))  # no poll_after: the upstream says nothing
    task = await world.new_task()
    outcome = await world.run(await world.claim(task.id), FakeRun())
    assert outcome.next_step is Step.POLL
    assert outcome.delay_seconds == world.deps.settings.worker.default_poll_seconds == 7


async def test_an_admission_records_the_attempt_with_the_intent_and_only_for_the_claims_holder(
    world: World,
) -> None:
    task = await world.new_task()
    claim = await world.claim(task.id)
    admitted = await world.runtime.tasks.admit_to_send(
        claim, channel="a", max_concurrent=None, now=world.clock.now_ms(), known_healthy=True,
        attempt_key=task.submit_key,
    )  # fmt: skip
    assert not isinstance(admitted, str) and admitted.attempt is not None
    assert admitted.claim.task.submit_intent_at is not None
    assert await outcomes_of(world, task.id) == [("a", AttemptOutcome.PENDING, None)]
    with pytest.raises(ClaimLost):  # a stale claim (its version is gone) records no attempt at all
        await world.runtime.tasks.admit_to_send(
            claim, channel="a", max_concurrent=1, now=world.clock.now_ms(), attempt_key=task.submit_key
        )
    assert len(await outcomes_of(world, task.id)) == 1


class ShieldedRun(FakeRun):
    """A FakeRun that knows whether the step is inside `submit_in_flight` (shielded from a cancel)."""

    shielded = False

    @contextmanager
    def submit_in_flight(self, *, paid: bool) -> Iterator[None]:
        self.shielded = paid
        try:
            yield
        finally:
            self.shielded = False


async def test_an_accepted_jobs_id_is_recorded_while_the_submit_is_still_shielded_from_a_cancel(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's cancel noticed between the create's answer and the attempt's settlement stopped the
    step there: the job's id was lost (found again only by a lookup, or never)."""
    world.upstreams["a"].will("submit", UpstreamJob("job-1", poll_after=2.0))
    task = await world.new_task()
    run = ShieldedRun()
    shielded_at_settle: list[bool] = []
    settle = world.deps.attempts.settle

    async def recording(*args: Any, **kwargs: Any) -> bool:
        shielded_at_settle.append(run.shielded)
        return await settle(*args, **kwargs)

    monkeypatch.setattr(world.deps.attempts, "settle", recording)
    outcome = await world.run(await world.claim(task.id), run)
    assert outcome.changes["upstream_id"] == "job-1"
    assert shielded_at_settle == [True]


async def test_a_proven_refusal_fails_over_to_the_next_channel(world: World) -> None:
    world.upstreams["a"].will("submit", refusal())
    world.upstreams["b"].will("submit", UpstreamJob("job-b"))
    task = await world.new_task()
    outcome, saved = await world.step(task.id)
    assert outcome.changes["upstream_id"] == "job-b" and outcome.message == "submitted to b"
    assert saved.channel == "b" and saved.upstream_id == "job-b" and saved.submit_intent_at is None
    assert await outcomes_of(world, task.id) == [
        ("a", AttemptOutcome.REFUSED, None),
        ("b", AttemptOutcome.ACCEPTED, "job-b"),
    ]
    health = await world.runtime.health.snapshot(fresh=True)
    assert health["a"].failures == 1 and health["b"].failures == 0


async def test_a_final_refusal_fails_the_task_without_trying_another_channel(world: World) -> None:
    world.upstreams["a"].will("submit", refusal("invalid_prompt", retryable=False))
    task = await world.new_task()
    outcome, saved = await world.step(task.id)
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "invalid_prompt"
    assert world.upstreams["b"].calls == []
    assert saved.submit_intent_at is None  # a refusal proves no job: nothing is held upstream


async def test_when_every_channel_refuses_retryably_the_task_tries_again_later(world: World) -> None:
    world.upstreams["a"].will("submit", refusal())
    world.upstreams["b"].will("submit", ProviderError("upstream_rate_limited", "slow down", retryable=True))
    task = await world.new_task()
    outcome, saved = await world.step(task.id)
    assert outcome.next_step is Step.SUBMIT and outcome.status is None
    assert (
        outcome.changes["attempts"] == 1 and outcome.changes["last_error"]["code"] == "upstream_rate_limited"
    )
    assert "a: upstream_unavailable: refused" in outcome.changes["last_error"]["message"]
    assert saved.submit_intent_at is None and saved.upstream_id is None


async def test_a_job_id_another_task_already_holds_is_not_taken(world: World) -> None:
    other = await world.new_task()
    held = await record_attempt(world.runtime, other.id, "a", other.submit_key)
    assert await world.runtime.attempts.settle(held, AttemptOutcome.ACCEPTED, upstream_id="job-1")
    world.upstreams["a"].will("submit", UpstreamJob("job-1"))
    task = await world.new_task()
    outcome, _ = await world.step(task.id)
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "upstream_job_conflict"


async def test_when_every_channels_circuit_is_open_the_task_waits_without_sending_anything(
    make_world: WorldFactory,
) -> None:
    async with make_world(worker=QUICK.model_copy(update={"circuit_failures": 1})) as world:
        await world.runtime.health.record_failure("a", "down")
        await world.runtime.health.record_failure("b", "down")
        task = await world.new_task()
        outcome, _ = await world.step(task.id)
        assert outcome.next_step is Step.SUBMIT and outcome.status is None
        assert outcome.changes["last_error"]["code"] == "channels_busy"
        assert "attempts" not in outcome.changes  # nothing was tried
        assert await world.runtime.attempts.for_task(task.id) == []
        assert world.upstreams["a"].calls == world.upstreams["b"].calls == []


# credentials -----------------------------------------------------------------------------------


async def test_a_channel_that_refused_our_credentials_is_ruled_out_for_the_tasks_later_tries(
    world: World,
) -> None:
    world.upstreams["a"].will("submit", AUTH)
    world.upstreams["b"].will("submit", refusal(), UpstreamJob("job-b"))
    task = await world.new_task()
    first, saved = await world.step(task.id)
    assert first.next_step is Step.SUBMIT and saved.upstream_state == {"auth_refused": ["a"]}
    second, saved = await world.step(task.id)
    assert second.changes["upstream_id"] == "job-b"
    assert world.upstreams["a"].ops() == ["submit"]  # never asked again
    assert world.upstreams["b"].ops() == ["submit", "submit"]


async def test_when_every_channel_refuses_our_credentials_the_task_fails_naming_them(world: World) -> None:
    world.upstreams["a"].will("submit", AUTH)
    world.upstreams["b"].will("submit", AUTH)
    task = await world.new_task()
    outcome, _ = await world.step(task.id)
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "upstream_auth_failed"
    assert "a, b refused the gateway's credentials" in outcome.changes["error_message"]


# unknown outcomes ------------------------------------------------------------------------------


async def test_an_unknown_outcome_never_fails_over_and_keeps_the_intent(world: World) -> None:
    world.upstreams["a"].will("submit", LOST)
    task = await world.new_task()
    outcome, saved = await world.step(task.id)
    assert outcome.next_step is Step.SUBMIT and outcome.status is None
    assert outcome.changes["last_error"]["code"] == "upstream_outcome_unknown"
    assert world.upstreams["b"].calls == []  # b could make a second paid job
    assert saved.channel == "a" and saved.submit_intent_at is not None and saved.upstream_id is None
    assert await outcomes_of(world, task.id) == [("a", AttemptOutcome.UNKNOWN, None)]


async def test_after_an_unknown_outcome_the_found_job_no_other_task_owns_is_adopted(world: World) -> None:
    other = await world.new_task()
    held = await record_attempt(world.runtime, other.id, "a", other.submit_key)
    assert await world.runtime.attempts.settle(held, AttemptOutcome.ACCEPTED, upstream_id="job-twin")
    upstream = world.upstreams["a"]
    upstream.will("submit", LOST).will("find_jobs", [UpstreamJob("job-twin"), UpstreamJob("job-mine")])
    task = await world.new_task()
    await world.step(task.id)  # the create's answer is lost
    wait, _ = await world.step(task.id)
    # A create may still be being made until its own timeout has passed: no lookup before then.
    assert wait.next_step is Step.SUBMIT and upstream.ops() == ["submit"]
    assert wait.delay_seconds == pytest.approx(60, abs=1)
    found, saved = await world.step(task.id)
    assert upstream.ops() == ["submit", "find_jobs"]  # asked, not sent again
    assert found.changes["upstream_id"] == "job-mine" and saved.upstream_id == "job-mine"
    assert await outcomes_of(world, task.id) == [("a", AttemptOutcome.ADOPTED, "job-mine")]
    [asked] = upstream.args("find_jobs")
    assert asked.idempotency_key == f"{task.id}-0" and asked.sent_at_ms > 0


async def test_a_lookup_window_without_the_job_proves_none_was_made_and_the_task_is_sent_again(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    quick_lookups = {"request_timeout_seconds": 1.0, "lookup_window_seconds": 2.0}
    async with make_world(channels=channels(tmp_path, **quick_lookups)) as world:
        upstream = world.upstreams["a"]
        upstream.will("submit", LOST, UpstreamJob("job-2")).always("find_jobs", [])
        task = await world.new_task()
        outcome: Outcome | None = None
        for _ in range(30):
            outcome, _ = await world.step(task.id)
            if "upstream_id" in outcome.changes:
                break
        assert outcome is not None and outcome.changes["upstream_id"] == "job-2"
        assert upstream.ops()[0] == "submit" and upstream.ops()[-1] == "submit"
        assert upstream.ops().count("find_jobs") >= 3  # looked for over the whole window first
        keys = {request.idempotency_key for request in upstream.args("submit")}
        assert keys == {f"{task.id}-0"}  # the same submission: its first create made nothing
        assert await outcomes_of(world, task.id) == [
            ("a", AttemptOutcome.NOT_FOUND, None),
            ("a", AttemptOutcome.ACCEPTED, "job-2"),
        ]


async def test_a_channel_that_honours_idempotency_keys_gets_the_same_submission_again(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    async with make_world(channels=channels(tmp_path, honours_idempotency_key=True)) as world:
        upstream = world.upstreams["a"]
        upstream.will("submit", LOST, UpstreamJob("job-1"))
        task = await world.new_task()
        await world.step(task.id)
        outcome, _ = await world.step(task.id)
        assert outcome.changes["upstream_id"] == "job-1" and upstream.ops() == ["submit", "submit"]
        assert [r.idempotency_key for r in upstream.args("submit")] == [f"{task.id}-0"] * 2


async def test_a_channel_that_can_neither_dedupe_nor_be_asked_is_not_sent_the_task_again(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    blind = scripted_channel(tmp_path / "a", name="a", findable=False)
    async with make_world(channels=[blind]) as world:
        world.upstreams["a"].will("submit", LOST)
        task = await world.new_task(deadline_s=600)
        await world.step(task.id)
        world.clock.advance(120)  # past the create's own timeout
        outcome, saved = await world.step(task.id)
        assert outcome.next_step is Step.SUBMIT and outcome.status is None
        assert outcome.changes["last_error"]["code"] == "upstream_outcome_unknown"
        assert outcome.delay_seconds == pytest.approx((saved.deadline_at - world.clock.now_ms()) / 1000)
        assert world.upstreams["a"].ops() == ["submit"]


async def test_a_job_an_attempt_already_recorded_is_kept_not_made_again(world: World) -> None:
    """A worker whose lease ran out recorded the job on the attempt; the task row never got it."""
    world.upstreams["a"].will("submit", LOST)
    task = await world.new_task()
    await world.step(task.id)
    [attempt] = await world.runtime.attempts.for_task(task.id)
    async with world.runtime.engine.begin() as conn:  # what a late answer to the lost create records
        await conn.execute(
            update(upstream_attempts)
            .where(upstream_attempts.c.id == attempt.id)
            .values(outcome="accepted", upstream_id="job-late")
        )
    outcome, saved = await world.step(task.id)
    assert saved.upstream_id == "job-late" and outcome.message is not None and "kept job" in outcome.message
    assert world.upstreams["a"].ops() == ["submit"]


# the cap on paid creates -----------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "sent"), [(1, False), (2, True)])
async def test_a_new_submission_is_not_sent_once_the_paid_creates_reach_the_cap(
    make_world: WorldFactory, cap: int, sent: bool
) -> None:
    async with make_world(worker=QUICK.model_copy(update={"max_paid_creates": cap})) as world:
        task = await world.new_task()
        made = await record_attempt(world.runtime, task.id, "a", task.submit_key)
        assert await world.runtime.attempts.settle(made, AttemptOutcome.ACCEPTED, upstream_id="job-0")
        claim = await world.claim(task.id)  # that job failed retryably: a deliberate new submission
        resubmit = world.steps.retries.resubmit(claim.task, "server_error", "the job failed")
        await world.commit(claim, resubmit)
        world.upstreams["a"].will("submit", UpstreamJob("job-1"))
        outcome, _ = await world.step(task.id)
    if sent:
        assert outcome.changes["upstream_id"] == "job-1"
        [request] = world.upstreams["a"].args("submit")
        assert request.idempotency_key == f"{task.id}-1"  # a new submission: a new key
    else:
        assert world.upstreams["a"].calls == []
        assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "server_error"
        assert (
            "1 upstream create(s) of this task may already have made a paid job"
            in (outcome.changes["error_message"])
        )
