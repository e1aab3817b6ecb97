"""Routing over real upstreams: failover before acceptance only, pinning after it, circuits shared through
the database, `max_concurrent`, cancels and remixes reaching the upstream from the worker."""

from __future__ import annotations

import uuid

import anyio
import pytest

from tests.contract.conftest import FakeServer, gateway_options, upstream_channel
from tests.contract.test_upstream_contract import create, settled
from tests.helpers import query, wait_for_status
from vidgate.api.actions import cancel_task

pytestmark = pytest.mark.anyio


def prompt(directives: str = "") -> str:
    return f"a lantern {uuid.uuid4().hex[:8]} {directives}".strip()


async def test_a_refusal_before_acceptance_fails_over_to_the_next_channel(
    start_gateway, upstream: FakeServer, second_upstream: FakeServer, dialect: str
) -> None:
    limited = upstream_channel(dialect, upstream, name="limited", priority=0, headers={"X-Fake": "429=1000"})
    healthy = upstream_channel(dialect, second_upstream, name="healthy", priority=1)
    text = prompt()
    async with start_gateway(**gateway_options(limited, healthy)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed" and final["detail"]["channel"] == "healthy", final
    assert upstream.ops(text) == ["rejected_create"]  # tried first, refused with a 429 (proof: no job)...
    assert len(second_upstream.fake.journal.creates(text)) == 1  # ...so the next one made the only job


async def test_a_5xx_to_a_create_proves_nothing_so_no_other_channel_gets_the_task_blindly(
    start_gateway, upstream: FakeServer, second_upstream: FakeServer, dialect: str
) -> None:
    """A 503 used to count as proof that no job was made. It is an unknown outcome now: an
    `openai` channel is asked for the job over its lookup window (none appears: the next channel gets
    the task, one paid job in all); a `unified` relay cannot be asked, so the task fails at its deadline
    with `upstream_outcome_unknown` and no second job is made anywhere."""
    broken = upstream_channel(
        dialect, upstream, name="broken", priority=0, headers={"X-Fake": "5xx=1000"}, lookup_window_seconds=2
    )
    healthy = upstream_channel(dialect, second_upstream, name="healthy", priority=1)
    text = prompt()
    options = gateway_options(broken, healthy, circuit_failures=1, task_deadline_seconds=8)
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    if dialect == "openai":
        assert final["status"] == "completed" and final["detail"]["channel"] == "healthy", final
        assert upstream.ops(text).count("rejected_create") == 1 and upstream.fake.journal.count("list") >= 1
        assert len(second_upstream.fake.journal.creates(text)) == 1
    else:
        assert final["status"] == "failed", final
        assert final["error"]["code"] == "upstream_outcome_unknown", final
        assert upstream.ops(text) == ["rejected_create"]  # sent once, never again
        assert second_upstream.fake.journal.entries(prompt=text) == []


async def test_refused_credentials_fail_over_too(
    start_gateway, upstream: FakeServer, second_upstream: FakeServer, dialect: str
) -> None:
    wrong_key = upstream_channel(dialect, upstream, name="wrong", api_key="sk-wrong", priority=0)
    healthy = upstream_channel(dialect, second_upstream, name="healthy", priority=1)
    async with start_gateway(**gateway_options(wrong_key, healthy)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, prompt()))
    assert final["status"] == "completed" and final["detail"]["channel"] == "healthy", final


async def test_once_accepted_a_task_stays_on_its_channel_whatever_its_polls_do(
    start_gateway, upstream: FakeServer, second_upstream: FakeServer, dialect: str
) -> None:
    text = prompt("#poll5xx=6 #ready=0.3")
    first = upstream_channel(dialect, upstream, name="first", priority=0)
    spare = upstream_channel(dialect, second_upstream, name="spare", priority=1)
    async with start_gateway(**gateway_options(first, spare, circuit_failures=100)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed" and final["detail"]["channel"] == "first", final
    assert len(upstream.fake.journal.creates(text)) == 1
    assert second_upstream.fake.journal.entries(prompt=text) == []


async def test_an_open_circuit_sends_new_tasks_elsewhere_and_shows_in_readyz(
    start_gateway, upstream: FakeServer, second_upstream: FakeServer, dialect: str
) -> None:
    # Refusals that prove no job was made (429s) fail over at once; a 5xx would be an unknown outcome, looked
    # for or waited out before the task could go elsewhere (the paid-submit tests cover that).
    broken = upstream_channel(dialect, upstream, name="broken", priority=0, headers={"X-Fake": "429=1000"})
    healthy = upstream_channel(dialect, second_upstream, name="healthy", priority=1)
    options = gateway_options(broken, healthy, circuit_failures=2, circuit_cooldown_seconds=600)
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            for _ in range(2):  # two refusals open the circuit
                await settled(gw, client, await create(client, prompt()))
            tried_before = len(upstream.fake.journal)
            finals = [await settled(gw, client, await create(client, prompt())) for _ in range(3)]
            ready = (await client.get("/readyz")).json()
    assert all(f["status"] == "completed" and f["detail"]["channel"] == "healthy" for f in finals)
    assert len(upstream.fake.journal) == tried_before  # the open circuit kept them away from it
    assert ready["channels"]["broken"]["circuit"] == "open"
    assert ready["channels"]["healthy"]["circuit"] == "closed"


async def test_max_concurrent_holds_and_the_rest_wait_pending(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    channel = upstream_channel(dialect, upstream, max_concurrent=1)
    texts = [prompt("#ready=0.4") for _ in range(3)]
    async with start_gateway(**gateway_options(channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [await create(client, text) for text in texts]
            peak = 0
            with anyio.fail_after(40):
                while True:
                    load = await gw.runtime.tasks.active_per_channel()
                    peak = max(peak, load.get("up", 0))
                    states = [(await query(client, i))["status"] for i in ids]
                    if all(s == "completed" for s in states):
                        break
                    await anyio.sleep(0.02)
    assert peak == 1
    assert len(upstream.fake.journal.creates()) == 3


async def test_a_cancel_reaches_the_upstream_from_the_worker(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    text = prompt("#ready=30")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            await wait_for_status(client, task_id, statuses=("processing",))
            ulid = task_id.rsplit("_", 1)[-1]
            task = await gw.runtime.tasks.get(ulid)
            with anyio.fail_after(20):
                while task.upstream_id is None:
                    await anyio.sleep(0.02)
                    task = await gw.runtime.tasks.get(ulid)
            await cancel_task(gw.runtime, ulid, owner=task.owner)
            final = await settled(gw, client, task_id)
            events = [e.message or "" for e in await gw.runtime.tasks.events(ulid)]
    assert final["status"] == "cancelled"
    if dialect == "openai":
        assert upstream.ops(text).count("delete") == 1  # the OpenAI dialect stops a job by deleting it
    else:
        assert any("no way to stop or delete a job" in m for m in events), events


async def test_a_cancel_during_the_submit_lets_it_finish_and_then_stops_the_job(
    start_gateway, upstream: FakeServer
) -> None:
    """7b: the client cancels while the create is in flight. The create completes upstream (a job exists
    and is billed), so its id must be kept and the job cancelled, not leaked."""
    text = prompt("#latency=1 #ready=30")
    async with start_gateway(
        **gateway_options(upstream_channel("openai", upstream, request_timeout_seconds=5))
    ) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            ulid = task_id.rsplit("_", 1)[-1]
            with anyio.fail_after(20):
                while (task := await gw.runtime.tasks.get(ulid)).submit_intent_at is None:
                    await anyio.sleep(0.01)
            await cancel_task(gw.runtime, ulid, owner=task.owner)
            final = await settled(gw, client, task_id)
            stored = await gw.runtime.tasks.get(ulid)
    assert final["status"] == "cancelled"
    [made] = upstream.fake.journal.creates(text)
    assert stored.upstream_id == made.job  # the job's id was kept although the task was cancelled
    assert [e.job for e in upstream.fake.journal.entries("delete")] == [made.job]


async def test_remix_goes_to_the_upstream_that_holds_the_source(start_gateway, upstream: FakeServer) -> None:
    import openai

    channel = upstream_channel("openai", upstream, options={"remix": True})
    async with start_gateway(**gateway_options(channel)) as gw:
        sdk = openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=await gw.new_key(), max_retries=0)
        try:
            with pytest.warns(DeprecationWarning):
                source = await sdk.videos.create_and_poll(prompt=prompt(), seconds="8", poll_interval_ms=50)
                remix = await sdk.videos.remix(source.id, prompt="now at night")
                remix = await sdk.videos.poll(remix.id, poll_interval_ms=50)
        finally:
            await sdk.close()
    assert source.status == "completed" and remix.status == "completed", (source.error, remix.error)
    assert remix.remixed_from_video_id == source.id
    [made] = upstream.fake.journal.creates(source.prompt)
    [remixed] = upstream.fake.journal.entries("remix")
    assert remixed.detail["remix_of"] == made.job  # the upstream's own job was remixed, on its channel


async def test_a_task_that_no_channel_serves_is_refused_at_create(
    start_gateway, upstream: FakeServer
) -> None:
    channel = upstream_channel("openai", upstream, durations=[4, 8], sizes=["1280x720"])
    async with start_gateway(**gateway_options(channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "x", "duration": 15})
            assert r.status_code == 400 and r.json()["error"]["param"] == "duration"
            r = await client.post(
                "/v1/video/create",
                json={"model": "sora-2", "prompt": "x", "duration": 8, "orientation": "portrait"},
            )
            assert r.status_code == 400 and r.json()["error"]["param"] == "size"
    assert len(upstream.fake.journal) == 0
