"""Request dependencies: the runtime, and the caller's API key."""

from __future__ import annotations

from fastapi import Request

from vidgate.api.ratelimit import is_create
from vidgate.errors import AuthenticationFailed
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request for nothing.
    return runtime_of(request)


# How the OpenAPI document describes `authenticate` (Swagger UI's Authorize button): declared by
# vidgate.api.openapi_docs on every route that depends on it. Not a FastAPI `Security` dependency:
# that would be solved again on every request, for a header `authenticate` reads itself.
BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key from `vidgate keys create`."}


async def authenticate(request: Request) -> ApiKey:
    """The caller's active key from `Authorization: Bearer <key>`, else 401; then the key's rate
    limits, else 429 (counted only once the key is known, so a bad key is always a 401)."""
    key = await key_of(request)
    await runtime_of(request).rate_limiter.check(key, create=is_create(request))
    return key


async def key_of(request: Request) -> ApiKey:
    """The caller's active key, else 401; no rate limits counted (`authenticate` counts them)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Missing API key. Send the header `Authorization: Bearer <key>`.")
    runtime = runtime_of(request)
    key = await runtime.keys.authenticate(token.strip())
    if key is None:
        raise AuthenticationFailed("Incorrect or revoked API key.")
    request.state.api_key_id = key.id
    return key
