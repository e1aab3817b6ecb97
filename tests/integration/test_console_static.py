"""`/console`: the web console's files from the package, with a strict CSP and no way out of it."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import pytest

from vidgate.api.console import assets

pytestmark = pytest.mark.anyio


async def test_the_console_is_served_with_its_security_headers(gateway: Any) -> None:
    async with gateway.client(None) as client:
        bare = await client.get("/console")
        assert bare.status_code == 308 and bare.headers["location"] == "console/"
        page = await client.get("/console/")
        script = await client.get("/console/app.js")
        style = await client.get("/console/style.css")
        again = await client.get("/console/app.js", headers={"if-none-match": script.headers["etag"]})
        schema = (await client.get("/openapi.json")).json()
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="app.js">' in page.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert again.status_code == 304 and again.content == b""
    for answer in (page, script, style):
        csp = answer.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "'self'" in directives["media-src"] and "'unsafe-inline'" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-cache"
    assert not [path for path in schema["paths"] if path.startswith("/console")]


def test_the_package_carries_every_file_the_page_loads() -> None:
    names = set(assets())
    assert {"index.html", "app.js", "api.js", "style.css", "icon.svg"} <= names
    for name in names:  # every module an ES import names is a shipped file
        text = assets()[name].body.decode()
        for line in text.splitlines():
            if line.startswith("import ") and ' from "./' in line:
                assert line.split(' from "./', 1)[1].split('"')[0] in names, (name, line)


def _raw_get(base_url: str, path: str) -> int:
    """GET with the path sent exactly as written (httpx would normalise `..` away)."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/console/../pyproject.toml",
        "/console/..%2fpyproject.toml",
        "/console/%2e%2e/%2e%2e/pyproject.toml",
        "/console/%2e%2e%2f%2e%2e%2fapi%2fconsole.py",
        "/console/..\\..\\api\\console.py",
        "/console/../__init__.py",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
        "/console/static/index.html",
        "/console/index.html%00.js",
        "/console/nope.js",
    ],
)
async def test_no_path_leaves_the_console_files(gateway: Any, path: str) -> None:
    import anyio

    status = await anyio.to_thread.run_sync(_raw_get, gateway.base_url, path)
    assert status == 404, path


def test_the_wheel_carries_the_console() -> None:
    """pyproject's package-data glob, `console/static/*`, is flat: every file sits directly there."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "console/static/*" in globs["vidgate"]
    static = root / "src" / "vidgate" / "console" / "static"
    assert all(path.is_file() for path in static.iterdir())
    assert {path.name for path in static.iterdir()} == set(assets())


def test_media_from_a_bucket_are_allowed_only_with_redirect_delivery() -> None:
    from vidgate.api.console import content_security_policy
    from vidgate.config import Settings

    local = content_security_policy(Settings(public_base_url="https://videos.example.com/gw"))
    assert "media-src 'self' blob: https://videos.example.com;" in local
    assert "https:;" not in local and "https: " not in local
    bucket = Settings(storage_url="s3://media", media_delivery="redirect", host="127.0.0.1", port=8000)
    assert "media-src 'self' blob: http://127.0.0.1:8000 https:;" in content_security_policy(bucket)
