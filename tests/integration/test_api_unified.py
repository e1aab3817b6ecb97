"""The unified dialect over real HTTP: auth, owner scoping, validation, limits, idempotency, media links."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers import query
from vidgate.clock import ManualClock
from vidgate.ids import parse_task_id
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio
BODY = {"model": "sora-2", "prompt": "a red kite"}
SEED = Path(__file__).parents[2] / "docs" / "seed-video-create-sora-2.json"


def assert_envelope(
    r: httpx.Response, status: int, *, param: str | None = None, code: str | None = None
) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


async def test_missing_wrong_and_revoked_keys_are_401(gateway, api_key) -> None:
    async with gateway.client(None) as anon:
        assert_envelope(await anon.post("/v1/video/create", json=BODY), 401, code="invalid_api_key")
        assert_envelope(await anon.get("/v1/video/query", params={"id": "x"}), 401)
    async with gateway.client("vg-not-a-real-key") as wrong:
        assert_envelope(await wrong.post("/v1/video/create", json=BODY), 401)
    async with gateway.client(api_key) as ok:
        assert (await ok.post("/v1/video/create", json=BODY)).status_code == 200
    keys = gateway.runtime.keys
    [record] = [k for k in await keys.list() if k.active]
    assert await keys.revoke(record.id, now=0)
    async with gateway.client(api_key) as revoked:
        assert_envelope(await revoked.post("/v1/video/create", json=BODY), 401)


async def test_another_keys_task_is_404_in_every_id_form(gateway, client) -> None:
    created = (await client.post("/v1/video/create", json=BODY)).json()
    ulid = parse_task_id(created["id"])
    other_key = await gateway.new_key("other")
    async with gateway.client(other_key) as other:
        for form in (created["id"], f"task_{ulid}", f"video_{ulid}", ulid):
            assert_envelope(await other.get("/v1/video/query", params={"id": form}), 404, code="not_found")
            assert (await client.get("/v1/video/query", params={"id": form})).status_code == 200
    assert_envelope(await client.get("/v1/video/query", params={"id": "nonsense"}), 404)


async def test_create_answers_exactly_three_keys_and_query_the_superset(client) -> None:
    r = await client.post("/v1/video/create", json=BODY)
    created = r.json()
    assert list(created) == ["id", "status", "status_update_time"]
    assert created["status"] == "pending"
    assert created["status_update_time"] > 1_700_000_000_000  # milliseconds
    state = await query(client, created["id"])
    expected_keys = {
        "id",
        "object",
        "model",
        "status",
        "progress",
        "created_at",
        "status_update_time",
        "completed_at",
        "size",
        "orientation",
        "duration",
        "width",
        "height",
        "video_url",
        "thumbnail_url",
        "spritesheet_url",
        "enhanced_prompt",
        "watermarked",
        "error",
        "fail_reason",
        "detail",
    }
    assert set(state) == expected_keys
    assert state["id"] == created["id"] and state["object"] == "video"
    assert state["created_at"] == created["status_update_time"] // 1000  # seconds
    assert (state["size"], state["orientation"], state["duration"], state["width"], state["height"]) == (
        "small",
        "portrait",
        10,
        720,
        1280,
    )
    assert state["video_url"] is None and state["thumbnail_url"] is None and state["completed_at"] is None
    assert state["spritesheet_url"] is None
    assert state["detail"]["input"]["prompt"] == "a red kite" and state["detail"]["attempts"] == 0


async def test_seed_example_body_is_accepted_verbatim_over_http(client) -> None:
    r = await client.post(
        "/v1/video/create",
        content=SEED.read_bytes(),
        headers={"content-type": "application/json", "accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    state = await query(client, r.json()["id"])
    assert (state["size"], state["duration"], state["width"], state["height"]) == ("large", 15, 1080, 1920)
    assert state["detail"]["input"]["watermark"] is False


@pytest.mark.parametrize(
    "raw, param, code",
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b"\xff\xfe", None, "invalid_json"),
        (json.dumps({"model": "sora-2", "prompt": ""}).encode(), "prompt", None),
        (json.dumps({"model": "nope", "prompt": "x"}).encode(), "model", "model_not_found"),
        (
            json.dumps({"model": "sora-2", "prompt": "x", "duration": 7}).encode(),
            "duration",
            "unsupported_duration",
        ),
        (json.dumps({"model": "sora-2", "prompt": "x", "images": ["x"] * 5}).encode(), "images[0]", None),
        (
            json.dumps(
                {"model": "sora-2", "prompt": "x", "images": ["https://a.example/x.png"] * 5}
            ).encode(),
            "images",
            "too_many_images",
        ),
        (
            json.dumps({"model": "sora-2", "prompt": "x", "images": ["file:///etc/passwd"]}).encode(),
            "images[0]",
            None,
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(client, raw, param, code) -> None:
    r = await client.post("/v1/video/create", content=raw, headers={"content-type": "application/json"})
    error = assert_envelope(r, 400, param=param, code=code)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x.png",
        "http://2130706433/x.png",
        "http://10.1.2.3/x.png",
    ],
)
async def test_image_urls_to_private_addresses_are_400_at_create(client, url) -> None:
    r = await client.post("/v1/video/create", json={**BODY, "images": ["https://example.com/ok.png", url]})
    assert_envelope(r, 400, param="images[1]", code="invalid_url")


async def test_form_bodies_are_415(client) -> None:
    r = await client.post("/v1/video/create", data={"model": "sora-2", "prompt": "x"})
    assert_envelope(r, 415)


async def test_oversized_bodies_are_413_declared_or_streamed(client, gateway) -> None:
    limit = gateway.settings.max_body_bytes
    big = json.dumps({**BODY, "prompt": "x" * (limit + 10)}).encode()
    assert_envelope(
        await client.post("/v1/video/create", content=big, headers={"content-type": "application/json"}), 413
    )

    async def chunks():
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = await client.post("/v1/video/create", content=chunks(), headers={"content-type": "application/json"})
    assert_envelope(r, 413, code="payload_too_large")


async def test_idempotency_key_replays_the_first_task_and_refuses_a_different_body(client) -> None:
    headers = {"idempotency-key": "order-42"}
    first = await client.post("/v1/video/create", json=BODY, headers=headers)
    again = await client.post("/v1/video/create", json=BODY, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert_envelope(
        await client.post("/v1/video/create", json={**BODY, "prompt": "other"}, headers=headers),
        409,
        code="idempotency_key_reused",
    )
    fresh = await client.post("/v1/video/create", json=BODY, headers={"idempotency-key": "order-43"})
    assert fresh.json()["id"] != first.json()["id"]


async def test_unknown_routes_use_the_envelope(client) -> None:
    assert_envelope(await client.get("/v1/nope"), 404)


async def test_health_and_readiness(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "storage": "ok"}


async def test_signed_media_links_serve_ranges_and_refuse_tampering_and_expiry(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw:
        worker = build_worker(gw.runtime)
        async with gw.client(await gw.new_key()) as client:
            task_id = (await client.post("/v1/video/create", json=BODY)).json()["id"]
            for _ in range(10):
                clock.advance(1)
                await worker.tick()
            state = await query(client, task_id)
            assert state["status"] == "completed"
            url = state["video_url"]
        async with httpx.AsyncClient() as anon:  # no Authorization header at all
            whole = await anon.get(url)
            assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
            size = len(whole.content)
            assert int(whole.headers["content-length"]) == size

            part = await anon.get(url, headers={"range": "bytes=10-29"})
            assert part.status_code == 206
            assert part.content == whole.content[10:30]
            assert part.headers["content-range"] == f"bytes 10-29/{size}"
            tail = await anon.get(url, headers={"range": "bytes=-16"})
            assert tail.status_code == 206 and tail.content == whole.content[-16:]
            assert (await anon.get(url, headers={"range": f"bytes={size}-"})).status_code == 416
            head = await anon.head(url)
            assert (
                head.status_code == 200
                and head.content == b""
                and int(head.headers["content-length"]) == size
            )

            thumb = await anon.get(state["thumbnail_url"])
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
            sheet = await anon.get(state["spritesheet_url"])
            assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"

            tampered = url.replace("sig=", "sig=A")
            assert_envelope(await anon.get(tampered), 403, code="invalid_signature")
            other_variant = url.replace("/video.mp4", "/thumbnail.webp")
            assert_envelope(await anon.get(other_variant), 403)
            stretched = url.replace("exp=", "exp=9")
            assert_envelope(await anon.get(stretched), 403)

            clock.advance(gw.settings.signed_url_ttl_seconds + 3600)
            assert_envelope(await anon.get(url), 403)


async def test_access_log_names_the_key_id_but_never_the_key_or_a_signature(gateway, client, api_key) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        await client.get("/v1/video/query", params={"id": "task_x", "sig": "SECRET-SIG"})
    [line] = [entry for entry in logs if entry["event"] == "request"]
    [record] = [k for k in await gateway.runtime.keys.list()]
    assert line["route"] == "/v1/video/query" and line["status"] == 404 and line["key_id"] == record.id
    assert "path" not in line  # a matched route logs its template only
    assert "SECRET-SIG" not in str(logs) and api_key not in str(logs)
