"""The fake's own routes: the journal and reset (for tests in another process) and the "CDN" that
serves result files behind signed links. None needs the API key, like a CDN or a debug endpoint."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vidgate.testing.fake_upstream.directives import HEADER
from vidgate.testing.fake_upstream.links import link_valid, revoke_link
from vidgate.testing.fake_upstream.media import CONTENT_TYPES, Variant
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["control_routes"]

_VARIANT_BY_SUFFIX: Final[dict[str, Variant]] = {"mp4": "video", "webp": "thumbnail", "jpg": "spritesheet"}


class ControlRoutes:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def journal(self, request: Request) -> Response:
        """`GET /_fake/journal[?op=&prompt=]`: the journal as a JSON list, oldest first."""
        op, prompt = request.query_params.get("op"), request.query_params.get("prompt")
        return JSONResponse([e.to_json() for e in self.state.journal.entries(op, prompt)])

    async def reset(self, request: Request) -> Response:
        """`POST /_fake/reset`: forget every job, counter and journal entry."""
        self.state.reset()
        return JSONResponse({"reset": True})

    async def files(self, request: Request) -> Response:
        """`GET /_fake/files/<task>.<mp4|webp|jpg>?exp=&sig=`: 403 for a bad or expired link, 404 unknown."""
        state, name = self.state, request.path_params["name"]
        stem, _, suffix = name.rpartition(".")
        variant = _VARIANT_BY_SUFFIX.get(suffix)
        job = state.jobs.get(stem) if variant else None
        if job is None or job.deleted or variant is None:
            state.record("download", "files", 404, job=stem or name, file=name)
            return PlainTextResponse("Not Found", status_code=404)
        d = job.directives(request.headers.get(HEADER))
        await state.delay(d)
        now = state.now()
        if job.snapshot(now).phase != "completed":
            state.record("download", "files", 404, job=job.id, prompt=job.prompt, file=name)
            return PlainTextResponse("Not Found", status_code=404)
        sig = request.query_params.get("sig")
        valid = link_valid(job, name, request.query_params.get("exp"), sig, state.unix(now))
        forced = valid and state.counters.fire("expired_link", job.prompt, d.count("expired_link"))
        if forced:
            revoke_link(job, name, sig)  # expired for good: only a freshly queried link works now
        if not valid or forced:
            reason = "expired_link" if forced else "invalid or expired signature"
            state.record("download", "files", 403, job=job.id, prompt=job.prompt, file=name, reason=reason)
            return PlainTextResponse("AccessDenied: Request has expired or the signature is invalid", 403)
        data = await state.media.get(variant, job.width, job.height, job.seconds)
        state.record("download", "files", 200, job=job.id, prompt=job.prompt, file=name, bytes=len(data))
        return Response(data, media_type=CONTENT_TYPES[variant])


def control_routes(state: FakeState) -> list[Route]:
    h = ControlRoutes(state)
    return [
        Route("/_fake/journal", h.journal, methods=["GET"]),
        Route("/_fake/reset", h.reset, methods=["POST"]),
        Route("/_fake/files/{name}", h.files, methods=["GET"]),
    ]
