"""The one seam between the worker and whatever makes videos: the `Provider` protocol.

An upstream relay, an OpenAI-compatible `/v1/videos` server and a built-in engine all look the
same to the worker: `submit` hands a task over and returns the upstream's id (saved at once, so
a restart polls instead of submitting twice), `poll` says how it is going, `fetch` copies the
result into local files, `cancel` stops (or deletes) a job. Built-in engines render during `submit`
and write straight into our storage; their `poll` then answers SUCCEEDED with `stored` media and
`fetch` is never needed.

A provider class declares what its kind can do in `traits` (read into the channel profile: routing and
the API never test kind names) and validates its channel's `options` with its `Options` model.

Providers raise `ProviderError` for everything that goes wrong, marked retryable or not; they map
their third-party exceptions at this boundary (`providers.upstream_http` does it for HTTP).
`UpstreamOutcomeUnknown` is special: the submit may have been accepted (a read timeout, a dropped
connection after the request went out), so the worker must neither fail over nor resubmit blindly.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vidgate.domain.capabilities import describe_size
from vidgate.domain.tasks import WatermarkMode
from vidgate.store.blobs import BlobInfo, media_key


class ProviderError(Exception):
    """A channel could not do what was asked. `code` ends up in the task's `error.code`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class UpstreamOutcomeUnknown(ProviderError):
    """A submit went out and no answer came back: the upstream may or may not have made (and billed)
    the job. The task stays on its channel; see `Steps.submit` for what happens next."""

    def __init__(self, message: str) -> None:
        super().__init__("upstream_outcome_unknown", message, retryable=True)


class ResultExpired(ProviderError):
    """The result's link no longer works (upstream links expire): poll again for a fresh one."""

    def __init__(self, message: str) -> None:
        super().__init__("result_link_expired", message, retryable=True)


class UpstreamState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class InputImage:
    """A client image, fetched, checked and normalised to PNG in our storage."""

    index: int
    source: str  # what the client sent (an http(s) URL, a shortened data: URI, "upload")
    key: str  # blob key of the normalised PNG
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    task_id: str  # our ULID
    # Same for a repeated submit of one attempt (a crash before the upstream id was saved), new for a
    # deliberate resubmission (after a failed clean output): upstreams that dedupe get both right.
    idempotency_key: str
    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    watermark_mode: WatermarkMode
    private: bool
    images: tuple[InputImage, ...] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)  # relay fields: style, storyboard, ...
    passthrough: Mapping[str, Any] = field(default_factory=dict)  # server-specific: seed, negative_prompt
    remix_of_upstream_id: str | None = None
    sent_at_ms: int = 0  # when this submission was first attempted (to find its job afterwards)
    # Today's model options (domain.capabilities): routing sent the task only to a channel whose model
    # honours every one that is set, so an adapter maps each to its vendor's field or refuses loudly.
    last_frame: InputImage | None = None  # first-last-frame models: the final frame
    generate_audio: bool | None = None  # None: the client did not say (the model's default)
    enhance_prompt: bool | None = None

    @property
    def seed(self) -> int | None:
        value = self.passthrough.get("seed")
        return None if value is None else int(value)

    @property
    def negative_prompt(self) -> str | None:
        value = self.passthrough.get("negative_prompt")
        return None if value is None else str(value)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def resolution(self) -> str | None:
        """`480p`, `720p` or `1080p` (None for a size no word names, such as 1024x1792)."""
        return describe_size(self.size)[0]

    @property
    def aspect_ratio(self) -> str | None:
        """`16:9`, `9:16`, `1:1`, `4:3`, `3:4` or `21:9` (None for a size no ratio names)."""
        return describe_size(self.size)[1]


@dataclass(frozen=True, slots=True)
class UpstreamJob:
    upstream_id: str
    poll_after: float | None = None  # seconds until the first poll is worth making
    memo: Mapping[str, Any] = field(default_factory=dict)  # small provider state kept on the task


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """Results a built-in engine already wrote into our BlobStore."""

    video_key: str
    thumbnail_key: str | None
    spritesheet_key: str | None
    video_bytes: int
    video_sha256: str

    @classmethod
    def of(cls, task_id: str, video: BlobInfo) -> StoredMedia:
        """The stored video of a task, with its previews under their usual keys beside it."""
        return cls(
            video.key,
            media_key(task_id, "thumbnail"),
            media_key(task_id, "spritesheet"),
            video.size,
            video.sha256,
        )


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    state: UpstreamState
    progress: int | None = None
    poll_after: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False  # for FAILED: may a resubmission succeed?
    result_url: str | None = None
    watermarked: bool | None = None
    stored: StoredMedia | None = None


@dataclass(frozen=True, slots=True)
class FetchedResult:
    """Files a provider wrote for a finished job: the video, and the upstream's thumbnail if it has one."""

    video: Path
    thumbnail: Path | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`vidgate channels test`: whether the channel answers and accepts our credentials."""

    ok: bool
    verdict: str


ProgressReporter = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a provider call may use besides its own configuration."""

    task_id: str
    work_dir: Path  # scratch space for this step; removed after it
    report_progress: ProgressReporter


class Provider(Protocol):
    """What the worker calls. A provider CLASS also declares, as class attributes read by the registry:
    `traits` (ChannelTraits) or a `traits_for(channel)` classmethod, `Options` (a pydantic model of its
    options), `needs_base_url`, `default_max_images`, `max_images_limit`, `image_inputs`,
    `default_watermark_free`, and optionally a `model_capabilities(channel, upstream_model)` classmethod
    answering a `ModelCapabilities` for the vendor models it knows (None: the channel's own settings
    describe the model; see `providers.capabilities`), and a `check_channel(channel)` classmethod raising
    `ChannelConfigError` for what only the kind can check at start (an aggregator's model mappings)."""

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob: ...

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus: ...

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult: ...

    async def cancel(self, job: UpstreamJob) -> None:
        """Stop the job, or delete it if it has finished; idempotent (an unknown job is not an error)."""

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """After an unknown outcome (`can_find_jobs`): the upstream's jobs that `request` may have made,
        oldest first. The upstream cannot say which task made a job, so these are candidates: same
        parameters, made since `request.sent_at_ms`; the worker adopts the first no other task owns."""

    async def probe(self) -> ProbeResult: ...

    async def aclose(self) -> None: ...
