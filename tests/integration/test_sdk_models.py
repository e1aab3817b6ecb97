"""The SDK's model catalog (`client.models.list()` / `retrieve(id)`) and the create fields it describes
(seed, negative_prompt, generate_audio, resolution, aspect_ratio, last_frame, enhance_prompt), against a
real gateway over loopback, through both `Client` and `AsyncClient`. The catalog's own rules (shape,
prices, a key's allowed models) are tested in test_models_catalog.py."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import query
from tests.integration.catalog_support import catalog_channels, key_for_models
from tests.integration.sdk_support import SDK, png
from vidgate.client import BadRequestError, ModelCapabilities, ModelInfo, ModelPricing, NotFoundError

pytestmark = pytest.mark.anyio
Env = tuple[Any, str, SDK]


async def unified_input(gw: Any, key: str, video_id: str) -> dict[str, Any]:
    """What the server recorded of the request (`detail.input` of the unified query)."""
    async with gw.client(key) as http:
        state = await query(http, video_id)
    detail: dict[str, Any] = state["detail"]["input"]
    return detail


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def idle(start_gateway: Any, flavour: str, tmp_path: Path) -> AsyncIterator[Env]:
    """No worker: created tasks stay pending, and what the server recorded is read back."""
    async with start_gateway(run_worker=False, channels=catalog_channels(tmp_path / "upstream")) as gw:
        key = await key_for_models(gw, None)
        sdk = SDK(flavour, gw.base_url, key)
        yield gw, key, sdk
        await sdk.close()


async def test_list_and_retrieve_give_typed_models_with_capabilities_and_prices(idle: Env) -> None:
    _, _, sdk = idle
    models = await sdk("models.list")
    assert all(isinstance(m, ModelInfo) for m in models)
    assert [m.id for m in models] == ["sora-2", "studio-1", "veo-3.1"]
    by_id = {m.id: m for m in models}

    veo = by_id["veo-3.1"]
    assert (veo.object, veo.owned_by) == ("model", "relay") and isinstance(veo.created, int)
    caps = veo.capabilities
    assert isinstance(caps, ModelCapabilities)
    assert (caps.durations, caps.resolutions, caps.aspect_ratios) == ([8], ["720p"], ["16:9", "9:16"])
    assert caps.sizes == ["720x1280", "1280x720"]
    assert (caps.audio, caps.audio_default) == ("always", True)
    assert isinstance(veo.pricing, ModelPricing) and veo.pricing.currency == "credits"
    assert veo.pricing.per_clip == {"720p": {"with_audio": {"8": "3.2"}}}
    assert veo.pricing.price("720p", 8, audio=True) == Decimal("3.2")
    assert veo.pricing.price("720p", 8) is None  # never made silent: no silent price

    sora = by_id["sora-2"]
    assert sora.capabilities.audio == "none" and sora.capabilities.images.last_frame is False
    assert sora.capabilities.images.max == 4 and sora.capabilities.seed is False
    assert sora.pricing is not None
    assert sora.pricing.price("1080p", 8) == Decimal("2") and sora.pricing.price("720p", 4) == Decimal("0.4")

    studio = by_id["studio-1"]
    assert studio.pricing is None  # no channel charges for it
    images = studio.capabilities.images
    assert (images.first_frame, images.last_frame) == (True, True)
    assert studio.capabilities.resolutions == ["480p", "720p"]
    assert studio.capabilities.aspect_ratios == ["16:9", "9:16", "1:1"]
    assert (studio.capabilities.audio, studio.capabilities.seed) == ("optional", True)

    assert await sdk("models.retrieve", "veo-3.1") == veo
    assert (await sdk("models.retrieve", " studio-1 ")).id == "studio-1"


async def test_a_key_sees_only_its_allowed_models(idle: Env, flavour: str) -> None:
    gw, _, _ = idle
    limited = SDK(flavour, gw.base_url, await key_for_models(gw, ["veo-3.1", "not-served"]))
    try:
        assert [m.id for m in await limited("models.list")] == ["veo-3.1"]
        assert (await limited("models.retrieve", "veo-3.1")).capabilities.durations == [8]
        for hidden in ("sora-2", "not-served", "vendor/with-a-slash"):
            with pytest.raises(NotFoundError) as missing:
                await limited("models.retrieve", hidden)
            assert (missing.value.status_code, missing.value.param) == (404, "model")
    finally:
        await limited.close()


async def test_the_new_create_fields_reach_the_server_on_both_routes(idle: Env, tmp_path: Path) -> None:
    gw, key, sdk = idle
    last = tmp_path / "last.png"
    last.write_bytes(png(colour=(10, 200, 10)))

    # The OpenAI route, a local first frame uploaded and the last frame by URL (multipart).
    uploaded = await sdk(
        "videos.create", prompt="from first to last", model="studio-1", images=[png()], duration=5,
        resolution="480p", aspect_ratio="1:1", seed=42, negative_prompt="blur", generate_audio=False,
        enhance_prompt=True, last_frame="https://images.example.com/last.png",
    )  # fmt: skip
    assert (uploaded.size, uploaded.seconds, uploaded.status) == ("480x480", 5, "pending")
    echo = await unified_input(gw, key, uploaded.id)
    assert echo["images"] == ["(uploaded image)"]
    assert (echo["resolution"], echo["aspect_ratio"], echo["duration"]) == ("480p", "1:1", 5)
    assert (echo["seed"], echo["negative_prompt"]) == (42, "blur")
    assert (echo["generate_audio"], echo["enhance_prompt"]) == (False, True)
    assert echo["last_frame"] == "https://images.example.com/last.png"

    # A local last frame is inlined, so the OpenAI route gets JSON with both images as data: URIs.
    inline = await sdk(
        "videos.create", prompt="inline", model="studio-1", images=[png()], last_frame=last, duration=10,
        resolution="720p", aspect_ratio="16:9", generate_audio=True,
    )  # fmt: skip
    assert (inline.size, inline.seconds) == ("1280x720", 10)
    echo = await unified_input(gw, key, inline.id)
    assert echo["images"][0].startswith("data:image/png;base64,")
    assert echo["last_frame"].startswith("data:image/png;base64,") and echo["generate_audio"] is True

    # The unified route (orientation) takes the same fields; bytes work as a last frame too.
    unified = await sdk(
        "videos.create", prompt="unified", model="studio-1", orientation="portrait", resolution="720p",
        duration=5, last_frame=png(), seed=7,
    )  # fmt: skip
    assert unified.size == "720x1280"
    echo = await unified_input(gw, key, unified.id)
    assert echo["last_frame"].startswith("data:image/png;base64,") and echo["seed"] == 7
    assert (echo["orientation"], echo["aspect_ratio"]) == ("portrait", "9:16")

    # A data: URI is passed as it is.
    uri = "data:image/png;base64," + base64.b64encode(png()).decode()
    by_uri = await sdk("videos.create", prompt="uri", model="studio-1", duration=5, last_frame=uri)
    assert (await unified_input(gw, key, by_uri.id))["last_frame"].startswith("data:image/png;base64,")


async def test_what_a_model_cannot_do_is_refused_naming_the_field(idle: Env, tmp_path: Path) -> None:
    _, _, sdk = idle
    refusals = [
        ({"model": "sora-2", "duration": 4, "generate_audio": True}, "generate_audio"),
        ({"model": "veo-3.1", "duration": 8, "generate_audio": False}, "generate_audio"),
        ({"model": "sora-2", "duration": 4, "seed": 1}, "seed"),
        ({"model": "sora-2", "duration": 4, "negative_prompt": "x"}, "negative_prompt"),
        ({"model": "sora-2", "duration": 4, "last_frame": png()}, "last_frame"),
        ({"model": "veo-3.1", "duration": 8, "aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"model": "veo-3.1", "duration": 8, "resolution": "1080p"}, "resolution"),
        ({"model": "sora-2", "duration": 4, "aspect_ratio": "5:4"}, "aspect_ratio"),
    ]
    for fields, param in refusals:
        with pytest.raises(BadRequestError) as refused:
            await sdk("videos.create", prompt="x", **fields)
        assert refused.value.param == param, (fields, refused.value)
    with pytest.raises(ValueError, match=r"last_frame: cannot read .*missing\.png"):  # before sending
        await sdk("videos.create", prompt="x", last_frame=tmp_path / "missing.png")
