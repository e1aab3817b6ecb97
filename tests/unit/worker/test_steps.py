"""The worker's steps (worker/steps.py), one call at a time: what each decides for what the upstream
answers, on a real SQLite store with fake upstreams (tests/unit/worker/world.py). No gateway, no runner."""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import record_attempt
from tests.unit.worker.conftest import QUICK, WorldFactory
from tests.unit.worker.world import SPEC, FakeFetcher, World
from vidgate import signing
from vidgate.config import WorkerSettings
from vidgate.domain.tasks import Step, Task, TaskStatus, WatermarkMode
from vidgate.net.fetch import FetchFailed
from vidgate.providers.base import (
    FetchedResult,
    ProviderError,
    ResultExpired,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.store.attempts import AttemptOutcome
from vidgate.testing.clips import make_clip
from vidgate.worker.steps import CALLBACK_ATTEMPTS, CANCEL_ATTEMPTS

pytestmark = pytest.mark.anyio
IMAGE_URL = "https://img.test/fox.jpg"
RESULT_URL = "https://cdn.test/job-1.mp4"


def jpeg(width: int = 40, height: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 20)).save(buf, format="JPEG")
    return buf.getvalue()


async def polling(world: World, spec: Any = SPEC, **changes: Any) -> Task:
    """A task whose job `job-1` runs on channel `a` (as the submit step leaves it)."""
    task = await world.new_task(spec)
    job = {"step": Step.POLL, "status": TaskStatus.PROCESSING, "channel": "a", "upstream_id": "job-1"}
    return replace(task, **{**job, **changes})


# ingest ---------------------------------------------------------------------------------------


async def test_ingest_keeps_each_image_as_a_png_and_moves_on_to_submit(world: World) -> None:
    world.deps.fetcher = FakeFetcher({IMAGE_URL: jpeg(40, 30)})  # type: ignore[assignment]
    task = await world.new_task(replace(SPEC, images=(IMAGE_URL,)))
    assert task.step is Step.INGEST
    outcome = await world.run(await world.claim(task.id))
    assert outcome.next_step is Step.SUBMIT and outcome.status is None
    [kept] = outcome.changes["inputs"]
    assert kept == {"index": 0, "source": IMAGE_URL, "key": kept["key"], "width": 40, "height": 30}
    stored = await world.runtime.blobs.read_bytes(kept["key"])
    assert stored.startswith(b"\x89PNG") and Image.open(io.BytesIO(stored)).size == (40, 30)


async def test_ingest_reads_a_data_uri_without_any_network(world: World) -> None:
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg(24, 16)).decode()
    task = await world.new_task(replace(SPEC, images=(uri,)))
    outcome = await world.run(await world.claim(task.id))  # the runtime's real SSRF-safe fetcher
    assert outcome.next_step is Step.SUBMIT
    [kept] = outcome.changes["inputs"]
    assert (kept["width"], kept["height"]) == (24, 16)


async def test_ingest_of_bytes_that_are_no_image_fails_the_task_naming_the_image(world: World) -> None:
    world.deps.fetcher = FakeFetcher({IMAGE_URL: b"<html>not an image</html>"})  # type: ignore[assignment]
    task = await world.new_task(replace(SPEC, images=(IMAGE_URL,)))
    outcome = await world.run(await world.claim(task.id))
    assert outcome.status is TaskStatus.FAILED and outcome.next_step is Step.DONE
    assert outcome.changes["error_code"] == "invalid_image"
    assert outcome.changes["error_message"].startswith("images[0]: ")


async def test_ingest_of_an_image_its_host_will_not_serve_fails_with_image_fetch_failed(world: World) -> None:
    world.deps.fetcher = FakeFetcher({})  # type: ignore[assignment]
    task = await world.new_task(replace(SPEC, images=(IMAGE_URL,)))
    outcome = await world.run(await world.claim(task.id))
    assert outcome.status is TaskStatus.FAILED
    assert outcome.changes["error_code"] == "image_fetch_failed"


# poll -----------------------------------------------------------------------------------------


async def test_a_running_job_is_polled_again_at_the_pace_it_asks_for_without_an_event(world: World) -> None:
    world.upstreams["a"].will("poll", UpstreamStatus(UpstreamState.RUNNING, progress=40, poll_after=3.0))
    outcome = await world.run_as(await polling(world))
    assert outcome.next_step is Step.POLL and outcome.status is None
    assert outcome.delay_seconds == 3.0 and outcome.is_routine_repoll
    assert outcome.changes == {"progress": 40}
    [job] = world.upstreams["a"].args("poll")
    assert job.upstream_id == "job-1"


async def test_a_running_job_that_names_no_pace_is_polled_at_the_default_pace(world: World) -> None:
    world.upstreams["a"].will("poll", UpstreamStatus(UpstreamState.QUEUED))
    outcome = await world.run_as(await polling(world, progress=12))
    assert outcome.delay_seconds == world.deps.settings.worker.default_poll_seconds == 7
    assert outcome.changes == {"progress": 12}  # progress never goes back


async def test_polling_an_upstreams_job_starts_the_media_processes_its_result_will_need(
    make_world: WorldFactory,
) -> None:
    async with make_world(worker=QUICK.model_copy(update={"media_processes": 2})) as world:
        assert world.steps.media.warming == []
        world.upstreams["a"].will("poll", UpstreamStatus(UpstreamState.RUNNING))
        await world.run_as(await polling(world))
        started = world.steps.media.warming  # one call per process, each answered by a pool process
        assert len(started) == 2
        assert os.getpid() not in {call.result(timeout=120) for call in started}


async def test_a_finished_job_goes_to_fetch_with_its_result_link(world: World) -> None:
    world.upstreams["a"].will(
        "poll", UpstreamStatus(UpstreamState.SUCCEEDED, result_url=RESULT_URL, watermarked=False)
    )
    outcome = await world.run_as(await polling(world))
    assert outcome.next_step is Step.FETCH and outcome.status is None
    assert outcome.changes["upstream_state"]["result"]["result_url"] == RESULT_URL
    assert outcome.changes["watermarked"] is False


async def test_a_job_that_failed_for_good_fails_the_task_with_the_upstreams_code(world: World) -> None:
    world.upstreams["a"].will(
        "poll", UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message="no foxes")
    )
    outcome = await world.run_as(await polling(world))
    assert outcome.status is TaskStatus.FAILED
    assert outcome.changes == {"error_code": "content_policy", "error_message": "no foxes"}


async def test_a_job_that_failed_retryably_is_not_paid_for_again_unless_the_operator_allows_it(
    world: World,
) -> None:
    world.upstreams["a"].will(
        "poll", UpstreamStatus(UpstreamState.FAILED, error_code="server_error", retryable=True)
    )
    outcome = await world.run_as(await polling(world))
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "server_error"


async def test_a_job_that_failed_retryably_is_resubmitted_as_a_new_submission_when_allowed(
    make_world: WorldFactory,
) -> None:
    async with make_world(worker=WorkerSettings(resubmit_failed_jobs=1, retry_base_seconds=0.5)) as world:
        world.upstreams["a"].will(
            "poll", UpstreamStatus(UpstreamState.FAILED, error_code="server_error", retryable=True)
        )
        outcome = await world.run_as(await polling(world))
    assert outcome.next_step is Step.SUBMIT and outcome.status is None
    assert outcome.changes["upstream_id"] is None and outcome.changes["submissions"] == 1
    assert outcome.changes["last_error"]["code"] == "server_error"


async def test_a_watermarked_result_of_a_clean_only_task_is_made_again(world: World) -> None:
    world.upstreams["a"].will(
        "poll", UpstreamStatus(UpstreamState.SUCCEEDED, result_url=RESULT_URL, watermarked=True)
    )
    clean = replace(SPEC, watermark_mode=WatermarkMode.REQUIRE_CLEAN)
    outcome = await world.run_as(await polling(world, clean))
    assert outcome.next_step is Step.SUBMIT and outcome.changes["upstream_id"] is None
    assert outcome.changes["last_error"]["code"] == "watermark_removal_failed"


async def test_a_poll_the_channel_did_not_answer_is_retried_and_counted_for_the_channel(world: World) -> None:
    world.upstreams["a"].will(
        "poll", ProviderError("upstream_timeout", "poll: no answer in time", retryable=True)
    )
    task = await polling(world)
    outcome = await world.run_as(task)
    assert outcome.next_step is Step.POLL and outcome.status is None and outcome.record_event
    assert outcome.changes["upstream_state"] == {"poll_errors": 1}
    assert outcome.changes["last_error"]["code"] == "upstream_timeout"
    assert 0 < outcome.delay_seconds <= 2  # backoff within retry_max_seconds
    assert "attempts" not in outcome.changes  # a paid job's polls do not use up the task's attempts
    health = await world.runtime.health.snapshot(fresh=True)
    assert health["a"].poll_failures == 1 and health["a"].failures == 0  # the circuit does not move


async def test_a_poll_answered_again_clears_the_count_of_failed_polls(world: World) -> None:
    world.upstreams["a"].will("poll", UpstreamStatus(UpstreamState.RUNNING, poll_after=1))
    outcome = await world.run_as(await polling(world, upstream_state={"poll_errors": 3, "x": 1}))
    assert outcome.changes["upstream_state"] == {"x": 1} and outcome.changes["last_error"] is None
    assert outcome.record_event is False


async def test_a_job_the_channel_no_longer_knows_fails_the_task_and_goes_to_cancel(world: World) -> None:
    world.upstreams["a"].will("poll", ProviderError("upstream_job_lost", "poll: no such job"))
    outcome = await world.run_as(await polling(world))
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "upstream_job_lost"
    assert outcome.next_step is Step.CANCEL  # the channel may still hold it: ask it to stop


async def test_a_poll_error_past_the_deadline_ends_the_task_as_timed_out(world: World) -> None:
    world.upstreams["a"].will("poll", ProviderError("upstream_timeout", "slow", retryable=True))
    task = await polling(world)
    outcome = await world.run_as(task, deadline_at=world.clock.now_ms() + 10)
    assert outcome.status is TaskStatus.FAILED and outcome.changes["error_code"] == "timeout"
    assert "upstream_timeout" in outcome.changes["error_message"]


# fetch ----------------------------------------------------------------------------------------


# Where the poll step leaves a finished job: its result link remembered for the fetch.
FETCHING = {
    "step": Step.FETCH,
    "upstream_state": {"result": {"result_url": RESULT_URL, "watermarked": False}},
}


def clip(arg: tuple[UpstreamJob, Path]) -> FetchedResult:
    _, work_dir = arg
    return FetchedResult(make_clip(work_dir / "video.mp4", width=64, height=112, seconds=1, fps=4))


async def test_a_fetched_video_is_stored_with_its_previews_and_the_task_completes(world: World) -> None:
    world.upstreams["a"].will("fetch", clip)
    task = await polling(world)
    outcome = await world.run_as(task, **FETCHING)
    assert outcome.next_step is Step.DONE and outcome.status is TaskStatus.COMPLETED
    changes = outcome.changes
    assert changes["progress"] == 100 and changes["last_error"] is None and changes["video_bytes"] > 0
    for key in ("video_key", "thumbnail_key", "spritesheet_key"):
        assert await world.runtime.blobs.read_bytes(changes[key]), key
    assert (await world.runtime.blobs.read_bytes(changes["video_key"]))[4:8] == b"ftyp"


async def test_an_expired_result_link_sends_the_task_back_to_poll_for_a_fresh_one(world: World) -> None:
    world.upstreams["a"].will("fetch", ResultExpired("the result link answered HTTP 403"))
    task = await polling(world)
    outcome = await world.run_as(task, **FETCHING)
    assert outcome.next_step is Step.POLL and outcome.status is None
    assert outcome.changes["last_error"]["code"] == "result_link_expired"
    assert outcome.changes["attempts"] == 1


async def test_a_result_that_is_no_playable_video_is_fetched_again(world: World) -> None:
    def not_a_video(arg: tuple[UpstreamJob, Path]) -> FetchedResult:
        (arg[1] / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
        return FetchedResult(arg[1] / "video.mp4")

    world.upstreams["a"].will("fetch", not_a_video)
    task = await polling(world)
    outcome = await world.run_as(task, **FETCHING)
    assert outcome.next_step is Step.FETCH and outcome.status is None
    assert outcome.changes["last_error"]["code"] == "invalid_upstream_video"


# cancel ---------------------------------------------------------------------------------------


async def ended(world: World, spec: Any = SPEC, **changes: Any) -> Task:
    """A task cancelled by its client while channel `a` holds its job `job-1`."""
    return await polling(world, spec, **{"status": TaskStatus.CANCELLED, "step": Step.CANCEL, **changes})


async def test_cancel_asks_the_channel_to_stop_the_tasks_job(world: World) -> None:
    world.upstreams["a"].will("cancel", None)
    outcome = await world.run_as(await ended(world))
    assert outcome.next_step is Step.DONE and outcome.changes == {"submit_intent_at": None}
    assert [job.upstream_id for job in world.upstreams["a"].args("cancel")] == ["job-1"]
    assert outcome.message == "asked a to stop job job-1"


async def test_cancel_of_a_task_with_a_callback_goes_on_to_notify(world: World) -> None:
    world.upstreams["a"].will("cancel", None)
    outcome = await world.run_as(await ended(world, replace(SPEC, callback_url="https://hooks.test/x")))
    assert outcome.next_step is Step.NOTIFY


async def test_a_failed_cancel_is_tried_again_with_backoff(world: World) -> None:
    world.upstreams["a"].will("cancel", ProviderError("upstream_unavailable", "HTTP 503", retryable=True))
    outcome = await world.run_as(await ended(world))
    assert outcome.next_step is Step.CANCEL and outcome.delay_seconds > 0
    assert outcome.changes == {"upstream_state": {"cancel_attempts": 1}}


async def test_cancel_gives_up_after_its_last_try_and_says_so(world: World) -> None:
    world.upstreams["a"].will("cancel", ProviderError("upstream_unavailable", "HTTP 503", retryable=True))
    task = await ended(world, upstream_state={"cancel_attempts": CANCEL_ATTEMPTS - 1})
    outcome = await world.run_as(task)
    assert outcome.next_step is Step.DONE
    assert outcome.message is not None and "given up" in outcome.message


async def test_cancel_finds_and_stops_the_job_of_a_submit_whose_outcome_was_unknown(world: World) -> None:
    task = await world.new_task()
    attempt = await record_attempt(world.runtime, task.id, "a", task.submit_key)
    assert await world.runtime.attempts.settle(attempt, AttemptOutcome.UNKNOWN, error=("timeout", "lost"))
    world.upstreams["a"].will("find_jobs", [UpstreamJob("job-found")]).will("cancel", None)
    outcome = await world.run_as(
        task,
        status=TaskStatus.CANCELLED,
        step=Step.CANCEL,
        channel="a",
        submit_intent_at=world.clock.now_ms(),
    )
    assert [job.upstream_id for job in world.upstreams["a"].args("cancel")] == ["job-found"]
    assert outcome.next_step is Step.DONE
    [settled] = await world.runtime.attempts.for_task(task.id)
    assert settled.outcome is AttemptOutcome.ADOPTED and settled.upstream_id == "job-found"


async def test_cancel_on_a_channel_no_longer_configured_says_the_job_cannot_be_stopped(world: World) -> None:
    outcome = await world.run_as(await ended(world, channel="gone"))
    assert outcome.next_step is Step.DONE
    assert outcome.message == "channel gone is no longer configured; its job cannot be stopped"
    assert world.upstreams["a"].calls == []


# notify ---------------------------------------------------------------------------------------


async def notifying(world: World, **changes: Any) -> Task:
    task = await world.new_task(replace(SPEC, callback_url="https://hooks.test/done"))
    return replace(
        task,
        status=TaskStatus.FAILED,
        step=Step.NOTIFY,
        error=None,
        **changes,
    )


async def test_notify_posts_the_end_event_signed_with_the_owners_webhook_secret(world: World) -> None:
    fetcher = FakeFetcher(status=204)
    world.deps.fetcher = fetcher  # type: ignore[assignment]
    task = await notifying(world)
    outcome = await world.run_as(task)
    assert outcome.next_step is Step.DONE and outcome.message == "callback delivered"
    [(url, body, headers)] = fetcher.posts
    assert url == "https://hooks.test/done"
    event = json.loads(body)
    assert event["type"] == "video.failed" and event["data"]["status"] == "failed"
    secret = signing.key_webhook_secret(world.deps.settings.signing_key(), task.owner, 0)
    now_s = world.clock.now_ms() // 1000
    assert signing.verify_webhook(secret, headers[signing.SIGNATURE_HEADER], body, now_s=now_s)
    other = signing.key_webhook_secret(world.deps.settings.signing_key(), "another-key", 0)
    assert not signing.verify_webhook(other, headers[signing.SIGNATURE_HEADER], body, now_s=now_s)


@pytest.mark.parametrize(
    "answer", [500, FetchFailed("connection refused")], ids=["receiver-500", "unreachable"]
)
async def test_a_callback_that_did_not_arrive_is_sent_again_later(world: World, answer: Any) -> None:
    world.deps.fetcher = FakeFetcher(status=answer)  # type: ignore[assignment]
    outcome = await world.run_as(await notifying(world))
    assert outcome.next_step is Step.NOTIFY and outcome.delay_seconds > 0
    assert outcome.changes == {"callback_attempts": 1}


async def test_a_callback_is_given_up_after_its_last_attempt(world: World) -> None:
    world.deps.fetcher = FakeFetcher(status=503)  # type: ignore[assignment]
    outcome = await world.run_as(await notifying(world, callback_attempts=CALLBACK_ATTEMPTS - 1))
    assert outcome.next_step is Step.DONE and outcome.changes == {"callback_attempts": CALLBACK_ATTEMPTS}
    assert outcome.message == "callback given up: the receiver answered HTTP 503"


# the dispatch ---------------------------------------------------------------------------------


async def test_an_unexpected_error_in_a_step_is_retried_not_fatal(world: World) -> None:
    world.upstreams["a"].will("poll", RuntimeError("a bug"))
    outcome = await world.run_as(await polling(world))
    assert outcome.next_step is Step.POLL and outcome.status is None
    assert outcome.changes["last_error"]["code"] == "internal_error" and outcome.changes["attempts"] == 1
