"""Dialect: Kling AI's official API, `/v1/videos/text2video` and `/v1/videos/image2video`.

Shapes from Kling's developer documentation (app.klingai.com/global/dev/document-api: "API
authentication", "Video Generation - Text to Video", "Video Generation - Image to Video", "Error Code",
"Capability Map"; `kling_input` has the create rules and the envelope):
- `POST /v1/videos/{text2video|image2video}` -> `{code: 0, message: "SUCCEED", request_id, data: {task_id,
  task_status: "submitted", task_info: {external_task_id}, created_at, updated_at}}` (milliseconds). Task
  ids are long digit strings. An `external_task_id` is unique per account: a second create naming one
  Kling already holds is refused (400, 1201; the words of that refusal are not documented: the fake's
  message names `external_task_id`);
- `GET /v1/videos/{route}/{id}`, `id` the task id or the external_task_id given at create, ->
  `{code: 0, data: {task_id, task_status: submitted | processing | succeed | failed, task_status_msg,
  task_info, created_at, updated_at, task_result: {videos: [{id, url, duration}]}}}`; `url` is a link on
  Kling's CDN (here a signed `/_fake/files/<task_id>.mp4` on `cdn_base_url`). An id nobody knows is 404,
  code 1203. A query by external_task_id is journalled as `list` (the lookup a vendor's task list serves
  elsewhere), one by task id as `poll`;
- `GET /v1/videos/{route}?pageNum=&pageSize=` -> `{code: 0, data: [tasks, newest first]}`;
- every route needs the Bearer JWT (`kling_input.check_token`; the fake's `api_key` is the secret key).
  Kling has no cancel for video tasks and ignores `Idempotency-Key` (journalled only).

Directives: `ready`, `queue`, `latency`, `create_latency`, `429=N` (HTTP 429 with code 1302, or the code
`kling_code=CODE` names, e.g. 1102 for a used-up resource pack), `http200_error=N` (Kling's quirk: an HTTP
200 whose `code` is not 0 and which makes no task; code 1303 unless `kling_code` says), `5xx=N` (500,
code 5000), `accept_then_drop`, `accept_then_hang`, `accept_then_5xx`, `echo_key` (400, 1201, the Bearer
token echoed in the message; `echo_key=job`: the task fails with it), `moderation` (400, 1301;
`moderation=job`: the task fails on the risk control, in words), `fail=CODE` (+ `fail_jobs=N`), `poll5xx`
(500, 5000), `poll_hang`, `malformed`, `unknown_status=N`, `expired_link=N`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.testing.fake_upstream.creation import accept_fault, accepted_status, respond_accepted
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Outcome, Snapshot, decide_outcome
from vidgate.testing.fake_upstream.kling_input import (
    KlingCreate,
    KlingRefusal,
    check_token,
    journal_detail,
    kling_error,
    parse_create,
)
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, retry_headers
from vidgate.testing.fake_upstream.shapes import UNKNOWN_STATUS
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["kling_routes"]

ROUTES: Final = ("text2video", "image2video")
_STATUS: Final = {"queued": "submitted", "running": "processing", "completed": "succeed", "failed": "failed"}
RISK_CONTROL: Final = "Failure to pass the risk control system, please modify the content and try again."
_INTERNAL: Final = "Internal server error, please try again later or contact customer service."


def _wants(d: Directives, default: int) -> int:
    raw = d.text("kling_code")
    return int(raw) if raw and raw.isdigit() else default


class KlingRoutes:
    """Handlers of the Kling dialect over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _auth(self, request: Request) -> KlingRefusal | None:
        try:
            check_token(request.headers.get("authorization"), self.state.settings.api_key)
        except KlingRefusal as refusal:
            return refusal
        return None

    def _jobs(self, route: str) -> list[Job]:
        return [j for j in self.state.jobs.listing("kling") if j.input.get("route") == route]

    def _by_external_id(self, external: str) -> Job | None:
        return next(
            (j for j in self.state.jobs.listing("kling") if j.input.get("external_task_id") == external), None
        )

    # create -----------------------------------------------------------------------------------

    async def text2video(self, request: Request) -> Response:
        return await self._create(request, "text2video")

    async def image2video(self, request: Request) -> Response:
        return await self._create(request, "image2video")

    async def _create(self, request: Request, route: str) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        key = request.headers.get("idempotency-key")  # journalled only: Kling has none
        if (refused := self._auth(request)) is not None:
            state.record("rejected_create", "kling", refused.http, key=key, reason="auth", code=refused.code)
            return refused.response()
        try:
            body = await request.json()
        except ValueError:
            body = None
        raw_prompt = body.get("prompt") if isinstance(body, dict) else None
        prompt = raw_prompt if isinstance(raw_prompt, str) else None
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if (fault := self._reject_fault(d, prompt, request)) is not None:
            name, response = fault
            state.record("rejected_create", "kling", response.status_code, key=key, prompt=prompt, fault=name)
            return response
        try:
            req = parse_create(route, body)
        except KlingRefusal as refusal:
            state.record(
                "rejected_create", "kling", refusal.http, key=key, prompt=prompt, reason=refusal.message
            )
            return refusal.response()
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "kling", 400, key=key, prompt=req.prompt, fault="moderation")
            return kling_error(400, 1301, "The content triggered the platform's content safety policy.")
        external = req.external_task_id
        if external is not None and self._by_external_id(external) is not None:
            state.record(
                "rejected_create", "kling", 400, key=key, prompt=req.prompt, reason="external_task_id taken"
            )
            return kling_error(400, 1201, f"Invalid parameter: external_task_id {external} already exists")
        job = self._make_job(d, req, header, request.headers.get("authorization"))
        after = accept_fault(state, d, job.prompt)
        state.record(
            "create",
            "kling",
            accepted_status(after),
            job=job.id,
            key=key,
            prompt=job.prompt,
            fault=after,
            **journal_detail(req),
        )
        now_ms = int(state.unix(job.created) * 1000)
        data = {
            "task_id": job.id,
            "task_status": "submitted",
            "task_info": {"external_task_id": external} if external else {},
            "created_at": now_ms,
            "updated_at": now_ms,
        }
        answer = {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}
        return await respond_accepted(state, after, answer)

    def _reject_fault(
        self, d: Directives, prompt: str | None, request: Request
    ) -> tuple[str, Response] | None:
        """A fault that answers a create with an error and makes no task, in Kling's envelope, counted
        like the other dialects' faults (each only when it fires)."""
        counters = self.state.counters
        retry = retry_headers(d.number("retry_after", 1.0)) if d.has("retry_after") else None
        if counters.fire("429", prompt, d.count("429")):
            code = _wants(d, 1302)
            return "429", kling_error(
                429, code, "The request rate exceeds the platform's limit.", headers=retry
            )
        if counters.fire("5xx", prompt, d.count("5xx")):
            return "5xx", kling_error(500, 5000, _INTERNAL, headers=retry)
        if counters.fire("http200_error", prompt, d.count("http200_error")):
            code = _wants(d, 1303)
            return "http200_error", kling_error(200, code, "Concurrency exceeds the resource pack's limit.")
        if d.text("echo_key") in (None, "create") and d.has("echo_key"):
            _, _, token = (request.headers.get("authorization") or "").partition(" ")
            if token:
                message = f"Invalid parameter for {prompt!r}: token {token} ({token.upper()}) is not accepted"
                return "echo_key", kling_error(400, 1201, message)
        return None

    def _make_job(
        self, d: Directives, req: KlingCreate, header: str | None, authorization: str | None
    ) -> Job:
        """A task with a Kling-like id (a long digit string); its timing and ending are fixed now."""
        state = self.state
        ordinal = state.counters.bump("job", req.prompt)
        credential = (authorization or "").partition(" ")[2].strip() or None
        outcome = (
            Outcome("risk_control", RISK_CONTROL)
            if d.text("moderation") == "job"
            else decide_outcome(d, ordinal, None, credential)
        )
        task_id = str(8 * 10**17 + secrets.randbelow(10**17))
        job = Job(
            id=task_id,
            short_id=task_id,
            dialect="kling",
            seq=state.jobs.next_seq(),
            model=req.model,
            prompt=req.prompt,
            header=header,
            created=state.now(),
            queue_s=d.number("queue", state.settings.queue_seconds),
            ready_s=d.number("ready", state.settings.ready_seconds),
            width=req.width,
            height=req.height,
            seconds=req.duration,
            size=f"{req.resolution} {req.mode}",
            input={"route": req.route, "external_task_id": req.external_task_id, **req.body},
            outcome=outcome,
        )
        state.jobs.add(job, None)
        return job

    # queries ----------------------------------------------------------------------------------

    def task_object(self, request: Request, job: Job, snap: Snapshot, status: str) -> dict[str, Any]:
        state = self.state
        external = job.input.get("external_task_id")
        task: dict[str, Any] = {
            "task_id": job.id,
            "task_status": status,
            "task_status_msg": "",
            "task_info": {"external_task_id": external} if external else {},
            "created_at": int(state.unix(job.created) * 1000),
            "updated_at": int(state.unix(snap.changed_at) * 1000),
        }
        if status == "succeed":
            base = state.public_base(request, cdn=True)
            name = f"{job.id}.mp4"
            url = f"{base}/_fake/files/{name}?{issue_link(job, name, state.unix(state.now()))}"
            video = {"id": f"{job.id}-0", "url": url, "duration": str(job.seconds)}
            task["task_result"] = {"videos": [video]}
            task["final_unit_deduction"] = "1"
        elif status == "failed":
            task["task_status_msg"] = snap.error_message or "The task failed."
        return task

    def _reported(self, job: Job, snap: Snapshot, d: Directives) -> str:
        if self.state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            return UNKNOWN_STATUS
        return _STATUS[snap.phase]

    async def query(self, request: Request, route: str) -> Response:
        state, ident = self.state, request.path_params["ident"]
        by_task = next((j for j in self._jobs(route) if j.id == ident), None)
        job = by_task or next(
            (j for j in self._jobs(route) if j.input.get("external_task_id") == ident), None
        )
        # Kling's task ids are digits: anything else names an external_task_id (a lookup).
        op = "poll" if by_task is not None or ident.isdigit() else "list"
        if (refused := self._auth(request)) is not None:
            state.record(op, "kling", refused.http, job=ident, reason="auth")
            return refused.response()
        if job is None:
            state.record(op, "kling", 404, job=ident, by="task_id" if op == "poll" else "external_task_id")
            return kling_error(404, 1203, f"The task {ident} does not exist")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt) if op == "poll" else None
        if fault == "poll5xx":
            state.record(op, "kling", 500, job=job.id, prompt=job.prompt, fault=fault)
            return kling_error(500, 5000, _INTERNAL)
        if op == "poll":
            job.polls += 1
        snap = job.snapshot(state.now())
        status = self._reported(job, snap, d) if op == "poll" else _STATUS[snap.phase]
        body = {
            "code": 0,
            "message": "SUCCEED",
            "request_id": str(uuid.uuid4()),
            "data": self.task_object(request, job, snap, status),
        }
        state.record(op, "kling", 200, job=job.id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def list_tasks(self, request: Request, route: str) -> Response:
        state = self.state
        if (refused := self._auth(request)) is not None:
            state.record("list", "kling", refused.http, reason="auth")
            return refused.response()
        params = request.query_params
        try:
            page = _page(params.get("pageNum"), "pageNum", 1, 1000)
            size = _page(params.get("pageSize"), "pageSize", 30, 500)
        except KlingRefusal as refusal:
            state.record("list", "kling", refusal.http, reason=refusal.message)
            return refusal.response()
        now = state.now()
        jobs = list(reversed(self._jobs(route)))[(page - 1) * size : page * size]
        data = [
            self.task_object(request, job, snap, _STATUS[snap.phase])
            for job in jobs
            for snap in (job.snapshot(now),)
        ]
        state.record("list", "kling", 200, returned=len(data), route=route)
        return JSONResponse({"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data})


def _page(raw: str | None, name: str, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise KlingRefusal(400, 1201, f"Invalid parameter: {name} must be within [1, {most}]")
    return int(raw)


def kling_routes(state: FakeState) -> list[BaseRoute]:
    """The `/v1/videos/text2video` and `/v1/videos/image2video` routes. They must come before the OpenAI
    dialect's `/v1/videos/{video_id}`, which would take `GET /v1/videos/text2video` for a video's id."""
    h = KlingRoutes(state)
    routes: list[BaseRoute] = [
        Route("/v1/videos/text2video", h.text2video, methods=["POST"]),
        Route("/v1/videos/image2video", h.image2video, methods=["POST"]),
    ]
    for route in ROUTES:
        routes += [
            Route(f"/v1/videos/{route}/{{ident}}", _bound(h.query, route), methods=["GET"]),
            Route(f"/v1/videos/{route}", _bound(h.list_tasks, route), methods=["GET"]),
        ]
    return routes


def _bound(handler: Callable[[Request, str], Awaitable[Response]], route: str) -> Callable[..., Any]:
    """`handler` for one of the two routes (a plain function, as Starlette wants an endpoint)."""

    async def endpoint(request: Request) -> Response:
        return await handler(request, route)

    return endpoint
