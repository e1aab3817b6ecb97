"""The image's smoke test, run by the Dockerfile's `test` target inside the build (`RUN`), as the image's
own non-root user, with nothing but the image: the standard library, and PyAV from vidgate's own
dependencies to read the video back.

1. The image is what it claims: not root, no compiler, no pip in vidgate's virtualenv.
2. `vidgate db upgrade` and `vidgate db current` on a fresh SQLite database; `vidgate keys create`.
3. `vidgate serve` (embedded worker, the built-in animate engine) on loopback; /healthz, /readyz.
4. One task through the OpenAI dialect (4 s at 1280x720), polled to the end; the unified query says the
   animate engine rendered it; the MP4 is downloaded and probed: H.264 at 1280x720 with AAC sound, about 4 s.
5. SIGTERM: serve stops cleanly (exit 0, or by the SIGTERM it re-raises after its shutdown: 143).

Prints one line per stage with the time it took; exits non-zero (failing the build) on any failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

RENDER_TIMEOUT_S = float(os.environ.get("SMOKE_RENDER_TIMEOUT_S", "600"))
T0 = time.monotonic()


def say(message: str) -> None:
    print(f"smoke [{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def fail(message: str) -> None:
    say(f"FAILED: {message}")
    sys.exit(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vidgate(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(["vidgate", *args], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        fail(f"vidgate {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def http(
    method: str, url: str, *, key: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_image() -> None:
    if os.getuid() == 0:
        fail("the image runs as root")
    compilers = [c for c in ("gcc", "cc", "c++", "clang") if shutil.which(c)]
    if compilers:
        fail(f"compilers in the final image: {compilers}")
    leftovers = [name for name in ("pip", "pip3") if (Path(sys.prefix) / "bin" / name).exists()]
    if leftovers:
        fail(f"build tools left in the virtualenv: {leftovers}")
    data_dir = Path(os.environ.get("VIDGATE_DATA_DIR", "/data"))
    if not os.access(data_dir, os.W_OK):
        fail(f"{data_dir} (VIDGATE_DATA_DIR) is not writable by uid {os.getuid()}")
    python = f"python {sys.version.split()[0]} in {sys.prefix}"
    say(f"image: uid {os.getuid()}, no compiler, no pip; {data_dir} writable; {python}")


def main() -> None:
    if os.environ.get("SMOKE_SKIP_IMAGE_CHECKS") != "1":  # 1: the rest, from a checkout's virtualenv
        check_image()
    work = Path(tempfile.mkdtemp(prefix="vidgate-smoke-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VIDGATE_DATA_DIR": str(work / "data"),
        "VIDGATE_HOST": "127.0.0.1",
        "VIDGATE_PORT": str(port),
        "VIDGATE_WORKER__IDLE_POLL_SECONDS": "0.2",
    }

    vidgate("db", "upgrade", env=env)
    say("db upgrade: done")
    say("db current: " + " ".join(vidgate("db", "current", env=env).split()))
    key = vidgate("keys", "create", "--name", "smoke", env=env).strip().splitlines()[-1]
    say(f"key created ({key[:6]}...)")
    vidgate("worker", "--help", env=env)

    log = (work / "serve.log").open("wb")
    serve = subprocess.Popen(["vidgate", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if serve.poll() is not None:
                fail(f"vidgate serve exited {serve.returncode}:\n{(work / 'serve.log').read_text()}")
            try:
                if http("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail("vidgate serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        status, body = http("GET", f"{base}/readyz")
        if status != 200:
            fail(f"/readyz answered {status}: {body!r}")
        say("serve: /healthz and /readyz answer 200")

        status, body = http(
            "POST",
            f"{base}/v1/videos",
            key=key,
            body={"prompt": "a paper boat on a pond", "seconds": "4", "size": "1280x720"},
        )
        if status != 200:
            fail(f"POST /v1/videos answered {status}: {body!r}")
        video_id = json.loads(body)["id"]
        say(f"task {video_id} created")
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        while True:
            status, body = http("GET", f"{base}/v1/videos/{video_id}", key=key)
            video = json.loads(body)
            if video.get("status") in ("completed", "failed"):
                break
            if time.monotonic() > deadline:
                fail(f"the task did not end within {RENDER_TIMEOUT_S:.0f} s: {video}")
            time.sleep(0.5)
        if video["status"] != "completed":
            fail(f"the task failed: {video}")
        status, body = http("GET", f"{base}/v1/video/query?id={video_id}", key=key)
        unified = json.loads(body)
        engine = (unified.get("detail") or {}).get("engine")
        if engine != "animate":
            fail(f"detail.engine is {engine!r}, expected 'animate': {unified}")
        say("task completed by the animate engine")

        status, mp4 = http("GET", f"{base}/v1/videos/{video_id}/content", key=key)
        if status != 200 or mp4[4:8] != b"ftyp":
            fail(f"content answered {status}, {len(mp4)} bytes starting {mp4[:12]!r}")
        check_mp4(work / "video.mp4", mp4)
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=90)
        except subprocess.TimeoutExpired:
            serve.kill()
            fail("vidgate serve did not stop within 90 s of SIGTERM")
        log.close()
    # uvicorn ends by re-raising the signal it stopped for, after its clean shutdown: status 143.
    if code not in (0, -signal.SIGTERM):
        fail(f"vidgate serve exited {code} after SIGTERM:\n{(work / 'serve.log').read_text()[-3000:]}")
    say("serve stopped cleanly on SIGTERM")
    shutil.rmtree(work, ignore_errors=True)
    say("PASSED")


def check_mp4(path: Path, data: bytes) -> None:
    import av

    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio
        seconds = float(container.duration or 0) / 1_000_000
        codec = video.codec_context.name
        size = (video.codec_context.width, video.codec_context.height)
        frames = sum(1 for _ in container.decode(video=0))
    if codec != "h264" or size != (1280, 720):
        fail(f"the video is {codec} {size}, expected h264 (1280, 720)")
    if not audio or audio[0].codec_context.name != "aac":
        fail("the video has no AAC sound track")
    if not 3.5 <= seconds <= 4.5 or frames < 24 * 3:
        fail(f"the video lasts {seconds:.2f} s with {frames} frames, expected about 4 s")
    say(f"MP4: {len(data)} bytes, h264 {size[0]}x{size[1]}, {frames} frames, {seconds:.2f} s, aac sound")


if __name__ == "__main__":
    main()
