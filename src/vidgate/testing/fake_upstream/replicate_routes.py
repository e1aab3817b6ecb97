"""The Replicate dialect of the fake upstream: Replicate's predictions API (`api.replicate.com/v1`).

Shapes follow Replicate's HTTP API reference (replicate.com/docs/reference/http: "Create a prediction",
"Create a prediction using an official model", "Get a prediction", "List predictions", "Cancel a
prediction", "Get the authenticated account") and its SDKs (`replicate-python`: the statuses and the
progress its `Prediction.progress` reads from the logs; `replicate-python-beta`: `Prefer: wait`,
`created_after`/`created_before`; `replicate-go`: problem details). The models are in `replicate_input`.

- `POST /v1/models/{owner}/{name}/predictions` `{input}` and `POST /v1/predictions` `{version, input}`
  (`version` the 64-hex id or `owner/name:<id>`) -> 201, the prediction: `{id, model, version, input,
  logs, output, data_removed, error, status: starting, source: api, created_at, urls: {get, cancel,
  web}}`. Replicate validates the input at create: 422 with `invalid_fields`; an unknown model is 404, an
  unknown version 422. `Prefer: wait` (or `wait=N`, 1 to 60 s) holds the answer until the prediction has
  ended or the time is up, then answers it as it is then (real time: the fake's clock must move on its
  own). No idempotency key: every create is a new prediction;
- `GET /v1/predictions/{id}`: `starting` (queued), `processing` (the logs end with a `NN%|...| NN/100`
  line), `succeeded` (`output`: a signed link to `/_fake/files/...` on `cdn_base_url`, fresh on every
  read, standing for `replicate.delivery`; a list of one under `#output_list`), `failed` (`error`, a
  string; the content filter's is "...flagged as sensitive... (E005)"), `canceled`; an hour (of the fake's
  clock) after a prediction ended its input and output are gone (`data_removed: true`, `input: {}`,
  `output: null`), as for API predictions;
- `POST /v1/predictions/{id}/cancel`: a starting or processing prediction is canceled; one that has ended
  is answered as it is (200 both);
- `GET /v1/predictions[?created_after=&created_before=&cursor=]`: `{next, previous, results}`, newest
  first, 100 a page, `next` an absolute URL carrying the cursor and the filters;
- `GET /v1/account`: `{type, username, name, github_url}`.

Errors are problem details: 401 "Unauthenticated" without a valid Bearer token, 402 "Insufficient
credit" (`#payment_required=N`), 404, 422, 429 "Request was throttled." (`#429=N`, with Retry-After).
Directives (see the package docstring): `429`, `5xx` (503), `echo_key`, the accept faults, `moderation`
(at create: a 422 whose detail is the content filter's (E005) words, the fake's stand-in for an input a
model refuses up front; `moderation=job`: the prediction fails so), `fail=CODE` (+ `fail_jobs=N`; the
prediction's `error` says the code), `poll5xx`, `poll_hang`, `malformed`, `unknown_status=N`,
`expired_link=N`, `output_list`, `ready`, `queue`, `latency`, `create_latency`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.testing.fake_upstream.creation import (
    accept_fault,
    accepted_status,
    make_job,
    reject_fault,
    respond_accepted,
)
from vidgate.testing.fake_upstream.directives import HEADER, parse_directives
from vidgate.testing.fake_upstream.input_schemas import check_input, clip_shape, journal_fields, seconds_of
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.replicate_input import MODELS, VERSIONS, invalid_input, problem
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, bearer_token
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["prediction_id_of", "replicate_routes"]

API: Final = "/v1"
PAGE_SIZE: Final = 100
DATA_KEPT_S: Final = 3600  # an API prediction's input and output are removed an hour after it ends
_MAX_WAIT_S: Final = 60
_UNKNOWN_STATUS: Final = "booting"
_FLAGGED: Final = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
_NO_CREDIT: Final = (
    "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to "
    "purchase credit. Once you purchase credit, please wait a few minutes before you try again."
)


def prediction_id_of(job: Job) -> str:
    """Replicate's id for a job: 26 lower-case base-32 characters (the job's ULID)."""
    return job.short_id.removeprefix("task_")


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unauthorized() -> Response:
    return problem(401, "Unauthenticated", "You did not pass a valid authentication token")


def _not_found() -> Response:
    return problem(404, "Not found", "The requested resource could not be found.")


class ReplicateRoutes:
    """Handlers of the predictions routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def authorized(self, request: Request) -> bool:
        key = self.state.settings.api_key
        return key is None or bearer_token(request) == key

    def job_of(self, prediction_id: str) -> Job | None:
        return self.state.jobs.get("task_" + prediction_id, "replicate")

    # shapes -----------------------------------------------------------------------------------

    def word(self, job: Job, snap: Snapshot) -> str:
        if snap.phase == "queued":
            return "starting"
        if snap.phase == "running":
            return "processing"
        if snap.phase == "completed":
            return "succeeded"
        return "canceled" if job.stopped_at is not None and snap.error_code == "cancelled" else "failed"

    def prediction(self, request: Request, job: Job, snap: Snapshot, word: str) -> dict[str, Any]:
        state, pid = self.state, prediction_id_of(job)
        base = f"{state.public_base(request)}{API}/predictions/{pid}"
        unix_now = state.unix(state.now())
        removed = snap.finished_at is not None and unix_now >= state.unix(snap.finished_at) + DATA_KEPT_S
        body: dict[str, Any] = {
            "id": pid,
            "model": job.model,
            "version": job.input["version_id"],
            "input": {} if removed else dict(job.input["input"]),
            "logs": "",
            "output": None,
            "data_removed": removed,
            "error": None,
            "status": word,
            "source": "api",
            "created_at": _iso(state.unix(job.created)),
            "started_at": None,
            "completed_at": None,
            "urls": {"get": base, "cancel": f"{base}/cancel", "web": f"{state.public_base(request)}/p/{pid}"},
        }
        if snap.phase != "queued":
            body["started_at"] = _iso(state.unix(job.created + job.queue_s))
            bar = "#" * (snap.progress // 10)
            body["logs"] = f"Generating the video...\n{snap.progress}%|{bar:<10}| {snap.progress}/100"
        if snap.terminal:
            body["completed_at"] = _iso(state.unix(snap.finished_at or snap.changed_at))
            body["metrics"] = {
                "predict_time": max(0.0, (snap.finished_at or job.created) - job.created - job.queue_s)
            }
        if word == "succeeded" and not removed:
            name = f"{job.short_id}.mp4"
            link = (
                f"{state.public_base(request, cdn=True)}/_fake/files/{name}?{issue_link(job, name, unix_now)}"
            )
            listed = (
                job.directives(request.headers.get(HEADER)).has("output_list")
                or job.input["output"] == "urls"
            )
            body["output"] = [link] if listed else link
        elif word == "failed":
            code = snap.error_code or "internal_error"
            body["error"] = _FLAGGED if code == "moderation_blocked" else snap.error_message or code
        return body

    # routes -----------------------------------------------------------------------------------

    async def create_for_model(self, request: Request) -> Response:
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self.create(request, model, pinned=False)

    async def create_for_version(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        version = str(body.get("version") or "") if isinstance(body, dict) else ""
        model = VERSIONS.get(version.rpartition(":")[2])
        if model is None or (":" in version and version.partition(":")[0] != model):
            self.state.record("rejected_create", "replicate", 422, reason="unknown version", version=version)
            return problem(
                422,
                "Invalid version",
                "The specified version does not exist (or perhaps you don't have permission to use it?)",
            )
        return await self.create(request, model, pinned=True)

    async def create(self, request: Request, model: str, *, pinned: bool) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        if not self.authorized(request):
            state.record("rejected_create", "replicate", 401, reason="auth", model=model)
            return _unauthorized()
        try:
            body = await request.json()
        except ValueError:
            body = None
        given = body.get("input") if isinstance(body, dict) else None
        prompt = (
            given.get("prompt") if isinstance(given, dict) and isinstance(given.get("prompt"), str) else None
        )
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        schema = MODELS.get(model)
        if schema is None:
            state.record(
                "rejected_create", "replicate", 404, prompt=prompt, model=model, reason="unknown model"
            )
            return _not_found()
        if rejected := reject_fault(state, d, prompt, "replicate", bearer_token(request)):
            fault, response = rejected
            response = _in_replicate_words(fault, response)
            state.record(
                "rejected_create", "replicate", response.status_code, prompt=prompt, model=model, fault=fault
            )
            return response
        if state.counters.fire("payment_required", prompt, d.count("payment_required")):
            state.record(
                "rejected_create", "replicate", 402, prompt=prompt, model=model, fault="payment_required"
            )
            return problem(402, "Insufficient credit", _NO_CREDIT)
        if not isinstance(given, dict):
            state.record("rejected_create", "replicate", 422, prompt=prompt, model=model, reason="no input")
            return problem(422, "Input validation failed", "- input: input is required")
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "replicate", 422, prompt=prompt, model=model, fault="moderation")
            return problem(422, "Input validation failed", _FLAGGED)
        problems = check_input(schema, given)
        if problems:
            state.record(
                "rejected_create",
                "replicate",
                422,
                prompt=prompt,
                model=model,
                problems=[p.field for p in problems],
            )
            return invalid_input(problems)
        width, height = clip_shape(schema, given)
        version_id = next(v for v, m in VERSIONS.items() if m == model)
        job = make_job(
            state,
            d,
            credential=bearer_token(request),
            dialect="replicate",
            key=None,  # Replicate takes no idempotency key
            header=header,
            model=model,
            prompt=prompt or "",
            width=width,
            height=height,
            seconds=seconds_of(schema, given),
            size=f"{width}x{height}",
            received={
                "input": dict(given),
                "version_id": version_id,
                "output": schema.output,
                "pinned": pinned,
            },
        )
        pid = prediction_id_of(job)
        wait = _prefer_wait(request.headers.get("prefer"))
        if wait:
            with anyio.move_on_after(wait):
                while not job.snapshot(state.now()).terminal:
                    await anyio.sleep(0.05)
        after = accept_fault(state, d, job.prompt)
        status = 502 if after == "accept_then_5xx" else 201
        detail = {**journal_fields(given), "fault": after, "model": model, "pinned": pinned, "waited": wait}
        state.record("create", "replicate", status, job=pid, prompt=job.prompt, **detail)
        snap = job.snapshot(state.now())
        answer = self.prediction(request, job, snap, self.word(job, snap))
        response = await respond_accepted(state, after, answer)
        if accepted_status(after) == 200 and isinstance(response, JSONResponse):
            response.status_code = 201
        return response

    async def get(self, request: Request) -> Response:
        state, pid = self.state, request.path_params["prediction_id"]
        if not self.authorized(request):
            state.record("poll", "replicate", 401, job=pid)
            return _unauthorized()
        job = self.job_of(pid)
        if job is None:
            state.record("poll", "replicate", 404, job=pid)
            return _not_found()
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "replicate", 500, job=pid, prompt=job.prompt, fault=fault)
            return problem(500, "Internal Server Error", "Something went wrong on our end.")
        job.polls += 1
        snap = job.snapshot(state.now())
        word = self.word(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            word = _UNKNOWN_STATUS
        body = self.prediction(request, job, snap, word)
        state.record("poll", "replicate", 200, job=pid, prompt=job.prompt, fault=fault, reported=word)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def cancel(self, request: Request) -> Response:
        state, pid = self.state, request.path_params["prediction_id"]
        if not self.authorized(request):
            state.record("cancel", "replicate", 401, job=pid)
            return _unauthorized()
        job = self.job_of(pid)
        if job is None:
            state.record("cancel", "replicate", 404, job=pid)
            return _not_found()
        now = state.now()
        was = self.word(job, job.snapshot(now))
        if was in ("starting", "processing"):
            job.stopped_at = now
            outcome = "cancelled"
        else:
            outcome = f"already_{was}"
        snap = job.snapshot(now)
        state.record("cancel", "replicate", 200, job=pid, prompt=job.prompt, was=was, outcome=outcome)
        return JSONResponse(self.prediction(request, job, snap, self.word(job, snap)))

    async def list_predictions(self, request: Request) -> Response:
        state = self.state
        if not self.authorized(request):
            state.record("list", "replicate", 401)
            return _unauthorized()
        params = request.query_params
        try:
            after = _parse_time(params.get("created_after"))
            before = _parse_time(params.get("created_before"))
            offset = int(base64.urlsafe_b64decode(params["cursor"]).decode()) if params.get("cursor") else 0
        except ValueError:
            state.record("list", "replicate", 400, reason="bad filter")
            return problem(400, "Bad request", "created_after, created_before and cursor must be valid.")
        now = state.now()
        rows = [
            job
            for job in reversed(state.jobs.listing("replicate"))  # newest first
            if (after is None or state.unix(job.created) >= after)
            and (before is None or state.unix(job.created) < before)
        ]
        page = rows[offset : offset + PAGE_SIZE]
        results = []
        for job in page:
            snap = job.snapshot(now)
            results.append(self.prediction(request, job, snap, self.word(job, snap)))
        following = None
        if offset + PAGE_SIZE < len(rows):
            query = {k: v for k, v in params.items() if k != "cursor"}
            query["cursor"] = base64.urlsafe_b64encode(str(offset + PAGE_SIZE).encode()).decode()
            following = f"{state.public_base(request)}{API}/predictions?{urlencode(query)}"
        state.record(
            "list",
            "replicate",
            200,
            returned=len(results),
            offset=offset,
            created_after=params.get("created_after"),
        )
        return JSONResponse({"next": following, "previous": None, "results": results})

    async def account(self, request: Request) -> Response:
        if not self.authorized(request):
            self.state.record("account", "replicate", 401)
            return _unauthorized()
        self.state.record("account", "replicate", 200)
        return JSONResponse({"type": "user", "username": "fake", "name": "Fake Upstream", "github_url": None})


def _prefer_wait(header: str | None) -> float:
    """Seconds a `Prefer: wait[=N]` header asks the create to hold its answer (0: none)."""
    if not header:
        return 0.0
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            return (
                float(min(_MAX_WAIT_S, max(1, int(value)))) if value.strip().isdigit() else float(_MAX_WAIT_S)
            )
    return 0.0


def _parse_time(raw: str | None) -> float | None:
    if raw is None:
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _in_replicate_words(fault: str, response: Response) -> Response:
    retry = {k: v for k, v in response.headers.items() if k.startswith("retry-after")}
    if fault == "429":
        out = problem(429, "Request was throttled.", "Request was throttled. Expected available in 1 second.")
        out.headers.update(retry)
        return out
    if fault == "5xx":
        out = problem(503, "Service Unavailable", "The service is temporarily unavailable.")
        out.headers.update(retry)
        return out
    return response


def replicate_routes(state: FakeState) -> list[BaseRoute]:
    h = ReplicateRoutes(state)
    return [
        Route(API + "/models/{owner}/{name}/predictions", h.create_for_model, methods=["POST"]),
        Route(API + "/predictions", h.create_for_version, methods=["POST"]),
        Route(API + "/predictions", h.list_predictions, methods=["GET"]),
        Route(API + "/predictions/{prediction_id}", h.get, methods=["GET"]),
        Route(API + "/predictions/{prediction_id}/cancel", h.cancel, methods=["POST"]),
        Route(API + "/account", h.account, methods=["GET"]),
    ]
