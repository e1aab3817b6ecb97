"""The last line between a channel's secrets and an error message a client or a log could see.

Upstreams echo what they were sent ("Incorrect API key provided: sk-..."), and those words become a
task's `error.message`. Every provider is wrapped in `SecretScrubbing`, which replaces the channel's
api_key and header values in whatever it raises or reports.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vidgate.channel_config import ChannelSettings
from vidgate.providers.base import (
    FetchedResult,
    ProbeResult,
    Provider,
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamStatus,
)

REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words


def channel_secrets(channel: ChannelSettings) -> list[str]:
    values = [channel.api_key.get_secret_value()] if channel.api_key else []
    values += [v for v in channel.header_values().values()]
    return sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True)


class SecretScrubbing:
    """A provider whose errors and statuses never carry its channel's secrets."""

    def __init__(self, inner: Provider, secrets: list[str]) -> None:
        self.inner = inner
        self.secrets = secrets

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _clean(self, exc: ProviderError) -> ProviderError:
        message = self.scrub(exc.message)
        if message == exc.message:
            return exc
        exc.message = message
        exc.args = (message,)
        return exc

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except ProviderError as exc:
            raise self._clean(exc) from exc.__cause__

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        job: UpstreamJob = await self._call(self.inner.submit(request, ctx))
        return job

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        status: UpstreamStatus = await self._call(self.inner.poll(job, ctx))
        if status.error_message and self.scrub(status.error_message) != status.error_message:
            status = replace(status, error_message=self.scrub(status.error_message))
        return status

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        result: FetchedResult = await self._call(self.inner.fetch(job, status, work_dir, ctx))
        return result

    async def cancel(self, job: UpstreamJob) -> None:
        await self._call(self.inner.cancel(job))

    async def find_job(self, request: SubmitRequest) -> UpstreamJob | None:
        found: UpstreamJob | None = await self._call(self.inner.find_job(request))
        return found

    async def probe(self) -> ProbeResult:
        result: ProbeResult = await self._call(self.inner.probe())
        return replace(result, verdict=self.scrub(result.verdict))

    async def aclose(self) -> None:
        await self.inner.aclose()
