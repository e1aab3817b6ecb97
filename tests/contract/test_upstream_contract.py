"""One contract, both upstream adapters (`openai` and `unified`), through the fake upstream over loopback.

Each fault the fake can inject ends the task in the state it calls for (retried and completed, or
failed with a clear code), and the fake's journal proves how many upstream jobs each task made.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import av
import httpx
import pytest

from tests.contract.conftest import FakeServer, gateway_options, png_data_uri, serve_fake, upstream_channel
from tests.helpers import query, wait_for_status
from vidgate.domain.tasks import Step

pytestmark = pytest.mark.anyio


def prompt(directives: str = "") -> str:
    """A prompt unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"a paper boat {uuid.uuid4().hex[:8]} {directives}".strip()


async def create(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    body = {"model": "sora-2", "prompt": text, "orientation": "portrait", "size": "small", "duration": 10}
    response = await client.post("/v1/video/create", json={**body, **fields})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def settled(gw: Any, client: httpx.AsyncClient, task_id: str, timeout: float = 40) -> dict[str, Any]:
    """The task once it has ended AND its worker has nothing left to do for it (cancel, webhook)."""
    await wait_for_status(client, task_id, timeout=timeout)
    ulid = task_id.rsplit("_", 1)[-1]
    with anyio.fail_after(timeout):
        while (await gw.runtime.tasks.get(ulid)).step is not Step.DONE:
            await anyio.sleep(0.05)
    return await query(client, task_id)


async def assert_playable_mp4(url: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient() as plain:
        response = await plain.get(url)
    assert response.status_code == 200
    path = tmp_path / "result.mp4"
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) > 0


async def test_happy_path_lands_the_video_in_our_storage(
    start_gateway, upstream: FakeServer, dialect: str, tmp_path: Path
) -> None:
    text = prompt("#ready=0.3")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, text, images=[png_data_uri()])
            final = await settled(gw, client, task_id)
            assert final["status"] == "completed", final
            assert final["progress"] == 100 and final["detail"]["channel"] == "up"
            assert final["video_url"].startswith(gw.base_url)  # our copy, not the upstream's link
            await assert_playable_mp4(final["video_url"], tmp_path)
    [made] = upstream.fake.journal.creates(text)
    if dialect == "openai":
        # The reference was cropped to exactly the requested size (the fake, like OpenAI, refuses others).
        assert made.detail["reference_size"] in ([720, 1280], (720, 1280), "720x1280")
        assert made.detail["seconds"] == "10" and made.detail["size"] == "720x1280"
    else:
        assert made.detail["images"] == 1 and made.detail["size"] == "small"
        assert made.detail["orientation"] == "portrait" and made.detail["duration"] == 10
    assert made.key is not None and made.key.endswith("-0")


async def test_refused_creates_are_retried_then_complete(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    text = prompt("#429=2 #retry_after=0.1")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    assert upstream.ops(text).count("rejected_create") == 2
    assert len(upstream.fake.journal.creates(text)) == 1


async def test_a_5xx_before_the_job_was_made_is_resolved_by_looking_not_by_resubmitting(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    """A 503 may come after the job was made, so it is an unknown outcome, not a refusal. An `openai`
    channel is asked for the job until its lookup window ends; none was made, so the submission goes
    again and makes the only job. A `unified` relay that cannot be asked is sent nothing more."""
    text = prompt("#5xx=2 #retry_after=0.1")
    channel = upstream_channel(dialect, upstream, lookup_window_seconds=1.5)
    async with start_gateway(**gateway_options(channel, task_deadline_seconds=15)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    if dialect == "openai":
        assert final["status"] == "completed", final
        assert upstream.ops(text).count("rejected_create") == 2
        assert len(upstream.fake.journal.creates(text)) == 1
    else:
        assert final["status"] == "failed" and final["error"]["code"] == "upstream_outcome_unknown", final
        assert upstream.ops(text) == ["rejected_create"]


async def test_an_unknown_outcome_is_replayed_with_the_same_key_where_the_upstream_dedupes(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    """The create is accepted but its answer never comes (read timeout): the retry must reuse the key."""
    text = prompt("#accept_then_hang=1")
    channel = upstream_channel(dialect, upstream, honours_idempotency_key=True)
    async with start_gateway(**gateway_options(channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    creates = upstream.fake.journal.creates(text)
    replays = upstream.fake.journal.entries("duplicate_create", text)
    assert len(creates) == 1 and len(replays) >= 1
    assert {e.key for e in replays} == {creates[0].key}  # the same idempotency key every time


async def test_an_unknown_outcome_is_never_resubmitted_blindly(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    """The upstream ignores idempotency keys and the connection drops after it made the job. The openai
    adapter finds the job in the list and adopts it; the unified dialect cannot be asked, so the task
    fails with upstream_outcome_unknown at its deadline. Either way: exactly one upstream job."""
    text = prompt("#accept_then_drop=1 #no_idempotency")
    async with start_gateway(
        **gateway_options(upstream_channel(dialect, upstream), task_deadline_seconds=4)
    ) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert len(upstream.fake.journal.creates(text)) == 1
    if dialect == "openai":
        assert final["status"] == "completed", final
        assert upstream.fake.journal.count("list") >= 1  # it asked for the job instead of resubmitting
    else:
        assert final["status"] == "failed", final
        assert final["error"]["code"] == "upstream_outcome_unknown"


@pytest.mark.parametrize(
    "fault", ["#poll_hang=1", "#poll5xx=3", "#malformed=2", "#unknown_status=2", "#synonyms"]
)
async def test_poll_faults_and_odd_statuses_keep_polling_to_completion(
    start_gateway, upstream: FakeServer, dialect: str, fault: str
) -> None:
    text = prompt(f"{fault} #ready=0.5")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    assert len(upstream.fake.journal.creates(text)) == 1


async def test_an_expired_result_link_is_fetched_again_after_a_fresh_poll(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    text = prompt("#expired_link=1")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "completed", final
    downloads = [e for e in upstream.fake.journal.entries("download") if e.job == _only_job(upstream, text)]
    assert [e.status for e in downloads][:2] in ([403, 200], [404, 200])


@pytest.mark.parametrize("where", ["create", "job"])
async def test_moderation_fails_with_content_policy_and_is_not_retried(
    start_gateway, upstream: FakeServer, dialect: str, where: str
) -> None:
    text = prompt("#moderation" if where == "create" else "#moderation=job")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text))
    assert final["status"] == "failed" and final["error"]["code"] == "content_policy", final
    made = len(upstream.fake.journal.creates(text))
    assert made == (0 if where == "create" else 1)
    assert upstream.ops(text).count("rejected_create") == (1 if where == "create" else 0)


async def test_unified_shapes_are_read_tolerantly(start_gateway, upstream: FakeServer) -> None:
    texts = [prompt(d) for d in ("#envelope", "#ts=iso #bare_id", "#progress_str #url_list", "#ts=datetime")]
    async with start_gateway(**gateway_options(upstream_channel("unified", upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            ids = [await create(client, text) for text in texts]
            finals = [await settled(gw, client, task_id) for task_id in ids]
    assert [f["status"] for f in finals] == ["completed"] * len(texts), finals


async def test_unified_forwards_the_relay_fields(start_gateway, upstream: FakeServer) -> None:
    text = prompt()
    async with start_gateway(**gateway_options(upstream_channel("unified", upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(
                client,
                text,
                watermark=False,
                private=True,
                style="anime",
                storyboard=True,
                character_url="https://images.example.com/c.mp4",
                character_timestamps="1,3",
            )
            await settled(gw, client, task_id)
    [made] = upstream.fake.journal.creates(text)
    expected = {
        "watermark": False,
        "private": True,
        "style": "anime",
        "storyboard": True,
        "character_url": "https://images.example.com/c.mp4",
        "character_timestamps": "1,3",
    }
    assert {k: made.detail[k] for k in expected} == expected


async def test_watermark_true_accepts_a_marked_video_and_false_resubmits_for_a_clean_one(
    start_gateway, upstream: FakeServer
) -> None:
    lenient, strict = prompt("#watermark_fail=1"), prompt("#watermark_fail=1")
    async with start_gateway(**gateway_options(upstream_channel("unified", upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            lenient_final = await settled(gw, client, await create(client, lenient, watermark=True))
            strict_final = await settled(gw, client, await create(client, strict, watermark=False))
    assert lenient_final["status"] == "completed" and lenient_final["watermarked"] is True
    assert len(upstream.fake.journal.creates(lenient)) == 1
    assert strict_final["status"] == "completed" and strict_final["watermarked"] is False
    strict_creates = upstream.fake.journal.creates(strict)
    assert len(strict_creates) == 2  # the marked job, then a deliberate resubmission...
    assert strict_creates[0].key != strict_creates[1].key  # ...under a new idempotency key


async def test_watermark_false_never_delivers_a_video_whose_mark_is_unknown(
    start_gateway, upstream: FakeServer
) -> None:
    """A relay that does not say whether its output is marked, on an `optional` channel."""
    text = prompt("#ready=0.2")
    channel = upstream_channel("unified", upstream, headers={"X-Fake": "hide_watermark"})
    async with start_gateway(**gateway_options(channel, task_deadline_seconds=3)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, text, watermark=False))
    assert final["status"] == "failed" and final["error"]["code"] == "watermark_removal_failed", final
    assert final["video_url"] is None


async def test_a_job_that_fails_upstream_is_not_paid_for_again_unless_the_operator_allows_it(
    start_gateway, upstream: FakeServer, dialect: str
) -> None:
    """An upstream `internal_error` used to be resubmitted as a new paid job up to 10 times."""
    once, thrice = prompt("#fail=internal_error"), prompt("#fail=internal_error")
    async with start_gateway(**gateway_options(upstream_channel(dialect, upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, once))
    assert final["status"] == "failed" and final["error"]["code"] == "internal_error", final
    assert len(upstream.fake.journal.creates(once)) == 1
    assert final["detail"]["submissions"] == 1
    options = gateway_options(upstream_channel(dialect, upstream), resubmit_failed_jobs=2)
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create(client, thrice))
    assert final["status"] == "failed" and final["error"]["code"] == "internal_error", final
    creates = upstream.fake.journal.creates(thrice)
    assert len(creates) == 3 and len({c.key for c in creates}) == 3  # each a deliberate new submission
    assert final["detail"]["submissions"] == 3


def _only_job(server: FakeServer, text: str) -> str | None:
    [made] = server.fake.journal.creates(text)
    return made.job


async def test_a_relays_video_link_to_a_private_address_is_refused(start_gateway) -> None:
    """The result link of a relay is a URL someone else chose: it goes through the SSRF-safe fetcher,
    which refuses an address like the cloud metadata service before connecting."""
    async with serve_fake(cdn_base_url="http://metadata.example.com") as relay:  # -> 169.254.169.254
        options = {**gateway_options(upstream_channel("unified", relay)), "fetch_allow_private": False}
        async with start_gateway(**options) as gw:
            async with gw.client(await gw.new_key()) as client:
                final = await settled(gw, client, await create(client, prompt()))
        assert final["status"] == "failed" and final["error"]["code"] == "result_url_refused", final
        assert "non-public address" in final["error"]["message"]
        assert relay.fake.journal.count("download") == 0  # nothing ever reached it
