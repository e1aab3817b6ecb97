"""An S3 server for tests: moto's, in a thread, bound to loopback only.

moto accepts any credentials and checks neither signatures nor presigned expiry; what it proves is
that our requests, ranges, multipart uploads, listings and deletes work against S3's wire protocol.
Credentials and expiry are proven by unit tests instead (tests/unit/test_s3_settings.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from moto.server import ThreadedMotoServer

# Dummy static credentials: with none, obstore's credential chain would ask the instance metadata
# service (169.254.169.254), which is not loopback.
ACCESS_KEY_ID = "AKIDVIDGATETEST"
SECRET_ACCESS_KEY = "vidgate-test-secret-not-a-real-one"
REGION = "us-east-1"


class MotoS3:
    """A moto server on 127.0.0.1 that can be stopped and started again on the same port (its
    buckets live in moto's in-process backend, so they outlive a restart)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # werkzeug logs every request line, presigned query strings included: keep it quiet.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def new_bucket(self) -> str:
        name = f"vidgate-{uuid.uuid4().hex[:12]}"
        # moto takes unsigned requests: a plain PUT makes the bucket. The first request loads moto's S3
        # backend (seconds of CPU on a busy host), more than httpx's default 5 s read timeout allows.
        response = httpx.put(f"{self.endpoint}/{name}", timeout=60)
        response.raise_for_status()
        return name

    def settings(self, bucket: str, prefix: str = "media", **s3: Any) -> dict[str, Any]:
        """Settings overrides that put a gateway's storage in `bucket` on this server."""
        return {
            "storage_url": f"s3://{bucket}/{prefix}",
            "s3": {
                "endpoint": self.endpoint,
                "region": REGION,
                "access_key_id": ACCESS_KEY_ID,
                "secret_access_key": SECRET_ACCESS_KEY,
                "allow_http": True,
                **s3,
            },
        }


@contextmanager
def no_aws_environment() -> Iterator[None]:
    """No AWS_* variable reaches obstore (or moto) during the tests; restored afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    for k in saved:
        del os.environ[k]
    try:
        yield
    finally:
        os.environ.update(saved)


@contextmanager
def running_moto() -> Iterator[MotoS3]:
    moto = MotoS3()
    with no_aws_environment():
        moto.start()
        try:
            yield moto
        finally:
            moto.stop()
