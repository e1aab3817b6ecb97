"""The `veo` channel kind: Google's Veo models through the Gemini API (`generativelanguage.googleapis.com`).

The channel's `base_url` is the API root with its version, `https://generativelanguage.googleapis.com/v1beta`;
the key travels in the `x-goog-api-key` header. The wire follows the Gemini API guide "Generate videos with
Veo" and what the google-genai SDK sends in Gemini Developer API mode (`_GenerateVideosConfig_to_mldev`):

- create: `POST models/{model}:predictLongRunning` with `{instances: [{prompt, image?, lastFrame?,
  referenceImages?}], parameters: {aspectRatio, durationSeconds, resolution?, negativePrompt?, seed?,
  personGeneration?, enhancePrompt?}}`, images inline as `{bytesBase64Encoded, mimeType}`; the answer is a
  long-running operation `{name: "models/{model}/operations/{id}"}`, which is the job's id. The API has no
  `generateAudio` (the SDK refuses it before sending): Veo 3.x always makes sound, Veo 2 never does.
- poll: `GET {name}`: no `done` while running (the API reports no progress), then either `error` (a
  google.rpc.Status) or `response.generateVideoResponse` with `generatedSamples[].video.uri` and, when the
  safety filters blocked the video, `raiMediaFilteredCount`/`raiMediaFilteredReasons` and no sample: that
  is a failure (`content_policy`, Google does not charge for it), never a success without a video.
- result: `video.uri` (`.../v1beta/files/{id}:download?alt=media`) needs the key and answers with a
  redirect to a signed storage link. The key is sent only to the channel's own origin, and the redirect is
  followed without it through the SSRF-safe fetcher (httpx would carry a custom header such as
  `x-goog-api-key` across a redirect to another host; it strips only `Authorization`). A result link on any
  other origin is fetched the same way, without the key.
- errors: Google's envelope `{error: {code, message, status, details}}`; a key the API does not know is
  HTTP 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`, read here as refused credentials.
- no cancel and no way to list video operations by what they were made with: the channel can neither stop
  a job nor be asked, after an unknown outcome, whether a create made one (`ChannelTraits()`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import AudioSupport, ModelCapabilities
from vidgate.domain.routing import ChannelTraits
from vidgate.providers.base import (
    FetchedResult,
    InputImage,
    ProbeResult,
    ProviderError,
    ResultExpired,
    StepContext,
    SubmitRequest,
    UpstreamJob,
    UpstreamOutcomeUnknown,
    UpstreamState,
    UpstreamStatus,
)
from vidgate.providers.input_images import image_reference
from vidgate.providers.registry import ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    clean_error_code,
    download_video,
    final_refusal,
    is_moderation,
    json_or_none,
    mapped_transport_errors,
    parse_retry_after,
    probe_verdict,
    raise_for_status,
    unreachable,
    upstream_text,
)
from vidgate.providers.veo_models import Feature, VeoModel, model_named

__all__ = ["VeoOptions", "VeoProvider", "read_operation"]

Scalar = str | int | float | bool
KEY_HEADER: Final = "x-goog-api-key"
# ErrorInfo reasons with which Google refuses the key itself (HTTP 400 or 403).
_KEY_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
# google.rpc.Code numbers (an operation's `error.code`), and HTTP statuses some proxies put there instead.
_RPC_CODES: Final = {
    1: "cancelled",
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    10: "aborted",
    13: "internal",
    14: "unavailable",
    16: "unauthenticated",
    400: "invalid_argument",
    403: "permission_denied",
    404: "not_found",
    429: "resource_exhausted",
    500: "internal",
    503: "unavailable",
    504: "deadline_exceeded",
}
# Operation failures after which a new submission may well succeed (Google's trouble, not the request's).
TRANSIENT_FAILURES: Final = frozenset({"unknown", "deadline_exceeded", "aborted", "internal", "unavailable"})
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# An operation name is a relative resource path: `models/veo-3.1-generate-preview/operations/abc123`.
_OPERATION_NAME = re.compile(r"[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+){1,7}")
_DATA_URI_HEAD = "data:image/png;base64,"


class VeoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_generation: Literal["auto", "allow_all", "allow_adult", "dont_allow", "omit"] = Field(
        default="auto",
        description="personGeneration: auto sends what the model takes (Veo 3.x: allow_all for text, "
        "allow_adult with images); EU, UK, CH and MENA keys need allow_adult; omit sends none.",
    )
    poll_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Between polls (a video takes 11 s to 6 minutes)."
    )
    single_image: Literal["first_frame", "reference"] = Field(
        default="first_frame",
        description="What one image in images[] is on models that take both (Veo 3.1); two or three "
        "images are always reference images.",
    )
    extra_parameters: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Fields added to every create's `parameters` (mapped fields win).",
    )


class VeoProvider:
    traits = ChannelTraits()  # no cancel, no job lookup (see the module docstring)
    Options = VeoOptions
    needs_base_url = True
    default_max_images = 3
    max_images_limit = 3  # Veo 3.1 takes up to three reference images
    image_inputs = frozenset({"data_uri"})  # images go inline, as base64 (the Gemini API fetches no URL)
    default_watermark_free = "always"  # no visible mark (SynthID is invisible, see docs/channels.md, `veo`)

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        """The table's entry for a Veo model (`veo_models`); None for a model it does not know."""
        known = model_named(upstream_model)
        return known.capabilities() if known is not None else None

    @classmethod
    def generic_capabilities(cls, channel: ChannelSettings) -> dict[str, Any]:
        """A model the table does not know: every Veo since 3.0 makes sound, and all take negativePrompt."""
        return {"negative_prompt": True, "audio": AudioSupport.ALWAYS, "audio_default": True}

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = VeoOptions.model_validate(channel.options)
        self.deps = deps
        self.client = deps.http.client_for(channel, key_header=KEY_HEADER)
        base = httpx.URL(channel.base_url or "")
        self.base = base
        self.origin = (base.scheme, base.host, base.port)

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "The Gemini API cannot remix a Veo video.")
        model = _api_model(self.channel.upstream_model(request.model))
        body = await self.create_body(request, model)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(f"models/{model}:predictLongRunning", json=body)
        raise_for_google(response, "create", may_create=True)
        answer = json_or_none(response)
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str) or not _OPERATION_NAME.fullmatch(name) or ".." in name.split("/"):
            # A 2xx we cannot read: the operation may well exist. Never treat this as "not made".
            raise UpstreamOutcomeUnknown("create: the Gemini API's answer had no operation name")
        return UpstreamJob(name, poll_after=self.options.poll_seconds)

    async def create_body(self, request: SubmitRequest, model: str) -> dict[str, Any]:
        """The `predictLongRunning` body for `request` on `model` (its API name); refuses, before anything
        is sent, what the model cannot make (`unsupported_combination`)."""
        known = model_named(model)
        first, last, references = self._roles(request, known)
        ratio = request.aspect_ratio
        if ratio is None:
            raise _unsupported(f"Veo makes 16:9 or 9:16 videos; {request.size} is neither")
        features: set[Feature] = set()
        if request.resolution == "1080p":
            features.add("1080p")
        if last is not None:
            features.add("last_frame")
        if references:
            features.add("reference_images")
        if known is not None and (why := known.conflict(features, request.seconds, ratio)):
            raise _unsupported(why)
        _check_audio(request.generate_audio, known)
        instance: dict[str, Any] = {"prompt": request.prompt}
        if first is not None:
            instance["image"] = await self._inline(first, request)
        if last is not None:
            instance["lastFrame"] = await self._inline(last, request)
        if references:
            instance["referenceImages"] = [
                {"image": await self._inline(image, request), "referenceType": "asset"}
                for image in references
            ]
        parameters: dict[str, Any] = {
            **self.options.extra_parameters,
            "aspectRatio": ratio,
            "durationSeconds": request.seconds,
        }
        if request.resolution is not None and (known is None or known.sends_resolution):
            parameters["resolution"] = request.resolution
        if request.negative_prompt is not None:
            parameters["negativePrompt"] = request.negative_prompt
        if request.seed is not None:
            parameters["seed"] = request.seed
        if request.enhance_prompt is not None:
            parameters["enhancePrompt"] = request.enhance_prompt
        people = self._person_generation(known, with_images=bool(first or last or references))
        if people is not None:
            parameters["personGeneration"] = people
        return {"instances": [instance], "parameters": parameters}

    def _roles(
        self, request: SubmitRequest, known: VeoModel | None
    ) -> tuple[InputImage | None, InputImage | None, tuple[InputImage, ...]]:
        """(first frame, last frame, reference images) from the request's images."""
        images = request.images
        if request.last_frame is not None:
            if len(images) != 1:
                raise _unsupported(
                    "a last frame goes with exactly one first frame in images (Veo interpolates between "
                    f"the two; reference images cannot be combined with frames); got {len(images)}"
                )
            return images[0], request.last_frame, ()
        if not images:
            return None, None, ()
        takes_references = known is None or known.reference_images > 0
        if len(images) == 1 and (self.options.single_image == "first_frame" or not takes_references):
            return images[0], None, ()
        return None, None, images

    def _person_generation(self, known: VeoModel | None, *, with_images: bool) -> str | None:
        choice = self.options.person_generation
        if choice == "omit":
            return None
        if choice != "auto":
            return choice
        if known is None:
            return "allow_adult" if with_images else "allow_all"
        allowed = known.people_images if with_images else known.people_text
        return allowed[0]

    async def _inline(self, image: InputImage, request: SubmitRequest) -> dict[str, str]:
        """The stored image as the API takes it: base64 PNG, scaled to fit the video (never cropped)."""
        uri = await image_reference(self.deps.blobs, image, "data_uri", request.width, request.height)
        return {"bytesBase64Encoded": uri.removeprefix(_DATA_URI_HEAD), "mimeType": "image/png"}

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        with mapped_transport_errors("poll"):
            response = await self.client.get(job.upstream_id, timeout=self.channel.poll_timeout_seconds)
        if response.status_code == 404 and not _key_refused(response):
            raise ProviderError(
                "upstream_job_lost",
                f"poll: the Gemini API no longer knows {job.upstream_id} (operations are kept 2 days)",
            )
        raise_for_google(response, "poll")
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise ProviderError("upstream_bad_response", "poll: the answer is not JSON", retryable=True)
        return read_operation(body, poll_after=self.options.poll_seconds)

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        dest = work_dir / "video.mp4"
        if not status.result_url:
            await self._inline_video(job, dest)
            return FetchedResult(dest)
        url = self._absolute(status.result_url)
        if self._own_origin(url):
            redirect = await self._keyed_download(url, dest)
            if redirect is None:
                return FetchedResult(dest)
            url = redirect
        await self._unkeyed_download(url, dest)
        return FetchedResult(dest)

    def _absolute(self, uri: str) -> str:
        """A result URI as a full URL (a bare `files/...` is relative to the API root)."""
        if uri.lower().startswith(("http://", "https://")):
            return uri
        return str(self.base.join(self.base.path.rstrip("/") + "/" + uri.lstrip("/")))

    def _own_origin(self, url: str) -> bool:
        """Only the channel's own origin (the API itself) is ever sent the key."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return False
        return (parsed.scheme, parsed.host, parsed.port) == self.origin

    async def _keyed_download(self, url: str, dest: Path) -> str | None:
        """GET the file from the API with the key, not following redirects: the redirect's target (to be
        fetched without the key), or None when the API sent the video itself (then it is in `dest`)."""
        with mapped_transport_errors("download"):
            request = self.client.build_request("GET", url, headers={"Accept": "video/mp4, */*"})
            response = await self.client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise ProviderError(
                            "result_download_failed",
                            "download: the Gemini API redirected without a Location",
                            retryable=True,
                        )
                    return str(response.url.join(location))
                if not response.is_success:
                    await response.aread()
            finally:
                await response.aclose()
        if response.is_success:
            # Not what the API does today (it redirects to storage), but a proxy in front may serve the
            # bytes itself: stream them from the same trusted origin.
            await download_video(
                self.client,
                url,
                dest,
                max_bytes=self.deps.settings.max_video_bytes,
                timeout=self.channel.download_timeout_seconds,
                what="download",
            )
            return None
        if response.status_code in (403, 404, 410) and not _key_refused(response):
            raise ResultExpired(f"download: the Gemini API answered HTTP {response.status_code}")
        raise_for_google(response, "download")
        raise ProviderError(
            "result_download_failed", f"download: HTTP {response.status_code}", retryable=True
        )

    async def _unkeyed_download(self, url: str, dest: Path) -> None:
        """A link Google chose (its storage): through the SSRF-safe fetcher, never with our key."""
        settings = self.deps.settings
        await copy_result_link(
            self.deps.fetcher,
            url,
            dest,
            max_bytes=settings.max_video_bytes,
            timeout=self.channel.download_timeout_seconds,
        )

    async def _inline_video(self, job: UpstreamJob, dest: Path) -> None:
        """A sample that carries the video itself (`video.encodedVideo`, base64) instead of a URI."""
        with mapped_transport_errors("download"):
            response = await self.client.get(job.upstream_id, timeout=self.channel.download_timeout_seconds)
        raise_for_google(response, "download")
        body = json_or_none(response)
        encoded = next(
            (v.get("encodedVideo") for v in _sample_videos(body) if isinstance(v.get("encodedVideo"), str)),
            None,
        )
        if encoded is None:
            raise ProviderError("upstream_no_result", "The operation's video has neither a URI nor bytes.")
        limit = self.deps.settings.max_video_bytes
        if len(encoded) * 3 // 4 > limit:
            raise ProviderError("upstream_video_too_large", f"the video is larger than {limit} bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderError(
                "invalid_upstream_video", "the operation's video bytes are not base64", retryable=True
            ) from exc
        await anyio.Path(dest).write_bytes(data)

    # the rest ---------------------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        return None  # the Gemini API documents no cancel for video operations (traits say so)

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # operations cannot be listed by what they were made with

    async def probe(self) -> ProbeResult:
        """`models.get` of the channel's first model: unbilled, and it checks the key."""
        models = self.channel.public_models
        try:
            path = f"models/{_api_model(self.channel.upstream_model(models[0]))}" if models else "models"
            response = await self.client.get(path, params=None if models else {"pageSize": "1"})
        except httpx.HTTPError as exc:
            return unreachable(exc)
        except ProviderError as exc:
            return ProbeResult(False, exc.message)
        if _key_refused(response):
            return ProbeResult(False, f"reachable, but the key was refused (HTTP {response.status_code})")
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


# Reading operations -------------------------------------------------------------------------------


def read_operation(operation: Mapping[str, Any], *, poll_after: float | None = None) -> UpstreamStatus:
    """A long-running operation of `predictLongRunning` as an UpstreamStatus."""
    error = operation.get("error")
    if isinstance(error, dict) and error:
        return _operation_failure(error)
    response = operation.get("response")
    if operation.get("done") is not True and not isinstance(response, dict):
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    result = response.get("generateVideoResponse") if isinstance(response, dict) else None
    result = result if isinstance(result, dict) else {}
    for video in _videos_of(result):
        uri = video.get("uri")
        if isinstance(uri, str) and uri:
            return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url=uri)
        if isinstance(video.get("encodedVideo"), str):
            return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100)  # fetch reads the bytes
    filtered = result.get("raiMediaFilteredCount")
    reasons = [str(r) for r in result.get("raiMediaFilteredReasons") or [] if r]
    if (isinstance(filtered, int) and filtered > 0) or reasons:
        why = "; ".join(reasons) or "no reason given"
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="content_policy",
            error_message=upstream_text(f"Google's safety filters blocked the video: {why}", why),
        )
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code="upstream_no_result",
        error_message="The Gemini API finished the operation without a video.",
    )


def _videos_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    samples = result.get("generatedSamples")
    if not isinstance(samples, list):
        return []
    return [s["video"] for s in samples if isinstance(s, dict) and isinstance(s.get("video"), dict)]


def _sample_videos(body: Any) -> list[dict[str, Any]]:
    response = body.get("response") if isinstance(body, dict) else None
    result = response.get("generateVideoResponse") if isinstance(response, dict) else None
    return _videos_of(result) if isinstance(result, dict) else []


def _operation_failure(error: Mapping[str, Any]) -> UpstreamStatus:
    message = upstream_text(error.get("message"), "the operation failed without a message")
    raw = error.get("code")
    code = clean_error_code(error.get("status"))
    if code is None and isinstance(raw, int) and not isinstance(raw, bool):
        code = _RPC_CODES.get(raw)
    code = code or clean_error_code(raw) or "upstream_failed"
    if is_moderation(code, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    if code == "resource_exhausted":
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_rate_limited",
            error_message=f"The Gemini API's quota was exhausted: {message}",
            retryable=True,
        )
    if code == "cancelled":
        return UpstreamStatus(UpstreamState.FAILED, error_code="upstream_cancelled", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED, error_code=code, error_message=message, retryable=code in TRANSIENT_FAILURES
    )


# Errors -------------------------------------------------------------------------------------------


def _google_error(response: httpx.Response) -> dict[str, Any] | None:
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _key_refused(response: httpx.Response) -> bool:
    """Google's answers that refuse the key itself: 401, `UNAUTHENTICATED`, or an ErrorInfo reason such as
    `API_KEY_INVALID` (which comes with HTTP 400, not 401)."""
    if response.status_code == 401:
        return True
    if response.is_success:
        return False
    error = _google_error(response)
    if error is None:
        return False
    details = error.get("details")
    details = details if isinstance(details, list) else []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    return bool(reasons & _KEY_REASONS) or error.get("status") == "UNAUTHENTICATED"


def raise_for_google(response: httpx.Response, what: str, *, may_create: bool = False) -> None:
    """`raise_for_status`, reading Google's envelope first: a refused key is `upstream_auth_failed` (the
    worker rules the channel out for the task), and a 4xx refusal keeps Google's status word as its code
    (`invalid_argument`, `failed_precondition`, ...)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if _key_refused(response):
        raise ProviderError(
            "upstream_auth_failed",
            f"{what}: the Gemini API refused our key (HTTP {status})",
            retryable=True,
        )
    error = _google_error(response)
    if error is not None and status in (400, 404, 409, 422):
        message = upstream_text(error.get("message"), f"HTTP {status}")
        raise final_refusal(clean_error_code(error.get("status")), message, what)
    if error is not None and status == 429:
        message = upstream_text(error.get("message"), "HTTP 429")
        raise ProviderError(
            "upstream_rate_limited",
            f"{what}: rate limited ({message})",
            retryable=True,
            retry_after=parse_retry_after(response.headers) or _retry_delay(error),
        )
    raise_for_status(response, what, may_create=may_create)


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "17s"`), capped at an hour."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return min(max(float(delay[:-1]), 0.0), 3600.0)
            except ValueError:
                return None
    return None


def _unsupported(why: str) -> ProviderError:
    return ProviderError("unsupported_combination", f"Not sent to the Gemini API: {why}.")


def _check_audio(asked: bool | None, known: VeoModel | None) -> None:
    """The Gemini API has no `generateAudio`: a model's sound is what it is (routing knows it for the
    table's models; this guards models described by the channel's settings)."""
    silent = known is not None and known.audio is AudioSupport.NONE
    if asked is False and not silent:
        raise _unsupported("the Gemini API cannot turn a Veo 3 model's sound off (it has no generateAudio)")
    if asked is True and silent:
        raise _unsupported(f"{known.name if known else 'this model'} makes silent videos only")


def _api_model(name: str) -> str:
    model = name.removeprefix("models/")
    if not _MODEL_NAME.fullmatch(model):
        raise ProviderError("invalid_model", f"{model!r} is not a model name the Gemini API takes")
    return model
