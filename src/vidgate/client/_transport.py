"""The one place HTTP happens: requests, transport retries with backoff, and error mapping.

Every SDK operation is written once, as a generator that yields what it needs done (a `Call` to send,
a `Sleep`) and receives the answer; `SyncRunner` and `AsyncRunner` carry those steps out with
`httpx.Client` or `httpx.AsyncClient`. So retries, pacing and parsing exist in one copy, and the two
clients differ only in how they wait and do I/O. A failure while carrying out a step is thrown back
into the generator, which is where `send` decides to retry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vidgate.client._pacing import MAX_RETRY_AFTER_S, Random, retry_after_seconds, retry_backoff
from vidgate.client.errors import APIConnectionError, APITimeoutError, VidgateError, status_error

T = TypeVar("T")
ProgressBytes = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Call:
    """One HTTP request, without credentials (the runner adds them, so no Call ever holds the key)."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    download_to: Path | None = None  # stream a 2xx body into this file instead of memory
    on_bytes: ProgressBytes | None = None

    @property
    def idempotent(self) -> bool:
        """Safe to send again after it may have reached the server: reads, and writes that carry an
        Idempotency-Key (the server answers a repeat with the first result)."""
        return self.method in ("GET", "HEAD") or any(k.lower() == "idempotency-key" for k in self.headers)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Call | Sleep
Op = Generator[Step, Any, T]

# Failures where the request never reached the server: always safe to retry.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after it may have: retried only for idempotent calls.
_MAYBE_SENT = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    rand: Random = random.random

    def send(self, call: Call) -> Op[httpx.Response]:
        """Send `call`, retrying what is worth retrying; the 2xx answer, or the mapped error."""
        attempt = 0
        while True:
            try:
                response: httpx.Response = yield call
            except httpx.TransportError as exc:
                if attempt >= self.max_retries or not _may_resend(exc, call):
                    raise _connection_error(call, exc, attempt + 1) from exc
                delay = retry_backoff(attempt, self.rand)
            else:
                if response.is_success:
                    return response
                retry_after = retry_after_seconds(response.headers)
                delay_or_none = _retry_delay(response, call, attempt, retry_after, self.rand)
                if delay_or_none is None or attempt >= self.max_retries:
                    raise status_error(
                        response.status_code,
                        _body(response),
                        reason=response.reason_phrase,
                        request_id=response.headers.get("x-request-id"),
                        retry_after=retry_after,
                    )
                delay = delay_or_none
            attempt += 1
            yield Sleep(delay)

    def json(self, call: Call) -> Op[Any]:
        response = yield from self.send(call)
        return parse_json(response)


def _may_resend(exc: httpx.TransportError, call: Call) -> bool:
    return isinstance(exc, _UNSENT) or (isinstance(exc, _MAYBE_SENT) and call.idempotent)


def _retry_delay(
    response: httpx.Response, call: Call, attempt: int, retry_after: float | None, rand: Random
) -> float | None:
    """How long to wait before sending again, or None when this answer is final."""
    status = response.status_code
    # 429, 503 and a 409 `busy` all say that nothing was done: any call may go again. Another 5xx (or
    # a 408) may have done part of the work, so only an idempotent call is repeated.
    refused = status in (429, 503) or (status == 409 and _error_code(response) == "busy")
    if not (refused or (call.idempotent and (status == 408 or status >= 500))):
        return None
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER_S else None
    return retry_backoff(attempt, rand)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_code(response: httpx.Response) -> str | None:
    body = _body(response)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise VidgateError(
            f"The server's answer to {response.request.method} {response.request.url.path} is not JSON "
            f"(status {response.status_code}); is the base URL a vidgate server?"
        ) from exc


def _connection_error(call: Call, exc: httpx.TransportError, attempts: int) -> APIConnectionError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{call.method} {call.path} timed out{tries}: {detail}")
    return APIConnectionError(f"{call.method} {call.path} failed{tries}: {detail}")


# Runners --------------------------------------------------------------------------------------------


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Download:
    """A download written to a temporary file beside the target and renamed into place only when
    complete, so a failed or retried download never leaves a truncated file under the real name."""

    def __init__(self, call: Call, response: httpx.Response) -> None:
        assert call.download_to is not None
        self.target = call.download_to
        self.on_bytes = call.on_bytes
        length = response.headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self.done = 0
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent)
        self.tmp = Path(name)
        self.file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.done += len(chunk)
        if self.on_bytes is not None:
            self.on_bytes(self.done, self.total)

    def commit(self) -> None:
        self.file.close()
        # mkstemp makes the file 0600; the download should get the mode any new file of the user gets.
        os.chmod(self.tmp, 0o666 & ~_umask())
        self.tmp.replace(self.target)

    def abort(self) -> None:
        self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class _Runner:
    def __init__(self, base_url: str, api_key: str, user_agent: str) -> None:
        self.base_url = base_url
        self._headers = {"authorization": f"Bearer {api_key}", "user-agent": user_agent}

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            json=call.json,
            data=call.data,
            files=call.files,
            headers={**self._headers, **call.headers},
        )


class SyncRunner(_Runner):
    def __init__(self, http: httpx.Client, base_url: str, api_key: str, user_agent: str) -> None:
        super().__init__(base_url, api_key, user_agent)
        self.http = http

    def run(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                try:
                    result = self._carry_out(step)
                except Exception as exc:
                    step = op.throw(exc)
                else:
                    step = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _carry_out(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        request = self._request(self.http, step)
        if step.download_to is None:
            return self.http.send(request)
        response = self.http.send(request, stream=True)
        try:
            if not response.is_success:
                response.read()
                return response
            sink = _Download(step, response)
            try:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
            except BaseException:
                sink.abort()
                raise
            sink.commit()
            return response
        finally:
            response.close()


class AsyncRunner(_Runner):
    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str, user_agent: str) -> None:
        super().__init__(base_url, api_key, user_agent)
        self.http = http

    async def run(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                try:
                    result = await self._carry_out(step)
                except Exception as exc:
                    step = op.throw(exc)
                else:
                    step = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _carry_out(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        request = self._request(self.http, step)
        if step.download_to is None:
            return await self.http.send(request)
        response = await self.http.send(request, stream=True)
        try:
            if not response.is_success:
                await response.aread()
                return response
            sink = _Download(step, response)
            try:
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
            except BaseException:
                sink.abort()
                raise
            sink.commit()
            return response
        finally:
            await response.aclose()
