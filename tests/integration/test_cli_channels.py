"""`vidgate channels` and `vidgate channels test` against a real (fake) upstream process, and a typo in
a channel's options refused at start with the key named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vidgate.testing.server import bind_loopback

FAKE_KEY = "sk-cli-fake"


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[str]:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidgate", "dev", "fake-upstream", "--port", str(port), "--api-key", FAKE_KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_fake/journal", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the fake upstream did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidgate", *args], env=env, capture_output=True, text=True, timeout=120
    )


def environment(tmp_path: Path, channels: list[dict]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {**base, "VIDGATE_DATA_DIR": str(tmp_path), "VIDGATE_CHANNELS": json.dumps(channels)}


def channel(name: str, kind: str, url: str, key: str = FAKE_KEY) -> dict:
    return {"name": name, "kind": kind, "base_url": f"{url}/v1", "api_key": key, "models": ["sora-2"]}


def test_channels_test_checks_reachability_and_credentials_without_making_a_job(
    tmp_path: Path, fake_upstream: str
) -> None:
    channels = [
        channel("good-openai", "openai", fake_upstream),
        channel("good-relay", "unified", fake_upstream),
        channel("wrong-key", "openai", fake_upstream, key="sk-wrong-0123456789"),
        channel("nobody-home", "unified", "http://127.0.0.1:9"),
    ]
    env = environment(tmp_path, channels)
    result = run(["channels", "test"], env)
    verdicts = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert result.returncode == 1  # one channel failing is a failure of the command
    assert verdicts["ok    good-openai"].startswith("reachable and the credentials are accepted")
    assert verdicts["ok    good-relay"].startswith("reachable and the credentials are accepted")
    assert "credentials were refused" in verdicts["FAIL  wrong-key"]
    assert verdicts["FAIL  nobody-home"].startswith("unreachable")
    assert "sk-wrong-0123456789" not in result.stdout + result.stderr
    journal = httpx.get(f"{fake_upstream}/_fake/journal").json()
    assert not [e for e in journal if e["op"] in ("create", "remix")]  # no (paid) job was made

    one = run(["channels", "test", "good-relay"], env)
    assert one.returncode == 0 and one.stdout.startswith("ok    good-relay")
    assert run(["channels", "test", "nope"], env).returncode == 2


def test_channels_lists_models_capabilities_and_circuits(tmp_path: Path, fake_upstream: str) -> None:
    relay = {**channel("relay", "unified", fake_upstream), "model_map": {"sora-2-pro": "sora-2-pro-1"},
             "max_concurrent": 3, "weight": 2}  # fmt: skip
    result = run(["channels"], environment(tmp_path, [relay]))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert fields["models"] == "sora-2, sora-2-pro->sora-2-pro-1"
    assert fields["watermark"] == "optional" and fields["load"] == "0/3" and fields["circuit"] == "closed"
    assert FAKE_KEY not in result.stdout


def test_a_typo_in_a_channels_options_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    typo = {**channel("up", "openai", "http://127.0.0.1:9"), "options": {"remixx": True}}
    result = run(["worker"], environment(tmp_path, [typo]))
    assert result.returncode == 2
    assert "options.remixx" in result.stderr and "Traceback" not in result.stderr
