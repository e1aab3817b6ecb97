"""The `replicate` channel kind: any video model on Replicate, through its predictions API.

The channel's `base_url` is `https://api.replicate.com/v1`; its `api_key` (an API token) goes as
`Authorization: Bearer`. The channel's models are Replicate model names, `owner/name` (an official
model, run at its latest version) or `owner/name:<64-hex version>`, each with an input mapping in
`options.models` (`providers.input_mapping`). Shapes follow Replicate's HTTP API reference
(replicate.com/docs/reference/http: "Create a prediction", "Create a prediction using an official
model", "Get a prediction", "List predictions", "Cancel a prediction") and its SDKs (`replicate-python`
`replicate/prediction.py`: statuses, the progress read from the logs; the generated `replicate-python-beta`
`resources/predictions.py`: `Prefer: wait`, `created_after`; `replicate-go` `apierror.go`: the problem
details of an error):

- create: `POST models/{owner}/{name}/predictions` `{input}`, or `POST predictions` `{version, input}`
  for a pinned version; the answer (201) is the prediction, `{id, status: starting, urls: {get, cancel,
  web}, ...}`. vidgate never sends `Prefer: wait` (the create would be held up to 60 s, past a request
  timeout: an unknown outcome for nothing). A 422 names the invalid inputs (`invalid_fields`); a 402 is
  Replicate's "Insufficient credit" (nothing is made: the next channel is tried);
- poll: `GET predictions/{id}`: `starting`, `processing` (progress read from the logs' `42%|...| 21/50`
  lines, as the SDK reads it), `succeeded` (`output` a URL, a list of URLs or an object: the mapping's
  `result`, the output itself by default; the file is served by `replicate.delivery` and is copied at
  once, through the SSRF-safe fetcher), `failed` (`error`, `(E005)` and "flagged as sensitive" being the
  content filter), `canceled`; an API prediction's input and output are removed an hour after it ends
  (`data_removed`);
- cancel: `POST predictions/{id}/cancel` stops a starting or processing prediction (an ended one is
  answered as it is);
- lookup after an unknown outcome: `GET predictions?created_after=` lists the account's predictions,
  newest first, with their model and input: a prediction of the same model whose input carries every
  scalar we sent (the prompt, the length, the seed...) is the one; with `seed_tag` (the default) every
  create whose client sent no seed carries one derived from the submission, which tells twins apart.
  Replicate takes no idempotency key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
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
from vidgate.providers.input_mapping import (
    InputMapping,
    build_input,
    check_mappings,
    dig_path,
    sent_scalars,
    submission_seed,
)
from vidgate.providers.job_polls import UnknownStatuses, poll_body
from vidgate.providers.registry import ChannelConfigError, ProviderDeps
from vidgate.providers.result_links import copy_result_link
from vidgate.providers.upstream_http import (
    PROVEN_REFUSALS,
    download_video,
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

__all__ = ["ReplicateOptions", "ReplicateProvider", "create_refusal", "prediction_status", "progress_in_logs"]

log = structlog.get_logger("vidgate.providers.replicate")

_MODEL_NAME: Final = re.compile(r"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)(?::([0-9a-f]{64}))?")
_PROGRESS: Final = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
_CONTENT_FILTER: Final = re.compile(r"\(E005\)|flagged as sensitive|nsfw", re.I)
_TRANSIENT_WORDS: Final = re.compile(r"timed? ?out|timeout|unavailable|internal error|out of memory", re.I)
_LOOKUP_PAGES: Final = 10  # of 100 predictions each
_LOOKUP_SKEW_S: Final = 120  # clocks differ: look from this long before our submit


class ReplicateOptions(BaseModel, extra="forbid"):
    models: dict[str, InputMapping] = Field(
        default_factory=dict,
        description="Replicate model (owner/name or owner/name:version) -> which inputs take what.",
    )
    poll_seconds: float | None = Field(
        default=None, gt=0, description="Seconds between polls; default: the worker's."
    )
    lookup: bool = Field(
        default=True, description="After an unknown outcome, look for the prediction in the list."
    )
    seed_tag: bool = Field(
        default=True,
        description="When the client sent no seed, send one derived from the submission (models with a "
        "seed input), so the lookup tells this submission's prediction from a twin's.",
    )


def split_model(name: str) -> tuple[str, str, str | None]:
    """(owner, name, version or None) of `owner/name[:version]`."""
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a Replicate model (owner/name or owner/name:<version id>)")
    return match.group(1), match.group(2), match.group(3)


class ReplicateProvider:
    vendor = "replicate"
    Options = ReplicateOptions
    needs_base_url = True
    default_max_images = 1
    max_images_limit = 16
    image_inputs = frozenset({"url", "data_uri"})  # files go as HTTP URLs or data URLs
    default_watermark_free = "always"

    @classmethod
    def traits_for(cls, channel: ChannelSettings) -> ChannelTraits:
        return ChannelTraits(
            can_cancel=True, can_find_jobs=ReplicateOptions.model_validate(channel.options).lookup
        )

    @classmethod
    def model_capabilities(cls, channel: ChannelSettings, upstream_model: str) -> ModelCapabilities | None:
        mapping = ReplicateOptions.model_validate(channel.options).models.get(upstream_model)
        return None if mapping is None else mapping.capabilities()

    @classmethod
    def check_channel(cls, channel: ChannelSettings) -> None:
        options = ReplicateOptions.model_validate(channel.options)
        for model in options.models:
            try:
                split_model(model)
            except ValueError as exc:
                raise ChannelConfigError(
                    f"channel {channel.name!r} (kind replicate): options.models: {exc}"
                ) from None
        max_images = channel.max_images if channel.max_images is not None else cls.default_max_images
        check_mappings(channel, options.models, model_capabilities(channel, cls, max_images))

    def __init__(self, channel: ChannelSettings, deps: ProviderDeps) -> None:
        self.channel = channel
        self.options = ReplicateOptions.model_validate(channel.options)
        self.deps = deps
        self.image_mode = channel.image_input or "url"
        self.client = deps.http.client_for(channel)
        assert channel.base_url is not None  # needs_base_url
        self.base = channel.base_url
        self.unknown_statuses = UnknownStatuses(channel, log)
        max_images = channel.max_images if channel.max_images is not None else self.default_max_images
        self.capabilities = model_capabilities(channel, type(self), max_images)

    def mapping_of(self, public_model: str) -> tuple[str, InputMapping]:
        model = self.channel.upstream_model(public_model)
        mapping = self.options.models.get(model)
        if mapping is None:  # checked at start
            raise ProviderError("no_input_mapping", f"The channel has no input mapping for model {model}.")
        return model, mapping

    # create -----------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, ctx: StepContext) -> UpstreamJob:
        if request.remix_of_upstream_id is not None:
            raise ProviderError("remix_unsupported", "Replicate has no remix of an earlier prediction.")
        model, body = await self.create_body(request)
        owner, name, version = split_model(model)
        payload: dict[str, Any] = {"input": body}
        path = f"models/{quote(owner)}/{quote(name)}/predictions"
        if version is not None:  # a pinned version: `owner/name:version`, as the API takes it
            path, payload = "predictions", {"version": model, "input": body}
        with mapped_transport_errors("create", may_create=True):
            response = await self.client.post(path, json=payload)
        if not 200 <= response.status_code < 300:
            raise create_refusal(response)
        answer = json_or_none(response)
        prediction_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise UpstreamOutcomeUnknown("create: the channel's answer had no prediction id")
        return UpstreamJob(prediction_id, poll_after=self.options.poll_seconds, memo={"model": model})

    async def create_body(self, request: SubmitRequest) -> tuple[str, dict[str, Any]]:
        """(Replicate model, the prediction's `input`) for `request`."""
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
        seed = submission_seed(request, tag=self.options.seed_tag, max_seed=mapping.max_seed)
        body = build_input(
            mapping,
            request,
            images=images,
            last_frame=last_frame,
            seed=seed,
            audio=capabilities.makes_audio(request.generate_audio),
        )
        return model, body

    # poll -------------------------------------------------------------------------------------

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> UpstreamStatus:
        with mapped_transport_errors("poll"):
            response = await self.client.get(
                f"predictions/{quote(job.upstream_id, safe='')}", timeout=self.channel.poll_timeout_seconds
            )
        body = poll_body(response, lost="Replicate no longer knows the prediction")
        model = job.memo.get("model")
        mapping = self.options.models.get(model) if isinstance(model, str) else None
        path = mapping.result if mapping is not None and mapping.result is not None else ""
        status = prediction_status(body, result_path=path, poll_after=self.options.poll_seconds)
        if status is None:
            return self.unknown_statuses.still_running(
                body.get("status"), poll_after=self.options.poll_seconds
            )
        return status

    # result -----------------------------------------------------------------------------------

    async def fetch(
        self, job: UpstreamJob, status: UpstreamStatus, work_dir: Path, ctx: StepContext
    ) -> FetchedResult:
        """Copy the output file now (Replicate removes it an hour after the prediction ends): from
        `replicate.delivery` through the SSRF-safe fetcher, without the token; a file on the API's own
        origin (its files API) with the token, as Replicate asks."""
        if not status.result_url:
            raise ProviderError("upstream_no_result", "The channel gave no video URL.")
        dest = work_dir / "video.mp4"
        if self.on_channel(status.result_url):
            await download_video(
                self.client,
                status.result_url,
                dest,
                max_bytes=self.deps.settings.max_video_bytes,
                timeout=self.channel.download_timeout_seconds,
                what="download",
            )
        else:
            await copy_result_link(
                self.deps.fetcher,
                status.result_url,
                dest,
                max_bytes=self.deps.settings.max_video_bytes,
                timeout=self.channel.download_timeout_seconds,
            )
        return FetchedResult(dest)

    def on_channel(self, url: str) -> bool:
        """Whether `url` is on the channel's origin, below its base path (where the token may go)."""
        mine, theirs = urlsplit(self.base), urlsplit(url)
        return (theirs.scheme, theirs.netloc.lower()) == (mine.scheme, mine.netloc.lower()) and (
            theirs.path.startswith(mine.path.rstrip("/") + "/")
        )

    # cancel, lookup, probe ----------------------------------------------------------------------

    async def cancel(self, job: UpstreamJob) -> None:
        """`POST predictions/{id}/cancel`; a prediction that ended is answered as it is, an unknown one
        (404) is nothing to stop."""
        with mapped_transport_errors("cancel"):
            response = await self.client.post(f"predictions/{quote(job.upstream_id, safe='')}/cancel")
        if 200 <= response.status_code < 300 or response.status_code == 404:
            return
        raise_for_status(response, "cancel")

    async def find_jobs(self, request: SubmitRequest) -> Sequence[UpstreamJob]:
        """Predictions a submit of unknown outcome may have made, oldest first: the same model (or
        version), every scalar of the input we sent, created since the submit went out (less
        `_LOOKUP_SKEW_S`). Replicate lists newest first, 100 a page, `next` the following page."""
        model, body = await self.create_body(request)
        owner, name, version = split_model(model)
        want = sent_scalars(body)
        since = datetime.fromtimestamp(request.sent_at_ms / 1000 - _LOOKUP_SKEW_S, tz=UTC)
        url: str | None = "predictions"
        params: dict[str, str] | None = {"created_after": since.strftime("%Y-%m-%dT%H:%M:%SZ")}
        found: list[str] = []
        for _ in range(_LOOKUP_PAGES):
            if url is None:
                break
            with mapped_transport_errors("lookup"):
                response = await self.client.get(
                    url, params=params, timeout=self.channel.poll_timeout_seconds
                )
            raise_for_status(response, "lookup")
            page = json_or_none(response)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise ProviderError(
                    "upstream_bad_response", "lookup: the list is not readable", retryable=True
                )
            for item in results:
                if isinstance(item, dict) and _same_job(item, f"{owner}/{name}", version, want):
                    found.append(str(item["id"]))
            following = page.get("next") if isinstance(page, dict) else None
            url = following if isinstance(following, str) and self.on_channel(following) else None
            params = None  # the cursor URL carries the filter
        return [UpstreamJob(job_id, memo={"model": model}) for job_id in reversed(found)]

    async def probe(self) -> ProbeResult:
        """`GET account`: it checks the token and makes nothing."""
        try:
            response = await self.client.get("account")
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return probe_verdict(response, fine=frozenset({200}))

    async def aclose(self) -> None:
        await self.client.aclose()


# Pure pieces (unit-tested apart) ------------------------------------------------------------------


def _same_job(item: dict[str, Any], model: str, version: str | None, want: dict[str, Any]) -> bool:
    if not isinstance(item.get("id"), str):
        return False
    if version is not None and item.get("version") != version:
        return False
    if version is None and item.get("model") != model:
        return False
    listed = item.get("input")
    if not isinstance(listed, dict) or not listed:
        return False  # data removed (an hour after the end), or no input shown: nothing proves it
    return all(key in listed and str(listed[key]) == str(value) for key, value in want.items())


def progress_in_logs(logs: Any) -> int | None:
    """The last `42%|████| 21/50` line of a prediction's logs, as a percentage (the SDKs read it so)."""
    if not isinstance(logs, str) or not logs:
        return None
    for line in reversed(logs.splitlines()):
        match = _PROGRESS.match(line)
        if match:
            return max(0, min(99, int(match.group(1))))
    return None


def prediction_status(
    body: dict[str, Any], *, result_path: str, poll_after: float | None
) -> UpstreamStatus | None:
    """A prediction as an UpstreamStatus; None for a status word nobody knows (keep polling)."""
    word = str(body.get("status") or "").strip().lower()
    if word == "starting":
        return UpstreamStatus(UpstreamState.QUEUED, poll_after=poll_after)
    if word == "processing":
        return UpstreamStatus(
            UpstreamState.RUNNING, progress=progress_in_logs(body.get("logs")), poll_after=poll_after
        )
    if word == "succeeded":
        url = first_url(dig_path(body.get("output"), result_path))
        if url is None:
            removed = bool(body.get("data_removed"))
            return UpstreamStatus(
                UpstreamState.FAILED,
                error_code="upstream_result_expired" if removed else "upstream_no_result",
                error_message="Replicate removed the prediction's output (an hour after it ended)."
                if removed
                else "The prediction succeeded but its output has no video URL where the mapping says.",
            )
        return UpstreamStatus(UpstreamState.SUCCEEDED, progress=100, result_url=url, watermarked=False)
    if word == "failed":
        return prediction_failure(body.get("error"))
    if word == "canceled":
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_cancelled",
            error_message="The prediction was canceled.",
        )
    if word == "aborted":  # ended before it started (a deadline the prediction carried passed)
        return UpstreamStatus(
            UpstreamState.FAILED,
            error_code="upstream_aborted",
            error_message="Replicate aborted the prediction before it started.",
            retryable=True,
        )
    state, cancelled = upstream_state(body.get("status"))
    if state is None:
        return None
    if cancelled:
        return prediction_status({"status": "canceled"}, result_path=result_path, poll_after=poll_after)
    if state is UpstreamState.SUCCEEDED:
        return prediction_status(
            {**body, "status": "succeeded"}, result_path=result_path, poll_after=poll_after
        )
    if state is UpstreamState.FAILED:
        return prediction_failure(body.get("error"))
    return UpstreamStatus(state, poll_after=poll_after)


def prediction_failure(error: Any) -> UpstreamStatus:
    """A failed prediction: its `error` (a string, or an object with a message) as our code."""
    if isinstance(error, dict):
        error = error.get("detail") or error.get("message") or error.get("error")
    message = upstream_text(error, "the prediction failed without a reason")
    if _CONTENT_FILTER.search(message) or is_moderation(None, message):
        return UpstreamStatus(UpstreamState.FAILED, error_code="content_policy", error_message=message)
    return UpstreamStatus(
        UpstreamState.FAILED,
        error_code="upstream_failed",
        error_message=message,
        retryable=bool(_TRANSIENT_WORDS.search(message)),
    )


def create_refusal(response: httpx.Response) -> ProviderError:
    """The error for a create Replicate did not accept, read from its problem details (`{title, detail,
    status, invalid_fields}`). 402 ("Insufficient credit") proves no prediction was made: retried on the
    next channel; 404 (no such model, or none this token may run) rules the channel out like refused
    credentials; 422 names the invalid inputs (final; the content filter's words make it
    `content_policy`); the rest as every adapter maps them (401/403, 429, a 5xx an unknown outcome)."""
    body = json_or_none(response)
    problem = body if isinstance(body, dict) else {}
    detail = problem.get("detail") or problem.get("title")
    text = upstream_text(detail if isinstance(detail, str) else None, f"HTTP {response.status_code}")
    status = response.status_code
    if status == 402:
        return ProviderError(
            "upstream_quota_exhausted",
            f"create: Replicate refused for lack of credit ({text})",
            retryable=True,
            retry_after=parse_retry_after(response.headers),
        )
    if status == 404:
        return ProviderError(
            "upstream_auth_failed",
            f"create: Replicate has no such model for this token ({text})",
            retryable=True,
        )
    if status in PROVEN_REFUSALS and status not in (401, 403, 429):
        fields = problem.get("invalid_fields")
        if isinstance(fields, list) and fields:
            said = "; ".join(
                f"{f.get('field')}: {f.get('description') or f.get('type')}"
                for f in fields
                if isinstance(f, dict)
            )
            text = upstream_text(said, text)
        if _CONTENT_FILTER.search(text) or is_moderation(None, text):
            return ProviderError("content_policy", f"The channel's content policy refused it: {text}")
        return ProviderError(
            "invalid_input" if status == 422 else "upstream_refused", f"create: Replicate refused it: {text}"
        )
    try:
        raise_for_status(response, "create", may_create=True)
    except ProviderError as exc:
        return exc
    return UpstreamOutcomeUnknown(f"create: unexpected HTTP {status}")  # pragma: no cover - 2xx handled
