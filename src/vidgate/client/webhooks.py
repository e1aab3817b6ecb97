"""`client.webhooks`: the secret that signs the calling key's webhooks (docs/api.md §6), to read and to
rotate. An admin reaches any key's through `client.admin.keys.webhook_secret(...)`.

As in `videos`, `WebhookOps` holds each operation once and the sync/async classes only run it.
"""

from __future__ import annotations

from vidgate.client._transport import AsyncRunner, Call, Op, RetryPolicy, SyncRunner
from vidgate.client.models import WebhookSecret, parse_model


class WebhookOps:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def secret(self) -> Op[WebhookSecret]:
        raw = yield from self.policy.json(Call("GET", "/v1/webhook_secret"))
        return parse_model(WebhookSecret, raw)

    def rotate_secret(self) -> Op[WebhookSecret]:
        # Not resent after a lost answer (a POST without Idempotency-Key): a second rotation would only
        # replace the secret once more, and `secret()` says which one is current.
        raw = yield from self.policy.json(Call("POST", "/v1/webhook_secret/rotate"))
        return parse_model(WebhookSecret, raw)


class Webhooks:
    """`Client.webhooks`."""

    def __init__(self, runner: SyncRunner, ops: WebhookOps) -> None:
        self._run = runner.run
        self._ops = ops

    def secret(self) -> WebhookSecret:
        """The secret that signs this key's webhooks now."""
        return self._run(self._ops.secret())

    def rotate_secret(self) -> WebhookSecret:
        """Replace it: the new one signs from the next delivery on, the old one nothing more."""
        return self._run(self._ops.rotate_secret())


class AsyncWebhooks:
    """`AsyncClient.webhooks`: the methods of `Webhooks`, awaitable."""

    def __init__(self, runner: AsyncRunner, ops: WebhookOps) -> None:
        self._run = runner.run
        self._ops = ops

    async def secret(self) -> WebhookSecret:
        return await self._run(self._ops.secret())

    async def rotate_secret(self) -> WebhookSecret:
        return await self._run(self._ops.rotate_secret())
