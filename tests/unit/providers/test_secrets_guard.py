"""A channel's secrets never reach an error message, even when the upstream echoes them back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from vidgate.config import Settings
from vidgate.domain.tasks import WatermarkMode
from vidgate.net.fetch import SafeFetcher
from vidgate.net.policy import FetchPolicy
from vidgate.providers.base import ProviderError, StepContext, SubmitRequest, UpstreamJob
from vidgate.providers.registry import ProviderDeps, ProviderRegistry
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.store.blobs import LocalBlobStore

pytestmark = pytest.mark.anyio
SECRET = "sk-live-verysecret-123456"


def echo_the_key(request: httpx.Request) -> httpx.Response:
    key = request.headers["authorization"].removeprefix("Bearer ")
    if request.method == "POST":
        return httpx.Response(
            400, json={"error": {"code": "invalid_value", "message": f"bad request from {key}"}}
        )
    return httpx.Response(
        200, json={"id": "v1", "status": "failed", "error": {"message": f"key {key} revoked"}}
    )


async def test_upstream_echoes_of_the_api_key_are_redacted(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        channels=[
            {
                "name": "up",
                "kind": "openai",
                "base_url": "http://up/v1",
                "api_key": SECRET,
                "models": ["sora-2"],
            }
        ],
    )
    fetcher = SafeFetcher(FetchPolicy())
    deps = ProviderDeps(
        settings, LocalBlobStore(tmp_path / "media"), fetcher, UpstreamHttp(httpx.MockTransport(echo_the_key))
    )
    registry = ProviderRegistry(deps)
    ctx = StepContext("t", tmp_path, report_progress=lambda _: _noop())
    request = SubmitRequest("t", "t-0", "sora-2", "p", 720, 1280, 4, WatermarkMode.PREFER_CLEAN, False)
    try:
        with pytest.raises(ProviderError) as caught:
            await registry("up").submit(request, ctx)
        assert SECRET not in caught.value.message and "[redacted]" in caught.value.message
        assert SECRET not in str(caught.value)
        status = await registry("up").poll(UpstreamJob("v1"), ctx)
        assert status.error_message is not None and SECRET not in status.error_message
    finally:
        await registry.aclose()
        await fetcher.aclose()


async def _noop() -> None:
    return None
