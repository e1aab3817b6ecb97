"""The web console (`/console`) in a real headless Chromium against a real `vidgate serve` (SQLite, the
built-in engine), every request off loopback refused: sign in, make a video from an uploaded image and
watch it complete and play, find it in the history and delete it, a validation error at its field, the
playground's form built from the key's model catalog (`GET /v1/models`), an admin making a key and
reading usage, and a key that is not an admin's seeing no admin page. At a 390 px
phone width and a desktop one; screenshots of the main screens go to `artifacts/console/` (not
committed).

Needs Chromium (Debian: `apt-get install chromium`) and the `playwright` package from the test extra;
skipped without them, except where VIDGATE_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.browser import chromium_or_skip
from tests.e2e.processes import Deployment, wait_until, write_config

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "console"
TIMEOUT_MS = 30_000
RENDER_TIMEOUT_MS = 90_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
# The one channel: the built-in engine, with fewer durations than the console offers (to see a
# server-side validation error at its field) and a low frame rate (short renders).
ANIMATE = {
    "name": "local",
    "kind": "animate",
    "models": ["sora-2"],
    "durations": [4, 8],
    "options": {"fps": 12},
}


def studio_channel(root: Path) -> dict[str, Any]:
    """A model that takes every option: a last frame, sound or not, a seed, a negative prompt, at 480p
    and 720p in three aspect ratios, for 5 or 10 s."""
    return {
        "name": "studio",
        "kind": "scripted",
        "models": ["studio"],
        "durations": [5, 10],
        "options": {"polls": 1_000_000, "poll_after": 0.5, "state_dir": str(root / "studio")},
        "capabilities": {
            "studio": {
                "audio": "optional",
                "audio_default": False,
                "last_frame": True,
                "seed": True,
                "negative_prompt": True,
                "enhance_prompt": False,
                "resolutions": ["480p", "720p"],
                "aspect_ratios": ["16:9", "9:16", "1:1"],
            }
        },
    }


def voiced_channel(root: Path) -> dict[str, Any]:
    """A model that always makes sound and takes no option."""
    return {
        "name": "voiced",
        "kind": "scripted",
        "models": ["voiced"],
        "durations": [8],
        "options": {"polls": 1_000_000, "poll_after": 0.5, "state_dir": str(root / "voiced")},
        "capabilities": {
            "voiced": {
                "audio": "always",
                "last_frame": False,
                "seed": False,
                "negative_prompt": False,
                "enhance_prompt": False,
            }
        },
    }


def rough_channels(root: Path) -> list[dict[str, Any]]:
    """Two channels whose videos come quickly at an eighth of the asked size (the scripted channel's
    `clip_scale`): `rough` delivers them with a warning (`detail.warnings`), `strict` (`strict_result`)
    fails them with `result_mismatch`."""
    return [
        {
            "name": name,
            "kind": "scripted",
            "models": [name],
            "durations": [4],
            "strict_result": name == "strict",
            "options": {"polls": 1, "poll_after": 0.2, "state_dir": str(root / name)},
        }
        for name in ("rough", "strict")
    ]


def paint_a_boat(path: Path) -> None:
    """A small picture to upload: dawn sky, sun, water, a paper boat."""
    w, h = 960, 540
    picture = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(picture)
    for y in range(h):
        t = y / h
        sky = (int(250 - 90 * t), int(170 + 30 * t), int(120 + 120 * t))
        water = (int(40 + 30 * t), int(90 + 40 * t), int(150 + 30 * t))
        draw.line([(0, y), (w, y)], fill=sky if y < h * 0.62 else water)
    draw.ellipse([600, 120, 720, 240], fill=(255, 236, 170))
    draw.polygon([(330, 360), (630, 360), (580, 410), (380, 410)], fill=(245, 245, 240))
    draw.polygon([(470, 220), (470, 360), (580, 360)], fill=(255, 255, 255))
    draw.polygon([(460, 240), (460, 360), (370, 360)], fill=(225, 228, 235))
    picture.save(path)


def is_error(message: Any) -> bool:
    return bool(message.type == "error" and not message.text.startswith(EXPECTED_HTTP_ERROR))


EXPECTED_HTTP_ERROR = "Failed to load resource: the server responded with a status of 4"


@dataclass
class Console:
    dep: Deployment
    browser: Any
    user_key: str
    admin_key: str
    image: Path
    refused: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.dep.base_url}/console/"

    def page(self, viewport: dict[str, int]) -> Any:
        context = self.browser.new_context(viewport=viewport, color_scheme="light")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def loopback_only(route: Any) -> None:
            url = urlsplit(route.request.url)
            if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
                self.refused.append(route.request.url)
                route.abort("internetdisconnected")
            else:
                route.continue_()

        page.route("**/*", loopback_only)
        # A CSP violation or a script error is a console error: none may happen. (An HTTP error answer
        # is logged too; those are expected: a wrong key's 401, a non-admin's 404, a refused create's 400.)
        page.on("console", lambda m: self.page_errors.append(m.text) if is_error(m) else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.goto(self.url)
        return page

    def sign_in(self, page: Any, key: str) -> None:
        page.get_by_label("API key", exact=True).fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.locator("#view-playground").wait_for(state="visible")

    def api(self, key: str) -> httpx.Client:
        return self.dep.client(key)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    chromium = chromium_or_skip("the console browser test")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("console")
    # And a model whose videos never finish (a scripted channel that keeps answering "running").
    slow = {"name": "slow", "kind": "scripted", "models": ["slow"]}
    slow["options"] = {"polls": 1_000_000, "poll_after": 0.5, "state_dir": str(root / "slow")}
    # And one whose channel keeps refusing creates with a retryable 503: its videos wait on retries.
    flaky = {"name": "flaky", "kind": "scripted", "models": ["flaky"]}
    flaky["options"] = {"transient_submit_failures": 1_000_000, "state_dir": str(root / "flaky")}
    config = write_config(
        root / "vidgate.toml",
        worker={"idle_poll_seconds": 0.2, "retry_base_seconds": 0.5, "retry_max_seconds": 1.0},
        channels=[ANIMATE, slow, flaky, studio_channel(root), voiced_channel(root), *rough_channels(root)],
    )
    dep = Deployment(root, f"sqlite+aiosqlite:///{root / 'data' / 'vidgate.db'}", config)
    image = root / "boat.png"
    paint_a_boat(image)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        dep.serve()
        user_key, admin_key = dep.new_key(), dep.new_key("--admin")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium)
            try:
                yield Console(dep, browser, user_key, admin_key, image)
            finally:
                browser.close()
    finally:
        dep.stop_all()


@pytest.fixture
def clean(console: Console) -> Iterator[Console]:
    """No request left loopback and the pages logged no error (CSP violations included)."""
    console.refused.clear()
    console.page_errors.clear()
    yield console
    assert console.refused == []
    assert console.page_errors == []


def fits(page: Any) -> None:
    """Nothing wider than the viewport (no sideways scrolling on a phone)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def within_the_width(page: Any, control: Any) -> None:
    """`control` is on screen across: not cut off, nor to be reached by scrolling a box sideways."""
    box = control.bounding_box()
    width = page.viewport_size["width"]
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button, a[href]")]
    .filter((e) => e.getClientRects().length > 0)
    .filter((e) => !(e.labels?.length || e.getAttribute("aria-label") || e.textContent.trim()))
    .map((e) => e.id || e.outerHTML.slice(0, 80))"""


def shot(page: Any, name: str) -> None:
    """Save a screenshot of the screen, once it fits the width and every control on it has a name."""
    fits(page)
    assert page.evaluate(UNLABELLED) == []
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("viewport", "width"), [(PHONE, "phone"), (DESKTOP, "desktop")])
def test_a_wrong_key_gets_a_clear_message_and_signing_out_forgets_the_key(
    clean: Console, viewport: dict[str, int], width: str
) -> None:
    from playwright.sync_api import expect

    page = clean.page(viewport)
    shot(page, f"{width}-sign-in")
    page.get_by_label("API key", exact=True).fill("vg-not-a-key")
    page.get_by_label("API key", exact=True).press("Enter")  # the keyboard alone signs in
    expect(page.locator("#signin-error")).to_contain_text("not accepted")
    expect(page.get_by_label("API key", exact=True)).to_have_attribute("aria-invalid", "true")

    clean.sign_in(page, clean.user_key)
    stored = page.evaluate("() => Object.values(sessionStorage)")
    assert clean.user_key in stored
    assert page.evaluate("() => Object.values(localStorage)") == []
    assert clean.user_key not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#view-signin")).to_be_visible()
    assert clean.user_key not in page.evaluate("() => Object.values(sessionStorage)")
    assert clean.user_key not in clean.dep.log("serve")  # never in a URL the access log shows
    page.context.close()


@pytest.mark.parametrize(("viewport", "width"), [(PHONE, "phone"), (DESKTOP, "desktop")])
def test_a_video_from_an_uploaded_image_renders_plays_is_in_the_history_and_is_deleted(
    clean: Console, viewport: dict[str, int], width: str
) -> None:
    from playwright.sync_api import expect

    page = clean.page(viewport)
    clean.sign_in(page, clean.user_key)
    # CJK text round-trips on the phone (this machine's Chromium may lack a CJK font to draw it).
    prompt = "纸船在池塘上 a paper boat (phone)" if width == "phone" else "A paper boat on a pond at dawn"
    page.get_by_label("Prompt", exact=True).fill(prompt)
    if width == "phone":  # dropped onto the drop zone, as a file dragged from the desktop would be
        data = clean.image.read_bytes()
        handle = page.evaluate_handle(
            """(bytes) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([new Uint8Array(bytes)], "boat.png", {type: "image/png"}));
                return transfer;
            }""",
            list(data),
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": handle})
    else:
        page.locator("#f-file").set_input_files(str(clean.image))
    expect(page.locator("#image-preview")).to_be_visible()
    expect(page.locator("#model-info")).not_to_be_empty()  # the key's catalog has arrived
    page.get_by_label("Resolution", exact=True).select_option("720p")
    page.get_by_label("Aspect ratio", exact=True).select_option("16:9")
    page.get_by_label("Duration", exact=True).select_option("4")
    task = page.locator("#task")
    page.evaluate(
        """() => {
            window.layoutShift = 0;
            new PerformanceObserver((list) => {
                for (const e of list.getEntries()) if (!e.hadRecentInput) window.layoutShift += e.value;
            }).observe({type: "layout-shift"});
        }"""
    )
    page.get_by_role("button", name="Make video").click()
    status = page.locator("#task-status")
    expect(status).not_to_have_text("none yet")
    box_while_running = task.bounding_box()
    expect(status).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#task-progress")).to_have_js_property("value", 100)

    # It plays: the browser decoded the MP4's metadata (a duration) and its time advances.
    page.wait_for_function("() => document.getElementById('player').duration > 3.5")
    duration = page.evaluate("() => document.getElementById('player').duration")
    assert 3.5 < duration < 4.5
    page.evaluate("() => { const v = document.getElementById('player'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.2")
    assert task.bounding_box() == box_while_running  # nothing moved while it rendered and once done
    assert page.evaluate("() => window.layoutShift") < 0.01

    # Download link, thumbnail and the spritesheet scrub (4 frames of a 4 s video, one per second).
    href = page.get_by_role("link", name="Download").get_attribute("href")
    assert href is not None and "/files/" in href and "video.mp4" in href
    page.wait_for_function("() => document.getElementById('thumbnail').naturalWidth > 0")
    expect(page.locator("#scrub")).to_have_attribute("data-tiles", "4")
    scrub = page.locator("#scrub")
    box = scrub.bounding_box()
    assert box is not None
    scrub.hover(position={"x": box["width"] * 0.9, "y": box["height"] / 2})
    expect(scrub).to_have_attribute("data-frame", "3")
    page.get_by_label("Scrub the spritesheet (click a frame to seek)", exact=True).focus()
    page.keyboard.press("Home")
    expect(scrub).to_have_attribute("data-frame", "0")
    expect(page.locator("#remix-form")).to_be_visible()
    shot(page, f"{width}-playground")
    if width == "desktop":
        page.emulate_media(color_scheme="dark")  # the dark scheme follows the system's
        assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(15, 18, 22)"
        shot(page, "desktop-playground-dark")
        page.emulate_media(color_scheme="light")

    with clean.api(clean.user_key) as api:
        [video] = [v for v in api.get("/v1/videos").json()["data"] if v["prompt"] == prompt]
    if width == "desktop":  # a remix of the finished video becomes the video shown
        page.get_by_label("New prompt", exact=True).fill("the same boat at night")
        page.get_by_role("button", name="Remix this video").click()
        expect(page.locator("#task-title")).to_have_text("the same boat at night")
        expect(status).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_function("() => document.getElementById('player').duration > 3.5")

    page.get_by_role("link", name="History").click()
    item = page.locator(f'.history-item[data-id="{video["id"]}"]')
    expect(item).to_be_visible()
    expect(item.locator(".badge")).to_have_text("completed")
    expect(item).to_contain_text(prompt)
    expect(item).to_contain_text("1280x720")
    expect(item).to_contain_text("4 s")
    page.wait_for_function(
        "(id) => document.querySelector(`.history-item[data-id='${id}'] img.thumb`)?.naturalWidth > 0",
        arg=video["id"],
    )
    page.locator("#history-status").select_option("failed")
    expect(item).to_be_hidden()
    page.locator("#history-status").select_option("completed")
    expect(item).to_be_visible()
    shot(page, f"{width}-history")

    delete = item.get_by_role("button", name="Delete")
    delete.click()
    item.get_by_role("button", name="Really delete?").click()
    expect(item).to_have_count(0)
    with clean.api(clean.user_key) as api:
        assert api.get(f"/v1/videos/{video['id']}").status_code == 404
    page.context.close()


def test_a_validation_error_is_shown_next_to_the_field_the_server_names(clean: Console) -> None:
    from playwright.sync_api import expect

    page = clean.page(DESKTOP)
    clean.sign_in(page, clean.user_key)
    expect(page.locator("#model-info")).not_to_be_empty()
    duration = page.get_by_label("Duration", exact=True)
    assert duration.locator("option").all_inner_texts() == ["4 s", "8 s"]  # what the channel makes
    page.get_by_label("Prompt", exact=True).fill("a boat")
    # A form older than the server's configuration (a duration the channel no longer makes, a model no
    # longer served): the server's refusal is shown at the field it names.
    page.evaluate(
        """() => {
            const select = document.getElementById("f-duration");
            select.append(new Option("25 s", "25"));
            const models = document.getElementById("f-model");
            models.append(new Option("no-such-model", "no-such-model"));
        }"""
    )
    duration.select_option("25")
    page.get_by_role("button", name="Make video").click()
    error = page.locator("#err-duration")
    expect(error).to_contain_text("duration of 25 s is not available")
    expect(duration).to_have_attribute("aria-invalid", "true")
    expect(duration).to_be_focused()
    expect(page.locator("#err-prompt")).to_be_hidden()

    duration.select_option("4")
    page.locator("#f-model").evaluate("(select) => { select.value = 'no-such-model'; }")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#err-model")).to_contain_text("not served here")
    expect(error).to_be_hidden()

    # An image by URL goes as JSON `input_reference.image_url`; the server refuses a loopback address
    # before fetching anything, naming `input_reference`: shown at the image's URL field.
    page.locator("#view-playground").get_by_label("Model", exact=True).select_option("sora-2")
    page.get_by_label("or an image URL", exact=True).fill("http://127.0.0.1:9/boat.png")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#err-image")).not_to_be_empty()
    expect(page.get_by_label("or an image URL", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-model")).to_be_hidden()
    page.context.close()


@pytest.mark.parametrize(("viewport", "width"), [(PHONE, "phone"), (DESKTOP, "desktop")])
def test_an_admin_creates_a_key_and_sees_usage_tasks_and_channels(
    clean: Console, viewport: dict[str, int], width: str
) -> None:
    from playwright.sync_api import expect

    with clean.api(clean.user_key) as api:  # a task on the user's key, for the admin's views
        made = api.post("/v1/videos", json={"prompt": f"usage {width}", "seconds": "4", "size": "1280x720"})
        assert made.status_code == 200, made.text
    page = clean.page(viewport)
    clean.sign_in(page, clean.admin_key)
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name", exact=True).fill(f"made in the console ({width})")
    page.get_by_label("Balance (credits, empty = unlimited)", exact=True).fill("5")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key-value")
    expect(new_key).to_contain_text("vg-")
    plaintext = new_key.inner_text()
    expect(page.get_by_role("button", name="Copy")).to_be_focused()
    with clean.api(plaintext) as api:
        assert api.get("/v1/videos").status_code == 200  # the key shown works at once
    row = page.locator("#keys-table tbody tr", has_text=f"made in the console ({width})")
    expect(row).to_contain_text("5 of 5")
    for action in ("Revoke", "Top up", "Limits"):  # issue 21: off-screen to the right on a phone
        within_the_width(page, row.get_by_role("button", name=action))
    row.get_by_role("button", name="Top up").click()
    within_the_width(page, page.get_by_role("button", name="Add credits"))
    page.get_by_label("Credits to add", exact=True).fill("2.5")
    page.get_by_role("button", name="Add credits").click()
    row = page.locator("#keys-table tbody tr", has_text=f"made in the console ({width})")
    expect(row).to_contain_text("7.5 of 7.5")
    shot(page, f"{width}-keys")
    row.get_by_role("button", name="Revoke").click()
    within_the_width(page, row.get_by_role("button", name="Really revoke?"))
    row.get_by_role("button", name="Really revoke?").click()
    row = page.locator("#keys-table tbody tr", has_text=f"made in the console ({width})")
    expect(row.locator(".badge")).to_have_text("revoked")
    with clean.api(plaintext) as api:
        assert api.get("/v1/videos").status_code == 401

    page.get_by_role("link", name="Usage").click()
    chart = page.locator("#usage-chart svg")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar").first).to_be_visible()
    expect(page.locator("#usage-legend")).to_contain_text("e2e")
    expect(page.locator("#usage-table tbody tr").first).to_contain_text("sora-2")
    page.get_by_label("Measure", exact=True).select_option("seconds_completed")
    expect(chart).to_have_count(1)
    shot(page, f"{width}-usage")

    page.get_by_role("link", name="Tasks").click()
    expect(page.locator("#tasks-table tbody tr", has_text=made.json()["id"])).to_be_visible()
    page.locator("#t-status").select_option("cancelled")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tasks-table tbody")).to_contain_text("No tasks match")
    page.locator("#t-status").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tasks-table tbody tr", has_text=made.json()["id"])).to_be_visible()
    shot(page, f"{width}-tasks")

    page.get_by_role("link", name="Channels").click()
    channel = page.locator('.channel[data-channel="local"]')
    expect(channel).to_contain_text("circuit closed")
    expect(channel).to_contain_text("In flight")
    expect(channel).to_contain_text("Error rate (1 h)")
    shot(page, f"{width}-channels")
    page.context.close()


def test_a_key_that_is_not_an_admins_sees_no_admin_page(clean: Console) -> None:
    from playwright.sync_api import expect

    page = clean.page(PHONE)
    clean.sign_in(page, clean.user_key)
    for name in ("Keys", "Usage", "Tasks", "Channels"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    expect(page.get_by_role("link", name="History")).to_be_visible()
    page.goto(f"{clean.url}#/admin/keys")
    expect(page.locator("#view-notfound")).to_be_visible()
    expect(page.locator("#view-admin\\/keys")).to_be_hidden()
    with clean.api(clean.user_key) as api:
        for path in ("/v1/admin/keys", "/v1/admin/usage", "/v1/admin/channels", "/v1/admin/tasks"):
            answer = api.get(path)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    page.context.close()


def test_the_history_pages_by_cursor_and_filters_by_status(clean: Console) -> None:
    from playwright.sync_api import expect

    key = clean.dep.new_key()
    with clean.api(key) as api:
        ids = []
        for n in range(12):
            made = api.post("/v1/videos", json={"prompt": f"page {n}", "seconds": "4", "size": "1280x720"})
            ids.append(made.json()["id"])
            api.post(f"/v1/videos/{made.json()['id']}/cancel")  # (a 409 if it already finished)
    page = clean.page(DESKTOP)
    clean.sign_in(page, key)
    page.get_by_role("link", name="History").click()
    items = page.locator(".history-item")
    expect(items).to_have_count(10)
    expect(items.first).to_have_attribute("data-id", ids[-1])  # newest first
    expect(page.get_by_role("button", name="Newest")).to_be_disabled()
    page.get_by_role("button", name="Older").click()
    expect(items).to_have_count(2)
    expect(items.last).to_have_attribute("data-id", ids[0])
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newest").click()
    expect(items).to_have_count(10)
    page.locator("#history-status").select_option("cancelled")
    expect(page.locator('.history-item:not([data-status="cancelled"])')).to_have_count(0)
    with clean.api(key) as api:
        statuses = [v.get("error") or {} for v in api.get("/v1/videos", params={"limit": 100}).json()["data"]]
    cancelled = sum(1 for error in statuses if error.get("code") == "cancelled")
    expect(items).to_have_count(min(10, cancelled))
    page.context.close()


def test_a_video_waiting_on_retries_says_why(clean: Console) -> None:
    """A client is never blind while a task waits on retries (`detail.last_error`)."""
    from playwright.sync_api import expect

    page = clean.page(DESKTOP)
    clean.sign_in(page, clean.user_key)
    page.get_by_label("Prompt", exact=True).fill("a video whose channel keeps refusing")
    page.locator("#view-playground").get_by_label("Model", exact=True).select_option("flaky")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#task-status")).to_have_text("queued")
    reason = page.locator("#task-reason")
    expect(reason).to_be_visible(timeout=TIMEOUT_MS)
    expect(reason).to_contain_text("Still trying")
    expect(reason).to_contain_text("scripted 503")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#task-status")).to_have_text("cancelled")
    expect(reason).to_be_hidden()
    page.context.close()


def test_a_running_video_is_cancelled_and_then_deleted(clean: Console) -> None:
    from playwright.sync_api import expect

    page = clean.page(DESKTOP)
    clean.sign_in(page, clean.user_key)
    page.get_by_label("Prompt", exact=True).fill("a video that never ends")
    page.locator("#view-playground").get_by_label("Model", exact=True).select_option("slow")
    page.get_by_role("button", name="Make video").click()
    status = page.locator("#task-status")
    expect(status).to_have_text("in progress")
    expect(page.locator("#task-live")).to_have_text("Video in progress.")
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    with clean.api(clean.user_key) as api:
        [video] = [
            v for v in api.get("/v1/videos").json()["data"] if v["prompt"] == "a video that never ends"
        ]
        assert video["error"]["code"] == "cancelled"
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Really delete?").click()
    expect(status).to_have_text("deleted")
    with clean.api(clean.user_key) as api:
        assert api.get(f"/v1/videos/{video['id']}").status_code == 404
    page.context.close()


def test_warnings_and_a_failures_reason_are_shown_without_opening_the_video(clean: Console) -> None:
    """Issue 21: `detail.warnings` (a video at another size than asked) in the playground's result and
    in the history's row; a failed video's code and message in its row. The history on a phone."""
    from playwright.sync_api import expect

    key = clean.dep.new_key()
    page = clean.page(DESKTOP)
    clean.sign_in(page, key)
    page.get_by_label("Prompt", exact=True).fill("a rough cut")
    page.locator("#view-playground").get_by_label("Model", exact=True).select_option("rough")
    warnings = page.locator("#task-warnings")
    expect(warnings).to_be_hidden()
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#task-status")).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)
    with clean.api(key) as api:
        [rough] = api.get("/v1/videos").json()["data"]
        detail = api.get("/v1/video/query", params={"id": rough["id"]}).json()["detail"]
        [warning] = detail["warnings"]
        assert warning.startswith("the channel's video is ")
        assert f"not the {rough['size']} asked for" in warning
        made = api.post("/v1/videos", json={"model": "strict", "prompt": "a strict cut", "seconds": "4"})
        assert made.status_code == 200, made.text
        strict = made.json()
        wait_until(
            lambda: api.get(f"/v1/videos/{strict['id']}").json()["status"] == "failed",
            timeout=RENDER_TIMEOUT_MS / 1000,
            what="the strict channel's refusal",
        )
    expect(warnings).to_be_visible()
    expect(warnings.locator("li")).to_have_text([warning])
    # The spritesheet's grid is worked out from the real frame size, not the one asked for.
    assert detail["video"]["width"] != int(rough["size"].split("x")[0])
    expect(page.locator("#scrub")).to_have_attribute(
        "data-tiles", re.compile(r"^[1-4]$")
    )  # a fetched video: one tile per keyframe, at most
    shot(page, "desktop-playground-warnings")
    page.context.close()

    page = clean.page(PHONE)
    clean.sign_in(page, key)
    page.get_by_role("link", name="History").click()
    failed = page.locator(f'.history-item[data-id="{strict["id"]}"]')
    expect(failed.locator(".badge")).to_have_text("failed")
    expect(failed.locator(".reason")).to_contain_text("result_mismatch: The channel's video is ")
    expect(failed.locator(".reason")).to_contain_text("strict_result")
    delivered = page.locator(f'.history-item[data-id="{rough["id"]}"]')
    expect(delivered.locator(".warnings li")).to_have_text([warning])
    expect(delivered.locator(".reason")).to_have_count(0)
    shot(page, "phone-history-warnings")
    page.context.close()


def test_the_model_picker_offers_the_keys_models_and_only_what_each_can_do(clean: Console) -> None:
    """After the admin test, which expects no cancelled task yet (this one cancels its video)."""
    from playwright.sync_api import expect

    key = clean.dep.new_key(
        "--allowed-model", "voiced", "--allowed-model", "sora-2", "--allowed-model", "studio",
        "--allowed-model", "not-served",
    )  # fmt: skip
    page = clean.page(DESKTOP)
    clean.sign_in(page, key)
    picker = page.locator("#view-playground").get_by_label("Model", exact=True)
    options = picker.locator("option")
    expect(options).to_have_count(3)  # exactly the key's models that are served: not slow, flaky, ...
    assert options.all_inner_texts() == ["sora-2", "studio", "voiced"]
    expect(picker).to_have_value("sora-2")
    expect(page.locator("#model-info")).to_contain_text("first frame")

    sound = page.get_by_label("Generate sound", exact=True)
    fixed = page.locator("#audio-fixed")
    last_frame = page.get_by_label("Last frame URL", exact=True)
    seed = page.get_by_label("Seed (optional)", exact=True)
    negative = page.get_by_label("Negative prompt (optional)", exact=True)
    duration = page.get_by_label("Duration", exact=True)
    resolution = page.get_by_label("Resolution", exact=True)
    ratio = page.get_by_label("Aspect ratio", exact=True)

    # sora-2 on the built-in engine: silent, no last frame, no seed or negative prompt.
    expect(sound).to_be_hidden()
    expect(fixed).to_contain_text("silent")
    for hidden in (last_frame, seed, negative, page.locator("#enhance_prompt-field")):
        expect(hidden).to_be_hidden()
    assert duration.locator("option").all_inner_texts() == ["4 s", "8 s"]
    expect(page.locator("#price")).to_have_text("This video: free.")

    # Always with sound: no toggle, the fact shown instead.
    picker.select_option("voiced")
    expect(sound).to_be_hidden()
    expect(fixed).to_contain_text("always")
    expect(last_frame).to_be_hidden()
    assert duration.locator("option").all_inner_texts() == ["8 s"]

    # Every option: the toggle, a last frame, a seed, a negative prompt; its durations and shapes.
    picker.select_option("studio")
    expect(sound).to_be_visible()
    expect(sound).not_to_be_checked()  # its default: silent
    expect(fixed).to_be_hidden()
    for shown in (last_frame, seed, negative):
        expect(shown).to_be_visible()
    expect(page.locator("#enhance_prompt-field")).to_be_hidden()
    assert duration.locator("option").all_inner_texts() == ["5 s", "10 s"]
    assert resolution.locator("option").all_inner_texts() == ["480p", "720p"]
    assert ratio.locator("option").all_inner_texts() == ["16:9", "9:16", "1:1"]
    shot(page, "desktop-playground-options")

    prompt = "from the first frame to the last"
    page.get_by_label("Prompt", exact=True).fill(prompt)
    resolution.select_option("480p")
    ratio.select_option("1:1")
    duration.select_option("10")
    seed.fill("42")
    negative.fill("blur")
    sound.check()
    page.get_by_label("or a last frame file", exact=True).set_input_files(str(clean.image))
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#task-status")).not_to_have_text("none yet")
    expect(page.locator("#err-form")).to_be_empty()

    with clean.api(key) as api:
        [video] = [v for v in api.get("/v1/videos").json()["data"] if v["prompt"] == prompt]
        assert (video["model"], video["size"], video["seconds"]) == ("studio", "480x480", "10")
        sent = api.get("/v1/video/query", params={"id": video["id"]}).json()["detail"]["input"]
    assert (sent["resolution"], sent["aspect_ratio"], sent["duration"]) == ("480p", "1:1", 10)
    assert (sent["seed"], sent["negative_prompt"], sent["generate_audio"]) == (42, "blur", True)
    assert sent["last_frame"].startswith("data:image/png;base64,")
    assert "enhance_prompt" not in sent  # a field the model does not offer is not sent
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#task-status")).to_have_text("cancelled")

    # Back to a silent model: the options it cannot take are gone, and not sent.
    picker.select_option("sora-2")
    for hidden in (sound, last_frame, seed, negative):
        expect(hidden).to_be_hidden()
    page.context.close()
