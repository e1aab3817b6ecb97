"""A key's balance stays within ±10^18 micro-credits (10^12 credits) and what it holds within 0 to 10^18,
the documented cap (docs/accounts.md): the admin API, the store under the CLI and the database itself
refuse to pass it, on SQLite and PostgreSQL, and a pair of concurrent top-ups cannot pass it together.

The probe that found it: a key created with 10^18 micro-credits (the largest amount accepted) took ten
top-ups of 10^18 more, and SQLite then stored 1.1e19 as a float (`"balance": 1.1e+19`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import create_engine, select

from tests.helpers import scripted_channel
from tests.integration.test_admin_api import UNIFIED, admin_gateway, assert_bad
from tests.integration.test_cli import run
from tests.integration.test_cli_key_limits import key_id
from vidgate.channel_config import ChannelSettings
from vidgate.errors import InvalidRequest
from vidgate.ids import parse_task_id
from vidgate.store.db import sync_url
from vidgate.store.tables import api_keys, ledger_entries

CAP = 10**18  # micro-credits: 10^12 credits
CREDIT = 1_000_000
PAST_THE_CAP = "balance_limit_exceeded"


@pytest.mark.anyio
async def test_the_probes_top_ups_past_the_cap_are_refused(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        whale = await admin.new_key("whale", balance=CAP)
        url = f"/v1/admin/keys/{whale['id']}"
        for _ in range(10):
            refused = await admin.client.post(f"{url}/topup", json={"amount": CAP})
            assert_bad(refused, "amount", PAST_THE_CAP)
        refused = await admin.client.post(f"{url}/topup", json={"amount": 1})
        assert_bad(refused, "amount", PAST_THE_CAP)
        assert "1000000000000 credits" in refused.json()["error"]["message"]  # it says what the cap is
        shown = await admin.ok("GET", url)
        assert (shown["balance"], shown["held"], shown["available"]) == (CAP, 0, CAP)
        assert type(shown["balance"]) is int  # never a float
        ledger = (await admin.ok("GET", f"{url}/ledger"))["data"]
        assert [(e["kind"], e["amount"]) for e in ledger] == [("topup", CAP)]  # nothing refused is entered

        # Up to the cap exactly is allowed; the retry of a top-up that reached it is answered, not refused.
        empty = await admin.new_key("empty", balance=0)
        url = f"/v1/admin/keys/{empty['id']}"
        await admin.ok("POST", f"{url}/topup", json={"amount": CAP - 1})
        last = {"json": {"amount": 1}, "headers": {"Idempotency-Key": "the-last-one"}}
        topped = await admin.ok("POST", f"{url}/topup", **last)
        assert topped["balance"] == CAP
        assert await admin.ok("POST", f"{url}/topup", **last) == topped
        over = await admin.client.post("/v1/admin/keys", json={"name": "x", "balance": CAP + 1})
        assert_bad(over, "balance")


@pytest.mark.anyio
async def test_concurrent_top_ups_cannot_pass_the_cap_together(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        key = await admin.new_key("race", balance=CAP - 10 * CREDIT)  # room for three top-ups of 3
        url = f"/v1/admin/keys/{key['id']}/topup"
        answers: list[httpx.Response] = []

        async def topup(i: int) -> None:
            body = {"amount": 3 * CREDIT}
            answers.append(await admin.client.post(url, json=body, headers={"Idempotency-Key": f"r{i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(topup, i)
        assert sorted(a.status_code for a in answers) == [200] * 3 + [400] * 5, [a.text for a in answers]
        for refused in (a for a in answers if a.status_code == 400):
            assert_bad(refused, "amount", PAST_THE_CAP)
        shown = await admin.ok("GET", f"/v1/admin/keys/{key['id']}")
        assert shown["balance"] == CAP - CREDIT
        ledger = await admin.ok("GET", f"/v1/admin/keys/{key['id']}/ledger")
        assert [e["amount"] for e in ledger["data"]] == [CAP - 10 * CREDIT] + [3 * CREDIT] * 3


@pytest.mark.anyio
async def test_adjustments_stay_within_the_cap_and_a_capture_after_them_still_fits(
    start_gateway: Any, tmp_path: Path
) -> None:
    """An adjustment may take the balance below what the key holds, but never its available credits
    below -10^18: a task's capture leaves available as it is, so the balance after it is still in bounds
    (the database would refuse anything else, and the worker's end of the task with it)."""
    async with admin_gateway(start_gateway, tmp_path) as admin:
        key = await admin.new_key("acme", balance=CREDIT)
        keys = admin.gw.runtime.keys
        now = admin.clock.now_ms()
        with pytest.raises(InvalidRequest) as too_much:
            await keys.adjust(key["id"], CAP, now=now, note="a slip of the finger")
        assert (too_much.value.param, too_much.value.code) == ("amount", PAST_THE_CAP)

        async with admin.gw.client(key["key"]) as as_acme:
            made = await as_acme.post("/v1/video/create", json=UNIFIED)  # holds the whole credit
            assert made.status_code == 200, made.text
        task = parse_task_id(made.json()["id"])
        assert task is not None
        floor = await keys.adjust(key["id"], -CAP, now=now, note="down to the floor")
        assert floor is not None
        assert (floor.balance, floor.held, floor.available) == (CREDIT - CAP, CREDIT, -CAP)
        with pytest.raises(InvalidRequest) as too_low:
            await keys.adjust(key["id"], -1, now=now, note="one more")
        assert (too_low.value.param, too_low.value.code) == ("amount", PAST_THE_CAP)

        async def completed() -> bool:
            return await admin.statuses([task]) == ["completed"]

        await admin.run_worker_until(completed)
        after = await keys.get(key["id"])
        assert after is not None
        assert (after.balance, after.held) == (-CAP, 0)  # charged its credit: exactly at the floor


@pytest.mark.anyio
async def test_an_unlimited_key_holds_no_more_than_the_cap(start_gateway: Any, tmp_path: Path) -> None:
    """An unlimited key keeps no balance but holds its tasks' prices all the same: never past the cap."""
    dear = ChannelSettings(
        name="dear",
        kind="scripted",
        models=["sora-2"],
        options=scripted_channel(tmp_path / "up").options,
        pricing={"sora-2": {"per_clip": 10**12}},  # the cap, in credits: the largest price there is
    )
    async with start_gateway(run_worker=False, channels=[dear]) as gw:
        plaintext = await gw.new_key()
        key = await gw.runtime.keys.authenticate(plaintext)
        async with gw.client(plaintext) as client:
            first = await client.post("/v1/video/create", json=UNIFIED)
            assert first.status_code == 200, first.text
            second = await client.post("/v1/video/create", json=UNIFIED)
        assert second.status_code == 402, second.text
        assert "1000000000000 credits" in second.json()["error"]["message"]
        after = await gw.runtime.keys.get(key.id)
        assert (after.balance, after.held) == (None, CAP)


# The CLI (`vidgate keys`, straight to the database) -------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {
        **base,
        "VIDGATE_DATA_DIR": str(tmp_path / "data"),
        "VIDGATE_DATABASE_URL": db_url,
        "VIDGATE_AUTO_MIGRATE": "true",
    }


def stored(env: dict[str, str], key: str) -> tuple[Any, list[int]]:
    engine = create_engine(sync_url(env["VIDGATE_DATABASE_URL"]))
    try:
        with engine.connect() as conn:
            balance = conn.execute(select(api_keys.c.balance).where(api_keys.c.id == key)).scalar_one()
            query = select(ledger_entries.c.amount).where(ledger_entries.c.key_id == key)
            amounts = list(conn.execute(query.order_by(ledger_entries.c.id)).scalars())
    finally:
        engine.dispose()
    return balance, amounts


def test_the_cli_refuses_to_pass_the_cap(env: dict[str, str]) -> None:
    run(["keys", "create", "--name", "whale", "--balance", "1000000000000"], env)  # the cap, in credits
    whale = key_id(env, "whale")
    for args in (
        ["keys", "topup", whale, "0.000001"],
        ["keys", "topup", whale, "1000000000000"],
        ["keys", "adjust", whale, "1", "--note", "a bonus"],
    ):
        refused = run(args, env, check=False)
        assert refused.returncode == 1, (args, refused.stderr)
        assert "1000000000000 credits" in " ".join(refused.stderr.split()), refused.stderr
    over = run(["keys", "create", "--name", "over", "--balance", "1000000000000.000001"], env, check=False)
    assert over.returncode == 2 and "--balance" in over.stderr, over.stderr
    balance, amounts = stored(env, whale)
    assert (balance, amounts) == (CAP, [CAP])
    assert type(balance) is int
