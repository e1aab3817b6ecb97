"""One error tree for the whole gateway.

```
VidgateError                      (500 server_error; the message never leaks internals)
├── InvalidRequest                (400 invalid_request_error; names the field in `param`)
├── AuthenticationFailed          (401)
├── InsufficientQuota             (402; the key's balance cannot hold the task's price)
├── PermissionDenied              (403; e.g. a model this key may not use)
├── NotFound                      (404; also another key's task: never confirm it exists)
├── RequestTimeout                (408; the request's body did not arrive in time)
├── Conflict                      (409; state conflicts, idempotency mismatches)
├── PayloadTooLarge               (413)
├── UnsupportedMediaType          (415)
├── RateLimited                   (429 + Retry-After)
└── ServiceUnavailable            (503; no channel can serve now)
```

The API layer turns each into the OpenAI envelope
`{"error": {"message", "type", "param", "code"}}` with the class's HTTP status.
Errors that belong to a *task* (an upstream refused it, an image could not be
fetched) are not raised to clients: they end the task with an error code, see
`vidgate.providers.base.ProviderError`.
"""

from __future__ import annotations

from collections.abc import Mapping


class VidgateError(Exception):
    """Something went wrong on our side; the client sees a generic message."""

    status_code = 500
    error_type = "server_error"
    default_code = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.param = param
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        super().__init__(self.message)


class InvalidRequest(VidgateError):
    """The request is invalid."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class AuthenticationFailed(VidgateError):
    """Missing, unknown or revoked API key. Send `Authorization: Bearer <key>`."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class InsufficientQuota(VidgateError):
    """This API key's balance cannot cover the request. Top the key up, or ask its operator to."""

    status_code = 402
    error_type = "insufficient_quota"  # the type and code OpenAI's own quota errors carry
    default_code = "insufficient_quota"


class PermissionDenied(VidgateError):
    """This API key may not do that."""

    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFound(VidgateError):
    """Not found."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class RequestTimeout(VidgateError):
    """The request body did not arrive in time."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "body_timeout"


class Conflict(VidgateError):
    """The request conflicts with the current state."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"
    # The codes of a race that has passed by the time the client hears of it: sending again may work.
    RETRYABLE_CODES = frozenset({"busy"})

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        # The official SDKs (openai, Stainless-made) retry every 409 twice unless told not to: a video not
        # ready yet, a reused Idempotency-Key or a finished task would cost three requests and a second
        # before the error arrives, for an answer that cannot change.
        if self.code not in self.RETRYABLE_CODES:
            self.headers.setdefault("x-should-retry", "false")


class PayloadTooLarge(VidgateError):
    """The request body is too large."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class UnsupportedMediaType(VidgateError):
    """Unsupported Content-Type."""

    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimited(VidgateError):
    """Too many requests; retry after the time in the Retry-After header."""

    status_code = 429
    error_type = "requests"  # what OpenAI's API answers with its rate-limit 429s
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(VidgateError):
    """No channel can serve this request right now."""

    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"
