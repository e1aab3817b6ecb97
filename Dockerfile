# vidgate's container image (docs/deploy.md). Targets:
#
#   runtime    the default: `vidgate serve`; also `vidgate worker`, `vidgate db upgrade` (any vidgate command)
#   test       runtime + a smoke test run inside the build: serve on SQLite, a key, one animate render
#   diffusion  runtime + torch (CUDA build) and the `diffusion` extra, for GPU workers (several GB)
#
#   docker build -t vidgate .                                  # or: podman build --format docker -t vidgate .
#   docker build --target test .                               # builds, then smoke-tests the image
#   docker build --target diffusion -t vidgate:diffusion .     # GPU image; TORCH_INDEX_URL picks the CUDA build
#
# Build arguments:
#   BASE             the base image of every stage: a Debian-family image with python3 >= 3.11 and its
#                    venv module (default: the official slim Python image). tests/deploy builds with a
#                    Debian made by debootstrap instead, passed here.
#   EXTRAS           vidgate's extras for the image, comma-separated: "fast" (OpenCV, faster animate),
#                    "cjk" (a CJK font for the prompt card, 27 MB); default none
#   TORCH_INDEX_URL  (diffusion) PyTorch's index for the torch build: cu128 by default; match it to the
#                    host's NVIDIA driver (docs/deploy.md, "GPU image")
#
# Configuration is only VIDGATE_* variables and the TOML file VIDGATE_CONFIG names (mount it); the image
# sets VIDGATE_HOST=0.0.0.0 (reachable from outside the container), VIDGATE_PORT=8000 and
# VIDGATE_DATA_DIR=/data (the one volume: the SQLite database, local media, scratch space, the generated
# secret key). It runs as uid/gid 10001 (user `vidgate`).

ARG BASE=docker.io/library/python:3.11-slim

# -- build: a virtualenv with vidgate and its dependencies, from the build context -----------------------
FROM ${BASE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/vidgate
# Only what the package build needs (.dockerignore keeps the rest of the checkout out).
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
# The wheel of this checkout, then it and its dependencies (each a binary wheel on PyPI for x86_64 and
# aarch64: no compiler is needed, and none would reach the final stage anyway). Then setuptools (which
# nothing needs at run time: `pip check` says so) and pip leave the virtualenv.
RUN /opt/vidgate/bin/pip wheel --no-deps --wheel-dir /tmp/wheels /src \
 && wheel=$(ls /tmp/wheels/vidgate-*.whl) \
 && /opt/vidgate/bin/pip install "${wheel}${EXTRAS:+[$EXTRAS]}" \
 && /opt/vidgate/bin/pip uninstall --yes --quiet setuptools \
 && /opt/vidgate/bin/pip check \
 && /opt/vidgate/bin/pip uninstall --yes --quiet pip \
 && /opt/vidgate/bin/python -c 'import vidgate.cli.root, vidgate.api.app, vidgate.worker.service'

# -- image-base: the user, the volume and the defaults of both images (runtime, diffusion) ------------------
FROM ${BASE} AS image-base
# The user, and /data owned by it (mode 0700: vidgate keeps the secret key and the database there).
RUN groupadd --system --gid 10001 vidgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin vidgate \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0700 /data
ENV PATH=/opt/vidgate/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIDGATE_HOST=0.0.0.0 \
    VIDGATE_PORT=8000 \
    VIDGATE_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# Liveness of `vidgate serve` (a worker container has no HTTP port: compose and Kubernetes set their own
# checks for it). Python, as the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VIDGATE_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["vidgate"]
CMD ["serve"]

# -- runtime: the image operators run --------------------------------------------------------------------
FROM image-base AS runtime
COPY --from=build /opt/vidgate /opt/vidgate

# -- test: `docker build --target test .` fails unless the image serves and renders one video ------------
FROM runtime AS test
COPY deploy/container/smoke_test.py /opt/vidgate-smoke/smoke_test.py
RUN python3 /opt/vidgate-smoke/smoke_test.py

# -- diffusion: the GPU image (torch + diffusers) ---------------------------------------------------------
# No CUDA base image is needed: PyTorch's CUDA wheels bring the CUDA runtime, cuDNN and NCCL as pip
# packages; the host needs only the NVIDIA driver and the container toolkit (docker run --gpus all).
FROM build AS diffusion-build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# torch first, from PyTorch's index, at the exact version the extra pins (pyproject.toml; PyPI's own torch
# for Linux is a CUDA build that may not match the driver); then the extra from PyPI, which keeps that
# torch. pip comes back for this and leaves again (setuptools stays: torch requires it).
RUN /opt/vidgate/bin/python -m ensurepip --default-pip > /dev/null \
 && torch=$(grep -o '"torch==[^"]*"' /src/pyproject.toml | tr -d '"') \
 && /opt/vidgate/bin/pip install --index-url "$TORCH_INDEX_URL" "$torch" \
 && /opt/vidgate/bin/pip install "$(ls /tmp/wheels/vidgate-*.whl)[diffusion]" "$torch" \
 && /opt/vidgate/bin/pip check \
 && /opt/vidgate/bin/pip uninstall --yes --quiet pip \
 && /opt/vidgate/bin/python -c 'import torch, diffusers, vidgate.providers.diffusion; print("torch", torch.__version__)'

FROM image-base AS diffusion
COPY --from=diffusion-build /opt/vidgate /opt/vidgate

# The default target: `docker build .` without --target builds the runtime image.
FROM runtime
