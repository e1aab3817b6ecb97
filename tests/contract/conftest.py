"""The contract suite's parts: the shipped fake upstream on loopback, and gateways with channels on it."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

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


def png_data_uri(width: int = 640, height: int = 960) -> str:
    image = Image.new("RGB", (width, height), (30, 90, 160))
    for x in range(0, width, 32):
        image.paste((200, x % 255, 60), (x, 0, x + 12, height))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
