"""data: URI decoding: form, media type, base64 and the size check before decoding."""

from __future__ import annotations

import base64

import pytest

from vidgate.net.datauri import DataUriRejected, DataUriTooLarge, decode_data_uri, is_data_uri
from vidgate.net.policy import UrlRejected

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PNG_B64 = base64.b64encode(PNG).decode()


def test_valid_png() -> None:
    mime, data = decode_data_uri(f"data:image/png;base64,{PNG_B64}", max_bytes=1024)
    assert (mime, data) == ("image/png", PNG)


def test_scheme_and_type_are_case_insensitive_and_parameters_allowed() -> None:
    mime, data = decode_data_uri(f"DATA:Image/PNG;name=a.png;BASE64,{PNG_B64}", max_bytes=1024)
    assert (mime, data) == ("image/png", PNG)


def test_missing_padding_is_tolerated() -> None:
    payload = base64.b64encode(b"abcd").decode()  # "YWJjZA=="
    assert decode_data_uri(f"data:image/gif;base64,{payload.rstrip('=')}", max_bytes=10)[1] == b"abcd"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("data:image/png;base64,!!!not-base64!!!", "not valid base64"),
        ("data:image/png;base64,iVBO R", "not valid base64"),
        ("data:image/png;base64,iVBO%2B", "not valid base64"),
        ("data:image/png;base64,A", "not valid base64"),
        ("data:image/png;base64,AAAA===", "not valid base64"),
        ("data:image/png;base64,", "contains no data"),
        ("data:text/html;base64,PGgxPmhpPC9oMT4=", "'text/html'"),
        ("data:application/octet-stream;base64,AAAA", "only image types"),
        ("data:;base64,AAAA", "'none'"),
        ("data:image/png,rawbytes", "only base64"),
        ("data:image/png;charset=utf-8,AAAA", "only base64"),
        ("data:image/pngAAAA", "no ','"),
        ("https://example.com/a.png", "not a data: URI"),
    ],
)
def test_rejections_say_what_is_wrong(uri: str, fragment: str) -> None:
    with pytest.raises(DataUriRejected, match=fragment) as info:
        decode_data_uri(uri, max_bytes=1024)
    assert isinstance(info.value, UrlRejected)  # the API maps both to 400 the same way
    assert info.value.code == "invalid_data_uri"


def test_oversize_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("decoded an oversized payload")

    monkeypatch.setattr(base64, "b64decode", no_decoding)
    uri = "data:image/png;base64," + "A" * 4000  # 3000 bytes once decoded
    with pytest.raises(DataUriTooLarge, match="3000 bytes; the limit is 2999") as info:
        decode_data_uri(uri, max_bytes=2999)
    assert info.value.code == "image_too_large"


def test_exact_limit_is_allowed() -> None:
    payload = base64.b64encode(b"x" * 30).decode()
    assert len(decode_data_uri(f"data:image/png;base64,{payload}", max_bytes=30)[1]) == 30
    with pytest.raises(DataUriTooLarge):
        decode_data_uri(f"data:image/png;base64,{payload}", max_bytes=29)


def test_is_data_uri() -> None:
    assert is_data_uri("data:image/png;base64,AAAA")
    assert is_data_uri("DaTa:x")
    assert not is_data_uri("https://example.com/data:")
