"""The pages: each handler asks the gRPC API as the session's user and renders a template.

Writes are POST forms carrying the CSRF token (checked in :mod:`.app`); admin forms are
left out of pages for a read token, and the gRPC server refuses them if forged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlencode, urlsplit

import grpc
import nats.js.errors
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from pydantic import ValidationError

from camsight.bus import subjects
from camsight.cameras import CameraConfig
from camsight.query.console.api import Api, ConsoleError, from_rpc
from camsight.query.console.app import SECURITY_HEADERS, console_of, session_of
from camsight.query.console.charts import events_timeline, hourly_chart
from camsight.query.console.live import thumbnail
from camsight.query.console.render import fragment, page
from camsight.query.console.session import clear_cookie, set_cookie
from camsight.query.faces_api import MAX_IMAGE_BYTES
from camsight.query.snapshots import image_info
from camsight.v1 import (
    camera_pb2,
    event_service_pb2,
    face_gallery_service_pb2,
    frame_pb2,
)
from camsight.v1 import camera_service_pb2 as CS

routes = web.RouteTableDef()
BOUNDARY = "camsight-frame"
EVENTS_PAGE = 50
IMAGE_TYPES = ("image/jpeg", "image/png")


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    if console.sessions.anonymous:
        raise web.HTTPSeeOther("/events")
    return page("login.html", None, message="")


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Check the pasted token against the token table; a cross-site login is refused."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        return page("login.html", None, status=403, message="a login from another site: refused")
    form = await request.post()
    session = console_of(request).sessions.from_secret(str(form.get("token", "")))
    if session is None:
        return page("login.html", None, status=401, message="unknown token")
    response = web.HTTPSeeOther("/events")
    set_cookie(response, request, session)
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    clear_cookie(response)
    return response


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/events")


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    """One page of events; the filter is the API's (AIP-160), its error shown as the API says it."""
    session = session_of(request)
    text = request.query.get("filter", "")
    listed = event_service_pb2.ListEventsResponse()
    error, status = "", 200
    try:
        listed = await ask(
            request,
            lambda api: api.events.ListEvents,
            event_service_pb2.ListEventsRequest(
                filter=text, page_size=EVENTS_PAGE, page_token=request.query.get("page", "")
            ),
        )
    except ConsoleError as exc:
        if exc.status >= 500:
            raise
        error, status = exc.message, exc.status
    live = {"filter": text}
    if listed.events and not request.query.get("page"):
        live["since"] = str(listed.events[0].start_time.ToNanoseconds())
    more = "/events?" + urlencode({"filter": text, "page": listed.next_page_token})
    return page(
        "events.html",
        session,
        status=status,
        filter=text,
        error=error,
        events=listed.events,
        timeline=events_timeline(listed.events),
        live="" if error else "/events/live?" + urlencode(live),
        more=more if listed.next_page_token else "",
    )


@routes.get("/events/live")
async def events_live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each new or changed event as the HTML of its row (docs/decisions/0056)."""
    console, session = console_of(request), session_of(request)
    since = request.query.get("since", "")
    if since and not since.isdigit():
        raise ConsoleError(400, f"since: expected nanoseconds since the epoch, got {since!r}")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    response.headers.update(SECURITY_HEADERS)
    await response.prepare(request)
    call = console.api.tail(session, request.query.get("filter", ""), int(since) if since else None)
    # The console stopping ends the tail; a browser leaving cancels this handler (and the call).
    stopper = asyncio.create_task(_cancel_when(console.closing, call))
    try:
        async for item in call:
            await response.write(f"data: {fragment('event_row.html', event=item.event)}\n\n".encode())
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            await response.write(f"event: failed\ndata: {from_rpc(exc).message}\n\n".encode())
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        call.cancel()
        stopper.cancel()
    return response


async def _cancel_when(event: asyncio.Event, call: grpc.aio.Call) -> None:
    await event.wait()
    call.cancel()


@routes.get("/events/{id}")
async def event(request: web.Request) -> web.StreamResponse:
    message = event_service_pb2.GetEventRequest(id=request.match_info["id"])
    found = await ask(request, lambda api: api.events.GetEvent, message)
    source, playable = "", False
    if found.HasField("start_media_time"):
        try:
            camera = await ask(
                request, lambda api: api.cameras.GetCamera, CS.GetCameraRequest(id=found.camera_id)
            )
        except ConsoleError:  # the camera was removed since: the event still shows
            pass
        else:
            source, playable = camera.source_uri, recording_file(camera.source_uri) is not None
    return page("event.html", session_of(request), event=found, source=source, playable=playable)


def recording_file(source: str) -> Path | None:
    """The file a camera's source is, when this service can read it (a recording on a shared
    volume, or ``camsight run``/``console`` on one machine); None for streams, devices, webcams
    and files elsewhere."""
    if source.startswith("file://"):
        source = unquote(urlsplit(source).path)
    elif "://" in source or source.isdigit() or source.startswith("/dev/"):
        return None
    path = Path(source)
    return path if path.is_absolute() and path.is_file() else None


@routes.get("/cameras/{camera}/recording")
async def recording(request: web.Request) -> web.StreamResponse:
    """The camera's recording, which the event page plays from the event's media time (a
    media fragment, ``#t=start,end``). Range requests are answered, so the browser seeks
    without fetching the whole file. Only a registered camera's own source is served."""
    camera = await _camera(request)
    path = recording_file(camera.source_uri)
    if path is None:
        raise ConsoleError(404, f"camera {camera.id!r} has no recording this service can read")
    return web.FileResponse(path, headers={"Cache-Control": "private"})


@routes.get("/snapshots/{id}")
async def snapshot(request: web.Request) -> web.StreamResponse:
    message = event_service_pb2.GetSnapshotRequest(id=request.match_info["id"])
    shot = await ask(request, lambda api: api.events.GetSnapshot, message)
    return web.Response(body=shot.data, content_type=shot.content_type, headers={"Cache-Control": "private"})


@routes.get("/cameras")
async def cameras(request: web.Request) -> web.StreamResponse:
    console, session = console_of(request), session_of(request)
    api = console.api
    listed = await api.all_pages(session, api.cameras.ListCameras, CS.ListCamerasRequest(), "cameras")
    statuses = await api.all_pages(
        session, api.cameras.ListCameraStatuses, CS.ListCameraStatusesRequest(), "statuses"
    )
    by_camera = {status.camera_id: status for status in statuses}
    rows = [(camera, by_camera.get(camera.id)) for camera in listed]
    return page("cameras.html", session, rows=rows)


@routes.get("/cameras/{camera}/thumbnail")
async def camera_thumbnail(request: web.Request) -> web.StreamResponse:
    """The camera's newest frame on the bus (FRAMES keeps the last seconds), small."""
    camera = await _camera(request)
    data = await console_of(request).bus.direct_get(
        subjects.FRAMES_STREAM, last_on=subjects.frames(camera.id)
    )
    small = await asyncio.to_thread(thumbnail, frame_pb2.Frame.FromString(data)) if data else None
    if small is None:
        raise ConsoleError(404, f"camera {camera.id!r} has no recent frame")
    return web.Response(body=small, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


# What the add and edit forms set; the rest of a camera (zones, lines, rules, ...) is the
# API's and the CLI's: an edit leaves it as stored (update_mask).
CAMERA_FORM_FIELDS = ("display_name", "source_uri", "target_fps", "enabled")


def _camera_form(form: Mapping[str, object], camera_id: str, enabled: bool) -> camera_pb2.Camera:
    """The camera a posted add or edit form describes; the API validates the rest."""
    try:
        fps = float(str(form.get("target_fps") or 0))
    except ValueError:
        raise ConsoleError(400, "target_fps: not a number") from None
    return camera_pb2.Camera(
        id=camera_id,
        display_name=str(form.get("display_name", "")),
        source_uri=str(form.get("source_uri", "")),
        enabled=enabled,
        target_fps=fps,
    )


@routes.post("/cameras")
async def add_camera(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    camera = _camera_form(form, str(form.get("id", "")), enabled=True)
    await write(
        request, "/cameras", lambda api: api.cameras.CreateCamera, CS.CreateCameraRequest(camera=camera)
    )


@routes.get("/cameras/{camera}/edit")
async def edit_camera_form(request: web.Request) -> web.StreamResponse:
    """The edit form, for the admin scope only: a read token has no use for it."""
    session = session_of(request)
    if not session.admin:
        raise ConsoleError(403, "editing a camera needs the admin scope")
    return page("camera_edit.html", session, camera=await _camera(request))


@routes.post("/cameras/{camera}/edit")
async def edit_camera(request: web.Request) -> web.StreamResponse:
    """UpdateCamera of the form's fields only. The source is shown redacted: posted back
    unchanged, the API keeps the stored one (with its credentials)."""
    form = await request.post()
    camera = _camera_form(form, request.match_info["camera"], enabled=form.get("enabled") == "on")
    message = CS.UpdateCameraRequest(camera=camera)
    message.update_mask.paths.extend(CAMERA_FORM_FIELDS)
    await write(request, "/cameras", lambda api: api.cameras.UpdateCamera, message)


@routes.post("/cameras/{camera}/restart")
async def restart_camera(request: web.Request) -> web.StreamResponse:
    """The camera written back unchanged, as ``camsight cameras restart`` does: a new revision
    restarts it (a stream reconnects, a file plays again from its start)."""
    camera = await _camera(request)
    await write(
        request, "/cameras", lambda api: api.cameras.UpdateCamera, CS.UpdateCameraRequest(camera=camera)
    )


@routes.post("/cameras/{id}/delete")
async def delete_camera(request: web.Request) -> web.StreamResponse:
    message = CS.DeleteCameraRequest(id=request.match_info["id"])
    await write(request, "/cameras", lambda api: api.cameras.DeleteCamera, message)


@routes.get("/faces")
async def faces(request: web.Request) -> web.StreamResponse:
    console, session = console_of(request), session_of(request)
    api = console.api
    identities = await api.all_pages(
        session, api.faces.ListIdentities, face_gallery_service_pb2.ListIdentitiesRequest(), "identities"
    )
    return page("faces.html", session, identities=identities, max_mib=MAX_IMAGE_BYTES // 2**20)


@routes.post("/faces")
async def enroll(request: web.Request) -> web.StreamResponse:
    """Enroll an uploaded photo; what is not a JPEG or PNG is refused before the face service sees it."""
    form = await request.post()
    photo = form.get("photo")
    data = photo.file.read() if isinstance(photo, web.FileField) else b""
    if not data:
        raise ConsoleError(400, "photo: choose a JPEG or PNG file")
    if len(data) > MAX_IMAGE_BYTES:
        raise ConsoleError(413, f"photo: larger than {MAX_IMAGE_BYTES // 2**20} MiB: refused")
    if image_info(data)[0] not in IMAGE_TYPES:
        raise ConsoleError(400, "photo: not a JPEG or PNG image")
    request_ = face_gallery_service_pb2.EnrollFaceRequest(
        identity_id=str(form.get("identity_id", "")),
        display_name=str(form.get("display_name", "")),
        image=data,
    )
    await write(request, "/faces", lambda api: api.faces.EnrollFace, request_)


@routes.post("/events/{id}/enroll")
async def enroll_from_event(request: web.Request) -> web.StreamResponse:
    """Enroll the face of an event's snapshot (an UNKNOWN_FACE event's stranger) under a new name."""
    form = await request.post()
    message = face_gallery_service_pb2.EnrollFaceFromEventRequest(
        event_id=request.match_info["id"],
        identity_id=str(form.get("identity_id", "")),
        display_name=str(form.get("display_name", "")),
    )
    await write(request, "/faces", lambda api: api.faces.EnrollFaceFromEvent, message)


@routes.post("/faces/{id}/delete")
async def delete_identity(request: web.Request) -> web.StreamResponse:
    message = face_gallery_service_pb2.DeleteIdentityRequest(id=request.match_info["id"])
    await write(request, "/faces", lambda api: api.faces.DeleteIdentity, message)


async def write(request: web.Request, back: str, method: Callable[[Api], Any], message: Any) -> NoReturn:
    """One write RPC as the session's user, then back to the page it came from (POST/redirect/GET).

    A read-only console refuses it here: without tokens the gRPC server would not.
    """
    if session_of(request).read_only:
        raise ConsoleError(403, "this console is read-only (a finished run's folder)")
    await ask(request, method, message)
    raise web.HTTPSeeOther(back)


async def ask(request: web.Request, method: Callable[[Api], Any], message: Any) -> Any:
    """One RPC as the session's user (``method`` picks the stub's method)."""
    console = console_of(request)
    return await console.api.call(session_of(request), method(console.api), message)


@routes.get("/thumbnails/{name:.+}")
async def face_thumbnail(request: web.Request) -> web.StreamResponse:
    """A gallery thumbnail (object store ``faces``): no RPC serves them, any session may read them."""
    console = console_of(request)
    name = request.match_info["name"]
    if not 0 < len(name) <= 256:
        raise ConsoleError(404, f"thumbnail {name!r} not found")
    store = await console.bus.object_store(subjects.FACES_STORE)
    try:
        result = await store.get(name)
    except nats.js.errors.NotFoundError:
        raise ConsoleError(404, f"thumbnail {name!r} not found") from None
    data = result.data or b""
    return web.Response(body=data, content_type=image_info(data)[0], headers={"Cache-Control": "private"})


@routes.get("/live")
async def live_cameras(request: web.Request) -> web.StreamResponse:
    console, session = console_of(request), session_of(request)
    api = console.api
    listed = await api.all_pages(session, api.cameras.ListCameras, CS.ListCamerasRequest(), "cameras")
    return page("live_cameras.html", session, cameras=listed)


@routes.get("/live/{camera}")
async def live(request: web.Request) -> web.StreamResponse:
    """The camera's live picture beside its events (the events list's live rows, filtered to it)."""
    session = session_of(request)
    camera = await _camera(request)
    text = f'camera = "{camera.id}"'
    return page("live.html", session, camera=camera, live="/events/live?" + urlencode({"filter": text}))


@routes.get("/live/{camera}/stream")
async def live_stream(request: web.Request) -> web.StreamResponse:
    """MJPEG (multipart/x-mixed-replace): an <img> shows it with no script (docs/decisions/0056)."""
    console = console_of(request)
    camera = await _camera(request)
    try:
        config: CameraConfig | None = CameraConfig.from_proto(camera)
    except ValidationError:
        config = None  # drawn without zones and lines
    response = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store",
        }
    )
    response.headers.update(SECURITY_HEADERS)
    await response.prepare(request)
    # Each part is followed at once by the next part's boundary and headers: Chromium shows a
    # part only once the next one has begun (a boundary alone is not enough), so without them
    # every picture would wait for the next frame.
    part_head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
    await response.write(part_head)
    async with console.feeds.watch(camera.id, config) as feed:
        sequence = 0
        while (drawn := await feed.next(sequence)) is not None:
            jpeg, sequence = drawn
            try:
                await response.write(jpeg + b"\r\n" + part_head)
            except ConnectionResetError:
                break  # the browser went away
    return response


async def _camera(request: web.Request) -> camera_pb2.Camera:
    """The camera named in the path, read as the user (its scope, its NOT_FOUND)."""
    camera: camera_pb2.Camera = await ask(
        request, lambda api: api.cameras.GetCamera, CS.GetCameraRequest(id=request.match_info["camera"])
    )
    return camera


@routes.get("/overview")
async def overview(request: web.Request) -> web.StreamResponse:
    """Events per hour by type, over what the filter selects (everything by default)."""
    counted = await ask(
        request,
        lambda api: api.events.CountEvents,
        event_service_pb2.CountEventsRequest(
            filter=request.query.get("filter", ""),
            group_by=event_service_pb2.COUNT_GROUP_BY_TYPE,
            bucket=Duration(seconds=3600),
        ),
    )
    return page("overview.html", session_of(request), chart=hourly_chart(counted), total=counted.total)


ROUTES = list(routes)
