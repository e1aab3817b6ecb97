"""What a poll's answer means before its status words are read, said once for the adapters that read it
the same way (`fal`, `replicate`, `openrouter`; `kling` and `minimax` share the unknown-word rule only).

Their poll requests differ (fal's status URL, Replicate's prediction, OpenRouter's polling URL) and so do
their status words, which each adapter reads itself (`read_status`, `prediction_status`, `job_status`).
What does not differ, and must not drift apart between them:

- `poll_body`: a 404 is a job the upstream no longer knows (`upstream_job_lost`, not asked again); any
  other error status maps as every adapter maps them (`raise_for_status`); a body that is no JSON object
  is a bad answer worth asking again;
- `UnknownStatuses`: a status word nobody knows keeps the job running (the task's deadline ends a job
  that never finishes), and is logged once per word and channel (scrubbed of the channel's secrets), so a
  new word of an upstream's is seen without one line per poll.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from vidgate.channel_config import ChannelSettings
from vidgate.providers.base import ProviderError, UpstreamState, UpstreamStatus
from vidgate.providers.upstream_http import json_or_none, raise_for_status, shown_word

__all__ = ["UnknownStatuses", "poll_body"]


def poll_body(response: httpx.Response, *, lost: str) -> dict[str, Any]:
    """The JSON object a poll answered; `lost` says (after "poll: ") who no longer knows what on a 404."""
    if response.status_code == 404:
        raise ProviderError("upstream_job_lost", f"poll: {lost} (HTTP 404)")
    raise_for_status(response, "poll")
    body = json_or_none(response)
    if not isinstance(body, dict):
        raise ProviderError("upstream_bad_response", "poll: the channel's answer is not JSON", retryable=True)
    return body


class UnknownStatuses:
    """The status words of one channel that no reader knew, each logged the first time it is seen."""

    def __init__(self, channel: ChannelSettings, log: structlog.typing.FilteringBoundLogger) -> None:
        self.channel = channel
        self.log = log
        self.seen: set[str] = set()

    def still_running(self, status: Any, *, poll_after: float | None) -> UpstreamStatus:
        """RUNNING for a job whose status word (`status`) nobody knows: poll it again."""
        word = shown_word(self.channel, status)
        if word not in self.seen:
            self.seen.add(word)
            self.log.warning("unknown upstream status; polling on", channel=self.channel.name, status=word)
        return UpstreamStatus(UpstreamState.RUNNING, poll_after=poll_after)
