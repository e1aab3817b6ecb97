"""The fal dialect of the fake upstream: fal's queue API (`queue.fal.run`), served under `/fal`.

Shapes follow fal's "Queue API" reference and guide (fal.ai/docs: "Asynchronous inference", "Inference
API", "Cancel a request", "Request errors") and the `fal-client` Python SDK (`fal_client/client.py`:
`submit`, `AsyncRequestHandle.status/get/cancel`, `AppId.from_endpoint_id`); the models' inputs are in
`fal_input`. A channel's `base_url` is `{fake}/fal`, standing for `https://queue.fal.run`.

- `POST /fal/{model id}` (`fal-ai/veo3.1/image-to-video`: owner, app, endpoint path) with the model's
  input object as the body -> 200 `{status: IN_QUEUE, request_id (a UUID), response_url, status_url,
  cancel_url, queue_position}`. The three URLs name only the owner and the app
  (`/fal/fal-ai/veo3.1/requests/{id}`), as fal's do. `Authorization: Key <key>` (fal's scheme; a Bearer
  token is refused, 401 `{"detail"}`). An unknown model is 404. fal takes no idempotency key: every
  submit is a new request;
- the quirk that matters: the queue takes the input as it is and the model checks it when it runs, so an
  input the model refuses (`fal_input`'s schemas: a value outside an enum, a missing image, an input it
  does not name) still makes a request, which COMPLETES, and whose result is the model's 422
  `{"detail": [{loc, msg, type}]}`;
- `GET .../requests/{id}/status` -> 202 `{status: IN_QUEUE, queue_position}` or `{status: IN_PROGRESS,
  logs}` while it waits or runs, 200 `{status: COMPLETED, logs, metrics}` once it has ended, well or not:
  the outcome is in the result. (`#error_in_status`: a failed request's status also carries `error` and
  `error_type`, as fal's newer answers do);
- `GET .../requests/{id}` -> the output, `{"video": {url, content_type, file_name, file_size}}` (the URL a
  signed, expiring link to `/_fake/files/...` on `cdn_base_url`, fresh on every read), or the request's
  error: a model's 422 (`content_policy_violation` for `#moderation=job`), a request error `{detail,
  error_type}` with `X-Fal-Error-Type` (`#fail=request_timeout` is a 504, `runner_*` a 503; another
  `#fail=CODE` is a 422 item of that type), `request_cancelled` for a cancelled request (the fake's
  reading: the docs name no type for it); 400 while the request has not completed;
- `PUT .../requests/{id}/cancel` -> 200 `{"status": "OK"}` (a queued request leaves the queue and never
  runs), 202 `{"status": "CANCELLATION_REQUESTED"}` (a running one: its runner is told; the fake's
  stops), 400 `{"status": "ALREADY_COMPLETED"}`, 404 `{"status": "NOT_FOUND"}`.

Directives (see the package docstring): `429=N`, `5xx=N` (503), `echo_key`, the accept faults
(`accept_then_drop`, `accept_then_hang`, `accept_then_5xx`), `moderation` (a 422 with a
`content_policy_violation` item at submit, no request made: the fake's stand-in for an input fal's own
checks refuse; `moderation=job`: in the result), `exhausted_balance=N` (403 "User is locked. Reason:
Exhausted balance"), `fail=CODE` (+ `fail_jobs=N`), `poll5xx`, `poll_hang`, `malformed` (on the status),
`unknown_status=N`, `error_in_status`, `expired_link=N`, `ready`, `queue`, `latency`, `create_latency`.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from ulid import ULID

from vidgate.testing.fake_upstream.creation import (
    accept_fault,
    accepted_status,
    make_job,
    reject_fault,
    respond_accepted,
)
from vidgate.testing.fake_upstream.directives import HEADER, parse_directives
from vidgate.testing.fake_upstream.fal_input import MODELS, REQUEST_ERROR_STATUS, fal_error, validation_error
from vidgate.testing.fake_upstream.input_schemas import (
    InputProblem,
    check_input,
    clip_shape,
    journal_fields,
    seconds_of,
)
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["fal_routes", "request_id_of"]

BASE: Final = "/fal"
_NAMESPACES: Final = ("workflows", "comfy")
_UNKNOWN_STATUS: Final = "WARMING_UP"
_BALANCE: Final = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)
_FLAGGED: Final = (
    "The content could not be processed because it contained material flagged by a content checker."
)


def request_id_of(job: Job) -> str:
    """fal's request id for a job: a UUID (the job's ULID, as a UUID)."""
    return str(ULID.from_str(job.short_id.removeprefix("task_").upper()).to_uuid())


def app_root(model: str) -> str:
    parts = model.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in _NAMESPACES else 2])


def _authorized(request: Request, api_key: str | None) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return api_key is None or (scheme.lower() == "key" and token.strip() == api_key)


def _unauthorized() -> Response:
    return fal_error(401, "Unauthorized: a valid `Authorization: Key <key>` header is required.")


def _credential(request: Request) -> str | None:
    _, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None


class FalRoutes:
    """Handlers of the fal queue routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def job_of(self, request: Request) -> Job | None:
        """The job a request-scoped route names, under the app its path names; None if there is none."""
        raw = request.path_params["request_id"]
        try:
            short = "task_" + str(ULID.from_uuid(uuid.UUID(raw))).lower()
        except ValueError:
            return None
        job = self.state.jobs.get(short, "fal")
        app = "/".join(p for p in (request.path_params.get("ns"), request.path_params["owner"],
                                   request.path_params["app"]) if p)  # fmt: skip
        if job is None or app_root(job.model) != app:
            return None
        return job

    def urls(self, request: Request, job: Job) -> dict[str, str]:
        root = f"{self.state.public_base(request)}{BASE}/{app_root(job.model)}/requests/{request_id_of(job)}"
        return {"response_url": root, "status_url": f"{root}/status", "cancel_url": f"{root}/cancel"}

    # submit ---------------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        state, header, model = self.state, request.headers.get(HEADER), request.path_params["model"]
        if not _authorized(request, state.settings.api_key):
            state.record("rejected_create", "fal", 401, reason="auth", model=model)
            return _unauthorized()
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = (
            body.get("prompt") if isinstance(body, dict) and isinstance(body.get("prompt"), str) else None
        )
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        schema = MODELS.get(model.strip("/"))
        if schema is None:
            state.record("rejected_create", "fal", 404, prompt=prompt, model=model, reason="unknown model")
            return fal_error(404, f"Application '{app_root(model)}' not found")
        if not isinstance(body, dict):
            state.record("rejected_create", "fal", 422, prompt=prompt, model=model, reason="not an object")
            return validation_error([InputProblem("body", "type", "Input should be a valid dictionary")])
        if rejected := reject_fault(state, d, prompt, "fal", _credential(request)):
            fault, response = rejected
            response = _in_fal_words(fault, response)
            state.record(
                "rejected_create", "fal", response.status_code, prompt=prompt, model=model, fault=fault
            )
            return response
        if state.counters.fire("exhausted_balance", prompt, d.count("exhausted_balance")):
            state.record("rejected_create", "fal", 403, prompt=prompt, model=model, fault="exhausted_balance")
            return fal_error(403, _BALANCE)
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "fal", 422, prompt=prompt, model=model, fault="moderation")
            return fal_error(
                422, [{"loc": ["body", "prompt"], "msg": _FLAGGED, "type": "content_policy_violation"}]
            )
        problems = check_input(schema, body)
        width, height = clip_shape(schema, body)
        job = make_job(
            state,
            d,
            credential=_credential(request),
            dialect="fal",
            key=None,  # fal takes no idempotency key: every submit is a new request
            header=header,
            model=model.strip("/"),
            prompt=prompt or "",
            width=width,
            height=height,
            seconds=seconds_of(schema, body),
            size=f"{width}x{height}",
            received={**body, "problems": [(p.field, p.kind, p.message) for p in problems]},
        )
        rid = request_id_of(job)
        after = accept_fault(state, d, job.prompt)
        detail = {
            **journal_fields(body),
            "fault": after,
            "model": job.model,
            "problems": [p.field for p in problems],
        }
        state.record("create", "fal", accepted_status(after), job=rid, prompt=job.prompt, **detail)
        answer = {"status": "IN_QUEUE", "request_id": rid, **self.urls(request, job), "queue_position": 0}
        return await respond_accepted(state, after, answer)

    # status, result, cancel -----------------------------------------------------------------------

    def phase(self, job: Job, snap: Snapshot) -> str:
        return {"queued": "IN_QUEUE", "running": "IN_PROGRESS"}.get(snap.phase, "COMPLETED")

    async def status(self, request: Request) -> Response:
        state = self.state
        if not _authorized(request, state.settings.api_key):
            state.record("poll", "fal", 401)
            return _unauthorized()
        job = self.job_of(request)
        if job is None:
            state.record("poll", "fal", 404, job=request.path_params["request_id"])
            return fal_error(404, "Request not found")
        rid, d = request_id_of(job), job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "fal", 500, job=rid, prompt=job.prompt, fault=fault)
            return fal_error(500, "Internal Server Error")
        job.polls += 1
        snap = job.snapshot(state.now())
        word = self.phase(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            word = _UNKNOWN_STATUS
        body: dict[str, Any] = {"status": word, "request_id": rid, **self.urls(request, job)}
        logs = [{"message": f"{snap.progress}% done", "level": "INFO", "source": "user"}]
        if word == "IN_QUEUE":
            body["queue_position"] = 0
        elif word == "IN_PROGRESS":
            body["logs"] = logs if request.query_params.get("logs") in ("1", "true") else None
        elif word == "COMPLETED":
            body["logs"] = None
            body["metrics"] = {"inference_time": max(0.0, (snap.finished_at or job.created) - job.created)}
            if d.has("error_in_status") and (failure := self.failure(job, snap)) is not None:
                body["error"], body["error_type"] = failure
        status = 200 if word == "COMPLETED" else 202
        state.record("poll", "fal", status, job=rid, prompt=job.prompt, fault=fault, reported=word)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body, status_code=status)

    def failure(self, job: Job, snap: Snapshot) -> tuple[str, str] | None:
        """(message, error type) of a request that ended badly, None for one that succeeded."""
        if snap.phase != "failed" and not job.input.get("problems"):
            return None
        if snap.phase == "failed" and job.stopped_at is not None and snap.error_code == "cancelled":
            return "Request was cancelled", "request_cancelled"
        if job.input.get("problems"):
            return "Input validation failed", "validation_error"
        code = snap.error_code or "internal_error"
        if code == "moderation_blocked":
            return _FLAGGED, "content_policy_violation"
        return snap.error_message or "failed", code

    async def result(self, request: Request) -> Response:
        state = self.state
        if not _authorized(request, state.settings.api_key):
            state.record("result", "fal", 401)
            return _unauthorized()
        job = self.job_of(request)
        if job is None:
            state.record("result", "fal", 404, job=request.path_params["request_id"])
            return fal_error(404, "Request not found")
        rid, d = request_id_of(job), job.directives(request.headers.get(HEADER))
        await state.delay(d)
        snap = job.snapshot(state.now())
        if not snap.terminal:
            state.record("result", "fal", 400, job=rid, prompt=job.prompt, reason="in progress")
            return fal_error(400, "Request is still in progress")
        response = self.outcome(request, job, snap)
        state.record("result", "fal", response.status_code, job=rid, prompt=job.prompt)
        return response

    def outcome(self, request: Request, job: Job, snap: Snapshot) -> Response:
        problems = job.input.get("problems") or []
        if snap.phase == "failed" and job.stopped_at is not None and snap.error_code == "cancelled":
            return fal_error(400, "Request was cancelled", error_type="request_cancelled")
        if problems:
            return validation_error([InputProblem(f, k, m) for f, k, m in problems])
        if snap.phase == "failed":
            code = snap.error_code or "internal_error"
            if code == "moderation_blocked":
                return fal_error(
                    422, [{"loc": ["body"], "msg": _FLAGGED, "type": "content_policy_violation"}]
                )
            if code in REQUEST_ERROR_STATUS:
                return fal_error(REQUEST_ERROR_STATUS[code], snap.error_message or code, error_type=code)
            return fal_error(422, [{"loc": ["body"], "msg": snap.error_message or code, "type": code}])
        base = self.state.public_base(request, cdn=True)
        name = f"{job.short_id}.mp4"
        link = f"{base}/_fake/files/{name}?{issue_link(job, name, self.state.unix(self.state.now()))}"
        video = {"url": link, "content_type": "video/mp4", "file_name": "output.mp4", "file_size": None}
        return JSONResponse({"video": video, "seed": job.input.get("seed")})

    async def cancel(self, request: Request) -> Response:
        state = self.state
        if not _authorized(request, state.settings.api_key):
            state.record("cancel", "fal", 401)
            return _unauthorized()
        job = self.job_of(request)
        if job is None:
            state.record("cancel", "fal", 404, job=request.path_params["request_id"])
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        rid, now = request_id_of(job), state.now()
        was = job.snapshot(now).phase
        if was in ("completed", "failed"):
            state.record("cancel", "fal", 400, job=rid, prompt=job.prompt, was=was)
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        job.stopped_at = now  # queued: out of the queue; running: the fake's runner heeds the signal
        if was == "queued":
            state.record("cancel", "fal", 200, job=rid, prompt=job.prompt, was=was, outcome="cancelled")
            return JSONResponse({"status": "OK"})
        state.record(
            "cancel", "fal", 202, job=rid, prompt=job.prompt, was=was, outcome="cancellation_requested"
        )
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


def _in_fal_words(fault: str, response: Response) -> Response:
    """The shared create faults in fal's `{"detail"}` (`echo_key` keeps its body: the key is in it)."""
    retry = {k: v for k, v in response.headers.items() if k.startswith("retry-after")}
    if fault == "429":
        return fal_error(429, "Rate limit exceeded: too many concurrent requests.", headers=retry)
    if fault == "5xx":
        return fal_error(503, "Service Unavailable", headers=retry)
    return response


def fal_routes(state: FakeState) -> list[BaseRoute]:
    """The queue routes under `/fal`: the request-scoped ones first (an app may be namespaced)."""
    h = FalRoutes(state)
    routes: list[BaseRoute] = []
    for prefix in (f"{BASE}/{{owner}}/{{app}}", f"{BASE}/{{ns}}/{{owner}}/{{app}}"):
        routes += [
            Route(prefix + "/requests/{request_id}/status", h.status, methods=["GET"]),
            Route(prefix + "/requests/{request_id}/cancel", h.cancel, methods=["PUT"]),
            Route(prefix + "/requests/{request_id}", h.result, methods=["GET"]),
        ]
    routes.append(Route(BASE + "/{model:path}", h.submit, methods=["POST"]))
    return routes
