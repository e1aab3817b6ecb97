"""`client.admin`: the admin API (`/v1/admin/...`, an admin key only): keys, their accounts and webhook
secrets, every key's tasks, usage and the channels. Amounts are integers of micro-credits
(1 credit = 1_000_000).

As in `videos`, `AdminOps` holds each operation once and the sync/async classes only run it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from vidgate.client._transport import AsyncRunner, Call, Op, RetryPolicy, SyncRunner
from vidgate.client.models import (
    AdminTaskDetail,
    AdminTaskPage,
    ApiKeyInfo,
    ChannelStatus,
    CreatedKey,
    KeyPage,
    LedgerPage,
    Usage,
    WebhookSecret,
    parse_model,
)

# What PATCH /v1/admin/keys/{id} takes; None for any of them means "back to the default".
UPDATABLE_KEY_FIELDS = frozenset(
    {"requests_per_minute", "creates_per_minute", "max_active_tasks", "allowed_models"}
)


def _key_path(key_id: str, tail: str = "") -> str:
    return f"/v1/admin/keys/{quote(str(key_id).strip(), safe='')}{tail}"


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class AdminOps:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def create_key(
        self,
        name: str,
        *,
        admin: bool,
        balance: int | None,
        requests_per_minute: int | None,
        creates_per_minute: int | None,
        max_active_tasks: int | None,
        allowed_models: Sequence[str] | None,
    ) -> Op[CreatedKey]:
        body = _present(
            {
                "name": name,
                "admin": admin,
                "balance": balance,
                "requests_per_minute": requests_per_minute,
                "creates_per_minute": creates_per_minute,
                "max_active_tasks": max_active_tasks,
                "allowed_models": None if allowed_models is None else list(allowed_models),
            }
        )
        raw = yield from self.policy.json(Call("POST", "/v1/admin/keys", json=body))
        return parse_model(CreatedKey, raw)

    def list_keys(self, *, include_revoked: bool, after: str | None, limit: int) -> Op[KeyPage]:
        params = _present(
            {"include_revoked": "true" if include_revoked else "false", "after": after, "limit": limit}
        )
        raw = yield from self.policy.json(Call("GET", "/v1/admin/keys", params=params))
        return parse_model(KeyPage, raw)

    def get_key(self, key_id: str) -> Op[ApiKeyInfo]:
        raw = yield from self.policy.json(Call("GET", _key_path(key_id)))
        return parse_model(ApiKeyInfo, raw)

    def update_key(self, key_id: str, fields: Mapping[str, Any]) -> Op[ApiKeyInfo]:
        unknown = set(fields) - UPDATABLE_KEY_FIELDS
        if unknown:
            raise TypeError(
                f"keys.update() got unknown field(s) {sorted(unknown)}; "
                f"it takes {sorted(UPDATABLE_KEY_FIELDS)}"
            )
        body = {k: (list(v) if k == "allowed_models" and v is not None else v) for k, v in fields.items()}
        raw = yield from self.policy.json(Call("PATCH", _key_path(key_id), json=body))
        return parse_model(ApiKeyInfo, raw)

    def revoke_key(self, key_id: str) -> Op[ApiKeyInfo]:
        raw = yield from self.policy.json(Call("POST", _key_path(key_id, "/revoke")))
        return parse_model(ApiKeyInfo, raw)

    def topup(
        self, key_id: str, amount: int, *, note: str | None, idempotency_key: str | None
    ) -> Op[ApiKeyInfo]:
        # Always keyed, so that a top-up retried after a lost answer is credited once.
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        call = Call(
            "POST",
            _key_path(key_id, "/topup"),
            json=_present({"amount": amount, "note": note}),
            headers=headers,
        )
        raw = yield from self.policy.json(call)
        return parse_model(ApiKeyInfo, raw)

    def ledger(self, key_id: str, *, after: int | None, limit: int) -> Op[LedgerPage]:
        params = _present({"after": after, "limit": limit})
        raw = yield from self.policy.json(Call("GET", _key_path(key_id, "/ledger"), params=params))
        return parse_model(LedgerPage, raw)

    def webhook_secret(self, key_id: str) -> Op[WebhookSecret]:
        raw = yield from self.policy.json(Call("GET", _key_path(key_id, "/webhook_secret")))
        return parse_model(WebhookSecret, raw)

    def rotate_webhook_secret(self, key_id: str) -> Op[WebhookSecret]:
        raw = yield from self.policy.json(Call("POST", _key_path(key_id, "/webhook_secret/rotate")))
        return parse_model(WebhookSecret, raw)

    def task(self, task_id: str) -> Op[AdminTaskDetail]:
        path = f"/v1/admin/tasks/{quote(str(task_id).strip(), safe='')}"
        raw = yield from self.policy.json(Call("GET", path))
        return parse_model(AdminTaskDetail, raw)

    def tasks(self, params: Mapping[str, Any]) -> Op[AdminTaskPage]:
        raw = yield from self.policy.json(Call("GET", "/v1/admin/tasks", params=_present(params)))
        return parse_model(AdminTaskPage, raw)

    def usage(self, params: Mapping[str, Any]) -> Op[Usage]:
        raw = yield from self.policy.json(Call("GET", "/v1/admin/usage", params=_present(params)))
        return parse_model(Usage, raw)

    def channels(self) -> Op[list[ChannelStatus]]:
        raw = yield from self.policy.json(Call("GET", "/v1/admin/channels"))
        data = raw.get("data") if isinstance(raw, dict) else None
        if not isinstance(data, list):
            data = [raw]  # makes parse_model name the problem
        return [parse_model(ChannelStatus, item) for item in data]


class Keys:
    """`Client.admin.keys`."""

    def __init__(self, runner: SyncRunner, ops: AdminOps) -> None:
        self._run = runner.run
        self._ops = ops

    def create(
        self,
        name: str,
        *,
        admin: bool = False,
        balance: int | None = None,
        requests_per_minute: int | None = None,
        creates_per_minute: int | None = None,
        max_active_tasks: int | None = None,
        allowed_models: Sequence[str] | None = None,
    ) -> CreatedKey:
        return self._run(
            self._ops.create_key(
                name, admin=admin, balance=balance, requests_per_minute=requests_per_minute,
                creates_per_minute=creates_per_minute, max_active_tasks=max_active_tasks,
                allowed_models=allowed_models,
            )
        )  # fmt: skip

    def list(self, include_revoked: bool = True, *, after: str | None = None, limit: int = 20) -> KeyPage:
        return self._run(self._ops.list_keys(include_revoked=include_revoked, after=after, limit=limit))

    def get(self, key_id: str) -> ApiKeyInfo:
        return self._run(self._ops.get_key(key_id))

    def update(self, key_id: str, **fields: Any) -> ApiKeyInfo:
        return self._run(self._ops.update_key(key_id, fields))

    def revoke(self, key_id: str) -> ApiKeyInfo:
        return self._run(self._ops.revoke_key(key_id))

    def topup(
        self, key_id: str, amount: int, *, note: str | None = None, idempotency_key: str | None = None
    ) -> ApiKeyInfo:
        return self._run(self._ops.topup(key_id, amount, note=note, idempotency_key=idempotency_key))

    def ledger(self, key_id: str, after: int | None = None, limit: int = 100) -> LedgerPage:
        return self._run(self._ops.ledger(key_id, after=after, limit=limit))

    def webhook_secret(self, key_id: str) -> WebhookSecret:
        return self._run(self._ops.webhook_secret(key_id))

    def rotate_webhook_secret(self, key_id: str) -> WebhookSecret:
        return self._run(self._ops.rotate_webhook_secret(key_id))


class Admin:
    """`Client.admin`."""

    def __init__(self, runner: SyncRunner, ops: AdminOps) -> None:
        self._run = runner.run
        self._ops = ops
        self.keys = Keys(runner, ops)

    def tasks(
        self,
        status: str | None = None,
        channel: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> AdminTaskPage:
        return self._run(self._ops.tasks(dict(
            status=status, channel=channel, model=model, key_id=key_id, created_after=created_after,
            created_before=created_before, after=after, limit=limit,
        )))  # fmt: skip

    def task(self, task_id: str) -> AdminTaskDetail:
        """One task of any key, with every upstream create it sent (`attempts`)."""
        return self._run(self._ops.task(task_id))

    def usage(
        self,
        start: int | None = None,
        end: int | None = None,
        key_id: str | None = None,
        model: str | None = None,
        interval: str | None = None,
    ) -> Usage:
        return self._run(
            self._ops.usage(dict(start=start, end=end, key_id=key_id, model=model, interval=interval))
        )

    def channels(self) -> list[ChannelStatus]:
        return self._run(self._ops.channels())


class AsyncKeys:
    """`AsyncClient.admin.keys`: the methods of `Keys`, awaitable."""

    def __init__(self, runner: AsyncRunner, ops: AdminOps) -> None:
        self._run = runner.run
        self._ops = ops

    async def create(
        self,
        name: str,
        *,
        admin: bool = False,
        balance: int | None = None,
        requests_per_minute: int | None = None,
        creates_per_minute: int | None = None,
        max_active_tasks: int | None = None,
        allowed_models: Sequence[str] | None = None,
    ) -> CreatedKey:
        return await self._run(
            self._ops.create_key(
                name, admin=admin, balance=balance, requests_per_minute=requests_per_minute,
                creates_per_minute=creates_per_minute, max_active_tasks=max_active_tasks,
                allowed_models=allowed_models,
            )
        )  # fmt: skip

    async def list(
        self, include_revoked: bool = True, *, after: str | None = None, limit: int = 20
    ) -> KeyPage:
        return await self._run(self._ops.list_keys(include_revoked=include_revoked, after=after, limit=limit))

    async def get(self, key_id: str) -> ApiKeyInfo:
        return await self._run(self._ops.get_key(key_id))

    async def update(self, key_id: str, **fields: Any) -> ApiKeyInfo:
        return await self._run(self._ops.update_key(key_id, fields))

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        return await self._run(self._ops.revoke_key(key_id))

    async def topup(
        self, key_id: str, amount: int, *, note: str | None = None, idempotency_key: str | None = None
    ) -> ApiKeyInfo:
        return await self._run(self._ops.topup(key_id, amount, note=note, idempotency_key=idempotency_key))

    async def ledger(self, key_id: str, after: int | None = None, limit: int = 100) -> LedgerPage:
        return await self._run(self._ops.ledger(key_id, after=after, limit=limit))

    async def webhook_secret(self, key_id: str) -> WebhookSecret:
        return await self._run(self._ops.webhook_secret(key_id))

    async def rotate_webhook_secret(self, key_id: str) -> WebhookSecret:
        return await self._run(self._ops.rotate_webhook_secret(key_id))


class AsyncAdmin:
    """`AsyncClient.admin`."""

    def __init__(self, runner: AsyncRunner, ops: AdminOps) -> None:
        self._run = runner.run
        self._ops = ops
        self.keys = AsyncKeys(runner, ops)

    async def tasks(
        self,
        status: str | None = None,
        channel: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> AdminTaskPage:
        return await self._run(self._ops.tasks(dict(
            status=status, channel=channel, model=model, key_id=key_id, created_after=created_after,
            created_before=created_before, after=after, limit=limit,
        )))  # fmt: skip

    async def task(self, task_id: str) -> AdminTaskDetail:
        return await self._run(self._ops.task(task_id))

    async def usage(
        self,
        start: int | None = None,
        end: int | None = None,
        key_id: str | None = None,
        model: str | None = None,
        interval: str | None = None,
    ) -> Usage:
        return await self._run(
            self._ops.usage(dict(start=start, end=end, key_id=key_id, model=model, interval=interval))
        )

    async def channels(self) -> list[ChannelStatus]:
        return await self._run(self._ops.channels())
