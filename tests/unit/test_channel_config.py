"""Channel settings: the shapes operators write, per-kind checks at start, and secrets kept secret."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from vidgate.config import Settings
from vidgate.providers.registry import ChannelConfigError, catalog_from_settings, check_channels

DOCUMENTED_CHANNELS_JSON = '[{"name":"up","kind":"openai","base_url":"http://127.0.0.1:9000/v1","api_key":"sk-x","models":["sora-2"]}]'


def test_the_documented_vidgate_channels_json_works_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_CHANNELS", DOCUMENTED_CHANNELS_JSON)
    settings = Settings()
    check_channels(settings)
    [channel] = settings.channels
    assert channel.base_url == "http://127.0.0.1:9000/v1" and channel.api_key.get_secret_value() == "sk-x"
    [profile] = catalog_from_settings(settings).channels
    assert profile.kind == "openai" and profile.models == {"sora-2"}
    assert profile.max_images == 1  # the OpenAI dialect takes one input_reference
    assert profile.traits.can_cancel and profile.traits.can_find_jobs


def test_toml_channels_with_a_model_map_and_orientations(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text(
        '[[channels]]\nname = "relay"\nkind = "unified"\nbase_url = "https://relay.example.com/v1"\n'
        'api_key = "env:RELAY_KEY"\nmodel_map = { "sora-2" = "sora-2-2025-10-06" }\n'
        'orientations = ["landscape"]\nweight = 3\nmax_concurrent = 20\n'
        "[channels.options]\nclean_when_forced = true\n"
    )
    monkeypatch.setenv("VIDGATE_CONFIG", str(config))
    monkeypatch.setenv("RELAY_KEY", "sk-from-the-environment")
    settings = Settings()
    check_channels(settings)
    [channel] = settings.channels
    assert channel.api_key.get_secret_value() == "sk-from-the-environment"
    assert channel.upstream_model("sora-2") == "sora-2-2025-10-06"
    [profile] = catalog_from_settings(settings).channels
    assert profile.models == {"sora-2"} and profile.weight == 3 and profile.max_concurrent == 20
    assert profile.sizes == {"1280x720", "1792x1024", "1920x1080"}  # landscape only
    assert profile.watermark_free == "optional"  # a relay's default: it may only deliver marked videos


def test_a_typo_is_an_error_at_start_that_names_the_key() -> None:
    base = json.loads(DOCUMENTED_CHANNELS_JSON)[0]
    with pytest.raises(ValidationError, match="modles"):
        Settings(channels=[{**base, "modles": ["x"]}])
    with pytest.raises(ChannelConfigError, match=r"channel 'up' \(kind openai\): options.remixx"):
        check_channels(Settings(channels=[{**base, "options": {"remixx": True}}]))
    with pytest.raises(ChannelConfigError, match="needs a base_url"):
        check_channels(Settings(channels=[{**base, "base_url": None}]))
    with pytest.raises(ChannelConfigError, match="max_images"):
        check_channels(Settings(channels=[{**base, "max_images": 3}]))
    with pytest.raises(ChannelConfigError, match="unknown channel kind"):
        check_channels(Settings(channels=[{**base, "kind": "nope"}]))
    with pytest.raises(ChannelConfigError, match="forward_fields"):
        check_channels(Settings(channels=[{**base, "options": {"forward_fields": ["colour"]}}]))


def test_settings_the_paid_submit_rules_cannot_honour_are_errors_at_start_naming_the_key() -> None:
    """A lookup window no longer than the request timeout would take a create still running
    upstream for one that made no job; a cap of 0 paid creates would never submit anything."""
    base = json.loads(DOCUMENTED_CHANNELS_JSON)[0]
    with pytest.raises(ValidationError, match="lookup_window_seconds"):
        Settings(channels=[{**base, "request_timeout_seconds": 60, "lookup_window_seconds": 30}])
    with pytest.raises(ValidationError, match="lookup_window_seconds"):
        Settings(channels=[{**base, "request_timeout_seconds": 60, "lookup_window_seconds": 60}])
    with pytest.raises(ValidationError, match="max_paid_creates"):
        Settings(worker={"max_paid_creates": 0})
    settings = Settings(channels=[{**base, "request_timeout_seconds": 90}])
    assert settings.channels[0].lookup_window == 90 + 240  # the default follows the timeout


def test_secrets_never_appear_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-live-0123456789abcdef"
    base = {
        **json.loads(DOCUMENTED_CHANNELS_JSON)[0],
        "api_key": secret,
        "headers": {"X-Relay-Token": secret + "-h"},
    }
    with pytest.raises(ValidationError) as excinfo:
        Settings(channels=[{**base, "priority": "high"}])
    assert secret not in str(excinfo.value)
    settings = Settings(channels=[base])
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert secret not in settings.model_dump_json()
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(ValidationError, match="MISSING_KEY, which is not set"):
        Settings(channels=[{**base, "api_key": "env:MISSING_KEY"}])


def test_header_values_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "t-123456")
    base = json.loads(DOCUMENTED_CHANNELS_JSON)[0]
    [channel] = Settings(channels=[{**base, "headers": {"X-Token": "env:TOKEN"}}]).channels
    assert channel.header_values() == {"X-Token": "t-123456"}
    with pytest.raises(ValidationError, match="not a valid HTTP header name"):
        Settings(channels=[{**base, "headers": {"Bad Header": "x"}}])


def test_the_example_configuration_in_docs_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    example = Path(__file__).parents[2] / "docs" / "vidgate.example.toml"
    monkeypatch.setenv("VIDGATE_CONFIG", str(example))
    monkeypatch.setenv("OFFICIAL_API_KEY", "sk-official")
    monkeypatch.setenv("RELAY_CN_KEY", "sk-relay")
    for name in (
        "GEMINI_API_KEY",
        "ARK_API_KEY",
        "DASHSCOPE_API_KEY",
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "MINIMAX_API_KEY",
        "FAL_KEY",
        "REPLICATE_API_TOKEN",
        "OPENROUTER_API_KEY",
    ):
        monkeypatch.setenv(name, f"sk-{name.lower()}")
    settings = Settings()
    check_channels(settings)
    names = [c.name for c in catalog_from_settings(settings).channels]
    assert names == [
        "official",
        "wan-gpu",
        "relay-cn",
        "veo",
        "seedance",
        "wan",
        "kling",
        "hailuo",
        "fal",
        "replicate",
        "openrouter",
        "animate",
    ]
    official = catalog_from_settings(settings).by_name("official")
    assert official is not None
    assert official.pricing.price("sora-2", "720x1280", 12) == 1_200_000
    assert official.pricing.price("sora-2-pro", "1280x720", 4) == 2_500_000
    assert official.pricing.price("sora-2-pro", "720x1280", 4) == 1_700_000
