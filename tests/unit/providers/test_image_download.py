"""`download_image` (an upstream's optional thumbnail) over loopback, and `probe_verdict`.

An optional image is never worth a big download: the answer is given up at the headers (a status other
than 200, a type that is no image, a declared length over the cap), at the first bytes (not an image
whatever the label says) or as soon as the running count passes the cap, and nothing is left behind.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.byte_counting import ONE_READ, CountingTransport
from vidgate.channel_config import ChannelSettings
from vidgate.providers.upstream_http import UpstreamHttp, download_image, probe_verdict
from vidgate.testing.server import serving

pytestmark = pytest.mark.anyio

CAP = 256 * 1024
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 32


def webp(width: int = 64, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buf, "WEBP")
    return buf.getvalue()


async def endless(head: bytes) -> AsyncIterator[bytes]:
    """`head`, then 64 KiB chunks far past any cap, without a Content-Length (chunked)."""
    yield head
    for _ in range(200):
        yield b"\x00" * ONE_READ


def app() -> Starlette:
    async def image(_: Request) -> Response:
        return Response(webp(), media_type="image/webp")

    async def generic(_: Request) -> Response:  # an object store's label for every file
        return Response(webp(), media_type="application/octet-stream")

    async def video(_: Request) -> Response:  # LiteLLM's answer to ?variant=thumbnail
        return Response(MP4_HEAD + b"\x00" * (4 * CAP), media_type="video/mp4")

    async def video_labelled_image(_: Request) -> Response:
        return StreamingResponse(endless(MP4_HEAD), media_type="image/webp")

    async def declared_too_large(_: Request) -> Response:
        return Response(webp() + b"\x00" * CAP, media_type="image/webp")

    async def too_large(_: Request) -> Response:
        return StreamingResponse(endless(webp()), media_type="image/webp")

    async def missing(_: Request) -> Response:
        return JSONResponse({"error": {"message": "no thumbnail", "code": "not_found"}}, status_code=404)

    paths = {
        "image": image,
        "generic": generic,
        "video": video,
        "video-labelled-image": video_labelled_image,
        "declared-too-large": declared_too_large,
        "too-large": too_large,
        "missing": missing,
    }
    return Starlette(routes=[Route(f"/v1/{name}", handler) for name, handler in paths.items()])


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async with serving(app()) as url:
        yield url


async def fetch(server: str, name: str, dest: Path) -> tuple[bool, int]:
    """(whether an image landed at `dest`, the body bytes read)."""
    channel = ChannelSettings(name="up", kind="openai", base_url=f"{server}/v1", models=["sora-2"])
    transport = CountingTransport()
    async with UpstreamHttp(transport).client_for(channel) as client:
        found = await download_image(client, name, dest, max_bytes=CAP, timeout=10)
    return found, sum(transport.read.values())


async def test_an_image_lands_whole(server: str, tmp_path: Path) -> None:
    for name in ("image", "generic"):
        dest = tmp_path / f"{name}.webp"
        found, _ = await fetch(server, name, dest)
        assert found and dest.read_bytes() == webp()


@pytest.mark.parametrize(
    ("name", "most_read"),
    [
        ("missing", 0),  # the status: the error body is not even read
        ("video", 0),  # the type
        ("declared-too-large", 0),  # the declared length
        ("video-labelled-image", ONE_READ),  # the first bytes, whatever the label
        ("too-large", CAP + ONE_READ),  # the running count, without a declared length
    ],
)
async def test_anything_else_is_given_up_early_and_leaves_nothing(
    server: str, tmp_path: Path, name: str, most_read: int
) -> None:
    found, read = await fetch(server, name, tmp_path / "thumbnail")
    assert not found
    assert read <= most_read
    assert list(tmp_path.iterdir()) == []  # no thumbnail, no temporary file


def answer(status: int, body: bytes, content_type: str) -> httpx.Response:
    request = httpx.Request("GET", "http://up/v1/videos?limit=1")
    return httpx.Response(status, content=body, headers={"content-type": content_type}, request=request)


LITELLM_400 = (
    b'{"error":{"message":"litellm.BadRequestError: LLM Provider NOT provided.","type":null,'
    b'"param":null,"code":"400"}}'
)


def test_a_json_error_past_authentication_proves_the_channel_reachable_and_the_key_taken() -> None:
    verdict = probe_verdict(answer(400, LITELLM_400, "application/json"))
    assert verdict.ok
    assert "HTTP 400" in verdict.verdict and "LLM Provider NOT provided" in verdict.verdict
    assert verdict.verdict.startswith("reachable and the credentials are accepted")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stay_a_failure(status: int) -> None:
    verdict = probe_verdict(answer(status, LITELLM_400, "application/json"))
    assert not verdict.ok and "credentials were refused" in verdict.verdict


@pytest.mark.parametrize("status", [400, 404])
def test_a_page_that_is_not_json_still_hints_at_the_base_url(status: int) -> None:
    page = b"<html><body><h1>Not Found</h1></body></html>"
    verdict = probe_verdict(answer(status, page, "text/html"))
    assert not verdict.ok and "is base_url the API root" in verdict.verdict


def test_a_server_error_is_no_proof() -> None:
    verdict = probe_verdict(answer(500, b'{"error":{"message":"boom"}}', "application/json"))
    assert not verdict.ok
