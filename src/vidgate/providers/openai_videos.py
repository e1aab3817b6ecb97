"""The `openai` channel kind: any server that speaks OpenAI's Videos API (`/v1/videos`).

That is OpenAI's own (until its shutdown), Azure's Sora-2 endpoint, vLLM-Omni serving open-weight
models (Wan2.2, ...), LiteLLM, relays' `/v1/videos`, and another vidgate. The channel's `base_url` is
the API root, `https://host/v1`.

- create: multipart as the SDK sends it (`prompt`, `model` as mapped, `seconds`, `size` "WxH"), the first
  image cropped to exactly the requested size as the `input_reference` file (OpenAI refuses any other
  size), or `input_reference[image_url]` in `url`/`data_uri` image modes; `Idempotency-Key` on every
  create; server-specific fields from `extra_body` and `forward_fields`;
- poll: `GET /videos/{id}`, paced by `openai-poll-after-ms` or Retry-After; status words are read
  tolerantly and an unknown one keeps polling (logged once per word);
- result: `GET /videos/{id}/content` streamed to disk, and the thumbnail variant when the server has one
  (given up at the headers or first bytes when it is no image: LiteLLM answers it with the whole video);
- cancel: `DELETE /videos/{id}` (the API has no other way to stop a job); remix: `POST
  /videos/{id}/remix` where `options.remix` says the server can; after an unknown outcome the job is
  looked for in `GET /videos` (same prompt, model, size and seconds, made since the submit was sent).
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
from vidgate.domain.routing import ChannelTraits, RemixSupport
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
from vidgate.providers.input_images import image_reference, reference_png
from vidgate.providers.passthrough import PassthroughOptions
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.upstream_http import (
    download_image,
    download_video,
    error_fields,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    parse_retry_after,
    probe_verdict,
    raise_for_status,
    shown_word,
    unreachable,
)
from vidgate.providers.upstream_status import progress_percent, upstream_state

log = structlog.get_logger("vidgate.providers.openai")
# Failure codes after which a new submission may well succeed (the server's trouble, not the request's).
TRANSIENT_FAILURES = frozenset(
    {
        "server_error",
        "internal_error",
        "internal_server_error",
        "timeout",
        "service_unavailable",
        "unavailable",
        "overloaded",
        "engine_overloaded",
        "upstream_error",
        "worker_lost",
    }
)
_LOOKUP_PAGES = 10
_LOOKUP_SKEW_S = 120  # clocks differ: accept jobs created up to this long before our submit was sent
_THUMBNAIL_MAX_BYTES = 10 * 1024 * 1024


class OpenAIOptions(PassthroughOptions):
    remix: bool = Field(default=False, description="The server remixes its jobs (POST /videos/{id}/remix).")
    cancel_by_delete: bool = Field(
        default=True, description="Stop (and remove) jobs with DELETE /videos/{id}."
    )
    lookup: bool = Field(
        default=True, description="After an unknown outcome, look for the job in GET /videos."
    )
    thumbnail: bool = Field(default=True, description="Also download the thumbnail variant when offered.")
    body: Literal["multipart", "json"] = Field(
        default="multipart", description="How creates are sent: multipart (OpenAI) or JSON (some servers)."
    )


class OpenAIVideosProvider:
    traits = ChannelTraits(can_cancel=True, can_find_jobs=True)
    vendor = "openai"
    Options = OpenAIOptions
    needs_base_url = True
    default_max_images = 1
    max_images_limit = 1  # the API takes one input_reference
    image_inputs = frozenset({"file", "url", "data_uri"})

    @classmethod
    def traits_for(cls, channel: ChannelSettings) -> ChannelTraits:
        options = OpenAIOptions.model_validate(channel.options)
        return ChannelTraits(
            remix=RemixSupport.UPSTREAM if options.remix else RemixSupport.NONE,
            can_cancel=options.cancel_by_delete,
            can_find_jobs=options.lookup,
        )

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """The API has no seed or negative prompt: they go only where `forward_fields` sends them."""
        forwarded = OpenAIOptions.model_validate(channel.options).forward_fields
        return {"seed": "seed" in forwarded, "negative_prompt": "negative_prompt" in forwarded}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = OpenAIOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or ("url" if self.options.body == "json" else "file")
        self.client = deps.http.client_for(channel)
        self._unknown_statuses: set[str] = set()

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            what, path = "remix", f"videos/{request.remix_of_upstream_id}/remix"
            body: dict[str, Any] = {"json": {"prompt": request.prompt}}
        else:
            what, path = "create", "videos"
            body = await self._create_body(request)
        with mapped_transport_errors(what, may_create=True):
            response = await self.client.post(
                path, headers={"Idempotency-Key": request.idempotency_key}, **body
            )
        raise_for_status(response, what, may_create=True)
        answer = json_or_none(response)
        job_id = (answer.get("id") or answer.get("task_id")) if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            # A 2xx we cannot read: the job may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown(f"{what}: the channel's answer had no job id")
        return UpstreamJob(job_id, poll_after=_poll_after(response))

    async def _create_body(self, request: SubmitRequest) -> dict[str, Any]:
        """httpx keyword arguments for the create: JSON, or multipart as the SDK sends it."""
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "model": self.channel.upstream_model(request.model),
            "seconds": str(request.seconds),
            "size": f"{request.width}x{request.height}",
            **self.options.fields_for(request),
        }
        image = request.images[0] if request.images else None
        blobs = self.deps.blobs
        if self.options.body == "json":
            if image is not None:
                ref = await image_reference(blobs, image, self.image_mode, request.width, request.height)
                fields["input_reference"] = {"image_url": ref}
            return {"json": fields}
        if image is not None and self.image_mode == "file":
            png = await reference_png(blobs, image, request.width, request.height)
            form = {k: _form_value(v) for k, v in fields.items()}
            return {"data": form, "files": {"input_reference": ("reference.png", png, "image/png")}}
        if image is not None:
            fields["input_reference[image_url]"] = await image_reference(
                blobs, image, self.image_mode, request.width, request.height
            )
        # Fields only: httpx would send them urlencoded, but the SDK (and OpenAI) always use multipart.
        return {"files": {k: (None, _form_value(v)) for k, v in fields.items()}}

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                f"videos/{job.upstream_id}", timeout=self.channel.poll_timeout_seconds
            )
        raise_for_status(response, "poll")
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise ProviderError(
                "upstream_bad_response", "poll: the channel's answer is not JSON", retryable=True
            )
        state, cancelled = upstream_state(body.get("status"))
        progress = progress_percent(body.get("progress"))
        poll_after = _poll_after(response)
        if state is None:
            self._log_unknown_status(body.get("status"))
            return UpstreamStatus(UpstreamState.RUNNING, progress=progress, poll_after=poll_after)
        if state is UpstreamState.FAILED:
            return _failure(body, cancelled)
        return UpstreamStatus(
            state,
            progress=100 if state is UpstreamState.SUCCEEDED else progress,
            poll_after=poll_after,
        )

    def _log_unknown_status(self, status: Any) -> None:
        word = shown_word(self.channel, status)
        if word not in self._unknown_statuses:
            self._unknown_statuses.add(word)
            log.warning("unknown upstream status; polling on", channel=self.channel.name, status=word)

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        video = work_dir / "video.mp4"
        await download_video(
            self.client,
            f"videos/{job.upstream_id}/content",
            video,
            params={"variant": "video"},
            max_bytes=self.deps.settings.max_video_bytes,
            timeout=self.channel.download_timeout_seconds,
            what="download",
        )
        thumbnail = (
            await self._thumbnail(job, work_dir / "upstream-thumbnail") if self.options.thumbnail else None
        )
        return FetchedResult(video, thumbnail)

    async def _thumbnail(self, job: UpstreamJob, dest: Path) -> Path | None:
        """The server's own thumbnail if it has one. Anything else (an error, an answer that is no image,
        such as LiteLLM's whole video, or one over the cap) is given up early and not used: the worker
        makes its own from the video."""
        found = await download_image(
            self.client,
            f"videos/{job.upstream_id}/content",
            dest,
            params={"variant": "thumbnail"},
            max_bytes=_THUMBNAIL_MAX_BYTES,
            timeout=self.channel.poll_timeout_seconds,
        )
        return dest if found else None

    # cancel, lookup, probe ----------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        with mapped_transport_errors("cancel"):
            response = await self.client.delete(f"videos/{job.upstream_id}")
        if response.status_code == 404:
            return  # already gone: nothing left to stop
        raise_for_status(response, "cancel")

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """Jobs a submit of unknown outcome may have made, oldest first, from the newest pages of
        `GET /videos`: same prompt, model, size and seconds (or the same remix source), created since the
        submit went out (less `_LOOKUP_SKEW_S` for clocks that differ)."""
        since_s = request.sent_at_ms // 1000 - _LOOKUP_SKEW_S
        want = {
            "prompt": request.prompt,
            "model": self.channel.upstream_model(request.model),
            "size": f"{request.width}x{request.height}",
            "seconds": str(request.seconds),
        }
        found: list[UpstreamJob] = []
        after: str | None = None
        for _ in range(_LOOKUP_PAGES):
            params = {"limit": "100", "order": "desc", **({"after": after} if after else {})}
            with mapped_transport_errors("lookup"):
                response = await self.client.get(
                    "videos", params=params, timeout=self.channel.poll_timeout_seconds
                )
            raise_for_status(response, "lookup")
            body = json_or_none(response)
            items = body.get("data") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ProviderError(
                    "upstream_bad_response", "lookup: the job list is not readable", retryable=True
                )
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                if _created_s(item) < since_s:
                    return found[::-1]  # newest first: everything further is older than our submit
                if _matches(item, want, request.remix_of_upstream_id):
                    found.append(UpstreamJob(item["id"]))
            if not body.get("has_more") or not items:
                break
            after = str(items[-1].get("id"))
        return found[::-1]

    async def probe(self) -> ProbeResult:
        """Reachability and credentials without making a job: list one job, or look up one that does
        not exist (servers without a list route answer 404 or 405 to the list)."""
        try:
            response = await self.client.get("videos", params={"limit": "1"})
            if response.status_code in (404, 405):
                response = await self.client.get(f"videos/vidgate-probe-{secrets.token_hex(6)}")
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _poll_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("openai-poll-after-ms")
    if raw:
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            pass
    return parse_retry_after(response.headers)


def _failure(body: dict[str, Any], cancelled: bool) -> UpstreamStatus:
    code, message = error_fields(body, "the channel reported a failure without a reason")
    if cancelled:
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_cancelled",
            error_message="The channel cancelled the job.",
        )
    if is_moderation(code, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code=code or "upstream_failed",
        error_message=message,
        retryable=(code or "") in TRANSIENT_FAILURES,
    )


def _created_s(item: dict[str, Any]) -> float:
    created = item.get("created_at")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return created / 1000 if created > 1e12 else float(created)
    return float("inf")  # no time: cannot tell, so do not stop the scan on it


def _matches(item: dict[str, Any], want: dict[str, str], remix_of: str | None) -> bool:
    if remix_of is not None:
        return item.get("remixed_from_video_id") == remix_of and item.get("prompt") == want["prompt"]
    return all(str(item.get(k)) == v for k, v in want.items() if item.get(k) is not None) and (
        item.get("prompt") == want["prompt"]
    )
