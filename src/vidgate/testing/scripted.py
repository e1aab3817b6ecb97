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
- `state_dir` (path, optional): where jobs live, so they outlive a gateway restart like a real upstream;
  also holds `journal.jsonl` (one line per call) and per-task lock files that reveal overlapping steps.

Submits are idempotent on the request's idempotency key, as a careful upstream would be: a second submit
with the same key gets the same job back and is journalled as `duplicate_submit`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from vidgate.config import ChannelSettings
from vidgate.providers.base import (
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.registry import ProviderDeps
from vidgate.testing.clips import make_clip


class ScriptedProvider:
    def __init__(self, channel: ChannelSettings, deps: ProviderDeps | None = None) -> None:
        opts = channel.options
        self.channel = channel.name
        self.polls = int(opts.get("polls", 1))
        self.poll_after = float(opts.get("poll_after", 0.05))
        self.submit_seconds = float(opts.get("submit_seconds", 0.0))
        self.transient_submit_failures = int(opts.get("transient_submit_failures", 0))
        self.fail_code: str | None = opts.get("fail_code")
        self.fail_message = str(opts.get("fail_message", "the scripted channel was told to fail"))
        self.fail_retryable = bool(opts.get("fail_retryable", False))
        self.watermarked = bool(opts.get("watermarked", False))
        self.clip_scale = int(opts.get("clip_scale", 8))
        state_dir = opts.get("state_dir")
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
            upstream_id = f"scripted-{request.idempotency_key}"
            job = self._load(upstream_id)
            if job is not None and job.get("accepted"):
                self.journal("duplicate_submit", request.task_id)
                return UpstreamJob(upstream_id, poll_after=self.poll_after)
            # Failures are counted per task (across idempotency keys), so retries eventually get through.
            counter = f"submits-{request.task_id}"
            tries = (self._load(counter) or {"n": 0})["n"] + 1
            self._save(counter, {"n": tries})
            self.journal("submit", request.task_id, images=len(request.images))
            if tries <= self.transient_submit_failures:
                raise ProviderError("upstream_unavailable", "scripted 503", retryable=True, retry_after=0.01)
            job = {}
            if self.submit_seconds:
                await anyio.sleep(self.submit_seconds)
            job.update(
                accepted=True,
                polls=0,
                width=request.width,
                height=request.height,
                seconds=request.seconds,
            )
            self._save(upstream_id, job)
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

    async def fetch(self, job: UpstreamJob, status: UpstreamStatus, dest: Path, ctx: StepContext) -> None:
        task_id = _task_of(job.upstream_id)
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

    async def cancel(self, job: UpstreamJob) -> None:
        self.journal("cancel", _task_of(job.upstream_id))

    async def aclose(self) -> None:
        return None


def _task_of(upstream_id: str) -> str:
    """Our task id inside `scripted-<task>-<attempt>`."""
    return upstream_id.removeprefix("scripted-").rsplit("-", 1)[0]


def _even(n: int) -> int:
    return max(2, n - n % 2)
