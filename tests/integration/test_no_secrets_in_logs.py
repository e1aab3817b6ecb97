"""No secret ever reaches a log line, in either log format at the most verbose level.

Everything that handles a secret is driven for real over loopback: good and wrong API keys, creates on
both dialects with a `callback_url` carrying `?token=`, a worker talking to the fake upstream with the
channel's api_key (a wrong one on a first channel: 401s; injected 429 and 5xx on the right one),
signed webhooks and the key's webhook secret (read and rotated), valid, tampered and expired signed
links (on S3 storage too, redirected to a presigned URL), a rate-limit refusal and an unhandled 500 (its
traceback goes through a frame holding the caller's key). Then every line written to stderr and every
standard-library log record is searched for the key, its SHA-256, every signature (links, presigned URLs,
webhooks), the webhook secrets, the channel keys, the S3 secret, the secret key and the callback token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from typing import Any

import anyio
import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.contract.conftest import gateway_options, serve_fake, upstream_channel
from tests.helpers import wait_for_status
from vidgate import signing
from vidgate.config import Settings
from vidgate.domain.tasks import Step
from vidgate.ids import parse_task_id
from vidgate.logs import QUIETED_LOGGERS, configure_logging
from vidgate.testing.server import serving

pytestmark = pytest.mark.anyio


def marker(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


class Hooks:
    """A webhook receiver on loopback; keeps each delivery's signature header (a secret too)."""

    def __init__(self) -> None:
        self.signatures: list[str] = []
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        await request.body()
        self.signatures.append(request.headers["x-vidgate-signature"])
        return Response(status_code=204)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Local media, or a bucket on the moto server whose signed links redirect to presigned URLs."""
    if request.param == "local":
        return {}
    overrides: dict[str, Any] = request.getfixturevalue("s3_settings")
    return {**overrides, "media_delivery": "redirect"}


@pytest.fixture(params=["json", "console"])
def log_format(request: pytest.FixtureRequest) -> Any:
    configure_logging(Settings(log_format=request.param, log_level="debug"))
    yield request.param
    structlog.reset_defaults()
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


async def settled(gw: Any, client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    state = await wait_for_status(client, task_id, timeout=60)
    ulid = parse_task_id(task_id)
    with anyio.fail_after(30):  # its webhook is sent once it has ended
        while (await gw.runtime.tasks.get(ulid)).step is not Step.DONE:
            await anyio.sleep(0.05)
    return state


async def test_no_secret_reaches_any_log_line(
    start_gateway: Any,
    storage: dict[str, Any],
    log_format: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    channel_key, wrong_channel_key = marker("sk-channel"), marker("sk-wrong")
    secret_key, callback_token = marker("secret-key"), marker("cb-token")
    hooks = Hooks()
    secrets: list[str] = [channel_key, wrong_channel_key, secret_key, callback_token]
    async with serve_fake(api_key=channel_key) as upstream, serving(hooks.app) as hook_base:
        channels = [
            upstream_channel("openai", upstream, name="wrong", api_key=wrong_channel_key, priority=0),
            # The 503 is an unknown outcome: the job is looked for over a short window, then resubmitted.
            upstream_channel(
                "openai", upstream, name="right", api_key=channel_key, priority=1, lookup_window_seconds=2
            ),
        ]
        options = gateway_options(*channels)
        if storage:
            secrets.append(storage["s3"]["secret_access_key"])
        async with start_gateway(**options, **storage, secret_key=secret_key, creates_per_minute=2) as gw:
            key = await gw.new_key()
            wrong_key = key[:-6] + ("AAAAAA" if not key.endswith("AAAAAA") else "BBBBBB")  # right shape
            secrets += [key, hashlib.sha256(key.encode()).hexdigest(), wrong_key]
            callback = f"{hook_base}/hook?token={callback_token}"
            async with gw.client(key) as client, gw.client(wrong_key) as wrong, gw.client(None) as anon:
                assert (await wrong.get("/v1/videos")).status_code == 401
                assert (await anon.get("/v1/videos")).status_code == 401
                # The key's webhook secret (it signs the webhooks below), read and, at the end, rotated.
                webhook_secret = await client.get("/v1/webhook_secret")
                assert webhook_secret.status_code == 200, webhook_secret.text
                secrets.append(webhook_secret.json()["secret"])
                unified = await client.post(
                    "/v1/video/create",
                    json={"model": "sora-2", "prompt": "boat #429=1 #5xx=1", "callback_url": callback},
                )
                openai = await client.post(
                    "/v1/videos",
                    json={
                        "prompt": "fox #poll5xx=1",
                        "seconds": "4",
                        "size": "720x1280",
                        "callback_url": callback,
                    },
                )
                assert unified.status_code == 200 and openai.status_code == 200, (unified.text, openai.text)
                refused = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "third"})
                assert refused.status_code == 429, refused.text  # creates_per_minute=2
                ids = [unified.json()["id"], openai.json()["id"]]
                states = [await settled(gw, client, task_id) for task_id in ids]
                assert [s["status"] for s in states] == ["completed", "completed"], states
                with anyio.fail_after(10):
                    while len(hooks.signatures) < 2:
                        await anyio.sleep(0.02)
                secrets += [s.partition("v1=")[2] for s in hooks.signatures]
                answered = {e.status for e in upstream.fake.journal.entries()}
                assert {401, 429, 503, 500} <= answered, answered  # the faults really happened

                url = states[0]["video_url"]
                sig = re.search(r"[?&]sig=([^&]+)", url)
                assert sig is not None
                fetched = await anon.get(url)
                if storage:  # a redirect to the bucket, presigned: its signature is a secret too
                    assert fetched.status_code == 302, fetched.text
                    presigned = re.search(r"X-Amz-Signature=([0-9a-f]+)", fetched.headers["location"])
                    assert presigned is not None
                    secrets.append(presigned[1])
                    assert (await anon.get(fetched.headers["location"])).status_code == 200
                else:
                    assert fetched.status_code == 200
                other_first = "A" if sig[1][0] != "A" else "B"  # never the same signature again
                tampered = url.replace(f"sig={sig[1]}", f"sig={other_first}{sig[1][1:]}")
                assert (await anon.get(tampered)).status_code == 403
                ulid = parse_task_id(ids[0])
                assert ulid is not None
                expired_sig = signing.sign(gw.settings.signing_key(), ulid, "video", 1_000_000_000)
                expired = f"{gw.base_url}/files/{ulid}/video.mp4?exp=1000000000&sig={expired_sig}"
                assert (await anon.get(expired)).status_code == 403
                secrets += [sig[1], tampered.split("sig=")[1], expired_sig]
                secrets += [s["thumbnail_url"].split("sig=")[1] for s in states if s["thumbnail_url"]]

                rotated = await client.post("/v1/webhook_secret/rotate")
                assert rotated.status_code == 200, rotated.text
                secrets.append(rotated.json()["secret"])

                async def explode(token: str) -> None:  # a frame holding the key in a local variable
                    raise RuntimeError("the key store broke")

                gw.runtime.keys.authenticate = explode
                crashed = await client.get(f"/v1/videos/{ids[1]}")
                assert crashed.status_code == 500

    text = capfd.readouterr().err + "\n" + caplog.text
    assert "unhandled error" in text and "the key store broke" in text  # the traceback was logged
    assert "outbound request" in text and "task status" in text  # and the worker's lines were
    if log_format == "json":
        assert '"route":"/v1/video/create"' in text
    leaked = [s for s in secrets if s and s in text]
    assert not leaked, f"secrets in the logs: {leaked}"
    assert not [r for r in caplog.records if r.name.startswith(QUIETED_LOGGERS)]
