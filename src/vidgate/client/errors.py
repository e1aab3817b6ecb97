"""One exception tree for everything the SDK raises.

`VidgateError` is the root. An answer the server gave is an `APIStatusError` (one subclass per status the
API uses, carrying the error envelope's `code`, `param`, `type` and `message`); a request that got no
answer is an `APIConnectionError`. `WaitTimeout` (`wait()` running out of time, not an HTTP failure) is
in videos.py, next to the `Video` it carries: this module imports nothing of the SDK's.
"""

from __future__ import annotations

from typing import Any


class VidgateError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(VidgateError):
    """No answer: the connection failed or broke (after the transport's retries)."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout (after the transport's retries)."""


class APIStatusError(VidgateError):
    """The server answered with an error status. The fields come from its error envelope
    `{"error": {"message", "type", "param", "code"}}`; `body` is the parsed body (or its text)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.param = param
        self.type = type
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after  # seconds the server asked for (429, 503), when it said

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        return f"{self.status_code} {self.code or 'error'}: {self.message}{where}"


class BadRequestError(APIStatusError):
    """400: the request is invalid; `param` names the field."""


class AuthenticationError(APIStatusError):
    """401: no key, an unknown key or a revoked key."""


class InsufficientQuotaError(APIStatusError):
    """402: the key's balance cannot cover the create."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (e.g. a model outside its allowed models)."""


class NotFoundError(APIStatusError):
    """404: no such video for this key (another key's video looks the same), or no such route."""


class ConflictError(APIStatusError):
    """409: e.g. an Idempotency-Key reused with another body, or content of an unfinished video."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is over the server's limit (inline images count towards it)."""


class UnprocessableEntityError(APIStatusError):
    """422: the server could not process a well-formed request."""


class RateLimitError(APIStatusError):
    """429: the key's rate limit or active-task cap; `retry_after` says when to try again."""


class InternalServerError(APIStatusError):
    """5xx."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientQuotaError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(
    status_code: int,
    body: Any,
    *,
    reason: str = "",
    request_id: str | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """The exception for one error answer: the class from the status, the fields from the envelope.
    A body that is not the envelope (a proxy's page, the HTTP server's plain 503) still gives an error
    whose message says what came back."""
    envelope = body.get("error") if isinstance(body, dict) else None
    fields: dict[str, Any] = envelope if isinstance(envelope, dict) else {}

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    message = text("message")
    if message is None:
        snippet = body.strip()[:200] if isinstance(body, str) else ""
        message = snippet or reason or f"HTTP {status_code}"
    cls = InternalServerError if status_code >= 500 else _BY_STATUS.get(status_code, APIStatusError)
    return cls(
        message,
        status_code=status_code,
        code=text("code"),
        param=text("param"),
        type=text("type"),
        request_id=request_id,
        body=body,
        retry_after=retry_after,
    )
