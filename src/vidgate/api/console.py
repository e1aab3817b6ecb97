"""The web console at `/console`: static files shipped inside the package (`vidgate/console/static`).

No key is needed for the page itself; every API call it makes carries the key the user signs in with
(kept in the browser's session storage only). Only the files that exist in the package are served,
by exact name, so no path (`..`, encoded or not) reaches anything else. Each answer carries a strict
Content-Security-Policy: scripts, styles and connections from this origin only, no inline script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from vidgate.config import Settings
from vidgate.errors import NotFound

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file under the package's `console/static`, by its name relative to it, read once."""
    found: dict[str, Asset] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if suffix in _TYPES:
                body = entry.read_bytes()
                found[name] = Asset(body, _TYPES[suffix], f'"{hashlib.sha256(body).hexdigest()[:20]}"')

    walk(files("vidgate.console").joinpath("static"), "")
    return found


def content_security_policy(settings: Settings) -> str:
    """Media (the signed `/files` links) come from this origin or from the configured public base URL's
    (it may differ from the address the page was opened at); with `media_delivery=redirect`, those
    links redirect to the bucket's presigned URLs, so https media sources are allowed too."""
    media = ["'self'", "blob:"]
    base = urlsplit(settings.base_url)
    if base.scheme and base.netloc:
        media.append(f"{base.scheme}://{base.netloc}")
    if settings.media_delivery == "redirect" and settings.storage_url:
        media.append("https:")
    sources = " ".join(media)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src {sources} data:; media-src {sources}; font-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def _headers(request: Request) -> dict[str, str]:
    settings: Settings = request.app.state.runtime.settings
    return {
        "content-security-policy": content_security_policy(settings),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        # Revalidated each time (the names carry no hash): an upgrade is seen at the next load.
        "cache-control": "no-cache",
    }


def _serve(request: Request, name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise NotFound("No such file in the console.")
    headers = {**_headers(request), "etag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    headers["content-length"] = str(len(asset.body))
    return Response(body, media_type=asset.content_type, headers=headers)


@router.api_route("/console", methods=["GET", "HEAD"])
async def console_root() -> Response:
    # Relative, so the page's own relative links work behind a proxy that adds a path prefix too.
    return Response(status_code=308, headers={"location": "console/"})


@router.api_route("/console/", methods=["GET", "HEAD"])
async def console_index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.api_route("/console/{name:path}", methods=["GET", "HEAD"])
async def console_file(name: str, request: Request) -> Response:
    return _serve(request, name)
