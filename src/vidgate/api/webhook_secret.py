"""`GET /v1/webhook_secret` and `POST /v1/webhook_secret/rotate`: the secret that signs the calling key's
webhooks (docs/api.md §6). The admin API reaches any key's through `webhook_secret_answer`.

Each key has its own secret, so a receiver that checks with it accepts only events of that key: one
key's signed event replayed to another key's receiver fails there. The secret is derived, never
stored (signing.key_webhook_secret), from the key's current generation. The key is read from the
database on every request (`authenticate_fresh`): a cached one may predate a rotation or a revocation
made in another process.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from vidgate import signing
from vidgate.api.deps import authenticate_fresh, runtime_of
from vidgate.api.json_response import json_response
from vidgate.api.schemas import ERROR_RESPONSES
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey

router = APIRouter(tags=["webhooks"])


class WebhookSecretObject(BaseModel):
    object: Literal["webhook_secret"]
    key_id: str = Field(description="The API key whose webhooks it signs.")
    secret: str = Field(
        description="`whsec_` and 43 base64url characters: the HMAC-SHA256 key of `X-Vidgate-Signature`."
    )


def webhook_secret_answer(runtime: Runtime, key: ApiKey) -> Response:
    """The key's current webhook secret; `no-store`, as the answer carries a secret."""
    secret = signing.key_webhook_secret(runtime.settings.signing_key(), key.id, key.webhook_secret_generation)
    return json_response(
        {"object": "webhook_secret", "key_id": key.id, "secret": secret},
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/v1/webhook_secret",
    response_model=WebhookSecretObject,
    responses=ERROR_RESPONSES,
    summary="The secret that signs this key's webhooks",
)
async def get_webhook_secret(request: Request, key: ApiKey = Depends(authenticate_fresh)) -> Response:
    """Check `X-Vidgate-Signature` on this key's webhooks with it. The same on every read until rotated."""
    return webhook_secret_answer(runtime_of(request), key)


@router.post(
    "/v1/webhook_secret/rotate",
    response_model=WebhookSecretObject,
    responses=ERROR_RESPONSES,
    summary="Replace the secret that signs this key's webhooks",
)
async def rotate_webhook_secret(request: Request, key: ApiKey = Depends(authenticate_fresh)) -> Response:
    """A new secret signs this key's webhooks from the next delivery on; the old one signs nothing more.
    Answers the new secret."""
    runtime = runtime_of(request)
    rotated = await runtime.keys.rotate_webhook_secret(key.id)
    assert rotated is not None  # the caller's own key, just authenticated; keys are never deleted
    return webhook_secret_answer(runtime, rotated)
