"""How long to wait: between transport retries, and between polls of a running video. Pure functions
of the answer's headers and a random number, so both clients (and the tests) share them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

# A server's Retry-After is waited for up to this long; a longer one is not slept through inside one
# call: the error goes to the caller (with `.retry_after`), who can decide.
MAX_RETRY_AFTER_S = 60.0
RETRY_BASE_S = 0.5
RETRY_MAX_S = 8.0
POLL_BASE_S = 1.0
POLL_MAX_S = 10.0

Random = Callable[[], float]


def retry_backoff(attempt: int, rand: Random) -> float:
    """The wait before retry `attempt + 1`: 0.5 s doubling up to 8 s, minus up to 25 % jitter (so that
    clients that failed together do not come back together)."""
    return min(RETRY_BASE_S * 2.0**attempt, RETRY_MAX_S) * (1 - 0.25 * rand())


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """`retry-after-ms`, else `Retry-After` (seconds or an HTTP date), in seconds; None when absent or
    unreadable."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def poll_delay(headers: Mapping[str, str], unchanged_polls: int, rand: Random) -> float:
    """The wait before the next poll of a running video: what the server asks for
    (`openai-poll-after-ms`, else `Retry-After`), else 1 s doubling up to 10 s while nothing changes,
    with +-25 % jitter."""
    millis = headers.get("openai-poll-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    after = retry_after_seconds(headers)
    if after is not None:
        return after
    return min(POLL_BASE_S * 2.0**unchanged_polls, POLL_MAX_S) * (0.75 + 0.5 * rand())
