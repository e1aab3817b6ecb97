"""The create pipeline both dialects share: faults before and after acceptance, and making the job."""

from __future__ import annotations

from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from vidgate.testing.fake_upstream.directives import Directives
from vidgate.testing.fake_upstream.jobs import Job, JobDialect, decide_outcome, new_ids
from vidgate.testing.fake_upstream.responses import DroppedResponse, openai_error, retry_headers
from vidgate.testing.fake_upstream.state import FakeState

__all__ = [
    "AcceptFault",
    "accept_fault",
    "accepted_status",
    "make_job",
    "moderation_response",
    "reject_fault",
    "replayed_job",
    "respond_accepted",
]

AcceptFault = Literal["accept_then_drop", "accept_then_hang", "accept_then_5xx"]
# What Cloudflare answers when the origin took too long or broke the connection after taking the request.
PROXY_ERROR_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)

BUSY_BODY = {"code": 500, "msg": "upstream busy, retry later", "data": None}


def reject_fault(
    state: FakeState, d: Directives, prompt: str | None, dialect: JobDialect, credential: str | None
) -> tuple[str, Response] | None:
    """A fault that answers a create with an error and makes no job: (fault name, response), or None.

    Checked in this order (each counts only when it fires, so `#429=1 #5xx=1` gives 429 then 503):
    429, 5xx, and for the unified dialect http200_error (an error carried in an HTTP 200 body); then
    `echo_key` (every time), a 400 that echoes the caller's `credential` back, as upstreams and proxies
    do ("Incorrect API key provided: sk-..."): in the code, upper-cased in the type, and after the
    prompt in the message, so a long prompt pushes it past any cut made before scrubbing.
    """
    retry = retry_headers(d.number("retry_after", 1.0))
    if state.counters.fire("429", prompt, d.count("429")):
        return "429", openai_error(
            429,
            "Rate limit reached for requests.",
            type="requests",
            code="rate_limit_exceeded",
            headers=retry,
        )
    if state.counters.fire("5xx", prompt, d.count("5xx")):
        return "5xx", openai_error(
            503,
            "The server is overloaded or not ready yet.",
            type="server_error",
            code="service_unavailable",
            headers=retry,
        )
    if dialect == "unified" and state.counters.fire("http200_error", prompt, d.count("http200_error")):
        return "http200_error", JSONResponse(BUSY_BODY)
    if d.text("echo_key") in (None, "create") and d.has("echo_key") and credential:
        return "echo_key", openai_error(
            400,
            f"Could not process {prompt!r} for key {credential.upper()}: Incorrect API key provided.",
            type=credential.upper(),
            code=credential,
        )
    return None


def moderation_response(d: Directives) -> Response | None:
    """`#moderation` refuses the prompt at submit time; `#moderation=job` fails the job later instead."""
    if d.has("moderation") and d.text("moderation") != "job":
        return openai_error(
            400,
            "Your request was blocked by our moderation system.",
            code="moderation_blocked",
        )
    return None


def replayed_job(state: FakeState, d: Directives, dialect: JobDialect, key: str | None) -> Job | None:
    """The job an Idempotency-Key already made (the fake honours keys unless `#no_idempotency`)."""
    if key is None or d.has("no_idempotency"):
        return None
    return state.jobs.by_key(dialect, key)


def make_job(
    state: FakeState,
    d: Directives,
    *,
    dialect: JobDialect,
    key: str | None,
    header: str | None,
    model: str,
    prompt: str,
    width: int,
    height: int,
    seconds: int,
    size: str,
    received: dict[str, Any],
    watermark: bool | None = None,
    remixed_from: str | None = None,
    credential: str | None = None,
) -> Job:
    """Make and store a job; its timing and ending are fixed now, from the directives."""
    now = state.now()
    job_id, short_id = new_ids(dialect, model, state.unix(now))
    ordinal = state.counters.bump("job", prompt)
    job = Job(
        id=job_id,
        short_id=short_id,
        dialect=dialect,
        seq=state.jobs.next_seq(),
        model=model,
        prompt=prompt,
        header=header,
        created=now,
        queue_s=d.number("queue", state.settings.queue_seconds),
        ready_s=d.number("ready", state.settings.ready_seconds),
        width=width,
        height=height,
        seconds=seconds,
        size=size,
        input=received,
        outcome=decide_outcome(d, ordinal, watermark, credential),
        remixed_from=remixed_from,
    )
    state.jobs.add(job, None if d.has("no_idempotency") else key)
    return job


def accept_fault(state: FakeState, d: Directives, prompt: str | None) -> AcceptFault | None:
    """A fault that strikes after the job exists (also on a replay: the answer is what gets lost)."""
    if state.counters.fire("accept_then_drop", prompt, d.count("accept_then_drop")):
        return "accept_then_drop"
    if state.counters.fire("accept_then_hang", prompt, d.count("accept_then_hang")):
        return "accept_then_hang"
    if state.counters.fire("accept_then_5xx", prompt, d.count("accept_then_5xx")):
        return "accept_then_5xx"
    return None


def accepted_status(fault: AcceptFault | None) -> int:
    """The HTTP status the client is sent for a create that made its job."""
    return 502 if fault == "accept_then_5xx" else 200


async def respond_accepted(state: FakeState, fault: AcceptFault | None, body: Any) -> Response:
    """The 200 for an accepted create, cut mid-body or held back past a client's timeout if told to."""
    if fault == "accept_then_drop":
        return DroppedResponse(body)
    if fault == "accept_then_hang":
        await state.hang()
    if fault == "accept_then_5xx":  # a proxy in front lost the origin's answer: the job exists all the same
        return Response(PROXY_ERROR_PAGE, status_code=502, media_type="text/html")
    return JSONResponse(body)
