"""`Client` and `AsyncClient`: configuration (arguments, else VIDGATE_BASE_URL / VIDGATE_API_KEY),
the HTTP client's lifetime, and the `videos` / `models` / `webhooks` / `admin` namespaces."""

from __future__ import annotations

import os
from importlib import metadata
from types import TracebackType

import httpx

from vidgate.client._transport import AsyncRunner, RetryPolicy, SyncRunner
from vidgate.client.admin import Admin, AdminOps, AsyncAdmin
from vidgate.client.catalog import AsyncModels, ModelOps, Models
from vidgate.client.errors import VidgateError
from vidgate.client.videos import AsyncVideos, VideoOps, Videos
from vidgate.client.webhooks import AsyncWebhooks, WebhookOps, Webhooks

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("VIDGATE_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")
    # An OpenAI-style base URL (".../v1") works too: the SDK adds /v1 itself.
    return url.removesuffix("/v1")


def _api_key(api_key: str | None) -> str:
    key = (api_key or os.environ.get("VIDGATE_API_KEY") or "").strip()
    if not key:
        raise VidgateError("No API key: pass api_key= or set VIDGATE_API_KEY.")
    return key


def _user_agent() -> str:
    try:
        version = metadata.version("vidgate")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"vidgate-python/{version}"


class Client:
    """A blocking client for a vidgate server. Use it as a context manager, or call `close()`.

    `http_client`: your own `httpx.Client` (its timeouts and limits apply, and it is not closed by
    `close()`); otherwise one is made with `timeout` seconds per request."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = _base_url(base_url)
        self.max_retries = max_retries
        key = _api_key(api_key)  # before the HTTP client exists: a missing key leaves nothing to close
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        runner = SyncRunner(self._http, self.base_url, key, _user_agent())
        policy = RetryPolicy(max_retries=max_retries)
        self.videos = Videos(runner, VideoOps(policy))
        self.models = Models(runner, ModelOps(policy))
        self.webhooks = Webhooks(runner, WebhookOps(policy))
        self.admin = Admin(runner, AdminOps(policy))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:  # never the key
        return f"Client(base_url={self.base_url!r})"


class AsyncClient:
    """The asyncio client: the same constructor and methods as `Client`, every method `async`.
    Use `async with`, or `await client.close()`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = _base_url(base_url)
        self.max_retries = max_retries
        key = _api_key(api_key)  # before the HTTP client exists: a missing key leaves nothing to close
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        runner = AsyncRunner(self._http, self.base_url, key, _user_agent())
        policy = RetryPolicy(max_retries=max_retries)
        self.videos = AsyncVideos(runner, VideoOps(policy))
        self.models = AsyncModels(runner, ModelOps(policy))
        self.webhooks = AsyncWebhooks(runner, WebhookOps(policy))
        self.admin = AsyncAdmin(runner, AdminOps(policy))

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:  # never the key
        return f"AsyncClient(base_url={self.base_url!r})"
