"""Each API key signs its webhooks with a secret of its own (docs/api.md §6), on SQLite and PostgreSQL.

The probe this answers: webhooks were signed with one key for the whole server, so tenant A could
replay a signed event of its own to tenant B's receiver and B's check passed. Now B checks with B's
secret, which A's events are not signed with. A key reads and rotates its own secret; an admin reads and
rotates any key's; no other key can reach another's (the admin routes answer it an unknown route's 404).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_key
from tests.helpers import scripted_channel
from tests.integration.sdk_support import SDK
from tests.integration.test_admin_api import admin_gateway, comparable
from tests.integration.test_cli_client import Cli
from tests.integration.test_webhooks import Receiver
from tests.integration.test_webhooks import receiver as receiver  # the fixture, shared
from vidgate.client import NotFoundError
from vidgate.signing import verify_webhook

pytestmark = pytest.mark.anyio
SECRET_FORM = re.compile(r"whsec_[A-Za-z0-9_-]{43}")


def shown_secret(r: httpx.Response, key_id: str | None = None) -> str:
    """The secret in a webhook-secret answer, which no cache may keep."""
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"object", "key_id", "secret"} and body["object"] == "webhook_secret"
    if key_id is not None:
        assert body["key_id"] == key_id
    secret: str = body["secret"]
    assert SECRET_FORM.fullmatch(secret), secret
    return secret


async def own_secret(client: httpx.AsyncClient) -> str:
    return shown_secret(await client.get("/v1/webhook_secret"))


async def delivered(client: httpx.AsyncClient, receiver: Receiver, count: int) -> tuple[str, bytes]:
    """Create a task whose callback is the receiver; its delivery's signature header and body."""
    body = {"model": "sora-2", "prompt": "x", "callback_url": receiver.url}
    made = await client.post("/v1/video/create", json=body)
    assert made.status_code == 200, made.text
    await receiver.wait_for(count)
    headers, raw = receiver.calls[count - 1]
    assert json.loads(raw)["data"]["id"] == made.json()["id"]
    return headers["x-vidgate-signature"], raw


async def test_a_tenants_signed_webhook_does_not_verify_with_another_tenants_secret(
    start_gateway: Any, tmp_path: Path, receiver: Receiver
) -> None:
    async with start_gateway(fetch_allow_private=True, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key("a")) as tenant_a, gw.client(await gw.new_key("b")) as tenant_b:
            secret_a, secret_b = await own_secret(tenant_a), await own_secret(tenant_b)
            assert await own_secret(tenant_a) == secret_a  # the same on every read
            header, body = await delivered(tenant_a, receiver, 1)
    now = int(time.time())
    assert secret_a != secret_b
    assert verify_webhook(secret_a, header, body, now_s=now)  # A's receiver accepts it
    assert verify_webhook(secret_a.encode(), header, body, now_s=now)  # the secret's bytes work too
    assert not verify_webhook(secret_b, header, body, now_s=now)  # the replay to B's receiver fails
    assert not verify_webhook(gw.settings.signing_key(), header, body, now_s=now)  # no server-wide key


async def test_rotating_a_secret_signs_the_next_webhooks_with_the_new_one(
    start_gateway: Any, tmp_path: Path, receiver: Receiver
) -> None:
    async with start_gateway(fetch_allow_private=True, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key()) as client:
            old = await own_secret(client)
            header, body = await delivered(client, receiver, 1)
            new = shown_secret(await client.post("/v1/webhook_secret/rotate"))
            assert new != old and await own_secret(client) == new
            new_header, new_body = await delivered(client, receiver, 2)
            newer = shown_secret(await client.post("/v1/webhook_secret/rotate"))
            assert newer not in (old, new)
    now = int(time.time())
    assert verify_webhook(old, header, body, now_s=now)
    assert verify_webhook(new, new_header, new_body, now_s=now)
    assert not verify_webhook(old, new_header, new_body, now_s=now)  # old secret, new signatures: no
    assert not verify_webhook(new, header, body, now_s=now)


async def test_admins_read_and_rotate_any_keys_secret_and_no_other_key_can(
    start_gateway: Any, tmp_path: Path
) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        alice, bob = await admin.new_key("alice"), await admin.new_key("bob")
        url = f"/v1/admin/keys/{alice['id']}/webhook_secret"
        async with admin.gw.client(alice["key"]) as as_alice, admin.gw.client(bob["key"]) as as_bob:
            first = shown_secret(await admin.client.get(url), alice["id"])
            assert await own_secret(as_alice) == first
            rotated = shown_secret(await admin.client.post(f"{url}/rotate"), alice["id"])
            assert rotated != first
            assert await own_secret(as_alice) == rotated  # at once, whatever the key cache holds
            assert shown_secret(await admin.client.get(url)) == rotated

            # Bob reaches only his own secret: Alice's routes are, to him, routes that do not exist.
            for method, path in (("GET", url), ("POST", f"{url}/rotate")):
                answer = await as_bob.request(method, path)
                assert comparable(answer) == comparable(await as_bob.request(method, "/v1/nope"))
                assert answer.status_code == 404
            assert await own_secret(as_bob) not in (first, rotated)
            assert await own_secret(as_alice) == rotated  # nothing he sent changed it

            missing = await admin.client.get("/v1/admin/keys/nope/webhook_secret")
            assert missing.status_code == 404 and missing.json()["error"]["param"] == "key_id"
            missing = await admin.client.post("/v1/admin/keys/nope/webhook_secret/rotate")
            assert missing.status_code == 404 and missing.json()["error"]["param"] == "key_id"
        async with admin.gw.client(None) as anonymous:
            for method, path in (("GET", "/v1/webhook_secret"), ("POST", "/v1/webhook_secret/rotate")):
                refused = await anonymous.request(method, path)
                assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_the_sdk_reads_and_rotates_secrets(start_gateway: Any, flavour: str) -> None:
    async with start_gateway(run_worker=False) as gw:
        runtime = gw.runtime
        now = runtime.clock.now_ms()
        _, root = await runtime.keys.create(name="root", is_admin=True, now=now)
        user_record, user_key = await runtime.keys.create(name="user", is_admin=False, now=now)
        admin, user = SDK(flavour, gw.base_url, root), SDK(flavour, gw.base_url, user_key)
        try:
            mine = await user("webhooks.secret")
            assert (mine.key_id, SECRET_FORM.fullmatch(mine.secret) is not None) == (user_record.id, True)
            assert mine.secret not in repr(mine)  # logging the object does not leak it
            rotated = await user("webhooks.rotate_secret")
            assert rotated.secret != mine.secret and (await user("webhooks.secret")).secret == rotated.secret
            seen = await admin("admin.keys.webhook_secret", user_record.id)
            assert seen.secret == rotated.secret
            again = await admin("admin.keys.rotate_webhook_secret", user_record.id)
            assert again.secret not in (mine.secret, rotated.secret)
            assert (await user("webhooks.secret")).secret == again.secret
            with pytest.raises(NotFoundError):
                await user("admin.keys.webhook_secret", user_record.id)
        finally:
            await admin.close()
            await user.close()


async def test_the_cli_shows_and_rotates_secrets(start_gateway: Any, tmp_path: Path) -> None:
    async with start_gateway(run_worker=False) as gw:
        user_key = await gw.new_key("user")
        admin = Cli(gw.base_url, await create_key(gw.settings, name="root", admin=True), tmp_path)
        user = Cli(gw.base_url, user_key, tmp_path)
        own = await user("video", "webhook-secret")
        assert own.returncode == 0, own.stderr
        secret = own.stdout.strip()
        assert SECRET_FORM.fullmatch(secret) and secret not in own.stderr
        key_id = (await gw.runtime.keys.authenticate(user_key)).id
        shown = await admin("admin", "keys", "webhook-secret", key_id)
        assert shown.returncode == 0 and shown.stdout.strip() == secret, shown.stderr
        rotated = await admin("admin", "keys", "webhook-secret", key_id, "--rotate")
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip()
        assert SECRET_FORM.fullmatch(new) and new != secret
        mine = await user("video", "webhook-secret", "--rotate", "--json")
        assert mine.returncode == 0, mine.stderr
        body = json.loads(mine.stdout)
        assert body["key_id"] == key_id and body["secret"] not in (secret, new)
        refused = await user("admin", "keys", "webhook-secret", key_id)
        assert refused.returncode == 1 and "(not_found)" in refused.stderr
