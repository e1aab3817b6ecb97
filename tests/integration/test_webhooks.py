"""callback_url: a signed event POSTed when a task ends, in the dialect it was created with; retried
with backoff when the receiver fails, and signed so receivers can tell it is genuine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import pytest

from tests.helpers import scripted_channel, wait_for_status
from vidgate import signing
from vidgate.api.actions import cancel_task
from vidgate.ids import parse_task_id

pytestmark = pytest.mark.anyio


class Receiver:
    """A webhook receiver on loopback that answers `fail_first` requests with 500, then 204."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(500 if len(receiver.calls) <= receiver.fail_first else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    async def wait_for(self, count: int, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while len(self.calls) < count:
                await anyio.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, for this file and test_webhook_secrets.py."""
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def webhook_secret(client: httpx.AsyncClient) -> str:
    """The secret the client's key signs its webhooks with (each key has its own)."""
    r = await client.get("/v1/webhook_secret")
    assert r.status_code == 200, r.text
    secret: str = r.json()["secret"]
    return secret


def event_of(call: tuple[dict[str, str], bytes], secret: str) -> dict:
    headers, body = call
    assert headers["content-type"] == "application/json"
    assert signing.verify_webhook(secret, headers["x-vidgate-signature"], body, now_s=int(time.time()))
    return json.loads(body)


async def test_completed_task_posts_a_signed_event_once(start_gateway, tmp_path, receiver) -> None:
    async with start_gateway(fetch_allow_private=True, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "sora-2", "prompt": "x", "callback_url": receiver.url}
            task_id = (await client.post("/v1/video/create", json=body)).json()["id"]
            assert (await wait_for_status(client, task_id))["status"] == "completed"
            secret = await webhook_secret(client)
            await receiver.wait_for(1)
            events = [e.message for e in await gw.runtime.tasks.events(parse_task_id(task_id))]
            with anyio.fail_after(10):
                while "callback delivered" not in events:
                    await anyio.sleep(0.02)
                    events = [e.message for e in await gw.runtime.tasks.events(parse_task_id(task_id))]
    [call] = receiver.calls
    event = event_of(call, secret)
    assert event["type"] == "video.completed" and event["object"] == "event"
    assert event["data"]["id"] == task_id and event["data"]["video_url"].startswith(gw.base_url)


async def test_a_failing_receiver_is_retried_then_gets_it(start_gateway, tmp_path, receiver) -> None:
    receiver.fail_first = 2
    async with start_gateway(
        fetch_allow_private=True, channels=[scripted_channel(tmp_path / "up", fail_code="moderation_blocked")]
    ) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "sora-2", "prompt": "x", "callback_url": receiver.url}
            task_id = (await client.post("/v1/video/create", json=body)).json()["id"]
            secret = await webhook_secret(client)
            await receiver.wait_for(3)
            messages = [e.message or "" for e in await gw.runtime.tasks.events(parse_task_id(task_id))]
    assert sum("callback attempt" in m for m in messages) == 2
    events = [event_of(call, secret) for call in receiver.calls]
    assert {e["id"] for e in events} == {f"evt_{parse_task_id(task_id)}"}  # one event, delivered thrice
    assert events[-1]["type"] == "video.failed"
    assert events[-1]["data"]["error"]["code"] == "moderation_blocked"


async def test_openai_dialect_events_carry_the_video_object(start_gateway, tmp_path, receiver) -> None:
    async with start_gateway(fetch_allow_private=True, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post(
                "/v1/videos", data={"prompt": "x", "seconds": "4", "callback_url": receiver.url}
            )
            assert r.status_code == 200, r.text
            secret = await webhook_secret(client)
            await receiver.wait_for(1)
    event = event_of(receiver.calls[0], secret)
    assert event["type"] == "video.completed"
    assert event["data"]["id"] == r.json()["id"] and event["data"]["object"] == "video"


async def test_cancelling_sends_a_cancelled_event(start_gateway, tmp_path, receiver) -> None:
    channel = scripted_channel(tmp_path / "up", polls=10_000, poll_after=0.05)
    async with start_gateway(fetch_allow_private=True, channels=[channel]) as gw:
        key = await gw.new_key()
        async with gw.client(key) as client:
            body = {"model": "sora-2", "prompt": "x", "callback_url": receiver.url}
            task_id = (await client.post("/v1/video/create", json=body)).json()["id"]
            await wait_for_status(client, task_id, ("processing",))
            task = await gw.runtime.tasks.get(parse_task_id(task_id))
            await cancel_task(gw.runtime, task.id, owner=task.owner)
            secret = await webhook_secret(client)
            await receiver.wait_for(1)
    assert event_of(receiver.calls[0], secret)["type"] == "video.cancelled"


def test_signature_verification_refuses_tampering_and_replays() -> None:
    body = b'{"id":"evt_1"}'
    header = signing.webhook_signature(b"s", 1000, body)
    assert signing.verify_webhook(b"s", header, body, now_s=1100)
    assert not signing.verify_webhook(b"s", header, body + b" ", now_s=1100)
    assert not signing.verify_webhook(b"other", header, body, now_s=1100)
    assert not signing.verify_webhook(b"s", header, body, now_s=1000 + 301)
    assert not signing.verify_webhook(b"s", header.replace("t=1000", "t=1100"), body, now_s=1100)
    assert not signing.verify_webhook(b"s", "garbage", body, now_s=1100)
