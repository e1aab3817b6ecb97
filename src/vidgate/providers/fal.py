"""The `fal` channel kind: any video model on fal.ai, through fal's queue API.

The channel's `base_url` is the queue's root, `https://queue.fal.run`; its `api_key` goes as
`Authorization: Key <key>` (fal's own scheme, not Bearer). The channel's models are fal model ids
(`fal-ai/kling-video/v2.5-turbo/pro/image-to-video`: an owner, an app and an endpoint path), each with an
input mapping in `options.models` (`providers.input_mapping`): fal's models each name their inputs their
own way. Shapes follow fal's "Queue API" reference and guide (fal.ai/docs: "Asynchronous inference",
"Inference API", "Cancel a request", "Request errors") and the `fal-client` Python SDK
(`fal_client/client.py`: `submit`, `AsyncRequestHandle.status/get/cancel`, `AppId.from_endpoint_id`):

- create: `POST {base}/{model id}` with the model's input object as the body; the answer is `{request_id,
  status: IN_QUEUE, status_url, response_url, cancel_url, queue_position}`. The URLs are used as fal
  returns them (they name only the owner and the app, `.../fal-ai/kling-video/requests/{id}`, not the
  endpoint path), when they are on the channel's own origin: the key is never sent anywhere else (else
  they are built as the SDK builds them). fal takes no idempotency key and has no list of queued
  requests: a create is never replayed, and its job cannot be looked up after a lost answer;
- poll: `GET status_url` answers 202 while `IN_QUEUE` or `IN_PROGRESS` and 200 when `COMPLETED`; a
  completed request's outcome is read apart, `GET response_url`: the model's output (the video's URL at
  the mapping's `result`, `video.url` by default: a link on fal's CDN, copied at once through the
  SSRF-safe fetcher) or the request's error, which fal keeps in the result: a model's validation or
  content-policy refusal (HTTP 422 `{"detail": [{loc, msg, type}]}`, `content_policy_violation`) or a
  request error (`{"detail", "error_type"}`, the type also in `X-Fal-Error-Type`: timeouts and runner
  failures, after fal's own retries). A status that carries `error`/`error_type` is read the same way;
- cancel: `PUT cancel_url` takes a queued request out of the queue (it never runs) and signals a running
  one's runner (the model decides whether it stops); a completed one answers 400 `ALREADY_COMPLETED`.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx
import structlog
from pydantic import BaseModel, Field

from vidgate.channel_config import ChannelSettings
from vidgate.domain.capabilities import ModelCapabilities
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
from vidgate.providers.capabilities import model_capabilities
from vidgate.providers.input_images import image_reference
from vidgate.providers.input_mapping import InputMapping, build_input, check_mappings, dig_path
from vidgate.providers.job_polls import UnknownStatuses, poll_body
from vidgate.providers.registry import ChannelConfigError, ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    clean_error_code,
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

__all__ = ["FalOptions", "FalProvider", "app_root", "read_result_error", "read_status"]

log = structlog.get_logger("vidgate.providers.fal")

DEFAULT_RESULT: Final = "video.url"
# fal's namespaced apps (`workflows/owner/app/...`, `comfy/owner/app/...`), as the SDK parses model ids.
_NAMESPACES: Final = ("workflows", "comfy")
_MODEL_ID: Final = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")
# fal's request error types after which a new submission may well succeed (its own trouble).
_TRANSIENT: Final = frozenset(
    {"request_timeout", "startup_timeout", "runner_scheduling_failure", "runner_connection_timeout",
     "runner_disconnected", "runner_connection_refused", "runner_connection_error", "runner_server_error",
     "internal_error", "runner_incomplete_response"}
)  # fmt: skip
_PROBE_REQUEST: Final = "00000000-0000-0000-0000-000000000000"


class FalOptions(BaseModel, extra="forbid"):
    models: dict[str, InputMapping] = Field(
        default_factory=dict,
        description="fal model id (after model_map) -> which of its inputs take the request's fields.",
    )
    poll_seconds: float | None = Field(
        default=None, gt=0, description="Seconds between status queries; default: the worker's."
    )


class FalKeyAuth(httpx.Auth):
    """`Authorization: Key <key>`, fal's scheme, on every request of the channel's client."""

    def __init__(self, key: str) -> None:
        self._value = f"Key {key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


def app_root(model_id: str) -> str:
    """The part of a model id that the queue's request URLs name: `owner/app` (with a namespace in
    front for `workflows/...` and `comfy/...`), never the endpoint path."""
    parts = model_id.strip("/").split("/")
    take = 3 if parts[0] in _NAMESPACES else 2
    return "/".join(parts[:take])


class FalProvider:
    traits = ChannelTraits(can_cancel=True)  # no lookup: fal lists requests only once they have ended
    vendor = "fal"
    Options = FalOptions
    needs_base_url = True
    default_max_images = 1
    max_images_limit = 16
    image_inputs = frozenset({"url", "data_uri"})  # fal takes data: URIs wherever it takes a file URL
    default_watermark_free = "always"

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        mapping = FalOptions.model_validate(channel.options).models.get(upstream_model)
        return None if mapping is None else mapping.capabilities()

    @classmethod
    def check_channel(cls, channel: ChannelSettings) -> None:
        options = FalOptions.model_validate(channel.options)
        for model in options.models:
            namespaced_short = model.split("/")[0] in _NAMESPACES and model.count("/") < 2
            if not _MODEL_ID.fullmatch(model) or namespaced_short:
                raise ChannelConfigError(
                    f"channel {channel.name!r} (kind fal): options.models: {model!r} is not a fal model id "
                    "(owner/app[/path], as in fal-ai/veo3.1/image-to-video)"
                )
        max_images = channel.max_images if channel.max_images is not None else cls.default_max_images
        check_mappings(channel, options.models, model_capabilities(channel, cls, max_images))

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = FalOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        auth = FalKeyAuth(channel.api_key.get_secret_value()) if channel.api_key is not None else None
        self.client = deps.http.client_for(channel, auth=auth)
        assert channel.base_url is not None  # needs_base_url
        self.base = channel.base_url
        self.unknown_statuses = UnknownStatuses(channel, log)
        max_images = channel.max_images if channel.max_images is not None else self.default_max_images
        self.capabilities = model_capabilities(channel, type(self), max_images)

    def mapping_of(self, public_model: str) -> tuple[str, InputMapping]:
        model = self.channel.upstream_model(public_model)
        mapping = self.options.models.get(model)
        if mapping is None:  # checked at start; a model added since would land here
            raise ProviderError("no_input_mapping", f"The channel has no input mapping for model {model}.")
        return model, mapping

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "fal's queue has no remix of an earlier request.")
        model, body = await self.create_body(request)
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(quote(model, safe="/"), json=body)
        if not 200 <= response.status_code < 300:
            raise create_refusal(response)
        answer = json_or_none(response)
        request_id = answer.get("request_id") if isinstance(answer, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise UpstreamOutcomeUnknown("create: the channel's answer had no request_id")
        urls = self.request_urls(model, request_id, answer)
        return UpstreamJob(request_id, poll_after=self.options.poll_seconds, memo={"model": model, **urls})

    async def create_body(self, request: SubmitRequest) -> tuple[str, dict[str, Any]]:
        """(fal model id, the model's input object) for `request`."""
        model, mapping = self.mapping_of(request.model)
        images = [
            await image_reference(self.deps.blobs, image, self.image_mode, request.width, request.height)
            for image in request.images
        ]
        last = request.last_frame
        last_frame = (
            None
            if last is None
            else await image_reference(self.deps.blobs, last, self.image_mode, request.width, request.height)
        )
        capabilities = self.capabilities.get(request.model) or mapping.capabilities()
        body = build_input(
            mapping,
            request,
            images=images,
            last_frame=last_frame,
            seed=request.seed,
            audio=capabilities.makes_audio(request.generate_audio),
        )
        return model, body

    def request_urls(self, model: str, request_id: str, answer: Any) -> dict[str, str]:
        """The request's status, response and cancel URLs: fal's own where they are on the channel's
        origin and below its base, else built as the SDK builds them."""
        root = f"{self.base}/{app_root(model)}/requests/{quote(request_id, safe='')}"
        built = {"response_url": root, "status_url": f"{root}/status", "cancel_url": f"{root}/cancel"}
        given = answer if isinstance(answer, dict) else {}
        return {
            name: value if isinstance(value := given.get(name), str) and self.on_channel(value) else url
            for name, url in built.items()
        }

    def on_channel(self, url: str) -> bool:
        """Whether `url` is on the channel's origin, below its base path (where the key may go)."""
        mine, theirs = urlsplit(self.base), urlsplit(url)
        return (
            (theirs.scheme, theirs.netloc.lower()) == (mine.scheme, mine.netloc.lower())
            and theirs.path.startswith(mine.path.rstrip("/") + "/")
            and not theirs.query
            and not theirs.fragment
        )

    def urls_of(self, job: UpstreamJob) -> dict[str, str]:
        memo = job.memo
        given = {
            k: memo[k] for k in ("status_url", "response_url", "cancel_url") if isinstance(memo.get(k), str)
        }
        if len(given) == 3 and all(self.on_channel(u) for u in given.values()):
            return given
        model = memo.get("model")
        if not isinstance(model, str):
            raise ProviderError(
                "upstream_job_lost", "The job's model is not known, so its request cannot be queried."
            )
        return self.request_urls(model, job.upstream_id, None)

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        urls = self.urls_of(job)
        with mapped_transport_errors("poll"):
            response = await self.client.get(urls["status_url"], timeout=self.channel.poll_timeout_seconds)
        body = poll_body(response, lost="fal no longer knows the request")
        status = read_status(body, poll_after=self.options.poll_seconds)
        if status is None:
            return self.unknown_statuses.still_running(
                body.get("status"), poll_after=self.options.poll_seconds
            )
        if status.state is not UpstreamState.SUCCEEDED:
            return status
        return await self.completed(job, urls["response_url"])

    async def completed(self, job: UpstreamJob, response_url: str) -> UpstreamStatus:
        """A COMPLETED request's outcome, from its result: the model's output or its error."""
        with mapped_transport_errors("poll"):
            response = await self.client.get(response_url, timeout=self.channel.poll_timeout_seconds)
        if not 200 <= response.status_code < 300:
            failure = read_result_error(response)
            if failure is None:  # no answer of fal's: a proxy's page, a 5xx on the way; ask again
                raise_for_status(response, "poll")
                raise ProviderError(
                    "upstream_bad_response", "poll: the result could not be read", retryable=True
                )
            return failure
        model = job.memo.get("model")
        mapping = self.options.models.get(model) if isinstance(model, str) else None
        path = mapping.result if mapping is not None and mapping.result is not None else DEFAULT_RESULT
        url = first_url(dig_path(json_or_none(response), path))
        if url is None:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_no_result",
                error_message="fal's result has no video URL where the mapping says (result).",
            )
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=False)

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy the video from fal's CDN now (someone else's address: the SSRF-safe fetcher, no key); a
        dead link makes the worker poll again."""
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
        """`PUT cancel_url`: a queued request leaves the queue; a running one's runner is told to stop. A
        completed (400 `ALREADY_COMPLETED`) or unknown (404) request is nothing to stop."""
        urls = self.urls_of(job)
        with mapped_transport_errors("cancel"):
            response = await self.client.put(urls["cancel_url"])
        if 200 <= response.status_code < 300 or response.status_code in (400, 404):
            return
        raise_for_status(response, "cancel")

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        return ()  # the queue has no list of requests still queued or running (traits say so)

    async def probe(self) -> ProbeResult:
        """The status of a request that does not exist, under the first model's app: fal answers 404 to
        a key it accepts (401/403 otherwise), and nothing is made."""
        model = self.channel.upstream_model(self.channel.public_models[0])
        try:
            response = await self.client.get(f"{app_root(model)}/requests/{_PROBE_REQUEST}/status")
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response)

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def read_status(body: dict[str, Any], *, poll_after: float | None) -> UpstreamStatus | None:
    """A queue status as an UpstreamStatus (SUCCEEDED only says the result may be read); None for a word
    nobody knows (keep polling)."""
    word = str(body.get("status") or "").strip().upper()
    if word == "IN_QUEUE":
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "IN_PROGRESS":
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
    if word == "COMPLETED":
        if body.get("error") or body.get("error_type"):
            return _request_failure(body.get("error_type"), body.get("error"))
        return UpstreamStatus(UpstreamState.SUCCEEDED)
    state, cancelled = upstream_state(body.get("status"))  # FAILED, CANCELED: older or proxied shapes
    if state is None:
        return None
    if cancelled:
        return UpstreamStatus(
            UpstreamState.FAILED, error_code="upstream_cancelled", error_message="fal cancelled the request."
        )
    if state is UpstreamState.FAILED:
        return _request_failure(body.get("error_type"), body.get("error"))
    return UpstreamStatus(state, poll_after=poll_after)


def read_result_error(response: httpx.Response) -> UpstreamStatus | None:
    """The FAILED status a completed request's result answers, or None when the answer is not fal's
    (no JSON `detail`, no error type: a proxy's page), so nothing is known yet."""
    body = json_or_none(response)
    error_type = response.headers.get("x-fal-error-type") or (
        body.get("error_type") if isinstance(body, dict) else None
    )
    detail = body.get("detail") if isinstance(body, dict) else None
    if error_type:
        return _request_failure(error_type, detail)
    if isinstance(detail, list):
        return _model_failure(detail)
    if isinstance(detail, str) and response.status_code < 500:
        if response.status_code == 404:
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_job_lost",
                error_message=f"fal no longer has the request's result: {detail}",
            )
        code = "content_policy" if is_moderation(None, detail) else "upstream_failed"
        return UpstreamStatus(UpstreamState.FAILED, error_code=code, error_message=upstream_text(detail, ""))
    return None


def _model_failure(detail: list[Any]) -> UpstreamStatus:
    """A model's refusal: `[{loc, msg, type}]`, its validation (422) or its content checks."""
    items = [d for d in detail if isinstance(d, dict)]
    types = [str(d.get("type") or "") for d in items]
    said = "; ".join(f"{_where(d.get('loc'))}: {d.get('msg') or d.get('type')}" for d in items)
    message = upstream_text(said, "the model refused the input")
    if any(is_moderation(t, "") for t in types) or is_moderation(None, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(UpstreamState.FAILED, error_code="invalid_input", error_message=message)


def _where(loc: Any) -> str:
    """A validation error's `loc` (`["body", "duration"]`) as the input it names."""
    steps = [str(p) for p in loc if p != "body"] if isinstance(loc, list) else []
    return ".".join(steps) or "input"


def _request_failure(error_type: Any, message: Any) -> UpstreamStatus:
    code = clean_error_code(error_type) or "upstream_failed"
    text = upstream_text(message if isinstance(message, str) else None, f"fal's request failed ({code})")
    if is_moderation(code, text):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=text)
    if "cancel" in code:
        return UpstreamStatus(UpstreamState.FAILED, error_code="upstream_cancelled", error_message=text)
    return UpstreamStatus(
        UpstreamState.FAILED, error_code=code, error_message=text, retryable=code in _TRANSIENT
    )


def create_refusal(response: httpx.Response) -> ProviderError:
    """The error for a create fal did not accept. Among the refusals that prove no request was queued
    (`PROVEN_REFUSALS`): a model's 422 (content policy, or invalid input, final); a 403 about the
    account's balance (fal locks a user whose balance is exhausted: retried on the next channel); a 404
    (no such model for this key: ruled out like refused credentials); the rest as every adapter maps
    them (401/403 our credentials, 429 rate limits, 5xx an unknown outcome)."""
    body = json_or_none(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    if status in PROVEN_REFUSALS and status != 429:
        if isinstance(detail, list):
            failure = _model_failure(detail)
            return ProviderError(failure.error_code or "invalid_input", f"create: {failure.error_message}")
        text = detail if isinstance(detail, str) else ""
        if status == 403 and re.search(r"balance|locked|billing|credit", text, re.I):
            return ProviderError(
                "upstream_quota_exhausted",
                f"create: fal refused the account ({upstream_text(text, '')})",
                retryable=True,
                retry_after=parse_retry_after(response.headers),
            )
        if status == 404:  # no such app, or none this key may run: another channel may have it
            return ProviderError(
                "upstream_auth_failed",
                f"create: fal has no such model for this account ({upstream_text(text, 'HTTP 404')})",
                retryable=True,
            )
        if status not in (401, 403) and text:
            code = "content_policy" if is_moderation(None, text) else "upstream_refused"
            return ProviderError(code, f"create: the channel refused it: {upstream_text(text, '')}")
    try:
        raise_for_status(response, "create", may_create=True)
    except ProviderError as exc:
        return exc
    return UpstreamOutcomeUnknown(f"create: unexpected HTTP {status}")  # pragma: no cover - 2xx handled
