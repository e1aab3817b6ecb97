"""The `seedance` channel through the real gateway, against the shipped Ark fake over loopback: what a
client asks reaches Ark's wire as Ark takes it (the fake's journal shows what it received), Ark's endings
become the task's, and the paid-once rules hold with Ark's own tools (its task list, its DELETE)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.contract.conftest import FakeServer, gateway_options, png_data_uri, serve_fake, upstream_channel
from tests.contract.test_upstream_contract import settled
from tests.helpers import wait_for_status
from vidgate.config import ChannelSettings
from vidgate.domain.tasks import WatermarkMode
from vidgate.ids import parse_task_id
from vidgate.providers.base import SubmitRequest
from vidgate.providers.seedance import ark_seed
from vidgate.store.attempts import AttemptOutcome

pytestmark = pytest.mark.anyio

MODEL = "seedance-1-0-pro-250528"  # text and images, first and last frame, silent
AUDIO_MODEL = "doubao-seedance-1-5-pro-251215"


def prompt(directives: str = "") -> str:
    """A prompt unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"a kite over the dunes {uuid.uuid4().hex[:8]} {directives}".strip()


def seedance(server: FakeServer, name: str = "ark", **overrides: Any) -> ChannelSettings:
    return upstream_channel(
        "seedance",
        server,
        name=name,
        base_url=f"{server.url}/api/v3",
        models=[MODEL, AUDIO_MODEL],
        **overrides,
    )


async def create(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    body = {"model": MODEL, "prompt": text, "duration": 5, "aspect_ratio": "16:9", "resolution": "720p"}
    response = await client.post("/v1/video/create", json={**body, **fields})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def attempts_of(gw: Any, task_id: str) -> list[Any]:
    ulid = parse_task_id(task_id)
    assert ulid is not None
    return list(await gw.runtime.attempts.for_task(ulid))


def files_downloads(server: FakeServer, text: str) -> list[int]:
    return [e.status for e in server.fake.journal.entries("download", text) if e.dialect == "files"]


async def test_text_to_video_lands_the_video_and_ark_got_body_fields(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#ready=0.3")
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text, duration=6))
    assert final["status"] == "completed", final
    assert final["detail"]["channel"] == "ark" and final["video_url"].startswith(gw.base_url)
    [made] = upstream.fake.journal.creates(text)
    assert made.dialect == "seedance" and made.job is not None and made.job.startswith("cgt-")
    detail = made.detail
    assert (detail["model"], detail["ratio"], detail["resolution"], detail["duration"]) == (
        MODEL,
        "16:9",
        "720p",
        6,
    )
    assert detail["roles"] == [] and detail["watermark"] is False and isinstance(detail["seed"], int)
    assert detail["text"] == text and detail["extra"] == {}
    assert files_downloads(upstream, text) == [200]  # the presigned link, copied once


async def test_image_to_video_sends_the_image_as_the_first_frame(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(
                gw, client, await create(client, text, images=[png_data_uri()], aspect_ratio="9:16")
            )
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["roles"] == ["first_frame"] and made.detail["ratio"] == "9:16"
    assert made.detail["image_values"][0].startswith("data:image/png;base64,")


async def test_first_and_last_frame_go_with_their_roles(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(
                client, text, images=[png_data_uri()], last_frame=png_data_uri(480, 320), duration=3
            )
            final = await settled(gw, client, task_id)
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.detail["roles"] == ["first_frame", "last_frame"] and made.detail["images"] == 2
    assert made.detail["duration"] == 3


async def test_seed_and_generate_audio_reach_ark(start_gateway, upstream: FakeServer) -> None:
    texts = [prompt(), prompt()]
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            loud = await create(client, texts[0], model=AUDIO_MODEL, seed=7, generate_audio=True)
            quiet = await create(client, texts[1], model=AUDIO_MODEL, generate_audio=False, duration=4)
            finals = [await settled(gw, client, task_id) for task_id in (loud, quiet)]
    assert [f["status"] for f in finals] == ["completed", "completed"], finals
    [with_sound] = upstream.fake.journal.creates(texts[0])
    [silent] = upstream.fake.journal.creates(texts[1])
    assert with_sound.detail["seed"] == 7 and with_sound.detail["generate_audio"] is True
    assert with_sound.detail["model"] == AUDIO_MODEL
    assert silent.detail["generate_audio"] is False and silent.detail["duration"] == 4


async def test_a_model_without_sound_is_refused_sound_at_create(start_gateway, upstream: FakeServer) -> None:
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            response = await client.post(
                "/v1/video/create",
                json={"model": MODEL, "prompt": prompt(), "duration": 5, "generate_audio": True},
            )
    assert response.status_code == 400, response.text
    assert upstream.fake.journal.count("create") == 0


@pytest.mark.parametrize("where", ["create", "job"])
async def test_moderation_fails_the_task_with_content_policy(
    start_gateway, upstream: FakeServer, where: str
) -> None:
    text = prompt("#moderation" if where == "create" else "#moderation=job")
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "failed" and final["error"]["code"] == "content_policy", final
    assert len(upstream.fake.journal.creates(text)) == (0 if where == "create" else 1)


async def test_an_expired_link_is_fetched_again_after_a_fresh_poll(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#expired_link=1")
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    assert files_downloads(upstream, text) == [403, 200]
    succeeded = [
        e for e in upstream.fake.journal.entries("poll", text) if e.detail["reported"] == "succeeded"
    ]
    assert len(succeeded) >= 2  # the second link came from a poll after the first one died


async def test_a_task_made_then_answered_with_a_proxys_502_is_found_in_the_list_not_made_again(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#accept_then_5xx=1")
    channel = seedance(upstream, lookup_window_seconds=4)
    async with start_gateway(**gateway_options(channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            final = await settled(gw, client, task_id)
            attempts = await attempts_of(gw, task_id)
    assert final["status"] == "completed", final
    [made] = upstream.fake.journal.creates(text)
    assert made.status == 502  # the job exists; the answer was a proxy's page
    assert upstream.fake.journal.count("list") >= 1
    assert [(a.outcome, a.upstream_id) for a in attempts] == [(AttemptOutcome.ADOPTED, made.job)]


async def test_identical_twins_with_lost_answers_each_find_their_own_task(
    start_gateway, upstream: FakeServer
) -> None:
    """Same prompt, model and parameters, both answers cut after Ark made the tasks. Ark's list has no
    prompt, but each create carried a seed tied to its submission: each task adopts the one it made."""
    text = prompt("#accept_then_drop=2")
    channel = seedance(upstream, lookup_window_seconds=5)
    async with start_gateway(**gateway_options(channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            twins = [await create(client, text), await create(client, text)]
            finals = [await settled(gw, client, task_id) for task_id in twins]
            attempts = [await attempts_of(gw, task_id) for task_id in twins]
            keys = []
            for task_id in twins:
                ulid = parse_task_id(task_id)
                assert ulid is not None
                keys.append((await gw.runtime.tasks.get(ulid)).submit_key)
    assert [f["status"] for f in finals] == ["completed", "completed"], finals
    seeds = {e.job: e.detail["seed"] for e in upstream.fake.journal.creates(text)}
    assert len(seeds) == 2
    for key, task_attempts in zip(keys, attempts, strict=True):
        [attempt] = [a for a in task_attempts if a.upstream_id]
        expected = ark_seed(
            SubmitRequest("t", key, MODEL, text, 1280, 720, 5, WatermarkMode.PREFER_CLEAN, False),
            seed_tag=True,
        )
        assert attempt.outcome is AttemptOutcome.ADOPTED and seeds[attempt.upstream_id] == expected


async def test_a_cancel_reaches_arks_delete_and_stops_the_queued_task(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#queue=30 #ready=40")
    async with start_gateway(**gateway_options(seedance(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            await wait_for_status(client, task_id, ("processing",), timeout=20)
            response = await client.post(f"/v1/videos/{task_id}/cancel")
            assert response.status_code == 200, response.text
            final = await settled(gw, client, task_id)
    assert final["status"] == "cancelled", final
    [made] = upstream.fake.journal.creates(text)
    deletes = [(e.job, e.status, e.detail.get("outcome")) for e in upstream.fake.journal.entries("delete")]
    assert deletes == [(made.job, 200, "cancelled")]


async def test_a_quota_refusal_fails_over_to_the_next_channel(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with serve_fake() as other:
        refusing = seedance(
            upstream, name="a", priority=0, headers={"X-Fake": "429=1000; ark_429=QuotaExceeded"}
        )
        channels = [refusing, seedance(other, name="b", priority=1)]
        async with start_gateway(**gateway_options(*channels)) as gw:
            async with gw.client(await gw.new_key()) as client:
                final = await settled(gw, client, await create(client, text))
        taken = other.fake.journal.creates(text)
    assert final["status"] == "completed" and final["detail"]["channel"] == "b", final
    refused = upstream.fake.journal.entries("rejected_create", text)
    assert refused and all(e.status == 429 for e in refused)
    assert upstream.fake.journal.creates(text) == [] and len(taken) == 1


async def test_the_channel_test_lists_one_task_and_makes_none(start_gateway, upstream: FakeServer) -> None:
    options = {**gateway_options(seedance(upstream)), "run_worker": False}
    async with start_gateway(**options) as gw:
        result = await gw.runtime.providers("ark").probe()
    assert result.ok, result.verdict
    assert [e.op for e in upstream.fake.journal] == ["list"]
