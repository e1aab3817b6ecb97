"""Hostile inputs that used to answer 500 (and drop the keep-alive connection), one test per defect.

Over real HTTP on loopback. Bodies are written as raw bytes where the JSON itself is the point: a
`\\ud800` escape is valid JSON text that decodes to a string UTF-8 cannot encode.
"""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from tests.helpers import query
from vidgate.api.limits import BodySizeLimit
from vidgate.clock import ManualClock
from vidgate.ids import parse_task_id
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio
SURROGATE = "\\ud800"  # as it appears in JSON text
HUGE = "9" * 5000
DEEP = "[" * 5000 + "]" * 5000
PNG_SIGNATURE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def refused(r: httpx.Response, param: str | None, *, status: int = 400, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error


def raw_json(fields: str) -> bytes:
    """A create body `{"model": "sora-2", "prompt": "p", <fields>}` written as JSON text."""
    return ('{"model": "sora-2", "prompt": "p"' + (", " + fields if fields else "") + "}").encode()


async def post_raw(client: httpx.AsyncClient, path: str, body: bytes, **headers: str) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": "application/json", **headers})


def multipart(fields: dict[str, str], *, charset: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body of text fields, as the openai SDK sends one, and its Content-Type."""
    boundary = "b0undary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    declared = f"; charset={charset}" if charset else ""
    content_type = f"multipart/form-data{declared}; boundary={boundary}"
    return f"{parts}--{boundary}--\r\n".encode(), {"content-type": content_type}


async def completed_task(gw: Any, client: httpx.AsyncClient, clock: ManualClock) -> dict[str, Any]:
    worker = build_worker(gw.runtime)
    created = (await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p"})).json()
    for _ in range(10):
        clock.advance(1)
        await worker.tick()
    state = await query(client, created["id"])
    assert state["status"] == "completed", state
    return state


# 1. Text that cannot be stored -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["prompt", "model", "size", "orientation"])
async def test_a_lone_surrogate_in_a_field_is_a_400_naming_it(client, field: str) -> None:
    body = {"model": "sora-2", "prompt": "p", field: "SURROGATE"}
    r = await post_raw(client, "/v1/video/create", json.dumps(body).replace("SURROGATE", SURROGATE).encode())
    refused(r, field)
    assert "surrogate" in r.json()["error"]["message"]


async def test_a_surrogate_in_a_stored_extra_is_refused_so_no_task_is_unreadable(client) -> None:
    # Before: the create answered 200 and every query of that task answered 500.
    refused(await post_raw(client, "/v1/video/create", raw_json(f'"style": "a{SURROGATE}"')), "style")
    body = raw_json(f'"character_timestamps": "{SURROGATE}"')
    refused(await post_raw(client, "/v1/video/create", body), "character_timestamps")
    listed = await client.get("/v1/videos")
    assert listed.status_code == 200 and listed.json()["data"] == []


async def test_an_unknown_field_with_a_surrogate_and_an_idempotency_key_is_a_400(client) -> None:
    body = raw_json(f'"zzz": "{SURROGATE}"')
    refused(await post_raw(client, "/v1/video/create", body, **{"idempotency-key": "k-1"}), "zzz")
    nested = raw_json(f'"meta": {{"tags": ["ok", "{SURROGATE}"]}}')
    refused(await post_raw(client, "/v1/videos", nested, **{"idempotency-key": "k-2"}), "meta.tags[1]")
    in_a_name = raw_json(f'"{SURROGATE}": 1')
    refused(await post_raw(client, "/v1/video/create", in_a_name), "\\ud800")


async def test_a_surrogate_on_the_openai_dialect_json_and_multipart(client) -> None:
    refused(await post_raw(client, "/v1/videos", f'{{"prompt": "{SURROGATE}"}}'.encode()), "prompt")
    # A multipart body may declare its charset; UTF-7 decodes "+2AA-" to the lone surrogate U+D800.
    form, headers = multipart({"prompt": "+2AA-"}, charset="utf-7")
    r = await client.post("/v1/videos", content=form, headers=headers)
    refused(r, "prompt")


async def test_a_nul_character_is_refused_before_it_reaches_the_database(client) -> None:
    # PostgreSQL text cannot hold NUL: the insert failed with a 500 there.
    refused(
        await post_raw(client, "/v1/video/create", b'{"model": "sora-2", "prompt": "a\\u0000b"}'), "prompt"
    )


# 2. Numbers and nesting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/video/create", raw_json(f'"duration": {HUGE}'), "duration"),
        ("/v1/video/create", raw_json(f'"seed": -{HUGE}'), "seed"),
        ("/v1/videos", f'{{"prompt": "p", "seconds": {HUGE}}}'.encode(), "seconds"),
        ("/v1/video/create", raw_json(f'"unknown": [1, {HUGE}]'), "unknown[1]"),
    ],
)
async def test_an_integer_of_thousands_of_digits_is_a_400_naming_the_field(client, path, body, param) -> None:
    refused(await post_raw(client, path, body), param)


@pytest.mark.parametrize(
    "body", [DEEP.encode(), raw_json(f'"x": {DEEP}'), raw_json('"x": ' + "[" * 40 + "]" * 40)]
)
async def test_json_nested_too_deeply_is_a_400_on_both_creates_and_remix(client, body: bytes) -> None:
    created = (await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p"})).json()
    ulid = parse_task_id(created["id"])
    for path in ("/v1/video/create", "/v1/videos", f"/v1/videos/video_{ulid}/remix"):
        r = await post_raw(client, path, body)
        refused(r, None, code="invalid_json")
        assert "nested too deeply" in r.json()["error"]["message"]


async def test_nan_and_infinity_are_not_json(client) -> None:
    refused(
        await post_raw(client, "/v1/video/create", raw_json('"guidance_scale": NaN')),
        None,
        code="invalid_json",
    )


async def test_a_signed_link_with_a_unicode_digit_or_a_huge_expiry_is_a_403(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw, gw.client(await gw.new_key()) as client:
        state = await completed_task(gw, client, clock)
        url = httpx.URL(state["video_url"])
        async with httpx.AsyncClient() as anon:
            assert (await anon.get(url)).status_code == 200
            for exp in ("²", "١٢", HUGE):
                r = await anon.get(url.copy_set_param("exp", exp))
                refused(r, None, status=403, code="invalid_signature")


async def test_range_numbers_past_any_file_follow_rfc_9110(start_gateway) -> None:
    """A first position past the end: 416 with `bytes */size`. A last position or a suffix longer
    than the file: the whole file as a 206. A non-ASCII digit: the header is invalid, so ignored."""
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw, gw.client(await gw.new_key()) as client:
        state = await completed_task(gw, client, clock)
        ulid = parse_task_id(state["id"])
        async with httpx.AsyncClient() as anon:
            whole = (await anon.get(state["video_url"])).content
            size = len(whole)
            for get in (
                lambda h: anon.get(state["video_url"], headers=h),
                lambda h: client.get(f"/v1/videos/video_{ulid}/content", headers=h),
            ):
                beyond = await get({"range": f"bytes={HUGE}-"})
                assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
                assert beyond.content == b""
                for spec in (f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes={'0' * 5000}-{HUGE}"):
                    r = await get({"range": spec})
                    assert r.status_code == 206, (spec, r.status_code)
                    assert r.headers["content-range"] == f"bytes 0-{size - 1}/{size}" and r.content == whole
                # "²" is Latin-1, so it can travel in a header; RFC 9110's DIGIT is ASCII only.
                odd = await get({"range": "bytes=²-".encode("latin-1")})
                assert odd.status_code == 200 and odd.content == whole


async def test_a_content_length_that_int_refuses_does_not_crash_the_size_limit() -> None:
    """Servers in front normally refuse such a header; the middleware must not crash if one does not."""
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(1)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limit = BodySizeLimit(app, limit=1024, upload_limit=2048)
    for value, passes in ((b"\xb2", True), (HUGE.encode(), False), (b"0" * 5000 + b"12", True)):
        seen.clear()
        sent.clear()
        scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", value)]}
        await limit(scope, receive, send)
        assert bool(seen) is passes, value[:8]
        if not passes:
            assert sent[0]["status"] == 413


# 4. data: URIs that the later fetch would refuse -----------------------------------------------

BAD_DATA_URIS = [
    ("data:image/png;base64,!!!!", "not valid base64"),
    ("data:image/png;base64,", "no data"),
    ("data:image/png;base64," + base64.b64encode(b"<html>not an image</html>").decode(), "not an image"),
    ("data:image/svg+xml;base64," + base64.b64encode(b"<svg xmlns='x'/>").decode(), "not an image"),
    ("data:image/png;base64" + PNG_SIGNATURE, "no ','"),
    ("data:image/png," + PNG_SIGNATURE, "only base64"),
    ("   data:image/png;base64," + PNG_SIGNATURE, "whitespace around it"),
    ("\tdata:image/png;base64," + PNG_SIGNATURE + "\n", "whitespace around it"),
]


@pytest.mark.parametrize("uri, why", BAD_DATA_URIS)
async def test_a_malformed_data_uri_is_a_400_at_create_in_both_dialects(client, uri: str, why: str) -> None:
    body = {"model": "sora-2", "prompt": "p", "images": ["https://img.test/a.png", uri]}
    r = await client.post("/v1/video/create", json=body)
    refused(r, "images[1]", code="invalid_image")
    assert why in r.json()["error"]["message"]
    r = await client.post("/v1/videos", json={"prompt": "p", "input_reference": {"image_url": uri}})
    refused(r, "input_reference", code="invalid_image")
    form, headers = multipart({"prompt": "p", "input_reference[image_url]": uri})
    r = await client.post("/v1/videos", content=form, headers=headers)
    refused(r, "input_reference", code="invalid_image")
    assert (await client.get("/v1/videos")).json()["data"] == []


async def test_a_well_formed_image_data_uri_is_still_accepted(client) -> None:
    uri = "data:image/png;base64," + PNG_SIGNATURE
    assert (
        await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p", "images": [uri]})
    ).status_code == 200


# Unexpected errors -----------------------------------------------------------------------------


def exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request on `sock` and read exactly one response (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        body += chunk
    return int(status_line.split()[1]), headers, body


async def test_an_unexpected_error_is_a_json_500_that_keeps_the_connection(
    gateway, api_key, monkeypatch, caplog
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the store broke")

    monkeypatch.setattr(gateway.runtime.tasks, "get", boom)
    host, port = httpx.URL(gateway.base_url).host, httpx.URL(gateway.base_url).port
    ulid = "01k6x15vhrff09dkkqjrzwhm60"
    failing = (
        f"GET /v1/video/query?id={ulid}&sig=SECRET-SIG HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {api_key}\r\n\r\n"
    ).encode()
    healthy = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def two_requests_on_one_connection() -> tuple[Any, Any]:
        with socket.create_connection((host, port), timeout=10) as sock:
            return exchange(sock, failing), exchange(sock, healthy)

    with capture_logs() as logs:
        (status, headers, body), second = await anyio.to_thread.run_sync(two_requests_on_one_connection)
    assert status == 500 and headers.get("connection", "").lower() != "close"
    assert json.loads(body) == {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert second[0] == 200 and json.loads(second[2]) == {"status": "ok"}
    [logged] = [entry for entry in logs if entry["event"] == "unhandled error"]
    assert logged["path"] == "/v1/video/query" and "RuntimeError: the store broke" in logged["exception"]
    assert "SECRET-SIG" not in str(logs) and api_key not in str(logs)
    assert "Exception in ASGI application" not in caplog.text  # logged once, by us
    [access] = [entry for entry in logs if entry["event"] == "request" and entry["status"] == 500]
    assert access["route"] == "/v1/video/query"


async def test_an_empty_input_reference_in_a_form_means_no_image(client) -> None:
    # What a browser's (or Swagger UI's) form sends when no file was chosen and the URL left blank.
    form = {"model": "sora-2", "prompt": "a boat", "seconds": "4", "input_reference[image_url]": ""}
    r = await client.post(
        "/v1/videos", data=form, files={"input_reference": ("", b"", "application/octet-stream")}
    )
    assert r.status_code == 200, r.text
    r = await client.post("/v1/videos", data={**form, "input_reference": ""}, files={"x": (None, b"")})
    assert r.status_code == 200, r.text
