"""The `unified` channel kind: another relay's "unified video format" (`/v1/video/create` + `/query`).

The channel's `base_url` is the API root (`https://relay.example.com/v1`). What goes out is the relay
dialect itself: `model` (as mapped), `prompt`, `images` (the client's URLs, or data: URIs), `orientation`,
`size` small|large, `duration`, `watermark`, `private`, and the relay fields `style`, `storyboard`,
`character_url`, `character_timestamps`. What comes back is read tolerantly (`upstream_status`): ids with
or without the model prefix, `{code, msg, data}` envelopes, HTTP 200 bodies that carry an error,
errors as strings or objects, the result URL as a string or a list.

The result URL points at the relay's CDN: a URL someone else chose, so unless it is on the channel's own
origin it is downloaded through the SSRF-safe fetcher like any user URL. Whether the video carries a
watermark is recorded only from explicit evidence (a `watermarked` field, or the channel declaring
`always`/`never`, or `options.clean_when_forced` for relays whose `watermark: false` contract is "clean
or fail"); unknown stays unknown, and `watermark: false` never delivers an unknown.

This dialect has no way to cancel a job or to list jobs.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import structlog
from pydantic import Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport
from vidgate.domain.routing import ChannelTraits
from vidgate.domain.tasks import WatermarkMode
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
from vidgate.providers.input_images import image_reference
from vidgate.providers.passthrough import PassthroughOptions
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    clean_error_code,
    download_video,
    error_fields,
    final_refusal,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    probe_verdict,
    raise_for_status,
    shown_word,
    unreachable,
    upstream_text,
)
from vidgate.providers.upstream_status import dig, first_url, progress_percent, unwrap, upstream_state

log = structlog.get_logger("vidgate.providers.unified")
TRANSIENT_FAILURES = frozenset({"server_error", "internal_error", "timeout", "upstream_error", "system_busy"})
# kie.ai-style numeric flags: 0 generating, 1 success, 2 create failed, 3 generation failed.
_SUCCESS_FLAGS = {
    0: UpstreamState.RUNNING,
    1: UpstreamState.SUCCEEDED,
    2: UpstreamState.FAILED,
    3: UpstreamState.FAILED,
}


class UnifiedOptions(PassthroughOptions):
    create_path: str = Field(default="video/create", description="Relative to base_url.")
    query_path: str = Field(default="video/query", description="Relative to base_url; ?id= is added.")
    size_format: Literal["label", "wxh"] = Field(default="label", description="small|large, or 720x1280.")
    clean_when_forced: bool = Field(
        default=False,
        description="The relay's contract: a job made with watermark: false completes only clean.",
    )


class UnifiedRelayProvider:
    traits = ChannelTraits()
    vendor = "relay"
    Options = UnifiedOptions
    needs_base_url = True
    default_max_images = 4
    default_watermark_free = "optional"  # relays mark by default and remove marks on request, not always
    image_inputs = frozenset({"url", "data_uri"})

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """A relay takes every option and passes it on to whatever serves the model; what that model
        really does is the operator's to say in the channel's `capabilities`."""
        return {
            "last_frame": True,
            "audio": AudioSupport.OPTIONAL,
            "seed": True,
            "negative_prompt": True,
            "enhance_prompt": True,
        }

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = UnifiedOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        self.origin = httpx.URL(channel.base_url or "").copy_with(path="/", query=None, fragment=None)
        self._unknown_statuses: set[str] = set()

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        body = await self._create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(
                self.options.create_path, json=body, headers={"Idempotency-Key": request.idempotency_key}
            )
        raise_for_status(response, "create", may_create=True)
        raw = json_or_none(response)
        payload, envelope_code = unwrap(raw)
        if envelope_code is not None or (isinstance(payload, dict) and payload.get("error")):
            raise _refusal(raw, envelope_code, "create")  # an HTTP 200 that carries an error
        job_id = (payload.get("id") or payload.get("task_id")) if isinstance(payload, dict) else None
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            job_id = str(job_id)
        if not isinstance(job_id, str) or not job_id:
            raise UpstreamOutcomeUnknown("create: the channel's answer had no task id")
        forced = request.watermark_mode is WatermarkMode.REQUIRE_CLEAN
        return UpstreamJob(job_id, memo={"forced_clean": forced})

    async def _create_body(self, request: SubmitRequest) -> dict[str, Any]:
        portrait = request.height >= request.width
        label = "small" if max(request.width, request.height) <= 1280 else "large"
        images = [
            await image_reference(self.deps.blobs, image, self.image_mode, request.width, request.height)
            for image in request.images
        ]
        body: dict[str, Any] = {
            "model": self.channel.upstream_model(request.model),
            "prompt": request.prompt,
            "images": images,
            "orientation": "portrait" if portrait else "landscape",
            "size": label if self.options.size_format == "label" else f"{request.width}x{request.height}",
            "duration": request.seconds,
            "watermark": request.watermark_mode is WatermarkMode.PREFER_CLEAN,
            "private": request.private,
            **request.extras,
        }
        # Today's model options, by the names relays take for Veo, Jimeng, Vidu and Grok models.
        options: dict[str, Any] = {
            "resolution": request.resolution,
            "aspect_ratio": request.aspect_ratio,
            "seed": request.seed,
            "negative_prompt": request.negative_prompt,
            "generate_audio": request.generate_audio,
            "enhance_prompt": request.enhance_prompt,
        }
        if request.last_frame is not None:
            options["last_frame"] = await image_reference(
                self.deps.blobs, request.last_frame, self.image_mode, request.width, request.height
            )
        body.update({k: v for k, v in options.items() if v is not None})
        body.update(self.options.fields_for(request))
        return body

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                self.options.query_path,
                params={"id": job.upstream_id},
                timeout=self.channel.poll_timeout_seconds,
            )
        raise_for_status(response, "poll")
        raw = json_or_none(response)
        payload, envelope_code = unwrap(raw)
        if envelope_code is not None:
            raise _poll_refusal(raw, envelope_code)
        if not isinstance(payload, dict):
            raise ProviderError(
                "upstream_bad_response", "poll: the channel's answer is not JSON", retryable=True
            )
        state = self._state(payload)
        progress = progress_percent(payload.get("progress"))
        if progress is None:
            progress = progress_percent(dig(payload, "detail", "pending_info", "progress_pct"))
        if state is None:
            return UpstreamStatus(UpstreamState.RUNNING, progress=progress)
        if state is UpstreamState.FAILED:
            return _failure(payload)
        if state is not UpstreamState.SUCCEEDED:
            return UpstreamStatus(state, progress=progress)
        url = first_url(
            payload.get("video_url"),
            payload.get("url"),
            dig(payload, "result", "videos"),
            dig(payload, "response", "resultUrls"),
            dig(payload, "resultJson", "resultUrls"),
            dig(payload, "detail", "url"),
        )
        if url is None:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="The channel reported success but gave no video URL (filtered upstream?).",
            )
        return UpstreamStatus(
            UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=self._watermarked(payload, job)
        )

    def _state(self, payload: dict[str, Any]) -> UpstreamState | None:
        raw = payload.get("status", payload.get("state"))
        state, cancelled = upstream_state(raw)
        if state is None and isinstance(payload.get("successFlag"), int):
            state = _SUCCESS_FLAGS.get(payload["successFlag"])
        if state is None:
            word = shown_word(self.channel, raw)
            if word not in self._unknown_statuses:
                self._unknown_statuses.add(word)
                log.warning("unknown upstream status; polling on", channel=self.channel.name, status=word)
        if cancelled:
            return UpstreamState.FAILED
        return state

    def _watermarked(self, payload: dict[str, Any], job: UpstreamJob) -> bool | None:
        for source in (payload, payload.get("detail")):
            if not isinstance(source, dict):
                continue
            for key, meaning in (("watermarked", True), ("has_watermark", True), ("watermark_free", False)):
                if isinstance(source.get(key), bool):
                    return source[key] is meaning
        if self.options.clean_when_forced and job.memo.get("forced_clean"):
            return False
        return None

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        if not status.result_url:
            raise ProviderError("upstream_no_result", "The channel gave no video URL.")
        dest = work_dir / "video.mp4"
        settings = self.deps.settings
        timeout = self.channel.download_timeout_seconds
        if self._own_origin(status.result_url):
            await download_video(
                self.client,
                status.result_url,
                dest,
                max_bytes=settings.max_video_bytes,
                timeout=timeout,
                what="download",
            )
            return FetchedResult(dest)
        await copy_result_link(
            self.deps.fetcher, status.result_url, dest, max_bytes=settings.max_video_bytes, timeout=timeout
        )
        return FetchedResult(dest)

    def _own_origin(self, url: str) -> bool:
        """A link on the channel's own origin (another vidgate's /files) is as trusted as base_url."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return False
        return (parsed.scheme, parsed.host, parsed.port) == (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        )

    # the rest ---------------------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # the dialect has no cancel (traits say so; the cancel step records it)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # the dialect cannot list jobs

    async def probe(self) -> ProbeResult:
        """Query a task that does not exist: any well-formed 'not found' proves reachability and that
        the credentials are accepted; no job is made."""
        probe_id = f"vidgate-probe-{secrets.token_hex(6)}"
        try:
            response = await self.client.get(self.options.query_path, params={"id": probe_id})
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response, fine=frozenset({200, 400, 404}))

    async def aclose(self) -> None:
        await self.client.aclose()


def _refusal(raw: Any, envelope_code: Any, what: str) -> ProviderError:
    """An error carried in a 2xx body to a create. A server-side code (5xx) proves nothing: the relay
    may have made the job before it failed, so the outcome is unknown; 429 is a retryable refusal;
    anything else a final one."""
    code, message = error_fields(
        raw if isinstance(raw, dict) else {}, f"the channel answered code {envelope_code}"
    )
    numeric = _numeric(envelope_code)
    if numeric is not None and numeric >= 500:
        return UpstreamOutcomeUnknown(f"{what}: the channel answered code {numeric} ({message})")
    if numeric == 429:
        return ProviderError("upstream_rate_limited", f"{what}: {message}", retryable=True)
    return final_refusal(code or clean_error_code(envelope_code), message, what)


def _numeric(code: Any) -> int | None:
    """An envelope code as a number (relays send 500 or "500"), else None."""
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.strip().isdigit() and len(code.strip()) <= 4:
        return int(code.strip())
    return None


def _poll_refusal(raw: Any, envelope_code: Any) -> ProviderError:
    _, message = error_fields(
        raw if isinstance(raw, dict) else {}, f"the channel answered code {envelope_code}"
    )
    if envelope_code in (404, "404", "not_found") or "not found" in message.lower():
        return ProviderError("upstream_job_lost", f"poll: the channel no longer knows the job ({message})")
    return ProviderError("upstream_unavailable", f"poll: {message}", retryable=True)


def _failure(payload: dict[str, Any]) -> UpstreamStatus:
    code, message = error_fields(payload, "the channel reported a failure without a reason")
    code = code or clean_error_code(payload.get("errorCode") or payload.get("failCode"))
    message = upstream_text(payload.get("errorMessage") or payload.get("failMsg"), message)
    if code == "watermark_removal_failed":
        return UpstreamStatus(UpstreamState.FAILED, error_code=code, error_message=message, retryable=True)
    if is_moderation(code, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code=code or "upstream_failed",
        error_message=message,
        retryable=(code or "") in TRANSIENT_FAILURES,
    )
