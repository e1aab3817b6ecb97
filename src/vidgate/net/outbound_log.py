"""One log line per outbound HTTP request (input images, result downloads, webhooks, upstream channels),
with the URL cut to scheme, host, port and path.

Query strings and userinfo carry other people's credentials: a presigned image link's
`X-Amz-Signature=...`, a `callback_url`'s `?token=...`, a relay's signed result link. httpx's own
request log prints URLs whole, so `vidgate.logs` silences it and every client vidgate builds logs
through these hooks instead.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

log = structlog.get_logger("vidgate.outbound")


def loggable_url(url: httpx.URL) -> str:
    """`url` without userinfo, query string or fragment."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


async def _log_response(response: httpx.Response) -> None:
    request = response.request
    log.info(
        "outbound request", method=request.method, url=loggable_url(request.url), status=response.status_code
    )


def outbound_event_hooks() -> dict[str, list[Any]]:
    """The `event_hooks` argument for an `httpx.AsyncClient`."""
    return {"response": [_log_response]}
