"""The last line between a channel's secrets and what a client, an operator or a log could see.

Upstreams echo what they were sent ("Incorrect API key provided: sk-..."), and those words become a
task's `error.code` and `error.message`, the channel's health record and log lines. Every provider is
wrapped in `SecretScrubbing`, which, for whatever it raises or reports:
- removes the channel's secrets (api_key, header values, tokens derived from them) in any case and
  common encoding (`vidgate.redaction`) BEFORE the text is cut to length, so no cut can leave a
  secret's head behind;
- keeps a code only if it looks like a code (a short `[a-z0-9_.-]` word that carries no secret);
  anything else becomes `upstream_error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from vidgate.providers.upstream_http import clean_error_code
from vidgate.redaction import Redactor

MAX_MESSAGE_CHARS = 500
GENERIC_CODE = "upstream_error"


class SecretScrubbing:
    """A provider whose errors and statuses never carry its channel's secrets."""

    def __init__(self, inner: Provider, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor

    def message(self, text: str) -> str:
        return self.redactor.redact(text)[:MAX_MESSAGE_CHARS]

    def code(self, code: str) -> str:
        clean = clean_error_code(code)
        if clean is None or clean != code.lower() or self.redactor.contains_secret(clean):
            return GENERIC_CODE
        return clean

    def _clean(self, exc: ProviderError) -> ProviderError:
        exc.code = self.code(exc.code)
        exc.message = self.message(exc.message)
        exc.args = (exc.message,)
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
        if status.error_code is None and status.error_message is None:
            return status
        return replace(
            status,
            error_code=None if status.error_code is None else self.code(status.error_code),
            error_message=None if status.error_message is None else self.message(status.error_message),
        )

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        result: FetchedResult = await self._call(self.inner.fetch(job, status, work_dir, ctx))
        return result

    async def cancel(self, job: UpstreamJob) -> None:
        await self._call(self.inner.cancel(job))

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        found: Sequence[UpstreamJob] = await self._call(self.inner.find_jobs(request))
        return found

    async def probe(self) -> ProbeResult:
        result: ProbeResult = await self._call(self.inner.probe())
        return replace(result, verdict=self.message(result.verdict))

    async def aclose(self) -> None:
        await self.inner.aclose()
