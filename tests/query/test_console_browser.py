"""The console clicked through in a real Chromium (Debian's, driven by Playwright; no download).

The real query service with its console and a real nats-server; events are published on the
bus as the behavior service publishes them. Each page is screenshot: with
CAMSIGHT_CONSOLE_SCREENSHOTS=DIR the pictures go to DIR (docs/console/ is made that way).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from camsight.bus import Bus, subjects
from camsight.v1 import analysis_pb2, camera_pb2, event_pb2
from console_support import (
    ADMIN_TOKEN,
    READ_TOKEN,
    console_url,
    face_endpoint,
    publish_frame,
    publish_person,
    sample_jpeg,
)
from helpers import wait_for
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from query_helpers import RunningQuery, make_event

pytestmark = pytest.mark.slow


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium)
        yield launched
        await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CAMSIGHT_CONSOLE_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def publish_events(bus: Bus, console_query: RunningQuery) -> None:
    """Ten events over two cameras and three hours; ev-00004 with a real snapshot, box and path."""
    snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
    await snapshots.put("snap-4", sample_jpeg(40))
    for n in range(10):
        kind = (event_pb2.EVENT_TYPE_ZONE_ENTER, event_pb2.EVENT_TYPE_LINE_CROSS)[n % 2]
        event = make_event(n * 1500, camera_id=("lobby", "yard")[n % 2], type=kind, id=f"ev-{n:05d}")
        if n == 4:
            event.snapshot_id = "snap-4"
            event.start_media_time.FromNanoseconds(12_500_000_000)
            event.explanation.summary = "person track 3 entered zone door"
            box = analysis_pb2.BoundingBox(x1=0.3, y1=0.2, x2=0.7, y2=0.95)
            event.explanation.detections.add(label="person", score=0.9, box=box)
            for x, y in ((0.2, 0.9), (0.35, 0.9), (0.5, 0.92)):
                event.explanation.path.add(x=x, y=y)
        await bus.publish_event(event)
    await wait_for(lambda: console_query.indexed() == 10, 10, "10 events indexed")


async def log_in(browser: Browser, console_query: RunningQuery, token: str) -> Page:
    page = await browser.new_page(viewport={"width": 1200, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())
    violations: list[str] = []
    page.on("console", lambda msg: _csp(msg, violations))
    page.violations = violations  # type: ignore[attr-defined]
    await page.goto(console_url(console_query) + "/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/events$"))
    return page


async def upload(page: Page, url: str, photo: Path) -> None:
    """Enroll ``photo`` as "ada" through the Faces page's form."""
    await page.goto(url + "/faces")
    await page.fill("#enroll input[name=identity_id]", "ada")
    await page.fill("#enroll input[name=display_name]", "Ada")
    await page.set_input_files("#enroll input[name=photo]", photo)
    await page.click("#enroll button")


def _csp(msg: ConsoleMessage, violations: list[str]) -> None:
    if "Content Security Policy" in msg.text:
        violations.append(msg.text)


async def test_events_filter_live_rows_event_page_and_errors(
    bus: Bus, console_query: RunningQuery, browser: Browser, shots: Path
) -> None:
    await publish_events(bus, console_query)
    login = await browser.new_page(viewport={"width": 1200, "height": 500})
    await login.goto(console_url(console_query) + "/events")
    await expect(login).to_have_url(re.compile(r"/login$"))  # no session: the login form
    await login.screenshot(path=shots / "login.png")

    page = await log_in(browser, console_query, READ_TOKEN)
    rows = page.locator("#event-rows tr")
    await expect(rows).to_have_count(10)
    await page.fill("input[name=filter]", "camera = yard")
    await page.click("form.filter button")
    await expect(rows).to_have_count(5)
    await expect(page.locator("#event-rows")).to_contain_text("LINE_CROSS")
    await expect(page.locator("#timeline a.mark")).to_have_count(5)  # the timeline follows the filter

    # Live: a new yard event appears without a reload; a lobby one does not. (How soon is the
    # server's push, not a figure a loaded test machine can judge: the wait is generous.)
    await page.evaluate("window.notReloaded = true")
    await wait_for(lambda: console_query.service.hub.subscribers == 1, 10, "the page's live tail")
    await bus.publish_event(make_event(20_000, id="ev-live1", camera_id="lobby"))
    await bus.publish_event(make_event(20_001, id="ev-live2", camera_id="yard"))
    await expect(page.locator("#event-ev-live2")).to_be_visible(timeout=10_000)
    assert await page.evaluate("window.notReloaded") is True
    await expect(page.locator("#event-ev-live1")).to_have_count(0)
    await expect(rows).to_have_count(6)
    await page.screenshot(path=shots / "events.png")

    await page.fill("input[name=filter]", "camera = = yard")
    await page.click("form.filter button")
    await expect(page.locator("#error")).to_contain_text("INVALID_ARGUMENT: filter:")
    await page.screenshot(path=shots / "events-bad-filter.png")

    # The event page: snapshot loaded, the detection's box and the track's path drawn over it.
    await page.goto(console_url(console_query) + "/events")
    await page.click("#mark-ev-00004")  # from its mark on the timeline
    await expect(page.locator("#media-time")).to_have_text("12.500 s")
    snapshot = page.locator("#snapshot")
    await expect(snapshot).to_be_visible()
    assert await snapshot.evaluate("img => img.complete && img.naturalWidth") == 176  # carphone
    box = await page.locator("svg.overlay rect.box").bounding_box()
    shown = await snapshot.bounding_box()
    assert box is not None and shown is not None
    # Within the stroke's width (3 px, not scaled): x1=0.3, x2=0.7, y1=0.2, y2=0.95 of the image.
    assert box["x"] - shown["x"] == pytest.approx(0.3 * shown["width"], abs=3)
    assert box["width"] == pytest.approx(0.4 * shown["width"], abs=4)
    assert box["y"] - shown["y"] == pytest.approx(0.2 * shown["height"], abs=3)
    assert box["height"] == pytest.approx(0.75 * shown["height"], abs=4)
    await expect(page.locator("svg.overlay polyline.path")).to_have_count(1)
    await page.screenshot(path=shots / "event.png", full_page=True)

    missing = await page.goto(console_url(console_query) + "/events/no-such-event")
    assert missing is not None and missing.status == 404
    await expect(page.locator("#error")).to_contain_text("NOT_FOUND")

    await page.goto(console_url(console_query) + "/overview")
    await expect(page.locator("#total")).to_contain_text("12 events")
    assert await page.locator("svg.chart rect").count() >= 4
    await page.screenshot(path=shots / "overview.png")
    assert page.violations == []  # type: ignore[attr-defined]


async def test_cameras_and_faces_for_admin_and_read_tokens(
    bus: Bus, console_query: RunningQuery, browser: Browser, shots: Path, tmp_path: Path
) -> None:
    admin = await log_in(browser, console_query, ADMIN_TOKEN)
    await admin.goto(console_url(console_query) + "/cameras")
    await admin.fill("#add-camera input[name=id]", "gate")
    await admin.fill("#add-camera input[name=source_uri]", "rtsp://10.0.0.7/stream1")
    await admin.click("#add-camera button")
    await expect(admin.locator("#camera-gate")).to_contain_text("rtsp://10.0.0.7/stream1")
    await admin.fill("#add-camera input[name=id]", "yard")
    await admin.fill("#add-camera input[name=source_uri]", "rtsp://user:secret@10.0.0.8/live")
    await admin.click("#add-camera button")
    await expect(admin.locator("#camera-yard")).not_to_contain_text("secret")  # redacted by the API
    # Edit: a new name; the redacted source, left as shown, keeps the stored password.
    await admin.click("#camera-yard a.button")
    await admin.fill("#edit-camera input[name=display_name]", "Yard gate")
    await admin.click("#edit-camera button")
    await expect(admin.locator("#camera-yard")).to_contain_text("Yard gate")
    registry = await bus.kv(subjects.CAMERAS_BUCKET)
    yard = camera_pb2.Camera.FromString((await registry.get("yard")).value or b"")
    assert (yard.display_name, yard.source_uri) == ("Yard gate", "rtsp://user:secret@10.0.0.8/live")
    before = (await registry.get("gate")).revision
    await admin.click("#camera-gate button:text('Restart')")

    async def restarted() -> bool:
        return (await registry.get("gate")).revision > before

    await wait_for(restarted, 10, "the restart's new registry revision")
    # The form's redirect may still be loading: a screenshot during it fails. Load the page anew.
    await admin.goto(console_url(console_query) + "/cameras")
    await expect(admin.locator("#camera-gate")).to_be_visible()
    await admin.screenshot(path=shots / "cameras.png")

    photo, not_photo = tmp_path / "ada.jpg", tmp_path / "notes.txt"
    photo.write_bytes(sample_jpeg())
    not_photo.write_text("not a photo")
    async with face_endpoint(bus):
        await upload(admin, console_url(console_query), not_photo)
        await expect(admin.locator("#error")).to_contain_text("photo: not a JPEG or PNG image")
        await upload(admin, console_url(console_query), photo)
        await expect(admin.locator("#identity-ada")).to_contain_text("Ada")
        thumb = admin.locator("#identity-ada img.thumb")
        await expect(thumb).to_be_visible()
        assert await thumb.evaluate("img => img.complete && img.naturalWidth") > 0
        await admin.screenshot(path=shots / "faces.png")

    reader = await log_in(browser, console_query, READ_TOKEN)
    await reader.goto(console_url(console_query) + "/cameras")
    await expect(reader.locator("#camera-gate")).to_be_visible()
    await expect(reader.locator("button.danger")).to_have_count(0)
    await expect(reader.locator("#add-camera")).to_have_count(0)
    await expect(reader.locator("a.button, button:text('Restart')")).to_have_count(0)  # no edit, no restart
    await reader.goto(console_url(console_query) + "/faces")
    await expect(reader.locator("#identity-ada")).to_be_visible()
    await expect(reader.locator("button.danger")).to_have_count(0)
    await expect(reader.locator("#enroll")).to_have_count(0)
    # A forged admin form, sent with the reader's own cookie and CSRF token: the server refuses.
    csrf = await reader.locator("input[name=csrf]").first.get_attribute("value")
    forged = await reader.request.post(
        console_url(console_query) + "/faces/ada/delete", form={"csrf": csrf or ""}
    )
    assert forged.status == 403 and "DeleteIdentity needs the admin scope" in await forged.text()
    await reader.reload()
    await expect(reader.locator("#identity-ada")).to_be_visible()

    # Live: the newest frames with the detections drawn, the camera's events beside them.
    await reader.goto(console_url(console_query) + "/live")
    await reader.click("#live-gate")
    view = reader.locator("#live-view")
    server = console_query.service.console
    assert server is not None
    await wait_for(lambda: server.console.feeds.viewers("gate") == 1, 10, "the live view's feed")
    await wait_for(lambda: console_query.service.hub.subscribers == 1, 10, "the live page's event tail")
    await publish_person(bus, "gate", (0.55, 0.2, 0.9, 0.8))
    await publish_frame(bus, "gate", sample_jpeg(10), 1)
    await wait_for(lambda: view.evaluate("img => img.naturalWidth === 176"), 10, "the first live frame")
    first = await view.screenshot()
    await publish_frame(bus, "gate", sample_jpeg(60), 2)

    async def changed() -> bool:
        return await view.screenshot() != first

    await wait_for(changed, 10, "the live view to show the next frame")
    await bus.publish_event(make_event(30_000, id="ev-gate1", camera_id="gate"))
    await expect(reader.locator("#event-ev-gate1")).to_be_visible(timeout=10_000)
    await reader.screenshot(path=shots / "live.png")

    # The admin removes both.
    await admin.goto(console_url(console_query) + "/faces")
    await admin.click("#identity-ada button.danger")
    await expect(admin.locator("#identity-ada")).to_have_count(0)
    await admin.goto(console_url(console_query) + "/cameras")
    await admin.click("#camera-gate button.danger")
    await expect(admin.locator("#camera-gate")).to_have_count(0)
    assert admin.violations == [] and reader.violations == []  # type: ignore[attr-defined]
