"""Copying a result from a link an upstream chose (a relay's CDN, a vendor's object storage).

Such a link is a URL someone else picked, so it goes through the SSRF-safe fetcher like any user URL,
never with the channel's credentials. What the fetcher says maps to ProviderError here, once for every
adapter: an expired or revoked link (403/404/410, what object stores answer to a stale signature) is
`ResultExpired`, so the worker polls for a fresh link; a refused address or an oversized file is final;
a timeout, a broken transfer or bytes that are no MP4 may go better next time.
"""

from __future__ import annotations

from pathlib import Path

from vidgate.net.fetch import (
    VIDEO_MP4,
    ContentRejected,
    ContentTooLarge,
    FetchFailed,
    FetchRefused,
    FetchTimedOut,
    SafeFetcher,
)
from vidgate.providers.base import ProviderError, ResultExpired

_EXPIRED_STATUSES = frozenset({403, 404, 410})


async def copy_result_link(
    fetcher: SafeFetcher, url: str, dest: Path, *, max_bytes: int, timeout: float
) -> None:
    """Download the video at `url` into `dest`, or raise the ProviderError that says what went wrong."""
    try:
        await fetcher.fetch_to_file(url, dest, max_bytes=max_bytes, kind=VIDEO_MP4, timeout=timeout)
    except FetchRefused as exc:
        raise ProviderError(
            "result_url_refused", f"The channel's video link was refused: {exc.reason}"
        ) from exc
    except ContentTooLarge as exc:
        raise ProviderError("upstream_video_too_large", exc.reason) from exc
    except ContentRejected as exc:
        raise ProviderError("invalid_upstream_video", exc.reason, retryable=True) from exc
    except FetchTimedOut as exc:
        raise ProviderError("upstream_timeout", f"download: {exc.reason}", retryable=True) from exc
    except FetchFailed as exc:
        if exc.http_status in _EXPIRED_STATUSES:
            raise ResultExpired(f"the video link answered HTTP {exc.http_status}") from exc
        raise ProviderError("result_download_failed", f"download: {exc.reason}", retryable=True) from exc
