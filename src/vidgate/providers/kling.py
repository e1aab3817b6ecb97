"""The `kling` channel kind: Kling AI's video models through Kling's official API.

The channel's `base_url` is the API host, `https://api-singapore.klingai.com` (or the Beijing host,
`https://api-beijing.klingai.com`); the `/v1/...` paths are the adapter's. Credentials are an access key
and a secret key (`options.access_key`, `options.secret_key`): every request carries `Authorization:
Bearer <JWT>`, an HS256 token signed with the secret key, `iss` the access key, valid from 5 s ago for
30 minutes, made with PyJWT and made anew 5 minutes before it expires (`KlingToken`). Shapes follow
Kling's developer documentation ("API authentication", "Video Generation - Text to Video", "Video
Generation - Image to Video", "Error Code", "Capability Map"; `providers.kling_models` names them):

- create: `POST /v1/videos/text2video` (no image) or `POST /v1/videos/image2video` (`image`, `image_tail`
  for the last frame), with `model_name`, `prompt`, `negative_prompt`, `duration` ("5", a string), `mode`
  (std|pro: the resolution), `aspect_ratio` (text-to-video only), `sound` (on|off, models with sound),
  `cfg_scale` (v1.x, `options.cfg_scale`) and `external_task_id`: the submission's idempotency key
  (`<task>-<n>`, unique per account as Kling requires). The answer is `{code: 0, message, request_id,
  data: {task_id, task_status, task_info: {external_task_id}}}`;
- poll: `GET /v1/videos/{text2video|image2video}/{task_id}`: `data.task_status` submitted, processing,
  succeed (`data.task_result.videos[0].url`, a CDN link on another host: copied at once through the
  SSRF-safe fetcher), failed (`data.task_status_msg`, moderation in words: "risk control");
- errors: `{code, message, request_id}` with Kling's business codes (1000-1004 authentication, 1100-1103
  account, 1200-1203 parameters, 1300-1304 policy and rate, 5000-5002 Kling's own trouble), with the HTTP
  status the code table gives or, as Kling also answers, inside an HTTP 200: the code decides;
- after an unknown outcome: `GET /v1/videos/{route}/{external_task_id}`, the query Kling documents by
  "the external_task_id filled in when creating the task", asks for exactly this submission's job. A
  repeated create of one submission carries the same `external_task_id`, which Kling refuses as taken:
  that refusal is answered with the job it names;
- no cancel: Kling documents none for video tasks (`ChannelTraits(can_find_jobs=True)`).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import jwt
import structlog
from pydantic import BaseModel, Field, SecretStr, field_validator

from vidgate.channel_config import ChannelSettings, resolve_secret
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
from vidgate.providers.capabilities import model_capabilities, uncarried_correction
from vidgate.providers.input_images import image_reference
from vidgate.providers.job_polls import UnknownStatuses
from vidgate.providers.kling_models import ASPECT_RATIOS, KlingModel, kling_model
from vidgate.providers.registry import ChannelConfigError, ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    parse_retry_after,
    probe_verdict,
    raise_for_status,
    unreachable,
    upstream_text,
)
from vidgate.providers.upstream_status import first_url, upstream_state
from vidgate.redaction import Redactor

__all__ = ["KlingOptions", "KlingProvider", "KlingToken", "kling_error", "read_task"]

log = structlog.get_logger("vidgate.providers.kling")

Route = Literal["text2video", "image2video"]
ROUTES: Final[tuple[Route, ...]] = ("text2video", "image2video")
TOKEN_SECONDS: Final = 1800  # Kling's example: 30 minutes
TOKEN_MARGIN_S: Final = 300  # a new token this long before the old one expires
TOKEN_NOT_BEFORE_S: Final = 5
_SHORT_KEY_WARNING: Final = r"The HMAC key is \d+ bytes long"
PROMPT_MAX_CHARS: Final = 2500
IMAGE_MIN_SIDE: Final = 300
IMAGE_MAX_RATIO: Final = 2.5  # 1:2.5 to 2.5:1
IMAGE_URL_MAX_SIDE: Final = 4096  # larger client images are sent as our own, scaled copy
_TASK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DATA_URI_HEAD: Final = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.I)
# How Kling says a finished task broke its content rules (it gives words, no code).
_MODERATION_WORDS: Final = re.compile(
    r"risk[ _-]?control|sensitive|content (?:security|safety)|violat|风控|敏感|内容安全|审核", re.I
)
_TRANSIENT_WORDS: Final = re.compile(r"internal|timed? ?out|overload|busy|内部错误|超时|繁忙", re.I)
# Fields the adapter sets itself: `extra_body` may not set them.
_OWN_FIELDS: Final = frozenset(
    {"model_name", "model", "prompt", "negative_prompt", "duration", "mode", "aspect_ratio", "image",
     "image_tail", "sound", "cfg_scale", "external_task_id", "callback_url"}
)  # fmt: skip
# `capabilities` corrections Kling has no field for: turning one on would let routing send a request field
# the adapter could only drop.
CANNOT_CARRY: Final = {"seed": "Kling takes no seed", "enhance_prompt": "Kling has no prompt enhancement"}
Scalar = str | int | float | bool


class KlingOptions(BaseModel, extra="forbid"):
    access_key: SecretStr = Field(description="Kling's access key (the token's `iss`); `env:NAME` allowed.")
    secret_key: SecretStr = Field(description="Kling's secret key (signs the token); `env:NAME` allowed.")
    poll_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Between status queries (Kling gives no hint)."
    )
    lookup: bool = Field(
        default=True,
        description="After an unknown outcome, ask Kling for the submission's job by its external_task_id.",
    )
    cfg_scale: float | None = Field(
        default=None, ge=0, le=1, description="`cfg_scale` for the models that take it (kling-v1.x)."
    )
    extra_body: dict[str, Scalar] = Field(
        default_factory=dict, description="Fields sent with every create (the mapped ones cannot be set)."
    )

    @field_validator("access_key", "secret_key", mode="before")
    @classmethod
    def _from_env(cls, value: Any) -> Any:
        return resolve_secret(value, "this key")

    @field_validator("extra_body")
    @classmethod
    def _not_our_fields(cls, body: dict[str, Scalar]) -> dict[str, Scalar]:
        clash = sorted(set(body) & _OWN_FIELDS)
        if clash:
            raise ValueError(f"extra_body may not set {clash}: the adapter sends them from each task")
        return body


class KlingToken(httpx.Auth):
    """Signs each request with a short-lived HS256 token (PyJWT), made anew before it expires.

    Each token is a bearer credential for 30 minutes, so it joins the channel's secrets (`redactor`) the
    moment it is made; a token two generations old has expired and is dropped from them again, so the
    set does not grow with the process's age."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        redactor: Redactor,
        *,
        clock: Callable[[], float] = time.time,
        lifetime_s: int = TOKEN_SECONDS,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._redactor = redactor
        self._clock = clock
        self._lifetime_s = lifetime_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._previous: str | None = None

    def token(self) -> str:
        now = self._clock()
        if self._token is None or now >= self._expires_at - min(TOKEN_MARGIN_S, self._lifetime_s / 2):
            issued = int(now)
            payload = {
                "iss": self._access_key,
                "exp": issued + self._lifetime_s,
                "nbf": issued - TOKEN_NOT_BEFORE_S,
            }
            with warnings.catch_warnings():
                # Kling issues the secret key; PyJWT warns about HMAC keys under 32 bytes, which an
                # operator cannot change.
                warnings.filterwarnings("ignore", message=_SHORT_KEY_WARNING)
                token = jwt.encode(payload, self._secret_key, algorithm="HS256", headers={"typ": "JWT"})
            self._redactor.add(token)
            if self._previous is not None and self._previous != self._token:
                self._redactor.discard(self._previous)  # expired by now
            self._previous, self._token = self._token, token
            self._expires_at = issued + self._lifetime_s
        return self._token

    def renew(self) -> None:
        """Make a new token for the next request (Kling refused this one as expired or not yet valid)."""
        self._expires_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


class KlingProvider:
    traits = ChannelTraits(can_find_jobs=True)  # no cancel; a job is found by its external_task_id
    vendor = "kuaishou"  # `owned_by` in GET /v1/models
    Options = KlingOptions
    needs_base_url = True
    default_max_images = 1  # a first frame; the last frame comes apart (`last_frame`)
    max_images_limit = 1
    image_inputs = frozenset({"url", "data_uri"})
    default_watermark_free = "always"  # `url` is the clean video (a marked one comes only when asked)

    @classmethod
    def traits_for(cls, channel: ChannelSettings) -> ChannelTraits:
        options = KlingOptions.model_validate(channel.options)
        return ChannelTraits(can_find_jobs=options.lookup)

    @classmethod
    def check_channel(cls, channel: ChannelSettings) -> None:
        """At start: a `capabilities` correction Kling cannot carry is an error naming the channel, the
        model and the field (routing would let the request field through, to reach nothing)."""
        if (problem := uncarried_correction(channel, CANNOT_CARRY)) is not None:
            raise ChannelConfigError(problem)

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        known = kling_model(upstream_model)
        return known.capabilities() if known is not None else None

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """A model the table does not know: the channel's sizes Kling can name, with a negative prompt."""
        sizes = frozenset(
            s
            for s in channel.usable_sizes
            if describe_size(s)[0] in ("720p", "1080p") and describe_size(s)[1] in ASPECT_RATIOS
        )
        return {"sizes": sizes, "negative_prompt": True}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = KlingOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        access = self.options.access_key.get_secret_value()
        secret = self.options.secret_key.get_secret_value()
        channel.redactor.add(access)
        channel.redactor.add(secret)
        self.auth = KlingToken(access, secret, channel.redactor)
        self.client = deps.http.client_for(channel, auth=self.auth)
        self.root = api_root(channel)
        self.unknown_statuses = UnknownStatuses(channel, log)
        max_images = channel.max_images if channel.max_images is not None else self.default_max_images
        self.capabilities = model_capabilities(channel, type(self), max_images)

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "Kling's API has no remix of an earlier task.")
        route, body = await self.create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(f"{self.root}videos/{route}", json=body)
        body_in = json_or_none(response)
        refusal = kling_error(response, "create", may_create=True)
        if refusal is not None:
            self._after_refusal(refusal, response)
            if _external_id_taken(response):
                # Kling refuses an external_task_id it already holds: this submission's job exists
                # (a create whose answer was lost, sent again). Answer with that job, never a second.
                found = await self._by_external_id(route, request.idempotency_key)
                if found is not None:
                    return found
            raise refusal
        data = body_in.get("data") if isinstance(body_in, dict) else None
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
            # A 2xx we cannot read: the task may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown("create: Kling's answer had no task id")
        return UpstreamJob(task_id, poll_after=self.options.poll_seconds, memo={"route": route})

    async def create_body(self, request: SubmitRequest) -> tuple[Route, dict[str, Any]]:
        """The route and JSON body of the create for `request`; refuses, before anything is sent, what
        the model cannot make."""
        upstream = self.channel.upstream_model(request.model)
        known = kling_model(upstream)
        capabilities = self.capabilities.get(request.model)
        images = request.images
        if len(images) > 1:
            raise _unsupported(f"Kling takes one image (the first frame); got {len(images)}")
        route: Route = "image2video" if images or request.last_frame is not None else "text2video"
        if route == "text2video" and known is not None and not known.text:
            raise _unsupported(f"{upstream} animates an image: send the first frame in images")
        if request.last_frame is not None and not images:
            raise _unsupported("a last frame goes with a first frame in images")
        if len(request.prompt) > PROMPT_MAX_CHARS:
            raise ProviderError(
                "prompt_too_long", f"Kling takes prompts of at most {PROMPT_MAX_CHARS} characters."
            )
        resolution, ratio = request.resolution, request.aspect_ratio
        mode = known.mode_for(resolution) if known is not None else _generic_mode(resolution)
        if mode is None or ratio not in ASPECT_RATIOS:
            raise ProviderError(
                "unsupported_size",
                f"{upstream} makes {', '.join(known.resolutions) if known else '720p (std) or 1080p (pro)'} "
                f"at {', '.join(ASPECT_RATIOS)}; {request.size} is none of them.",
            )
        sound = _sound(request.generate_audio, upstream, known, capabilities, resolution)
        if known is not None and known.last_frame_silent_only and request.last_frame and sound == "on":
            raise _unsupported(f"{upstream} makes a last frame only without sound")
        body: dict[str, Any] = {
            **self.options.extra_body,
            "model_name": upstream,
            "duration": str(request.seconds),
            "external_task_id": request.idempotency_key,
        }
        if request.prompt:
            body["prompt"] = request.prompt
        elif route == "text2video":
            raise ProviderError("prompt_required", "Kling makes a video from text only with a prompt.")
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if mode:
            body["mode"] = mode
        if route == "text2video":
            body["aspect_ratio"] = ratio  # an image-led video keeps its image's shape
        else:
            body["image"] = await self._image(images[0], request, "images[0]")
            if request.last_frame is not None:
                body["image_tail"] = await self._image(request.last_frame, request, "last_frame")
        if sound is not None:
            body["sound"] = sound
        if self.options.cfg_scale is not None and (known is None or known.cfg_scale):
            body["cfg_scale"] = self.options.cfg_scale
        return route, body

    async def _image(self, image: InputImage, request: SubmitRequest, param: str) -> str:
        """The image as Kling takes it: the client's URL (url mode), else our stored copy scaled to fit
        the video, as bare base64 (Kling refuses a `data:` prefix). Sizes Kling refuses are refused here."""
        mode = self.image_mode
        if max(image.width, image.height) > IMAGE_URL_MAX_SIDE:
            mode = "data_uri"  # ours can be scaled down; a huge original may be over Kling's 10 MB
        sent_as_url = mode == "url" and image.source.lower().startswith(("http://", "https://"))
        scale = (
            1.0
            if sent_as_url
            else min(1.0, max(request.width, request.height) / max(image.width, image.height))
        )
        short = round(min(image.width, image.height) * scale)
        ratio = max(image.width, image.height) / max(1, min(image.width, image.height))
        if short < IMAGE_MIN_SIDE or ratio > IMAGE_MAX_RATIO:
            raise ProviderError(
                "invalid_image",
                f"{param}: Kling takes images whose sides are at least {IMAGE_MIN_SIDE} px, in an aspect "
                f"ratio from 1:{IMAGE_MAX_RATIO:g} to {IMAGE_MAX_RATIO:g}:1; this one is "
                f"{image.width}x{image.height}.",
            )
        reference = await image_reference(self.deps.blobs, image, mode, request.width, request.height)
        return _DATA_URI_HEAD.sub("", reference)

    def _after_refusal(self, error: ProviderError, response: httpx.Response) -> None:
        if _code_of(json_or_none(response)) in (1003, 1004):
            self.auth.renew()  # refused as not yet valid or expired: the next request gets a new one

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        data = await self._task(job, "poll")
        status = read_task(data, poll_after=self.options.poll_seconds)
        if status is None:
            return self.unknown_statuses.still_running(
                data.get("task_status"), poll_after=self.options.poll_seconds
            )
        return status

    async def _task(self, job: UpstreamJob, what: str) -> dict[str, Any]:
        """`data` of the job's query. A job whose route the memo lost is asked on both routes."""
        if not _TASK_ID.fullmatch(job.upstream_id):
            raise ProviderError("upstream_job_lost", f"{what}: {job.upstream_id!r} is no Kling task id")
        remembered = job.memo.get("route")
        routes: Sequence[Route] = (remembered,) if remembered in ROUTES else ROUTES
        for index, route in enumerate(routes):
            response = await self._query(route, job.upstream_id, what)
            if _not_found(response) and index + 1 < len(routes):
                continue
            if _not_found(response):
                raise ProviderError(
                    "upstream_job_lost", f"{what}: Kling no longer knows task {job.upstream_id}"
                )
            error = kling_error(response, what)
            if error is not None:
                self._after_refusal(error, response)
                raise error
            data = _data_of(response)
            if data is None:
                raise ProviderError(
                    "upstream_bad_response", f"{what}: Kling's answer is not readable", retryable=True
                )
            return data
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _query(self, route: Route, task_id: str, what: str) -> httpx.Response:
        with mapped_transport_errors(what):
            return await self.client.get(
                f"{self.root}videos/{route}/{task_id}", timeout=self.channel.poll_timeout_seconds
            )

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy Kling's CDN link now, through the SSRF-safe fetcher (someone else's host); a dead link
        makes the worker poll for a fresh one."""
        if not status.result_url:
            raise ProviderError("upstream_no_result", "Kling gave no video URL.")
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
        return None  # Kling documents no cancel for video tasks (traits say so)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """The job this submission made, asked for by its external_task_id: exactly one, or none."""
        route: Route = "image2video" if request.images or request.last_frame is not None else "text2video"
        found = await self._by_external_id(route, request.idempotency_key)
        return [found] if found is not None else []

    async def _by_external_id(self, route: Route, external_id: str) -> UpstreamJob | None:
        response = await self._query(route, external_id, "lookup")
        if _not_found(response):
            return None
        error = kling_error(response, "lookup")
        if error is not None:
            self._after_refusal(error, response)
            raise error
        data = _data_of(response)
        task_id = data.get("task_id") if data is not None else None
        if data is None or not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
            raise ProviderError(
                "upstream_bad_response", "lookup: Kling's answer is not readable", retryable=True
            )
        info = data.get("task_info")
        named = info.get("external_task_id") if isinstance(info, dict) else None
        if named not in (None, "", external_id):
            return None  # some other task (a path Kling read as a task id): not this submission's
        return UpstreamJob(task_id, poll_after=self.options.poll_seconds, memo={"route": route})

    async def probe(self) -> ProbeResult:
        """List one text-to-video task: proves reachability and the keys without making a job."""
        try:
            response = await self.client.get(
                f"{self.root}videos/text2video", params={"pageNum": "1", "pageSize": "1"}
            )
        except httpx.HTTPError as exc:
            return unreachable(exc)
        code = _code_of(json_or_none(response))
        if code is not None and 1000 <= code <= 1004:
            return ProbeResult(False, f"reachable, but the keys were refused (Kling code {code})")
        if response.is_success and code not in (None, 0):
            return ProbeResult(True, f"reachable and the keys are accepted; Kling answered code {code}")
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def api_root(channel: ChannelSettings) -> str:
    """The paths' head below `base_url`: `v1/` for the API host (what Kling documents), nothing when the
    operator wrote the root with its `/v1`, as other kinds' base URLs are written."""
    path = httpx.URL(channel.base_url or "").path.rstrip("/")
    return "" if path.endswith("/v1") else "v1/"


def _generic_mode(resolution: str | None) -> str | None:
    return {"720p": "std", "1080p": "pro"}.get(resolution or "")


def _sound(
    asked: bool | None,
    upstream: str,
    known: KlingModel | None,
    capabilities: ModelCapabilities | None,
    resolution: str | None,
) -> str | None:
    """`sound` as sent: always said to a model with sound (so the video is what was priced), never sent
    to a silent one (older models do not know the field). What the channel's copy of the model can do
    (the table, corrected by the operator's `capabilities`) decides, as routing did."""
    audio = capabilities.audio if capabilities is not None else AudioSupport.NONE
    if capabilities is None and known is not None and known.has_sound:
        audio = AudioSupport.OPTIONAL
    if audio is AudioSupport.NONE:
        if asked:
            raise _unsupported(f"{upstream} makes silent videos only")
        return None
    makes = capabilities.makes_audio(asked) if capabilities is not None else bool(asked)
    if makes and known is not None and known.sound_at and resolution not in known.sound_at:
        raise _unsupported(f"{upstream} makes sound only at {', '.join(sorted(known.sound_at))}")
    return "on" if makes else "off"


def _unsupported(why: str) -> ProviderError:
    return ProviderError("unsupported_combination", f"Not sent to Kling: {why}.")


def _code_of(body: Any) -> int | None:
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return None


def _data_of(response: httpx.Response) -> dict[str, Any] | None:
    body = json_or_none(response)
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def _not_found(response: httpx.Response) -> bool:
    """Kling does not know the task (or external task id) asked for: 404, or code 1203 (the resource
    asked for does not exist)."""
    return response.status_code == 404 or _code_of(json_or_none(response)) == 1203


def _external_id_taken(response: httpx.Response) -> bool:
    """A parameter refusal naming `external_task_id`: Kling holds a task under it already. (The code
    table does not give this refusal a code of its own; its message names the field.)"""
    body = json_or_none(response)
    message = body.get("message") if isinstance(body, dict) else None
    return (
        _code_of(body) in (1200, 1201) and isinstance(message, str) and "external_task_id" in message.lower()
    )


def kling_error(response: httpx.Response, what: str, *, may_create: bool = False) -> ProviderError | None:
    """None for an answer that carries `code: 0` (or no code) in a 2xx; otherwise the ProviderError
    Kling's code calls for. The code decides, whatever the HTTP status, with two exceptions that keep
    the paid-once rule: a 5xx (a proxy may answer so after Kling made the task) and, on a create, Kling's
    own 5000-5002 (its trouble, not proof of no task) are unknown outcomes."""
    status = response.status_code
    body = json_or_none(response)
    code = _code_of(body)
    if 200 <= status < 300 and code in (None, 0):
        return None
    if code is None or (not 200 <= status < 300 and status not in PROVEN_REFUSALS):
        try:
            raise_for_status(response, what, may_create=may_create)
        except ProviderError as exc:
            return exc
        return UpstreamOutcomeUnknown(f"{what}: an unreadable answer (HTTP {status})")  # pragma: no cover
    message = upstream_text(body.get("message") if isinstance(body, dict) else None, f"Kling code {code}")
    retry_after = parse_retry_after(response.headers)
    if 5000 <= code < 6000:
        if may_create:
            return UpstreamOutcomeUnknown(f"{what}: Kling answered code {code} ({message})")
        return ProviderError(
            "upstream_unavailable", f"{what}: {message}", retryable=True, retry_after=retry_after
        )
    if 1000 <= code <= 1004 or code in (1103, 1304):
        why = {1103: "the account may not use this model or interface", 1304: "Kling's IP allow-list"}
        return ProviderError(
            "upstream_auth_failed",
            f"{what}: Kling refused our credentials ({why.get(code, 'authentication failed')}; code {code}: "
            f"{message})",
            retryable=True,
        )
    if code in (1100, 1101):
        return ProviderError(
            "upstream_account_in_arrears", f"{what}: Kling's account cannot pay ({message})", retryable=True
        )
    if code == 1102:
        return ProviderError(
            "upstream_quota_exhausted",
            f"{what}: Kling's resource pack is used up ({message})",
            retryable=True,
        )
    if code in (1302, 1303):
        return ProviderError(
            "upstream_rate_limited",
            f"{what}: rate limited ({message})",
            retryable=True,
            retry_after=retry_after,
        )
    if code in (1300, 1301) or (code >= 1300 and is_moderation(None, message)):
        return ProviderError("content_policy", f"Kling's content policy refused it: {message}")
    if code == 1203:
        if may_create:
            return ProviderError(
                "upstream_auth_failed",
                f"{what}: Kling has no such model for this account ({message})",
                retryable=True,
            )
        return ProviderError("upstream_job_lost", f"{what}: Kling does not know it ({message})")
    name = {1200: "invalid_parameter", 1201: "invalid_parameter", 1202: "invalid_request"}.get(code)
    return ProviderError(name or f"kling_{code}", f"{what}: Kling refused it: {message}")


def read_task(data: dict[str, Any], *, poll_after: float | None = None) -> UpstreamStatus | None:
    """A Kling task (`data` of a query) as an UpstreamStatus; None for a status word nobody knows."""
    word = str(data.get("task_status") or "").strip().lower()
    if word == "submitted":
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "processing":
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    if word == "succeed":
        result = data.get("task_result")
        videos = result.get("videos") if isinstance(result, dict) else None
        url = first_url(videos)
        if url is None:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="Kling reported success but gave no video URL.",
            )
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=False)
    if word == "failed":
        return task_failure(data)
    state, cancelled = upstream_state(data.get("task_status"))  # a synonym some proxy in front may use
    if state is None:
        return None
    if cancelled:
        return UpstreamStatus(
            UpstreamState.FAILED, error_code="upstream_cancelled", error_message="Kling cancelled the task."
        )
    if state is UpstreamState.SUCCEEDED:
        return read_task({**data, "task_status": "succeed"}, poll_after=poll_after)
    if state is UpstreamState.FAILED:
        return task_failure(data)
    return UpstreamStatus(state, poll_after=poll_after)


def task_failure(data: dict[str, Any]) -> UpstreamStatus:
    message = upstream_text(data.get("task_status_msg"), "Kling reported a failure without a reason")
    if _MODERATION_WORDS.search(message) or is_moderation(None, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code="upstream_failed",
        error_message=message,
        retryable=bool(_TRANSIENT_WORDS.search(message)),
    )
