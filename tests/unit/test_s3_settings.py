"""S3 settings, credentials and presigned-URL expiry: what moto cannot check (it accepts any
credentials and never looks at a presigned URL's expiry), proven without a network."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import obstore
import pytest
from obstore.store import S3Store
from pydantic import ValidationError

from vidgate.api.media import presign_seconds
from vidgate.config import S3Settings, Settings
from vidgate.runtime import open_blob_store
from vidgate.store.blobs import MAX_PRESIGN_SECONDS, LocalBlobStore
from vidgate.store.s3_blobs import S3BlobStore, store_options

SECRET = "wJalrXUtnFEMI-not-a-real-secret"
TOKEN = "session-token-not-a-real-one"


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)


def s3_settings(**s3: object) -> Settings:
    return Settings(storage_url="s3://bucket/some/prefix", s3=S3Settings.model_validate(s3))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_settings_map_to_store_options() -> None:
    settings = s3_settings(
        endpoint="http://127.0.0.1:9000",
        region="eu-central-1",
        access_key_id="AKID",
        secret_access_key=SECRET,
        session_token=TOKEN,
        allow_http=True,
        virtual_hosted_style=True,
    )
    options = store_options(settings)
    assert options["config"] == {
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-central-1",
        "access_key_id": "AKID",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "virtual_hosted_style_request": True,
    }
    assert options["client_options"]["allow_http"] is True
    # A whole response must not be bounded by the client's default 30 s (slow clients, 8 MiB segments).
    assert options["client_options"]["timeout"] == "300s"
    assert options["client_options"]["read_timeout"] == "30s"
    assert options["retry_config"]["max_retries"] == 3


def test_unset_settings_pass_nothing_so_the_environment_and_role_apply() -> None:
    options = store_options(s3_settings())
    assert options["config"] == {}
    assert "allow_http" not in options["client_options"]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_STORAGE_URL", "s3://media-bucket/vidgate")
    monkeypatch.setenv("VIDGATE_MEDIA_DELIVERY", "redirect")
    monkeypatch.setenv("VIDGATE_S3__ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("VIDGATE_S3__SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("VIDGATE_S3__PRESIGN_SECONDS", "120")
    settings = Settings()
    assert settings.storage_url == "s3://media-bucket/vidgate"
    assert settings.media_delivery == "redirect"
    assert settings.s3.presign_seconds == 120
    assert settings.s3.secret_access_key is not None
    assert settings.s3.secret_access_key.get_secret_value() == SECRET


def test_the_secret_is_never_in_a_repr_or_an_error() -> None:
    settings = s3_settings(access_key_id="AKID", secret_access_key=SECRET, session_token=TOKEN)
    for text in (repr(settings), str(settings), repr(settings.s3), repr(S3BlobStore.from_settings(settings))):
        assert SECRET not in text and TOKEN not in text
    assert "AKID" in repr(settings.s3)  # the key id is not a secret: it helps to see which one is used
    with pytest.raises(ValidationError) as caught:
        S3Settings.model_validate({"secret_access_key": SECRET})  # no key id
    assert "must be set together" in str(caught.value)
    assert SECRET not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        S3Settings.model_validate({"access_key_id": "A", "secret_access_key": SECRET, "nonsense": SECRET})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("s3://bucket", True),
        ("s3://bucket/a/prefix", True),
        ("s3://", False),
        ("s3:///prefix", False),
        ("https://bucket.s3.amazonaws.com", False),
        ("/var/media", False),
    ],
)
def test_storage_url_must_name_a_bucket(url: str, ok: bool) -> None:
    if ok:
        assert Settings(storage_url=url).storage_url == url
        return
    with pytest.raises(ValidationError, match="storage_url must be s3://bucket"):
        Settings(storage_url=url)


def test_presign_seconds_bounds() -> None:
    with pytest.raises(ValidationError):
        S3Settings(presign_seconds=0)
    with pytest.raises(ValidationError):
        S3Settings(presign_seconds=MAX_PRESIGN_SECONDS + 1)
    with pytest.raises(ValidationError, match="session_token needs"):
        S3Settings.model_validate({"session_token": TOKEN})


def test_open_blob_store_picks_the_store(tmp_path) -> None:
    assert isinstance(open_blob_store(Settings(data_dir=tmp_path / "local")), LocalBlobStore)
    assert (tmp_path / "local" / "media").is_dir()
    store = open_blob_store(Settings(data_dir=tmp_path / "s3", storage_url="s3://bucket/p"))
    assert isinstance(store, S3BlobStore)
    assert not (tmp_path / "s3").exists()  # nothing local: the bucket is the storage


@pytest.mark.parametrize(
    ("setting", "link_expires", "now", "expected"),
    [
        (600, 10_000, 1_000, 600),  # the setting bounds it
        (600, 1_300, 1_000, 300),  # the signed link expires sooner: never outlive it
        (10**9, 10**10, 0, MAX_PRESIGN_SECONDS),  # SigV4's 7 days
        (600, 1_001, 1_000, 1),
        (600, 1_000, 1_000, 0),  # expired: the route answers 403
        (600, 900, 1_000, 0),
    ],
)
def test_presign_expiry_math(setting: int, link_expires: int, now: int, expected: int) -> None:
    assert presign_seconds(setting, link_expires, now) == expected


def sign(store: S3Store, method: str, seconds: int) -> str:
    return obstore.sign(store, method, "videos/t/video.mp4", timedelta(seconds=seconds))  # type: ignore[arg-type]


def test_a_real_presigned_url_carries_the_expiry_and_the_credential() -> None:
    """obstore's own SigV4 signing, with static credentials (no network)."""
    settings = s3_settings(region="eu-west-1", access_key_id="AKIDSTATIC", secret_access_key=SECRET)
    store = S3Store.from_url(settings.storage_url or "", **store_options(settings))
    url = sign(store, "GET", 321)
    params = query(url)
    assert urlsplit(url).path == "/bucket/some/prefix/videos/t/video.mp4"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "321"
    assert params["X-Amz-SignedHeaders"] == "host"
    key_id, _date, region, service, terminator = params["X-Amz-Credential"].split("/")
    assert (key_id, region, service, terminator) == ("AKIDSTATIC", "eu-west-1", "s3", "aws4_request")
    assert SECRET not in url
    assert "X-Amz-Security-Token" not in params
    head = query(sign(store, "HEAD", 321))
    assert head["X-Amz-Signature"] != params["X-Amz-Signature"]  # the method is signed
    longer = query(sign(store, "GET", 322))
    assert longer["X-Amz-Signature"] != params["X-Amz-Signature"]  # and so is the expiry


def test_a_session_token_is_signed_into_the_url() -> None:
    settings = s3_settings(access_key_id="AKIDTEMP", secret_access_key=SECRET, session_token=TOKEN)
    store = S3Store.from_url(settings.storage_url or "", **store_options(settings))
    params = query(sign(store, "GET", 60))
    assert params["X-Amz-Security-Token"] == TOKEN
    assert params["X-Amz-Credential"].startswith("AKIDTEMP/")


def test_our_credentials_win_over_the_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    from_env = s3_settings()
    store = S3Store.from_url(from_env.storage_url or "", **store_options(from_env))
    params = query(sign(store, "GET", 60))
    assert params["X-Amz-Credential"].startswith("AKIDFROMENV/")
    assert "/ap-south-1/s3/" in params["X-Amz-Credential"]
    ours = s3_settings(region="eu-west-1", access_key_id="AKIDOURS", secret_access_key=SECRET)
    store = S3Store.from_url(ours.storage_url or "", **store_options(ours))
    params = query(sign(store, "GET", 60))
    assert params["X-Amz-Credential"].startswith("AKIDOURS/")
    assert "/eu-west-1/s3/" in params["X-Amz-Credential"]
