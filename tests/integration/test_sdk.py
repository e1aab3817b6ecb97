"""The Python SDK (`vidgate.client`) against a real gateway over loopback, through both `Client` and
`AsyncClient`: creates on each route, reads, pages, waits, downloads (checked with PyAV), cancels,
deletes, owner scoping and the error tree. Transport retries: test_sdk_transport.py."""

from __future__ import annotations

import base64
import io
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from tests.helpers import query
from tests.integration.sdk_support import SDK, png
from vidgate.channel_config import default_channels
from vidgate.client import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    NotFoundError,
    Video,
    VidgateError,
    WaitTimeout,
)

pytestmark = pytest.mark.anyio
Env = tuple[Any, str, SDK]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: nothing the SDK does depends on the database (the store has its own suites)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def rendering(start_gateway: Any, flavour: str) -> AsyncIterator[Env]:
    """A gateway whose embedded worker renders with the built-in animate engine."""
    async with start_gateway(run_worker=True, channels=default_channels()) as gw:
        key = await gw.new_key()
        sdk = SDK(flavour, gw.base_url, key)
        yield gw, key, sdk
        await sdk.close()


@pytest.fixture
async def idle(start_gateway: Any, flavour: str) -> AsyncIterator[Env]:
    """A gateway with no worker: tasks stay pending, so reads, cancels and pages are deterministic."""
    async with start_gateway(run_worker=False, channels=default_channels()) as gw:
        key = await gw.new_key()
        sdk = SDK(flavour, gw.base_url, key)
        yield gw, key, sdk
        await sdk.close()


async def unified_input(gw: Any, key: str, video_id: str) -> dict[str, Any]:
    """What the server recorded of the request (`detail.input` of the unified query)."""
    async with gw.client(key) as http:
        state = await query(http, video_id)
    detail: dict[str, Any] = state["detail"]["input"]
    return detail


async def test_create_and_wait_then_download_every_variant(rendering: Env, tmp_path: Path) -> None:
    _, _, sdk = rendering
    seen: list[Video] = []
    video = await sdk(
        "videos.create_and_wait", prompt="a paper boat", size="720x1280", duration=4,
        on_progress=seen.append, timeout=120,
    )  # fmt: skip
    assert video.status == "completed" and video.is_terminal and video.error is None
    assert (video.size, video.seconds, video.model, video.prompt) == ("720x1280", 4, "sora-2", "a paper boat")
    assert video.progress == 100 and video.completed_at is not None and video.id.startswith("video_")
    # on_progress saw the first state and each change, in lifecycle order, ending completed
    order = ["pending", "processing", "completed"]
    statuses = [v.status for v in seen]
    assert statuses[0] != "completed" and statuses[-1] == "completed"
    assert statuses == sorted(statuses, key=order.index)
    assert len({(v.status, v.progress) for v in seen}) == len(seen)  # changes only
    assert (await sdk("videos.retrieve", video.id)) == video

    progress: list[tuple[int, int | None]] = []
    path = await sdk(
        "videos.download", video.id, tmp_path / "boat.mp4", on_progress=lambda d, t: progress.append((d, t))
    )
    assert path == tmp_path / "boat.mp4"
    size = path.stat().st_size
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600
    assert progress[-1] == (size, size) and all(a[0] < b[0] for a, b in itertools.pairwise(progress))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (720, 1280)
        assert sum(1 for _ in container.decode(stream)) == 4 * 24

    # A directory as the target: the file is named after the video and the variant
    thumb = await sdk("videos.download", video.id, tmp_path, variant="thumbnail")
    sprite = await sdk("videos.download", video.id, tmp_path, variant="spritesheet")
    assert (thumb.name, sprite.name) == (f"{video.id}-thumbnail.webp", f"{video.id}-spritesheet.jpg")
    assert Image.open(io.BytesIO(thumb.read_bytes())).format == "WEBP"
    assert Image.open(io.BytesIO(sprite.read_bytes())).format == "JPEG"
    assert not list(tmp_path.glob("*.part"))  # downloads land whole, under their real name

    remix = await sdk("videos.remix", video.id, prompt="the boat at night")
    assert (
        remix.remixed_from == video.id and remix.id != video.id and remix.status in ("pending", "processing")
    )
    assert remix.prompt == "the boat at night" and remix.seconds == 4
    await sdk("videos.delete", remix.id)


async def test_unified_fields_go_to_the_unified_route(idle: Env, tmp_path: Path) -> None:
    """orientation / small|large / several images need the unified route; local images (a path and
    bytes) travel as data: URIs there, and the returned id works everywhere."""
    gw, key, sdk = idle
    picture = tmp_path / "a.png"
    picture.write_bytes(png())
    video = await sdk(
        "videos.create", prompt="two frames", images=[picture, png(colour=(0, 90, 200))],
        orientation="landscape", size="small", duration=4, watermark=False, private=True,
    )  # fmt: skip
    assert (video.status, video.size, video.seconds, video.model) == ("pending", "1280x720", 4, "sora-2")
    echo = await unified_input(gw, key, video.id)
    assert (echo["orientation"], echo["size"], echo["duration"]) == ("landscape", "small", 4)
    assert (echo["watermark"], echo["private"]) == (False, True)
    assert len(echo["images"]) == 2 and all(i.startswith("data:image/png;base64,") for i in echo["images"])
    assert (await sdk("videos.retrieve", video.id)).id == video.id

    large = await sdk("videos.create", prompt="big", size="large", duration=4)  # portrait by default
    assert large.size == "1080x1920"


async def test_wxh_and_one_local_image_go_up_as_an_upload(idle: Env) -> None:
    gw, key, sdk = idle
    video = await sdk("videos.create", prompt="uploaded", images=[png()], size="1280x720", duration=8)
    assert (video.size, video.seconds, video.status) == ("1280x720", 8, "pending")
    echo = await unified_input(gw, key, video.id)
    assert echo["images"] == ["(uploaded image)"] and echo["orientation"] == "landscape"

    # A URL (here a data: URI) is passed as is, as the reference of the JSON create
    uri = "data:image/png;base64," + base64.b64encode(png()).decode()
    by_url = await sdk("videos.create", prompt="by url", images=[uri], watermark=True)
    echo = await unified_input(gw, key, by_url.id)
    assert (
        echo["images"][0].startswith("data:image/png;base64,") and echo["duration"] == 4
    )  # the route's default


async def test_list_pages_follow_the_cursor_in_both_orders(idle: Env) -> None:
    _, _, sdk = idle
    made = [(await sdk("videos.create", prompt=f"p{i}", duration=4)).id for i in range(5)]

    async def every(order: str) -> list[str]:
        ids: list[str] = []
        after = None
        while True:
            page = await sdk("videos.list", limit=2, after=after, order=order)
            assert len(page.data) <= 2 and all(v.status == "pending" for v in page.data)
            ids += [v.id for v in page.data]
            if not page.has_more:
                return ids
            after = page.last_id

    assert await every("desc") == made[::-1]
    assert await every("asc") == made
    first = await sdk("videos.list", limit=3, order="asc")
    assert [v.id for v in first.data] == made[:3] and first.has_more and first.last_id == made[2]


async def test_cancel_keeps_the_video_readable_as_cancelled(idle: Env) -> None:
    _, _, sdk = idle
    video = await sdk("videos.create", prompt="stop me", duration=4)
    cancelled = await sdk("videos.cancel", video.id)
    assert (cancelled.id, cancelled.status) == (video.id, "cancelled")
    assert cancelled.error is not None and cancelled.error.code == "cancelled" and cancelled.is_terminal
    assert (await sdk("videos.retrieve", video.id)).status == "cancelled"
    assert [v.status for v in (await sdk("videos.list")).data] == ["cancelled"]
    seen: list[Video] = []
    waited = await sdk("videos.wait", video.id, timeout=5, on_progress=seen.append)  # ended: returns at once
    assert waited.status == "cancelled" and [v.status for v in seen] == ["cancelled"]

    with pytest.raises(ConflictError) as again:
        await sdk("videos.cancel", video.id)
    assert again.value.code == "task_finished" and again.value.status_code == 409
    with pytest.raises(ConflictError) as not_ready:
        await sdk("videos.download", video.id, "/nonexistent-dir-is-never-written/x.mp4")
    assert not_ready.value.code == "not_ready"


async def test_delete_then_every_read_is_not_found(idle: Env) -> None:
    _, _, sdk = idle
    video = await sdk("videos.create", prompt="short-lived", duration=4)
    assert await sdk("videos.delete", video.id) is None
    with pytest.raises(NotFoundError) as gone:
        await sdk("videos.retrieve", video.id)
    assert (gone.value.code, gone.value.param, gone.value.status_code) == ("not_found", "video_id", 404)
    with pytest.raises(NotFoundError):
        await sdk("videos.delete", video.id)
    assert (await sdk("videos.list")).data == []


async def test_another_keys_video_is_not_found(idle: Env, flavour: str, tmp_path: Path) -> None:
    gw, _, sdk = idle
    video = await sdk("videos.create", prompt="mine", duration=4)
    other = SDK(flavour, gw.base_url, await gw.new_key("other"))
    try:
        for method, args in (
            ("videos.retrieve", ()),
            ("videos.cancel", ()),
            ("videos.delete", ()),
            ("videos.wait", ()),
            ("videos.download", (tmp_path / "x.mp4",)),
        ):
            with pytest.raises(NotFoundError):
                await other(method, video.id, *args)
        assert (await other("videos.list")).data == []
    finally:
        await other.close()
    assert (await sdk("videos.retrieve", video.id)).status == "pending"  # untouched by the other key


async def test_errors_carry_the_envelope(idle: Env, flavour: str, tmp_path: Path) -> None:
    gw, _, sdk = idle
    with pytest.raises(BadRequestError) as openai_route:
        await sdk("videos.create", prompt="x", duration=7)
    error = openai_route.value
    assert isinstance(error, APIStatusError) and isinstance(error, VidgateError)
    assert (error.status_code, error.code, error.param, error.type) == (
        400, "unsupported_duration", "seconds", "invalid_request_error",
    )  # fmt: skip
    assert "Allowed" in error.message and error.request_id and error.body["error"]["code"] == error.code
    assert "param: seconds" in str(error)

    with pytest.raises(BadRequestError) as unified_route:
        await sdk("videos.create", prompt="x", orientation="portrait", duration=7)
    assert (unified_route.value.code, unified_route.value.param) == ("unsupported_duration", "duration")
    with pytest.raises(BadRequestError) as size:
        await sdk("videos.create", prompt="x", size="640x360")
    assert (size.value.code, size.value.param) == ("invalid_value", "size")  # no size any field can name
    with pytest.raises(BadRequestError) as image:
        await sdk("videos.create", prompt="x", images=[b"plain text, not an image"])
    assert (image.value.code, image.value.param) == ("invalid_image", "input_reference")
    with pytest.raises(BadRequestError) as empty:
        await sdk("videos.create", prompt="  ")
    assert empty.value.param == "prompt"

    with pytest.raises(ValueError, match=r"missing\.png"):  # refused before anything is sent
        await sdk("videos.create", prompt="x", images=[tmp_path / "missing.png"])

    stranger = SDK(flavour, gw.base_url, "vg-not-a-real-key")
    try:
        with pytest.raises(AuthenticationError) as denied:
            await stranger("videos.list")
        assert (denied.value.status_code, denied.value.code) == (401, "invalid_api_key")
    finally:
        await stranger.close()


async def test_idempotency_key_of_the_caller_is_honoured(idle: Env) -> None:
    _, _, sdk = idle
    first = await sdk("videos.create", prompt="once", duration=4, idempotency_key="order-17")
    again = await sdk("videos.create", prompt="once", duration=4, idempotency_key="order-17")
    assert again.id == first.id
    with pytest.raises(ConflictError) as reused:
        await sdk("videos.create", prompt="another body", duration=4, idempotency_key="order-17")
    assert reused.value.code == "idempotency_key_reused"
    plain = [await sdk("videos.create", prompt="same", duration=4) for _ in range(2)]
    assert plain[0].id != plain[1].id  # automatic keys differ per call: two calls, two videos


async def test_wait_gives_up_at_the_timeout_with_the_last_state(idle: Env) -> None:
    _, _, sdk = idle
    video = await sdk("videos.create", prompt="never rendered", duration=4)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        await sdk("videos.wait", video.id, timeout=0.3)
    elapsed = time.monotonic() - started
    assert timed_out.value.video.id == video.id and timed_out.value.video.status == "pending"
    # the server asks for 1 s between polls of a pending video; the wait cuts that to its deadline
    assert 0.3 <= elapsed < 0.9


def test_configuration_from_the_environment_and_no_key_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGATE_API_KEY", raising=False)
    with pytest.raises(VidgateError, match="VIDGATE_API_KEY"):
        Client()
    monkeypatch.setenv("VIDGATE_API_KEY", "vg-secret-value")
    monkeypatch.setenv("VIDGATE_BASE_URL", "http://127.0.0.1:9/v1/")
    with Client() as client:
        assert client.base_url == "http://127.0.0.1:9"  # an OpenAI-style ".../v1" is accepted
        assert "vg-secret-value" not in repr(client) and "vg-secret-value" not in repr(client.videos)
    with Client("http://127.0.0.1:9", "vg-explicit") as client:
        assert client.base_url == "http://127.0.0.1:9"
