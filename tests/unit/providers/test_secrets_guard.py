"""A channel's secrets never reach an error message, even when the upstream echoes them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from vidgate.config import Settings
from vidgate.domain.tasks import WatermarkMode
from vidgate.net.fetch import SafeFetcher
from vidgate.net.policy import FetchPolicy
from vidgate.providers.base import ProviderError, StepContext, SubmitRequest, UpstreamJob
from vidgate.providers.registry import ProviderDeps, ProviderRegistry
from vidgate.providers.secrets_guard import SecretScrubbing
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.redaction import Redactor
from vidgate.store.blobs import LocalBlobStore

pytestmark = pytest.mark.anyio
SECRET = "sk-live-verysecret-123456"
PADDING = "x" * 480  # a client's long prompt, echoed before the key: a cut before the scrub keeps its head


def echo_the_key(request: httpx.Request) -> httpx.Response:
    key = request.headers["authorization"].removeprefix("Bearer ")
    if request.method == "POST":
        return httpx.Response(
            400, json={"error": {"code": "invalid_value", "message": f"bad request from {key}"}}
        )
    return httpx.Response(
        200, json={"id": "v1", "status": "failed", "error": {"message": f"key {key} revoked"}}
    )


def echo_it_everywhere(request: httpx.Request) -> httpx.Response:
    """The probe's upstream: the key as the error's code, upper-cased, after the padded prompt."""
    key = request.headers["authorization"].removeprefix("Bearer ")
    error = {"code": key, "type": key.upper(), "message": f"{PADDING} Incorrect API key {key.upper()}"}
    if request.method == "POST":
        return httpx.Response(400, json={"error": error})
    return httpx.Response(200, json={"id": "v1", "status": "failed", "error": error})


def leaked(text: str | None, run: int = 8) -> bool:
    low = (text or "").lower()
    return any(SECRET[i : i + run] in low for i in range(len(SECRET) - run + 1))


def registry_on(tmp_path: Path, handler: Any) -> tuple[ProviderRegistry, SafeFetcher]:
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
        settings, LocalBlobStore(tmp_path / "media"), fetcher, UpstreamHttp(httpx.MockTransport(handler))
    )
    return ProviderRegistry(deps), fetcher


async def test_upstream_echoes_of_the_api_key_are_redacted(tmp_path: Path) -> None:
    registry, fetcher = registry_on(tmp_path, echo_the_key)
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


async def test_a_key_in_the_code_upper_cased_or_past_a_long_prompt_never_comes_back(tmp_path: Path) -> None:
    registry, fetcher = registry_on(tmp_path, echo_it_everywhere)
    ctx = StepContext("t", tmp_path, report_progress=lambda _: _noop())
    request = SubmitRequest("t", "t-0", "sora-2", PADDING, 720, 1280, 4, WatermarkMode.PREFER_CLEAN, False)
    try:
        with pytest.raises(ProviderError) as caught:
            await registry("up").submit(request, ctx)
        error = caught.value
        assert error.code == "upstream_error", error.code  # a key is no code
        assert not leaked(error.message) and not leaked(str(error)), error.message
        assert "[redacted]" in error.message or len(error.message) == 500
        status = await registry("up").poll(UpstreamJob("v1"), ctx)  # a job that fails later says it too
        assert status.error_code == "upstream_error", status.error_code
        assert not leaked(status.error_message), status.error_message
    finally:
        await registry.aclose()
        await fetcher.aclose()


def test_only_codes_that_look_like_codes_pass() -> None:
    guard = SecretScrubbing(cast(Any, None), Redactor([SECRET]))
    assert guard.code("invalid_request_error") == "invalid_request_error"
    assert guard.code("InvalidParameter") == "invalidparameter"
    assert guard.code("content_policy") == "content_policy"
    for bad in ["two words", "a" * 49, "x<script>", SECRET, SECRET.upper(), f"bad_{SECRET}", "ünïcode", ""]:
        assert guard.code(bad) == "upstream_error", bad


async def _noop() -> None:
    return None
