"""The `dashscope` channel kind: Alibaba's Wan video models through DashScope (Model Studio).

The channel's `base_url` is the API root, `https://dashscope-intl.aliyuncs.com/api/v1` (Singapore) or
`https://dashscope.aliyuncs.com/api/v1` (Beijing); the key goes as `Authorization: Bearer`. Shapes
follow Model Studio's Wan API references (text-to-video, image-to-video from a first frame, from
first and last frames), its "Manage asynchronous tasks" reference, and the `dashscope` Python SDK
(`dashscope/aigc/video_synthesis.py`, `dashscope/client/base_api.py`):

- create: `POST services/aigc/video-generation/video-synthesis` (first-and-last-frame models:
  `services/aigc/image2video/video-synthesis`) with `X-DashScope-Async: enable` (DashScope refuses
  synchronous calls for video), `{model, input: {prompt, negative_prompt, img_url | first_frame_url +
  last_frame_url}, parameters: {size "W*H" (text-to-video) | resolution "720P" (image-led), duration,
  prompt_extend, watermark, seed, audio}}` -> `{request_id, output: {task_id, task_status}}`. Which
  model takes what is `providers.dashscope_models`;
- poll: `GET tasks/{task_id}` -> `output.task_status` PENDING, RUNNING, SUCCEEDED (`video_url`),
  FAILED (`output.code`/`output.message`, inside an HTTP 200), CANCELED, UNKNOWN (the id expired after
  24 h, or never existed). Errors outside a task come as `{request_id, code, message}`, mostly with a
  4xx, sometimes with a 200;
- result: `video_url` is an OSS link valid for 24 h, on a host that is not the channel's: copied at
  once through the SSRF-safe fetcher; a link that answers 403/404/410 has expired (`ResultExpired`);
- cancel: `POST tasks/{task_id}/cancel`, which stops only a job still queued (PENDING); a started job
  is answered 400 `UnsupportedOperation` and runs to its end (said in the task's events);
- after an unknown outcome: the account's task list (`GET tasks/?model_name=&page_no=&page_size=`),
  which carries model, status and creation time but no prompt, then each candidate's own
  `GET tasks/{id}`, whose `orig_prompt` names the prompt once the job has succeeded (see `find_jobs`).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import structlog
from pydantic import BaseModel, Field, field_validator

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, ModelCapabilities
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
from vidgate.providers.dashscope_models import (
    CREATE_PATHS,
    IMAGE_SIDE_RANGE,
    SEED_MAX,
    T2V_SIZES,
    Mode,
    WanModel,
    wan_model,
)
from vidgate.providers.input_images import image_reference
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    clean_error_code,
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

log = structlog.get_logger("vidgate.providers.dashscope")

ASYNC_HEADER: Final = {"X-DashScope-Async": "enable"}
_STATES: Final = {
    "PENDING": UpstreamState.QUEUED,
    "RUNNING": UpstreamState.RUNNING,
    "SUCCEEDED": UpstreamState.SUCCEEDED,
}
# Parameters this adapter sets from the request; `extra_parameters` may not override them.
MAPPED_PARAMETERS: Final = frozenset(
    {"size", "resolution", "duration", "seed", "prompt_extend", "watermark", "audio"}
)
_LOOKUP_PAGE_SIZE: Final = 20
_LOOKUP_PAGES: Final = 10
_LOOKUP_DETAILS: Final = 20  # candidates looked at one by one per lookup (20 QPS per account)
_LOOKUP_SKEW_MS: Final = 120_000  # clocks differ: jobs made up to this long before our send count
# Listed jobs that ended without a video: nothing was billed, so none is worth adopting.
_ENDED_UNPAID: Final = frozenset({"FAILED", "CANCELED", "UNKNOWN"})
_PROMPT_CUT_CHARS: Final = 800  # the shortest prompt limit (2.1/2.2 models): longer ones are cut
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
Scalar = str | int | float | bool


class DashScopeOptions(BaseModel, extra="forbid"):
    prompt_extend: bool = Field(
        default=True,
        description="DashScope's prompt rewriting (`prompt_extend`) when a request does not say "
        "(`enhance_prompt`); the vendor's own default is true.",
    )
    watermark: bool = Field(
        default=False,
        description="Ask DashScope for its 'AI generated' mark; set the channel's watermark_free to "
        "'never' with it.",
    )
    poll_seconds: float = Field(
        default=15.0, gt=0, le=600, description="Between status queries (20 per second per account)."
    )
    lookup: bool = Field(
        default=True,
        description="After an unknown outcome, look for the job in the account's task list.",
    )
    extra_parameters: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Sent in `parameters` with every create (e.g. shot_type = 'multi' on wan2.6).",
    )

    @field_validator("extra_parameters")
    @classmethod
    def _not_mapped(cls, values: dict[str, Scalar]) -> dict[str, Scalar]:
        taken = sorted(set(values) & MAPPED_PARAMETERS)
        if taken:
            raise ValueError(f"{taken} are set from each request; leave them out of extra_parameters")
        return values


class DashScopeProvider:
    traits = ChannelTraits(can_cancel=True, can_find_jobs=True)
    Options = DashScopeOptions
    needs_base_url = True
    default_max_images = 1
    max_images_limit = 1  # one first frame; the last frame comes apart (`last_frame`)
    default_watermark_free = "always"  # `watermark: false` is sent, and is DashScope's default too
    image_inputs = frozenset({"url", "data_uri"})

    @classmethod
    def traits_for(cls, channel: ChannelSettings) -> ChannelTraits:
        options = DashScopeOptions.model_validate(channel.options)
        return ChannelTraits(can_cancel=True, can_find_jobs=options.lookup)

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        model = wan_model(upstream_model)
        return model.capabilities() if model is not None else None

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = DashScopeOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        self._unknown_statuses: set[str] = set()

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        upstream = self.channel.upstream_model(request.model)
        model = wan_model(upstream)
        mode = model.mode if model is not None else _guess_mode(upstream, request)
        body = await self._create_body(request, upstream, model, mode)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(CREATE_PATHS[mode], json=body, headers=ASYNC_HEADER)
        _raise_for_answer(response, "create", may_create=True)
        raw = json_or_none(response)
        output = raw.get("output") if isinstance(raw, dict) else None
        task_id = output.get("task_id") if isinstance(output, dict) else None
        if isinstance(raw, dict) and not task_id and isinstance(raw.get("code"), str):
            raise _create_refusal_in_200(raw)
        if not isinstance(task_id, str) or not task_id:
            # A 2xx we cannot read: the job may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown("create: the channel's answer had no task id")
        memo = {"watermark": self.options.watermark}
        return UpstreamJob(task_id, poll_after=self.options.poll_seconds, memo=memo)

    async def _create_body(
        self, request: SubmitRequest, upstream: str, model: WanModel | None, mode: Mode
    ) -> dict[str, Any]:
        _check_asks(request, upstream, model, mode)
        if self.options.watermark and request.watermark_mode is WatermarkMode.REQUIRE_CLEAN:
            raise ProviderError(
                "watermark_unsupported",
                f"channel {self.channel.name} asks DashScope for its mark (options.watermark); a video "
                "without one cannot come from it. Set the channel's watermark_free to 'never'.",
            )
        resolution = request.resolution
        if resolution is None:
            raise ProviderError(
                "unsupported_size",
                f"{upstream} is made at 480p, 720p or 1080p; {request.size} names none of them.",
            )
        inputs: dict[str, Any] = {"prompt": request.prompt}
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        parameters: dict[str, Any] = {**self.options.extra_parameters}
        if mode == "t2v":
            parameters["size"] = _t2v_size(request, model)
        else:
            parameters["resolution"] = resolution.upper()
            first = await self._image(request.images[0], request, "images[0]")
            if mode == "i2v":
                inputs["img_url"] = first
            else:
                assert request.last_frame is not None  # _check_asks said so
                inputs["first_frame_url"] = first
                inputs["last_frame_url"] = await self._image(request.last_frame, request, "last_frame")
        parameters["duration"] = request.seconds
        enhance = request.enhance_prompt
        parameters["prompt_extend"] = self.options.prompt_extend if enhance is None else enhance
        parameters["watermark"] = self.options.watermark
        if request.seed is not None:
            parameters["seed"] = request.seed
        if request.generate_audio is not None and (model is None or model.audio is AudioSupport.OPTIONAL):
            parameters["audio"] = request.generate_audio
        return {"model": upstream, "input": inputs, "parameters": parameters}

    async def _image(self, image: InputImage, request: SubmitRequest, param: str) -> str:
        """The image as DashScope takes it: the client's URL (url mode, a size it accepts), else a
        data: URI of the stored image, scaled to fit within the video's size."""
        low, high = IMAGE_SIDE_RANGE
        mode = self.image_mode
        if not (low <= min(image.width, image.height) and max(image.width, image.height) <= high):
            mode = "data_uri"  # ours can be scaled to fit; the client's cannot
        if mode == "data_uri" or not image.source.lower().startswith(("http://", "https://")):
            bound = max(request.width, request.height)
            scale = min(1.0, bound / max(image.width, image.height))
            short = round(min(image.width, image.height) * scale)
            if short < low:
                raise ProviderError(
                    "invalid_image",
                    f"{param}: DashScope takes images whose sides are {low} to {high} px; this one is "
                    f"{image.width}x{image.height}.",
                )
        return await image_reference(self.deps.blobs, image, mode, request.width, request.height)

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        output = await self._task(job.upstream_id, "poll")
        word = output.get("task_status")
        pace = self.options.poll_seconds
        state = _STATES.get(word) if isinstance(word, str) else None
        if state in (UpstreamState.QUEUED, UpstreamState.RUNNING):
            return UpstreamStatus(state, poll_after=pace)
        if state is UpstreamState.SUCCEEDED:
            url = output.get("video_url")
            if not isinstance(url, str) or not url:
                return UpstreamStatus(
                    UpstreamState.FAILED,
                    error_code="upstream_no_result",
                    error_message="DashScope reported success but gave no video_url.",
                )
            watermarked = bool(job.memo.get("watermark", self.options.watermark))
            return UpstreamStatus(
                UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=watermarked
            )
        if word == "FAILED":
            return _failure(output)
        if word == "CANCELED":
            return UpstreamStatus(
                UpstreamState.FAILED, error_code="upstream_cancelled", error_message="The job was cancelled."
            )
        if word == "UNKNOWN":
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_job_lost",
                error_message="DashScope no longer knows the job (task ids expire 24 h after creation).",
            )
        shown = shown_word(self.channel, word)
        if shown not in self._unknown_statuses:
            self._unknown_statuses.add(shown)
            log.warning("unknown upstream status; polling on", channel=self.channel.name, status=shown)
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=pace)

    async def _task(self, task_id: str, what: str) -> dict[str, Any]:
        """`output` of `GET tasks/{task_id}`."""
        with mapped_transport_errors(what):
            response = await self.client.get(f"tasks/{task_id}", timeout=self.channel.poll_timeout_seconds)
        _raise_for_answer(response, what)
        raw = json_or_none(response)
        output = raw.get("output") if isinstance(raw, dict) else None
        if isinstance(output, dict):
            return output
        if isinstance(raw, dict) and isinstance(raw.get("code"), str):
            refusal = _channel_refusal(raw, response, what)
            if refusal is not None:
                raise refusal
            _, message = error_fields(raw, "no message")
            raise ProviderError("upstream_unavailable", f"{what}: {message}", retryable=True)
        raise ProviderError(
            "upstream_bad_response", f"{what}: the channel's answer is not JSON", retryable=True
        )

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy the OSS link into `work_dir`: a URL DashScope chose on another host, so through the
        SSRF-safe fetcher like any user URL."""
        if not status.result_url:
            raise ProviderError("upstream_no_result", "The channel gave no video URL.")
        dest = work_dir / "video.mp4"
        await copy_result_link(
            self.deps.fetcher,
            status.result_url,
            dest,
            max_bytes=self.deps.settings.max_video_bytes,
            timeout=self.channel.download_timeout_seconds,
        )
        return FetchedResult(dest)

    # cancel, lookup, probe ----------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        with mapped_transport_errors("cancel"):
            response = await self.client.post(f"tasks/{job.upstream_id}/cancel")
        if response.status_code == 404:
            return  # gone: nothing left to stop
        body = json_or_none(response)
        code = body.get("code") if isinstance(body, dict) else None
        if code == "UnsupportedOperation":
            raise ProviderError(
                "upstream_cannot_cancel",
                f"DashScope stops only queued (PENDING) jobs; job {job.upstream_id} has started or "
                "ended and runs to its end.",
            )
        _raise_for_answer(response, "cancel")
        if isinstance(code, str) and code:  # a 2xx that carries an error
            refusal = _channel_refusal(body, response, "cancel")
            _, message = error_fields(body, "no message")
            raise refusal or ProviderError(_vendor_code(code) or "upstream_refused", f"cancel: {message}")

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """Jobs a create of unknown outcome may have made, oldest first.

        The task list (the last 24 h of the whole account, newest first, as Model Studio's example
        shows) names each job's model, status and creation time but not its prompt; a job's own query
        names its prompt (`orig_prompt`) once it has succeeded. So: this model's jobs made since the
        create was sent, each asked for its prompt. A failed or cancelled job cost nothing and is
        passed over. While a candidate cannot be told yet (still queued or running, or too many to
        ask at once) and none matched, the answer is a retryable error, never "no job": the worker
        then looks again instead of paying for a second job."""
        upstream = self.channel.upstream_model(request.model)
        since_ms = request.sent_at_ms - _LOOKUP_SKEW_MS
        listed, complete = await self._listed_since(upstream, since_ms)
        found: list[tuple[int, str]] = []
        undecided = 0 if complete else 1
        asked = 0
        for created, task_id, status in sorted(listed):  # oldest first: the create's own is early
            if status in _ENDED_UNPAID:
                continue
            if asked >= _LOOKUP_DETAILS:
                undecided += 1
                continue
            asked += 1
            output = await self._task(task_id, "lookup")
            verdict = _same_prompt(output, request.prompt)
            if verdict:
                found.append((created, task_id))
            elif verdict is None and output.get("task_status") not in _ENDED_UNPAID:
                undecided += 1
        if not found and undecided:
            raise ProviderError(
                "upstream_lookup_pending",
                f"lookup: {undecided} job(s) of {upstream} made since the create cannot be told apart "
                "yet (DashScope names a job's prompt once it has succeeded); looking again later.",
                retryable=True,
            )
        return [UpstreamJob(task_id, poll_after=self.options.poll_seconds) for _, task_id in found]

    async def _listed_since(self, upstream: str, since_ms: int) -> tuple[list[tuple[int, str, str]], bool]:
        """(created ms, task id, status) of the account's `upstream` jobs made since `since_ms`, and
        whether the list was read to its end (False: more pages than one lookup reads)."""
        found: list[tuple[int, str, str]] = []
        for page in range(1, _LOOKUP_PAGES + 1):
            params = {"model_name": upstream, "page_no": str(page), "page_size": str(_LOOKUP_PAGE_SIZE)}
            with mapped_transport_errors("lookup"):
                response = await self.client.get(
                    "tasks/", params=params, timeout=self.channel.poll_timeout_seconds
                )
            _raise_for_answer(response, "lookup")
            body = json_or_none(response)
            items = body.get("data") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ProviderError(
                    "upstream_bad_response", "lookup: the task list is not readable", retryable=True
                )
            created = [_created_ms(item) for item in items]
            for item, at in zip(items, created, strict=True):
                if not isinstance(item, dict) or not isinstance(item.get("task_id"), str):
                    continue
                if item.get("model_name") not in (None, upstream) or at < since_ms:
                    continue
                found.append((at, item["task_id"], str(item.get("status", "")).upper()))
            newest_first = all(a >= b for a, b in itertools.pairwise(created))
            pages = _int(body.get("total_page"))
            if len(items) < _LOOKUP_PAGE_SIZE or (pages is not None and page >= pages):
                return found, True
            if len(items) > 1 and newest_first and created[-1] < since_ms:
                return found, True  # everything further is older than the create
        return found, False

    async def probe(self) -> ProbeResult:
        """Query a task that does not exist: DashScope answers UNKNOWN, proving reachability and that
        the key is accepted; no job is made."""
        try:
            response = await self.client.get(f"tasks/vidgate-probe-{secrets.token_hex(6)}")
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response, fine=frozenset({200, 400, 404}))

    async def aclose(self) -> None:
        await self.client.aclose()


# Request checks -----------------------------------------------------------------------------------


def _guess_mode(upstream: str, request: SubmitRequest) -> Mode:
    """A model the table does not know: first-and-last-frame by its name, image-led with an image."""
    if "kf2v" in upstream:
        return "kf2v"
    return "i2v" if request.images else "t2v"


def _check_asks(request: SubmitRequest, upstream: str, model: WanModel | None, mode: Mode) -> None:
    """Refuse, loudly and before anything is sent, what this model cannot be asked."""
    problem: str | None = None
    if mode == "t2v" and request.images:
        problem = f"{upstream} makes videos from text only; it takes no image"
    elif mode != "t2v" and not request.images:
        problem = f"{upstream} animates an image: send the first frame in images"
    elif request.last_frame is not None and mode != "kf2v":
        problem = f"{upstream} takes no last frame (the first-and-last-frame models do)"
    elif mode == "kf2v" and request.last_frame is None:
        problem = f"{upstream} needs a last frame as well as the first"
    elif request.generate_audio and model is not None and model.audio is AudioSupport.NONE:
        problem = f"{upstream} makes silent videos only"
    elif request.generate_audio is False and model is not None and model.audio is AudioSupport.ALWAYS:
        problem = f"{upstream} makes videos with sound only"
    elif request.seed is not None and request.seed > SEED_MAX:
        problem = f"DashScope takes seeds from 0 to {SEED_MAX}; got {request.seed}"
    if problem is not None:
        raise ProviderError("unsupported_option", f"{problem}.")


def _t2v_size(request: SubmitRequest, model: WanModel | None) -> str:
    """`parameters.size`: the vendor's size for the request's resolution and aspect ratio."""
    resolution, ratio = request.resolution, request.aspect_ratio
    if resolution is not None and ratio is not None:
        size = model.t2v_size(resolution, ratio) if model else T2V_SIZES.get((resolution, ratio))
        if size is not None:
            return size
    return f"{request.width}*{request.height}"  # an operator's override: DashScope decides


# Answers ------------------------------------------------------------------------------------------


def _vendor_code(raw: Any) -> str | None:
    """DashScope's code as one of ours: `Throttling.RateQuota` -> `throttling.rate_quota`."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return clean_error_code(_CAMEL.sub("_", raw.strip()))


def _is_moderation(code: str, message: str) -> bool:
    return "DataInspection" in code or code == "IPInfringementSuspect" or is_moderation(None, message)


def _is_transient(code: str) -> bool:
    """A server-side failure: no fault of the request; a new job may well succeed."""
    return code.startswith(("InternalError", "SystemError", "ServiceUnavailable")) or code in (
        "Timeout",
        "RequestTimeOut",
    )


def _channel_refusal(body: dict[str, Any], response: httpx.Response, what: str) -> ProviderError | None:
    """What DashScope's own code says about the channel (not the request), when it says something."""
    code = body.get("code")
    if not isinstance(code, str):
        return None
    _, message = error_fields(body, "no message")
    retry_after = parse_retry_after(response.headers)
    if _is_moderation(code, message):
        return ProviderError("content_policy", f"The channel's content policy refused it: {message}")
    if code.startswith("AllocationQuota") or code == "Throttling.AllocationQuota":
        return ProviderError(
            "upstream_quota_exhausted", f"{what}: {message}", retryable=True, retry_after=retry_after
        )
    if code.startswith("Throttling"):
        return ProviderError(
            "upstream_rate_limited",
            f"{what}: rate limited ({message})",
            retryable=True,
            retry_after=retry_after,
        )
    if code == "Arrearage":
        return ProviderError(
            "upstream_account_in_arrears",
            f"{what}: the channel's Alibaba Cloud account is overdue ({message})",
            retryable=True,
        )
    if code == "InvalidApiKey":
        return ProviderError(
            "upstream_auth_failed", f"{what}: the channel refused our credentials ({code})", retryable=True
        )
    return None


def _raise_for_answer(response: httpx.Response, what: str, *, may_create: bool = False) -> None:
    """Nothing for a 2xx. A refusal DashScope explains in its envelope is mapped by its code when the
    status proves no job was made (any 4xx but on a create only `PROVEN_REFUSALS`); everything else is
    `raise_for_status`'s (a 5xx on a create is an unknown outcome, whatever its body says)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    refusal_proven = status in PROVEN_REFUSALS if may_create else 400 <= status < 500
    body = json_or_none(response)
    if refusal_proven and isinstance(body, dict) and isinstance(body.get("code"), str):
        refusal = _channel_refusal(body, response, what)
        if refusal is not None:
            raise refusal
        if status not in (401, 403, 429):
            _, message = error_fields(body, f"HTTP {status}")
            code = _vendor_code(body["code"]) or "upstream_refused"
            raise ProviderError(code, f"{what}: the channel refused it: {message}")
    raise_for_status(response, what, may_create=may_create)


def _create_refusal_in_200(body: dict[str, Any]) -> ProviderError:
    """An HTTP 200 to a create that carries `code` and no task id. A server-side code proves nothing
    (the job may have been made before it failed): an unknown outcome. Anything else is a refusal."""
    code = str(body.get("code"))
    _, message = error_fields(body, f"the channel answered code {code}")
    if _is_transient(code):
        return UpstreamOutcomeUnknown(f"create: the channel answered {code} ({message})")
    refusal = _channel_refusal(body, httpx.Response(200), "create")
    if refusal is not None:
        return refusal
    return ProviderError(
        _vendor_code(code) or "upstream_refused", f"create: the channel refused it: {message}"
    )


def _failure(output: dict[str, Any]) -> UpstreamStatus:
    """A FAILED task: `output.code` and `output.message`, inside an HTTP 200."""
    raw = output.get("code")
    code = raw if isinstance(raw, str) else ""
    _, message = error_fields(output, "the channel reported a failure without a reason")
    if _is_moderation(code, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code=_vendor_code(code) or "upstream_failed",
        error_message=message,
        retryable=_is_transient(code),
    )


def _same_prompt(output: dict[str, Any], prompt: str) -> bool | None:
    """Whether a job was made for `prompt`: None while its query does not name one."""
    orig = output.get("orig_prompt")
    if not isinstance(orig, str) or not orig:
        return None
    if orig == prompt:
        return True
    # Prompts over the model's limit are cut (2.1/2.2: 800 characters); the job shows the cut one.
    return len(orig) >= _PROMPT_CUT_CHARS and prompt.startswith(orig)


def _created_ms(item: Any) -> int:
    """A listed job's creation time (`gmt_create`, Unix ms); unreadable ones count as new."""
    value = item.get("gmt_create") if isinstance(item, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 2**62


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
