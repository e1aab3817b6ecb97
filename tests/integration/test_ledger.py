"""Accounts over the real API: a task's price is held at create (402 when it cannot be), captured when it
completes, released when it fails or is cancelled, on SQLite and PostgreSQL; the ledger's invariants hold
after every test (tests/ledger_checks.py)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import wait_for_status
from tests.ledger_checks import assert_ledger_consistent
from vidgate.channel_config import ChannelSettings
from vidgate.config import BillingSettings
from vidgate.money import parse_credits

pytestmark = pytest.mark.anyio
FOUR_SECONDS = {"prompt": "a kite", "seconds": "4", "size": "720x1280"}  # OpenAI dialect
PRICE = parse_credits("0.3")  # relay: 0.1 per clip + 0.05 per second, 4 s


def channel(
    tmp_path: Path, name: str, models: list[str], pricing: dict[str, Any], **extra: Any
) -> ChannelSettings:
    options = {
        "state_dir": str(tmp_path / name),
        "poll_after": 0.01,
        "clip_scale": 20,
        **extra.pop("options", {}),
    }
    return ChannelSettings(
        name=name, kind="scripted", models=models, pricing=pricing, options=options, **extra
    )


def priced_channels(tmp_path: Path) -> list[ChannelSettings]:
    return [
        channel(
            tmp_path,
            "relay",
            ["sora-2"],
            {"sora-2": {"per_clip": "0.1", "per_second": "0.05", "sizes": {"1792x1024": {"per_second": 1}}}},
        ),
        channel(
            tmp_path,
            "strict",
            ["sora-2-pro"],
            {"*": {"per_clip": 2}},
            options={"fail_code": "content_policy", "fail_message": "refused by the moderation"},
        ),
        channel(tmp_path, "free", ["sora-2-all"], {}),
    ]


async def new_key(gw: Any, balance: str | None, **fields: Any) -> tuple[str, str]:
    runtime = gw.runtime
    micros = None if balance is None else parse_credits(balance)
    record, plaintext = await runtime.keys.create(
        name="buyer", is_admin=False, now=runtime.clock.now_ms(), balance=micros, **fields
    )
    return record.id, plaintext


async def account(gw: Any, key_id: str) -> tuple[int | None, int]:
    record = await gw.runtime.keys.get(key_id)
    return record.balance, record.held


async def finished(c: httpx.AsyncClient, video_id: str) -> dict[str, Any]:
    return await wait_for_status(c, video_id, timeout=60)


async def test_a_completed_task_is_charged_its_price_and_nothing_more(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "10")
        async with gw.client(key) as c:
            r = await c.post("/v1/videos", json=FOUR_SECONDS)
            assert r.status_code == 200, r.text
            # Held at once, in the create's transaction.
            balance, held = await account(gw, key_id)
            assert (balance, held) == (parse_credits("10"), PRICE)
            assert (await finished(c, r.json()["id"]))["status"] == "completed"
            # A larger size has its own price: 1 credit per second (and no per-clip price).
            wide = await c.post("/v1/videos", json={**FOUR_SECONDS, "size": "1792x1024"})
            assert (await finished(c, wide.json()["id"]))["status"] == "completed"
        assert await account(gw, key_id) == (parse_credits("10") - PRICE - parse_credits("4"), 0)
        moves = await assert_ledger_consistent(gw.runtime.engine)
        assert sorted(m["capture"] for m in moves.values()) == [PRICE, parse_credits("4")]
        entries, more = await gw.runtime.keys.ledger(key_id)
        assert not more
        assert [e.kind for e in entries] == ["topup", "hold", "capture", "hold", "capture"]
        assert entries[0].note == "opening balance"


async def test_the_hold_is_the_dearest_channel_and_the_rest_is_released(
    start_gateway, tmp_path: Path
) -> None:
    channels = [
        channel(tmp_path, "cheap", ["sora-2"], {"sora-2": {"per_clip": 1}}, priority=0),
        channel(tmp_path, "dear", ["sora-2"], {"sora-2": {"per_clip": 3}}, priority=1),
    ]
    async with start_gateway(channels=channels) as gw:
        key_id, key = await new_key(gw, "5")
        async with gw.client(key) as c:
            r = await c.post("/v1/videos", json=FOUR_SECONDS)
            assert await account(gw, key_id) == (parse_credits("5"), parse_credits("3"))
            assert (await finished(c, r.json()["id"]))["status"] == "completed"
        assert await account(gw, key_id) == (parse_credits("4"), 0)
        [moves] = (await assert_ledger_consistent(gw.runtime.engine)).values()
        assert moves == {
            "hold": parse_credits("3"),
            "capture": parse_credits("1"),
            "release": parse_credits("2"),
        }


async def test_not_enough_balance_is_a_402_and_saves_nothing(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "0.29")
        async with gw.client(key) as c:
            for path, body in (
                ("/v1/videos", FOUR_SECONDS),
                (
                    "/v1/video/create",
                    {"model": "sora-2", "prompt": "x", "duration": 4, "orientation": "portrait"},
                ),
            ):
                r = await c.post(path, json=body)
                assert r.status_code == 402, r.text
                error = r.json()["error"]
                assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
                assert "0.3" in error["message"] and "0.29" in error["message"]
            assert (await c.get("/v1/videos")).json()["data"] == []
            assert await account(gw, key_id) == (parse_credits("0.29"), 0)
            # A channel without pricing charges nothing, whatever the balance.
            assert (
                await c.post("/v1/videos", json={**FOUR_SECONDS, "model": "sora-2-all"})
            ).status_code == 200
            # Topped up, the same request goes through.
            await gw.runtime.keys.topup(key_id, parse_credits("0.01"), now=gw.runtime.clock.now_ms())
            assert (await c.post("/v1/videos", json=FOUR_SECONDS)).status_code == 200
            assert await account(gw, key_id) == (parse_credits("0.3"), PRICE)
        await assert_ledger_consistent(gw.runtime.engine)


async def test_concurrent_creates_never_overdraw_a_key(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "0.9")  # exactly three tasks
        async with gw.client(key) as c:
            answers = await asyncio.gather(*(c.post("/v1/videos", json=FOUR_SECONDS) for _ in range(12)))
        assert sorted(r.status_code for r in answers) == [200] * 3 + [402] * 9
        assert await account(gw, key_id) == (parse_credits("0.9"), 3 * PRICE)
        await assert_ledger_consistent(gw.runtime.engine)


async def test_an_idempotent_replay_is_answered_even_with_no_balance_left(
    start_gateway, tmp_path: Path
) -> None:
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "0.3")
        async with gw.client(key) as c:
            first, again = await asyncio.gather(
                *(
                    c.post("/v1/videos", json=FOUR_SECONDS, headers={"idempotency-key": "k1"})
                    for _ in range(2)
                )
            )
            assert first.status_code == again.status_code == 200, (first.text, again.text)
            assert first.json()["id"] == again.json()["id"]
            later = await c.post("/v1/videos", json=FOUR_SECONDS, headers={"idempotency-key": "k1"})
            assert later.json()["id"] == first.json()["id"]
            assert (await c.post("/v1/videos", json=FOUR_SECONDS)).status_code == 402
        assert await account(gw, key_id) == (parse_credits("0.3"), PRICE)  # held once
        await assert_ledger_consistent(gw.runtime.engine)


async def test_cancel_and_delete_of_an_active_task_release_its_hold(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "1")
        async with gw.client(key) as c:
            one = (await c.post("/v1/videos", json=FOUR_SECONDS)).json()["id"]
            two = (await c.post("/v1/videos", json=FOUR_SECONDS)).json()["id"]
            assert await account(gw, key_id) == (parse_credits("1"), 2 * PRICE)
            assert (await c.post(f"/v1/videos/{one}/cancel")).status_code == 200
            assert (await c.delete(f"/v1/videos/{two}")).status_code == 200
            # Once ended, a second cancel is a 409 and moves nothing.
            assert (await c.post(f"/v1/videos/{one}/cancel")).status_code == 409
        assert await account(gw, key_id) == (parse_credits("1"), 0)
        moves = await assert_ledger_consistent(gw.runtime.engine)
        assert [m.get("release") for m in moves.values()] == [PRICE, PRICE]


async def test_deleting_a_completed_video_refunds_nothing(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, "1")
        async with gw.client(key) as c:
            video = (await c.post("/v1/videos", json=FOUR_SECONDS)).json()["id"]
            assert (await finished(c, video))["status"] == "completed"
            assert (await c.delete(f"/v1/videos/{video}")).status_code == 200
        assert await account(gw, key_id) == (parse_credits("1") - PRICE, 0)
        await assert_ledger_consistent(gw.runtime.engine)


@pytest.mark.parametrize("refund_moderation", [True, False])
async def test_a_moderation_refusal_follows_the_refund_policy(
    start_gateway, tmp_path: Path, refund_moderation: bool
) -> None:
    billing = BillingSettings(refund_moderation=refund_moderation)
    async with start_gateway(channels=priced_channels(tmp_path), billing=billing) as gw:
        key_id, key = await new_key(gw, "5")
        async with gw.client(key) as c:
            r = await c.post("/v1/videos", json={**FOUR_SECONDS, "model": "sora-2-pro"})
            final = await finished(c, r.json()["id"])
            assert (final["status"], final["error"]["code"]) == ("failed", "content_policy"), final
        charged = 0 if refund_moderation else parse_credits("2")
        assert await account(gw, key_id) == (parse_credits("5") - charged, 0)
        [moves] = (await assert_ledger_consistent(gw.runtime.engine)).values()
        assert moves.get("capture", 0) == charged


async def test_an_unlimited_key_is_never_refused_and_its_usage_is_entered(
    start_gateway, tmp_path: Path
) -> None:
    async with start_gateway(channels=priced_channels(tmp_path)) as gw:
        key_id, key = await new_key(gw, None)
        async with gw.client(key) as c:
            video = (await c.post("/v1/videos", json=FOUR_SECONDS)).json()["id"]
            assert (await finished(c, video))["status"] == "completed"
        assert await account(gw, key_id) == (None, 0)
        [moves] = (await assert_ledger_consistent(gw.runtime.engine)).values()
        assert moves == {"hold": PRICE, "capture": PRICE}


async def test_a_key_limited_to_some_models_gets_403_for_others(start_gateway, tmp_path: Path) -> None:
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        _, key = await new_key(gw, None, allowed_models=["sora-2-all"])
        async with gw.client(key) as c:
            r = await c.post("/v1/videos", json=FOUR_SECONDS)
            assert r.status_code == 403, r.text
            assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("model_not_allowed", "model")
            assert (
                await c.post("/v1/videos", json={**FOUR_SECONDS, "model": "sora-2-all"})
            ).status_code == 200


async def test_top_ups_are_idempotent_by_reference(start_gateway, tmp_path: Path) -> None:
    from vidgate.errors import Conflict

    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        keys, now = gw.runtime.keys, gw.runtime.clock.now_ms()
        key_id, _ = await new_key(gw, "1")
        results = await asyncio.gather(
            *(keys.topup(key_id, parse_credits("2"), now=now, reference="invoice-7") for _ in range(4))
        )
        assert {r.balance for r in results} == {parse_credits("3")}
        with pytest.raises(Conflict) as reused:
            await keys.topup(key_id, parse_credits("5"), now=now, reference="invoice-7")
        assert reused.value.code == "idempotency_key_reused"
        unlimited_id, _ = await new_key(gw, None)
        with pytest.raises(Conflict) as unlimited:
            await keys.topup(unlimited_id, 1, now=now)
        assert unlimited.value.code == "key_unlimited"
        adjusted = await keys.adjust(key_id, -parse_credits("0.5"), now=now, note="refund of a double charge")
        assert adjusted is not None and adjusted.balance == parse_credits("2.5")
        assert await keys.topup("no-such-key", 1, now=now) is None
        await assert_ledger_consistent(gw.runtime.engine)


async def test_a_change_of_models_or_limits_applies_at_once_in_the_process_that_made_it(
    start_gateway, tmp_path: Path
) -> None:
    # A long key cache: only forgetting the changed key can make the change visible within the test.
    async with start_gateway(
        run_worker=False, channels=priced_channels(tmp_path), key_cache_seconds=300
    ) as gw:
        key_id, key = await new_key(gw, None)
        async with gw.client(key) as c:
            assert (await c.post("/v1/videos", json=FOUR_SECONDS)).status_code == 200  # the key is cached
            await gw.runtime.keys.set_allowed_models(key_id, ["sora-2-all"])
            assert (await c.post("/v1/videos", json=FOUR_SECONDS)).status_code == 403
            await gw.runtime.keys.set_limits(key_id, {"max_active_tasks": 1})
            r = await c.post("/v1/videos", json={**FOUR_SECONDS, "model": "sora-2-all"})
            assert r.status_code == 429, r.text


async def test_grouped_creates_hold_once_per_task_made(start_gateway, tmp_path: Path) -> None:
    """Concurrent creates go in groups (one commit each): a task refused inside its group (a repeated
    idempotency key) gives its hold back, and keys holding in one group keep their own balances."""
    async with start_gateway(run_worker=False, channels=priced_channels(tmp_path)) as gw:
        accounts_ = [await new_key(gw, "3") for _ in range(3)]
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(gw.client(key)) for _, key in accounts_]
            same_key = {"idempotency-key": "once"}
            answers = await asyncio.gather(
                *(
                    c.post("/v1/videos", json=FOUR_SECONDS, headers=same_key)
                    for c in clients
                    for _ in range(4)
                ),
                *(c.post("/v1/videos", json=FOUR_SECONDS) for c in clients for _ in range(4)),
            )
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
        for n, (key_id, _) in enumerate(accounts_):
            replays = {r.json()["id"] for r in answers[4 * n : 4 * n + 4]}
            assert len(replays) == 1  # one task for the four creates with one idempotency key
            assert await account(gw, key_id) == (parse_credits("3"), 5 * PRICE)
        await assert_ledger_consistent(gw.runtime.engine)
