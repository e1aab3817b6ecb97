"""Dialect 2: the relay "unified video format", `POST /v1/video/create` + `GET /v1/video/query?id=`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vidgate.testing.fake_upstream.creation import (
    accept_fault,
    accepted_status,
    make_job,
    moderation_response,
    reject_fault,
    replayed_job,
    respond_accepted,
)
from vidgate.testing.fake_upstream.directives import HEADER, Directives, parse_directives
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.polling import poll_error, poll_fault
from vidgate.testing.fake_upstream.responses import (
    BadRequest,
    TruncatedJSONResponse,
    bearer_token,
    check_auth,
    openai_error,
)
from vidgate.testing.fake_upstream.shapes import canonical_status, polled_status, progress_value
from vidgate.testing.fake_upstream.state import FakeState
from vidgate.testing.fake_upstream.unified_input import journal_detail, parse_unified

__all__ = ["format_time", "unified_routes"]

# Chinese relays report local times in UTC+8 (research-2 §C4).
_RELAY_ZONE: Final = timezone(timedelta(hours=8))


def format_time(unix: float, default: str, d: Directives) -> int | str:
    """A timestamp as `ts=s|ms|iso|datetime` says, else in the field's usual unit (`default`: s or ms)."""
    style = d.text("ts")
    if style not in ("s", "ms", "iso", "datetime"):
        style = default
    if style == "iso":
        return datetime.fromtimestamp(unix, _RELAY_ZONE).isoformat(timespec="milliseconds")
    if style == "datetime":
        return datetime.fromtimestamp(unix, _RELAY_ZONE).strftime("%Y-%m-%d %H:%M:%S")
    if style == "ms":
        return round(unix * 1000)
    return int(unix)


def wrap(body: dict[str, Any], d: Directives) -> dict[str, Any]:
    """`#envelope`: `{"code": 0, "msg": "success", "data": body}`, as many relays answer."""
    return {"code": 0, "msg": "success", "data": body} if d.has("envelope") else body


class UnifiedRoutes:
    """Handlers of the unified format over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def shown_id(self, job: Job, d: Directives) -> str:
        return job.short_id if d.has("bare_id") else job.id

    def create_body(self, job: Job, d: Directives) -> dict[str, Any]:
        status = canonical_status("unified", "queued")
        at = format_time(self.state.unix(job.created), "ms", d)
        return wrap({"id": self.shown_id(job, d), "status": status, "status_update_time": at}, d)

    def result_links(self, request: Request, job: Job, d: Directives) -> tuple[Any, str]:
        """Freshly signed video and thumbnail URLs (a new signature on every query)."""
        base = self.state.public_base(request, cdn=True)
        unix_now = self.state.unix(self.state.now())
        video = f"{job.short_id}.mp4"
        thumb = f"{job.short_id}.webp"
        video_url = f"{base}/_fake/files/{video}?{issue_link(job, video, unix_now)}"
        thumb_url = f"{base}/_fake/files/{thumb}?{issue_link(job, thumb, unix_now)}"
        return ([video_url] if d.has("url_list") else video_url), thumb_url

    def query_body(
        self, request: Request, job: Job, snap: Snapshot, status: str, d: Directives
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.shown_id(job, d),
            "object": "video",
            "model": job.model,
            "status": status,
            "progress": progress_value(snap.progress, d),
            "created_at": format_time(self.state.unix(job.created), "s", d),
            "status_update_time": format_time(self.state.unix(snap.changed_at), "ms", d),
            "size": job.size,
            "video_url": None,
            "thumbnail_url": None,
            "enhanced_prompt": "",
            "watermarked": None,
            "error": None,
            "fail_reason": None,
            "detail": {"input": job.input},
        }
        if snap.phase == "completed":
            body["video_url"], body["thumbnail_url"] = self.result_links(request, job, d)
            # `hide_watermark`: say nothing about marks, as most relays do.
            body["watermarked"] = None if d.has("hide_watermark") else job.outcome.watermarked
            # Like the Sora pass-through, report the delivered pixels (smaller than "small"/"large" says).
            body["width"], body["height"] = self.state.media.size_for(job.width, job.height)
        elif snap.phase == "failed":
            message = snap.error_message or "failed"
            body["error"] = (
                message if d.has("error_string") else {"code": snap.error_code, "message": message}
            )
            body["fail_reason"] = message
        return body

    async def create(self, request: Request) -> Response:
        state, key, header = self.state, request.headers.get("idempotency-key"), request.headers.get(HEADER)
        if denied := check_auth(request, state.settings.api_key):
            state.record("rejected_create", "unified", 401, key=key, reason="auth")
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = (
            body.get("prompt") if isinstance(body, dict) and isinstance(body.get("prompt"), str) else None
        )
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "unified", bearer_token(request)):
            fault, response = rejected
            state.record(
                "rejected_create", "unified", response.status_code, key=key, prompt=prompt, fault=fault
            )
            return response
        try:
            req = parse_unified(body)
        except BadRequest as exc:
            state.record(
                "rejected_create", "unified", 400, key=key, prompt=prompt, reason=exc.message, param=exc.param
            )
            return exc.response()
        if refused := moderation_response(d):
            state.record("rejected_create", "unified", 400, key=key, prompt=req.prompt, fault="moderation")
            return refused
        detail = journal_detail(req)
        job = replayed_job(state, d, "unified", key)
        op = "duplicate_create" if job else "create"
        if job is None:
            job = make_job(
                state,
                d,
                credential=bearer_token(request),
                dialect="unified",
                key=key,
                header=header,
                model=req.model,
                prompt=req.prompt,
                width=req.width,
                height=req.height,
                seconds=req.duration,
                size=req.size,
                received=req.body,
                watermark=req.watermark,
            )
        after = accept_fault(state, d, job.prompt)
        status = accepted_status(after)
        state.record(op, "unified", status, job=job.id, key=key, prompt=job.prompt, fault=after, **detail)
        return await respond_accepted(state, after, self.create_body(job, d))

    async def query(self, request: Request) -> Response:
        state, wanted = self.state, request.query_params.get("id")
        if denied := check_auth(request, state.settings.api_key):
            state.record("poll", "unified", 401, job=wanted)
            return denied
        if not wanted:
            state.record("poll", "unified", 400)
            return openai_error(
                400, "Missing required parameter: 'id'.", param="id", code="missing_required_parameter"
            )
        # With or without the `<model>:` prefix, and whatever model the client put there (relays key on
        # the task id; a sora-2-pro create may even answer a sora-2: prefix).
        job = state.jobs.get(wanted, "unified") or state.jobs.get(wanted.rpartition(":")[2], "unified")
        if job is None or job.deleted:
            state.record("poll", "unified", 404, job=wanted)
            return openai_error(404, f"Task '{wanted}' not found.", param="id", code="not_found")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "unified", 500, job=job.id, prompt=job.prompt, fault=fault)
            return poll_error()
        job.polls += 1
        snap = job.snapshot(state.now())
        status = polled_status(job, snap.phase, d, state.counters)
        body = wrap(self.query_body(request, job, snap, status, d), d)
        state.record("poll", "unified", 200, job=job.id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def cancel(self, request: Request) -> Response:
        """Relays have no cancel route; a client that calls one is journalled and told so."""
        self.state.record("cancel", "unified", 404, job=request.query_params.get("id"))
        return openai_error(404, "Unknown request URL: this API has no cancel route.")


def unified_routes(state: FakeState) -> list[Route]:
    """The `/v1/video/*` routes."""
    h = UnifiedRoutes(state)
    return [
        Route("/v1/video/create", h.create, methods=["POST"]),
        Route("/v1/video/query", h.query, methods=["GET"]),
        Route("/v1/video/cancel", h.cancel, methods=["POST"]),
    ]
