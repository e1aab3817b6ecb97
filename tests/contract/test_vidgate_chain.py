"""vidgate in front of another vidgate: the outer gateway's channel is the inner gateway, over both
dialects, with the official `openai` SDK as the client of the outer one."""

from __future__ import annotations

import io
from pathlib import Path

import av
import openai
import pytest
from PIL import Image

from tests.contract.conftest import gateway_options
from tests.helpers import scripted_channel
from vidgate.config import ChannelSettings

SORA_SHUTDOWN = "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings(SORA_SHUTDOWN)]


def reference_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (500, 700), (10, 120, 90)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["openai", "unified"])
async def test_the_openai_sdk_through_two_gateways(start_gateway, tmp_path: Path, kind: str) -> None:
    inner_options = {
        "run_worker": True,
        "channels": [scripted_channel(tmp_path / "inner-upstream", polls=2)],
        "data_dir": tmp_path / "inner",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'inner.db'}",
    }
    async with start_gateway(**inner_options) as inner:
        inner_key = await inner.new_key("outer gateway")
        channel = ChannelSettings(
            name="inner-vidgate",
            kind=kind,
            base_url=f"{inner.base_url}/v1",
            api_key=inner_key,
            models=["sora-2"],
            honours_idempotency_key=True,  # vidgate dedupes creates on Idempotency-Key
            watermark_free="always",
        )
        async with start_gateway(**gateway_options(channel)) as outer:
            outer_key = await outer.new_key()
            client = openai.AsyncOpenAI(base_url=f"{outer.base_url}/v1", api_key=outer_key, max_retries=0)
            try:
                video = await client.videos.create_and_poll(
                    prompt="two gateways deep",
                    seconds="8",
                    size="720x1280",
                    input_reference=("ref.png", reference_png(), "image/png"),
                    poll_interval_ms=50,
                )
                content = await client.videos.download_content(video.id)
            finally:
                await client.close()
            outer_task = await outer.runtime.tasks.get(video.id.removeprefix("video_"))
        inner_tasks, _ = await inner.runtime.tasks.list_page(
            owner=(await inner.runtime.keys.authenticate(inner_key)).id, after=None, limit=10, descending=True
        )
        inner_task = await inner.runtime.tasks.get(inner_tasks[0].id) if inner_tasks else None
    assert video.status == "completed", video.error
    assert (video.seconds, video.size) == ("8", "720x1280")
    [inner_summary] = inner_tasks  # exactly one job on the inner gateway
    inner_task = await inner.runtime.tasks.get(inner_summary.id)
    assert (
        inner_task is not None and inner_task.status.value == "completed" and inner_task.images
    )  # the reference went through
    assert outer_task is not None and outer_task.channel == "inner-vidgate"
    path = tmp_path / "chained.mp4"
    path.write_bytes(content.content)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
