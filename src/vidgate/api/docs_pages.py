"""The API's documentation: the OpenAPI document at `/openapi.json`, Swagger UI at `/docs` and ReDoc
at `/redoc`, their scripts and styles served from fastapi-offline's copies in the installed package
(under `/static-offline-docs`), so the pages work offline.

- `/openapi.json` answers the public document (`openapi_docs.public_document`: no admin API) to
  anyone but an admin. A key in `Authorization` is read from the database, as the admin routes read
  it, and an admin's gets the full document. Both answers vary on `Authorization`, and the admin's
  is never stored. Swagger UI and ReDoc fetch the document without a key: they show the public API.
- Every answer here carries `X-Frame-Options: DENY` and a Content-Security-Policy with
  `frame-ancestors 'none'`, as the console's do: no other site can frame the pages (clickjacking).
  Scripts come from this origin only, plus each page's own inline script, allowed by its hash.
  ReDoc writes its styles at run time (styled-components) and searches in a worker it makes from a
  blob, so its page also allows inline styles and blob workers; Swagger UI needs neither.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from vidgate.api.deps import admin_key_of
from vidgate.api.openapi_docs import public_document

OPENAPI_URL = "/openapi.json"
STATIC_URL = "/static-offline-docs"
_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)  # a <script> without a src

_HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
# The document and the static files: nothing in them runs as a page, and nothing may frame them.
_NOTHING = "default-src 'none'; frame-ancestors 'none'"


def page_policy(html: str, *, inline_styles: bool = False, blob_workers: bool = False) -> str:
    """The Content-Security-Policy for one of the pages, its inline scripts allowed by their hashes."""
    scripts = ["'self'"] + [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    ]
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    workers = "; worker-src blob:" if blob_workers else ""
    return (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src {styles}; img-src 'self' data:; "
        f"font-src 'self' data:; connect-src 'self'{workers}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _text(page: Response) -> str:
    return bytes(page.body).decode()


def _page(html: str, policy: str) -> Response:
    return Response(html, media_type="text/html", headers={**_HEADERS, "content-security-policy": policy})


class _DocsFiles(StaticFiles):
    """fastapi-offline's files, with the same headers as the pages."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({**_HEADERS, "content-security-policy": _NOTHING})
        return response


def install_docs_pages(app: FastAPI) -> None:
    """Serve the document and the pages (the app is made with FastAPI's own turned off)."""
    encoded: dict[bool, bytes] = {}  # by "for an admin": the app's routes are fixed once it serves

    def document(admin: bool) -> bytes:
        if admin not in encoded:
            full = app.openapi()
            encoded[admin] = orjson.dumps(full if admin else public_document(full))
        return encoded[admin]

    @app.api_route(OPENAPI_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        admin = await admin_key_of(request) is not None
        headers = {**_HEADERS, "content-security-policy": _NOTHING, "vary": "Authorization"}
        if admin:
            headers["cache-control"] = "private, no-store"
        return Response(document(admin), media_type="application/json", headers=headers)

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        html = _text(
            get_swagger_ui_html(
                openapi_url=f"{root}{OPENAPI_URL}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                # No OAuth2 redirect page: the API's one scheme is a bearer key.
                oauth2_redirect_url=None,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )
        return _page(html, page_policy(html))

    @app.api_route("/redoc", methods=["GET", "HEAD"], include_in_schema=False)
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        html = _text(
            get_redoc_html(
                openapi_url=f"{root}{OPENAPI_URL}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
        return _page(html, page_policy(html, inline_styles=True, blob_workers=True))

    app.mount(STATIC_URL, _DocsFiles(directory=_STATIC_DIR), name="static-offline-docs")
