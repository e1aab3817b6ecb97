"""Faults on status queries, shared by both dialects."""

from __future__ import annotations

from typing import Literal

from starlette.responses import Response

from vidgate.testing.fake_upstream.directives import Directives
from vidgate.testing.fake_upstream.responses import openai_error
from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["PollFault", "poll_error", "poll_fault"]

PollFault = Literal["poll5xx", "poll_hang", "malformed"]


async def poll_fault(state: FakeState, d: Directives, prompt: str) -> PollFault | None:
    """Which fault this poll gets, in the order poll5xx, poll_hang, malformed (each counted when it fires).

    poll5xx: answer `poll_error()`. poll_hang: journal the poll, then `await state.hang()` before answering
    (journalled on arrival, so a test sees it while the client is still waiting). malformed: answer 200
    with the JSON body cut short.
    """
    if state.counters.fire("poll5xx", prompt, d.count("poll5xx")):
        return "poll5xx"
    if state.counters.fire("poll_hang", prompt, d.count("poll_hang")):
        return "poll_hang"
    if state.counters.fire("malformed", prompt, d.count("malformed")):
        return "malformed"
    return None


def poll_error() -> Response:
    return openai_error(
        500,
        "The server had an error while processing your request.",
        type="server_error",
        code="server_error",
    )
