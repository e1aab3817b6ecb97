"""A scripted channel: behaves as its options say, keeps its 'upstream' jobs on disk, and journals calls.

Options (channel `options` in the configuration):
- `polls` (int, 1): RUNNING answers before SUCCEEDED.
- `poll_after` (float, 0.05): the pace it asks for, in seconds.
- `submit_seconds` (float, 0): how long `submit` takes (a stand-in for a slow upstream or a render).
- `transient_submit_failures` (int, 0): the first N submits of each task fail with a retryable 503.
- `fail_code` / `fail_message`: the job ends FAILED with this code. `fail_retryable` marks it retryable.
- `watermarked` (bool, false): the result carries a watermark (an `optional` channel whose clean
  output failed).
- `clip_scale` (int, 8): the delivered clip is the requested size divided by this (kept tiny for speed).
- `accept_then_timeout` (int, 0): the first N submits of each task make the job and then raise
  `UpstreamOutcomeUnknown`, as a read timeout after the upstream accepted would.
- `dedupe` (bool, true): a second submit with the same idempotency key gets the same job back and is
  journalled as `duplicate_submit`; false makes a new job every time, as an upstream that ignores
  idempotency keys would.
- `state_dir` (path, optional): where jobs live, so they outlive a gateway restart like a real upstream;
  also holds `journal.jsonl` (one line per call) and per-task lock files that reveal overlapping steps.

The job is recorded as soon as a submit arrives (before `submit_seconds` passes), as a real upstream
has the job once the request reached it, however slow its answer.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport
from vidgate.domain.routing import ChannelTraits
from vidgate.providers.base import (
    FetchedResult,
    ProbeResult,
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.registry import ProviderDeps
from vidgate.testing.clips import make_clip


class ScriptedOptions(BaseModel, extra="forbid"):
    polls: int = Field(default=1, ge=0)
    poll_after: float = Field(default=0.05, ge=0)
    submit_seconds: float = Field(default=0.0, ge=0)
    transient_submit_failures: int = Field(default=0, ge=0)
    accept_then_timeout: int = Field(default=0, ge=0)
    dedupe: bool = True
    findable: bool = True
    fail_code: str | None = None
    fail_message: str = "the scripted channel was told to fail"
    fail_retryable: bool = False
    watermarked: bool = False
    clip_scale: int = Field(default=8, ge=1)
    state_dir: str | None = None


class ScriptedProvider:
    traits = ChannelTraits(can_cancel=True, can_find_jobs=True)
    Options = ScriptedOptions
    needs_base_url = False
    default_max_images = 4

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """Plays a model that takes every option (tests narrow it in the channel's `capabilities`)."""
        return {"last_frame": True, "audio": AudioSupport.OPTIONAL, "seed": True, "negative_prompt": True,
                "enhance_prompt": True}  # fmt: skip

    @classmethod
    def traits_for(cls, channel: ChannelSettings) -> ChannelTraits:
        """`findable: false` plays an upstream that cannot be asked which jobs it has."""
        return ChannelTraits(
            can_cancel=True, can_find_jobs=ScriptedOptions.model_validate(channel.options).findable
        )

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps | None = None) -> None:
        opts = ScriptedOptions.model_validate(channel.options)
        self.channel = channel.name
        self.polls = opts.polls
        self.poll_after = opts.poll_after
        self.submit_seconds = opts.submit_seconds
        self.transient_submit_failures = opts.transient_submit_failures
        self.accept_then_timeout = opts.accept_then_timeout
        self.dedupe = opts.dedupe
        self.fail_code = opts.fail_code
        self.fail_message = opts.fail_message
        self.fail_retryable = opts.fail_retryable
        self.watermarked = opts.watermarked
        self.clip_scale = opts.clip_scale
        state_dir = opts.state_dir
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="vidgate-scripted-"))
        (self.state_dir / "jobs").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "locks").mkdir(parents=True, exist_ok=True)

    # Journal and job state (files, so several processes and restarts see one upstream) ------

    def journal(self, op: str, task_id: str, **extra: Any) -> None:
        line = json.dumps({"op": op, "task": task_id, "pid": os.getpid(), "t": time.time(), **extra})
        fd = os.open(self.state_dir / "journal.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one write() with O_APPEND: lines never interleave
        finally:
            os.close(fd)

    def _job_path(self, upstream_id: str) -> Path:
        return self.state_dir / "jobs" / f"{upstream_id}.json"

    def _load(self, upstream_id: str) -> dict[str, Any] | None:
        path = self._job_path(upstream_id)
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, upstream_id: str, job: dict[str, Any]) -> None:
        path = self._job_path(upstream_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(job))
        os.replace(tmp, path)

    @asynccontextmanager
    async def _exclusive(self, op: str, task_id: str) -> AsyncIterator[None]:
        """Journal an `overlap` if another step of the same task is running anywhere right now."""
        lock = self.state_dir / "locks" / task_id
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            os.close(fd)
        except FileExistsError:
            self.journal("overlap", task_id, during=op)
            yield
            return
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    # Provider protocol ------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        async with self._exclusive("submit", request.task_id):
            # Failures are counted per task (across idempotency keys), so retries eventually get through.
            counter = f"submits-{request.task_id}"
            tries = (self._load(counter) or {"n": 0})["n"] + 1
            self._save(counter, {"n": tries})
            upstream_id = f"scripted-{request.idempotency_key}"
            if not self.dedupe:
                upstream_id = f"{upstream_id}-{tries}"
            job = self._load(upstream_id)
            if job is not None and job.get("accepted"):
                self.journal("duplicate_submit", request.task_id)
                return UpstreamJob(upstream_id, poll_after=self.poll_after)
            self.journal("submit", request.task_id, images=len(request.images), key=request.idempotency_key)
            if tries <= self.transient_submit_failures:
                raise ProviderError("upstream_unavailable", "scripted 503", retryable=True, retry_after=0.01)
            job = {
                "accepted": True,
                "polls": 0,
                "model": request.model,
                "prompt": request.prompt,
                "width": request.width,
                "height": request.height,
                "seconds": request.seconds,
                "key": request.idempotency_key,
                "created_ms": round(time.time() * 1000),
            }
            self._save(upstream_id, job)  # the upstream has the job from here on, whatever happens next
            self.journal("accepted", request.task_id, job=upstream_id)
            if self.submit_seconds:
                await anyio.sleep(self.submit_seconds)
            if tries <= self.transient_submit_failures + self.accept_then_timeout:
                raise UpstreamOutcomeUnknown("scripted: accepted, then the answer was lost")
            return UpstreamJob(upstream_id, poll_after=self.poll_after)

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        task_id = _task_of(job.upstream_id)
        async with self._exclusive("poll", task_id):
            state = self._load(job.upstream_id)
            if state is None:
                return UpstreamStatus(
                    UpstreamState.FAILED, error_code="upstream_lost", error_message="no such job"
                )
            state["polls"] += 1
            self._save(job.upstream_id, state)
            self.journal("poll", task_id, n=state["polls"])
            if state["polls"] <= self.polls:
                progress = round(100 * state["polls"] / (self.polls + 1))
                return UpstreamStatus(UpstreamState.RUNNING, progress=progress, poll_after=self.poll_after)
            if self.fail_code:
                return UpstreamStatus(
                    UpstreamState.FAILED,
                    error_code=self.fail_code,
                    error_message=self.fail_message,
                    retryable=self.fail_retryable,
                )
            return UpstreamStatus(
                UpstreamState.SUCCEEDED,
                progress=100,
                result_url=f"scripted://{job.upstream_id}/video.mp4",
                watermarked=self.watermarked,
            )

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        task_id = _task_of(job.upstream_id)
        dest = work_dir / "video.mp4"
        async with self._exclusive("fetch", task_id):
            state = self._load(job.upstream_id)
            if state is None:
                raise ProviderError("upstream_lost", "the job vanished before its result was fetched")
            self.journal("fetch", task_id)
            width = _even(state["width"] // self.clip_scale)
            height = _even(state["height"] // self.clip_scale)
            await anyio.to_thread.run_sync(
                lambda: make_clip(dest, width=width, height=height, seconds=state["seconds"], fps=4)
            )
        return FetchedResult(dest)

    async def cancel(self, job: UpstreamJob) -> None:
        self.journal("cancel", _task_of(job.upstream_id), job=job.upstream_id)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """As blind as a real upstream's list: jobs with the same parameters made since the submit was
        sent, oldest first. Which task (or idempotency key) made a job is not looked at: identical
        twins' jobs are all candidates, as they would be upstream."""
        self.journal("find", request.task_id, key=request.idempotency_key)
        found: list[tuple[int, str]] = []
        for path in (self.state_dir / "jobs").glob("scripted-*.json"):
            job = json.loads(path.read_text())
            same = all(
                job.get(k) == v
                for k, v in (
                    ("model", request.model),
                    ("prompt", request.prompt),
                    ("width", request.width),
                    ("height", request.height),
                    ("seconds", request.seconds),
                )
            )
            if job.get("accepted") and same and job.get("created_ms", 0) >= request.sent_at_ms - 1000:
                found.append((job["created_ms"], path.stem))
        return [UpstreamJob(job_id, poll_after=self.poll_after) for _, job_id in sorted(found)]

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, f"scripted test channel (jobs in {self.state_dir})")

    async def aclose(self) -> None:
        return None


def _task_of(upstream_id: str) -> str:
    """Our task id inside `scripted-<task>-<submission>[-<try>]`."""
    return upstream_id.removeprefix("scripted-").split("-", 1)[0]


def _even(n: int) -> int:
    return max(2, n - n % 2)
