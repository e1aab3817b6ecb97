"""The `minimax` channel kind: MiniMax's Hailuo video models through MiniMax's own API.

The channel's `base_url` is the API host, `https://api.minimax.io` (or `https://api.minimaxi.com` for
mainland China accounts); the `/v1/...` paths are the adapter's. The `api_key` goes as `Authorization:
Bearer`. Shapes follow MiniMax's API reference (platform.minimax.io/docs: "Video Generation", its create
pages, "Query Video Generation Task Status", "Download the Video File", "Error Codes") and the official
MiniMax-MCP server's `generate_video` (`providers.minimax_models` names the pages):

- create: `POST /v1/video_generation` with `{model, prompt, prompt_optimizer, duration, resolution,
  first_frame_image?, last_frame_image?, subject_reference?, fast_pretreatment?, aigc_watermark}` ->
  `{task_id, base_resp: {status_code, status_msg}}`;
- poll: `GET /v1/query/video_generation?task_id=` -> `{task_id, status: Preparing | Queueing |
  Processing | Success | Fail, file_id, video_width, video_height, base_resp}`; a `Success` names a
  `file_id`, and `GET /v1/files/retrieve?file_id=` gives its `file.download_url` (valid 9 hours, on
  MiniMax's CDN: copied at once through the SSRF-safe fetcher; a dead link makes the worker poll again,
  which retrieves a fresh one);
- errors: MiniMax answers HTTP 200 and says what went wrong in `base_resp.status_code` (1002 rate limit,
  1004/2049 the key, 1008 balance, 1026/1027 sensitive input/output, 2013 parameters, 1000/1001/1024/
  1033 its own trouble): the code decides, except that on a create MiniMax's own trouble (and any 5xx)
  proves nothing: an unknown outcome.

MiniMax documents `/v1/video_generation` as its current video API (its "v2" names belong to speech, T2A
v2); there is no newer video protocol to speak. It has no idempotency key, no way to list or find a task
by what made it, and no cancel: the channel declares neither (`ChannelTraits()`), so a create whose
answer was lost is never sent again (the task fails at its deadline with `upstream_outcome_unknown`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import structlog
from pydantic import BaseModel, Field, field_validator

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, describe_size
from vidgate.domain.routing import ChannelTraits
from vidgate.domain.tasks import WatermarkMode
from vidgate.providers.base import (
    FetchedResult,
    InputImage,
    ProbeResult,
    ProviderError,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.capabilities import uncarried_correction
from vidgate.providers.input_images import image_reference
from vidgate.providers.job_polls import UnknownStatuses
from vidgate.providers.minimax_models import IMAGE_RATIOS, TEXT_RATIO, MiniMaxModel, minimax_model
from vidgate.providers.registry import ChannelConfigError, ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    json_or_none,
    mapped_transport_errors,
    parse_retry_after,
    probe_verdict,
    raise_for_status,
    unreachable,
    upstream_text,
)

__all__ = ["MiniMaxOptions", "MiniMaxProvider", "minimax_error", "read_query"]

log = structlog.get_logger("vidgate.providers.minimax")

CREATE: Final = "video_generation"  # below the API root, `{host}/v1/` (see `_api_root`)
QUERY: Final = "query/video_generation"
RETRIEVE: Final = "files/retrieve"
PROMPT_MAX_CHARS: Final = 2000
IMAGE_MIN_SHORT_SIDE: Final = 300  # "the short side must exceed 300 px"
IMAGE_MAX_RATIO: Final = 2.5  # 2:5 to 5:2
IMAGE_URL_MAX_SIDE: Final = 4096
_TASK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_QUEUED: Final = frozenset({"preparing", "queueing", "queuing"})
# MiniMax's own trouble: no fault of the request, and on a create no proof that no task was made.
_SERVER_CODES: Final = frozenset({1000, 1001, 1024, 1033})
_RATE_CODES: Final = frozenset({1002, 1039, 1041, 2045})
_KEY_CODES: Final = frozenset({1004, 2049, 2038})  # 2038: the account's real-name check is not done
_MODERATION_CODES: Final = frozenset({1026, 1027})
_PARAMETER_CODES: Final = frozenset({2013, 1042})
# `capabilities` corrections MiniMax has no field for.
CANNOT_CARRY: Final = {
    "seed": "MiniMax takes no seed",
    "negative_prompt": "MiniMax takes no negative prompt",
}
# Fields the adapter sets itself: `extra_body` may not set them.
_OWN_FIELDS: Final = frozenset(
    {"model", "prompt", "prompt_optimizer", "fast_pretreatment", "duration", "resolution",
     "first_frame_image", "last_frame_image", "subject_reference", "aigc_watermark", "callback_url"}
)  # fmt: skip
Scalar = str | int | float | bool


class MiniMaxOptions(BaseModel, extra="forbid"):
    poll_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Between status queries (MiniMax gives no hint)."
    )
    prompt_optimizer: bool = Field(
        default=True,
        description="MiniMax's prompt rewriting when a request does not say (`enhance_prompt`); "
        "MiniMax's own default is true.",
    )
    fast_pretreatment: bool | None = Field(
        default=None, description="Shorten the prompt optimizer's time (Hailuo 2.3 and 02 only)."
    )
    watermark: bool = Field(
        default=False,
        description="Ask for MiniMax's AIGC mark (`aigc_watermark`); then set watermark_free = 'never'.",
    )
    group_id: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Za-z_-]{1,64}$",
        description="Sent as `GroupId` with file retrievals, for accounts whose keys still need it.",
    )
    extra_body: dict[str, Scalar] = Field(
        default_factory=dict, description="Fields sent with every create (the mapped ones cannot be set)."
    )

    @field_validator("extra_body")
    @classmethod
    def _not_our_fields(cls, body: dict[str, Scalar]) -> dict[str, Scalar]:
        clash = sorted(set(body) & _OWN_FIELDS)
        if clash:
            raise ValueError(f"extra_body may not set {clash}: the adapter sends them from each task")
        return body


class MiniMaxProvider:
    traits = ChannelTraits()  # no cancel, no lookup, no idempotency key (see the module docstring)
    vendor = "minimax"  # `owned_by` in GET /v1/models
    Options = MiniMaxOptions
    needs_base_url = True
    default_max_images = 1  # one first frame (or S2V-01's one character image)
    max_images_limit = 1
    image_inputs = frozenset({"url", "data_uri"})
    default_watermark_free = "always"  # no mark unless `aigc_watermark` is asked for

    @classmethod
    def check_channel(cls, channel: ChannelSettings) -> None:
        """At start: a `capabilities` correction MiniMax cannot carry is an error naming the channel, the
        model and the field (routing would let the request field through, to reach nothing)."""
        if (problem := uncarried_correction(channel, CANNOT_CARRY)) is not None:
            raise ChannelConfigError(problem)
        for model, settings in channel.capabilities.items():
            if settings.audio not in (None, AudioSupport.NONE):
                raise ChannelConfigError(
                    f"channel {channel.name!r}: capabilities of model {model!r} set audio, but MiniMax's "
                    "API has no sound switch (Hailuo videos are silent)"
                )

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        known = minimax_model(upstream_model)
        return known.capabilities() if known is not None else None

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """A model the table does not know: the channel's sizes a resolution names, prompt optimizer."""
        sizes = frozenset(s for s in channel.usable_sizes if describe_size(s)[0] is not None)
        return {"sizes": sizes, "enhance_prompt": True}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = MiniMaxOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        self.root = _api_root(channel)
        self.unknown_statuses = UnknownStatuses(channel, log)

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "MiniMax's API has no remix of an earlier task.")
        body = await self.create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(self.root + CREATE, json=body)
        error = minimax_error(response, "create", may_create=True)
        if error is not None:
            raise error
        answer = json_or_none(response)
        task_id = answer.get("task_id") if isinstance(answer, dict) else None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
            # A 2xx we cannot read: the task may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown("create: MiniMax's answer had no task id")
        return UpstreamJob(task_id, poll_after=self.options.poll_seconds)

    async def create_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The JSON body of `POST /v1/video_generation`; refuses, before anything is sent, what the model
        cannot make."""
        upstream = self.channel.upstream_model(request.model)
        known = minimax_model(upstream)
        if self.options.watermark and request.watermark_mode is WatermarkMode.REQUIRE_CLEAN:
            raise ProviderError(
                "watermark_unsupported",
                f"channel {self.channel.name} asks MiniMax for its mark (options.watermark); a video "
                "without one cannot come from it. Set the channel's watermark_free to 'never'.",
            )
        _check_asks(request, upstream, known)
        resolution = _resolution_word(request, upstream, known)
        if len(request.prompt) > PROMPT_MAX_CHARS:
            raise ProviderError(
                "prompt_too_long", f"MiniMax takes prompts of at most {PROMPT_MAX_CHARS} characters."
            )
        enhance = request.enhance_prompt
        body: dict[str, Any] = {
            **self.options.extra_body,
            "model": upstream,
            "duration": request.seconds,
            "resolution": resolution,
            "prompt_optimizer": self.options.prompt_optimizer if enhance is None else enhance,
            "aigc_watermark": self.options.watermark,
        }
        if request.prompt:
            body["prompt"] = request.prompt
        if self.options.fast_pretreatment is not None:
            body["fast_pretreatment"] = self.options.fast_pretreatment
        if request.images:
            image = await self._image(request.images[0], request, "images[0]")
            if known is not None and "subject" in known.inputs:
                body["subject_reference"] = [{"type": "character", "image": [image]}]
            else:
                body["first_frame_image"] = image
        if request.last_frame is not None:
            body["last_frame_image"] = await self._image(request.last_frame, request, "last_frame")
        return body

    async def _image(self, image: InputImage, request: SubmitRequest, param: str) -> str:
        """The client's URL (url mode), else a data: URI of our stored copy scaled to fit the video (MiniMax
        takes `data:image/...;base64,` in its image fields). Sizes MiniMax refuses are refused here."""
        mode = self.image_mode
        if max(image.width, image.height) > IMAGE_URL_MAX_SIDE:
            mode = "data_uri"
        sent_as_url = mode == "url" and image.source.lower().startswith(("http://", "https://"))
        bound = max(request.width, request.height)
        scale = 1.0 if sent_as_url else min(1.0, bound / max(image.width, image.height))
        short = round(min(image.width, image.height) * scale)
        ratio = max(image.width, image.height) / max(1, min(image.width, image.height))
        if short <= IMAGE_MIN_SHORT_SIDE or ratio > IMAGE_MAX_RATIO:
            raise ProviderError(
                "invalid_image",
                f"{param}: MiniMax takes images whose short side is over {IMAGE_MIN_SHORT_SIDE} px, in an "
                f"aspect ratio from 2:5 to 5:2; this one is {image.width}x{image.height}.",
            )
        return await image_reference(self.deps.blobs, image, mode, request.width, request.height)

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        if not _TASK_ID.fullmatch(job.upstream_id):
            raise ProviderError("upstream_job_lost", f"poll: {job.upstream_id!r} is no MiniMax task id")
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                self.root + QUERY,
                params={"task_id": job.upstream_id},
                timeout=self.channel.poll_timeout_seconds,
            )
        body = json_or_none(response)
        if response.is_success and isinstance(body, dict) and isinstance(body.get("status"), str):
            status = read_query(body, poll_after=self.options.poll_seconds)
            if status is None:
                return self.unknown_statuses.still_running(
                    body.get("status"), poll_after=self.options.poll_seconds
                )
            if status.state is UpstreamState.SUCCEEDED:
                return await self._with_link(body)
            return status
        error = minimax_error(response, "poll")
        if error is not None:
            if error.code == "invalid_parameter":  # the query names a task MiniMax does not know
                raise ProviderError(
                    "upstream_job_lost", f"poll: MiniMax does not know the task ({error.message})"
                )
            raise error
        raise ProviderError("upstream_bad_response", "poll: MiniMax's answer is not readable", retryable=True)

    async def _with_link(self, body: dict[str, Any]) -> UpstreamStatus:
        """A finished task's download link, from the file it names (`files/retrieve`)."""
        file_id = body.get("file_id")
        if isinstance(file_id, int) and not isinstance(file_id, bool):
            file_id = str(file_id)
        if not isinstance(file_id, str) or not _TASK_ID.fullmatch(file_id):
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="MiniMax reported success but named no file.",
            )
        params = {"file_id": file_id}
        if self.options.group_id:
            params["GroupId"] = self.options.group_id
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                self.root + RETRIEVE, params=params, timeout=self.channel.poll_timeout_seconds
            )
        error = minimax_error(response, "file retrieval")
        if error is not None:
            if error.code == "invalid_parameter":
                raise ProviderError(
                    "upstream_job_lost", f"file retrieval: MiniMax no longer has the video ({error.message})"
                )
            raise error
        answer = json_or_none(response)
        file = answer.get("file") if isinstance(answer, dict) else None
        url = file.get("download_url") if isinstance(file, dict) else None
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ProviderError(
                "upstream_bad_response", "file retrieval: MiniMax gave no download URL", retryable=True
            )
        return UpstreamStatus(
            UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=self.options.watermark
        )

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy the CDN link now, through the SSRF-safe fetcher (someone else's host; it lives 9 hours)."""
        if not status.result_url:
            raise ProviderError("upstream_no_result", "MiniMax gave no video URL.")
        dest = work_dir / "video.mp4"
        await copy_result_link(
            self.deps.fetcher,
            status.result_url,
            dest,
            max_bytes=self.deps.settings.max_video_bytes,
            timeout=self.channel.download_timeout_seconds,
        )
        return FetchedResult(dest)

    # the rest ---------------------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # MiniMax documents no cancel for video tasks (traits say so)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # no task list and no caller's id: a task cannot be found by what made it

    async def probe(self) -> ProbeResult:
        """Query a task that does not exist: a refused key answers 1004 (or 2049), an accepted one another
        code; no task is made."""
        try:
            response = await self.client.get(self.root + QUERY, params={"task_id": "0"})
        except httpx.HTTPError as exc:
            return unreachable(exc)
        code = _status_code(json_or_none(response))
        if code in _KEY_CODES:
            return ProbeResult(False, f"reachable, but the key was refused (MiniMax code {code})")
        if response.is_success and code is not None:
            return ProbeResult(True, f"reachable and the key is accepted (MiniMax code {code}, no task made)")
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def _api_root(channel: ChannelSettings) -> str:
    """The paths' head below `base_url`: `v1/` for the API host (what MiniMax documents), nothing when the
    operator wrote the root with its `/v1`, as other kinds' base URLs are written."""
    path = httpx.URL(channel.base_url or "").path.rstrip("/")
    return "" if path.endswith("/v1") else "v1/"


def _check_asks(request: SubmitRequest, upstream: str, known: MiniMaxModel | None) -> None:
    """Refuse, before anything is sent, what this model cannot be asked (routing already refuses it for
    the table's models; this guards a channel's own `capabilities` corrections)."""
    problem: str | None = None
    if len(request.images) > 1:
        problem = f"MiniMax takes one image; got {len(request.images)}"
    elif request.last_frame is not None and not request.images:
        problem = "a last frame goes with a first frame in images"
    elif request.generate_audio:
        problem = f"{upstream} makes silent videos only"
    elif known is not None:
        if not request.images and "text" not in known.inputs:
            problem = f"{upstream} animates an image: send one in images"
        elif request.images and not known.takes_images:
            problem = f"{upstream} makes videos from text only"
        elif request.last_frame is not None and "last_frame" not in known.inputs:
            problem = f"{upstream} takes no last frame"
        elif not request.images and request.aspect_ratio != TEXT_RATIO:
            problem = f"a video from text alone is {TEXT_RATIO}; {request.size} is not"
    if problem is not None:
        raise ProviderError("unsupported_combination", f"Not sent to MiniMax: {problem}.")


def _resolution_word(request: SubmitRequest, upstream: str, known: MiniMaxModel | None) -> str:
    resolution, ratio = request.resolution, request.aspect_ratio
    word = known.resolution_word(resolution) if known is not None else _generic_word(resolution)
    if word is None or ratio not in IMAGE_RATIOS:
        raise ProviderError(
            "unsupported_size",
            f"{upstream} is not made at {request.size} (MiniMax names 512P, 720P, 768P and 1080P).",
        )
    return word


def _generic_word(resolution: str | None) -> str | None:
    return {"480p": "512P", "720p": "768P", "1080p": "1080P"}.get(resolution or "")


def _status_code(body: Any) -> int | None:
    base = body.get("base_resp") if isinstance(body, dict) else None
    code = base.get("status_code") if isinstance(base, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return None


def _status_msg(body: Any, fallback: str) -> str:
    base = body.get("base_resp") if isinstance(body, dict) else None
    return upstream_text(base.get("status_msg") if isinstance(base, dict) else None, fallback)


def minimax_error(response: httpx.Response, what: str, *, may_create: bool = False) -> ProviderError | None:
    """None for an answer whose `base_resp.status_code` is 0 (or absent) in a 2xx; otherwise the
    ProviderError MiniMax's code calls for (it answers HTTP 200 and puts the error there). A 5xx, and on a
    create MiniMax's own trouble (1000, 1001, 1024, 1033), are unknown outcomes: the task may exist."""
    status = response.status_code
    body = json_or_none(response)
    code = _status_code(body)
    if 200 <= status < 300 and code in (None, 0):
        return None
    if code in (None, 0) or (not 200 <= status < 300 and status not in PROVEN_REFUSALS):
        try:
            raise_for_status(response, what, may_create=may_create)
        except ProviderError as exc:
            return exc
        return UpstreamOutcomeUnknown(f"{what}: an unreadable answer (HTTP {status})")  # pragma: no cover
    assert code is not None
    return code_error(code, _status_msg(body, f"MiniMax code {code}"), what, may_create=may_create,
                      retry_after=parse_retry_after(response.headers))  # fmt: skip


def code_error(
    code: int, message: str, what: str, *, may_create: bool = False, retry_after: float | None = None
) -> ProviderError:
    """The ProviderError for MiniMax's `base_resp.status_code` (its "Error Codes" page)."""
    if code in _SERVER_CODES:
        if may_create:
            return UpstreamOutcomeUnknown(f"{what}: MiniMax answered code {code} ({message})")
        return ProviderError(
            "upstream_unavailable", f"{what}: {message}", retryable=True, retry_after=retry_after
        )
    if code in _RATE_CODES:
        return ProviderError(
            "upstream_rate_limited",
            f"{what}: rate limited ({message})",
            retryable=True,
            retry_after=retry_after,
        )
    if code in _KEY_CODES:
        return ProviderError(
            "upstream_auth_failed",
            f"{what}: MiniMax refused our key (code {code}: {message})",
            retryable=True,
        )
    if code == 1008:
        return ProviderError(
            "upstream_account_in_arrears", f"{what}: MiniMax's balance is too low ({message})", retryable=True
        )
    if code == 2056:
        return ProviderError(
            "upstream_quota_exhausted",
            f"{what}: MiniMax's usage limit is reached ({message})",
            retryable=True,
        )
    if code in _MODERATION_CODES:
        return ProviderError("content_policy", f"MiniMax's content policy refused it: {message}")
    if code in _PARAMETER_CODES:
        return ProviderError("invalid_parameter", f"{what}: MiniMax refused it: {message}")
    return ProviderError(f"minimax_{code}", f"{what}: MiniMax refused it: {message}")


def read_query(body: dict[str, Any], *, poll_after: float | None = None) -> UpstreamStatus | None:
    """A task query as an UpstreamStatus (a `Success` still needs its file's link: the caller asks);
    None for a status word nobody knows."""
    word = str(body.get("status") or "").strip().lower()
    if word in _QUEUED:
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "processing":
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    if word == "success":
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100)
    if word == "fail":
        code = _status_code(body)
        message = _status_msg(body, "MiniMax reported a failure without a reason")
        if code in _MODERATION_CODES:
            return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_failed" if code in (None, 0) else f"minimax_{code}",
            error_message=message,
            retryable=code in _SERVER_CODES,
        )
    return None
