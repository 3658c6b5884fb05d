"""The console over real HTTP (aiohttp's client) against the real query service and nats-server.

What a browser cannot show directly: the cookie's flags, the security headers, CSRF and scope
refusals of forged requests, the error statuses. tests/query/test_console_browser.py clicks
through the pages in Chromium.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from camsight.bus import Bus, subjects
from camsight.config import NatsSettings
from camsight.query.console.app import CSP
from camsight.v1 import camera_pb2, event_pb2
from camsight.v1 import camera_service_pb2 as CS
from console_support import (
    ADMIN_TOKEN,
    READ_TOKEN,
    camera_with_zone,
    console_url,
    face_endpoint,
    publish_frame,
    publish_person,
    running_console,
    sample_jpeg,
)
from helpers import sample_video, wait_for
from query_helpers import RunningQuery, make_event

ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def logged_in(console_query: RunningQuery, token: str) -> aiohttp.ClientSession:
    # unsafe=True: the standard cookie jar ignores cookies of IP addresses such as 127.0.0.1.
    client = aiohttp.ClientSession(console_url(console_query), cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.post("/login", data={"token": token}, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    return client


async def csrf_of(client: aiohttp.ClientSession, path: str) -> str:
    async with client.get(path) as response:
        found = CSRF.search(await response.text())
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def test_login_sets_an_httponly_strict_cookie_and_pages_carry_the_csp(
    console_query: RunningQuery,
) -> None:
    async with aiohttp.ClientSession(console_url(console_query)) as client:
        async with client.get("/events", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/login")
        async with client.post("/login", data={"token": "not-a-token-at-all-x"}) as response:
            assert response.status == 401 and "unknown token" in await response.text()
        async with client.post("/login", data={"token": ADMIN_TOKEN}, allow_redirects=False) as response:
            cookie = response.headers["Set-Cookie"]
            assert response.status == 303
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        async with client.get("/login") as response:
            assert response.headers["Content-Security-Policy"] == CSP
            assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
            assert "<script>" not in await response.text()  # every script is a file


async def test_a_login_from_another_site_is_refused(console_query: RunningQuery) -> None:
    async with aiohttp.ClientSession(console_url(console_query)) as client:
        async with client.post(
            "/login", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403 and "another site" in await response.text()
            assert "Set-Cookie" not in response.headers


async def test_every_write_needs_the_csrf_token(console_query: RunningQuery) -> None:
    async with await logged_in(console_query, ADMIN_TOKEN) as client:
        form = {"id": "gate", "source_uri": "rtsp://cam/1", "target_fps": "5"}
        async with client.post("/cameras", data=form) as response:
            assert response.status == 403 and "CSRF" in await response.text()
        async with client.post("/cameras", data={**form, "csrf": "0" * 64}) as response:
            assert response.status == 403
        async with client.post(
            "/cameras", data={**form, "csrf": await csrf_of(client, "/cameras")}
        ) as response:
            assert response.status == 200
            assert 'id="camera-gate"' in await response.text()


async def test_a_read_token_sees_no_admin_forms_and_forged_writes_get_403(
    console_query: RunningQuery,
) -> None:
    async with await logged_in(console_query, ADMIN_TOKEN) as admin:
        csrf = await csrf_of(admin, "/cameras")
        async with admin.post("/cameras", data={"id": "gate", "source_uri": "rtsp://cam/1", "csrf": csrf}):
            pass
    async with await logged_in(console_query, READ_TOKEN) as reader:
        for path in ("/cameras", "/faces"):
            async with reader.get(path) as response:
                text = await response.text()
            assert response.status == 200 and '<form method="post" action="/cameras"' not in text
            assert "Remove" not in text and "Enroll a face" not in text
        csrf = await csrf_of(reader, "/events")  # the logout form's: a read session has one too
        async with reader.post("/cameras/gate/delete", data={"csrf": csrf}) as response:
            text = await response.text()
        assert response.status == 403 and "PERMISSION_DENIED: DeleteCamera needs the admin scope" in text
        async with reader.get("/cameras") as response:
            assert 'id="camera-gate"' in await response.text()  # still there


async def test_an_admin_edits_and_restarts_a_camera_a_read_token_can_do_neither(
    bus: Bus, console_query: RunningQuery
) -> None:
    """Edit changes the form's fields only (zones and the stored source's password stay);
    restart writes a new revision of the registry entry; a read token gets neither control,
    and its forged requests are refused by the server."""
    camera = camera_with_zone("gate")
    camera.source_uri = "rtsp://admin:secret@10.0.0.9/live"
    await console_query.cameras.CreateCamera(CS.CreateCameraRequest(camera=camera), metadata=ADMIN)
    registry = await bus.kv(subjects.CAMERAS_BUCKET)
    async with await logged_in(console_query, ADMIN_TOKEN) as admin:
        async with admin.get("/cameras") as response:
            text = await response.text()
        assert 'href="/cameras/gate/edit"' in text and 'action="/cameras/gate/restart"' in text
        async with admin.get("/cameras/gate/edit") as response:
            form = await response.text()
        assert response.status == 200 and "secret" not in form
        shown = re.search(r'name="source_uri" required size="60" value="([^"]+)"', form)
        assert shown and "admin" in shown.group(1)
        csrf = CSRF.search(form)
        assert csrf
        fields = {
            "csrf": csrf.group(1),
            "display_name": "Gate",
            "source_uri": shown.group(1),
            "target_fps": "2",
        }
        async with admin.post(
            "/cameras/gate/edit", data={k: v for k, v in fields.items() if k != "csrf"}
        ) as response:
            assert response.status == 403  # no CSRF token
        async with admin.post("/cameras/gate/edit", data=fields) as response:  # "enabled" unchecked
            assert response.status == 200 and 'id="camera-gate"' in await response.text()
        stored = camera_pb2.Camera.FromString((await registry.get("gate")).value or b"")
        assert (stored.display_name, stored.target_fps, stored.enabled) == ("Gate", 2.0, False)
        assert stored.source_uri == "rtsp://admin:secret@10.0.0.9/live" and stored.zones == camera.zones
        async with admin.post("/cameras/gate/edit", data={**fields, "target_fps": "fast"}) as response:
            assert response.status == 400 and "target_fps: not a number" in await response.text()
        before = (await registry.get("gate")).revision
        async with admin.post("/cameras/gate/restart", data={"csrf": csrf.group(1)}) as response:
            assert response.status == 200
        restarted = await registry.get("gate")
        assert restarted.revision > before and restarted.value == stored.SerializeToString()
        async with admin.post("/cameras/nope/restart", data={"csrf": csrf.group(1)}) as response:
            assert response.status == 404 and "NOT_FOUND" in await response.text()
    async with await logged_in(console_query, READ_TOKEN) as reader:
        async with reader.get("/cameras") as response:
            text = await response.text()
        assert 'id="camera-gate"' in text and "/edit" not in text and "/restart" not in text
        async with reader.get("/cameras/gate/edit") as response:
            assert (
                response.status == 403 and "editing a camera needs the admin scope" in await response.text()
            )
        csrf_read = await csrf_of(reader, "/events")
        async with reader.post("/cameras/gate/restart", data={"csrf": csrf_read}) as response:
            text = await response.text()
        assert response.status == 403 and "PERMISSION_DENIED: UpdateCamera needs the admin scope" in text
        async with reader.post("/cameras/gate/edit", data={**fields, "csrf": csrf_read}) as response:
            assert response.status == 403 and "UpdateCamera needs the admin scope" in await response.text()
    assert (await registry.get("gate")).revision == restarted.revision  # nothing written


async def test_events_filter_bad_filter_and_unknown_event(bus: Bus, console_query: RunningQuery) -> None:
    await asyncio.gather(
        *(bus.publish_event(make_event(n, camera_id="lobby" if n % 2 else "yard")) for n in range(6))
    )
    await wait_for(lambda: console_query.indexed() == 6, 10, "6 events indexed")
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/events", params={"filter": "camera = yard"}) as response:
            text = await response.text()
        assert sorted(re.findall(r'id="event-(ev-\d+)"', text)) == ["ev-00000", "ev-00002", "ev-00004"]
        async with client.get("/events", params={"filter": "camera = = yard"}) as response:
            text = await response.text()
        assert response.status == 400 and "INVALID_ARGUMENT: filter:" in text
        async with client.get("/events/ev-00003") as response:
            assert response.status == 200 and "ev-00003" in await response.text()
        async with client.get("/events/no-such-event") as response:
            assert (
                response.status == 404
                and "NOT_FOUND: event &#39;no-such-event&#39; not found" in await response.text()
            )


MARK = re.compile(
    r'<a href="/events/(ev-\d+)" class="mark" id="mark-ev-\d+">'
    r'<(rect|circle) class="t\d" (?:x|cx)="([\d.]+)" (?:y|cy)="([\d.]+)"'
)
BAR_HALF_HEIGHT = 6  # a bar's y is its top; a dot's cy its middle


async def test_the_events_timeline_draws_the_filtered_list_on_a_time_axis(
    bus: Bus, console_query: RunningQuery
) -> None:
    """One mark per listed event, linking to it, placed by its start time on its camera's row;
    an event without an end is a dot. The filter narrows the timeline as it narrows the list."""
    events = [make_event(n, camera_id="lobby" if n % 2 else "yard") for n in (0, 1, 2, 3, 10)]
    events[-1].ClearField("end_time")  # still running: a dot
    await asyncio.gather(*(bus.publish_event(e) for e in events))
    await wait_for(lambda: console_query.indexed() == 5, 10, "5 events indexed")
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/events") as response:
            text = await response.text()
        marks = {
            m[0]: (m[1], float(m[2]), float(m[3]) + (BAR_HALF_HEIGHT if m[1] == "rect" else 0))
            for m in MARK.findall(text)
        }
        assert set(marks) == {"ev-00000", "ev-00001", "ev-00002", "ev-00003", "ev-00010"}
        xs = [marks[f"ev-{n:05d}"][1] for n in (0, 1, 2, 3, 10)]
        assert xs == sorted(xs) and xs[0] < xs[1] < xs[-1]  # by start time, first at the axis' start
        assert (xs[1] - xs[0]) * 9 == pytest.approx(xs[-1] - xs[1], rel=0.01)  # to scale: 1 s vs 9 s
        rows = {marks[f"ev-{n:05d}"][2] for n in (1, 3)}, {marks[f"ev-{n:05d}"][2] for n in (0, 2, 10)}
        assert all(len(r) == 1 for r in rows) and rows[0] != rows[1]  # a row per camera
        assert [marks[f"ev-{n:05d}"][0] for n in (0, 10)] == ["rect", "circle"]
        assert ">lobby</text>" in text and ">yard</text>" in text
        async with client.get("/events", params={"filter": "camera = lobby"}) as response:
            text = await response.text()
        assert set(MARK.findall(text)) and {m[0] for m in MARK.findall(text)} == {"ev-00001", "ev-00003"}
        assert ">yard</text>" not in text
        async with client.get("/events", params={"filter": "camera = nowhere"}) as response:
            assert 'id="timeline"' not in await response.text()
        async with client.get("/events", params={"filter": "camera = = yard"}) as response:
            assert 'id="timeline"' not in await response.text()


async def test_new_events_arrive_over_server_sent_events(bus: Bus, console_query: RunningQuery) -> None:
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/events/live", params={"filter": "camera = yard"}) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            await wait_for(lambda: console_query.service.hub.subscribers == 1, 10, "the page's live tail")
            await bus.publish_event(make_event(1, camera_id="lobby"))
            await bus.publish_event(make_event(2, camera_id="yard"))
            line = await asyncio.wait_for(stream.content.readline(), 10)
        assert line.startswith(b'data: <tr id="event-ev-00002">'), line


async def test_uploads_that_are_not_images_or_too_large_are_refused(
    bus: Bus, console_query: RunningQuery
) -> None:
    async with face_endpoint(bus) as received, await logged_in(console_query, ADMIN_TOKEN) as client:
        csrf = await csrf_of(client, "/faces")

        def form(photo: bytes, name: str) -> aiohttp.FormData:
            data = aiohttp.FormData({"csrf": csrf, "identity_id": "bob", "display_name": "Bob"})
            data.add_field("photo", photo, filename=name, content_type="application/octet-stream")
            return data

        async with client.post("/faces", data=form(b"%PDF-1.7 not a picture", "cv.pdf")) as response:
            assert response.status == 400 and "photo: not a JPEG or PNG image" in await response.text()
        async with client.post("/faces", data=form(b"\xff\xd8" + bytes(50 * 2**20), "huge.jpg")) as response:
            assert response.status == 413 and "larger than 8 MiB: refused" in await response.text()
        assert received == []
        async with client.post("/faces", data=form(sample_jpeg(), "bob.jpg")) as response:
            text = await response.text()
        assert response.status == 200 and 'id="identity-bob"' in text
        thumbnail = re.search(r'src="(/thumbnails/bob/[0-9a-f]+\.jpg)"', text)
        assert thumbnail, text
        async with client.get(thumbnail.group(1)) as response:
            assert response.content_type == "image/jpeg" and (await response.read()).startswith(b"\xff\xd8")


async def test_without_tokens_the_page_says_so_and_writes_still_need_csrf(
    nats_settings: NatsSettings, tmp_path: Path
) -> None:
    async with running_console(nats_settings, tmp_path, tokens=False) as console_query:
        async with aiohttp.ClientSession(
            console_url(console_query), cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as client:
            async with client.get("/events") as response:
                text = await response.text()
            assert response.status == 200 and "runs without tokens" in text
            async with client.post("/cameras", data={"id": "gate", "source_uri": "rtsp://c/1"}) as response:
                assert response.status == 403
            csrf = await csrf_of(client, "/cameras")
            async with client.post(
                "/cameras", data={"id": "gate", "source_uri": "rtsp://c/1", "csrf": csrf}
            ) as response:
                assert response.status == 200 and 'id="camera-gate"' in await response.text()


def decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


PART_END = b"\r\n--camsight-frame\r\n"


async def next_part(stream: aiohttp.StreamReader) -> bytes:
    """The next JPEG of the multipart/x-mixed-replace stream: its headers, then up to the next boundary."""
    headers = await stream.readuntil(b"\r\n\r\n")
    assert headers.endswith(b"Content-Type: image/jpeg\r\n\r\n"), headers
    return (await stream.readuntil(PART_END))[: -len(PART_END)]


async def test_the_live_view_draws_detections_and_zones_on_the_newest_frames(
    bus: Bus, console_query: RunningQuery
) -> None:
    await console_query.cameras.CreateCamera(
        CS.CreateCameraRequest(camera=camera_with_zone("lobby")), metadata=ADMIN
    )
    box = (0.55, 0.2, 0.9, 0.8)
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/live/nope/stream") as response:
            assert (
                response.status == 404
                and "NOT_FOUND: camera &#39;nope&#39; not found" in await response.text()
            )
        async with client.get("/live/lobby/stream", timeout=aiohttp.ClientTimeout(total=60)) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert console_query.service.console is not None
            feeds = console_query.service.console.console.feeds
            await wait_for(lambda: feeds.viewers("lobby") == 1, 10, "the viewer's feed")
            await publish_person(bus, "lobby", box)
            drawn = None
            for seq in range(20):  # until a frame drawn after the result arrived
                await publish_frame(bus, "lobby", sample_jpeg(seq), seq)
                image, source = decoded(await next_part(stream.content)), decoded(sample_jpeg(seq))
                assert image.shape == (144, 176, 3)
                if drawn_at(image, source, box[0], box[1], box[3]):
                    drawn = (image, source)
                    break
            assert drawn is not None, "no frame showed the person's box"
            assert drawn_at(*drawn, 0.05, 0.05, 0.95) and drawn_at(*drawn, 0.45, 0.05, 0.95)  # the zone
            assert not drawn_at(*drawn, 0.5, 0.2, 0.8)  # nothing drawn there: the check can fail
        await wait_for(lambda: feeds.viewers("lobby") == 0, 10, "the feed closed after its viewer left")


def drawn_at(image: np.ndarray, source: np.ndarray, x: float, y1: float, y2: float) -> bool:
    """Whether a vertical edge was drawn at ``x`` (normalised) between y1 and y2: there the picture
    differs from the source frame, far more than JPEG's own noise (a 1-pixel line at 176x144,
    which the encoding smears over its neighbours, so the three columns around it are compared)."""
    height, width = image.shape[:2]
    column = round(x * (width - 1))
    rows = slice(round(y1 * height) + 4, round(y2 * height) - 4)
    diff = np.abs(image[rows, column - 1 : column + 2].astype(int) - source[rows, column - 1 : column + 2])
    return float(diff.sum(axis=2).max(axis=1).mean()) > 60


async def test_an_unknown_face_is_enrolled_from_its_event(bus: Bus, console_query: RunningQuery) -> None:
    snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
    await snapshots.put("snap-stranger", sample_jpeg(70))
    stranger = make_event(
        1, id="ev-stranger", type=event_pb2.EVENT_TYPE_UNKNOWN_FACE, snapshot_id="snap-stranger"
    )
    await bus.publish_event(stranger)
    await bus.publish_event(make_event(2, id="ev-zone", snapshot_id="snap-stranger"))
    await wait_for(lambda: console_query.indexed() == 2, 10, "2 events indexed")
    async with await logged_in(console_query, READ_TOKEN) as reader:
        async with reader.get("/events/ev-stranger") as response:
            assert 'id="enroll-from-event"' not in await response.text()  # read scope: no form
    async with face_endpoint(bus) as received, await logged_in(console_query, ADMIN_TOKEN) as admin:
        async with admin.get("/events/ev-zone") as response:
            assert 'id="enroll-from-event"' not in await response.text()  # not an unknown face
        csrf = await csrf_of(admin, "/events/ev-stranger")
        form = {"csrf": csrf, "identity_id": "visitor", "display_name": "Visitor"}
        async with admin.post("/events/ev-stranger/enroll", data=form) as response:
            text = await response.text()
        assert response.status == 200 and 'id="identity-visitor"' in text  # back on the Faces page
    assert received[-1].image == sample_jpeg(70) and received[-1].labels["source_event"] == "ev-stranger"


async def test_an_event_s_page_shows_its_explanation_when_it_has_one(
    bus: Bus, console_query: RunningQuery
) -> None:
    snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
    await snapshots.put("snap-face", sample_jpeg(10))
    await snapshots.put("snap-face-explain", sample_jpeg(20))
    explained = make_event(
        1,
        id="ev-explained",
        snapshot_id="snap-face",
        explain_snapshot_id="snap-face-explain",
        analyzer="centerface",
    )
    await bus.publish_event(explained)
    await bus.publish_event(make_event(2, id="ev-plain", snapshot_id="snap-face"))
    await wait_for(lambda: console_query.indexed() == 2, 10, "2 events indexed")
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/events/ev-explained") as response:
            page = await response.text()
        assert '<img src="/snapshots/snap-face-explain"' in page and "where centerface looked" in page
        async with client.get("/snapshots/snap-face-explain") as response:
            assert response.status == 200 and await response.read() == sample_jpeg(20)
        async with client.get("/events/ev-plain") as response:
            assert 'id="explanation"' not in await response.text()


async def test_a_camera_s_thumbnail_is_its_newest_frame(bus: Bus, console_query: RunningQuery) -> None:
    await console_query.cameras.CreateCamera(
        CS.CreateCameraRequest(camera=camera_with_zone("lobby")), metadata=ADMIN
    )
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/cameras/lobby/thumbnail") as response:
            assert response.status == 404 and "has no recent frame" in await response.text()
        async with client.get("/cameras/nope/thumbnail") as response:
            assert response.status == 404 and "NOT_FOUND: camera" in await response.text()
        await publish_frame(bus, "lobby", sample_jpeg(5), 1)
        await publish_frame(bus, "lobby", sample_jpeg(90), 2)
        async with client.get("/cameras/lobby/thumbnail") as response:
            image = decoded(await response.read())
        assert image.shape == (131, 160, 3)  # 176x144, 160 wide
        newest = cv2.resize(decoded(sample_jpeg(90)), (160, 131), interpolation=cv2.INTER_AREA)
        oldest = cv2.resize(decoded(sample_jpeg(5)), (160, 131), interpolation=cv2.INTER_AREA)
        assert np.abs(image.astype(int) - newest).mean() < np.abs(image.astype(int) - oldest).mean()
        async with client.get("/cameras") as response:
            assert 'src="/cameras/lobby/thumbnail"' in await response.text()


async def test_an_event_links_to_its_position_in_the_recording(bus: Bus, console_query: RunningQuery) -> None:
    """A file camera's event plays the recording from its media time (a media fragment); the
    file is served with ranges, to any scope that may read the camera; a stream is named."""
    video = sample_video("carphone_pristine.mp4")
    for camera in (
        camera_pb2.Camera(id="recorded", source_uri=str(video)),
        camera_pb2.Camera(id="street", source_uri=f"rtsp://admin:{ADMIN_TOKEN}@127.0.0.1:1/s"),
    ):
        await console_query.cameras.CreateCamera(CS.CreateCameraRequest(camera=camera), metadata=ADMIN)
    for n, camera_id in ((1, "recorded"), (2, "street")):
        event = make_event(n, id=f"ev-{camera_id}", camera_id=camera_id)
        event.start_media_time.FromNanoseconds(2_500_000_000)
        event.end_media_time.FromNanoseconds(3_000_000_000)
        await bus.publish_event(event)
    await bus.publish_event(make_event(3, id="ev-live", camera_id="street"))
    await wait_for(lambda: console_query.indexed() == 3, 10, "3 events indexed")
    async with await logged_in(console_query, READ_TOKEN) as client:
        async with client.get("/events/ev-recorded") as response:
            page = await response.text()
        assert 'href="/cameras/recorded/recording#t=2.500,3.000"' in page
        assert '<video controls preload="metadata" id="recording"' in page
        async with client.get("/cameras/recorded/recording", headers={"Range": "bytes=100-199"}) as response:
            assert response.status == 206
            assert await response.read() == video.read_bytes()[100:200]
        async with client.get("/events/ev-street") as response:
            page = await response.text()
        assert "rtsp://admin:***@127.0.0.1:1/s at 2.500 s" in page and ADMIN_TOKEN not in page
        assert 'id="recording"' not in page
        async with client.get("/cameras/street/recording") as response:
            assert response.status == 404
            assert "camera &#39;street&#39; has no recording this service can read" in await response.text()
        async with client.get("/events/ev-live") as response:
            assert 'id="source-position"' not in await response.text()
