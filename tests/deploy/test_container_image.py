"""The container image, built here with podman from a Debian base made by debootstrap (the Dockerfile's
BASE build argument), in a podman store of its own under VIDGATE_DEPLOY_CACHE (see deploy_support.py).

Running a container is not possible in this sandbox (crun cannot set rlimits), so the image proves itself
inside its own build: the `test` target's RUN step serves on SQLite, makes a key, renders one video with
the animate engine and checks the MP4 (deploy/container/smoke_test.py). The runtime image's metadata
(user, entrypoint, command, volume, healthcheck) and its files (no compiler, no pip, /data owned by the
user; the commands answer, run with chroot as that user) are checked here.

Marked `deploy`: minutes (debootstrap about 70 s once, a build about 80 s on 2 cores); `make deploy-check`
runs them. Skipped, saying why, where podman or debootstrap is missing or not root.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_support import (
    ROOT,
    Podman,
    cache_dir,
    ensure_debian_base,
    image_size_mb,
    missing_image_tools,
)

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

RUNTIME = "localhost/vidgate:deploy-check"
TEST_IMAGE = "localhost/vidgate:deploy-check-test"
DIFFUSION_IMAGE = "localhost/vidgate:deploy-check-diffusion"
REPORT: dict[str, Any] = {}


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    reason = missing_image_tools()
    if reason:
        pytest.skip(reason)
    podman = Podman(cache_dir())
    yield podman
    podman.run("image", "prune", "--force")  # the build stages' layers; the tagged images stay
    (podman.logs / "report.json").write_text(json.dumps(REPORT, indent=2))


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> str:
    suite = os.environ.get("VIDGATE_DEPLOY_DEBIAN_SUITE", "bookworm")
    image, times = ensure_debian_base(podman, suite)
    REPORT.update(base_image=image, base_size_mb=round(image_size_mb(podman, image), 1), **times)
    return image


def build(podman: Podman, base: str, tag: str, *options: str, log: str) -> float:
    started = time.monotonic()
    podman.run(
        "build",
        "--isolation=chroot",
        "--format=docker",  # OCI images have no HEALTHCHECK
        f"--build-arg=BASE={base}",
        *options,
        "--tag",
        tag,
        str(ROOT),
        log=log,
    )
    return time.monotonic() - started


def test_image_builds_and_passes_its_smoke_test(podman: Podman, base_image: str) -> None:
    took = build(podman, base_image, TEST_IMAGE, "--target=test", log="build-test")
    log = (podman.logs / "build-test.log").read_text()
    smoke = [line for line in log.splitlines() if line.startswith("smoke [")]
    assert smoke and smoke[-1].endswith("PASSED"), log[-4000:]
    REPORT.update(build_test_target_s=round(took, 1), smoke_test=smoke)


def test_runtime_image_is_small_non_root_and_configured(
    podman: Podman, base_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    took = build(podman, base_image, RUNTIME, log="build-runtime")
    inspected = podman.inspect(RUNTIME)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["vidgate"] and config["Cmd"] == ["serve"]
    assert "/data" in config["Volumes"] and "8000/tcp" in config["ExposedPorts"]
    assert config["WorkingDir"] == "/data"
    healthcheck = config.get("Healthcheck") or inspected["Healthcheck"]  # podman keeps it beside Config
    assert "/healthz" in " ".join(healthcheck["Test"])
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["VIDGATE_HOST"] == "0.0.0.0" and env["VIDGATE_DATA_DIR"] == "/data"
    assert env["PATH"].startswith("/opt/vidgate/bin:")
    size, base_size = image_size_mb(podman, RUNTIME), image_size_mb(podman, base_image)
    REPORT.update(build_runtime_target_s=round(took, 1), runtime_size_mb=round(size, 1))
    REPORT["runtime_layers_over_base_mb"] = round(size - base_size, 1)
    # vidgate's virtualenv (PyAV with its FFmpeg, NumPy, SQLAlchemy, ...) is about 340 MB; a build tool
    # or cache left behind would show here.
    assert size - base_size < 420, REPORT

    mount = Path(podman.run("image", "mount", RUNTIME).stdout.strip())
    try:
        assert not list((mount / "opt/vidgate/bin").glob("pip*")), "pip left in the virtualenv"
        assert not any((mount / d / c).exists() for d in ("usr/bin", "usr/local/bin") for c in ("gcc", "cc"))
        data = (mount / "data").stat()
        assert (data.st_uid, data.st_gid, data.st_mode & 0o777) == (10001, 10001, 0o700)
        for args in (["--help"], ["serve", "--help"], ["worker", "--help"], ["db", "upgrade", "--help"]):
            done = subprocess.run(
                [
                    shutil.which("chroot") or "/usr/sbin/chroot",
                    "--userspec=10001:10001",
                    str(mount),
                    "/opt/vidgate/bin/vidgate",
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={"PATH": "/opt/vidgate/bin:/usr/bin:/bin", "HOME": "/data", "LANG": "C.UTF-8"},
            )
            assert done.returncode == 0, (args, done.stdout, done.stderr)
    finally:
        podman.run("image", "unmount", RUNTIME)
    with capsys.disabled():
        print(f"\nimage report (also in {podman.logs / 'report.json'}):\n{json.dumps(REPORT, indent=2)}")


def local_torch_wheel() -> Path | None:
    """A CPU build of the torch the `diffusion` extra pins, on this machine (pip's find-links folders,
    or VIDGATE_DEPLOY_TORCH_WHEELS), for the base's Python and this machine's architecture."""
    pin = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin, "pyproject.toml pins no torch"
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    folders = [
        os.environ.get("VIDGATE_DEPLOY_TORCH_WHEELS", ""),
        *os.environ.get("PIP_FIND_LINKS", "").split(),
    ]
    for folder in filter(None, folders):
        found = sorted(Path(folder).glob(f"torch-{pin.group(1)}+cpu-{tag}-{tag}-*_{platform.machine()}.whl"))
        if found:
            return found[-1]
    return None


@contextlib.contextmanager
def torch_index(wheel: Path, folder: Path) -> Iterator[str]:
    """A PEP 503 index on loopback with `wheel` and its dependencies (from PyPI): the diffusion target's
    TORCH_INDEX_URL, standing in for PyTorch's index, which this machine cannot reach."""
    files = folder / "files"
    shutil.rmtree(folder, ignore_errors=True)
    files.mkdir(parents=True)
    shutil.copyfile(wheel, files / wheel.name)
    with zipfile.ZipFile(wheel) as whl:
        metadata = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in whl.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(files),
            *requires,
        ],
        check=True,
        timeout=600,
    )
    for path in files.iterdir():
        project = re.sub(r"[-_.]+", "-", path.name.split("-")[0]).lower()
        page = folder / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with page.open("a") as html:
            html.write(f'<a href="../../files/{path.name}">{path.name}</a>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder, ignore_errors=True)  # torch alone is 200 MB


def test_diffusion_target_builds_with_torch_from_an_index(podman: Podman, base_image: str) -> None:
    """The GPU image's recipe with torch's CPU build standing in for the CUDA one (same pin, same steps:
    torch from TORCH_INDEX_URL, the extra from PyPI keeping it); running on a GPU is not tested here."""
    wheel = local_torch_wheel()
    if wheel is None:
        pytest.skip("no local CPU build of the pinned torch (PyTorch's index is out of reach here)")
    with torch_index(wheel, podman.cache / "torch-index") as index:
        took = build(
            podman,
            base_image,
            DIFFUSION_IMAGE,
            "--target=diffusion",
            f"--build-arg=TORCH_INDEX_URL={index}",
            log="build-diffusion",
        )
    log = (podman.logs / "build-diffusion.log").read_text()
    assert re.search(r"^torch \d+\.\d+\.\d+\+cpu$", log, re.M), log[-3000:]
    inspected = podman.inspect(DIFFUSION_IMAGE)
    assert inspected["Config"]["User"] == "10001:10001" and inspected["Config"]["Cmd"] == ["serve"]
    REPORT.update(build_diffusion_target_s=round(took, 1))
    REPORT["diffusion_size_mb_cpu_torch"] = round(image_size_mb(podman, DIFFUSION_IMAGE), 1)
    (podman.logs / "report.json").write_text(json.dumps(REPORT, indent=2))
    podman.run("rmi", DIFFUSION_IMAGE)  # 1.5 GB or so
