"""What the SDK tests share: one awaitable face over `Client` (run in a worker thread, since the test
gateway serves on the test's own event loop) and `AsyncClient`, so each test runs against both."""

from __future__ import annotations

import functools
import io
from typing import Any

import anyio
from PIL import Image

from vidgate.client import AsyncClient, Client


class SDK:
    """`await sdk("videos.create", prompt=...)` calls the same method on either client."""

    def __init__(self, flavour: str, base_url: str, api_key: str, **options: Any) -> None:
        self.flavour = flavour
        self.client: Client | AsyncClient = (
            Client(base_url, api_key, **options)
            if flavour == "sync"
            else AsyncClient(base_url, api_key, **options)
        )

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target: Any = self.client
        for part in method.split("."):
            target = getattr(target, part)
        if self.flavour == "sync":
            return await anyio.to_thread.run_sync(functools.partial(target, *args, **kwargs))
        return await target(*args, **kwargs)

    async def close(self) -> None:
        if isinstance(self.client, AsyncClient):
            await self.client.close()
        else:
            self.client.close()


def png(width: int = 64, height: int = 96, colour: tuple[int, int, int] = (200, 80, 30)) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
