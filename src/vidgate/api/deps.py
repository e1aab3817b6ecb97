"""Request dependencies: the runtime, and the caller's API key."""

from __future__ import annotations

from fastapi import Request

from vidgate.errors import AuthenticationFailed
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey

# Route templates (FastAPI puts the matched route in the scope before dependencies run).
CREATE_ROUTES = frozenset({"/v1/video/create", "/v1/videos", "/v1/videos/{video_id}/remix"})


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


async def authenticate_fresh(request: Request) -> ApiKey:
    """`authenticate`, with the key read from the database now rather than the key cache: for routes
    that hand out or change a key's own secrets, which a key revoked a moment ago in another process
    must not reach."""
    key = await key_of(request, fresh=True)
    await runtime_of(request).rate_limiter.check(key, create=False)
    return key


async def key_of(request: Request, *, fresh: bool = False) -> ApiKey:
    """The caller's active key, else 401; no rate limits counted (`authenticate` counts them).
    The key may come from the key cache (unless `fresh`): one revoked in another process works here
    for up to `VIDGATE_KEY_CACHE_SECONDS` (docs/scaling.md)."""
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("Missing API key. Send the header `Authorization: Bearer <key>`.")
    runtime = runtime_of(request)
    key = await (runtime.keys.authenticate(token, fresh=True) if fresh else runtime.keys.authenticate(token))
    if key is None:
        raise AuthenticationFailed("Incorrect or revoked API key.")
    request.state.api_key_id = key.id
    return key


async def admin_key_of(request: Request) -> ApiKey | None:
    """The caller's key if it is an active admin's, else None (no key, an unknown, revoked or
    ordinary one alike). Read from the database on every call, never from the key cache: an admin
    key revoked in any process must not make one more key, top-up or change anywhere."""
    token = bearer_token(request)
    if token is None:
        return None
    key = await runtime_of(request).keys.authenticate(token, fresh=True)
    if key is None:
        return None
    request.state.api_key_id = key.id  # the access log names an ordinary key that tried, too
    return key if key.is_admin else None


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_create(request: Request) -> bool:
    """A create (or remix): it counts against the key's creates per minute too."""
    route = request.scope.get("route")
    return request.method == "POST" and getattr(route, "path", None) in CREATE_ROUTES
