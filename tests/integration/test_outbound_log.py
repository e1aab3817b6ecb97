"""Outbound requests are logged with their host and path but never their query string or userinfo:
presigned image links and callback URLs carry third-party credentials there. httpx's own request log,
which prints URLs whole, stays silent."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import structlog
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from tests.helpers import wait_for_status
from vidgate.channel_config import ChannelSettings
from vidgate.config import Settings
from vidgate.logs import QUIETED_LOGGERS, configure_logging
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.testing.server import serving

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-credential"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


async def image(request: Request) -> Response:
    return Response(png(), media_type="image/png")


async def hook(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def upstream_video(request: Request) -> Response:
    return Response(b'{"id": "v1", "status": "queued"}', media_type="application/json")


third_party = Starlette(
    routes=[
        Route("/img/a.png", image),
        Route("/hook", hook, methods=["POST"]),
        Route("/v1/videos/v1", upstream_video),
    ]
)


@pytest.fixture
def production_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Logging as `vidgate serve` sets it up, at its most verbose; every record of the standard library's
    loggers (httpx's included) is captured too."""
    configure_logging(Settings(log_level="debug"))
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        structlog.reset_defaults()
        for name in QUIETED_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def outbound(logs: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["method"], e["url"], e["status"]) for e in logs if e["event"] == "outbound request"]


async def test_image_fetch_and_callback_are_logged_without_their_query_strings(
    start_gateway: Any, production_logging: pytest.LogCaptureFixture
) -> None:
    async with serving(third_party) as base:
        with capture_logs() as logs:
            async with start_gateway(fetch_allow_private=True) as gw:
                async with gw.client(await gw.new_key()) as client:
                    body = {
                        "model": "sora-2",
                        "prompt": "x",
                        "images": [f"{base}/img/a.png?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}"],
                        "callback_url": f"{base}/hook?token={SECRET}",
                    }
                    created = await client.post("/v1/video/create", json=body)
                    assert created.status_code == 200, created.text
                    assert (await wait_for_status(client, created.json()["id"]))["status"] == "completed"
                    with anyio.fail_after(30):  # the callback goes out once the task has ended
                        while ("POST", f"{base}/hook", 204) not in outbound(logs):
                            await anyio.sleep(0.02)
    assert ("GET", f"{base}/img/a.png", 200) in outbound(logs)
    assert SECRET not in repr(logs)
    assert SECRET not in production_logging.text
    assert not [r for r in production_logging.records if r.name.startswith(QUIETED_LOGGERS)]


async def test_upstream_requests_are_logged_without_userinfo_or_query(
    production_logging: pytest.LogCaptureFixture,
) -> None:
    async with serving(third_party) as base:
        channel = ChannelSettings(
            name="up", kind="openai", base_url=f"{base}/v1", api_key="sk-x", models=["sora-2"]
        )
        with capture_logs() as logs:
            async with UpstreamHttp().client_for(channel) as client:
                response = await client.get("videos/v1", params={"signature": SECRET})
                assert response.status_code == 200
                userinfo_url = base.replace("http://", f"http://user:{SECRET}@")
                assert (await client.get(f"{userinfo_url}/v1/videos/v1")).status_code == 200
    assert outbound(logs) == [("GET", f"{base}/v1/videos/v1", 200)] * 2
    assert SECRET not in repr(logs) and SECRET not in production_logging.text
