"""Dialect: MiniMax's video generation API (Hailuo), `/v1/video_generation`.

Shapes from MiniMax's API reference (platform.minimax.io/docs: "Video Generation" and its create pages,
"Query Video Generation Task Status", "Download the Video File", "Error Codes") and the official MiniMax-MCP
server (github.com/MiniMax-AI/MiniMax-MCP, `generate_video`, `query_video_generation`); `minimax_input` has
the create rules and the envelope:
- `POST /v1/video_generation` -> `{task_id, base_resp: {status_code: 0, status_msg: "success"}}` (task ids
  are digit strings);
- `GET /v1/query/video_generation?task_id=` -> `{task_id, status: Preparing | Queueing | Processing |
  Success | Fail, file_id (on Success), video_width, video_height, base_resp}`; a failed task carries its
  reason in `base_resp` (1027 for a sensitive output); an unknown task is `base_resp` 2013;
- `GET /v1/files/retrieve?file_id=` -> `{file: {file_id, bytes, created_at, filename, purpose,
  download_url}, base_resp}`: the download URL is a signed `/_fake/files/<task_id>.mp4` on `cdn_base_url`
  (MiniMax's are valid 9 hours); journalled as `file_get`;
- errors: HTTP 200 with a non-zero `base_resp.status_code` (1004 for a missing or wrong key). MiniMax
  has no idempotency key, no task list and no cancel.

Directives: `ready`, `queue` (Preparing, then Queueing), `latency`, `create_latency`, `429=N` (HTTP 429 with
`base_resp` 1002), `http200_error=N` (MiniMax's own shape: HTTP 200, `base_resp` 1002 or the code
`minimax_code=CODE` names, no task), `5xx=N` (HTTP 500, `base_resp` 1000), `accept_then_drop`,
`accept_then_hang`, `accept_then_5xx`, `echo_key` (2013 echoing the key; `echo_key=job`: the task fails with
it), `moderation` (1026 at create; `moderation=job`: the task fails with 1027), `fail=CODE` (+ `fail_jobs`;
a numeric CODE is the `base_resp` code), `poll5xx` (HTTP 500), `poll_hang`, `malformed`, `unknown_status=N`,
`expired_link=N`.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.testing.fake_upstream.creation import accept_fault, accepted_status, respond_accepted
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Outcome, Snapshot, decide_outcome
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.minimax_input import (
    MiniMaxCreate,
    MiniMaxRefusal,
    base_resp,
    journal_detail,
    parse_create,
)
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, bearer_token, retry_headers
from vidgate.testing.fake_upstream.shapes import UNKNOWN_STATUS
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["minimax_routes"]

_NO_KEY: Final = (
    "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
)
_OUTPUT_SENSITIVE: Final = (1027, "output new_sensitive")


class MiniMaxRoutes:
    """Handlers of the MiniMax dialect over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _denied(self, request: Request) -> JSONResponse | None:
        key = self.state.settings.api_key
        if key is None or bearer_token(request) == key:
            return None
        return base_resp(1004, _NO_KEY)

    # create -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        key = request.headers.get("idempotency-key")  # journalled only: MiniMax has none
        if (denied := self._denied(request)) is not None:
            state.record("rejected_create", "minimax", 200, key=key, reason="auth", code=1004)
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        raw = body.get("prompt") if isinstance(body, dict) else None
        prompt = raw if isinstance(raw, str) else None
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if (fault := self._reject_fault(d, prompt, bearer_token(request))) is not None:
            name, response = fault
            state.record(
                "rejected_create", "minimax", response.status_code, key=key, prompt=prompt, fault=name
            )
            return response
        try:
            req = parse_create(body)
        except MiniMaxRefusal as refusal:
            state.record(
                "rejected_create", "minimax", refusal.http, key=key, prompt=prompt, reason=refusal.message
            )
            return refusal.response()
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "minimax", 200, key=key, prompt=req.prompt, fault="moderation")
            return base_resp(1026, "input new_sensitive")
        job = self._make_job(d, req, header, bearer_token(request))
        after = accept_fault(state, d, job.prompt)
        state.record(
            "create",
            "minimax",
            accepted_status(after),
            job=job.id,
            key=key,
            prompt=job.prompt,
            fault=after,
            **journal_detail(req),
        )
        answer = {"task_id": job.id, "base_resp": {"status_code": 0, "status_msg": "success"}}
        return await respond_accepted(state, after, answer)

    def _reject_fault(
        self, d: Directives, prompt: str | None, credential: str | None
    ) -> tuple[str, Response] | None:
        counters = self.state.counters
        retry = retry_headers(d.number("retry_after", 1.0)) if d.has("retry_after") else None
        if counters.fire("429", prompt, d.count("429")):
            return "429", base_resp(1002, "rate limit", http=429, headers=retry)
        if counters.fire("5xx", prompt, d.count("5xx")):
            return "5xx", base_resp(1000, "unknown error", http=500, headers=retry)
        if counters.fire("http200_error", prompt, d.count("http200_error")):
            raw = d.text("minimax_code")
            code = int(raw) if raw and raw.isdigit() else 1002
            return "http200_error", base_resp(code, "rate limit" if code == 1002 else f"error {code}")
        if d.text("echo_key") in (None, "create") and d.has("echo_key") and credential:
            message = (
                f"invalid params, {prompt!r} for key {credential.upper()} ({credential}) is not accepted"
            )
            return "echo_key", base_resp(2013, message)
        return None

    def _make_job(self, d: Directives, req: MiniMaxCreate, header: str | None, credential: str | None) -> Job:
        state = self.state
        ordinal = state.counters.bump("job", req.prompt)
        outcome = Outcome("1027", _OUTPUT_SENSITIVE[1]) if d.text("moderation") == "job" else None
        task_id = str(10**14 + secrets.randbelow(9 * 10**14))
        job = Job(
            id=task_id,
            short_id=task_id,
            dialect="minimax",
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
            size=req.resolution,
            input={"file_id": str(10**14 + secrets.randbelow(9 * 10**14)), **req.body},
            outcome=outcome or decide_outcome(d, ordinal, None, credential),
        )
        state.jobs.add(job, None)
        return job

    # queries ----------------------------------------------------------------------------------

    def _status(self, job: Job, snap: Snapshot) -> str:
        if snap.phase == "queued":
            # Preparing for the first half of the queue, then Queueing.
            return "Preparing" if self.state.now() - job.created < job.queue_s / 2 else "Queueing"
        return {"running": "Processing", "completed": "Success", "failed": "Fail"}[snap.phase]

    async def query(self, request: Request) -> Response:
        state, task_id = self.state, request.query_params.get("task_id", "")
        if (denied := self._denied(request)) is not None:
            state.record("poll", "minimax", 200, job=task_id, reason="auth")
            return denied
        job = state.jobs.get(task_id, "minimax")
        if job is None:
            state.record("poll", "minimax", 200, job=task_id, reported="unknown")
            return base_resp(2013, "invalid params, task_id not found")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "minimax", 500, job=job.id, prompt=job.prompt, fault=fault)
            return base_resp(1000, "unknown error", http=500)
        job.polls += 1
        snap = job.snapshot(state.now())
        status = self._status(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            status = UNKNOWN_STATUS
        body: dict[str, Any] = {"task_id": job.id, "status": status, "file_id": ""}
        code, message = 0, "success"
        if status == "Success":
            body.update(file_id=job.input["file_id"], video_width=job.width, video_height=job.height)
        elif status == "Fail":
            code, message = _failure(snap)
        body["base_resp"] = {"status_code": code, "status_msg": message}
        state.record("poll", "minimax", 200, job=job.id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def retrieve(self, request: Request) -> Response:
        state, file_id = self.state, request.query_params.get("file_id", "")
        if (denied := self._denied(request)) is not None:
            state.record("file_get", "minimax", 200, job=file_id, reason="auth")
            return denied
        job = next((j for j in state.jobs.listing("minimax") if j.input.get("file_id") == file_id), None)
        if job is None or job.snapshot(state.now()).phase != "completed":
            state.record("file_get", "minimax", 200, job=file_id, reported="unknown")
            return base_resp(2013, "invalid params, file_id not found")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        base = state.public_base(request, cdn=True)
        name = f"{job.id}.mp4"
        url = f"{base}/_fake/files/{name}?{issue_link(job, name, state.unix(state.now()))}"
        file = {
            "file_id": int(file_id),
            "bytes": 0,
            "created_at": int(state.unix(job.ends_at)),
            "filename": "output.mp4",
            "purpose": "video_generation",
            "download_url": url,
        }
        state.record(
            "file_get", "minimax", 200, job=job.id, prompt=job.prompt, params=dict(request.query_params)
        )
        return base_resp(0, "success", file=file)


def _failure(snap: Snapshot) -> tuple[int, str]:
    """A failed task's `base_resp`: the code a `fail=CODE` gave (1000 for a word), or 1027."""
    raw = snap.error_code or ""
    if raw == "1027":
        return _OUTPUT_SENSITIVE
    code = int(raw) if raw.isdigit() else 1000
    return code, snap.error_message or "failed"


def minimax_routes(state: FakeState) -> list[BaseRoute]:
    """The `/v1/video_generation`, `/v1/query/video_generation` and `/v1/files/retrieve` routes."""
    h = MiniMaxRoutes(state)
    return [
        Route("/v1/video_generation", h.create, methods=["POST"]),
        Route("/v1/query/video_generation", h.query, methods=["GET"]),
        Route("/v1/files/retrieve", h.retrieve, methods=["GET"]),
    ]
