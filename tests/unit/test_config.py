"""Settings: environment over TOML over defaults, validation, and the kept secret key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vidgate.config import BillingSettings, S3Settings, Settings, WorkerSettings


def test_defaults_are_the_embedded_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'vidgate.db'}"
    assert (s.host, s.port, s.base_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert s.should_auto_migrate and s.embedded_worker
    assert [c.kind for c in s.channels] == ["animate"]
    assert s.worker.task_deadline_seconds == 3600
    assert s.max_body_bytes == 1024 * 1024


def test_environment_and_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_PORT", "9001")
    monkeypatch.setenv("VIDGATE_WORKER__CONCURRENCY", "9")
    monkeypatch.setenv("VIDGATE_PUBLIC_BASE_URL", "https://videos.example.com/")
    monkeypatch.setenv("VIDGATE_DATABASE_URL", "postgresql+psycopg://u:p@db/v")
    s = Settings()
    assert s.port == 9001 and s.worker.concurrency == 9
    assert s.base_url == "https://videos.example.com"
    assert not s.should_auto_migrate  # only the embedded SQLite database migrates by itself


def test_toml_file_with_channels_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text(
        'port = 7000\nhost = "0.0.0.0"\n[worker]\nlease_seconds = 12\n'
        '[[channels]]\nname = "relay"\nkind = "scripted"\nmodels = ["sora-2"]\nwatermark_free = "optional"\n'
    )
    monkeypatch.setenv("VIDGATE_CONFIG", str(config))
    monkeypatch.setenv("VIDGATE_PORT", "7001")
    s = Settings()
    assert (s.host, s.port, s.worker.lease_seconds) == ("0.0.0.0", 7001, 12)
    assert [(c.name, c.watermark_free) for c in s.channels] == [("relay", "optional")]


def test_bad_settings_are_refused_with_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Settings()
    monkeypatch.delenv("VIDGATE_PORT")
    monkeypatch.setenv("VIDGATE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="not a file"):
        Settings()


def test_duplicate_channel_names_and_unknown_sizes_are_refused() -> None:
    ch = {"name": "a", "kind": "animate", "models": ["m"]}
    with pytest.raises(ValidationError, match="unique"):
        Settings(channels=[ch, ch])
    with pytest.raises(ValidationError, match="unknown sizes"):
        Settings(channels=[{**ch, "sizes": ["1x1"]}])


def test_secret_key_is_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    key = s.signing_key()
    assert len(key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings(data_dir=tmp_path).signing_key() == key
    assert Settings(data_dir=tmp_path, secret_key="explicit").signing_key() == b"explicit"
    assert "explicit" not in repr(Settings(data_dir=tmp_path, secret_key="explicit"))


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    names = [
        f"VIDGATE_{name.upper()}" for name in Settings.model_fields if name not in ("worker", "s3", "billing")
    ]
    names += [f"VIDGATE_BILLING__{name.upper()}" for name in BillingSettings.model_fields]
    names += [f"VIDGATE_WORKER__{name.upper()}" for name in WorkerSettings.model_fields]
    names += [f"VIDGATE_S3__{name.upper()}" for name in S3Settings.model_fields]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"
