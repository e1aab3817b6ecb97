"""The client commands (`vidgate video ...`, `vidgate admin ...`) as a user runs them: the real `vidgate`
process, piped (so JSON Lines and tab-separated tables), against a real gateway over loopback whose
worker drives tasks through scripted channels: "quick" (sora-2, a few polls), "slow" (sora-2-pro, never
done while a test looks). The terminal display is tests/e2e/test_cli_pty.py."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import av
import pytest

from tests.conftest import Gateway, GatewayFactory, create_key
from tests.helpers import wait_for_status
from vidgate.config import ChannelSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the command line; the store under it is tested on both."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


def channels(state_dir: Path) -> list[ChannelSettings]:
    def scripted(name: str, models: list[str], **options: Any) -> ChannelSettings:
        return ChannelSettings(
            name=name,
            kind="scripted",
            models=models,
            options={"state_dir": str(state_dir / name), "clip_scale": 20, **options},
        )

    return [
        scripted("quick", ["sora-2"], polls=2, poll_after=0.05),
        scripted("slow", ["sora-2-pro"], polls=1_000_000, poll_after=0.5),
    ]


@pytest.fixture
async def gw(start_gateway: GatewayFactory, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with start_gateway(run_worker=True, channels=channels(tmp_path / "upstream")) as gateway:
        yield gateway


class Cli:
    """Runs `python -m vidgate ...` with VIDGATE_BASE_URL / VIDGATE_API_KEY set, off the event loop
    (the gateway serves on it)."""

    def __init__(self, base_url: str, key: str | None, cwd: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
        self.env["VIDGATE_BASE_URL"] = base_url
        if key is not None:
            self.env["VIDGATE_API_KEY"] = key
        self.cwd = cwd
        self.key = key or ""

    async def __call__(self, *args: str, key: str | None = None, timeout: float = 120) -> Any:
        env = dict(self.env)
        if key is not None:
            env["VIDGATE_API_KEY"] = key

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "vidgate", *args],
                env=env,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )

        return await anyio.to_thread.run_sync(run)


@pytest.fixture
async def cli(gw: Gateway, tmp_path: Path) -> Cli:
    return Cli(gw.base_url, await gw.new_key("cli-user"), tmp_path)


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of stdout parsed as one JSON object (fails on any line that is not)."""
    lines = stdout.splitlines()
    assert lines, "no output"
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects)
    return objects


def ulid_of(task_id: str) -> str:
    return task_id.rsplit("_", 1)[-1]


def statuses(objects: list[dict[str, Any]]) -> list[str]:
    return [o["status"] for o in objects]


async def test_create_wait_on_the_unified_fields_prints_json_lines_until_completed(cli: Cli) -> None:
    done = await cli(
        "video", "create", "--prompt", "a paper boat", "--size", "small", "--orientation", "landscape",
        "--duration", "10", "--wait",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = json_lines(done.stdout)  # piped, without --json: JSON Lines all the same
    seen = statuses(objects)
    assert seen[0] in ("pending", "processing") and seen[-1] == "completed", seen  # first: as created
    assert set(seen) <= {"pending", "processing", "completed"}
    # one object per change: no two neighbours alike
    states = [(o["status"], o["progress"]) for o in objects]
    assert all(a != b for a, b in itertools.pairwise(states)), states
    assert len({o["id"] for o in objects}) == 1
    last = objects[-1]
    assert last["progress"] == 100 and last["size"] == "1280x720" and last["seconds"] == 10
    assert last["prompt"] == "a paper boat"


async def test_create_with_a_wxh_size_and_output_writes_a_playable_mp4(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "boat.mp4"
    done = await cli(
        "video", "create", "-p", "a boat", "--size", "720x1280", "--duration", "8", "-o", str(out), "--json"
    )
    assert done.returncode == 0, done.stderr
    objects = json_lines(done.stdout)
    assert statuses(objects)[-1] == "completed"
    assert objects[-1]["output"] == str(out.resolve())  # the last line says where the file is
    assert objects[-1]["size"] == "720x1280" and objects[-1]["seconds"] == 8
    with av.open(str(out)) as container:  # a real, decodable MP4: the scripted channel's clip, 1/20 size
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.codec_context.width, stream.codec_context.height) == (36, 64)
    assert frames > 0


async def test_get_list_download_cancel_and_delete(cli: Cli, gw: Gateway, tmp_path: Path) -> None:
    created = await cli("video", "create", "-p", "a list entry")
    assert created.returncode == 0, created.stderr
    task_id = created.stdout.strip().splitlines()[-1]  # without --wait: the id, last line of stdout
    assert task_id.startswith("video_"), created.stdout
    assert f"vidgate video wait {task_id}" in created.stderr
    ulid = ulid_of(task_id)

    waited = await cli("video", "wait", task_id, "--json")
    assert waited.returncode == 0, waited.stderr
    assert statuses(json_lines(waited.stdout))[-1] == "completed"

    got = json.loads((await cli("video", "get", task_id, "--json")).stdout)
    assert got["id"] == task_id and got["status"] == "completed"
    text = (await cli("video", "get", task_id)).stdout.splitlines()  # piped: field<TAB>value
    assert "status\tcompleted" in text and f"id\t{task_id}" in text

    slow = json.loads((await cli("video", "create", "-m", "sora-2-pro", "-p", "slow one", "--json")).stdout)
    assert slow["status"] in ("pending", "processing")

    listing = await cli("video", "list")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert rows[0][:3] == ["id", "status", "progress"]
    assert [ulid_of(r[0]) for r in rows[1:]] == [ulid_of(slow["id"]), ulid]  # newest first
    page = json.loads((await cli("video", "list", "--json", "--limit", "1")).stdout)
    assert len(page["data"]) == 1 and page["has_more"] is True
    everything = json.loads((await cli("video", "list", "--json", "--limit", "1", "--all")).stdout)
    assert len(everything["data"]) == 2 and everything["has_more"] is False

    downloaded = await cli("video", "download", task_id, "--variant", "thumbnail")
    assert downloaded.returncode == 0, downloaded.stderr
    thumb = tmp_path / downloaded.stdout.strip().splitlines()[-1]
    assert thumb.name == f"video_{ulid}.webp" and thumb.read_bytes()[8:12] == b"WEBP"

    cancelled = await cli("video", "cancel", slow["id"], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    async with gw.client(cli.key) as http:
        state = await wait_for_status(http, slow["id"], ("cancelled",))
    assert state["status"] == "cancelled"
    after_cancel = await cli("video", "wait", slow["id"])  # waiting on a cancelled task: exit 1
    assert after_cancel.returncode == 1, after_cancel.stderr
    assert "cancelled" in after_cancel.stderr

    deleted = await cli("video", "delete", task_id)
    assert deleted.returncode == 0, deleted.stderr
    gone = await cli("video", "get", task_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: ") and "(not_found" in gone.stderr


async def test_a_task_made_on_the_unified_dialect_is_read_by_its_unified_id(cli: Cli, gw: Gateway) -> None:
    async with gw.client(cli.key) as http:
        r = await http.post(
            "/v1/video/create", json={"model": "sora-2", "prompt": "relay client", "images": []}
        )
        assert r.status_code == 200, r.text
    unified_id = r.json()["id"]
    assert unified_id.startswith("sora-2:task_")
    waited = await cli("video", "wait", unified_id)  # piped: JSON Lines
    assert waited.returncode == 0, waited.stderr
    objects = json_lines(waited.stdout)
    assert statuses(objects)[-1] == "completed" and ulid_of(objects[-1]["id"]) == ulid_of(unified_id)
    got = json.loads((await cli("video", "get", unified_id, "--json")).stdout)
    assert got["status"] == "completed" and got["size"] == "720x1280" and got["seconds"] == 10


async def test_a_failed_task_exits_1_with_its_error(cli: Cli) -> None:
    # The test resolver knows no such host: accepted at create, the fetch fails the task.
    done = await cli(
        "video", "create", "-p", "x", "--image", "https://no-such-host.invalid/a.png", "--wait", "--json"
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    objects = json_lines(done.stdout)
    assert objects[-1]["status"] == "failed"
    assert objects[-1]["error"]["code"] == "image_fetch_failed"
    assert done.stderr.startswith("error: ") and "image_fetch_failed" in done.stderr


async def test_a_local_image_file_is_sent_up(cli: Cli, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    done = await cli("video", "create", "-p", "a red card", "--image", str(image), "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert statuses(json_lines(done.stdout))[-1] == "completed"


async def test_timeout_exits_3_and_the_task_goes_on(cli: Cli, gw: Gateway) -> None:
    done = await cli("video", "create", "-m", "sora-2-pro", "-p", "slow", "--wait", "--timeout", "1.5s")
    assert done.returncode == 3, (done.stdout, done.stderr)
    objects = json_lines(done.stdout)
    task_id = objects[0]["id"]
    assert objects[-1]["status"] in ("pending", "processing")
    assert f"resume with: vidgate video wait {task_id}" in done.stderr
    async with gw.client(cli.key) as http:
        state = (await http.get("/v1/video/query", params={"id": task_id})).json()
    assert state["status"] in ("pending", "processing")  # not cancelled by the timeout
    assert (await cli("video", "wait", task_id, "--timeout", "1")).returncode == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["video", "create"], "--prompt"),
        (["video", "create", "-p", "x", "--size", "huge"], "--size"),
        (["video", "create", "-p", "x", "--orientation", "sideways"], "--orientation"),
        (["video", "create", "-p", "x", "--wait", "--timeout", "soon"], "--timeout"),
        (["video", "create", "-p", "x", "--image", "/no/such/file.png"], "--image"),
        (["video", "list", "--limit", "0"], "--limit"),
        (["video", "create", "-p", "x", "-o", "/no/such/folder/out.mp4"], "--output"),
        (["video", "download", "x", "--variant", "poster"], "--variant"),
        (["admin", "keys", "topup", "k", "1.0000001"], "AMOUNT"),
        (["admin", "keys", "create", "--name", "n", "--balance", "lots"], "--balance"),
        (["admin", "keys", "create", "--name", "n", "--balance", "-1"], "--balance"),
        (["admin", "keys", "topup", "k", "0"], "AMOUNT"),
        (["admin", "keys", "limits", "k", "--requests-per-minute", "-3"], "--requests-per-minute"),
        (["admin", "tasks", "--since", "last tuesday"], "--since"),
    ],
)
async def test_bad_usage_exits_2(cli: Cli, args: list[str], needle: str) -> None:
    done = await cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert needle in done.stderr


async def test_no_key_is_a_usage_error_and_a_bad_key_an_api_error(cli: Cli) -> None:
    env_key = cli.env.pop("VIDGATE_API_KEY")
    try:
        missing = await cli("video", "list")
        assert missing.returncode == 2 and "VIDGATE_API_KEY" in missing.stderr
        bad = await cli("video", "list", "--key", "vg-not-a-key")
        assert bad.returncode == 1
        assert bad.stderr.startswith("error: ") and "(invalid_api_key)" in bad.stderr
        assert "vg-not-a-key" not in bad.stderr + bad.stdout
        via_flag = await cli("video", "list", "--key", env_key)  # --key works as the variable does
        assert via_flag.returncode == 0, via_flag.stderr
    finally:
        cli.env["VIDGATE_API_KEY"] = env_key


async def test_a_400_from_the_server_is_one_line_naming_the_option(cli: Cli) -> None:
    # Whichever dialect the SDK picks (`seconds` on /v1/videos, `duration` on the unified create), the
    # error names the option the user typed.
    for extra in ([], ["--size", "small"]):
        done = await cli("video", "create", "-p", "x", "--duration", "7", *extra)
        assert done.returncode == 1
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: A duration of 7 s is not available"), line
        assert line.endswith("(unsupported_duration, --duration)"), line
    done = await cli("video", "create", "-p", "x", "--image", "https://no-such-host.invalid:8443/a.png")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("(invalid_url, --image)"), done.stderr
    done = await cli(
        "video", "create", "-p", "x", "-i", "https://no-such-host.invalid/a.png", "-i", "ftp://x/b.png"
    )
    assert done.returncode == 2  # not a URL the CLI knows and not a file: its own usage error
    done = await cli(
        "video",
        "create",
        "-p",
        "x",
        "-i",
        "https://no-such-host.invalid/a.png",
        "-i",
        "http://localhost/b.png",
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith("(invalid_url, --image #2)"), done.stderr


async def test_an_unreachable_server_is_exit_1(tmp_path: Path) -> None:
    from vidgate.testing.server import bind_loopback

    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    done = await Cli(f"http://127.0.0.1:{port}", "vg-x", tmp_path)("video", "get", "x")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach the server at http://127.0.0.1:{port}")


async def test_admin_commands_with_an_admin_key(cli: Cli, gw: Gateway) -> None:
    admin = Cli(gw.base_url, await create_key(gw.settings, name="root", admin=True), cli.cwd)

    made = await admin(
        "admin", "keys", "create", "--name", "bob", "--balance", "2.5", "--allowed-model", "sora-2"
    )
    assert made.returncode == 0, made.stderr
    bob_key = made.stdout.strip().splitlines()[-1]
    assert bob_key.startswith("vg-") and bob_key not in made.stderr
    info = json.loads((await admin("admin", "keys", "list", "--json")).stdout)
    [bob] = [k for k in info["data"] if k["name"] == "bob"]
    assert bob["balance"] == 2_500_000 and bob["allowed_models"] == ["sora-2"]
    assert all("key" not in k for k in info["data"])

    listing = (await admin("admin", "keys", "list")).stdout.splitlines()
    assert listing[0].split("\t")[:3] == ["id", "name", "hint"]
    assert any(line.split("\t")[1] == "bob" and "\t2.5\t" in line for line in listing), listing
    assert bob_key not in "\n".join(listing)

    topped = json.loads(
        (await admin("admin", "keys", "topup", bob["id"], "1.25", "--note", "gift", "--json")).stdout
    )
    assert topped["balance"] == 3_750_000
    shown = (await admin("admin", "keys", "get", bob["id"])).stdout.splitlines()
    assert "balance\t3.75" in shown and "allowed models\tsora-2" in shown

    limited = await admin("admin", "keys", "limits", bob["id"], "--requests-per-minute", "50", "--all-models")
    assert limited.returncode == 0, limited.stderr
    assert "requests per minute\t50" in limited.stdout.splitlines()
    assert "allowed models\tall" in limited.stdout.splitlines()
    unchanged = await admin("admin", "keys", "limits", bob["id"])
    assert "requests per minute\t50" in unchanged.stdout.splitlines()
    reset = await admin("admin", "keys", "limits", bob["id"], "--requests-per-minute", "default")
    assert "requests per minute\tdefault" in reset.stdout.splitlines()
    assert "creates per minute\tdefault" in reset.stdout.splitlines()

    ledger = json.loads((await admin("admin", "keys", "ledger", bob["id"], "--json")).stdout)
    topups = [e for e in ledger["data"] if e["kind"] == "topup"]
    assert [(e["amount"], e["note"]) for e in topups][-1] == (1_250_000, "gift")
    assert "\ttopup\t1.25\t" in (await admin("admin", "keys", "ledger", bob["id"])).stdout

    # Bob's key works for the video commands; his task shows up in the admin's task list
    bob_cli = Cli(gw.base_url, bob_key, cli.cwd)
    made_task = json.loads(
        (await bob_cli("video", "create", "-p", "bob's", "--wait", "--json")).stdout.splitlines()[-1]
    )
    assert made_task["status"] == "completed"
    tasks = json.loads((await admin("admin", "tasks", "--key-id", bob["id"], "--json")).stdout)
    assert [t["key_id"] for t in tasks["data"]] == [bob["id"]]
    assert tasks["data"][0]["status"] == "completed"
    assert (await admin("admin", "tasks", "--status", "completed", "--since", "1h")).returncode == 0
    usage = json.loads((await admin("admin", "usage", "--key-id", bob["id"], "--json")).stdout)
    assert sum(row["completed"] for row in usage["data"]) == 1
    chans = json.loads((await admin("admin", "channels", "--json")).stdout)
    assert {c["name"] for c in chans["data"]} == {"quick", "slow"}
    assert "quick" in (await admin("admin", "channels")).stdout

    revoked = await admin("admin", "keys", "revoke", bob["id"], "--json")
    assert json.loads(revoked.stdout)["revoked_at"] is not None


async def test_a_non_admin_key_gets_the_404(cli: Cli) -> None:
    for args in (["admin", "keys", "list"], ["admin", "tasks"], ["admin", "channels"]):
        done = await cli(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and "(not_found)" in done.stderr, done.stderr


async def test_unlimited_key_topup_is_refused(cli: Cli, gw: Gateway) -> None:
    admin = Cli(gw.base_url, await create_key(gw.settings, name="root", admin=True), cli.cwd)
    made = json.loads((await admin("admin", "keys", "create", "--name", "free", "--json")).stdout)
    assert made["balance"] is None and made["key"].startswith("vg-")
    done = await admin("admin", "keys", "topup", made["id"], "5")
    assert done.returncode == 1 and "(key_unlimited" in done.stderr


README = Path(__file__).parents[2] / "README.md"


def readme_cli_block() -> str:
    text = README.read_text()
    section = text[text.index("The same walk-through with the `vidgate` command") :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("```", start)]


async def test_the_readme_cli_walkthrough_works_when_pasted(cli: Cli, tmp_path: Path) -> None:
    block = readme_cli_block()
    script = block.replace(".venv/bin/vidgate", "vidgate")  # the console script, as the venv installs it
    [saved] = re.findall(r" -o (\S+)", block)
    workdir = tmp_path / "user"
    workdir.mkdir()
    env = {**cli.env, "API": cli.env["VIDGATE_BASE_URL"], "KEY": cli.key}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    del env["VIDGATE_BASE_URL"], env["VIDGATE_API_KEY"]  # the block sets them from $API and $KEY

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    done = await anyio.to_thread.run_sync(run)
    assert done.returncode == 0, done.stderr
    with av.open(str(workdir / saved)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 36)  # 1280x720 / 20
    listed = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("video_")]
    assert [row[1] for row in listed] == ["completed"]


async def test_a_reader_that_goes_away_ends_the_wait_quietly(cli: Cli) -> None:
    # `head -1` takes the first state and exits; the next line the CLI writes meets a closed pipe.
    vidgate = f"{sys.executable} -m vidgate"
    script = f"{vidgate} video create -p 'first line only' --wait | head -1; exit ${{PIPESTATUS[0]}}"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    done = await anyio.to_thread.run_sync(run)
    assert json_lines(done.stdout)[0]["status"] in ("pending", "processing")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, (
        done.stderr
    )


async def test_sigint_while_waiting_piped_detaches_and_leaves_the_task_running(cli: Cli, gw: Gateway) -> None:
    def run() -> tuple[int, str, str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vidgate",
                "video",
                "create",
                "-m",
                "sora-2-pro",
                "-p",
                "interrupted",
                "--wait",
            ],
            env=cli.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first state: it is waiting now
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, first, err

    code, first, err = await anyio.to_thread.run_sync(run)
    task_id = json.loads(first)["id"]
    assert code == 130, err
    assert f"resume with: vidgate video wait {task_id}" in err and "Traceback" not in err
    async with gw.client(cli.key) as http:
        state = (await http.get("/v1/video/query", params={"id": task_id})).json()
    assert state["status"] in ("pending", "processing")  # detached, not cancelled
