"""`client.admin` of the SDK against the real admin API over loopback, through both clients: keys and
their accounts (create, get, update, top-up with idempotency, ledger, revoke), every key's tasks,
usage, channels, and what a non-admin key gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.sdk_support import SDK
from vidgate.channel_config import ChannelSettings, default_channels
from vidgate.client import (
    AdminTask,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    CreatedKey,
    InsufficientQuotaError,
    NotFoundError,
    PermissionDeniedError,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the admin API's store queries have their own suites on both databases."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def admin_key(gw: Any) -> str:
    runtime = gw.runtime
    _, plaintext = await runtime.keys.create(name="root", is_admin=True, now=runtime.clock.now_ms())
    return str(plaintext)


async def test_keys_accounts_tasks_usage_and_channels(start_gateway: Any, flavour: str) -> None:
    async with start_gateway(run_worker=False, channels=default_channels()) as gw:
        admin = SDK(flavour, gw.base_url, await admin_key(gw))
        clients = [admin]
        try:
            created: CreatedKey = await admin(
                "admin.keys.create", "alice", balance=5_000_000, requests_per_minute=100,
                allowed_models=["sora-2"],
            )  # fmt: skip
            assert created.key.startswith("vg-") and created.key not in repr(created)
            assert (created.name, created.admin, created.balance, created.held, created.available) == (
                "alice", False, 5_000_000, 0, 5_000_000,
            )  # fmt: skip
            assert (created.requests_per_minute, created.allowed_models) == (100, ["sora-2"])
            got = await admin("admin.keys.get", created.id)
            assert got.model_dump() == created.model_dump(exclude={"key"})

            updated = await admin(
                "admin.keys.update", created.id, requests_per_minute=None, max_active_tasks=3
            )
            assert (updated.requests_per_minute, updated.max_active_tasks) == (None, 3)
            assert updated.allowed_models == ["sora-2"]  # not sent: unchanged
            with pytest.raises(TypeError, match="balance"):
                await admin("admin.keys.update", created.id, balance=1)

            topped = await admin(
                "admin.keys.topup", created.id, 2_000_000, note="gift", idempotency_key="t-1"
            )
            assert topped.balance == 7_000_000
            again = await admin("admin.keys.topup", created.id, 2_000_000, note="gift", idempotency_key="t-1")
            assert again.balance == 7_000_000  # the same top-up, credited once
            with pytest.raises(ConflictError) as reused:
                await admin("admin.keys.topup", created.id, 1_000_000, idempotency_key="t-1")
            assert reused.value.code == "idempotency_key_reused"
            ledger = await admin("admin.keys.ledger", created.id)
            topups = [e for e in ledger.data if e.kind == "topup"]
            assert sum(e.amount for e in topups) == 7_000_000  # the opening balance and the one top-up
            assert [(e.amount, e.note) for e in topups if e.reference == "t-1"] == [(2_000_000, "gift")]

            unlimited = await admin("admin.keys.create", "bob")
            assert unlimited.balance is None and unlimited.available is None
            with pytest.raises(ConflictError) as no_account:
                await admin("admin.keys.topup", unlimited.id, 1)
            assert no_account.value.code == "key_unlimited"

            everyone = await admin("admin.keys.list")
            assert [k.name for k in everyone.data] == ["root", "alice", "bob"]  # oldest first
            first = await admin("admin.keys.list", limit=2)
            rest = await admin("admin.keys.list", after=first.last_id, limit=2)
            assert first.has_more and not rest.has_more
            assert [k.id for k in first.data + rest.data] == [k.id for k in everyone.data]

            alice = SDK(flavour, gw.base_url, created.key)
            clients.append(alice)
            video = await alice("videos.create", prompt="billed", duration=4)
            page = await admin("admin.tasks", key_id=created.id)
            [task] = page.data
            assert isinstance(task, AdminTask)
            assert (task.video_id, task.status, task.key_name, task.seconds) == (
                video.id,
                "pending",
                "alice",
                4,
            )
            assert (await admin("admin.tasks", status="completed")).data == []
            with pytest.raises(BadRequestError) as bad_filter:
                await admin("admin.tasks", created_after=10, created_before=5)
            assert bad_filter.value.param == "created_after"
            usage = await admin("admin.usage", key_id=created.id)
            assert [(r.key_name, r.model, r.tasks) for r in usage.data] == [("alice", "sora-2", 1)]
            assert usage.interval == "none"
            [channel] = await admin("admin.channels")
            assert (channel.name, channel.kind, channel.enabled) == ("animate", "animate", True)
            assert channel.circuit is not None and channel.circuit.state == "closed"

            with pytest.raises(NotFoundError):  # a non-admin key: the admin API does not exist for it
                await alice("admin.keys.list")
            revoked = await admin("admin.keys.revoke", created.id)
            assert revoked.revoked_at is not None
            with pytest.raises(AuthenticationError):
                await alice("videos.list")
            active = await admin("admin.keys.list", include_revoked=False)
            assert "alice" not in [k.name for k in active.data]
            with pytest.raises(NotFoundError):
                await admin("admin.keys.get", "01nosuchkey0000000000000000")
        finally:
            for client in clients:
                await client.close()


async def test_a_balance_too_small_and_a_model_not_allowed_are_their_own_errors(
    start_gateway: Any, flavour: str
) -> None:
    priced = ChannelSettings(
        name="animate", kind="animate", models=["sora-2", "sora-2-pro"], pricing={"*": {"per_clip": "1"}}
    )
    async with start_gateway(run_worker=False, channels=[priced]) as gw:
        admin = SDK(flavour, gw.base_url, await admin_key(gw))
        clients = [admin]
        try:
            poor = await admin("admin.keys.create", "poor", balance=500_000, allowed_models=["sora-2"])
            client = SDK(flavour, gw.base_url, poor.key)
            clients.append(client)
            with pytest.raises(InsufficientQuotaError) as broke:
                await client("videos.create", prompt="costs a credit", duration=4)
            assert (broke.value.status_code, broke.value.code) == (402, "insufficient_quota")
            with pytest.raises(PermissionDeniedError) as denied:
                await client("videos.create", prompt="x", model="sora-2-pro", duration=4)
            assert (denied.value.status_code, denied.value.code, denied.value.param) == (
                403, "model_not_allowed", "model",
            )  # fmt: skip
            await admin("admin.keys.topup", poor.id, 1_000_000)
            video = await client("videos.create", prompt="now paid for", duration=4)
            assert video.status == "pending"
            assert (await admin("admin.keys.get", poor.id)).held == 1_000_000
            [task] = (await admin("admin.tasks", key_id=poor.id)).data
            assert task.hold_amount == 1_000_000
        finally:
            for one in clients:
                await one.close()
