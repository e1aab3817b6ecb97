"""The default configuration end to end: images fetched over loopback, rendered by the built-in animate
engine in a separate process, stored, and served; the MP4 checked with PyAV."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.helpers import wait_for_status
from vidgate.config import default_channels

pytestmark = pytest.mark.anyio


def gradient_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, rng.integers(0, 255))], axis=-1)
    image = Image.fromarray(rgb.astype(np.uint8))
    for _ in range(6):  # some shapes so a wrong crop shows up in the PSNR
        x0, y0 = int(rng.integers(0, width - 50)), int(rng.integers(0, height - 50))
        image.paste(tuple(int(c) for c in rng.integers(0, 255, 3)), (x0, y0, x0 + 50, y0 + 50))
    return image


def noise_image(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def image_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server for test images: GET /<name> serves files[name] (a body `REDIRECT:<url>`
    answers a 302 to that URL)."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            if body.startswith(b"REDIRECT:"):
                self.send_response(302)
                self.send_header("location", body.removeprefix(b"REDIRECT:").decode())
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "image/png" if body[:4] == b"\x89PNG" else "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()
    server.server_close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


async def test_default_channel_renders_a_real_mp4_from_fetched_images(
    start_gateway, image_server, tmp_path: Path
) -> None:
    base, files = image_server
    first, second = gradient_image(900, 700, 1), gradient_image(640, 960, 2)
    files["a.png"], files["b.png"] = png_bytes(first), png_bytes(second)
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(gradient_image(300, 300, 3))).decode()
    async with start_gateway(run_worker=True, channels=default_channels(), fetch_allow_private=True) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post(
                "/v1/video/create",
                json={
                    "model": "sora-2",
                    "prompt": "pan",
                    "images": [f"{base}/a.png", f"{base}/b.png", data_uri],
                    "orientation": "landscape",
                    "duration": 10,
                },
            )
            assert r.status_code == 200, r.text
            state = await wait_for_status(client, r.json()["id"], timeout=240)
            assert state["status"] == "completed", state
            assert state["detail"]["engine"] == "animate" and state["watermarked"] is False
            video = (await client.get(state["video_url"])).content
            thumb = (await client.get(state["thumbnail_url"])).content
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == (
            "h264",
            1280,
            720,
        )
        assert float(stream.average_rate) == 24
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 240
    # Frame 0 is image 0 cover-cropped at zoom 1.0: compare with an independent reference.
    reference = np.asarray(ImageOps.fit(first, (1280, 720), method=Image.Resampling.BILINEAR))
    assert psnr(frames[0], reference) >= 30
    assert psnr(frames[0], np.asarray(ImageOps.fit(second, (1280, 720)))) < 20
    assert Image.open(io.BytesIO(thumb)).format == "WEBP"


@pytest.mark.parametrize(
    "name, body, code, says",
    [
        ("missing.png", None, "image_fetch_failed", "404"),
        ("to-data.png", b"REDIRECT:data:image/png;base64,iVBORw0KGgo=", "image_fetch_failed", "redirect"),
        ("to-script.png", b"REDIRECT:javascript:alert(1)", "image_fetch_failed", "redirect"),
        ("page.png", b"<html>not an image</html>", "invalid_image", "text/html"),
        ("trunc.png", png_bytes(gradient_image(64, 64, 1))[:60], "invalid_image", ""),
        (
            "bomb.png",
            png_bytes(Image.new("1", (10_000, 10_000))),
            "invalid_image",
            "pixels",
        ),  # 12 KB, 100 Mpx
        (
            "big.png",
            png_bytes(noise_image(200, 200)),
            "invalid_image",
            "32768",
        ),  # ~120 KB, over the cap below
    ],
)
async def test_bad_images_fail_the_task_naming_the_image(
    start_gateway, image_server, name, body, code, says
) -> None:
    base, files = image_server
    files["ok.png"] = png_bytes(gradient_image(64, 64, 1))
    if body is not None:
        files[name] = body
    settings = {
        "channels": default_channels(),
        "fetch_allow_private": True,
        "fetch_max_image_bytes": 32 * 1024,
    }
    async with start_gateway(run_worker=True, **settings) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post(
                "/v1/video/create",
                json={"model": "sora-2", "prompt": "x", "images": [f"{base}/ok.png", f"{base}/{name}"]},
            )
            state = await wait_for_status(client, r.json()["id"], timeout=60)
    assert state["status"] == "failed"
    assert state["error"]["code"] == code
    assert state["error"]["message"].startswith("images[1]:")
    assert says in state["error"]["message"]


async def test_loopback_images_are_refused_with_the_default_fetch_policy(start_gateway, image_server) -> None:
    base, files = image_server
    files["a.png"] = png_bytes(gradient_image(64, 64, 1))
    async with start_gateway(run_worker=False, channels=default_channels()) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post(
                "/v1/video/create", json={"model": "sora-2", "prompt": "x", "images": [f"{base}/a.png"]}
            )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "images[0]"


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.mark.skipif(not Path(DEJAVU).is_file(), reason="DejaVu Sans is not installed")
async def test_a_prompt_the_card_font_cannot_draw_is_delivered_with_a_warning(start_gateway) -> None:
    from vidgate.channel_config import ChannelSettings

    channel = ChannelSettings(
        name="animate", kind="animate", models=["sora-2"], options={"fps": 4, "font": DEJAVU}
    )
    async with start_gateway(run_worker=True, channels=[channel]) as gw:
        async with gw.client(await gw.new_key()) as client:
            states = []
            for prompt in ("一只猫在沙发上 a cat", "a cat on a sofa"):
                r = await client.post(
                    "/v1/video/create", json={"model": "sora-2", "prompt": prompt, "duration": 4}
                )
                assert r.status_code == 200, r.text
                states.append(await wait_for_status(client, r.json()["id"], timeout=120))
    chinese, english = states
    assert chinese["status"] == "completed" and english["status"] == "completed"
    [warning] = chinese["detail"]["warnings"]
    assert (
        "cannot draw 7 of the prompt's characters (一只猫在沙发上)" in warning and "fonts-noto-cjk" in warning
    )
    assert "warnings" not in english["detail"]


@pytest.mark.skipif(not Path(DEJAVU).is_file(), reason="DejaVu Sans is not installed")
async def test_a_worker_whose_card_font_lacks_cjk_warns_at_start(start_gateway) -> None:
    from structlog.testing import capture_logs

    from vidgate.channel_config import ChannelSettings

    channel = ChannelSettings(name="animate", kind="animate", models=["sora-2"], options={"font": DEJAVU})
    with capture_logs() as logs:
        async with start_gateway(run_worker=True, channels=[channel]):
            pass  # no task: the warning must not wait for the first one
    [warning] = [e for e in logs if "cannot draw Chinese" in e["event"]]
    assert warning["log_level"] == "warning" and warning["font"] == "DejaVuSans.ttf"
    assert "fonts-noto-cjk" in warning["hint"]


async def test_a_font_option_that_is_not_a_font_stops_the_start(tmp_path: Path) -> None:
    from vidgate.channel_config import ChannelSettings
    from vidgate.config import Settings
    from vidgate.providers.registry import ChannelConfigError, check_channels

    bogus = tmp_path / "font.ttf"
    bogus.write_text("not a font")
    channel = ChannelSettings(name="animate", kind="animate", models=["sora-2"], options={"font": str(bogus)})
    with pytest.raises(ChannelConfigError, match="font"):
        check_channels(Settings(data_dir=tmp_path, channels=[channel]))
