"""The `openrouter` channel kind: OpenRouter's video generation API.

The channel's `base_url` is `https://openrouter.ai/api/v1`; its `api_key` goes as `Authorization:
Bearer`. Shapes follow OpenRouter's "Video Generation API" reference (openrouter.ai/docs/api/api-reference/
video-generation: "Submit a video generation request", "Poll video generation status", "Download generated
video content", "List all video generation models"), its `openrouter-video` skill (OpenRouterTeam/skills)
and the generated SDKs' `VideoGenerationRequest`/`VideoGenerationResponse` (`@openrouter/sdk`):

- create: `POST videos` with `{model, prompt, duration, resolution, aspect_ratio (or size for a size no
  ratio names), seed, generate_audio, frame_images: [{type: image_url, image_url: {url}, frame_type:
  first_frame|last_frame}], input_references: [...], provider}`; the answer (202) is `{id, polling_url,
  status: pending, generation_id}`. OpenRouter takes no idempotency key and lists no jobs, so a create
  whose answer was lost is never sent again and cannot be looked up (the task fails at its deadline);
- poll: `GET {polling_url}` (relative to the API's origin, `/api/v1/videos/{id}`; used only on the
  channel's own origin, else `videos/{id}`): `pending`, `in_progress`, `completed` (`unsigned_urls`, the
  authenticated content endpoint), `failed` (`error`), `cancelled`, `expired`;
- result: `GET videos/{id}/content?index=0` with the key, copied at once (OpenRouter keeps the provider's
  output only for the download step); a 404 or 410 there asks for a fresh poll;
- errors: `{error: {code, message, metadata}}`; 402 is "insufficient credits" (nothing made: the next
  channel is tried); a 403 carrying moderation `metadata.reasons` is a content refusal, not our key;
- no cancel: the API has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urljoin, urlsplit

import httpx
import structlog
from pydantic import BaseModel, Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, ModelCapabilities
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
from vidgate.providers.capabilities import model_capabilities, uncarried_correction
from vidgate.providers.input_images import image_reference
from vidgate.providers.job_polls import UnknownStatuses, poll_body
from vidgate.providers.openrouter_models import openrouter_capabilities
from vidgate.providers.registry import ChannelConfigError, ProviderDeps
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    download_video,
    error_fields,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    parse_retry_after,
    probe_verdict,
    raise_for_status,
    unreachable,
    upstream_text,
)
from vidgate.providers.upstream_status import upstream_state

__all__ = ["OpenRouterOptions", "OpenRouterProvider", "create_refusal", "job_status"]

log = structlog.get_logger("vidgate.providers.openrouter")

# Request fields the video API has no place for: a correction turning one on would reach nothing.
_UNCARRIED: Final = {
    "negative_prompt": "OpenRouter's video API has no negative prompt (a provider's own parameter can go "
    "through options.provider)",
    "enhance_prompt": "OpenRouter's video API has no prompt-rewriting switch",
}


class OpenRouterOptions(BaseModel, extra="forbid"):
    poll_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between polls (OpenRouter advises 10 to 30); default: the worker's.",
    )
    provider: dict[str, Any] = Field(
        default_factory=dict,
        description="Sent as `provider` with every create: routing preferences and provider passthrough "
        "(`options.<slug>.parameters`).",
    )


class OpenRouterProvider:
    traits = ChannelTraits()  # no cancel, no lookup, no idempotency key
    vendor = "openrouter"
    Options = OpenRouterOptions
    needs_base_url = True
    default_max_images = 1
    max_images_limit = 16
    image_inputs = frozenset({"url", "data_uri"})  # a public https URL or a data URL
    default_watermark_free = "always"

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        return openrouter_capabilities(upstream_model)

    @classmethod
    def check_channel(cls, channel: ChannelSettings) -> None:
        """A `capabilities` correction may turn on what the body carries (a seed, a last frame, sound),
        never a field OpenRouter's video API has no place for."""
        problem = uncarried_correction(channel, _UNCARRIED)
        if problem is not None:
            raise ChannelConfigError(problem)

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = OpenRouterOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        assert channel.base_url is not None  # needs_base_url
        self.base = channel.base_url
        self.unknown_statuses = UnknownStatuses(channel, log)
        max_images = channel.max_images if channel.max_images is not None else self.default_max_images
        self.capabilities = model_capabilities(channel, type(self), max_images)

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "OpenRouter's video API has no remix of a video.")
        body = await self.create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post("videos", json=body)
        if not 200 <= response.status_code < 300:
            raise create_refusal(response)
        answer = json_or_none(response)
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UpstreamOutcomeUnknown("create: the channel's answer had no job id")
        polling = answer.get("polling_url") if isinstance(answer, dict) else None
        memo = {"polling_url": url} if isinstance(polling, str) and (url := self.own_url(polling)) else {}
        return UpstreamJob(job_id, poll_after=self.options.poll_seconds, memo=memo)

    async def create_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The JSON body of `POST videos` for `request`."""
        capabilities = self.capabilities.get(request.model)
        body: dict[str, Any] = {
            "model": self.channel.upstream_model(request.model),
            "prompt": request.prompt,
            "duration": request.seconds,
        }
        if request.resolution is not None and request.aspect_ratio is not None:
            body["resolution"], body["aspect_ratio"] = request.resolution, request.aspect_ratio
        else:
            body["size"] = request.size  # 1024x1792 and the like: "interchangeable with resolution + ratio"
        if request.seed is not None:
            body["seed"] = request.seed
        if capabilities is not None and capabilities.audio is AudioSupport.OPTIONAL:
            body["generate_audio"] = capabilities.makes_audio(request.generate_audio)
        urls = [
            await image_reference(self.deps.blobs, image, self.image_mode, request.width, request.height)
            for image in request.images
        ]
        takes_first = capabilities is None or capabilities.first_frame
        frames: list[dict[str, Any]] = []
        if len(urls) == 1 and takes_first:
            frames.append(_image(urls[0], "first_frame"))
        elif urls:
            body["input_references"] = [_image(url) for url in urls]
        if request.last_frame is not None:
            last = await image_reference(
                self.deps.blobs, request.last_frame, self.image_mode, request.width, request.height
            )
            frames.append(_image(last, "last_frame"))
        if frames:
            body["frame_images"] = frames
        if self.options.provider:
            body["provider"] = self.options.provider
        return body

    def own_url(self, url: str) -> str | None:
        """`url` (absolute, or relative to the API's origin as OpenRouter gives `polling_url`) when it is
        on the channel's origin below its base path, else None: the key goes nowhere else."""
        mine = urlsplit(self.base)
        absolute = urljoin(f"{mine.scheme}://{mine.netloc}/", url)
        theirs = urlsplit(absolute)
        same = (theirs.scheme, theirs.netloc.lower()) == (mine.scheme, mine.netloc.lower())
        return absolute if same and theirs.path.startswith(mine.path.rstrip("/") + "/") else None

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        given = job.memo.get("polling_url")
        url = (isinstance(given, str) and self.own_url(given)) or f"videos/{quote(job.upstream_id, safe='')}"
        with mapped_transport_errors("poll"):
            response = await self.client.get(url, timeout=self.channel.poll_timeout_seconds)
        body = poll_body(response, lost="OpenRouter no longer knows the job")
        status = job_status(body, poll_after=self.options.poll_seconds)
        if status is None:
            return self.unknown_statuses.still_running(
                body.get("status"), poll_after=self.options.poll_seconds
            )
        if status.state is UpstreamState.SUCCEEDED:
            return UpstreamStatus(
                UpstreamState.SUCCEEDED,
                progress=100,
                result_url=self.content_url(job, body),
                watermarked=False,
            )
        return status

    def content_url(self, job: UpstreamJob, body: dict[str, Any]) -> str:
        """The first video's content endpoint: the job's `unsigned_urls[0]` when it is the channel's own,
        else `videos/{id}/content?index=0`."""
        unsigned = body.get("unsigned_urls")
        first = unsigned[0] if isinstance(unsigned, list) and unsigned else None
        own = self.own_url(first) if isinstance(first, str) else None
        return own or f"{self.base}/videos/{quote(job.upstream_id, safe='')}/content?index=0"

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Stream the video from the content endpoint (the channel's own origin, with the key) into our
        storage now; a 403, 404 or 410 makes the worker poll again."""
        url = (status.result_url and self.own_url(status.result_url)) or self.content_url(job, {})
        dest = work_dir / "video.mp4"
        await download_video(
            self.client,
            url,
            dest,
            max_bytes=self.deps.settings.max_video_bytes,
            timeout=self.channel.download_timeout_seconds,
            what="download",
        )
        return FetchedResult(dest)

    # cancel, lookup, probe ----------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # OpenRouter's video API has no cancel (traits say so)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # no list of jobs and no caller's id: a job cannot be found by what made it

    async def probe(self) -> ProbeResult:
        """`GET key`: the key's own record (limits, usage); a refused key answers 401, nothing is made."""
        try:
            response = await self.client.get("key")
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response, fine=frozenset({200}))

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def _image(url: str, frame_type: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if frame_type is not None:
        item["frame_type"] = frame_type
    return item


def job_status(body: dict[str, Any], *, poll_after: float | None) -> UpstreamStatus | None:
    """A video job as an UpstreamStatus (SUCCEEDED without its URL: the caller knows it); None for a word
    nobody knows (keep polling)."""
    word = str(body.get("status") or "").strip().lower()
    if word == "pending":
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "in_progress":
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    if word == "completed":
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100)
    if word == "failed":
        message = upstream_text(_error_text(body.get("error")), "the job failed without a reason")
        code = "content_policy" if is_moderation(None, message) else "upstream_failed"
        return UpstreamStatus(UpstreamState.FAILED, error_code=code, error_message=message)
    if word == "cancelled":
        return UpstreamStatus(
            UpstreamState.FAILED, error_code="upstream_cancelled", error_message="The job was cancelled."
        )
    if word == "expired":
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_expired",
            error_message="The job expired before it finished.",
            retryable=True,
        )
    state, cancelled = upstream_state(body.get("status"))
    if state is None:
        return None
    if cancelled:
        return job_status({"status": "cancelled"}, poll_after=poll_after)
    if state in (UpstreamState.SUCCEEDED, UpstreamState.FAILED):
        return job_status({**body, "status": "completed" if state is UpstreamState.SUCCEEDED else "failed"},
                          poll_after=poll_after)  # fmt: skip
    return UpstreamStatus(state, poll_after=poll_after)


def _error_text(error: Any) -> str | None:
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


def create_refusal(response: httpx.Response) -> ProviderError:
    """The error for a create OpenRouter did not accept (`{error: {code, message, metadata}}`): 402
    (insufficient credits, nothing made: the next channel is tried), a 403 with moderation reasons
    (`content_policy`, final), 404 (no such model or no endpoint for it: ruled out like refused
    credentials), 400 (a value out of the model's set, final); the rest as every adapter maps them."""
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    _, message = error_fields(body, f"HTTP {response.status_code}")
    status = response.status_code
    if status == 402:
        return ProviderError(
            "upstream_quota_exhausted",
            f"create: OpenRouter refused for lack of credits ({message})",
            retryable=True,
            retry_after=parse_retry_after(response.headers),
        )
    flagged = isinstance(metadata, dict) and bool(metadata.get("reasons") or metadata.get("flagged_input"))
    if status in (400, 403) and (flagged or is_moderation(None, message)):
        return ProviderError("content_policy", f"The channel's content policy refused it: {message}")
    if status == 404:
        return ProviderError(
            "upstream_auth_failed",
            f"create: OpenRouter has no such model for this key ({message})",
            retryable=True,
        )
    if status in PROVEN_REFUSALS and status not in (401, 403, 429):
        return ProviderError("upstream_refused", f"create: OpenRouter refused it: {message}")
    try:
        raise_for_status(response, "create", may_create=True)
    except ProviderError as exc:
        return exc
    return UpstreamOutcomeUnknown(f"create: unexpected HTTP {status}")  # pragma: no cover - 2xx handled
