"""The `dashscope` channel through the real gateway and worker, against the shipped fake's DashScope
dialect over loopback: text, first-frame and first-and-last-frame videos, the options that reach the
vendor, failures inside HTTP 200 answers, moderation, a lost create answer, an expired OSS link and a
cancel. The fake's journal proves what DashScope received and how many jobs it made."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.contract.conftest import FakeServer, gateway_options, png_data_uri, upstream_channel
from tests.contract.test_upstream_contract import settled
from tests.helpers import wait_for_status
from vidgate.api.actions import cancel_task
from vidgate.ids import parse_task_id
from vidgate.store.attempts import AttemptOutcome

pytestmark = pytest.mark.anyio
T2V, I2V, KF2V = "wan2.5-t2v-preview", "wan2.5-i2v-preview", "wan2.2-kf2v-flash"


def prompt(directives: str = "") -> str:
    """A prompt unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"a red kite over rice terraces {uuid.uuid4().hex[:8]} {directives}".strip()


def dashscope(server: FakeServer, **overrides: Any) -> Any:
    options = {"poll_seconds": 0.05, **overrides.pop("options", {})}
    return upstream_channel(
        "dashscope",
        server,
        name="ds",
        base_url=f"{server.url}/api/v1",
        models=[T2V, I2V, KF2V],
        options=options,
        **overrides,
    )


async def create(client: httpx.AsyncClient, text: str, model: str = T2V, **fields: Any) -> str:
    body = {"model": model, "prompt": text, "duration": 5, "aspect_ratio": "16:9", "resolution": "720p"}
    response = await client.post("/v1/video/create", json={**body, **fields})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


def only_create(server: FakeServer, text: str) -> Any:
    [made] = server.fake.journal.creates(text)
    return made


async def test_text_to_video_lands_in_our_storage(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
            assert final["status"] == "completed", final
            assert final["video_url"].startswith(gw.base_url)  # our copy, not DashScope's OSS link
            assert final["detail"]["channel"] == "ds" and final["watermarked"] is False
    made = only_create(upstream, text)
    assert (made.detail["mode"], made.detail["size"], made.detail["duration"]) == ("t2v", "1280*720", 5)
    assert made.detail["watermark"] is False and made.detail["prompt_extend"] is True
    downloads = [e for e in upstream.fake.journal.entries("download") if e.job == made.job]
    assert [e.status for e in downloads] == [200]


async def test_image_to_video_sends_the_first_frame(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text, model=I2V, images=[png_data_uri()], resolution="480p")
            final = await settled(gw, client, task_id)
    assert final["status"] == "completed", final
    made = only_create(upstream, text)
    assert (made.detail["mode"], made.detail["resolution"]) == ("i2v", "480P")
    assert made.detail["image_kinds"] == {"img_url": "data_uri"}


async def test_first_and_last_frames_go_to_a_kf2v_model(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    first, last = png_data_uri(960, 640), png_data_uri(800, 600)
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text, model=KF2V, images=[first], last_frame=last)
            final = await settled(gw, client, task_id)
    assert final["status"] == "completed", final
    made = only_create(upstream, text)
    assert made.detail["mode"] == "kf2v" and made.detail["resolution"] == "720P"
    assert made.detail["image_kinds"] == {"first_frame_url": "data_uri", "last_frame_url": "data_uri"}
    assert made.detail["images"]["first_frame_url"] != made.detail["images"]["last_frame_url"]


async def test_seed_audio_and_prompt_options_reach_dashscope(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(
                client,
                text,
                duration=10,
                seed=7,
                generate_audio=True,
                enhance_prompt=False,
                negative_prompt="blurry",
            )
            final = await settled(gw, client, task_id)
    assert final["status"] == "completed", final
    made = only_create(upstream, text)
    expected = {"seed": 7, "audio": True, "prompt_extend": False, "duration": 10, "negative_prompt": "blurry"}
    assert {k: made.detail[k] for k in expected} == expected


async def test_a_failure_inside_an_http_200_fails_the_task_with_the_vendor_code(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#fail=InternalError.Algo")
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "internal_error.algo", final["error"]
    assert "InternalError.Algo" in final["error"]["message"]
    assert len(upstream.fake.journal.creates(text)) == 1  # not paid for again (RESUBMIT_FAILED_JOBS=0)


@pytest.mark.parametrize("where", ["create", "job"])
async def test_moderation_fails_with_content_policy(start_gateway, upstream: FakeServer, where: str) -> None:
    text = prompt("#moderation" if where == "create" else "#moderation=job")
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "failed" and final["error"]["code"] == "content_policy", final
    assert len(upstream.fake.journal.creates(text)) == (0 if where == "create" else 1)


async def test_a_refusal_inside_an_http_200_is_retried_without_a_second_job(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#http200_error=1")
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    assert upstream.ops(text).count("rejected_create") == 1 and len(upstream.fake.journal.creates(text)) == 1


@pytest.mark.parametrize("fault", ["#accept_then_5xx=1", "#accept_then_drop=1", "#accept_then_hang=1"])
async def test_a_create_whose_answer_was_lost_is_found_in_the_task_list(
    start_gateway, upstream: FakeServer, fault: str
) -> None:
    """The job was made, then its answer was lost (a proxy's 502, a dropped connection, an answer slower
    than the request timeout): an unknown outcome. DashScope's task list names the model and time, the
    job's query its prompt once done: the job is adopted, not paid for twice."""
    text = prompt(fault)
    async with start_gateway(**gateway_options(dashscope(upstream, lookup_window_seconds=6))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            final = await settled(gw, client, task_id)
            ulid = parse_task_id(task_id)
            assert ulid is not None
            attempts = list(await gw.runtime.attempts.for_task(ulid))
    made = only_create(upstream, text)
    assert made.status == (502 if "5xx" in fault else 200)
    assert final["status"] == "completed", final
    assert [(a.outcome, a.upstream_id) for a in attempts] == [(AttemptOutcome.ADOPTED, made.job)]
    assert upstream.fake.journal.count("list") >= 1


async def test_without_the_lookup_a_lost_create_answer_is_never_sent_again(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#accept_then_5xx=1")
    channel = dashscope(upstream, options={"lookup": False})
    async with start_gateway(**gateway_options(channel, task_deadline_seconds=4)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "failed" and final["error"]["code"] == "upstream_outcome_unknown", final
    assert len(upstream.fake.journal.creates(text)) == 1 and upstream.fake.journal.count("list") == 0


async def test_an_expired_oss_link_is_fetched_again_after_a_fresh_poll(
    start_gateway, upstream: FakeServer
) -> None:
    text = prompt("#expired_link=1")
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    made = only_create(upstream, text)
    downloads = [e for e in upstream.fake.journal.entries("download") if e.job == made.job]
    assert [e.status for e in downloads] == [403, 200]
    links = {e.detail["file"] for e in downloads}
    assert links == {f"{made.job}.mp4"}


async def test_cancelling_a_queued_task_stops_its_dashscope_job(start_gateway, upstream: FakeServer) -> None:
    text = prompt("#queue=30 #ready=40")
    async with start_gateway(**gateway_options(dashscope(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text)
            await wait_for_status(client, task_id, ("processing",), timeout=20)
            ulid = parse_task_id(task_id)
            assert ulid is not None
            task = await gw.runtime.tasks.get(ulid)
            await cancel_task(gw.runtime, ulid, owner=task.owner)
            final = await settled(gw, client, task_id)
    assert final["status"] == "cancelled", final
    made = only_create(upstream, text)
    [cancel] = upstream.fake.journal.entries("cancel")
    assert (cancel.job, cancel.status, cancel.detail["phase"]) == (made.job, 200, "queued")
