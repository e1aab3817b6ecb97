"""The OpenRouter dialect of the fake upstream: OpenRouter's video generation API (`/api/v1/videos`).

Shapes follow OpenRouter's "Video Generation API" reference (openrouter.ai/docs/api/api-reference/
video-generation: "Submit a video generation request", "Poll video generation status", "Download
generated video content", "List all video generation models"), the `openrouter-video` skill
(OpenRouterTeam/skills) and the generated SDKs' `VideoGenerationResponse` (status `pending`,
`in_progress`, `completed`, `failed`, `cancelled`, `expired`). The models and the checks are in
`openrouter_input`. A channel's `base_url` is `{fake}/api/v1`, standing for `https://openrouter.ai/api/v1`.

- `POST /api/v1/videos` `{model, prompt, duration, resolution, aspect_ratio | size, seed,
  generate_audio, frame_images, input_references, provider}` (Bearer key) -> 202 `{id: "job-...",
  polling_url: "/api/v1/videos/job-..." (relative to the origin, as the reference shows it), status:
  pending, generation_id}`; a value outside the model's sets is 400. No idempotency key: every create is a
  new job;
- `GET {polling_url}` -> `{id, polling_url, status, generation_id}`, plus when completed `unsigned_urls`
  (the authenticated content endpoint, `.../content?index=0`), `urls` (signed storage links to
  `/_fake/files/...`, fresh on every poll) and `usage: {cost, is_byok}`, or `error` (a string) when
  failed; `#fail=cancelled` and `#fail=expired` end the job in those states;
- `GET /api/v1/videos/{id}/content?index=0` -> the MP4 (`video/mp4`), streamed from the provider's
  storage: the fake journals that storage read as a `files` download, and under `#expired_link=N` the
  storage object is gone (403, journalled) and the endpoint answers 404 until a new poll;
- `GET /api/v1/videos/models` (no key) and `GET /api/v1/key` (the key's record).

Errors: 401 without a valid key, 402 "Insufficient credits" (`#payment_required=N`), 403 with moderation
`metadata.reasons` (`#moderation`; `#moderation=job`: the job fails with a moderation message), 429
(`#429=N`), 503 (`#5xx=N`). Directives as the package docstring lists them: `echo_key`, the accept and
poll faults, `unknown_status=N`, `ready`, `queue`, `latency`, `create_latency`, `fail=CODE`.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vidgate.domain.capabilities import canonical_size
from vidgate.testing.fake_upstream.creation import accept_fault, make_job, reject_fault, respond_accepted
from vidgate.testing.fake_upstream.directives import HEADER, parse_directives
from vidgate.testing.fake_upstream.input_schemas import journal_fields
from vidgate.testing.fake_upstream.jobs import Job, Snapshot
from vidgate.testing.fake_upstream.links import issue_link
from vidgate.testing.fake_upstream.openrouter_input import MODELS, check_create, openrouter_error
from vidgate.testing.fake_upstream.polling import poll_fault
from vidgate.testing.fake_upstream.responses import TruncatedJSONResponse, bearer_token
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["job_id_of", "openrouter_routes"]

API: Final = "/api/v1"
_UNKNOWN_STATUS: Final = "queued_for_provider"
_ENDINGS: Final = ("cancelled", "expired")
_NO_CREDIT: Final = "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
_FLAGGED: Final = "Your input was flagged by the moderation system."


def job_id_of(job: Job) -> str:
    return "job-" + job.short_id.removeprefix("task_")


def _unauthorized() -> Response:
    return openrouter_error(401, "No auth credentials found")


class OpenRouterRoutes:
    """Handlers of the video routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def authorized(self, request: Request) -> bool:
        key = self.state.settings.api_key
        return key is None or bearer_token(request) == key

    def job_of(self, job_id: str) -> Job | None:
        if not job_id.startswith("job-"):
            return None
        return self.state.jobs.get("task_" + job_id.removeprefix("job-"), "openrouter")

    def word(self, job: Job, snap: Snapshot) -> str:
        if snap.phase == "queued":
            return "pending"
        if snap.phase == "running":
            return "in_progress"
        if snap.phase == "completed":
            return "completed"
        return snap.error_code if snap.error_code in _ENDINGS else "failed"

    def video(self, request: Request, job: Job, snap: Snapshot, word: str) -> dict[str, Any]:
        state, jid = self.state, job_id_of(job)
        body: dict[str, Any] = {
            "id": jid,
            "polling_url": f"{API}/videos/{jid}",
            "status": word,
            "generation_id": "gen-" + job.short_id.removeprefix("task_"),
        }
        if word == "completed":
            name = f"{job.short_id}.mp4"
            signed = issue_link(job, name, state.unix(state.now()))
            body["unsigned_urls"] = [f"{state.public_base(request)}{API}/videos/{jid}/content?index=0"]
            body["urls"] = [f"{state.public_base(request, cdn=True)}/_fake/files/{name}?{signed}"]
            body["usage"] = {"cost": round(0.1 * job.seconds, 2), "is_byok": False}
        elif word == "failed":
            body["error"] = snap.error_message or snap.error_code or "failed"
        return body

    # routes -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        state, header = self.state, request.headers.get(HEADER)
        if not self.authorized(request):
            state.record("rejected_create", "openrouter", 401, reason="auth")
            return _unauthorized()
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            state.record("rejected_create", "openrouter", 400, reason="not an object")
            return openrouter_error(400, "The request body must be a JSON object")
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else None
        d = parse_directives(prompt, header)
        await state.delay(d, create=True)
        if rejected := reject_fault(state, d, prompt, "openrouter", bearer_token(request)):
            fault, response = rejected
            response = _in_openrouter_words(fault, response)
            state.record("rejected_create", "openrouter", response.status_code, prompt=prompt, fault=fault)
            return response
        if state.counters.fire("payment_required", prompt, d.count("payment_required")):
            state.record("rejected_create", "openrouter", 402, prompt=prompt, fault="payment_required")
            return openrouter_error(402, _NO_CREDIT)
        if d.has("moderation") and d.text("moderation") != "job":
            state.record("rejected_create", "openrouter", 403, prompt=prompt, fault="moderation")
            metadata = {"reasons": ["violence"], "flagged_input": (prompt or "")[:100], "provider_name": None,
                        "model_slug": body.get("model")}  # fmt: skip
            return openrouter_error(403, _FLAGGED, metadata=metadata)
        refused = check_create(body)
        if refused is not None:
            state.record("rejected_create", "openrouter", 400, prompt=prompt, reason=refused)
            return openrouter_error(400, refused)
        width, height = _shape(body)
        job = make_job(
            state,
            d,
            credential=bearer_token(request),
            dialect="openrouter",
            key=None,  # OpenRouter takes no idempotency key
            header=header,
            model=str(body["model"]),
            prompt=prompt or "",
            width=width,
            height=height,
            seconds=int(body.get("duration") or MODELS[str(body["model"])].durations[0]),
            size=f"{width}x{height}",
            received=dict(body),
        )
        jid = job_id_of(job)
        after = accept_fault(state, d, job.prompt)
        status = 502 if after == "accept_then_5xx" else 202
        detail = {**journal_fields(body), "fault": after, "model": job.model}
        state.record("create", "openrouter", status, job=jid, prompt=job.prompt, **detail)
        snap = job.snapshot(state.now())
        response = await respond_accepted(state, after, self.video(request, job, snap, self.word(job, snap)))
        if after is None and isinstance(response, JSONResponse):
            response.status_code = 202
        return response

    async def retrieve(self, request: Request) -> Response:
        state, jid = self.state, request.path_params["job_id"]
        if not self.authorized(request):
            state.record("poll", "openrouter", 401, job=jid)
            return _unauthorized()
        job = self.job_of(jid)
        if job is None:
            state.record("poll", "openrouter", 404, job=jid)
            return openrouter_error(404, "Video generation job not found")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        fault = await poll_fault(state, d, job.prompt)
        if fault == "poll5xx":
            state.record("poll", "openrouter", 500, job=jid, prompt=job.prompt, fault=fault)
            return openrouter_error(500, "Internal Server Error")
        job.polls += 1
        snap = job.snapshot(state.now())
        word = self.word(job, snap)
        if state.counters.fire("unknown_status", job.prompt, d.count("unknown_status")):
            word = _UNKNOWN_STATUS
        body = self.video(request, job, snap, word)
        state.record("poll", "openrouter", 200, job=jid, prompt=job.prompt, fault=fault, reported=word)
        if fault == "poll_hang":
            await state.hang()
        return TruncatedJSONResponse(body) if fault == "malformed" else JSONResponse(body)

    async def content(self, request: Request) -> Response:
        state, jid = self.state, request.path_params["job_id"]
        if not self.authorized(request):
            state.record("content", "openrouter", 401, job=jid)
            return _unauthorized()
        job = self.job_of(jid)
        if job is None:
            state.record("content", "openrouter", 404, job=jid)
            return openrouter_error(404, "Video generation job not found")
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        if job.snapshot(state.now()).phase != "completed":
            state.record("content", "openrouter", 400, job=jid, prompt=job.prompt, reason="not completed")
            return openrouter_error(400, "Video generation is not completed")
        if request.query_params.get("index", "0") != "0":
            state.record("content", "openrouter", 404, job=jid, prompt=job.prompt, reason="index")
            return openrouter_error(404, "No video at that index")
        name = f"{job.short_id}.mp4"
        if state.counters.fire("expired_link", job.prompt, d.count("expired_link")):
            # The provider's stored output is gone: the proxy's read of it is refused.
            state.record(
                "download", "files", 403, job=job.id, prompt=job.prompt, file=name, reason="expired_link"
            )
            state.record("content", "openrouter", 404, job=jid, prompt=job.prompt, reason="expired")
            return openrouter_error(404, "The generated video is no longer available from the provider")
        data = await state.media.get("video", job.width, job.height, job.seconds)
        state.record("download", "files", 200, job=job.id, prompt=job.prompt, file=name, bytes=len(data))
        state.record("content", "openrouter", 200, job=jid, prompt=job.prompt, bytes=len(data))
        return Response(data, media_type="video/mp4")

    async def models(self, request: Request) -> Response:
        return JSONResponse({"data": [model.listing(slug) for slug, model in MODELS.items()]})

    async def key(self, request: Request) -> Response:
        if not self.authorized(request):
            self.state.record("key", "openrouter", 401)
            return _unauthorized()
        self.state.record("key", "openrouter", 200)
        return JSONResponse(
            {"data": {"label": "sk-or-v1-fake", "usage": 0, "limit": None, "is_free_tier": False}}
        )


def _shape(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size")
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        return int(width), int(height)
    return canonical_size(str(body.get("resolution") or "720p"), str(body.get("aspect_ratio") or "16:9"))


def _in_openrouter_words(fault: str, response: Response) -> Response:
    retry = {k: v for k, v in response.headers.items() if k.startswith("retry-after")}
    if fault == "429":
        return openrouter_error(429, "Rate limit exceeded", headers=retry)
    if fault == "5xx":
        return openrouter_error(503, "Service unavailable", headers=retry)
    return response


def openrouter_routes(state: FakeState) -> list[BaseRoute]:
    h = OpenRouterRoutes(state)
    return [
        Route(API + "/videos", h.create, methods=["POST"]),
        Route(API + "/videos/models", h.models, methods=["GET"]),
        Route(API + "/videos/{job_id}", h.retrieve, methods=["GET"]),
        Route(API + "/videos/{job_id}/content", h.content, methods=["GET"]),
        Route(API + "/key", h.key, methods=["GET"]),
    ]
