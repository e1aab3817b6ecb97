"""`vidgate models list|show` and the create options the catalog describes (`vidgate video create
--seed --negative-prompt --audio/--no-audio --resolution --aspect-ratio --last-frame --enhance-prompt`):
the real `vidgate` process, piped (so tab-separated tables), against a real gateway over loopback with
no worker (what a create sent is read back from the task)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.helpers import query
from tests.integration.catalog_support import catalog_channels, key_for_models
from tests.integration.sdk_support import png
from tests.integration.test_cli_client import Cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@pytest.fixture
async def gw(start_gateway: GatewayFactory, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with start_gateway(run_worker=False, channels=catalog_channels(tmp_path / "upstream")) as gateway:
        yield gateway


@pytest.fixture
async def cli(gw: Gateway, tmp_path: Path) -> Cli:
    return Cli(gw.base_url, await key_for_models(gw), tmp_path)


def table(stdout: str) -> dict[str, dict[str, str]]:
    """A piped table (tab-separated, header first) as {first column: {header: cell}}."""
    header, *rows = [line.split("\t") for line in stdout.splitlines()]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


async def test_models_list_prints_a_row_per_model_of_the_key(cli: Cli, gw: Gateway) -> None:
    done = await cli("models", "list")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["sora-2", "studio-1", "veo-3.1"]
    assert rows["sora-2"] == {
        "model": "sora-2", "seconds": "4, 8", "resolutions": "720p, 1080p", "ratios": "16:9, 9:16",
        "audio": "none", "images": "first, 4 refs (max 4)", "price": "0.4-2",
    }  # fmt: skip
    assert rows["veo-3.1"]["audio"] == "always" and rows["veo-3.1"]["price"] == "3.2"
    studio = rows["studio-1"]
    assert (studio["seconds"], studio["resolutions"]) == ("5, 10", "480p, 720p")
    assert studio["ratios"] == "16:9, 9:16, 1:1" and studio["audio"] == "optional (off unless asked)"
    assert studio["images"] == "first, last (max 1)" and studio["price"] == "free"

    as_json = await cli("models", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == list(rows)
    veo = next(m for m in listed["data"] if m["id"] == "veo-3.1")
    assert veo["object"] == "model" and veo["owned_by"] == "relay"
    assert veo["capabilities"]["aspect_ratios"] == ["16:9", "9:16"]
    assert veo["pricing"]["per_clip"] == {"720p": {"with_audio": {"8": "3.2"}}}

    limited = await cli("models", "list", key=await key_for_models(gw, ["studio-1", "no-such-model"]))
    assert limited.returncode == 0, limited.stderr
    assert list(table(limited.stdout)) == ["studio-1"]


async def test_models_show_prints_one_model_and_refuses_one_the_key_may_not_use(
    cli: Cli, gw: Gateway
) -> None:
    done = await cli("models", "show", "sora-2")
    assert done.returncode == 0, done.stderr
    fields = {row["field"]: row["value"] for row in table(done.stdout).values()}
    assert fields["id"] == "sora-2" and fields["owned by"] == "vidgate"
    assert fields["seconds"] == "4, 8" and fields["aspect ratios"] == "16:9, 9:16"
    assert fields["price 720p silent"] == "4 s: 0.4, 8 s: 0.8 credits"
    assert fields["price 1080p silent"] == "4 s: 1, 8 s: 2 credits"
    assert (fields["seed"], fields["negative prompt"], fields["audio"]) == ("no", "no", "none")

    studio = await cli("models", "show", "studio-1", "--json")
    assert studio.returncode == 0, studio.stderr
    shown = json.loads(studio.stdout)
    assert shown["id"] == "studio-1" and shown["pricing"] is None
    assert shown["capabilities"]["images"]["last_frame"] is True

    hidden = await cli("models", "show", "sora-2", key=await key_for_models(gw, ["studio-1"]))
    assert hidden.returncode == 1 and hidden.stdout == ""
    assert "error:" in hidden.stderr and "not_found" in hidden.stderr and "model" in hidden.stderr
    unknown = await cli("models", "show", "nope")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr

    no_key = Cli(gw.base_url, None, cli.cwd)
    missing = await no_key("models", "list")
    assert missing.returncode == 2 and "no API key" in missing.stderr


async def test_video_create_sends_the_options_the_catalog_describes(
    cli: Cli, gw: Gateway, tmp_path: Path
) -> None:
    last = tmp_path / "last.png"
    last.write_bytes(png(colour=(0, 120, 240)))
    done = await cli(
        "video", "create", "-p", "first to last", "-m", "studio-1", "--duration", "5",
        "--resolution", "480p", "--aspect-ratio", "1:1", "--seed", "42", "--negative-prompt", "blur",
        "--no-audio", "--enhance-prompt", "--last-frame", str(last), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert (video["size"], video["seconds"], video["model"]) == ("480x480", 5, "studio-1")
    async with gw.client(cli.key) as http:
        echo: dict[str, Any] = (await query(http, video["id"]))["detail"]["input"]
    assert (echo["resolution"], echo["aspect_ratio"], echo["duration"]) == ("480p", "1:1", 5)
    assert (echo["seed"], echo["negative_prompt"]) == (42, "blur")
    assert (echo["generate_audio"], echo["enhance_prompt"]) == (False, True)
    assert echo["last_frame"].startswith("data:image/png;base64,")

    by_url = await cli(
        "video", "create", "-p", "by url", "-m", "studio-1", "--duration", "10", "--audio",
        "--last-frame", "https://images.example.com/last.png", "--aspect-ratio", "9:16",
    )  # fmt: skip
    assert by_url.returncode == 0, by_url.stderr
    async with gw.client(cli.key) as http:
        echo = (await query(http, by_url.stdout.strip().splitlines()[-1]))["detail"]["input"]
    assert echo["last_frame"] == "https://images.example.com/last.png" and echo["generate_audio"] is True
    assert (echo["aspect_ratio"], echo["resolution"]) == ("9:16", "720p")


async def test_video_create_names_the_option_the_model_cannot_take(cli: Cli, tmp_path: Path) -> None:
    for args, option in (
        (("-m", "sora-2", "--duration", "4", "--audio"), "--audio"),
        (("-m", "veo-3.1", "--duration", "8", "--no-audio"), "--audio"),
        (("-m", "sora-2", "--duration", "4", "--seed", "3"), "--seed"),
        (("-m", "sora-2", "--duration", "4", "--negative-prompt", "x"), "--negative-prompt"),
        (("-m", "veo-3.1", "--duration", "8", "--aspect-ratio", "1:1"), "--aspect-ratio"),
        (("-m", "veo-3.1", "--duration", "8", "--resolution", "480p"), "--resolution"),
        (
            ("-m", "sora-2", "--duration", "4", "--last-frame", "https://images.example.com/l.png"),
            "--last-frame",
        ),
    ):
        refused = await cli("video", "create", "-p", "x", *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert refused.stderr.startswith("error: ") and f", {option})" in refused.stderr, refused.stderr

    # What the CLI itself refuses: exit 2, nothing sent.
    for args in (
        ("--aspect-ratio", "5:4"),
        ("--resolution", "4k"),
        ("--seed", "-1"),
        ("--last-frame", str(tmp_path / "missing.png")),
    ):
        usage = await cli("video", "create", "-p", "x", *args)
        assert usage.returncode == 2, (args, usage.stderr)
