"""Hostile requests on every route of the app: whatever the body, headers, query or path, never a 5xx.

The routes are enumerated from `app.routes`, so a new route is covered without touching this file.
Bodies are JSON text written out here (not `json.dumps` of Python values) so that they can hold what
Python would not produce: lone surrogate escapes, integers of thousands of digits, nesting thousands
deep, `NaN`. Requests go through httpx's ASGI transport, which re-raises anything the app lets escape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import fastapi.routing
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.conftest import create_key
from tests.helpers import scripted_channel
from vidgate.api.app import create_app
from vidgate.clock import ManualClock
from vidgate.config import Settings
from vidgate.ids import parse_task_id
from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver
from vidgate.worker.service import build_worker

EXAMPLES_PER_ROUTE = 80
UNKNOWN_ULID = "01k6x15vhrff09dkkqjrzwhm60"
FIELDS = [
    "model", "prompt", "images", "orientation", "size", "duration", "seconds", "watermark", "private",
    "style", "storyboard", "character_url", "character_timestamps", "callback_url", "input_reference",
    "seed", "negative_prompt", "num_inference_steps", "guidance_scale", "boundary_ratio",
]  # fmt: skip


def route_methods(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route; a mount is probed with GET under its prefix."""
    # Newer FastAPI keeps included routers as one entry each; this walks into them.
    flatten = getattr(fastapi.routing, "iter_route_contexts", iter)
    found = set()
    for route in flatten(app.routes):
        methods = route.methods or {"GET"}
        path = route.path if route.methods else route.path.rstrip("/") + "/{path}"
        found |= {(method, path) for method in methods}
    return sorted(found)


def _throwaway_app(root: Path) -> Any:
    return create_app(Settings(data_dir=root, secret_key="routes"), run_worker=False)


# Strategies ----------------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates too
# Half of them longer than the 4300 digits `int()` converts.
digits = st.one_of(st.integers(1, 25), st.integers(4250, 6000)).map(lambda n: "9" * n)
unicode_digits = st.text(st.sampled_from("²³¹١٢٣０９"), min_size=1, max_size=4)
latin1_digits = st.text(st.sampled_from("²³¹"), min_size=1, max_size=4)  # for headers
number_text = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    digits,
    digits.map(lambda d: "-" + d),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "0.5", "-0", "15.0"]),
)
string_text = st.one_of(
    any_text,
    st.sampled_from(["sora-2", "p", "small", "1280x720", "15", "true", "1,3", "https://img.test/a.png"]),
    st.sampled_from(
        ["data:image/png;base64,", "data:image/png;base64,!!", "data:image/png;base64,iVBORw0KGgo="]
    ),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "²", "١٢"]),
).map(json.dumps)  # json.dumps writes a lone surrogate as the escape \ud800, which is valid JSON text
scalar_text = st.one_of(st.sampled_from(["null", "true", "false"]), number_text, string_text)
deep_text = st.integers(1, 5000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n])
)


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in members) + "}"


value_text = st.recursive(
    st.one_of(scalar_text, deep_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(FIELDS) | any_text, inner), max_size=4).map(_object),
    ),
    max_leaves=8,
)
# Mostly an object with a valid model and prompt, so hostile fields get past the first checks and
# reach the routes' deeper steps (the channel checks, the database insert, the idempotency hash).
body_text = st.one_of(
    st.tuples(
        st.booleans(), st.lists(st.tuples(st.sampled_from(FIELDS) | any_text, value_text), max_size=5)
    ).map(lambda t: _object([("model", '"sora-2"'), ("prompt", '"p"')] * t[0] + t[1])),
    value_text,
)


def _form(fields: list[tuple[str, bytes]]) -> bytes:
    """A multipart/form-data body (boundary `b0undary`, one of the Content-Types drawn below)."""
    parts = b"".join(
        b'--b0undary\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n\r\n'
        + value
        + b"\r\n"
        for name, value in fields
    )
    return parts + b"--b0undary--\r\n"


form_value = st.one_of(
    st.binary(max_size=20),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"+2AA-", b"sora-2", b"4", b"1280x720", b"data:image/png;base64,!!"]),  # +2AA-: utf-7
    digits.map(str.encode),
)
form_bytes = st.lists(
    st.tuples(
        st.sampled_from([*FIELDS, "input_reference[image_url]", "input_reference[file_id]"]), form_value
    ),
    max_size=5,
).map(_form)
# A body with the Content-Type it would come with (often replaced by a hostile one below).
typed_body = st.one_of(
    body_text.map(lambda text: (text.encode(), "application/json")),
    st.binary(max_size=200).map(lambda raw: (raw, "application/octet-stream")),
    st.tuples(form_bytes, st.sampled_from(["", "; charset=utf-7", "; charset=latin-1"])).map(
        lambda t: (t[0], f"multipart/form-data{t[1]}; boundary=b0undary")
    ),
)

# What a server lets through in a header value: Latin-1 from the space up, DEL excepted.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
range_header = st.one_of(
    header_text,
    st.tuples(
        st.sampled_from(["", "0", "-1", "00000"]) | digits | latin1_digits,
        st.sampled_from(["", "5"]) | digits | latin1_digits,
    ).map(lambda t: f"bytes={t[0]}-{t[1]}"),
    st.sampled_from(["bytes=0-0,5-9", "bytes=-0", "bytes=10-5", "bytes= 1-2", "items=0-1", "bytes=--1"]),
)
content_type = st.one_of(
    header_text,
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=b0undary",
            "multipart/form-data; charset=utf-7; boundary=b0undary",
            "multipart/form-data; boundary=",
        ]
    ),
)
query_value = st.one_of(
    st.binary(max_size=20),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    digits.map(str.encode),
    unicode_digits.map(str.encode),
    st.sampled_from([b"video", b"thumbnail", b"asc", b"500", b"-1", b"video_" + UNKNOWN_ULID.encode()]),
)
query_string = st.lists(
    st.tuples(st.sampled_from(["id", "exp", "sig", "variant", "after", "limit", "order", "x"]), query_value),
    max_size=4,
).map(lambda pairs: "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in pairs))


@dataclass
class Target:
    portal: BlockingPortal
    client: httpx.AsyncClient
    key: str
    completed: str  # the ULID of a completed task (with media), so Range reaches real files
    signed_query: str  # `exp=…&sig=…` of its video link
    pending: list[str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("hostile")
    clock = ManualClock()
    config = Settings(
        data_dir=root / "data", secret_key="hostile", channels=[scripted_channel(root / "upstream")]
    )
    app = create_app(config, run_worker=False, clock=clock, resolver=StaticResolver(PUBLIC_TEST_HOSTS))

    async def prepare(client: httpx.AsyncClient, key: str) -> tuple[str, str, list[str]]:
        """A completed task (with media) and a few pending ones, owned by `key`."""
        auth = {"authorization": f"Bearer {key}"}
        body = {"model": "sora-2", "prompt": "p"}
        first = (await client.post("/v1/video/create", json=body, headers=auth)).json()["id"]
        worker = build_worker(app.state.runtime)
        for _ in range(10):
            clock.advance(1)
            await worker.tick()
        state = (await client.get("/v1/video/query", params={"id": first}, headers=auth)).json()
        assert state["status"] == "completed", state
        pending = [(await client.post("/v1/videos", json=body, headers=auth)).json()["id"] for _ in range(3)]
        ulids = [str(parse_task_id(made)) for made in (first, *pending)]
        return ulids[0], httpx.URL(state["video_url"]).query.decode(), ulids[1:]

    transport = httpx.ASGITransport(app=app)
    with (
        # Kept as dicts, not rendered: a failing example then costs no traceback printing while
        # hypothesis shrinks it (the response in the assertion says what went wrong).
        capture_logs(),
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url="http://vidgate.test", timeout=30)
        ) as client,
    ):
        key = portal.call(create_key, config)
        completed, signed_query, pending = portal.call(prepare, client, key)
        yield Target(portal, client, key, completed, signed_query, pending)


def path_value(target: Target, method: str, name: str) -> st.SearchStrategy[str]:
    """A value for one path parameter: a real task (never the completed one for DELETE), or junk."""
    junk = st.binary(max_size=30).map(lambda b: quote_from_bytes(b, safe="")).filter(bool)
    if name == "filename":
        return st.sampled_from(["video.mp4", "thumbnail.webp", "spritesheet.jpg"]) | junk
    if name == "path":
        return st.sampled_from(["swagger-ui.css", "..%2F..%2Fetc%2Fpasswd", "redoc.standalone.js"]) | junk
    ulids = target.pending if method == "DELETE" else [target.completed, *target.pending]
    forms = [f"video_{u}" for u in ulids] + [f"sora-2:task_{u}" for u in ulids] + ulids + [UNKNOWN_ULID]
    return st.sampled_from([quote(f, safe="") for f in forms]) | junk


@st.composite
def requests(draw: st.DrawFn, target: Target, method: str, template: str) -> dict[str, Any]:
    path = template
    for name in re.findall(r"{(\w+)(?::\w+)?}", template):
        path = re.sub(r"{" + name + r"(?::\w+)?}", draw(path_value(target, method, name)), path)
    query = draw(query_string)
    if template.startswith("/files/") and draw(st.booleans()):
        query = target.signed_query  # a valid link, so the Range header reaches the file
        if draw(st.booleans()):  # or one whose expiry is hostile
            query = re.sub(r"exp=[^&]*", "exp=" + quote(draw(digits | unicode_digits), safe=""), query)
    headers: dict[str, bytes] = {}
    auth = draw(st.sampled_from(["key", "key", "key", "none", "junk"]))
    if auth == "key":
        headers["authorization"] = f"Bearer {target.key}".encode()
    elif auth == "junk":
        headers["authorization"] = draw(header_text).encode("latin-1")
    body = b""
    if method in ("POST", "PUT", "PATCH", "DELETE") or draw(st.booleans()):
        body, declared = draw(typed_body)
        headers["content-type"] = declared.encode()
    for name, strategy in (
        ("range", range_header),
        ("idempotency-key", header_text),
        ("content-type", content_type),
    ):
        if draw(st.booleans()):
            headers[name] = draw(strategy).encode("latin-1")
    return {
        "method": method,
        "url": f"{path}?{query}" if query else path,
        "headers": headers,
        "content": body,
    }


ROUTES = route_methods(_throwaway_app(Path("/nonexistent-never-opened")))


@pytest.mark.parametrize("method, template", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_hostile_request_gets_a_5xx(target: Target, method: str, template: str) -> None:
    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(request=requests(target, method, template))
    def check(request: dict[str, Any]) -> None:
        r = target.portal.call(lambda: target.client.request(**request))
        assert r.status_code < 500, (
            request["method"],
            request["url"],
            request["headers"],
            request["content"][:200],
            r.text[:300],
        )
        # Every /v1 error is the envelope; a 416 is the one answered with no body (docs/api.md §5).
        if template.startswith("/v1/") and r.status_code >= 400 and r.status_code != 416 and method != "HEAD":
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text

    check()


def test_every_route_of_the_app_is_probed() -> None:
    """The enumeration really finds the routes (a FastAPI that hides included routers would not)."""
    found = {path for _method, path in ROUTES}
    assert {"/v1/video/create", "/v1/videos/{video_id}/content", "/files/{task_id}/{filename}"} <= found
