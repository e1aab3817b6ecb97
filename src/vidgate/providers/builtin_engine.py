"""What every built-in engine (animate, diffusion) does after its submit: nothing upstream.

A built-in engine renders or generates during `submit` and stores the result in our storage before
it returns, keeping the stored keys in the job's memo. So a poll only reads that memo, there is nothing
to fetch, cancel or look up (a render in progress stops when its step is cancelled; a lost one is simply
made again). Engines inherit these and implement `submit`, `probe` and `aclose`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidgate.providers.base import (
    FetchedResult,
    ProviderError,
    StepContext,
    StoredMedia,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)


class StoredResultEngine:
    engine_name = "built-in"  # for the messages below

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        stored = job.memo.get("stored")
        if not stored:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="render_lost",
                error_message=f"no video from the {self.engine_name} engine",
                retryable=True,
            )
        return UpstreamStatus(
            UpstreamState.SUCCEEDED, progress=100, watermarked=False, stored=StoredMedia(**stored)
        )

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        raise ProviderError(
            "internal_error", f"the {self.engine_name} engine stores its result while it works"
        )

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # work in progress stops when its step is cancelled

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # nothing is left behind to find: a lost video is simply made again
