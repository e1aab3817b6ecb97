"""JSON answers encoded once, with orjson, for the routes that run thousands of times a second.

A route that returns a `Response` skips FastAPI's `response_model` validation and its serialisation
(both cost more than the database read behind a poll); the models stay on the routes for the OpenAPI
document, and the tests check that the views match them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response


def json_response(body: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    try:
        content = orjson.dumps(body)
    except TypeError:
        # orjson refuses integers beyond 64 bits and non-string keys, which stored input never has
        # today; the standard encoder takes them, so such a value can never turn into a 500.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status_code, headers=headers, media_type="application/json")
