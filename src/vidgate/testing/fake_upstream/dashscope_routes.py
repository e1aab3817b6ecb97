"""The DashScope dialect (Alibaba Cloud Model Studio's Wan video models) of the fake upstream.

Shapes follow Model Studio's "Wan text-to-video API reference (2.1-2.6)", "Wan image-to-video: first
frame" and "first and last frames" API references, its "Manage asynchronous tasks" reference (task
query, task list, cancel) and the `dashscope` Python SDK (`dashscope/aigc/video_synthesis.py`,
`dashscope/client/base_api.py`):

- `POST /api/v1/services/aigc/video-generation/video-synthesis` (text-to-video, first-frame
  image-to-video) and `POST /api/v1/services/aigc/image2video/video-synthesis` (first and last frames):
  `{model, input, parameters}` -> `{request_id, output: {task_id, task_status: "PENDING"}}`. They need
  `X-DashScope-Async: enable` (without it: 403 `AccessDenied`, "current user api does not support
  synchronous calls") and validate like DashScope (`dashscope_input`: 400 `InvalidParameter`);
- `GET /api/v1/tasks/{task_id}`: `{request_id, output: {task_id, task_status, submit_time,
  scheduled_time, end_time, video_url, orig_prompt, actual_prompt, code, message}, usage}`; a failed
  job is an HTTP 200 with `output.code`/`output.message`; an id nobody knows is `UNKNOWN` (DashScope
  forgets task ids after 24 h); `orig_prompt` appears once the job has succeeded; times are UTC+8
  without an offset, as DashScope writes them;
- `POST /api/v1/tasks/{task_id}/cancel`: stops a PENDING job; anything else is 400
  `UnsupportedOperation`;
- `GET /api/v1/tasks/` (or without the slash): the account's jobs, newest first, filtered by
  `model_name`, `status`, `task_id` and `start_time`/`end_time` (`YYYYMMDDhhmmss`, UTC+8, a window of
  at most 24 h, the last 24 h by default), paged by `page_no`/`page_size`; each item names its model,
  status and creation time (`gmt_create`, Unix ms), never its prompt.

Errors outside a task are `{request_id, code, message}`: 401 `InvalidApiKey` for a missing or wrong
Bearer key. `video_url` is a signed, expiring link to `/_fake/files/<task_id>.mp4` on `cdn_base_url`,
as DashScope's OSS links are.

Directives (see the package docstring): `429=N` (429 `Throttling.RateQuota`), `5xx=N` (500
`InternalError`), `http200_error=N` (an HTTP 200 carrying `Throttling.AllocationQuota` and no task, as
DashScope sometimes answers), `echo_key`, `moderation` (400 `DataInspectionFailed`; `moderation=job`:
the job fails so), `fail=CODE` (the job ends FAILED with that `output.code`), the accept faults, the
poll faults, `unknown_status=N`, `ready`, `queue`, `latency`, `create_latency` and `expired_link=N`.
Every create is journalled with what it carried (`dashscope_input.journal_detail`).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.testing.fake_upstream.creation import accept_fault, accepted_status, respond_accepted
from vidgate.testing.fake_upstream.dashscope_input import (
    DashScopeRequest,
    InvalidParameter,
    journal_detail,
    parse_dashscope,
)
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Outcome, Snapshot, decide_outcome
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, bearer_token, retry_headers
from vidgate.testing.fake_upstream.shapes import UNKNOWN_STATUS
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["dashscope_routes"]

# DashScope writes its times in China Standard Time, without saying so.
_CST: Final = timezone(timedelta(hours=8))
_LIST_TIME: Final = "%Y%m%d%H%M%S"
_DAY_S: Final = 24 * 3600
_SYNC_REFUSED: Final = "current user api does not support synchronous calls"
_CANCEL_REFUSED: Final = "Failed to cancel the task, please confirm if the task is in PENDING status."
_INPUT_BLOCKED: Final = "Input data may contain inappropriate content."
_OUTPUT_BLOCKED: Final = "Output data may contain inappropriate content."
_STATUS: Final = {"queued": "PENDING", "running": "RUNNING", "completed": "SUCCEEDED", "failed": "FAILED"}


def dashscope_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """`{request_id, code, message}`, DashScope's envelope for an error outside a task."""
    body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _cst(unix: float) -> str:
    """`2025-07-27 21:05:15.212`, in UTC+8."""
    return datetime.fromtimestamp(unix, _CST).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _reported(job: Job, snap: Snapshot) -> str:
    if snap.phase == "failed" and job.stopped_at is not None and snap.error_code == "cancelled":
        return "CANCELED"
    return _STATUS[snap.phase]


class DashScopeRoutes:
    """Handlers of the DashScope dialect over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _denied(self, request: Request) -> JSONResponse | None:
        key = self.state.settings.api_key
        if key is None or bearer_token(request) == key:
            return None
        return dashscope_error(401, "InvalidApiKey", "Invalid API-key provided.")

    # create -----------------------------------------------------------------------------------

    async def create_video_generation(self, request: Request) -> Response:
        return await self._create(request, "video-generation")

    async def create_image2video(self, request: Request) -> Response:
        return await self._create(request, "image2video")

    async def _create(self, request: Request, route: str) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        if denied := self._denied(request):
            state.record("rejected_create", "dashscope", 401, reason="auth", route=route)
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        inputs = body.get("input") if isinstance(body, dict) else None
        raw_prompt = inputs.get("prompt") if isinstance(inputs, dict) else None
        prompt = raw_prompt if isinstance(raw_prompt, str) else None
        if request.headers.get("x-dashscope-async", "").lower() != "enable":
            state.record(
                "rejected_create", "dashscope", 403, prompt=prompt, reason="synchronous", route=route
            )
            return dashscope_error(403, "AccessDenied", _SYNC_REFUSED)
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := self._reject_fault(d, prompt, bearer_token(request)):
            fault, response = rejected
            state.record(
                "rejected_create", "dashscope", response.status_code, prompt=prompt, fault=fault, route=route
            )
            return response
        try:
            req = parse_dashscope(body, "kf2v" if route == "image2video" else "t2v")
        except InvalidParameter as exc:
            state.record("rejected_create", "dashscope", 400, prompt=prompt, reason=exc.message, route=route)
            return dashscope_error(400, "InvalidParameter", exc.message)
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "dashscope", 400, prompt=req.prompt, fault="moderation")
            return dashscope_error(400, "DataInspectionFailed", _INPUT_BLOCKED)
        job = self._make_job(d, req, header, bearer_token(request))
        after = accept_fault(state, d, job.prompt)
        detail = journal_detail(req)
        state.record(
            "create",
            "dashscope",
            accepted_status(after),
            job=job.id,
            prompt=job.prompt,
            fault=after,
            **detail,
        )
        answer = {"request_id": str(uuid.uuid4()), "output": {"task_id": job.id, "task_status": "PENDING"}}
        return await respond_accepted(state, after, answer)

    def _reject_fault(
        self, d: Directives, prompt: str | None, credential: str | None
    ) -> tuple[str, Response] | None:
        """A fault that answers a create with an error and makes no job, in DashScope's envelope: the
        same directives, counted the same way, as the other dialects' `reject_fault`."""
        counters = self.state.counters
        retry = retry_headers(d.number("retry_after", 1.0)) if d.has("retry_after") else None
        if counters.fire("429", prompt, d.count("429")):
            message = "Requests rate limit exceeded, please try again later."
            return "429", dashscope_error(429, "Throttling.RateQuota", message, retry)
        if counters.fire("5xx", prompt, d.count("5xx")):
            message = "An internal error has occured, please try again later or contact service support."
            return "5xx", dashscope_error(500, "InternalError", message, retry)
        if counters.fire("http200_error", prompt, d.count("http200_error")):
            message = "Allocated quota exceeded, please increase your quota limit."
            return "http200_error", dashscope_error(200, "Throttling.AllocationQuota", message)
        if d.text("echo_key") in (None, "create") and d.has("echo_key") and credential:
            message = f"Could not process {prompt!r} for key {credential.upper()}: Invalid API-key provided."
            return "echo_key", dashscope_error(400, credential, message)
        return None

    def _make_job(
        self, d: Directives, req: DashScopeRequest, header: str | None, credential: str | None
    ) -> Job:
        """A job with a DashScope task id (a UUID); its timing and ending are fixed now. DashScope has
        no idempotency key: every create that gets this far is a new job."""
        state = self.state
        ordinal = state.counters.bump("job", req.prompt)
        outcome = (
            Outcome("DataInspectionFailed", _OUTPUT_BLOCKED)
            if d.text("moderation") == "job"
            else decide_outcome(d, ordinal, None, credential)
        )
        task_id = str(uuid.uuid4())
        job = Job(
            id=task_id,
            short_id=task_id,
            dialect="dashscope",
            seq=state.jobs.next_seq(),
            model=req.model.name,
            prompt=req.prompt,
            header=header,
            created=state.now(),
            queue_s=d.number("queue", state.settings.queue_seconds),
            ready_s=d.number("ready", state.settings.ready_seconds),
            width=req.width,
            height=req.height,
            seconds=req.duration,
            size=req.size or str(req.resolution),
            input=req.body,
            outcome=outcome,
        )
        state.jobs.add(job, None)
        return job

    # query ------------------------------------------------------------------------------------

    def _output(self, request: Request, job: Job, snap: Snapshot, status: str) -> dict[str, Any]:
        state = self.state
        output: dict[str, Any] = {
            "task_id": job.id,
            "task_status": status,
            "submit_time": _cst(state.unix(job.created)),
        }
        if snap.phase != "queued":
            output["scheduled_time"] = _cst(state.unix(job.created + job.queue_s))
        if snap.finished_at is not None:
            output["end_time"] = _cst(state.unix(snap.finished_at))
        if snap.phase == "completed":
            base = state.public_base(request, cdn=True)
            name = f"{job.id}.mp4"
            output["video_url"] = (
                f"{base}/_fake/files/{name}?{issue_link(job, name, state.unix(state.now()))}"
            )
            output["orig_prompt"] = job.prompt
            parameters = job.input.get("parameters") or {}
            if parameters.get("prompt_extend", True):
                output["actual_prompt"] = f"{job.prompt} (rewritten for detail)"
        elif status == "FAILED":
            output["code"] = snap.error_code
            output["message"] = snap.error_message
        return output

    async def query(self, request: Request) -> Response:
        state, task_id = self.state, request.path_params["task_id"]
        if denied := self._denied(request):
            state.record("poll", "dashscope", 401, job=task_id)
            return denied
        job = state.jobs.get(task_id, "dashscope")
        if job is None:
            state.record("poll", "dashscope", 200, job=task_id, reported="UNKNOWN")
            unknown = {"task_id": task_id, "task_status": "UNKNOWN"}
            return JSONResponse({"request_id": str(uuid.uuid4()), "output": unknown})
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "dashscope", 500, job=job.id, prompt=job.prompt, fault=fault)
            message = "An internal error has occured, please try again later or contact service support."
            return dashscope_error(500, "InternalError", message)
        job.polls += 1
        snap = job.snapshot(state.now())
        status = _reported(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            status = UNKNOWN_STATUS
        body: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "output": self._output(request, job, snap, status),
        }
        if snap.phase == "completed":
            body["usage"] = {
                "video_duration": job.seconds,
                "video_ratio": job.size if "*" in job.size else f"{job.width}*{job.height}",
                "video_count": 1,
            }
        state.record("poll", "dashscope", 200, job=job.id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def cancel(self, request: Request) -> Response:
        state, task_id = self.state, request.path_params["task_id"]
        if denied := self._denied(request):
            state.record("cancel", "dashscope", 401, job=task_id)
            return denied
        job = state.jobs.get(task_id, "dashscope")
        now = state.now()
        if job is None or job.snapshot(now).phase != "queued":
            phase = job.snapshot(now).phase if job else "unknown"
            state.record(
                "cancel", "dashscope", 400, job=task_id, prompt=job.prompt if job else None, phase=phase
            )
            return dashscope_error(400, "UnsupportedOperation", _CANCEL_REFUSED)
        job.stopped_at = now
        state.record("cancel", "dashscope", 200, job=job.id, prompt=job.prompt, phase="queued")
        return JSONResponse({"request_id": str(uuid.uuid4())})

    # list -------------------------------------------------------------------------------------

    def _window(self, start: str | None, end: str | None) -> tuple[float, float]:
        """(from, to) in Unix seconds: at most a day, the last day by default."""

        def read(text: str, name: str) -> float:
            try:
                return datetime.strptime(text, _LIST_TIME).replace(tzinfo=_CST).timestamp()
            except ValueError as exc:
                raise InvalidParameter(f"{name} must be YYYYMMDDhhmmss; got {text!r}.") from exc

        if start is None and end is None:
            now = self.state.unix(self.state.now())
            return now - _DAY_S, now
        low = read(start, "start_time") if start is not None else read(str(end), "end_time") - _DAY_S
        high = read(end, "end_time") if end is not None else low + _DAY_S
        if high - low > _DAY_S:
            raise InvalidParameter("The time range between start_time and end_time must not exceed 24 hours.")
        return low, high

    def _item(self, job: Job, snap: Snapshot, status: str) -> dict[str, Any]:
        unix = self.state.unix
        route = "image2video" if "kf2v" in job.model else "video-generation"
        item: dict[str, Any] = {
            "api_key_id": "1001",
            "caller_parent_id": "1000000000000000",
            "caller_uid": "1000000000000000",
            "gmt_create": round(unix(job.created) * 1000),
            "model_name": job.model,
            "region": "ap-southeast-1",
            "request_id": str(uuid.UUID(int=job.seq)),
            "status": status,
            "task_id": job.id,
            "user_api_unique_key": f"apikey:v1:aigc:{route}:video-synthesis:{job.model}",
        }
        if snap.phase != "queued":
            item["start_time"] = round(unix(job.created + job.queue_s) * 1000)
        if snap.finished_at is not None:
            item["end_time"] = round(unix(snap.finished_at) * 1000)
        return item

    async def list_tasks(self, request: Request) -> Response:
        state, params = self.state, request.query_params
        if denied := self._denied(request):
            state.record("list", "dashscope", 401)
            return denied
        try:
            low, high = self._window(params.get("start_time"), params.get("end_time"))
            page_no = int(params.get("page_no", "1"))
            page_size = int(params.get("page_size", "10"))
        except InvalidParameter as exc:
            state.record("list", "dashscope", 400, reason=exc.message)
            return dashscope_error(400, "InvalidParameter", exc.message)
        except ValueError:
            state.record("list", "dashscope", 400, reason="paging")
            return dashscope_error(400, "InvalidParameter", "page_no and page_size must be integers.")
        if page_no < 1 or not 1 <= page_size <= 100:
            state.record("list", "dashscope", 400, reason="paging")
            return dashscope_error(400, "InvalidParameter", "page_no must be >= 1, page_size in [1, 100].")
        now = state.now()
        items = []
        for job in reversed(state.jobs.listing("dashscope")):  # newest first
            snap = job.snapshot(now)
            item = self._item(job, snap, _reported(job, snap))
            if not low <= state.unix(job.created) <= high:
                continue
            if any(
                params.get(name) not in (None, item[key])
                for name, key in (("model_name", "model_name"), ("status", "status"), ("task_id", "task_id"))
            ):
                continue
            items.append(item)
        page = items[(page_no - 1) * page_size : page_no * page_size]
        state.record(
            "list",
            "dashscope",
            200,
            model_name=params.get("model_name"),
            page_no=page_no,
            page_size=page_size,
            returned=len(page),
        )
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "data": page,
                "total": len(items),
                "total_page": math.ceil(len(items) / page_size),
                "page_no": page_no,
                "page_size": page_size,
            }
        )


def dashscope_routes(state: FakeState) -> list[BaseRoute]:
    """The `/api/v1/...` routes of DashScope's video-synthesis and task APIs."""
    h = DashScopeRoutes(state)
    return [
        Route(
            "/api/v1/services/aigc/video-generation/video-synthesis",
            h.create_video_generation,
            methods=["POST"],
        ),
        Route("/api/v1/services/aigc/image2video/video-synthesis", h.create_image2video, methods=["POST"]),
        Route("/api/v1/tasks", h.list_tasks, methods=["GET"]),
        Route("/api/v1/tasks/", h.list_tasks, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}", h.query, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}/cancel", h.cancel, methods=["POST"]),
    ]
