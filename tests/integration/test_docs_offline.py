"""`/docs` in a real headless browser with every request off loopback refused (the network unplugged):
Swagger UI renders from the package's own files, shows the operations (not the admin API's) and an
Authorize button, and an authenticated route can be tried with a key entered there; `/redoc` renders
too. Both under their Content-Security-Policy (no violation logged), which with `X-Frame-Options`
keeps them out of other sites' frames.

Needs Chromium (Debian: `apt-get install chromium`) and the `playwright` package from the test extra;
skipped without them, except where VIDGATE_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium_or_skip

pytestmark = pytest.mark.anyio

TIMEOUT_MS = 30_000


@pytest.fixture
def chromium() -> str:
    return chromium_or_skip("the /docs browser test")


def directives(policy: str) -> dict[str, list[str]]:
    parsed = [part.split() for part in policy.split(";") if part.strip()]
    return {words[0]: words[1:] for words in parsed}


async def test_the_documentation_pages_cannot_be_framed_and_run_no_script_they_do_not_name(
    gateway: Any,
) -> None:
    async with gateway.client(None) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            for method in ("GET", "HEAD"):
                answer = await client.request(method, path)
                assert answer.status_code == 200, (method, path)
                assert answer.headers["x-frame-options"] == "DENY", (method, path)
                assert answer.headers["x-content-type-options"] == "nosniff", (method, path)
                policy = directives(answer.headers["content-security-policy"])
                assert policy["frame-ancestors"] == ["'none'"], (method, path)
                assert policy["default-src"] == ["'none'"], (method, path)
                assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(policy.get("script-src", [])), path


async def test_docs_work_offline_and_can_try_an_authenticated_route(
    chromium: str, gateway: Any, api_key: str
) -> None:
    from playwright.async_api import Route, async_playwright, expect

    refused: list[str] = []
    violations: list[str] = []

    async def loopback_only(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
            refused.append(route.request.url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium)
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else None)
            await page.route("**/*", loopback_only)
            await page.goto(f"{gateway.base_url}/docs")

            paths = page.locator(".opblock-summary-path")
            await expect(paths.first).to_be_visible(timeout=TIMEOUT_MS)
            shown = {p.replace("\u200b", "") for p in await paths.all_inner_texts()}
            assert {"/v1/video/create", "/v1/video/query", "/v1/videos", "/v1/videos/{video_id}"} <= shown
            assert not [p for p in shown if p.startswith("/v1/admin")]

            await page.locator("button.authorize").first.click()
            modal = page.locator(".modal-ux")
            await modal.locator("input").first.fill(api_key)
            await modal.locator("button.authorize").click()
            await modal.locator("button.btn-done").click()

            listing = page.locator("#operations-openai-list_videos_v1_videos_get")
            await listing.locator(".opblock-summary").click()
            await listing.locator("button.try-out__btn").click()
            await listing.locator("button.execute").click()
            status = listing.locator(".live-responses-table tbody .response-col_status").first
            await expect(status).to_have_text("200", timeout=TIMEOUT_MS)
        finally:
            await browser.close()
    assert refused == []
    assert violations == []


async def test_redoc_works_offline_under_its_policy(chromium: str, gateway: Any) -> None:
    from playwright.async_api import Route, async_playwright, expect

    refused: list[str] = []
    violations: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname not in (None, "127.0.0.1"):
            refused.append(route.request.url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium)
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else None)
            await page.route("**/*", loopback_only)
            await page.goto(f"{gateway.base_url}/redoc")
            # The operations' paths, rendered from the document.
            await expect(page.get_by_text("/v1/video/create").first).to_be_attached(timeout=TIMEOUT_MS)
            await expect(page.get_by_text("/v1/admin/keys")).to_have_count(0)
        finally:
            await browser.close()
    assert refused == []
    # ReDoc's sidebar shows Redocly's logo from their CDN (and hides it when it fails to load): the
    # policy keeping that third-party fetch out is the policy doing its job. Nothing else is blocked.
    assert [v for v in violations if not v.startswith("Loading the image 'https://cdn.redoc.ly/")] == []


async def test_the_openapi_document_declares_bearer_auth_and_both_create_bodies(gateway: Any) -> None:
    async with gateway.client(None) as client:
        document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `vidgate keys create`.",
    }
    operations = {
        (method.upper(), path): op for path, ops in document["paths"].items() for method, op in ops.items()
    }
    async with gateway.client(None) as client:
        for (method, path), op in operations.items():
            secured = op.get("security") == [{"bearerAuth": []}]
            assert secured == path.startswith("/v1/"), (method, path)
            if secured:  # and what the document says holds: no key, no answer but a 401
                answer = await client.request(method, re.sub(r"\{[^}]+\}", "x", path))
                assert answer.status_code == 401, (method, path)
    assert len({op["operationId"] for op in operations.values()}) == len(operations)

    def body_schema(method: str, path: str, content_type: str) -> dict[str, Any]:
        schema: dict[str, Any] = operations[(method, path)]["requestBody"]["content"][content_type]["schema"]
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    unified = body_schema("POST", "/v1/video/create", "application/json")
    assert {"model", "prompt", "images", "duration", "callback_url"} <= unified["properties"].keys()
    form = body_schema("POST", "/v1/videos", "multipart/form-data")
    assert form["properties"]["input_reference"]["format"] == "binary"
    assert {"prompt", "seconds", "size", "input_reference[image_url]"} <= form["properties"].keys()
    as_json = body_schema("POST", "/v1/videos", "application/json")
    assert {"prompt", "seconds", "size", "input_reference"} <= as_json["properties"].keys()
    assert body_schema("POST", "/v1/videos/{video_id}/remix", "application/json")["required"] == ["prompt"]
