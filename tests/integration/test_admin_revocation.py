"""A revoked admin key is refused by the admin API at once in every API process, although ordinary
routes remember keys for `VIDGATE_KEY_CACHE_SECONDS`: the admin routes read the key's row on every
request. Two gateways (two apps, each with its own runtime and key cache, as two processes have)
share one database, over real loopback HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

# Far longer than the test: a pass can never come from a cached entry that happened to expire.
CACHE_SECONDS = 300
VOLATILE_HEADERS = {"date", "x-request-id"}


def comparable(r: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return r.status_code, r.content, {k: v for k, v in r.headers.items() if k not in VOLATILE_HEADERS}


async def test_an_admin_key_revoked_in_one_process_is_refused_by_the_next_admin_request_in_another(
    start_gateway: Any,
) -> None:
    async with (
        start_gateway(run_worker=False, key_cache_seconds=CACHE_SECONDS) as a,
        start_gateway(run_worker=False, key_cache_seconds=CACHE_SECONDS) as b,
    ):
        assert a.settings.resolved_database_url == b.settings.resolved_database_url
        _, root = await a.runtime.keys.create(name="root", is_admin=True, now=a.runtime.clock.now_ms())
        async with a.client(root) as root_on_a:
            made = await root_on_a.post("/v1/admin/keys", json={"name": "ops", "admin": True})
            assert made.status_code == 201, made.text
            ops_id, ops = made.json()["id"], made.json()["key"]

            async with b.client(ops) as ops_on_b, b.client("vg-" + "x" * 43) as unknown_on_b:
                # B has seen (and, before the fix, cached) the key on both kinds of route.
                assert (await ops_on_b.get("/v1/admin/keys")).status_code == 200
                assert (await ops_on_b.get("/v1/videos")).status_code == 200

                revoked = await root_on_a.post(f"/v1/admin/keys/{ops_id}/revoke")
                assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None

                # The very next admin request in B: refused, exactly as an unknown key is.
                for method, path, body in [
                    ("POST", "/v1/admin/keys", {"name": "survivor", "admin": True}),
                    ("GET", "/v1/admin/keys", None),
                    ("POST", f"/v1/admin/keys/{ops_id}/topup", {"amount": 1}),
                ]:
                    answer = await ops_on_b.request(method, path, json=body)
                    assert answer.status_code != 201, answer.text
                    stranger = await unknown_on_b.request(method, path, json=body)
                    assert comparable(answer) == comparable(stranger), (method, path, answer.text)

            # In the process that revoked it, the key is refused at once on ordinary routes too.
            async with a.client(ops) as ops_on_a:
                assert (await ops_on_a.get("/v1/videos")).status_code == 401

        names = [k.name for k in await a.runtime.keys.list()]
        assert names == ["root", "ops"], names  # no key was made with the revoked one


async def test_a_key_revoked_in_one_process_cannot_read_or_rotate_its_webhook_secret_in_another(
    start_gateway: Any,
) -> None:
    """The routes that hand out a key's own secret read the key fresh too (the key cache would let a
    revoked key read and rotate it for up to VIDGATE_KEY_CACHE_SECONDS)."""
    async with (
        start_gateway(run_worker=False, key_cache_seconds=CACHE_SECONDS) as a,
        start_gateway(run_worker=False, key_cache_seconds=CACHE_SECONDS) as b,
    ):
        user, plaintext = await a.runtime.keys.create(name="u", is_admin=False, now=a.runtime.clock.now_ms())
        async with b.client(plaintext) as on_b:
            assert (await on_b.get("/v1/webhook_secret")).status_code == 200
            assert (await on_b.get("/v1/videos")).status_code == 200  # B has cached the key
            await a.runtime.keys.revoke(user.id, now=a.runtime.clock.now_ms())
            assert (await on_b.get("/v1/videos")).status_code == 200  # the cache's documented bound
            assert (await on_b.get("/v1/webhook_secret")).status_code == 401
            assert (await on_b.post("/v1/webhook_secret/rotate")).status_code == 401
