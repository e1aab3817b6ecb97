"""An httpx transport over the real network that counts the body bytes a client reads from each answer:
what a download cost the reader, whatever the server or the kernel had buffered on the way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

# What one read from the socket can bring (httpcore reads 64 KiB at a time): the most a download that
# stops on its first bytes may have read.
ONE_READ = 64 * 1024


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, counts: dict[str, int], key: str) -> None:
        self.inner, self.counts, self.key = inner, counts, key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.counts[self.key] += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """`read` maps each request's `path?query` to the body bytes read from its answer so far."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.read: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        key = f"{request.url.path}?{request.url.query.decode()}"
        self.read[key] = 0
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(response.stream, self.read, key)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
