"""Dialect 3: Google Veo through the Gemini API, under `/v1beta` (the channel's base_url is `<fake>/v1beta`).

Shapes, from the Gemini API guide "Generate videos with Veo" (ai.google.dev/gemini-api/docs/video: the REST
examples and "Handling asynchronous operations") and the google-genai SDK (`google/genai/models.py`:
`_GenerateVideosOperation_from_mldev`, `_GenerateVideosResponse_from_mldev`, `_Video_from_mldev`):

- `POST /v1beta/models/{model}:predictLongRunning` (requests checked in `veo_input`) answers
  `{"name": "models/{model}/operations/{id}"}`. Google does not dedupe creates: an Idempotency-Key is
  ignored, every create is a new job.
- `GET /v1beta/models/{model}/operations/{id}`: `{"name"}` alone while running (no `done`, no progress),
  then `{"name", "done": true, "response": {"@type", "generateVideoResponse": {"generatedSamples":
  [{"video": {"uri"}}]}}}`, or `raiMediaFilteredCount`/`raiMediaFilteredReasons` and no sample when the
  safety filters blocked it (googleapis/js-genai#1272 shows the reason text), or `{"done": true, "error":
  {"code", "message"}}` (a google.rpc.Status: the code is a gRPC number).
- `GET /v1beta/files/{id}:download?alt=media` needs the key and answers 302 to a signed, expiring storage
  link (`links.py`) at `/_fake/veo-storage/{id}.mp4` on `cdn_base_url`: the REST guide downloads with
  `curl -L -H "x-goog-api-key: ..."`. The storage route journals whether the key came along
  (`storage_get`, detail `key_header`, `key_param`, `authorization`), then serves the file as the unified
  dialect's CDN does (`control_routes`, so `expired_link` works here too). Without `alt=media` the file's
  metadata is answered.
- `GET /v1beta/models/{model}`: models.get, the unbilled call `vidgate channels test` makes.
- the key: the `x-goog-api-key` header or a `key` query parameter. None: 403 PERMISSION_DENIED; a wrong one:
  HTTP 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID, as Google answers (not 401).
- errors: `{"error": {"code": <http>, "message", "status", "details"?}}`; a 429 carries a RetryInfo detail.

Directives, besides the shared ones (`429`, `5xx`, `accept_then_*`, `create_latency`, `ready`, `queue`,
`latency`, `poll5xx`, `poll_hang`, `malformed`, `fail=CODE`, `moderation`, `echo_key`, `expired_link`):
`filtered` (done, raiMediaFilteredCount 1, a reason, no sample; `moderation=job` does the same),
`op_error=CODE` (done with `error`; CODE a gRPC number or name such as `resource_exhausted`), `no_video`
(done with an empty generateVideoResponse), `inline_video` (the sample carries `encodedVideo` bytes instead
of a URI), `uri_on_cdn` (the sample's URI is the storage link itself, on another origin).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.testing.fake_upstream.control_routes import ControlRoutes
from vidgate.testing.fake_upstream.creation import (
    accept_fault,
    accepted_status,
    make_job,
    moderation_response,
    reject_fault,
    respond_accepted,
)
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse
from vidgate.testing.fake_upstream.state import FakeState
from vidgate.testing.fake_upstream.veo_input import FAKE_MODELS, GoogleRefusal, parse_create

__all__ = ["google_error", "veo_routes"]

_RESPONSE_TYPE: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
_STATUS_WORDS: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RPC_CODES: Final = {
    "cancelled": 1,
    "unknown": 2,
    "invalid_argument": 3,
    "deadline_exceeded": 4,
    "not_found": 5,
    "permission_denied": 7,
    "resource_exhausted": 8,
    "failed_precondition": 9,
    "aborted": 10,
    "internal": 13,
    "unavailable": 14,
}
_RPC_MESSAGES: Final = {
    1: "The operation was cancelled.",
    3: "Request contains an invalid argument.",
    4: "Deadline expired before operation could complete.",
    8: "Resource has been exhausted (e.g. check quota).",
    13: "Internal error encountered.",
    14: "The service is currently unavailable.",
}
FILTERED_REASON: Final = (
    "We encountered an issue with the audio for your prompt, which means we could not create your video. "
    "This can sometimes happen due to our safety filters or other processing issues. Please modify your "
    "request and try again. You have not been charged for this attempt."
)
_NO_KEY: Final = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
    "or other form of API consumer identity to call this API."
)


def google_error(
    http: int,
    message: str,
    *,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Google's error envelope."""
    error: dict[str, Any] = {"code": http, "message": message, "status": status or _STATUS_WORDS.get(http)}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=http, headers=headers)


def _key_of(request: Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query_params.get("key")


def _check_key(request: Request, expected: str | None) -> JSONResponse | None:
    if expected is None:
        return None
    key = _key_of(request)
    if key is None:
        return google_error(403, _NO_KEY)
    if key != expected:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return google_error(400, "API key not valid. Please pass a valid API key.", details=[info])
    return None


def _as_google(fault: str, response: Response, retry_after: float) -> Response:
    """A shared create fault (`reject_fault`, `moderation_response`: OpenAI's envelope) in Google's."""
    if fault == "429":
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        message = "You exceeded your current quota, please check your plan and billing details."
        return google_error(429, message, details=[retry])
    if fault == "5xx":
        return google_error(503, "The model is overloaded. Please try again later.")
    body = json.loads(bytes(response.body))
    return google_error(response.status_code, str(body["error"]["message"]))


def _rpc_code(text: str | None) -> int:
    if text and text.isdigit():
        return int(text)
    return _RPC_CODES.get((text or "").lower(), 13)


class VeoRoutes:
    """Handlers of the Gemini API's Veo routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.storage = ControlRoutes(state)

    # /v1beta/models/... -----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        """One route for `{model}:predictLongRunning` (POST), `{model}` and `{model}/operations/{id}`."""
        rest = request.path_params["rest"]
        if request.method == "POST":
            model, sep, action = rest.partition(":")
            if sep and action == "predictLongRunning" and "/" not in model:
                return await self.create(request, model)
        else:
            parts = rest.split("/")
            if len(parts) == 1 and ":" not in rest:
                return self.model_info(request, rest)
            if len(parts) == 3 and parts[1] == "operations":
                return await self.operation(request, parts[0], parts[2])
        return google_error(404, f"Method not found: {request.method} /v1beta/models/{rest}.")

    def model_info(self, request: Request, model: str) -> Response:
        if denied := _check_key(request, self.state.settings.api_key):
            return denied
        if model not in FAKE_MODELS:
            return google_error(404, f"models/{model} is not found for API version v1beta.")
        return JSONResponse(
            {
                "name": f"models/{model}",
                "version": model.split("-")[1],
                "displayName": f"Veo {model.split('-')[1]}",
                "supportedGenerationMethods": ["predictLongRunning"],
            }
        )

    async def create(self, request: Request, model: str) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        if denied := _check_key(request, state.settings.api_key):
            state.record("rejected_create", "veo", denied.status_code, reason="auth", model=model)
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        instances = body.get("instances") if isinstance(body, dict) else None
        first = instances[0] if isinstance(instances, list) and instances else None
        prompt = first.get("prompt") if isinstance(first, dict) else None
        prompt = prompt if isinstance(prompt, str) else None
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "veo", _key_of(request)):
            fault, response = rejected
            answer = _as_google(fault, response, d.number("retry_after", 1.0))
            state.record("rejected_create", "veo", answer.status_code, prompt=prompt, fault=fault)
            return answer
        try:
            req = parse_create(model, body)
        except GoogleRefusal as exc:
            state.record("rejected_create", "veo", exc.http, prompt=prompt, reason=exc.message, model=model)
            return google_error(exc.http, exc.message, status=exc.status)
        if refused := moderation_response(d):
            state.record("rejected_create", "veo", 400, prompt=prompt, fault="moderation", **req.detail)
            return _as_google("moderation", refused, 0)
        job = make_job(
            state,
            d,
            credential=_key_of(request),
            dialect="veo",
            key=None,  # Google ignores Idempotency-Key: a repeated create is a new (paid) job
            header=header,
            model=req.model,
            prompt=req.prompt,
            width=req.width,
            height=req.height,
            seconds=req.seconds,
            size=f"{req.resolution} {req.aspect_ratio}",
            received=req.detail,
        )
        after = accept_fault(state, d, job.prompt)
        state.record(
            "create",
            "veo",
            accepted_status(after),
            job=job.id,
            key=request.headers.get("idempotency-key"),
            prompt=job.prompt,
            fault=after,
            key_in="header" if request.headers.get("x-goog-api-key") else "query",
            **req.detail,
        )
        return await respond_accepted(state, after, {"name": _operation_name(job)})

    async def operation(self, request: Request, model: str, op: str) -> Response:
        state = self.state
        if denied := _check_key(request, state.settings.api_key):
            state.record("poll", "veo", denied.status_code, job=op)
            return denied
        job = state.jobs.get(op, "veo")
        if job is None or job.model != model or job.short_id != op:
            state.record("poll", "veo", 404, job=op)
            return google_error(404, f"Operation models/{model}/operations/{op} not found.")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "veo", 500, job=job.id, prompt=job.prompt, fault=fault)
            return google_error(500, "Internal error encountered.")
        job.polls += 1
        snap = job.snapshot(state.now())
        body, reported = await self.operation_body(request, job, snap, d)
        state.record("poll", "veo", 200, job=job.id, prompt=job.prompt, fault=fault, reported=reported)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def operation_body(
        self, request: Request, job: Job, snap: Snapshot, d: Directives
    ) -> tuple[dict[str, Any], str]:
        """The operation as Google shows it, and a word for the journal."""
        name = _operation_name(job)
        if snap.phase in ("queued", "running"):
            return {"name": name}, "running"
        if (snap.phase == "failed" and snap.error_code == "moderation_blocked") or d.has("filtered"):
            filtered = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [FILTERED_REASON]}
            return _done(name, filtered), "filtered"
        if snap.phase == "failed" or d.has("op_error"):
            code = _rpc_code(d.text("op_error") if d.has("op_error") else snap.error_code)
            message = (
                snap.error_message if snap.phase == "failed" and snap.error_message else None
            ) or _RPC_MESSAGES.get(code, f"The operation failed (code {code}).")
            return {"name": name, "done": True, "error": {"code": code, "message": message}}, "error"
        if d.has("no_video"):
            return _done(name, {}), "no_video"
        if d.has("inline_video"):
            data = await self.state.media.get("video", job.width, job.height, job.seconds)
            video = {"encodedVideo": base64.b64encode(data).decode(), "encoding": "video/mp4"}
            return _done(name, {"generatedSamples": [{"video": video}]}), "inline_video"
        uri = self.storage_link(request, job) if d.has("uri_on_cdn") else self.file_uri(request, job)
        return _done(name, {"generatedSamples": [{"video": {"uri": uri}}]}), "done"

    def file_uri(self, request: Request, job: Job) -> str:
        return f"{self.state.public_base(request)}/v1beta/files/{job.short_id}:download?alt=media"

    def storage_link(self, request: Request, job: Job) -> str:
        base = self.state.public_base(request, cdn=True)
        name = f"{job.short_id}.mp4"
        return f"{base}/_fake/veo-storage/{name}?{issue_link(job, name, self.state.unix(self.state.now()))}"

    # /v1beta/files/... and the storage ---------------------------------------------------------

    async def file(self, request: Request) -> Response:
        """`files/{id}:download?alt=media` (302 to storage), or `files/{id}` (its metadata)."""
        state, target = self.state, request.path_params["target"]
        file_id, _, action = target.partition(":")
        if denied := _check_key(request, state.settings.api_key):
            state.record("download", "veo", denied.status_code, job=file_id, reason="auth")
            return denied
        job = state.jobs.get(file_id, "veo")
        if job is None or action not in ("", "download") or job.snapshot(state.now()).phase != "completed":
            state.record("download", "veo", 404, job=file_id)
            return google_error(404, f"File files/{file_id} not found.")
        if action == "" or request.query_params.get("alt") != "media":
            uri = self.file_uri(request, job)
            state.record("file_get", "veo", 200, job=job.id, prompt=job.prompt)
            return JSONResponse(
                {"name": f"files/{file_id}", "mimeType": "video/mp4", "state": "ACTIVE", "uri": uri}
            )
        location = self.storage_link(request, job)
        state.record("download", "veo", 302, job=job.id, prompt=job.prompt, location=location)
        return RedirectResponse(location, status_code=302)

    async def storage_get(self, request: Request) -> Response:
        """The storage behind the redirect: journals which credentials came along, then serves the file."""
        headers, name = request.headers, request.path_params["name"]
        job = self.state.jobs.get(name.rpartition(".")[0], "veo")
        self.state.record(
            "storage_get",
            "files",
            200,
            job=job.id if job else name,
            prompt=job.prompt if job else None,
            file=name,
            key_header="x-goog-api-key" in headers,
            key_param="key" in request.query_params,
            authorization="authorization" in headers,
        )
        return await self.storage.files(request)


def _operation_name(job: Job) -> str:
    return f"models/{job.model}/operations/{job.short_id}"


def _done(name: str, result: dict[str, Any]) -> dict[str, Any]:
    response = {"@type": _RESPONSE_TYPE, "generateVideoResponse": result}
    return {"name": name, "done": True, "response": response}


def veo_routes(state: FakeState) -> list[BaseRoute]:
    """The `/v1beta` routes, and the storage the downloads redirect to."""
    h = VeoRoutes(state)
    return [
        Route("/v1beta/models/{rest:path}", h.models, methods=["GET", "POST"]),
        Route("/v1beta/files/{target:path}", h.file, methods=["GET"]),
        Route("/_fake/veo-storage/{name}", h.storage_get, methods=["GET"]),
    ]
