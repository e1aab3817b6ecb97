"""The `seedance` channel kind: ByteDance Seedance through Volcengine Ark or BytePlus ModelArk.

The channel's `base_url` is the Ark API root, `https://ark.ap-southeast.bytepluses.com/api/v3` (BytePlus)
or `https://ark.cn-beijing.volces.com/api/v3` (Volcengine); its `api_key` goes as a Bearer token. The
shapes below are those of the public "Video Generation API" pages of both (docs.byteplus.com/docs/ModelArk/
1520757, volcengine.com/docs/82379/1520757) and of the `volcenginesdkarkruntime` SDK's
`client.content_generation.tasks.create/get/list/delete`.

- create: `POST contents/generations/tasks` with `{model, content: [text, image_url items with a role],
  ratio, duration, resolution, seed, watermark, generate_audio?, camera_fixed?, service_tier?,
  execution_expires_after?}`; the answer is `{id}`. Parameters always go as body fields, never as the
  older `--rs 720p --dur 5` text flags (which a client's prompt may not smuggle in: see
  `strip_prompt_flags`). Ark has no idempotency key, so every create is a new paid job;
- poll: `GET contents/generations/tasks/{id}`: `queued`, `running`, `succeeded` (the video at
  `content.video_url`, a presigned link that lives 24 hours: copied at once through the SSRF-safe
  fetcher, a dead link answered with ResultExpired so the worker polls for a fresh one), `failed`
  (`error.code`/`message`), `cancelled`, `expired`;
- cancel: `DELETE contents/generations/tasks/{id}` cancels a queued task and deletes a finished one's
  record; a running one cannot be stopped (Ark refuses, the job runs to its end), which is said so;
- lookup after an unknown outcome: `GET contents/generations/tasks?page_num=&page_size=&filter.model=`,
  matching ratio, resolution, duration and seed among the tasks created since the submit was sent. The
  list does not carry the prompt, so every create carries a seed (the client's, or one derived from the
  submission's idempotency key), which makes a submission's job tell itself apart from its twins'.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import structlog
from pydantic import BaseModel, Field, field_validator

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, describe_size
from vidgate.domain.routing import ChannelTraits
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
from vidgate.providers.capabilities import model_capabilities
from vidgate.providers.input_images import image_reference
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.seedance_models import seedance_capabilities
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    error_fields,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    probe_verdict,
    raise_for_status,
    shown_word,
    unreachable,
)
from vidgate.providers.upstream_status import dig, first_url, upstream_state

__all__ = ["SeedanceOptions", "SeedanceProvider", "ark_seed", "task_status"]

log = structlog.get_logger("vidgate.providers.seedance")

TASKS: Final = "contents/generations/tasks"
SEED_MAX: Final = 2**32 - 1  # Ark takes -1 (random) or 0..4294967295
_LOOKUP_PAGES: Final = 10
_LOOKUP_PAGE_SIZE: Final = 100  # Ark allows 1..500
_LOOKUP_SKEW_S: Final = 120  # clocks differ: accept tasks created up to this long before our submit
# Failure codes after which a new submission may well succeed (Ark's trouble, not the request's).
TRANSIENT_FAILURES: Final = frozenset(
    {"internalserviceerror", "internalerror", "serviceunavailable", "serveroverloaded", "timeout"}
)
# Refusals that say this account cannot use this model or endpoint here (not activated, endpoint closed
# or missing, account overdue, no access): like refused credentials, they rule the channel out for the
# task and the next channel is tried.
_ACCOUNT_REFUSALS: Final = ("authenticationerror", "accessdenied", "accountoverdue", "modelnotopen",
                            "invalidendpoint", "operationdenied")  # fmt: skip
# Ark's own moderation codes: Input{Text,Image,Video,Audio}SensitiveContentDetected(.*),
# Output{Video,Audio,...}SensitiveContentDetected, SensitiveContentDetected(.*), *RiskDetection.
_ARK_MODERATION: Final = re.compile(r"sensitivecontent|riskdetection", re.I)
# The text flags older Seedance models read from the prompt (`--rs 1080p --dur 12 --seed 7`): a client's
# prompt carrying them could change what is made (and billed) behind the routing's back.
_TEXT_FLAGS: Final = re.compile(
    r"(?<!\S)--(?:resolution|rs|ratio|rt|duration|dur|frames|framespersecond|fps|seed|camerafixed|cf|"
    r"watermark|wm)(?:=|\s+)\S+",
    re.I,
)
# Body fields the adapter sets itself: `extra_body` may not set them.
_OWN_FIELDS: Final = frozenset(
    {"model", "content", "ratio", "duration", "frames", "resolution", "seed", "watermark", "generate_audio",
     "camera_fixed", "service_tier", "execution_expires_after", "callback_url"}
)  # fmt: skip

Scalar = str | int | float | bool
Role = Literal["first_frame", "last_frame", "reference_image"]


class SeedanceOptions(BaseModel, extra="forbid"):
    poll_seconds: float | None = Field(
        default=None, gt=0, description="Seconds between polls (Ark gives no hint); default: the worker's."
    )
    camera_fixed: bool | None = Field(
        default=None, description="Send `camera_fixed` (lock the camera) on creates without reference images."
    )
    watermark: bool = Field(
        default=False,
        description="Ask Ark for its 'AI generated' mark on every video (then set watermark_free = never).",
    )
    service_tier: Literal["default", "flex"] | None = Field(
        default=None,
        description="`flex`: Ark's offline tier, half price, slower; default: Ark's (`default`).",
    )
    execution_expires_after: int | None = Field(
        default=None, ge=3600, le=259200, description="Seconds after which Ark expires an unfinished task."
    )
    seed_tag: bool = Field(
        default=True,
        description="When the client sent no seed, send one derived from the submission's idempotency key, "
        "so the lookup after an unknown outcome can tell its job from a twin's (the list has no prompt).",
    )
    one_image_as: Literal["first_frame", "reference_image"] = Field(
        default="first_frame",
        description="What one image in images[] is on models that take both (Seedance 1.0 lite i2v, 2.0).",
    )
    strip_prompt_flags: bool = Field(
        default=True, description="Remove `--rs/--dur/--seed/...` text flags from prompts before sending."
    )
    extra_body: dict[str, Scalar] = Field(
        default_factory=dict, description="Fields sent with every create (e.g. `safety_identifier`)."
    )

    @field_validator("extra_body")
    @classmethod
    def _not_our_fields(cls, body: dict[str, Scalar]) -> dict[str, Scalar]:
        clash = sorted(set(body) & _OWN_FIELDS)
        if clash:
            raise ValueError(f"extra_body may not set {clash}: the adapter sends them from each task")
        return body


class SeedanceProvider:
    traits = ChannelTraits(can_cancel=True, can_find_jobs=True)
    vendor = "bytedance"  # `owned_by` in GET /v1/models
    Options = SeedanceOptions
    needs_base_url = True
    default_max_images = 1  # a model the table does not know: one first frame
    max_images_limit = 9  # Seedance 2.0's reference images
    image_inputs = frozenset({"url", "data_uri"})
    default_watermark_free = "always"  # Ark marks only when asked (`watermark: true`)

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        return seedance_capabilities(upstream_model)

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """A model the table does not know (an `ep-...` endpoint id): what the channel's settings say, but
        only at sizes a resolution and a ratio name (Ark takes no pixel sizes), and with a seed."""
        sizes = frozenset(s for s in channel.usable_sizes if describe_size(s)[0] is not None)
        return {"sizes": sizes, "seed": True}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = SeedanceOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        self._unknown_statuses: set[str] = set()
        # What each public model can do here, the operator's `capabilities` included: what routing
        # allowed is what the body must carry (image roles, sound).
        max_images = channel.max_images if channel.max_images is not None else self.default_max_images
        self.capabilities = model_capabilities(channel, type(self), max_images)

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "Seedance has no remix of an earlier task.")
        body = await self.create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(TASKS, json=body)
        if not 200 <= response.status_code < 300:
            raise create_refusal(response)
        answer = json_or_none(response)
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            # A 2xx we cannot read: the task may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown("create: the channel's answer had no task id")
        return UpstreamJob(job_id, poll_after=self.options.poll_seconds)

    async def create_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The JSON body of `POST contents/generations/tasks` for `request`."""
        model = self.channel.upstream_model(request.model)
        capabilities = self.capabilities.get(request.model)
        roles = image_roles(len(request.images), request.last_frame is not None, capabilities, self.options)
        content: list[dict[str, Any]] = []
        text = prompt_text(request.prompt, strip_flags=self.options.strip_prompt_flags)
        if text or not roles:
            content.append({"type": "text", "text": text})
        pictures: list[tuple[InputImage, Role]] = list(zip(request.images, roles, strict=True))
        if request.last_frame is not None:
            pictures.append((request.last_frame, "last_frame"))
        for image, role in pictures:
            url = await image_reference(
                self.deps.blobs, image, self.image_mode, request.width, request.height
            )
            content.append({"type": "image_url", "image_url": {"url": url}, "role": role})
        body: dict[str, Any] = {
            **self.options.extra_body,
            "model": model,
            "content": content,
            **generation_fields(request, seed_tag=self.options.seed_tag),
            "watermark": self.options.watermark,
        }
        if request.generate_audio is not None and (
            capabilities is None or capabilities.audio is not AudioSupport.NONE
        ):
            body["generate_audio"] = request.generate_audio
        if self.options.camera_fixed is not None and "reference_image" not in roles:
            body["camera_fixed"] = self.options.camera_fixed  # Ark takes none with reference images
        if self.options.service_tier is not None:
            body["service_tier"] = self.options.service_tier
        if self.options.execution_expires_after is not None:
            body["execution_expires_after"] = self.options.execution_expires_after
        return body

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                f"{TASKS}/{job.upstream_id}", timeout=self.channel.poll_timeout_seconds
            )
        if response.status_code == 404:
            _, message = error_fields(json_or_none(response), "HTTP 404")
            raise ProviderError(
                "upstream_job_lost", f"poll: the channel no longer knows the task ({message})"
            )
        raise_for_status(response, "poll")
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise ProviderError(
                "upstream_bad_response", "poll: the channel's answer is not JSON", retryable=True
            )
        status = task_status(body, poll_after=self.options.poll_seconds, watermarked=self.options.watermark)
        if status is None:
            self._log_unknown_status(body.get("status"))
            return UpstreamStatus(UpstreamState.RUNNING, poll_after=self.options.poll_seconds)
        return status

    def _log_unknown_status(self, status: Any) -> None:
        word = shown_word(self.channel, status)
        if word not in self._unknown_statuses:
            self._unknown_statuses.add(word)
            log.warning("unknown upstream status; polling on", channel=self.channel.name, status=word)

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy the presigned link's video now: the link is someone else's (TOS), so it goes through the
        SSRF-safe fetcher, and it dies after 24 hours (then the worker polls for a fresh one)."""
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
        """DELETE cancels a queued task and deletes a finished one's record. Ark refuses a running task
        (and one already cancelled): the task is read again to tell which, since the refusal's code is
        not documented."""
        with mapped_transport_errors("cancel"):
            response = await self.client.delete(f"{TASKS}/{job.upstream_id}")
        if 200 <= response.status_code < 300 or response.status_code == 404:
            return  # cancelled, deleted, or already gone
        if response.status_code in (400, 409, 422):
            now = await self._current_status(job)
            if now in (None, "cancelled"):
                return  # gone meanwhile, or cancelled already: nothing left to stop
            if now == "running":
                raise ProviderError(
                    "upstream_cannot_cancel",
                    "Ark cannot stop a running task (only a queued one): it runs to its end upstream.",
                )
        raise_for_status(response, "cancel")

    async def _current_status(self, job: UpstreamJob) -> str | None:
        """The task's status word now; None when Ark no longer knows it."""
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                f"{TASKS}/{job.upstream_id}", timeout=self.channel.poll_timeout_seconds
            )
        if response.status_code == 404:
            return None
        raise_for_status(response, "poll")
        body = json_or_none(response)
        word = body.get("status") if isinstance(body, dict) else None
        return str(word).strip().lower() if word is not None else ""

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """Tasks a submit of unknown outcome may have made, oldest first: same model (the list's filter),
        ratio, resolution, duration and seed, created since the submit went out (less `_LOOKUP_SKEW_S`).
        Pages come newest first; the scan stops at a page holding only older tasks."""
        since_s = request.sent_at_ms // 1000 - _LOOKUP_SKEW_S
        want = generation_fields(request, seed_tag=self.options.seed_tag)
        model = self.channel.upstream_model(request.model)
        found: list[tuple[float, str]] = []
        for page in range(1, _LOOKUP_PAGES + 1):
            params = {"page_num": str(page), "page_size": str(_LOOKUP_PAGE_SIZE), "filter.model": model}
            with mapped_transport_errors("lookup"):
                response = await self.client.get(
                    TASKS, params=params, timeout=self.channel.poll_timeout_seconds
                )
            raise_for_status(response, "lookup")
            body = json_or_none(response)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ProviderError(
                    "upstream_bad_response", "lookup: the task list is not readable", retryable=True
                )
            older = 0
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                created = _created_s(item)
                if created < since_s:
                    older += 1
                elif _matches(item, want):
                    found.append((created, item["id"]))
            total = body.get("total")
            seen_all = isinstance(total, int) and page * _LOOKUP_PAGE_SIZE >= total
            if not items or older == len(items) or seen_all:
                break
        return [UpstreamJob(job_id) for _, job_id in sorted(found)]

    async def probe(self) -> ProbeResult:
        """List one task: proves reachability and the key without making a job."""
        try:
            response = await self.client.get(TASKS, params={"page_num": "1", "page_size": "1"})
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def ark_seed(request: SubmitRequest, *, seed_tag: bool) -> int | None:
    """The seed a create carries: the client's (checked against Ark's range), else one derived from the
    submission's idempotency key (the same for a retry of one submission, new for a resubmission)."""
    seed = request.seed
    if seed is not None:
        if not 0 <= seed <= SEED_MAX:
            raise ProviderError(
                "invalid_seed", f"Seedance takes a seed between 0 and {SEED_MAX}; got {seed}."
            )
        return seed
    if not seed_tag:
        return None
    digest = hashlib.sha256(f"vidgate-seed:{request.idempotency_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def generation_fields(request: SubmitRequest, *, seed_tag: bool) -> dict[str, Any]:
    """`ratio`, `resolution`, `duration` and `seed` of a create: what the lookup matches on too."""
    resolution, ratio = request.resolution, request.aspect_ratio
    if resolution is None or ratio is None:
        raise ProviderError(
            "unsupported_size",
            f"Seedance makes sizes a resolution and an aspect ratio name; {request.size} is none of them.",
        )
    fields: dict[str, Any] = {"ratio": ratio, "resolution": resolution, "duration": request.seconds}
    seed = ark_seed(request, seed_tag=seed_tag)
    if seed is not None:
        fields["seed"] = seed
    return fields


def prompt_text(prompt: str, *, strip_flags: bool) -> str:
    """The prompt as sent: without the `--rs/--dur/...` text flags (when told), spaces tidied."""
    if not strip_flags:
        return prompt
    stripped = _TEXT_FLAGS.sub("", prompt)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip() if stripped != prompt else prompt


def image_roles(
    count: int, last_frame: bool, capabilities: ModelCapabilities | None, options: SeedanceOptions
) -> list[Role]:
    """The role of each image in images[]: a first frame, or reference images. Ark takes a last frame
    only after a first frame, and never with reference images."""
    if last_frame:
        if count != 1:
            raise ProviderError(
                "unsupported_combination",
                "Seedance takes a last frame only together with exactly one first frame in images "
                f"(got {count} image(s)); reference images and a last frame cannot be combined.",
            )
        return ["first_frame"]
    if count == 0:
        return []
    takes_references = capabilities is None or capabilities.reference_images >= count
    if count == 1:
        takes_first = capabilities is None or capabilities.first_frame
        if takes_references and (options.one_image_as == "reference_image" or not takes_first):
            return ["reference_image"]
        if takes_first:
            return ["first_frame"]
    elif takes_references:
        return ["reference_image"] * count
    raise ProviderError(
        "too_many_images",
        f"This Seedance model takes no {count} image(s) in images[] as frames or references.",
    )


def create_refusal(response: httpx.Response) -> ProviderError:
    """The error for a create Ark did not accept. Refusals that prove no task was made (`PROVEN_REFUSALS`
    but 429) are read in Ark's own codes: moderation, an account that cannot use the model or endpoint,
    else a final refusal with Ark's code (never taken for moderation because its message says
    `safety_identifier`). The rest as every adapter maps it (`raise_for_status`: 429 is a retryable
    refusal, 5xx and anything unexpected may have made the task)."""
    body = json_or_none(response)
    raw = ark_code(body)
    code, message = error_fields(body, f"HTTP {response.status_code}")
    status = response.status_code
    if status in PROVEN_REFUSALS and status != 429:
        if moderation(raw, message):
            return ProviderError("content_policy", f"The channel's content policy refused it: {message}")
        if raw and raw.lower().startswith(_ACCOUNT_REFUSALS):
            return ProviderError(
                "upstream_auth_failed",
                f"create: the channel's account cannot use this model or endpoint ({raw}: {message})",
                retryable=True,
            )
        if status not in (401, 403):
            return ProviderError(code or "upstream_refused", f"create: the channel refused it: {message}")
    try:
        raise_for_status(response, "create", may_create=True)
    except ProviderError as exc:
        return exc
    return UpstreamOutcomeUnknown(f"create: unexpected HTTP {status}")  # pragma: no cover - 2xx handled


def ark_code(body: Any) -> str | None:
    """Ark's `error.code` as sent (`error_fields` drops codes longer than a short word, and Ark's
    moderation codes can be: `InputImageSensitiveContentDetected.PrivacyInformation`)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None


def task_status(
    body: dict[str, Any], *, poll_after: float | None, watermarked: bool
) -> UpstreamStatus | None:
    """An Ark task as an UpstreamStatus; None for a status word nobody knows (keep polling)."""
    word = str(body.get("status") or "").strip().lower()
    if word == "queued":
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "running":
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    if word == "succeeded":
        url = first_url(dig(body, "content", "video_url"))
        if url is None:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="The channel reported success but gave no video URL.",
            )
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=watermarked)
    if word == "failed":
        return task_failure(body)
    if word == "cancelled":
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_cancelled",
            error_message="The channel cancelled the task.",
        )
    if word == "expired":
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_expired",
            error_message="The channel's task expired before it finished (execution_expires_after).",
            retryable=True,
        )
    state, cancelled = upstream_state(body.get("status"))  # a synonym some proxy in front may use
    if state is None:
        return None
    if cancelled:
        return task_status({"status": "cancelled"}, poll_after=poll_after, watermarked=watermarked)
    if state is UpstreamState.SUCCEEDED:
        return task_status({**body, "status": "succeeded"}, poll_after=poll_after, watermarked=watermarked)
    if state is UpstreamState.FAILED:
        return task_failure(body)
    return UpstreamStatus(state, poll_after=poll_after)


def task_failure(body: dict[str, Any]) -> UpstreamStatus:
    code, message = error_fields(body, "the channel reported a failure without a reason")
    if moderation(ark_code(body), message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code=code or "upstream_failed",
        error_message=message,
        retryable=(code or "") in TRANSIENT_FAILURES,
    )


def moderation(code: str | None, message: str) -> bool:
    """Whether Ark refused the content: its own codes, or any moderation word in the code. The message is
    read only when there is no code (an InvalidParameter about `safety_identifier` is no moderation)."""
    if code:
        return bool(_ARK_MODERATION.search(code)) or is_moderation(code, "")
    return is_moderation(None, message) or bool(_ARK_MODERATION.search(message.replace(" ", "")))


def _created_s(item: dict[str, Any]) -> float:
    created = item.get("created_at")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return created / 1000 if created > 1e12 else float(created)
    return float("inf")  # no time: cannot tell, so keep it as a candidate


def _matches(item: dict[str, Any], want: dict[str, Any]) -> bool:
    """Every field we sent that the task reports is what we sent (a field it leaves out proves nothing)."""
    return all(item.get(k) is None or str(item.get(k)) == str(v) for k, v in want.items())
