"""Dialect 1: the OpenAI Videos API (`/v1/videos`), as `openai-python`'s `client.videos` calls it and as
vLLM-Omni serves it."""

from __future__ import annotations

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
from vidgate.testing.fake_upstream.media import CONTENT_TYPES, VARIANTS, Variant
from vidgate.testing.fake_upstream.openai_input import read_video_request, reference_size, validate
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

__all__ = ["openai_routes"]

ASSET_TTL_SECONDS: Final = 3600  # expires_at = completed_at + this, as OpenAI sets it
_MAX_LIST: Final = 100


def _not_found(video_id: str) -> JSONResponse:
    return openai_error(404, f"Video with id '{video_id}' not found.", param="video_id", code="not_found")


def _litellm_list_error() -> JSONResponse:
    """LiteLLM's proxy answer to `GET /v1/videos` without a provider (BerriAI/litellm#22130: its
    `avideo_list` resolves the provider from an empty model), in its ProxyException envelope."""
    message = (
        "litellm.BadRequestError: LLM Provider NOT provided. Pass in the LLM provider you are trying to "
        "call. You passed model="
    )
    return JSONResponse(
        {"error": {"message": message, "type": None, "param": None, "code": "400"}}, status_code=400
    )


def _served_variant(variant: Variant, d: Directives) -> tuple[Variant, dict[str, str]]:
    """What `.../content?variant=` serves: (the bytes' variant, response headers). `thumbnail_is_video`:
    the whole MP4 for the thumbnail, labelled video/mp4 as LiteLLM's proxy does (its content route takes
    no variant: litellm/proxy/video_endpoints/endpoints.py), or `=octet`: application/octet-stream, as a
    proxy or object store in front may relabel it, so only the body's first bytes tell."""
    if variant != "thumbnail" or not d.has("thumbnail_is_video"):
        return variant, {"content-type": CONTENT_TYPES[variant]}
    label = "application/octet-stream" if d.text("thumbnail_is_video") == "octet" else "video/mp4"
    return "video", {"content-type": label, "content-disposition": "attachment; filename=video.mp4"}


class OpenAIRoutes:
    """Handlers of the `/v1/videos` family over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    # Shared pieces ----------------------------------------------------------------------------

    def video_object(
        self, job: Job, snap: Snapshot, status: str | None = None, d: Directives | None = None
    ) -> dict[str, Any]:
        """The `Video` object; `status` is the word to report when shape directives change it."""
        finished = snap.finished_at if snap.phase == "completed" else None
        completed_at = int(self.state.unix(finished)) if finished is not None else None
        error = {"code": snap.error_code, "message": snap.error_message} if snap.phase == "failed" else None
        return {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": status or canonical_status("openai", snap.phase),
            "progress": progress_value(snap.progress, d) if d else snap.progress,
            "created_at": int(self.state.unix(job.created)),
            "completed_at": completed_at,
            "expires_at": completed_at + ASSET_TTL_SECONDS if completed_at is not None else None,
            "prompt": job.prompt,
            "seconds": str(job.seconds),
            "size": job.size,
            "remixed_from_video_id": job.remixed_from,
            "error": error,
        }

    def queued_object(self, job: Job) -> dict[str, Any]:
        """What a create answers: the job just accepted, queued (whatever its timing)."""
        return self.video_object(job, Snapshot("queued", 0, job.created, None), "queued")

    def live_job(self, video_id: str) -> Job | None:
        job = self.state.jobs.get(video_id, "openai")
        return None if job is None or job.deleted else job

    async def _accept(self, job: Job, d: Directives, op: str, key: str | None, **detail: Any) -> Response:
        fault = accept_fault(self.state, d, job.prompt)
        status = accepted_status(fault)
        self.state.record(op, "openai", status, job=job.id, key=key, prompt=job.prompt, fault=fault, **detail)
        return await respond_accepted(self.state, fault, self.queued_object(job))

    # Routes -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        state, key, header = self.state, request.headers.get("idempotency-key"), request.headers.get(HEADER)
        if denied := check_auth(request, state.settings.api_key):
            state.record("rejected_create", "openai", 401, key=key, reason="auth")
            return denied
        try:
            form = await read_video_request(request)
        except BadRequest as exc:
            state.record("rejected_create", "openai", 400, key=key, reason=exc.message, param=exc.param)
            return exc.response()
        prompt = form.prompt if isinstance(form.prompt, str) else None
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "openai", bearer_token(request)):
            fault, response = rejected
            state.record(
                "rejected_create", "openai", response.status_code, key=key, prompt=prompt, fault=fault
            )
            return response
        try:
            valid = validate(form)
            ref_size = await reference_size(form, valid.width, valid.height)
        except BadRequest as exc:
            state.record(
                "rejected_create", "openai", 400, key=key, prompt=prompt, reason=exc.message, param=exc.param
            )
            return exc.response()
        if refused := moderation_response(d):
            state.record("rejected_create", "openai", 400, key=key, prompt=prompt, fault="moderation")
            return refused
        detail: dict[str, Any] = {
            "model": form.model,
            "seconds": form.seconds,
            "size": form.size,
            "images": 0 if form.reference is None else 1,
            "reference": form.reference,
            "reference_size": f"{ref_size[0]}x{ref_size[1]}" if ref_size else None,
            "reference_url": form.reference_url[:100] if form.reference_url else None,
            "reference_file_id": form.reference_file_id,
            "extra": form.extra,
        }
        if existing := replayed_job(state, d, "openai", key):
            return await self._accept(existing, d, "duplicate_create", key, **detail)
        job = make_job(
            state,
            d,
            credential=bearer_token(request),
            dialect="openai",
            key=key,
            header=header,
            model=valid.model,
            prompt=valid.prompt,
            width=valid.width,
            height=valid.height,
            seconds=valid.seconds,
            size=valid.size,
            received={"prompt": valid.prompt, **{k: v for k, v in detail.items() if v is not None}},
        )
        return await self._accept(job, d, "create", key, **detail)

    async def retrieve(self, request: Request) -> Response:
        state, video_id = self.state, request.path_params["video_id"]
        if denied := check_auth(request, state.settings.api_key):
            state.record("poll", "openai", 401, job=video_id)
            return denied
        job = self.live_job(video_id)
        if job is None:
            state.record("poll", "openai", 404, job=video_id)
            return _not_found(video_id)
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "openai", 500, job=job.id, prompt=job.prompt, fault=fault)
            return poll_error()
        job.polls += 1
        snap = job.snapshot(state.now())
        status = polled_status(job, snap.phase, d, state.counters)
        body = self.video_object(job, snap, status, d)
        state.record("poll", "openai", 200, job=job.id, prompt=job.prompt, fault=fault, reported=status)
        if fault == "poll_hang":
            await state.hang()
        if fault == "malformed":
            return TruncatedJSONResponse(body)
        headers = {}
        if not snap.terminal:
            headers["openai-poll-after-ms"] = str(
                int(d.number("poll_after_ms", state.settings.poll_after_ms))
            )
        return JSONResponse(body, headers=headers)

    async def list_videos(self, request: Request) -> Response:
        state = self.state
        if denied := check_auth(request, state.settings.api_key):
            state.record("list", "openai", 401)
            return denied
        if parse_directives(None, request.headers.get(HEADER)).has("list_400"):
            state.record("list", "openai", 400, fault="list_400")
            return _litellm_list_error()
        params = request.query_params
        order = params.get("order", "desc")
        limit_text = params.get("limit", "20")
        if order not in ("asc", "desc"):
            return openai_error(
                400, f"Invalid value for 'order': {order!r}.", param="order", code="invalid_value"
            )
        if not limit_text.isdigit() or int(limit_text) > _MAX_LIST:
            return openai_error(
                400, f"Invalid value for 'limit': {limit_text!r}.", param="limit", code="invalid_value"
            )
        jobs = state.jobs.listing("openai")
        if order == "desc":
            jobs.reverse()
        after = params.get("after")
        if after is not None:
            # By position among all jobs, deleted ones included, so a cursor whose video was deleted
            # between two pages still works.
            position = next((i for i, j in enumerate(jobs) if j.id == after), None)
            if position is None:
                return openai_error(
                    400, f"No video found with id '{after}'.", param="after", code="not_found"
                )
            jobs = jobs[position + 1 :]
        live = [j for j in jobs if not j.deleted]
        page, limit = live[: int(limit_text)], int(limit_text)
        now = state.now()
        data = [self.video_object(j, j.snapshot(now)) for j in page]
        state.record("list", "openai", 200, returned=len(data))
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(live) > limit,
            }
        )

    async def content(self, request: Request) -> Response:
        state, video_id = self.state, request.path_params["video_id"]
        variant = request.query_params.get("variant", "video")
        if denied := check_auth(request, state.settings.api_key):
            state.record("download", "openai", 401, job=video_id, variant=variant)
            return denied
        kind = VARIANTS.get(variant)
        if kind is None:
            state.record("download", "openai", 400, job=video_id, variant=variant)
            return openai_error(
                400, f"Invalid value for 'variant': {variant!r}.", param="variant", code="invalid_value"
            )
        job = self.live_job(video_id)
        if job is None:
            state.record("download", "openai", 404, job=video_id, variant=variant)
            return _not_found(video_id)
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        now = state.now()
        snap = job.snapshot(now)
        if snap.phase != "completed" or snap.finished_at is None:
            state.record("download", "openai", 404, job=job.id, prompt=job.prompt, variant=variant)
            return openai_error(
                404, f"Video '{job.id}' is not ready: its status is {snap.phase}.", code="video_not_ready"
            )
        expired = state.unix(now) > state.unix(snap.finished_at) + ASSET_TTL_SECONDS
        if expired or state.counters.fire("expired_link", job.prompt, d.count("expired_link")):
            reason = "expired" if expired else "expired_link"
            state.record(
                "download", "openai", 404, job=job.id, prompt=job.prompt, variant=variant, reason=reason
            )
            return openai_error(404, f"The assets of video '{job.id}' have expired.", code="video_expired")
        served, headers = _served_variant(kind, d)
        data = await state.media.get(served, job.width, job.height, job.seconds)
        state.record(
            "download",
            "openai",
            200,
            job=job.id,
            prompt=job.prompt,
            variant=variant,
            bytes=len(data),
            **({"served": served} if served != kind else {}),
        )
        return Response(data, headers=headers)

    async def delete(self, request: Request) -> Response:
        state, video_id = self.state, request.path_params["video_id"]
        if denied := check_auth(request, state.settings.api_key):
            state.record("delete", "openai", 401, job=video_id)
            return denied
        job = self.live_job(video_id)
        if job is None:
            state.record("delete", "openai", 404, job=video_id)
            return _not_found(video_id)
        now = state.now()
        was = job.snapshot(now).phase
        if was not in ("completed", "failed"):
            job.stopped_at = now  # it will never complete
        job.deleted = True
        state.record("delete", "openai", 200, job=job.id, prompt=job.prompt, was=was)
        return JSONResponse({"id": job.id, "object": "video.deleted", "deleted": True})

    async def remix(self, request: Request) -> Response:
        state, video_id = self.state, request.path_params["video_id"]
        key, header = request.headers.get("idempotency-key"), request.headers.get(HEADER)
        if denied := check_auth(request, state.settings.api_key):
            state.record("rejected_create", "openai", 401, key=key, remix_of=video_id, reason="auth")
            return denied
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            state.record("rejected_create", "openai", 400, key=key, remix_of=video_id, param="prompt")
            return openai_error(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        source = self.live_job(video_id)
        if source is None:
            state.record("remix", "openai", 404, job=video_id, key=key, prompt=prompt)
            return _not_found(video_id)
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "openai", bearer_token(request)):
            fault, response = rejected
            state.record(
                "rejected_create",
                "openai",
                response.status_code,
                key=key,
                prompt=prompt,
                fault=fault,
                remix_of=source.id,
            )
            return response
        if refused := moderation_response(d):
            state.record("rejected_create", "openai", 400, key=key, prompt=prompt, fault="moderation")
            return refused
        if existing := replayed_job(state, d, "openai", key):
            return await self._accept(existing, d, "duplicate_create", key, remix_of=source.id)
        job = make_job(
            state,
            d,
            credential=bearer_token(request),
            dialect="openai",
            key=key,
            header=header,
            model=source.model,
            prompt=prompt,
            width=source.width,
            height=source.height,
            seconds=source.seconds,
            size=source.size,
            received={"prompt": prompt, "remix_of": source.id},
            remixed_from=source.id,
        )
        return await self._accept(job, d, "remix", key, remix_of=source.id)

    async def cancel(self, request: Request) -> Response:
        """OpenAI has no cancel route; answering one (and journalling it) exposes a client that tries."""
        self.state.record("cancel", "openai", 404, job=request.path_params["video_id"])
        return openai_error(404, "Unknown request URL: there is no cancel route; delete the video instead.")


def openai_routes(state: FakeState) -> list[Route]:
    """The `/v1/videos` routes."""
    h = OpenAIRoutes(state)
    return [
        Route("/v1/videos", h.create, methods=["POST"]),
        Route("/v1/videos", h.list_videos, methods=["GET"]),
        Route("/v1/videos/{video_id}", h.retrieve, methods=["GET"]),
        Route("/v1/videos/{video_id}", h.delete, methods=["DELETE"]),
        Route("/v1/videos/{video_id}/content", h.content, methods=["GET"]),
        Route("/v1/videos/{video_id}/remix", h.remix, methods=["POST"]),
        Route("/v1/videos/{video_id}/cancel", h.cancel, methods=["POST"]),
    ]
