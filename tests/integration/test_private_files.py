"""What the gateway writes into a fresh data dir (the database and its journals, the signing key, inputs,
uploads, videos, previews, scratch space) is readable by its own user only: directories 0700, files
0600, whatever the umask."""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import create_key
from tests.helpers import scripted_channel, wait_for_status
from vidgate.api.app import create_app
from vidgate.config import Settings, WorkerSettings
from vidgate.testing.server import bind_loopback, serving

pytestmark = pytest.mark.anyio


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022, under which files are created world-readable unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[str, int]:
    """Every path under `root` (and `root` itself), relative, with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


async def test_a_fresh_data_dir_is_private_to_the_gateways_user(tmp_path: Path, usual_umask: None) -> None:
    data_dir = tmp_path / "srv" / "vidgate"  # neither directory exists yet
    sock = bind_loopback()
    settings = Settings(
        data_dir=data_dir,
        port=sock.getsockname()[1],
        channels=[scripted_channel(tmp_path / "upstream")],
        worker=WorkerSettings(idle_poll_seconds=0.05, retry_base_seconds=0.01),
    )
    async with serving(create_app(settings), sock) as base_url:
        key = await create_key(settings)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            image = "data:image/png;base64," + base64.b64encode(png()).decode()
            unified = await client.post(
                "/v1/video/create", json={"model": "sora-2", "prompt": "x", "images": [image]}
            )
            assert unified.status_code == 200, unified.text
            uploaded = await client.post(
                "/v1/videos",
                data={"prompt": "y", "seconds": "4"},
                files={"input_reference": ("ref.png", png(), "image/png")},
            )
            assert uploaded.status_code == 200, uploaded.text
            for task_id in (unified.json()["id"], uploaded.json()["id"]):
                assert (await wait_for_status(client, task_id))["status"] == "completed"
        modes = modes_under(data_dir)  # while the database is open: its -wal and -shm exist

    names = {Path(p).name for p in modes}
    expected = {"vidgate.db", "vidgate.db-wal", "vidgate.db-shm", "secret_key", "video.mp4", "0.png"}
    assert expected | {"input_reference", "thumbnail.webp", "work"} <= names
    assert stat.S_IMODE(data_dir.parent.stat().st_mode) == 0o700  # the parent it had to make, too
    not_private = {
        path: oct(mode)
        for path, mode in modes.items()
        if mode != (0o700 if (data_dir / path).is_dir() else 0o600)
    }
    assert not not_private
