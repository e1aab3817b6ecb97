"""The fake upstream, driven over real loopback HTTP (httpx and the official `openai` SDK).

Most tests use a manual clock: the fake's job timing follows it, so a test moves time instead of sleeping.
Only the latency and hang directives sleep for real, and those tests keep the sleeps short.
"""

from __future__ import annotations

import base64
import io
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import av
import httpx
import openai
import pytest
from PIL import Image

from vidgate.testing.fake_upstream import FakeUpstream, parse_directives, serve_fake_upstream
from vidgate.testing.fake_upstream import media as media_module
from vidgate.testing.fake_upstream.media import MediaCache, clip_size
from vidgate.testing.server import serving

pytestmark = pytest.mark.anyio

SORA_DEPRECATION = "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
KEY = "sk-fake-test"
AUTH = {"authorization": f"Bearer {KEY}"}
START = 1_760_000_000.0  # a Unix-like start: the fake then reports the clock's own time, deterministically


class ManualClock:
    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[tuple[FakeUpstream, httpx.AsyncClient]]:
    """A fake served on loopback and an authorised httpx client for it."""
    kwargs.setdefault("api_key", KEY)
    fake = FakeUpstream(**kwargs)
    async with serving(fake.app) as url:
        fake.base_url = url
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
            yield fake, client


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def probe(data: bytes) -> tuple[int, int, int]:
    """(width, height, decoded frames) of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames


async def oa_create(
    client: httpx.AsyncClient, prompt: str, headers: dict[str, str] | None = None, **fields: str
) -> httpx.Response:
    """A multipart create, as the SDK sends it."""
    data = {"prompt": prompt, "seconds": "4", "size": "720x1280", **fields}
    parts = {name: (None, value) for name, value in data.items()}
    return await client.post("/v1/videos", files=parts, headers=headers)


async def uni_create(
    client: httpx.AsyncClient, prompt: str, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"model": "sora-2", "prompt": prompt, "images": [], "orientation": "portrait", "size": "small"}
    body.update(fields)
    return await client.post("/v1/video/create", json=body, headers=headers)


async def uni_query(client: httpx.AsyncClient, task_id: str, **headers: str) -> dict[str, Any]:
    r = await client.get("/v1/video/query", params={"id": task_id}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# Directives ----------------------------------------------------------------------------------------


def test_directives_from_prompt_and_header() -> None:
    d = parse_directives("a red fox #ready=0.5 #429=2 #synonyms C# issue#3", "ready=9; 5xx=1, #envelope")
    assert d.number("ready", 1.0) == 0.5  # the prompt wins over the header
    assert d.count("429") == 2 and d.count("5xx") == 1 and d.count("synonyms") == 1
    assert d.has("envelope") and not d.has("3") and not d.has("c")  # tokens start a word
    assert d.count("absent") == 0 and d.number("absent", 7.0) == 7.0
    assert parse_directives("#ready=soon #latency=-1").number("ready", 1.0) == 1.0
    assert parse_directives("#latency=-1").number("latency", 0.0) == 0.0
    # A later header (a poll's) wins over an earlier one (the create's).
    assert parse_directives(None, "ts=s", "ts=iso").text("ts") == "iso"


def test_clip_size_scales_down_to_even_and_at_least_16() -> None:
    assert clip_size(720, 1280, 16) == (44, 80)
    assert clip_size(1920, 1080, 16) == (120, 66)
    assert clip_size(100, 100, 16) == (16, 16)


async def test_media_is_encoded_once_for_concurrent_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = media_module._encode_clip

    def counting(width: int, height: int, seconds: int, fps: int) -> bytes:
        calls.append((width, height, seconds, fps))
        return real(width, height, seconds, fps)

    monkeypatch.setattr(media_module, "_encode_clip", counting)
    cache = MediaCache(clip_scale=16, fps=4)
    results: list[bytes] = []

    async def fetch() -> None:
        results.append(await cache.get("video", 720, 1280, 1))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(fetch)
    assert calls == [(44, 80, 1, 4)]
    assert len(set(results)) == 1 and probe(results[0]) == (44, 80, 4)


# OpenAI dialect through the official SDK -----------------------------------------------------------


@pytest.mark.filterwarnings(SORA_DEPRECATION)
async def test_sdk_create_and_poll_with_reference_then_download() -> None:
    async with running(ready_seconds=0.3, poll_after_ms=50) as (fake, _):
        assert fake.base_url is not None
        client = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key=KEY, max_retries=0)
        prompt = "sdk fox"
        video = await client.videos.create_and_poll(
            prompt=prompt,
            size="720x1280",
            seconds="4",
            input_reference=("ref.png", png(720, 1280), "image/png"),
            extra_body={"seed": 7, "negative_prompt": "blur"},
            poll_interval_ms=50,
        )
        assert video.status == "completed" and video.progress == 100
        assert re.fullmatch(r"video_[0-9a-f]{32}", video.id)
        assert video.completed_at is not None and video.expires_at == video.completed_at + 3600
        content = await client.videos.download_content(video.id)
        assert probe(content.content) == (44, 80, 16)  # 720x1280 / 16, 4 s at 4 fps
        thumb = await client.videos.download_content(video.id, variant="thumbnail")
        assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
        sheet = await client.videos.download_content(video.id, variant="spritesheet")
        assert Image.open(io.BytesIO(sheet.content)).format == "JPEG"

        [create] = fake.journal.creates(prompt)
        assert create.detail["reference"] == "file" and create.detail["reference_size"] == "720x1280"
        assert create.detail["extra"] == {"seed": "7", "negative_prompt": "blur"}
        assert fake.journal.count("poll", prompt) >= 1 and fake.journal.count("download", prompt) == 3
        await client.close()


@pytest.mark.filterwarnings(SORA_DEPRECATION)
async def test_sdk_reference_of_the_wrong_size_and_a_wrong_key_are_refused() -> None:
    async with running() as (fake, _):
        client = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.videos.create(
                prompt="mismatch", size="1280x720", input_reference=("r.png", png(640, 360), "image/png")
            )
        assert bad.value.param == "input_reference"
        assert "Inpaint image must match the requested width and height" in str(bad.value.message)
        not_image = ("r.png", b"not an image", "image/png")
        with pytest.raises(openai.BadRequestError):
            await client.videos.create(prompt="junk ref", input_reference=not_image)
        assert fake.journal.count("rejected_create") == 2 and fake.journal.creates() == []

        intruder = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as denied:
            await intruder.videos.create(prompt="intruder")
        assert denied.value.code == "invalid_api_key"
        await client.close()
        await intruder.close()


async def test_auth_is_required_except_on_fake_routes() -> None:
    async with running() as (_, client):
        for method, path in [("POST", "/v1/videos"), ("GET", "/v1/videos/x"), ("POST", "/v1/video/create")]:
            r = await client.request(method, path, headers={"authorization": "Bearer nope"})
            assert r.status_code == 401
            assert r.json() == {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
        r = await client.get("/_fake/journal", headers={"authorization": ""})
        assert r.status_code == 200 and [e["status"] for e in r.json()] == [401, 401, 401]


# OpenAI dialect: lifecycle and routes --------------------------------------------------------------


async def test_openai_lifecycle_follows_the_clock() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (fake, client):
        r = await oa_create(client, "lifecycle #queue=1 #ready=3 #poll_after_ms=120", model="sora-2-pro")
        assert r.status_code == 200
        video = r.json()
        assert (
            video["status"] == "queued"
            and video["created_at"] == int(START)
            and video["model"] == "sora-2-pro"
        )
        vid = video["id"]

        r = await client.get(f"/v1/videos/{vid}")
        assert r.json()["status"] == "queued" and r.headers["openai-poll-after-ms"] == "120"
        assert (await client.get(f"/v1/videos/{vid}/content")).status_code == 404  # not ready
        clock.advance(1.5)
        body = (await client.get(f"/v1/videos/{vid}")).json()
        assert body["status"] == "in_progress" and body["progress"] == 25
        clock.advance(1.5)
        r = await client.get(f"/v1/videos/{vid}")
        body = r.json()
        assert body["status"] == "completed" and body["progress"] == 100 and body["error"] is None
        assert body["completed_at"] == int(START) + 3 and body["expires_at"] == int(START) + 3 + 3600
        assert "openai-poll-after-ms" not in r.headers
        assert set(body) == {
            "id", "object", "model", "status", "progress", "created_at", "completed_at", "expires_at",
            "prompt", "seconds", "size", "remixed_from_video_id", "error",
        }  # fmt: skip

        r = await client.get(f"/v1/videos/{vid}/content")
        assert r.headers["content-type"] == "video/mp4"
        assert int(r.headers["content-length"]) == len(r.content)
        assert (await client.get(f"/v1/videos/{vid}/content", params={"variant": "gif"})).status_code == 400
        clock.advance(3601)  # the assets expire an hour after completion
        r = await client.get(f"/v1/videos/{vid}/content")
        assert r.status_code == 404 and r.json()["error"]["code"] == "video_expired"

        r = await client.get("/v1/videos/video_unknown")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert fake.journal.entries("poll")[-1].status == 404


async def test_openai_validation_names_the_parameter() -> None:
    async with running() as (fake, client):
        cases = [({"seconds": "4"}, "prompt"), ({"prompt": "p", "size": "big"}, "size")]
        cases.append(({"prompt": "p", "seconds": "four"}, "seconds"))
        for data, param in cases:
            r = await client.post("/v1/videos", data=data)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        assert fake.journal.count("rejected_create") == 3


async def test_openai_json_create_with_vllm_fields_and_data_uri_reference() -> None:
    async with running() as (fake, client):
        data_uri = "data:image/png;base64," + base64.b64encode(png(480, 320)).decode()
        body = {
            "prompt": "vllm json",
            "size": "480x320",
            "seconds": 2,
            "image_reference": {"image_url": data_uri},
        }
        body |= {"num_inference_steps": 4, "guidance_scale": 3.5, "seed": 1}
        r = await client.post("/v1/videos", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["seconds"] == "2" and r.json()["size"] == "480x320"
        [entry] = fake.journal.creates("vllm json")
        assert entry.detail["reference"] == "image_url" and entry.detail["reference_size"] == "480x320"
        assert entry.detail["reference_url"] == data_uri[:100]
        assert entry.detail["extra"] == {"num_inference_steps": 4, "guidance_scale": 3.5, "seed": 1}
        body["size"] = "320x480"
        r = await client.post("/v1/videos", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == "input_reference"
        r = await client.post(
            "/v1/videos", data={"prompt": "url ref", "input_reference[image_url]": "https://cdn.test/a.png"}
        )
        assert r.status_code == 200
        assert fake.journal.creates("url ref")[0].detail["reference_url"] == "https://cdn.test/a.png"


async def test_openai_list_delete_and_remix() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (fake, client):
        ids = []
        for i in range(3):
            ids.append((await oa_create(client, f"listed {i} #ready=1")).json()["id"])
            clock.advance(0.1)
        page = (await client.get("/v1/videos", params={"limit": 2})).json()
        assert page["object"] == "list" and [v["id"] for v in page["data"]] == [ids[2], ids[1]]
        assert page["first_id"] == ids[2] and page["last_id"] == ids[1] and page["has_more"] is True
        rest = (await client.get("/v1/videos", params={"limit": 2, "after": ids[1]})).json()
        assert [v["id"] for v in rest["data"]] == [ids[0]] and rest["has_more"] is False
        asc = (await client.get("/v1/videos", params={"order": "asc"})).json()
        assert [v["id"] for v in asc["data"]] == ids
        assert (await client.get("/v1/videos", params={"limit": 101})).status_code == 400

        # Delete an unfinished job: it answers 404 from then on and never completes.
        r = await client.delete(f"/v1/videos/{ids[0]}")
        assert r.json() == {"id": ids[0], "object": "video.deleted", "deleted": True}
        assert fake.journal.entries("delete")[0].detail["was"] == "running"
        clock.advance(5)
        assert (await client.get(f"/v1/videos/{ids[0]}")).status_code == 404
        assert (await client.get(f"/v1/videos/{ids[0]}/content")).status_code == 404
        assert (await client.delete(f"/v1/videos/{ids[0]}")).status_code == 404
        assert [v["id"] for v in (await client.get("/v1/videos")).json()["data"]] == [ids[2], ids[1]]

        r = await client.post(f"/v1/videos/{ids[1]}/remix", json={"prompt": "remixed #ready=0"})
        remix = r.json()
        assert remix["remixed_from_video_id"] == ids[1] and remix["id"] != ids[1]
        assert remix["seconds"] == "4" and remix["size"] == "720x1280"
        assert (await client.get(f"/v1/videos/{remix['id']}")).json()["status"] == "completed"
        assert (await client.post("/v1/videos/video_nope/remix", json={"prompt": "x"})).status_code == 404
        assert [e.status for e in fake.journal.entries("remix")] == [200, 404]
        keyed = {"idempotency-key": "remix-1"}
        once = await client.post(f"/v1/videos/{ids[1]}/remix", json={"prompt": "keyed remix"}, headers=keyed)
        twice = await client.post(f"/v1/videos/{ids[1]}/remix", json={"prompt": "keyed remix"}, headers=keyed)
        assert once.json()["id"] == twice.json()["id"]
        assert fake.journal.count("remix", "keyed remix") == 1
        assert fake.journal.count("duplicate_create", "keyed remix") == 1

        r = await client.post(f"/v1/videos/{ids[1]}/cancel")
        assert r.status_code == 404 and fake.journal.count("cancel") == 1
        r = await client.get("/v1/nowhere")
        assert r.status_code == 404 and "error" in r.json()


# Create faults and idempotency ---------------------------------------------------------------------


async def test_idempotency_key_replays_the_same_job_unless_told_not_to() -> None:
    async with running(clock=ManualClock()) as (fake, client):
        for create, prompt in [(oa_create, "idem openai"), (uni_create, "idem unified")]:
            unkeyed = (await create(client, prompt)).json()["id"]
            first = (await create(client, prompt, headers={"idempotency-key": "k1"})).json()["id"]
            again = (await create(client, prompt, headers={"idempotency-key": "k1"})).json()["id"]
            assert first == again != unkeyed
            assert len(fake.journal.creates(prompt)) == 2
            [replay] = fake.journal.entries("duplicate_create", prompt)
            assert replay.key == "k1" and replay.job == first and replay.status == 200

        prompt = "no idem #no_idempotency"
        keyed = {"idempotency-key": "k2"}
        ids = {(await uni_create(client, prompt, headers=keyed)).json()["id"] for _ in range(3)}
        assert len(ids) == 3 and fake.journal.count("duplicate_create", prompt) == 0


async def test_429_then_503_with_retry_after_then_success() -> None:
    async with running() as (fake, client):
        prompt = "busy #429=1 #5xx=1 #retry_after=0.25"
        r = await oa_create(client, prompt)
        assert r.status_code == 429 and r.headers["retry-after"] == "0.25"
        assert r.headers["retry-after-ms"] == "250" and r.json()["error"]["code"] == "rate_limit_exceeded"
        r = await oa_create(client, prompt)
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
        assert (await oa_create(client, prompt)).status_code == 200
        r = await uni_create(client, "uni busy #429=2")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert [e.status for e in fake.journal.entries("rejected_create")] == [429, 503, 429]
        assert len(fake.journal.creates(prompt)) == 1


async def test_accept_then_drop_makes_the_job_and_a_keyed_retry_finds_it() -> None:
    async with running() as (fake, client):
        prompt = "dropped #accept_then_drop=1"
        headers = {"idempotency-key": "drop-1"}
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v1/video/create", json={"model": "sora-2", "prompt": prompt}, headers=headers)
        r = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": prompt}, headers=headers)
        assert r.status_code == 200
        [made] = fake.journal.creates(prompt)
        assert made.detail["fault"] == "accept_then_drop" and made.job == r.json()["id"]
        assert fake.journal.count("duplicate_create", prompt) == 1
        with pytest.raises(httpx.RemoteProtocolError):
            await oa_create(client, "oa dropped #accept_then_drop=1")
        assert len(fake.journal.creates("oa dropped #accept_then_drop=1")) == 1


async def test_accept_then_hang_outlasts_a_short_client_timeout() -> None:
    async with running(hang_seconds=0.5) as (fake, client):
        prompt = "hung #accept_then_hang=1"
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/video/create", json={"model": "m", "prompt": prompt}, timeout=0.1)
        assert fake.journal.creates(prompt)[0].detail["fault"] == "accept_then_hang"
        assert (await uni_create(client, prompt)).status_code == 200  # only the first


async def test_moderation_at_submit_or_during_generation() -> None:
    async with running(clock=ManualClock(), ready_seconds=0) as (fake, client):
        r = await oa_create(client, "blocked #moderation")
        assert r.status_code == 400 and r.json()["error"]["code"] == "moderation_blocked"
        assert fake.journal.entries("rejected_create")[0].detail["fault"] == "moderation"
        vid = (await oa_create(client, "late block #moderation=job")).json()["id"]
        body = (await client.get(f"/v1/videos/{vid}")).json()
        assert body["status"] == "failed" and body["error"]["code"] == "moderation_blocked"
        assert (await client.get(f"/v1/videos/{vid}/content")).status_code == 404


async def test_http200_error_in_the_unified_dialect() -> None:
    async with running() as (fake, client):
        r = await uni_create(client, "busy200 #http200_error=1")
        assert r.status_code == 200 and r.json() == {
            "code": 500,
            "msg": "upstream busy, retry later",
            "data": None,
        }
        assert (await uni_create(client, "busy200 #http200_error=1")).json()["status"] == "pending"
        assert [e.op for e in fake.journal] == ["rejected_create", "create"]
        assert (await oa_create(client, "oa #http200_error=1")).json()["object"] == "video"  # unified only


async def test_latency_delays_every_response_for_the_prompt() -> None:
    async with running(ready_seconds=0) as (_, client):
        started = time.monotonic()
        task_id = (await uni_create(client, "slow #latency=0.3")).json()["id"]
        await uni_query(client, task_id)
        assert time.monotonic() - started >= 0.6


async def test_x_fake_header_configures_a_whole_channel() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (fake, client):
        channel = {"x-fake": "429=1; ready=0.5; envelope"}
        body = {"model": "sora-2", "prompt": "via header"}
        assert (await client.post("/v1/video/create", json=body, headers=channel)).status_code == 429
        created = (await client.post("/v1/video/create", json=body, headers=channel)).json()
        assert created["code"] == 0 and created["data"]["status"] == "pending"
        clock.advance(0.5)
        # The create's header still shapes later answers; a poll's own header adds to it.
        state = await uni_query(client, created["data"]["id"], **{"x-fake": "ts=s"})
        assert state["data"]["status"] == "completed" and state["data"]["status_update_time"] == int(
            START + 0.5
        )
        assert fake.journal.creates("via header")[0].prompt == "via header"


# Poll faults and outcomes --------------------------------------------------------------------------


async def test_poll_faults_5xx_hang_and_malformed() -> None:
    async with running(clock=ManualClock(), hang_seconds=0.4) as (fake, client):
        prompt = "shaky #poll5xx=1 #poll_hang=1 #malformed=1"
        vid = (await oa_create(client, prompt)).json()["id"]
        r = await client.get(f"/v1/videos/{vid}")
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"/v1/videos/{vid}", timeout=0.1)
        r = await client.get(f"/v1/videos/{vid}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            r.json()
        assert (await client.get(f"/v1/videos/{vid}")).json()["status"] == "in_progress"
        faults = [e.detail.get("fault") for e in fake.journal.entries("poll", prompt)]
        assert faults == ["poll5xx", "poll_hang", "malformed", None]


async def test_fail_with_a_code_for_the_first_jobs_only() -> None:
    async with running(clock=ManualClock(), ready_seconds=0) as (_, client):
        prompt = "doomed #fail=content_policy_violation #fail_jobs=1"
        first, second = [(await oa_create(client, prompt)).json()["id"] for _ in range(2)]
        body = (await client.get(f"/v1/videos/{first}")).json()
        assert body["status"] == "failed" and body["error"]["code"] == "content_policy_violation"
        assert (await client.get(f"/v1/videos/{second}")).json()["status"] == "completed"
        task = (await uni_create(client, "uni doomed #fail=boom")).json()["id"]
        state = await uni_query(client, task)
        assert state["status"] == "failed" and state["error"]["code"] == "boom" and state["fail_reason"]


async def test_watermark_fail_in_the_unified_dialect() -> None:
    async with running(clock=ManualClock(), ready_seconds=0) as (_, client):
        prompt = "marked #watermark_fail=2"
        forced = (await uni_create(client, prompt, watermark=False)).json()["id"]
        lenient = (await uni_create(client, prompt, watermark="true")).json()["id"]
        clean = (await uni_create(client, prompt, watermark=False)).json()["id"]
        failed = await uni_query(client, forced)
        assert failed["status"] == "failed" and failed["error"]["code"] == "watermark_removal_failed"
        assert failed["watermarked"] is None
        assert (await uni_query(client, lenient))["watermarked"] is True
        assert (await uni_query(client, clean))["watermarked"] is False


# Unified dialect -----------------------------------------------------------------------------------


async def test_unified_lifecycle_links_and_journal_detail() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (fake, client):
        prompt = "unified fox #ready=2"
        fields = {
            "images": ["https://img.test/a.png", "data:image/png;base64," + "A" * 200],
            "orientation": "landscape",
            "size": "large",
            "duration": "3",
            "watermark": "false",
            "private": True,
            "style": "anime",
            "storyboard": False,
            "character_url": "https://img.test/c.mp4",
            "character_timestamps": "1,3",
            "callback": "x",
        }
        created = (await uni_create(client, prompt, **fields)).json()
        assert re.fullmatch(r"sora-2:task_[0-9a-z]{26}", created["id"])
        assert created == {"id": created["id"], "status": "pending", "status_update_time": int(START * 1000)}
        [entry] = fake.journal.creates(prompt)
        assert entry.detail["images"] == 2 and len(entry.detail["image_values"][1]) == 100
        assert entry.detail["duration"] == "3" and entry.detail["watermark"] == "false"
        assert entry.detail["private"] is True and entry.detail["style"] == "anime"
        assert entry.detail["character_timestamps"] == "1,3" and entry.detail["extra"] == {"callback": "x"}

        clock.advance(1)
        state = await uni_query(client, created["id"])
        assert state["status"] == "processing" and state["progress"] == 50 and state["video_url"] is None
        assert state["size"] == "large" and state["detail"]["input"]["style"] == "anime"
        clock.advance(1)
        bare = created["id"].split(":", 1)[1]
        state = await uni_query(client, bare)  # the query takes the id without its prefix too
        assert state["status"] == "completed" and state["watermarked"] is False
        assert state["created_at"] == int(START) and state["status_update_time"] == int((START + 2) * 1000)
        assert (state["width"], state["height"]) == (120, 66)
        assert state["video_url"].startswith(f"{fake.base_url}/_fake/files/{bare}.mp4?exp=")

        video = await client.get(state["video_url"], headers={"authorization": ""})  # a CDN: no key
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert probe(video.content) == (120, 66, 12)
        thumb = await client.get(state["thumbnail_url"])
        assert thumb.headers["content-type"] == "image/webp"
        forged = re.sub(r"sig=\w+", "sig=forged", state["video_url"])
        assert (await client.get(forged)).status_code == 403
        assert (await client.get("/_fake/files/task_unknown.mp4")).status_code == 404
        again = await uni_query(client, created["id"])
        assert again["video_url"] != state["video_url"]  # every query signs afresh
        clock.advance(3601)
        assert (await client.get(state["video_url"])).status_code == 403  # the link expired
        assert [e.status for e in fake.journal.entries("download")] == [200, 200, 403, 404, 403]
        assert {e.dialect for e in fake.journal.entries("download")} == {"files"}

        assert (await client.get("/v1/video/query", params={"id": "sora-2:task_nope"})).status_code == 404
        assert (await client.post("/v1/video/cancel", params={"id": created["id"]})).status_code == 404


async def test_result_links_use_the_cdn_base_or_else_the_request_host() -> None:
    async with running(clock=ManualClock(), ready_seconds=0, cdn_base_url="http://cdn.fake.test:9") as (
        fake,
        client,
    ):
        task = (await uni_create(client, "cdn", duration=1)).json()["id"]
        url = (await uni_query(client, task))["video_url"]
        assert url.startswith("http://cdn.fake.test:9/_fake/files/task_")
        local = url.replace("http://cdn.fake.test:9", str(fake.base_url))  # what a test's resolver does
        assert (await client.get(local)).status_code == 200
    async with running(clock=ManualClock(), ready_seconds=0) as (fake, client):
        fake.base_url = None
        task = (await uni_create(client, "host", duration=1)).json()["id"]
        url = (await uni_query(client, task, host="relay.example:8080"))["video_url"]
        assert url.startswith("http://relay.example:8080/_fake/files/task_")


async def test_unified_validation() -> None:
    async with running() as (fake, client):
        bad = [
            ({"prompt": "p"}, "model"),
            ({"model": "m"}, "prompt"),
            ({"model": "m", "prompt": "p", "size": "xl"}, "size"),
        ]
        bad += [({"model": "m", "prompt": "p", "duration": "ten"}, "duration")]
        bad += [({"model": "m", "prompt": "p", "orientation": "square"}, "orientation")]
        bad += [({"model": "m", "prompt": "p", "watermark": "maybe"}, "watermark")]
        for body, param in bad:
            r = await client.post("/v1/video/create", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
        assert fake.journal.count("rejected_create") == len(bad)


async def test_expired_link_directive_in_both_dialects() -> None:
    async with running(clock=ManualClock(), ready_seconds=0) as (fake, client):
        task = (await uni_create(client, "stale #expired_link=1", duration=1)).json()["id"]
        url = (await uni_query(client, task))["video_url"]
        assert (await client.get(url)).status_code == 403
        assert (await client.get(url)).status_code == 403  # that link stays expired
        fresh = (await uni_query(client, task))["video_url"]
        assert (await client.get(fresh)).status_code == 200

        vid = (await oa_create(client, "oa stale #expired_link=1", seconds="1")).json()["id"]
        r = await client.get(f"/v1/videos/{vid}/content")
        assert r.status_code == 404 and r.json()["error"]["code"] == "video_expired"
        assert (await client.get(f"/v1/videos/{vid}/content")).status_code == 200
        assert [e.status for e in fake.journal.entries("download")] == [403, 403, 200, 404, 200]


async def test_unified_shapes() -> None:
    clock = ManualClock()
    async with running(clock=clock, ready_seconds=0) as (_, client):
        prompt = "shapes #envelope #bare_id #ts=iso #progress_str #url_list #error_string"
        created = (await uni_create(client, prompt)).json()
        assert created["code"] == 0 and created["msg"] == "success"
        assert re.fullmatch(r"task_[0-9a-z]{26}", created["data"]["id"])
        assert created["data"]["status_update_time"] == "2025-10-09T16:53:20.000+08:00"
        state = (await uni_query(client, created["data"]["id"]))["data"]
        assert (
            state["progress"] == "100"
            and isinstance(state["video_url"], list)
            and len(state["video_url"]) == 1
        )
        assert state["created_at"] == "2025-10-09T16:53:20.000+08:00"

        failed = await uni_query(client, (await uni_create(client, prompt + " #fail=x")).json()["data"]["id"])
        assert failed["data"]["error"] == failed["data"]["fail_reason"]
        assert isinstance(failed["data"]["error"], str)

        dated = (await uni_create(client, "dated #ts=datetime")).json()
        assert dated["status_update_time"] == "2025-10-09 16:53:20"
        assert datetime.strptime(dated["status_update_time"], "%Y-%m-%d %H:%M:%S")
        seconds = await uni_query(client, (await uni_create(client, "secs #ts=s")).json()["id"])
        assert seconds["status_update_time"] == int(START)
        millis = await uni_query(client, (await uni_create(client, "millis #ts=ms")).json()["id"])
        assert millis["created_at"] == int(START * 1000)


async def test_synonyms_and_unknown_status() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (_, client):
        task = (await uni_create(client, "words #synonyms #queue=10 #ready=20 #unknown_status=1")).json()[
            "id"
        ]
        seen = [(await uni_query(client, task))["status"] for _ in range(5)]
        assert seen == ["warming_up", "pending", "not_start", "submitted", "QUEUED"]
        clock.advance(10)
        assert (await uni_query(client, task))["status"] in {
            "IN_PROGRESS",
            "running",
            "processing",
            "video_generating",
        }
        clock.advance(10)
        done = {(await uni_query(client, task))["status"] for _ in range(4)}
        assert done == {"succeeded", "SUCCESS", "success", "completed"}

        vid = (await oa_create(client, "oa words #synonyms #fail=x #ready=0")).json()["id"]
        failed = {(await client.get(f"/v1/videos/{vid}")).json()["status"] for _ in range(3)}
        assert failed == {"FAILURE", "error", "failed"}


# The journal over HTTP, reset, and serving -------------------------------------------------------


async def test_journal_over_http_and_reset() -> None:
    async with running() as (fake, client):
        task = (await uni_create(client, "journalled")).json()["id"]
        await uni_query(client, task)
        entries = (await client.get("/_fake/journal")).json()
        assert [e["op"] for e in entries] == ["create", "poll"]
        assert (
            entries[0]["dialect"] == "unified" and entries[0]["job"] == task and entries[0]["status"] == 200
        )
        assert set(entries[0]) == {"op", "dialect", "job", "key", "prompt", "status", "at", "detail"}
        assert len((await client.get("/_fake/journal", params={"op": "poll"})).json()) == 1
        assert (await client.post("/_fake/reset")).json() == {"reset": True}
        assert len(fake.journal) == 0
        assert (await client.get("/v1/video/query", params={"id": task})).status_code == 404


async def test_serve_fake_upstream_until_cancelled() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve_fake_upstream("127.0.0.1", port, ready_seconds=0))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            with anyio.fail_after(10):
                while True:
                    try:
                        r = await client.post("/v1/video/create", json={"model": "m", "prompt": "served"})
                        break
                    except httpx.ConnectError:
                        await anyio.sleep(0.02)
            state = await uni_query(client, r.json()["id"])
            assert state["video_url"].startswith(f"http://127.0.0.1:{port}/_fake/files/")
        tg.cancel_scope.cancel()
