"""The hostile probe's reproduction: an upstream that echoes the channel's key back (in `error.code`,
upper-cased, after a client's padded prompt, at create or when the job fails later) never gets any
part of it to a client, in either dialect, to `/v1/admin/tasks`, or to a log line."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import create_key
from tests.contract.conftest import gateway_options, serve_fake, upstream_channel
from tests.helpers import wait_for_status

pytestmark = pytest.mark.anyio

# Mixed case, so an upper- or lower-cased echo is a different string from the configured one.
CHANNEL_KEY = "sk-Proj-" + secrets.token_urlsafe(30)
PADDING = "a very long scene description " * 16  # ~480 characters echoed before the key


def leaked(text: str, run: int = 8) -> bool:
    """Any `run` consecutive characters of the key, in any case."""
    low, key = text.lower(), CHANNEL_KEY.lower()
    return any(key[i : i + run] in low for i in range(len(key) - run + 1))


async def create(client: httpx.AsyncClient, route: str, prompt: str) -> str:
    if route == "unified":
        r = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": prompt})
    else:
        r = await client.post("/v1/videos", json={"model": "sora-2", "prompt": prompt, "seconds": "4"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize("kind", ["openai", "unified"])
async def test_an_echoed_channel_key_reaches_no_client_view_and_no_log(
    start_gateway: Any, kind: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve_fake(api_key=CHANNEL_KEY) as upstream:
        channel = upstream_channel(kind, upstream, api_key=CHANNEL_KEY)
        async with start_gateway(**gateway_options(channel)) as gw:
            admin_key = await create_key(gw.settings, name="root", admin=True)
            async with gw.client(await gw.new_key()) as client, gw.client(admin_key) as admin:
                ids = [
                    await create(client, route, f"{PADDING} #echo_key{when} {route}")
                    for route in ("unified", "openai")
                    for when in ("", "=job")
                ]
                answers: list[str] = []
                for task_id in ids:
                    state = await wait_for_status(client, task_id)
                    assert state["status"] == "failed", state
                    answers.append(str(state))
                    assert state["error"]["code"] == "upstream_error", state["error"]
                    view = await client.get(f"/v1/videos/{task_id}")  # any id form is accepted
                    assert view.status_code == 200, view.text
                    answers.append(view.text)
                listed = await admin.get("/v1/admin/tasks", params={"limit": 50})
                assert listed.status_code == 200, listed.text
                answers.append(listed.text)
                channels = await admin.get("/v1/admin/channels")
                answers.append(channels.text)
    echoes = [e for e in upstream.fake.journal.entries() if e.detail.get("fault") == "echo_key"]
    assert len(echoes) == 2, "the fake really echoed the key at create"
    for answer in answers:
        assert not leaked(answer), answer
    logs = capfd.readouterr().err + "\n" + caplog.text
    assert not leaked(logs), "the channel key reached a log line"
