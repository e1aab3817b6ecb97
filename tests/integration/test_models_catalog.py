"""`GET /v1/models`: OpenAI's list shape with each model's capabilities and price, only the models the
calling key may use, through real HTTP and the real `openai` SDK."""

from __future__ import annotations

import openai
import pytest

from tests.integration.catalog_support import key_for_models
from vidgate.config import ChannelSettings

pytestmark = pytest.mark.anyio

CHANNELS = [
    ChannelSettings(
        name="engine",
        kind="animate",
        models=["sora-2"],
        durations=[4, 8],
        pricing={"sora-2": {"per_second": "0.1", "resolutions": {"1080p": {"per_second": "0.25"}}}},
    ),
    ChannelSettings(
        name="relay",
        kind="unified",
        base_url="http://127.0.0.1:9/v1",
        models=["veo-3.1", "kling"],
        durations=[8],
        capabilities={
            "veo-3.1": {"audio": "always", "resolutions": ["720p"], "aspect_ratios": ["16:9", "9:16"]},
            "*": {"enhance_prompt": False},
        },
        pricing={"veo-3.1": {"per_second": "0.2", "with_audio": {"per_second": "0.4"}}},
    ),
]


async def test_the_list_is_openais_shape_with_capabilities_and_prices(start_gateway) -> None:
    async with start_gateway(run_worker=False, channels=CHANNELS) as gw:
        async with gw.client(await key_for_models(gw, None)) as client:
            listed = (await client.get("/v1/models")).json()
    assert listed["object"] == "list"
    by_id = {m["id"]: m for m in listed["data"]}
    assert sorted(by_id) == ["kling", "sora-2", "veo-3.1"]
    veo = by_id["veo-3.1"]
    assert veo["object"] == "model" and isinstance(veo["created"], int) and veo["owned_by"] == "relay"
    caps = veo["capabilities"]
    assert caps["durations"] == [8] and caps["resolutions"] == ["720p"]
    assert caps["aspect_ratios"] == ["16:9", "9:16"] and caps["audio"] == "always"
    assert caps["images"]["last_frame"] is True and caps["enhance_prompt"] is False
    # Always with sound: only the sound price is ever charged.
    assert veo["pricing"]["per_clip"] == {"720p": {"with_audio": {"8": "3.2"}}}
    sora = by_id["sora-2"]
    assert sora["owned_by"] == "vidgate" and sora["capabilities"]["audio"] == "none"
    assert sora["pricing"]["per_clip"]["720p"] == {"silent": {"4": "0.4", "8": "0.8"}}
    assert sora["pricing"]["per_clip"]["1080p"] == {"silent": {"4": "1", "8": "2"}}
    assert by_id["kling"]["pricing"] is None


async def test_a_key_sees_exactly_its_allowed_models_and_others_are_404(start_gateway) -> None:
    async with start_gateway(run_worker=False, channels=CHANNELS) as gw:
        key = await key_for_models(gw, ["veo-3.1", "no-such-model"])
        async with gw.client(key) as client:
            listed = (await client.get("/v1/models")).json()
            assert [m["id"] for m in listed["data"]] == ["veo-3.1"]
            assert (await client.get("/v1/models/veo-3.1")).json()["id"] == "veo-3.1"
            hidden = await client.get("/v1/models/sora-2")
            assert hidden.status_code == 404 and hidden.json()["error"]["param"] == "model"
            assert (await client.get("/v1/models/no-such-model")).status_code == 404
        async with gw.client(None) as anonymous:
            assert (await anonymous.get("/v1/models")).status_code == 401


async def test_the_openai_sdk_lists_and_retrieves_models(start_gateway) -> None:
    async with start_gateway(run_worker=False, channels=CHANNELS) as gw:
        key = await key_for_models(gw, None)
        async with openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0) as sdk:
            ids = [m.id async for m in sdk.models.list()]
            assert ids == ["kling", "sora-2", "veo-3.1"]
            model = await sdk.models.retrieve("sora-2")
            assert model.owned_by == "vidgate" and model.model_extra is not None
            assert model.model_extra["capabilities"]["durations"] == [4, 8]


async def test_a_create_is_refused_for_what_the_catalog_says_the_model_cannot_do(start_gateway) -> None:
    async with start_gateway(run_worker=False, channels=CHANNELS) as gw:
        async with gw.client(await key_for_models(gw, None)) as client:
            silent = await client.post(
                "/v1/video/create",
                json={"model": "veo-3.1", "prompt": "x", "duration": 8, "generate_audio": False},
            )
            assert silent.status_code == 400 and silent.json()["error"]["param"] == "generate_audio"
            wide = await client.post(
                "/v1/videos", data={"model": "veo-3.1", "prompt": "x", "seconds": "8", "aspect_ratio": "21:9"}
            )
            assert wide.status_code == 400 and wide.json()["error"]["param"] == "aspect_ratio"
            enhance = await client.post(
                "/v1/video/create",
                json={"model": "kling", "prompt": "x", "duration": 8, "enhance_prompt": True},
            )
            assert enhance.status_code == 400 and enhance.json()["error"]["param"] == "enhance_prompt"
            fine = await client.post(
                "/v1/video/create",
                json={"model": "veo-3.1", "prompt": "x", "duration": 8, "aspect_ratio": "16:9", "seed": 3},
            )
            assert fine.status_code == 200, fine.text
