"""Dialect: Seedance through Volcengine Ark / BytePlus ModelArk, `/api/v3/contents/generations/tasks`.

Shapes, each from public pages (none copied; see `seedance_input` for the create body's rules):
- `POST .../tasks` -> `{"id": "cgt-..."}`; `GET .../tasks/{id}` -> the task: `id`, `model`, `status`
  (`queued`, `running`, `succeeded`, `failed`, `cancelled`, `expired`), `content.video_url` (a presigned
  link that expires: here a signed `/_fake/files/<task>.mp4` link on `cdn_base_url`, with
  `content.last_frame_url` when `return_last_frame` was asked), `error: {code, message}`, `usage`
  (`completion_tokens` = width x height x fps x seconds / 1024, as Ark bills), `created_at`,
  `updated_at` (Unix seconds), `seed` (the one used: a random one when none was sent), `resolution`,
  `ratio`, `duration`, `framespersecond`, `generate_audio`, `service_tier`, `execution_expires_after`:
  BytePlus ModelArk "Video Generation API" and its "query a task" page (docs.byteplus.com/docs/ModelArk/
  1520757 and the pages beside it), Volcengine Ark 视频生成 API, and the `volcenginesdkarkruntime` SDK's
  `ContentGenerationTask`;
- `GET .../tasks?page_num=&page_size=&filter.status=&filter.task_ids=&filter.model=&filter.service_tier=`
  -> `{"items": [...], "total": N}`, newest first, the last 7 days only, page_num and page_size 1..500
  (ModelArk "Query video generation task list"; the SDK's `tasks.list`);
- `DELETE .../tasks/{id}`: a queued task is cancelled (status `cancelled`), a succeeded, failed or expired
  one's record is deleted (404 from then on); a running or cancelled one cannot be (ModelArk "Cancel or
  delete video generation task"). The refusal's shape is not documented: the fake answers 400
  `InvalidParameter` naming the status;
- errors in Ark's envelope, 401 `AuthenticationError` for a missing or wrong key. Ark has no idempotency
  key: every create is a new task, whatever headers it carries.

Directives, as for the other dialects: `ready`, `queue`, `latency`, `create_latency`, `429` (Ark code from
`ark_429=CODE`, default `RateLimitExceeded.EndpointRPMExceeded`; e.g. `#ark_429=QuotaExceeded`), `5xx` (500
`InternalServiceError`), `accept_then_drop`, `accept_then_hang`, `accept_then_5xx`, `echo_key`,
`moderation` (400 `InputTextSensitiveContentDetected` at create; `moderation=image`: 400
`InputImageSensitiveContentDetected`; `moderation=job`: the task fails with
`OutputVideoSensitiveContentDetected`), `fail=CODE` (+ `fail_jobs=N`), `poll5xx`, `poll_hang`,
`malformed`, `unknown_status=N`, `expired_link=N` (the CDN link answers 403, for good: a fresh poll issues
a new one).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

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
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, bearer_token
from vidgate.testing.fake_upstream.seedance_input import (
    ArkCreate,
    ArkError,
    ark_error,
    journal_detail,
    parse_create,
)
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["seedance_routes"]

BASE: Final = "/api/v3/contents/generations/tasks"
FPS: Final = 24
LIST_DAYS: Final = 7
_ID_PREFIX: Final = "cgt-"
_SHORT_PREFIX: Final = "task_"
_STATUSES: Final = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
_UNKNOWN_STATUS: Final = "warming_up"
_MODERATION_CODES: Final = {
    "image": ("InputImageSensitiveContentDetected", "The request failed because the input image may "
              "contain sensitive information."),
    None: ("InputTextSensitiveContentDetected", "The request failed because the input text may contain "
           "sensitive information."),
}  # fmt: skip
_OUTPUT_MODERATION: Final = (
    "OutputVideoSensitiveContentDetected",
    "The request failed because the output video may contain sensitive information.",
)


def wire_id(job: Job) -> str:
    """Ark's `cgt-...` id for a job (the job's short id, re-prefixed)."""
    return _ID_PREFIX + job.short_id.removeprefix(_SHORT_PREFIX)


def _auth(request: Request, api_key: str | None) -> Response | None:
    if api_key is None or bearer_token(request) == api_key:
        return None
    return ark_error(401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid.")


def _not_found(task_id: str) -> Response:
    return ark_error(404, "ResourceNotFound", f"The specified task {task_id} is not found.", "id")


def _seed_used(job: Job) -> int:
    """The seed sent, or the "random" one Ark reports when none (or -1) was sent: fixed per job."""
    sent = job.input.get("seed")
    if isinstance(sent, int) and not isinstance(sent, bool) and sent >= 0:
        return sent
    return int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big")


class SeedanceRoutes:
    """Handlers of the Ark task routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def job_of(self, task_id: str) -> Job | None:
        if not task_id.startswith(_ID_PREFIX):
            return None
        job = self.state.jobs.get(_SHORT_PREFIX + task_id.removeprefix(_ID_PREFIX), "seedance")
        return None if job is None or job.deleted else job

    # shapes -----------------------------------------------------------------------------------

    def status_word(self, job: Job, snap: Snapshot) -> str:
        if snap.phase == "completed":
            return "succeeded"
        if snap.phase == "failed":
            stopped = job.stopped_at is not None and snap.error_code == "cancelled"
            return "cancelled" if stopped else "failed"
        return snap.phase  # queued, running

    def task_object(self, request: Request, job: Job, snap: Snapshot, status: str) -> dict[str, Any]:
        sent = job.input
        body: dict[str, Any] = {
            "id": wire_id(job),
            "model": job.model,
            "status": status,
            "created_at": int(self.state.unix(job.created)),
            "updated_at": int(self.state.unix(snap.changed_at)),
            "seed": _seed_used(job),
            "resolution": sent["resolution_made"],
            "ratio": sent["ratio_made"],
            "duration": job.seconds,
            "framespersecond": FPS,
            "service_tier": sent.get("service_tier") or "default",
            "execution_expires_after": sent.get("execution_expires_after") or 172800,
            "draft": False,
            "error": None,
        }
        if job.input.get("audio_model"):
            body["generate_audio"] = sent.get("generate_audio", True)
        if status == "succeeded":
            base = self.state.public_base(request, cdn=True)
            unix_now = self.state.unix(self.state.now())
            video = f"{job.short_id}.mp4"
            content = {"video_url": f"{base}/_fake/files/{video}?{issue_link(job, video, unix_now)}"}
            if sent.get("return_last_frame"):
                frame = f"{job.short_id}.webp"
                content["last_frame_url"] = f"{base}/_fake/files/{frame}?{issue_link(job, frame, unix_now)}"
            body["content"] = content
            tokens = job.width * job.height * FPS * job.seconds // 1024
            body["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        elif status == "failed":
            code, message = snap.error_code or "InternalServiceError", snap.error_message or "failed"
            if code == "moderation_blocked":  # the shared `moderation=job` outcome, in Ark's words
                code, message = _OUTPUT_MODERATION
            body["error"] = {"code": code, "message": message}
        return body

    # routes -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        key = request.headers.get("idempotency-key")  # journalled only: Ark has no idempotency key
        if denied := _auth(request, state.settings.api_key):
            state.record("rejected_create", "seedance", 401, key=key, reason="auth")
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = _text_of(body)
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "seedance", bearer_token(request)):
            fault, response = rejected
            response = _in_ark_words(fault, response, d)
            state.record(
                "rejected_create", "seedance", response.status_code, key=key, prompt=prompt, fault=fault
            )
            return response
        try:
            req = parse_create(body)
        except ArkError as exc:
            state.record(
                "rejected_create",
                "seedance",
                exc.status,
                key=key,
                prompt=prompt,
                reason=exc.message,
                code=exc.code,
                param=exc.param,
            )
            return exc.response()
        if d.has("moderation") and d.text("moderation") != "job":
            code, message = _MODERATION_CODES.get(d.text("moderation"), _MODERATION_CODES[None])
            state.record("rejected_create", "seedance", 400, key=key, prompt=req.text, fault="moderation")
            return ark_error(400, code, message)
        detail = journal_detail(req)
        job = make_job(
            state,
            d,
            credential=bearer_token(request),
            dialect="seedance",
            key=None,  # never found again by a key: every create is a new task
            header=header,
            model=req.model,
            prompt=req.text,
            width=req.width,
            height=req.height,
            seconds=req.duration,
            size=f"{req.resolution}/{req.ratio}",
            received=_received(req),
        )
        after = accept_fault(state, d, job.prompt)
        status = accepted_status(after)
        state.record(
            "create", "seedance", status, job=wire_id(job), key=key, prompt=job.prompt, fault=after, **detail
        )
        return await respond_accepted(state, after, {"id": wire_id(job)})

    async def retrieve(self, request: Request) -> Response:
        state, task_id = self.state, request.path_params["task_id"]
        if denied := _auth(request, state.settings.api_key):
            state.record("poll", "seedance", 401, job=task_id)
            return denied
        job = self.job_of(task_id)
        if job is None:
            state.record("poll", "seedance", 404, job=task_id)
            return _not_found(task_id)
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "seedance", 500, job=task_id, prompt=job.prompt, fault=fault)
            return ark_error(500, "InternalServiceError", "The service encountered an unexpected error.")
        job.polls += 1
        snap = job.snapshot(state.now())
        status = self.status_word(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            status = _UNKNOWN_STATUS
        body = self.task_object(request, job, snap, status)
        state.record("poll", "seedance", 200, job=task_id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def list_tasks(self, request: Request) -> Response:
        state = self.state
        if denied := _auth(request, state.settings.api_key):
            state.record("list", "seedance", 401)
            return denied
        params = request.query_params
        try:
            page_num = _page_param(params.get("page_num"), "page_num", 1)
            page_size = _page_param(params.get("page_size"), "page_size", 10)
            status = params.get("filter.status")
            if status is not None and status not in _STATUSES:
                raise ArkError(400, "InvalidParameter", "filter.status is not valid.", "filter.status")
        except ArkError as exc:
            state.record("list", "seedance", exc.status, reason=exc.message)
            return exc.response()
        wanted_ids = set(params.getlist("filter.task_ids"))
        model = params.get("filter.model")
        tier = params.get("filter.service_tier")
        now = state.now()
        since = state.unix(now) - LIST_DAYS * 86400
        rows: list[tuple[Job, Snapshot, str]] = []
        for job in reversed(state.jobs.listing("seedance")):  # newest first
            if job.deleted or state.unix(job.created) < since:
                continue
            snap = job.snapshot(now)
            word = self.status_word(job, snap)
            if (
                (status is not None and word != status)
                or (wanted_ids and wire_id(job) not in wanted_ids)
                or (model is not None and job.model != model)
                or (tier is not None and (job.input.get("service_tier") or "default") != tier)
            ):
                continue
            rows.append((job, snap, word))
        page = rows[(page_num - 1) * page_size : page_num * page_size]
        items = [self.task_object(request, job, snap, word) for job, snap, word in page]
        state.record(
            "list", "seedance", 200, returned=len(items), page_num=page_num, page_size=page_size, model=model
        )
        return JSONResponse({"items": items, "total": len(rows)})

    async def delete(self, request: Request) -> Response:
        state, task_id = self.state, request.path_params["task_id"]
        if denied := _auth(request, state.settings.api_key):
            state.record("delete", "seedance", 401, job=task_id)
            return denied
        job = self.job_of(task_id)
        if job is None:
            state.record("delete", "seedance", 404, job=task_id)
            return _not_found(task_id)
        now = state.now()
        was = self.status_word(job, job.snapshot(now))
        if was in ("running", "cancelled"):
            state.record("delete", "seedance", 400, job=task_id, prompt=job.prompt, was=was)
            return ark_error(
                400,
                "InvalidParameter",
                f"The task {task_id} cannot be cancelled or deleted while its status is {was}.",
                "id",
            )
        if was == "queued":
            job.stopped_at = now  # cancelled: it never runs
            outcome = "cancelled"
        else:
            job.deleted = True  # succeeded, failed, expired: the record goes
            outcome = "deleted"
        state.record("delete", "seedance", 200, job=task_id, prompt=job.prompt, was=was, outcome=outcome)
        return JSONResponse({})


def _text_of(body: Any) -> str | None:
    """The prompt (the text item of `content`), for directives and the journal, before any validation."""
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        return None
    for item in content:
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            return str(item["text"])
    return None


def _in_ark_words(fault: str, response: Response, d: Directives) -> Response:
    """The shared create faults, answered in Ark's envelope and codes (`echo_key` keeps its own: its body
    has Ark's shape already, the caller's key in the code, type and message)."""
    retry = {k: v for k, v in response.headers.items() if k.startswith("retry-after")}
    if fault == "429":
        code = d.text("ark_429") or "RateLimitExceeded.EndpointRPMExceeded"
        return ark_error(429, code, "The request was throttled: the account's limit has been reached.",
                         headers=retry)  # fmt: skip
    if fault == "5xx":
        return ark_error(500, "InternalServiceError", "The service encountered an unexpected internal error.",
                         headers=retry)  # fmt: skip
    return response


def _page_param(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ArkError(400, "InvalidParameter", f"{name} must be between 1 and 500.", name)
    return int(raw)


def _received(req: ArkCreate) -> dict[str, Any]:
    """What the job keeps of its create: the parameters as sent, and what Ark made of the defaults."""
    kept = {k: v for k, v in req.body.items() if k != "content"}
    kept["resolution_made"] = req.resolution
    kept["ratio_made"] = "16:9" if req.ratio == "adaptive" else req.ratio
    kept["audio_model"] = req.rules.audio
    kept["roles"] = [role for role, _ in req.images]
    return kept


def seedance_routes(state: FakeState) -> list[BaseRoute]:
    """The `/api/v3/contents/generations/tasks` routes."""
    h = SeedanceRoutes(state)
    return [
        Route(BASE, h.create, methods=["POST"]),
        Route(BASE, h.list_tasks, methods=["GET"]),
        Route(BASE + "/{task_id}", h.retrieve, methods=["GET"]),
        Route(BASE + "/{task_id}", h.delete, methods=["DELETE"]),
    ]
