"""Running real `vidgate` processes for end-to-end tests: config files, keys, serve, worker, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from vidgate.testing.server import bind_loopback


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path,
    *,
    worker: dict[str, Any],
    channel: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    channels: list[dict[str, Any]] | None = None,
) -> Path:
    """A TOML config: `[worker]`, then one `[[channels]]` table per channel (its "options" key, if any,
    becomes the channel's `[channels.options]`)."""
    lines = ["[worker]"] + [f"{k} = {toml_value(v)}" for k, v in worker.items()]
    for spec in channels or [{**(channel or {}), "options": options or {}}]:
        fields = {k: v for k, v in spec.items() if k != "options"}
        lines += ["", "[[channels]]"] + [f"{k} = {toml_value(v)}" for k, v in fields.items()]
        lines += ["", "[channels.options]"] + [
            f"{k} = {toml_value(v)}" for k, v in spec.get("options", {}).items()
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Deployment:
    """One gateway deployment: a data dir, a database, a config file, and the processes it runs."""

    def __init__(self, root: Path, database_url: str, config: Path) -> None:
        self.root = root
        sock = bind_loopback()
        self.port = sock.getsockname()[1]
        sock.close()  # the serve process binds it; nothing else on loopback takes a port this quickly
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("VIDGATE_") or k.startswith("VIDGATE_TEST_")
            },
            "VIDGATE_CONFIG": str(config),
            "VIDGATE_DATA_DIR": str(root / "data"),
            "VIDGATE_DATABASE_URL": database_url,
            "VIDGATE_AUTO_MIGRATE": "true",
            "VIDGATE_SECRET_KEY": "e2e-secret",
            "VIDGATE_PORT": str(self.port),
            "VIDGATE_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vidgate", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def new_key(self, *options: str) -> str:
        """A new API key (`options`: more `vidgate keys create` options, e.g. `--balance 10`)."""
        return self.cli("keys", "create", "--name", "e2e", *options).stdout.strip().splitlines()[-1]

    def client(self, key: str, *, timeout: float = 10) -> httpx.Client:
        """An HTTP client for this deployment's API, authenticated with `key`."""
        return httpx.Client(
            base_url=self.base_url, headers={"authorization": f"Bearer {key}"}, timeout=timeout
        )

    def start(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        with open(self.root / f"{log_name}.log", "ab") as log:  # the child keeps its own copy of the fd
            proc = subprocess.Popen(
                [sys.executable, "-m", "vidgate", *args],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.processes.append(proc)
        return proc

    def serve(self, *extra: str) -> subprocess.Popen[bytes]:
        proc = self.start("serve", *extra, log_name="serve")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vidgate serve exited with {proc.returncode}; see {self.root / 'serve.log'}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet
        raise TimeoutError("vidgate serve did not answer /healthz within 60 s")

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_until(predicate: Any, *, timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def wait_for_task_end(api: httpx.Client, task_id: str, *, timeout: float, what: str) -> dict[str, Any]:
    """Poll the unified query until the task is completed or failed; return its last state."""

    def ended() -> dict[str, Any] | None:
        state: dict[str, Any] = api.get("/v1/video/query", params={"id": task_id}).json()
        return state if state["status"] in ("completed", "failed") else None

    return wait_until(ended, timeout=timeout, what=what)


class FakeUpstreamProcess:
    """The shipped fake upstream as its own `vidgate dev fake-upstream` process of a deployment."""

    def __init__(
        self, dep: Deployment, *, api_key: str, ready: float, hang: float, poll_after_ms: int
    ) -> None:
        self.api_key = api_key
        sock = bind_loopback()
        port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{port}"
        self.process = dep.start(
            "dev",
            "fake-upstream",
            "--port",
            str(port),
            "--api-key",
            api_key,
            "--ready",
            str(ready),
            "--hang",
            str(hang),
            "--poll-after-ms",
            str(poll_after_ms),
            log_name="fake",
        )
        wait_until(self._answers, timeout=30, what="the fake upstream to listen")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_fake/journal", params={"op": "none"}, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def journal(self, prompt: str | None = None, op: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("prompt", prompt), ("op", op)) if v is not None}
        entries: list[dict[str, Any]] = httpx.get(
            f"{self.url}/_fake/journal", params=params, timeout=30
        ).json()
        return entries

    def running_openai_jobs(self) -> set[str]:
        """The ids of its OpenAI-dialect jobs still queued or in progress (deleted jobs are not listed),
        read page by page from `GET /v1/videos` (a list injects no fault)."""
        running: set[str] = set()
        after: str | None = None
        with httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {self.api_key}"}, timeout=30
        ) as client:
            for _ in range(10_000):
                params = {"limit": "100", "order": "asc", **({"after": after} if after else {})}
                page = client.get("/v1/videos", params=params).raise_for_status().json()
                running |= {v["id"] for v in page["data"] if v["status"] in ("queued", "in_progress")}
                if not page["has_more"]:
                    break
                after = page["last_id"]
        return running
