"""The contract suite's parts: the shipped fake upstream on loopback, gateways with channels on it, and
what the per-vendor channel tests (`test_*_channel.py`) do alike: a SQLite-only database, prompts unique
to a test, creates through either dialect, settling tasks, refusals at create, failing over."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from vidgate.config import ChannelSettings, WorkerSettings
from vidgate.testing.fake_upstream import FakeUpstream
from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver
from vidgate.testing.server import bind_loopback, serving

FAKE_KEY = "sk-fake-upstream"
# The fake's CDN links use this name; the gateway's resolver maps it to loopback (with
# fetch_allow_private, the test-only setting, since loopback is what the SSRF policy refuses).
CDN_HOST = "cdn.fake.test"


@dataclass
class FakeServer:
    fake: FakeUpstream
    url: str  # http://127.0.0.1:PORT

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def ops(self, prompt: str) -> list[str]:
        return [e.op for e in self.fake.journal.entries(prompt=prompt)]


@asynccontextmanager
async def serve_fake(**kwargs: Any) -> AsyncIterator[FakeServer]:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "api_key": FAKE_KEY,
        "ready_seconds": 0.3,
        "poll_after_ms": 50,
        "clip_scale": 20,
        "hang_seconds": 3.0,
        "cdn_base_url": f"http://{CDN_HOST}:{port}",
        **kwargs,
    }
    fake = FakeUpstream(**options)
    fake.base_url = f"http://127.0.0.1:{port}"
    async with serving(fake.app, sock) as url:
        yield FakeServer(fake, url)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeServer]:
    async with serve_fake() as server:
        yield server


@pytest.fixture
async def second_upstream() -> AsyncIterator[FakeServer]:
    async with serve_fake() as server:
        yield server


@pytest.fixture(params=["openai", "unified"])
def dialect(request: pytest.FixtureRequest) -> str:
    """Every contract test runs against both upstream adapters."""
    return str(request.param)


def upstream_channel(kind: str, server: FakeServer, name: str = "up", **overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "base_url": server.api,
        "api_key": FAKE_KEY,
        "models": ["sora-2"],
        "request_timeout_seconds": 1.0,
        "poll_timeout_seconds": 1.0,
        **overrides,
    }
    return ChannelSettings(**values)


QUICK_WORKER = WorkerSettings(
    lease_seconds=5,
    idle_poll_seconds=0.05,
    retry_base_seconds=0.05,
    retry_max_seconds=0.4,
    default_poll_seconds=0.1,
    busy_retry_seconds=0.1,
    task_deadline_seconds=30,
)


def gateway_options(*channels: ChannelSettings, **worker: Any) -> dict[str, Any]:
    return {
        "run_worker": True,
        "channels": list(channels),
        "fetch_allow_private": True,
        "resolver": StaticResolver({**PUBLIC_TEST_HOSTS, CDN_HOST: ["127.0.0.1"]}),
        "worker": QUICK_WORKER.model_copy(update=worker),
    }


def assert_each_video_copied(server: FakeServer, texts: list[str]) -> None:
    """The vendor's storage (the CDN links) served the video of each prompt, every answer a 200. A copy
    cut short is tried again (a download costs nothing upstream), so a loaded machine may fetch one
    twice: how many times is not part of the contract."""
    downloads = [e for e in server.fake.journal.entries("download") if e.dialect == "files"]
    assert {e.status for e in downloads} == {200}, [(e.prompt, e.status) for e in downloads]
    assert {e.prompt for e in downloads} == set(texts)


def png_data_uri(width: int = 640, height: int = 960) -> str:
    image = Image.new("RGB", (width, height), (30, 90, 160))
    for x in range(0, width, 32):
        image.paste((200, x % 255, 60), (x, 0, x + 12, height))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# The per-vendor channel tests ---------------------------------------------------------------------

StartGateway = Callable[..., AbstractAsyncContextManager[Any]]


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    """SQLite only, for a channel test module that takes it as its `db_url` (`db_url = sqlite_db_url`):
    the shared vendor contract runs every kind on PostgreSQL too."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


def unique_prompt(words: str, directives: str = "") -> str:
    """`words` made unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"{words} {uuid.uuid4().hex[:8]} {directives}".strip()


async def create_task(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    """POST `body` to `path` (`/v1/video/create` or `/v1/videos`); the id of the task it made."""
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def settle_all(gw: Any, client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    """The tasks `ids` once each has settled, waited for side by side, in their order."""
    from tests.contract.test_upstream_contract import settled  # it imports this module

    finals: list[dict[str, Any]] = [{}] * len(ids)

    async def settle(index: int) -> None:
        finals[index] = await settled(gw, client, ids[index])

    async with anyio.create_task_group() as tg:
        for index in range(len(ids)):
            tg.start_soon(settle, index)
    return finals


async def refused_params(
    start_gateway: StartGateway, channel: ChannelSettings, bodies: list[dict[str, Any]]
) -> list[str]:
    """The `param` each unified create of `bodies` is refused with (each must be a 400), on a gateway
    with `channel` and no worker."""
    refused = []
    async with start_gateway(**{**gateway_options(channel), "run_worker": False}) as gw:
        async with gw.client(await gw.new_key()) as client:
            for body in bodies:
                response = await client.post("/v1/video/create", json=body)
                assert response.status_code == 400, response.text
                refused.append(response.json()["error"]["param"])
    return refused


async def failed_over(
    start_gateway: StartGateway,
    server: FakeServer,
    refusing: ChannelSettings,
    next_channel: ChannelSettings,
    body: dict[str, Any],
    refused_with: int,
) -> None:
    """A unified create of `body` that `refusing` turns down (HTTP `refused_with`, nothing made) is made
    once, on `next_channel`, which the task completes on."""
    from tests.contract.test_upstream_contract import settled  # it imports this module

    async with start_gateway(**gateway_options(refusing, next_channel)) as gw:
        async with gw.client(await gw.new_key()) as client:
            final = await settled(gw, client, await create_task(client, "/v1/video/create", body))
    assert final["status"] == "completed" and final["detail"]["channel"] == next_channel.name, final
    text = body["prompt"]
    assert [e.status for e in server.fake.journal.entries("rejected_create", text)] == [refused_with]
    assert len(server.fake.journal.creates(text)) == 1
