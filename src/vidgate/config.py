"""Settings: environment variables (prefix `VIDGATE_`, nested with `__`) over an optional TOML file.

Built once per entry point (`vidgate serve`, `vidgate worker`, tests) and passed down; there is no
module-level instance, so tests can run many differently configured gateways in one process.
Precedence, highest first: init arguments, environment, the TOML file named by `VIDGATE_CONFIG`,
the defaults below. Every field is documented in the README's settings table; keep them in step.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vidgate.channel_config import ALL_DURATIONS, DEFAULT_MODELS, ChannelSettings, default_channels
from vidgate.domain.capabilities import ALL_SIZES
from vidgate.private_files import make_private_dirs

__all__ = [
    "ALL_DURATIONS",
    "ALL_SIZES",
    "DEFAULT_MODELS",
    "ChannelSettings",
    "S3Settings",
    "Settings",
    "WorkerSettings",
]


class WorkerSettings(BaseModel):
    concurrency: int = Field(default=16, ge=1, le=2048, description="Steps run at once per worker process.")
    media_concurrency: int = Field(
        default=4, ge=1, le=256, description="Of those, steps that process media (ingest, fetch) at once."
    )
    media_processes: int | None = Field(
        default=None,
        ge=0,
        le=256,
        description="Processes that probe results and make their previews, so that media CPU never holds up "
        "polls and submits (0: threads of the worker process; unset: one per usable core, at most "
        "media_concurrency).",
    )
    lease_seconds: float = Field(default=60.0, gt=0, description="How long a claim lasts without heartbeat.")
    idle_poll_seconds: float = Field(default=1.0, gt=0, description="Claim-loop sleep when nothing is due.")
    wakeups: bool = Field(
        default=True,
        description="On PostgreSQL, creates, cancels and deletes NOTIFY the workers and each worker process "
        "keeps one LISTEN connection, so a new task is claimed at once, not at the next idle tick; false: "
        "neither (the idle tick finds everything). In one process a create always wakes its worker.",
    )
    task_deadline_seconds: float = Field(
        default=3600.0, gt=0, description="A task fails with `timeout` after."
    )
    max_attempts: int = Field(default=10, ge=0, description="Retries of transient failures per task.")
    resubmit_failed_jobs: int = Field(
        default=0,
        ge=0,
        le=10,
        description="New paid upstream jobs for a task whose job failed upstream with a transient code "
        "(internal_error, server_error, ...); 0: the task fails with the upstream's code.",
    )
    max_paid_creates: int = Field(
        default=3,
        ge=1,
        le=100,
        description="The most upstream creates per task that may have made a (paid) job, counted in the "
        "database across every worker: the first submission plus the deliberate resubmissions (a marked "
        "result under watermark: false, a failed job with resubmit_failed_jobs). Reaching it fails the task "
        "with its last error rather than pay again.",
    )
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    default_poll_seconds: float = Field(
        default=5.0, gt=0, description="Upstream poll pace when it says none."
    )
    shutdown_grace_seconds: float = Field(default=30.0, ge=0, description="SIGTERM: wait for running steps.")
    render_processes: int = Field(default=1, ge=1, le=64, description="Process pool for built-in engines.")
    circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive upstream failures that open a channel's circuit."
    )
    circuit_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open circuit refuses new jobs before one probe."
    )
    busy_retry_seconds: float = Field(
        default=2.0, gt=0, description="Re-check pace of a task whose channels are all full or down."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`vidgate worker` serves GET /metrics on this port (on VIDGATE_HOST); unset: none.",
    )


class BillingSettings(BaseModel):
    """Which ended tasks are charged (docs/accounts.md). Completed: charged; cancelled: refunded; failed:
    refunded, except the error codes listed here."""

    model_config = ConfigDict(extra="forbid")

    refund_moderation: bool = Field(
        default=True,
        description="Refund tasks a channel refused for its content policy (`content_policy`). Set false "
        "when your upstream bills refused prompts and you pass that on.",
    )
    charged_failures: list[str] = Field(
        default_factory=list,
        description="More failure codes that are charged rather than refunded "
        "(e.g. `watermark_removal_failed`).",
    )


class S3Settings(BaseModel):
    """How to reach the bucket named by `storage_url` (docs/storage.md). Unset credentials fall back to
    the `AWS_*` environment variables, then to the instance's or container's role."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # errors never echo the secret

    endpoint: str | None = Field(
        default=None, description="S3-compatible endpoint URL (MinIO, R2, ...); unset: AWS for the region."
    )
    region: str | None = Field(default=None, description="Region used to sign requests; unset: AWS_REGION.")
    access_key_id: str | None = Field(default=None, description="Static credentials: the key id.")
    secret_access_key: SecretStr | None = Field(
        default=None, repr=False, description="Static credentials: the secret (never shown or logged)."
    )
    session_token: SecretStr | None = Field(
        default=None, repr=False, description="Static credentials: a session token, for temporary ones."
    )
    allow_http: bool = Field(default=False, description="Allow a plain-http endpoint (a local MinIO).")
    virtual_hosted_style: bool = Field(
        default=False, description="Address the bucket as `bucket.endpoint` rather than `endpoint/bucket`."
    )
    presign_seconds: int = Field(
        default=600,
        ge=1,
        le=7 * 24 * 3600,
        description="Longest life of a presigned URL that a signed link redirects to "
        "(`media_delivery=redirect`); never past the signed link's own expiry.",
    )

    @model_validator(mode="after")
    def _key_pair(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("s3.access_key_id and s3.secret_access_key must be set together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("s3.session_token needs s3.access_key_id and s3.secret_access_key")
        return self


class Settings(BaseSettings):
    """Every setting of the gateway. See the README for the table of environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="VIDGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # an error about the channels must not print their api_keys
    )

    data_dir: Path = Path("./data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's line and headers must arrive within this of the connection opening or "
        "of the previous answer; else the connection is closed (idle and slowloris connections).",
    )
    http_body_idle_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="While a request's body is read, the longest wait for its next bytes; a client that "
        "stalls longer is answered 408 `body_timeout` and its connection closed.",
    )
    http_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A request's whole body must arrive within this of the server starting to read it "
        "(however steadily it trickles); else 408 `body_timeout`. 60 s carries the largest upload "
        "(20 MiB) at 2.8 Mbit/s: raise it for clients on slower uplinks.",
    )
    http_keep_alive_seconds: int = Field(
        default=5, ge=1, description="An idle connection is closed this long after its last answer."
    )
    http_max_connections: int = Field(
        default=512,
        ge=1,
        description="Connections served at once; a request on one beyond that is answered 503. Keep it "
        "below the process's file-descriptor limit (`ulimit -n`).",
    )
    http_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes `vidgate serve` runs on its one port (`--workers`); above 1, the "
        "embedded worker runs in the first of them only (docs/scaling.md).",
    )
    public_base_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    auto_migrate: bool | None = None
    embedded_worker: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_prompt_chars: int = Field(default=4000, ge=1)
    signed_url_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    media_retention_days: float | None = Field(default=None, gt=0)
    fetch_allow_private: bool = False
    fetch_max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    fetch_timeout_seconds: float = Field(default=30.0, gt=0)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_video_bytes: int = Field(default=2 * 1024**3, ge=1024)
    redis_url: str | None = Field(
        default=None,
        repr=False,  # it may carry a password
        description="Shared rate-limit counters (`redis://`, `rediss://` or `unix://`); unset: in memory, "
        "per process.",
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Per-key requests per minute on /v1/* by default; unset: unlimited."
    )
    creates_per_minute: int | None = Field(
        default=None, ge=1, description="Per-key creates and remixes per minute by default; unset: unlimited."
    )
    max_active_tasks: int | None = Field(
        default=None, ge=1, description="Per-key tasks pending or processing at once by default; unset: any."
    )
    db_read_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL: connections each API or worker process keeps for the hot reads (task "
        "polls, key lookups); a fixed pool, so a burst waits in line instead of opening connections.",
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a process remembers an authenticated API key: a key revoked in another "
        "process keeps working for at most this long there. 0 reads the key on every request.",
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_dir: Path | None = Field(
        default=None,
        description="A directory shared by every vidgate process on this host: Prometheus multiprocess "
        "mode (exported as PROMETHEUS_MULTIPROC_DIR), so /metrics in any process shows them all.",
    )
    metrics_token: str | None = Field(
        default=None, repr=False, description="When set, GET /metrics needs `Authorization: Bearer <it>`."
    )
    storage_url: str | None = Field(
        default=None,
        description="Where videos and inputs live: `s3://bucket/prefix` (see `s3`); unset: DATA_DIR/media.",
    )
    s3: S3Settings = Field(default_factory=S3Settings)
    media_delivery: Literal["stream", "redirect"] = Field(
        default="stream",
        description="How a signed /files link answers on S3 storage: stream the bytes through the gateway, "
        "or 302 to a presigned URL of the bucket. Local storage always streams.",
    )
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    channels: list[ChannelSettings] = Field(default_factory=default_channels)
    # signing_key() reads a file at most once per Settings: it runs for every signed link.
    _signing_key: bytes | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("VIDGATE_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"VIDGATE_CONFIG names {path}, which is not a file")
            with path.open("rb") as fh:
                tomllib.load(fh)  # fail early with the parser's line/column on a broken file
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            bucket = value.removeprefix("s3://").split("/", 1)[0]
            if not value.startswith("s3://") or not bucket:
                raise ValueError("storage_url must be s3://bucket or s3://bucket/prefix (unset: local files)")
        return value

    @model_validator(mode="after")
    def _channel_names_unique(self) -> Settings:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {dupes}")
        return self

    # Derived values -----------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'vidgate.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """Upgrade the schema at start: on by default for the embedded SQLite database only."""
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def signing_key(self) -> bytes:
        """The HMAC key for signed media URLs: the setting, or one kept in the data dir.

        Generated on first use with mode 0600 so that signed links survive restarts without the
        operator having to invent a secret; several processes sharing a data dir share it.
        """
        if self._signing_key is None:
            self._signing_key = self._load_signing_key()
        return self._signing_key

    def _load_signing_key(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            make_private_dirs(self.data_dir)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            try:
                # link() fails if another process won the race; theirs is kept and ours dropped.
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()
