"""What the deployment tests share: the files under test, vidgate's real setting and command names to
check them against, and (for the `deploy`-marked image tests) podman with a Debian base made by
debootstrap, in a store of its own outside the checkout.

Environment (image tests only):
  VIDGATE_DEPLOY_CACHE           where the base rootfs, podman's store and the build logs live
                                 (default /tmp/vidgate-deploy-cache; never inside the checkout)
  VIDGATE_DEPLOY_DEBIAN_SUITE    the Debian release of the base (default bookworm: python3 3.11)
  VIDGATE_DEPLOY_DEBIAN_MIRROR   the mirror (default: the first Debian mirror in this machine's apt
                                 sources, else http://deb.debian.org/debian)
  VIDGATE_DEPLOY_STORAGE_DRIVER  podman's storage driver (default overlay; vfs where overlay fails)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer.main
import yaml
from pydantic import BaseModel

from vidgate.cli.root import app
from vidgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "compose.yaml"
COMPOSE_ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_CONFIG = ROOT / "deploy" / "compose" / "vidgate.toml"
K8S = ROOT / "deploy" / "kubernetes"
K8S_BASE = K8S / "base"
K8S_AUTOSCALING = K8S / "autoscaling"

# Read by the settings machinery itself (config.py: settings_customise_sources), not a field.
SETTINGS_SOURCE_VARIABLES = frozenset({"VIDGATE_CONFIG"})


# Settings and commands ---------------------------------------------------------------------------------


def setting_path(variable: str) -> list[str] | None:
    """The field path a VIDGATE_* variable sets (prefix VIDGATE_, nested with `__`), or None when
    Settings has no such field."""
    if not variable.startswith("VIDGATE_"):
        return None
    parts = variable.removeprefix("VIDGATE_").lower().split("__")
    model: type[BaseModel] | None = Settings
    for i, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        nested = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if i < len(parts) - 1:
            model = nested
    return parts


def unknown_settings(variables: Iterator[str] | list[str]) -> list[str]:
    return sorted(v for v in variables if v not in SETTINGS_SOURCE_VARIABLES and setting_path(v) is None)


class BadCommandLine(AssertionError):
    """A `vidgate ...` command line the CLI would refuse (no such command or option, a bad value)."""


def check_command(args: list[str]) -> None:
    """Parse `vidgate ARGS` with the real CLI, as the shell would hand them over; raises BadCommandLine
    where the CLI would refuse it. (typer may carry its own copy of click, so its classes are not
    `click`'s: groups are found by what they do, errors by their class's name.)"""
    command: Any = typer.main.get_command(app)
    rest = list(args)
    name = "vidgate"
    while hasattr(command, "list_commands"):
        if not rest:
            raise BadCommandLine(f"`vidgate {' '.join(args)}` names no command")
        sub = command.get_command(command.context_class(command), rest[0])
        if sub is None:
            raise BadCommandLine(f"`vidgate {' '.join(args)}`: no command {rest[0]!r}")
        name, command, rest = rest[0], sub, rest[1:]
    try:
        command.make_context(name, rest)
    except Exception as exc:
        if not any(cls.__name__ == "UsageError" for cls in type(exc).__mro__):
            raise
        raise BadCommandLine(f"`vidgate {' '.join(args)}`: {exc}") from exc


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose's .env and kustomize's envs: no quotes, no expansion); # comments."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def settings_from(env: Mapping[str, str], config: Path) -> Settings:
    """Settings as a process would build them with exactly `env` (VIDGATE_CONFIG pointed at `config`)."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("VIDGATE_")]:
            del os.environ[key]
        os.environ.update(env)
        os.environ["VIDGATE_CONFIG"] = str(config)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def toml_setting(path: Path, *keys: str) -> Any:
    value: Any = tomllib.loads(path.read_text())
    for key in keys:
        value = value[key]
    return value


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_manifests() -> list[Path]:
    """The Kubernetes resources as files (not kustomizations, not the adapter's Helm values)."""
    skip = {"kustomization.yaml", "prometheus-adapter-values.yaml"}
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in skip)


def seconds(duration: str) -> float:
    """A compose duration (`45s`, `1m30s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# podman with a debootstrapped Debian base ---------------------------------------------------------------


def cache_dir() -> Path:
    path = Path(os.environ.get("VIDGATE_DEPLOY_CACHE", "/tmp/vidgate-deploy-cache")).resolve()
    assert not path.is_relative_to(ROOT) or path.is_relative_to(ROOT / ".deploy-cache"), (
        f"VIDGATE_DEPLOY_CACHE={path} is inside the checkout: use /tmp or .deploy-cache/ (git-ignored)"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_image_tools() -> str | None:
    """Why the image tests cannot run here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "building the Debian base with debootstrap and podman's chroot isolation need root"
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install -y podman debootstrap)"
    return None


def debian_mirror() -> str:
    if mirror := os.environ.get("VIDGATE_DEPLOY_DEBIAN_MIRROR"):
        return mirror
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for match in re.finditer(
            r"(?:^URIs:|^deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", path.read_text(), re.M
        ):
            return match.group(1)
    return "http://deb.debian.org/debian"


class Podman:
    """podman with its own store under the cache dir: what the tests build stays out of the machine's
    store, and removing the cache dir removes all of it."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.logs = cache / "logs"
        self.logs.mkdir(exist_ok=True)
        self.base_args = [
            "podman",
            "--root",
            str(cache / "storage"),
            "--runroot",
            str(cache / "runroot"),
            "--storage-driver",
            os.environ.get("VIDGATE_DEPLOY_STORAGE_DRIVER", "overlay"),
        ]

    def run(
        self, *args: str, log: str | None = None, timeout: float = 1800, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        """Run podman; with `log`, its output goes to logs/LOG.log and a failure quotes its tail."""
        started = time.monotonic()
        done = subprocess.run(
            [*self.base_args, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=stdin,
            check=False,
        )
        if log is not None:
            (self.logs / f"{log}.log").write_text(
                f"$ podman {' '.join(args)}\n({time.monotonic() - started:.1f} s, exit {done.returncode})\n"
                f"{done.stdout}\n{done.stderr}"
            )
        assert done.returncode == 0, (
            f"podman {' '.join(args[:3])}... exited {done.returncode}"
            f"{f' (log: {self.logs / log}.log)' if log else ''}:\n{(done.stdout + done.stderr)[-6000:]}"
        )
        return done

    def exists(self, image: str) -> bool:
        done = subprocess.run(
            [*self.base_args, "image", "exists", image], capture_output=True, check=False, timeout=120
        )
        return done.returncode == 0

    def inspect(self, image: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.run("image", "inspect", image).stdout)
        return data[0]


def ensure_debian_base(podman: Podman, suite: str) -> tuple[str, dict[str, float]]:
    """A local image of Debian `suite` with python3 and its venv module (debootstrap, minbase), made
    once and kept in the cache. The host's CA bundle goes in too, and pip is told to use it, so that
    the build works behind a TLS-intercepting proxy as it does on this host."""
    image = f"localhost/vidgate-test-base:{suite}"
    times: dict[str, float] = {}
    if podman.exists(image):
        return image, times
    rootfs_tar = podman.cache / f"debian-{suite}-rootfs.tar"
    if not rootfs_tar.exists():
        rootfs = podman.cache / f"debian-{suite}-rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        started = time.monotonic()
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                suite,
                str(rootfs),
                debian_mirror(),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        (podman.logs / "debootstrap.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"debootstrap failed:\n{(done.stdout + done.stderr)[-4000:]}"
        times["debootstrap_s"] = time.monotonic() - started
        junk_dirs = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
        for junk in (*junk_dirs, "usr/share/info", "usr/share/locale"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.name != "lock":
                    entry.unlink()
        host_cas = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_cas.is_file():
            shutil.copyfile(host_cas, rootfs / "etc/ssl/certs/ca-certificates.crt")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(rootfs_tar), "."], check=True, timeout=600)
        shutil.rmtree(rootfs)
    started = time.monotonic()
    with rootfs_tar.open("rb") as tar:
        podman.run(
            "import",
            "--change",
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            "--change",
            'CMD ["/bin/bash"]',
            "-",
            image,
            stdin=tar,
            log="import-base",
        )
    times["import_s"] = time.monotonic() - started
    return image, times


def image_size_mb(podman: Podman, image: str) -> float:
    return float(podman.inspect(image)["Size"]) / 1e6
