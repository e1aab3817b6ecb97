"""The one place that builds HTTP clients for upstream channels and maps what they do to ProviderError.

Upstream addresses are chosen by the operator, so unlike user URLs they may be private (a vLLM box on
the LAN, another vidgate on loopback); they still get bounded timeouts and connection pools, our user
agent, the channel's credentials and headers, and no proxy from the environment unless configured.
Tests replace the network for every client at once by passing a transport (`httpx.MockTransport`, an
ASGI transport) to `UpstreamHttp`.

Error mapping, for every adapter alike:
- connect errors, pool timeouts: retryable, and nothing reached the upstream (a refusal); every
  transport error's message names the `host:port` it was sending to (never a path or query string);
- once a *create* was sent, anything but a proven refusal (`PROVEN_REFUSALS`: 400, 401, 403, 404, 409,
  422, 429) is `UpstreamOutcomeUnknown`: a read timeout, a dropped connection, any 5xx or 52x (a proxy
  may answer so after the origin made the job), an unexpected status. The worker decides what an
  outcome means (worker/submit.py); this module only says which it is;
- 429 and, on other calls, 5xx: retryable, honouring Retry-After; 401/403: `upstream_auth_failed`, the
  channel's credentials (the worker rules that channel out for the task);
- other 4xx: final, with the upstream's own code and message; moderation refusals: final `content_policy`.

Every request is counted in `vidgate_upstream_requests_total{channel,operation,outcome}` (see
`MeteredClient`): the operation is the `what` of the `mapped_transport_errors` block it is sent in.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import anyio
import httpx

from vidgate import __version__, metrics
from vidgate.channel_config import ChannelSettings
from vidgate.media.sniff import sniff_image, sniff_mp4
from vidgate.net.fetch import host_port
from vidgate.net.outbound_log import outbound_event_hooks
from vidgate.providers.base import ProbeResult, ProviderError, ResultExpired, UpstreamOutcomeUnknown

USER_AGENT = f"vidgate/{__version__}"
# Upstream messages are kept whole up to this bound (memory); the channel's SecretScrubbing removes
# secrets and only then cuts them to their shown length, so no cut here can leave part of a key behind.
_MAX_RAW_MESSAGE_CHARS = 16 * 1024
_MAX_RETRY_AFTER_S = 3600.0
_PROBE_MESSAGE_CHARS = 200  # what `vidgate channels test` shows of an upstream's error
_MODERATION = re.compile(
    r"moderation|content[_ ]?policy|policy[_ ]?violation|safety|sentinel_block|nsfw|inappropriate", re.I
)
# What a code looks like: one short word. Anything else (a sentence, a key echoed back) is no code.
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,48}")
# Answers to a create that prove no job was made (anything else after the request was sent may have
# made one): malformed, unauthenticated, forbidden, not found, conflicting, unprocessable, rate limited.
PROVEN_REFUSALS = frozenset({400, 401, 403, 404, 409, 422, 429})
VIDEO_CONTENT_TYPES = ("video/mp4", "application/octet-stream", "binary/octet-stream", "video/quicktime")
# Labels that say nothing of what a body is (object stores put them on every file): the bytes decide.
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
_CHUNK = 1 << 20  # one file write (a hop to a thread) per MiB
_SNIFF_BYTES = 64  # enough for every signature `sniff_image` and `sniff_mp4` know


# What the request being sent is for (create, poll, download, ...) and whether it may make a job:
# set by `mapped_transport_errors` around the send, read by `MeteredClient`.
_OPERATION: ContextVar[tuple[str, bool]] = ContextVar("vidgate_upstream_operation", default=("other", False))


class MeteredClient(httpx.AsyncClient):
    """An upstream channel's client that counts every request it sends by outcome, and lets no more
    requests into httpx's connection pool at once than it has connections (`admitted`).

    Why the gate: httpcore's pool looks at every (queued request, connection) pair each time a request
    arrives or a connection frees, so the CPU of each request grows with the queue when hundreds of
    polls wait for a pool of 32 connections (bench/upstream_pool_queue.py). Waiting here costs nothing
    per waiter, in arrival order, within the same pool timeout.
    """

    def __init__(self, *, channel: str, admitted: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel_name = channel
        self._admission = anyio.Semaphore(admitted)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        operation, may_create = _OPERATION.get()
        try:
            async with self._admitted(request):
                response = await super().send(request, **kwargs)
        except httpx.TransportError as exc:
            metrics.count_upstream(
                self.channel_name, operation, transport_outcome(exc, may_create=may_create)
            )
            raise
        metrics.count_upstream(self.channel_name, operation, status_outcome(response.status_code))
        return response

    @asynccontextmanager
    async def _admitted(self, request: httpx.Request) -> AsyncIterator[None]:
        """Hold one of the pool's places while the request is sent (a streamed body read afterwards keeps
        its connection, so at most twice the connections are ever in httpcore's hands)."""
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
        with anyio.move_on_after(pool_timeout) as waited:
            await self._admission.acquire()
        if waited.cancelled_caught:
            raise httpx.PoolTimeout("no free connection in time", request=request)
        try:
            yield
        finally:
            self._admission.release()


def status_outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


def transport_outcome(exc: httpx.TransportError, *, may_create: bool) -> str:
    """The same split as `mapped_transport_errors`: nothing sent, no answer, or a request that may
    have made a job."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "connect"
    if may_create:
        return "unknown_outcome"
    return "timeout" if isinstance(exc, httpx.TimeoutException) else "broken"


class UpstreamHttp:
    """Builds the httpx client of every upstream channel."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport

    def client_for(
        self, channel: ChannelSettings, *, key_header: str | None = None, auth: httpx.Auth | None = None
    ) -> httpx.AsyncClient:
        """The channel's client. Its `api_key` goes as `Authorization: Bearer`, or in `key_header` (Gemini's
        `x-goog-api-key`); `auth` signs each request instead (a token derived from the key)."""
        if channel.base_url is None:
            raise ValueError(f"channel {channel.name!r} has no base_url")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **channel.header_values()}
        if channel.api_key is not None and auth is None:
            key = channel.api_key.get_secret_value()
            headers[key_header or "Authorization"] = key if key_header else f"Bearer {key}"
        request_timeout = channel.request_timeout_seconds
        return MeteredClient(
            channel=channel.name,
            admitted=channel.max_connections,
            base_url=channel.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(request_timeout, connect=min(10.0, request_timeout)),
            limits=httpx.Limits(
                max_connections=channel.max_connections,
                max_keepalive_connections=min(32, channel.max_connections),
            ),
            trust_env=False,  # never a proxy (or .netrc credentials) from the environment
            proxy=channel.proxy if self.transport is None else None,
            transport=self.transport,
            follow_redirects=False,
            event_hooks=outbound_event_hooks(),
            auth=auth,
        )


# Transport errors ------------------------------------------------------------------------------------


@contextmanager
def mapped_transport_errors(what: str, *, may_create: bool = False) -> Iterator[None]:
    """httpx exceptions -> ProviderError. `may_create`: the request could make a job upstream.
    `what` also names the operation in the requests' metrics, so it must be one of a few words."""
    token = _OPERATION.set((what, may_create))
    try:
        yield
    except httpx.PoolTimeout as exc:
        raise ProviderError(
            "upstream_unreachable",
            f"{what}: no free connection to {_channel_at(exc)} in time (all max_connections busy)",
            retryable=True,
        ) from exc
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ProviderError(
            "upstream_unreachable", f"{what}: could not connect to {_channel_at(exc)}", retryable=True
        ) from exc
    except httpx.TimeoutException as exc:
        if may_create:
            raise UpstreamOutcomeUnknown(
                f"{what}: no answer in time from {_channel_at(exc)} after the request was sent"
            ) from exc
        raise ProviderError(
            "upstream_timeout", f"{what}: {_channel_at(exc)} did not answer in time", retryable=True
        ) from exc
    except httpx.TransportError as exc:
        if may_create:
            raise UpstreamOutcomeUnknown(
                f"{what}: the connection to {_channel_at(exc)} broke after the request was sent"
            ) from exc
        raise ProviderError(
            "upstream_connection_failed",
            f"{what}: the connection to {_channel_at(exc)} failed",
            retryable=True,
        ) from exc
    finally:
        _OPERATION.reset(token)


def _channel_at(exc: httpx.HTTPError) -> str:
    """Who `exc` is about, for a message: "the channel at host:port", or "the channel" when it names none."""
    try:
        url = exc.request.url
    except RuntimeError:  # raised outside a client's send (no request attached)
        return "the channel"
    return f"the channel at {host_port(url)}" if url.host else "the channel"


# Statuses and bodies ---------------------------------------------------------------------------------


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from `retry-after-ms`, `Retry-After` (seconds or an HTTP date), capped at an hour."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return min(max(float(raw_ms) / 1000, 0.0), _MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return min(max(float(raw), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), _MAX_RETRY_AFTER_S)


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def error_fields(body: Any, fallback: str) -> tuple[str | None, str]:
    """(code, message) from any of the error shapes upstreams use. The message is not cut to its shown
    length here: the channel's SecretScrubbing scrubs it first (see `_MAX_RAW_MESSAGE_CHARS`)."""
    code: Any = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code") or error.get("type"), error.get("message")
        elif isinstance(error, str) and error:
            message = error
        code = code or body.get("error_code") or body.get("code")
        message = message or body.get("message") or body.get("msg") or body.get("fail_reason")
        if not message and isinstance(body.get("detail"), str):
            message = body["detail"]  # FastAPI-style servers
    return clean_error_code(code), upstream_text(message, fallback)


def upstream_text(value: Any, fallback: str) -> str:
    """An upstream's words as text, bounded for memory only (see `_MAX_RAW_MESSAGE_CHARS`)."""
    text = str(value) if value not in (None, "") else fallback
    return text[:_MAX_RAW_MESSAGE_CHARS]


def shown_word(channel: ChannelSettings, value: Any) -> str:
    """An upstream's word (an unknown status, say) fit for a log line: scrubbed of the channel's
    secrets, then cut short."""
    return channel.redactor.redact(str(value)[:1024])[:64]


def clean_error_code(code: Any) -> str | None:
    """A code fit for `error.code`, lower-cased, or None for anything that does not look like a code
    (the caller then uses a generic one); numbers (HTTP-ish envelope codes) are no name either."""
    if not isinstance(code, str):
        return None
    word = code.strip()
    if not _CODE.fullmatch(word) or word.isdigit():
        return None
    return word.lower()


def is_moderation(code: str | None, message: str) -> bool:
    return bool(_MODERATION.search(code or "")) or bool(_MODERATION.search(message))


def raise_for_status(response: httpx.Response, what: str, *, may_create: bool = False) -> None:
    """Nothing for a 2xx; otherwise the ProviderError the status (and the upstream's body) calls for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    code, message = error_fields(json_or_none(response), f"HTTP {status}")
    retry_after = parse_retry_after(response.headers)
    if status == 429:
        raise ProviderError(
            "upstream_rate_limited",
            f"{what}: rate limited ({message})",
            retryable=True,
            retry_after=retry_after,
        )
    if may_create and status not in PROVEN_REFUSALS:
        # Proxies in front of upstreams answer 502/520-524 after the origin accepted the job, servers
        # answer 500 after they made it: only a refusal the dialect documents proves no job exists.
        raise UpstreamOutcomeUnknown(f"{what}: HTTP {status} after the request was sent ({message})")
    if status >= 500 or status == 408:
        raise ProviderError(
            "upstream_unavailable",
            f"{what}: HTTP {status} ({message})",
            retryable=True,
            retry_after=retry_after,
        )
    if status in (401, 403):
        raise ProviderError(
            "upstream_auth_failed",
            f"{what}: the channel refused our credentials (HTTP {status})",
            retryable=True,
        )
    raise final_refusal(code, message, what)


def final_refusal(code: str | None, message: str, what: str) -> ProviderError:
    """A refusal that no retry can fix: the upstream's code and message, or `content_policy`."""
    if is_moderation(code, message):
        return ProviderError("content_policy", f"The channel's content policy refused it: {message}")
    return ProviderError(code or "upstream_refused", f"{what}: the channel refused it: {message}")


def probe_verdict(response: httpx.Response, *, fine: frozenset[int] = frozenset({200, 404})) -> ProbeResult:
    """`vidgate channels test`: what an answer to a harmless request says about the channel. Statuses
    in `fine` (with a JSON body) prove it is reachable and takes our credentials; so does any other
    JSON error but 401/403 (see `_api_error_past_auth`). Anything else that is not JSON (an HTML 404
    page) is most likely not the API at all."""
    status = response.status_code
    if status in (401, 403):
        return ProbeResult(False, f"reachable, but the credentials were refused (HTTP {status})")
    body = json_or_none(response)
    if status in fine and body is not None:
        return ProbeResult(True, f"reachable and the credentials are accepted (HTTP {status}, no job made)")
    if _api_error_past_auth(status, body):
        _, message = error_fields(body, "no message")
        return ProbeResult(
            True,
            f"reachable and the credentials are accepted; it answered HTTP {status}: "
            f"{message[:_PROBE_MESSAGE_CHARS]} (no job made)",
        )
    return ProbeResult(False, f"reachable, but it answered HTTP {status} (is base_url the API root, .../v1?)")


def _api_error_past_auth(status: int, body: Any) -> bool:
    """A 4xx (not 401/403) in JSON comes from the API itself, after it checked the key: servers
    authenticate before they read the request (LiteLLM answers its job list with 400 "LLM Provider NOT
    provided" to a key it took, and 401 to one it did not)."""
    return 400 <= status < 500 and status not in (401, 403) and isinstance(body, dict)


def unreachable(exc: httpx.HTTPError) -> ProbeResult:
    at = _channel_at(exc).removeprefix("the channel")
    return ProbeResult(False, f"unreachable{at}: {type(exc).__name__}")


# Downloads from the channel itself ------------------------------------------------------------------


async def download_video(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    what: str,
    params: dict[str, str] | None = None,
) -> None:
    """Stream a video from the channel (its own, trusted address) into `dest`, in constant memory.

    Written to a temporary file renamed into place, so `dest` never holds part of a download. An
    expired link (403/404/410) raises ResultExpired so the worker asks the channel for a fresh one.
    """
    try:
        with _partial_file(dest) as tmp, anyio.fail_after(timeout), mapped_transport_errors(what):
            async with client.stream(
                "GET", url, params=params, headers={"Accept": "video/mp4, */*"}
            ) as response:
                if response.status_code in (403, 404, 410):
                    raise ResultExpired(f"{what}: the result link answered HTTP {response.status_code}")
                if response.status_code >= 300:
                    await response.aread()  # the error body, for raise_for_status to read
                    raise_for_status(response, what)
                _check_video_headers(response, max_bytes, what)
                await _stream_to(response, tmp, max_bytes, what)
            os.replace(tmp, dest)
    except TimeoutError as exc:
        raise ProviderError(
            "upstream_timeout", f"{what}: the download took longer than {timeout:g} s", retryable=True
        ) from exc


@contextmanager
def _partial_file(dest: Path) -> Iterator[Path]:
    """A temporary file beside `dest` for a download to land in, removed when the block ends unless it
    was renamed onto `dest` meanwhile: `dest` never holds part of a download."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _check_video_headers(response: httpx.Response, max_bytes: int, what: str) -> None:
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type and media_type not in VIDEO_CONTENT_TYPES:
        raise ProviderError(
            "invalid_upstream_video", f"{what}: the channel sent {media_type!r}, not a video", retryable=True
        )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ProviderError("upstream_video_too_large", f"{what}: the video is larger than {max_bytes} bytes")


async def _stream_to(response: httpx.Response, path: Path, max_bytes: int, what: str) -> None:
    total = 0
    head = b""
    async with await anyio.open_file(path, "wb") as out:
        async for chunk in response.aiter_bytes(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise ProviderError(
                    "upstream_video_too_large", f"{what}: the video is larger than {max_bytes} bytes"
                )
            if len(head) < 64:
                head += chunk[: 64 - len(head)]
            await out.write(chunk)
    if sniff_mp4(head) is None:
        raise ProviderError(
            "invalid_upstream_video", f"{what}: the channel's file is not an MP4", retryable=True
        )


async def download_image(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    params: dict[str, str] | None = None,
) -> bool:
    """Stream an optional image (a job's thumbnail) from the channel into `dest`; False, leaving nothing
    at `dest`, when the answer is anything but an image of at most `max_bytes`.

    Optional means never worth a big download: some servers answer with the whole video (LiteLLM
    ignores `?variant=thumbnail`), so the answer is given up as early as it shows: at the headers (a
    status other than 200, a type that is no image, a declared length over the cap) before any body is
    read, then at the first bytes (sniffed, whatever the label says), then as soon as the running count
    passes the cap. Any failure on the way counts as "no image": the caller has its own.
    """
    try:
        with _partial_file(dest) as tmp, anyio.fail_after(timeout):
            async with client.stream(
                "GET", url, params=params, headers={"Accept": "image/*"}, timeout=timeout
            ) as response:
                if not _may_be_image(response, max_bytes) or not await _image_to(response, tmp, max_bytes):
                    return False  # leaving the block unread closes the connection: no more is sent
            os.replace(tmp, dest)
            return True
    except (httpx.HTTPError, TimeoutError):
        return False


def _may_be_image(response: httpx.Response, max_bytes: int) -> bool:
    """What the headers allow: a 200 whose type (if any) may be an image, of no declared length over
    the cap."""
    if response.status_code != 200:
        return False
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type and not media_type.startswith("image/") and media_type not in _GENERIC_TYPES:
        return False
    length = response.headers.get("content-length", "")
    return not (length.isdigit() and int(length) > max_bytes)


async def _image_to(response: httpx.Response, path: Path, max_bytes: int) -> bool:
    """Write the body to `path` while it may still be an image of at most `max_bytes`; False as soon
    as it cannot. Chunks come as the network brings them (no re-chunking), so a refusal on the first
    bytes costs one socket read."""
    total = 0
    head = b""
    async with await anyio.open_file(path, "wb") as out:
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                return False
            if len(head) < _SNIFF_BYTES:
                head += chunk[: _SNIFF_BYTES - len(head)]
                if len(head) == _SNIFF_BYTES and sniff_image(head) is None:
                    return False
            await out.write(chunk)
    return sniff_image(head) is not None
