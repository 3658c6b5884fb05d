"""CameraService and FaceGalleryService through a real gRPC channel and real KV buckets.

Enrollment goes through a real NATS request/reply: the test itself answers on
the face service's enroll subject, standing in only for the face models.
"""

from __future__ import annotations

import grpc
import nats.js.errors
import pytest
from camsight.bus import Bus, subjects
from camsight.natsserver import EmbeddedNats
from camsight.stores.cameras import OWNER_LABEL, Registry
from camsight.v1 import (
    analysis_pb2,
    camera_pb2,
    camera_service_pb2,
    event_service_pb2,
    face_gallery_service_pb2,
    identity_pb2,
)
from google.protobuf.field_mask_pb2 import FieldMask
from helpers import wait_for
from nats.aio.msg import Msg
from query_helpers import RunningQuery, make_event

CS = camera_service_pb2
FS = face_gallery_service_pb2


def camera(
    camera_id: str = "lobby", source: str = "rtsp://admin:secret@10.0.0.5/stream"
) -> camera_pb2.Camera:
    return camera_pb2.Camera(id=camera_id, source_uri=source, enabled=True, target_fps=5)


async def stored_camera(bus: Bus, camera_id: str) -> camera_pb2.Camera:
    entry = await (await bus.kv(subjects.CAMERAS_BUCKET)).get(camera_id)
    return camera_pb2.Camera.FromString(entry.value or b"")


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


async def test_camera_crud_changes_the_registry(bus: Bus, query: RunningQuery) -> None:
    created = await query.cameras.CreateCamera(CS.CreateCameraRequest(camera=camera()))
    assert created.source_uri == "rtsp://admin:***@10.0.0.5/stream"
    assert (await stored_camera(bus, "lobby")).source_uri == "rtsp://admin:secret@10.0.0.5/stream"
    assert await code_of(query.cameras.CreateCamera(CS.CreateCameraRequest(camera=camera()))) == (
        grpc.StatusCode.ALREADY_EXISTS
    )

    # Read-modify-write with the redacted URI keeps the real one.
    fetched = await query.cameras.GetCamera(CS.GetCameraRequest(id="lobby"))
    fetched.target_fps = 10
    await query.cameras.UpdateCamera(CS.UpdateCameraRequest(camera=fetched))
    stored = await stored_camera(bus, "lobby")
    assert stored.target_fps == 10 and stored.source_uri.endswith("secret@10.0.0.5/stream")

    patch = camera_pb2.Camera(id="lobby", display_name="Front door")
    await query.cameras.UpdateCamera(
        CS.UpdateCameraRequest(camera=patch, update_mask=FieldMask(paths=["display_name"]))
    )
    stored = await stored_camera(bus, "lobby")
    assert stored.display_name == "Front door" and stored.target_fps == 10

    await query.cameras.CreateCamera(CS.CreateCameraRequest(camera=camera("yard", "/videos/yard.mp4")))
    page = await query.cameras.ListCameras(CS.ListCamerasRequest(page_size=1))
    rest = await query.cameras.ListCameras(
        CS.ListCamerasRequest(page_size=1, page_token=page.next_page_token)
    )
    assert [c.id for c in page.cameras] + [c.id for c in rest.cameras] == ["lobby", "yard"]
    assert not rest.next_page_token

    await query.cameras.DeleteCamera(CS.DeleteCameraRequest(id="lobby"))
    assert (
        await code_of(query.cameras.GetCamera(CS.GetCameraRequest(id="lobby"))) == grpc.StatusCode.NOT_FOUND
    )
    assert await code_of(query.cameras.DeleteCamera(CS.DeleteCameraRequest(id="lobby"))) == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (camera_pb2.Camera(id="a.b", source_uri="/v.mp4"), "camera.id"),
        (camera_pb2.Camera(id="cam", source_uri="/v.mp4", target_fps=500), "camera.target_fps"),
        (
            camera_pb2.Camera(
                id="cam",
                source_uri="/v.mp4",
                zones=[
                    camera_pb2.Zone(
                        id="z", polygon=[analysis_pb2.Point(x=0, y=0), analysis_pb2.Point(x=1, y=1)]
                    )
                ],
            ),
            "camera.zones.0.polygon",
        ),
    ],
)
async def test_invalid_cameras_name_the_field(
    query: RunningQuery, bad: camera_pb2.Camera, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.cameras.CreateCamera(CS.CreateCameraRequest(camera=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field), err.value.details()


async def test_camera_status_comes_from_the_status_bucket(bus: Bus, query: RunningQuery) -> None:
    kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    status = camera_pb2.CameraStatus(camera_id="lobby", state=camera_pb2.CAMERA_STATE_ONLINE, fps=4.5)
    await kv.put("lobby", status.SerializeToString())
    got = await query.cameras.GetCameraStatus(CS.GetCameraStatusRequest(camera_id="lobby"))
    assert got == status
    listed = await query.cameras.ListCameraStatuses(CS.ListCameraStatusesRequest())
    assert list(listed.statuses) == [status]
    assert await code_of(query.cameras.GetCameraStatus(CS.GetCameraStatusRequest(camera_id="nope"))) == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_enroll_goes_through_the_face_service_endpoint(bus: Bus, query: RunningQuery) -> None:
    assert (
        await code_of(query.faces.EnrollFace(FS.EnrollFaceRequest(identity_id="bob", image=b"jpeg")))
        == grpc.StatusCode.UNAVAILABLE
    )  # nobody answers yet

    requests: list[identity_pb2.EnrollRequest] = []

    async def face_service(msg: Msg) -> None:
        request = identity_pb2.EnrollRequest.FromString(msg.data)
        requests.append(request)
        if request.image == b"no face":
            reply = identity_pb2.EnrollReply(
                error="no face found in the image", error_code="INVALID_ARGUMENT"
            )
        else:
            identity = identity_pb2.Identity(
                id=request.identity_id, display_name=request.display_name, face_count=1
            )
            reply = identity_pb2.EnrollReply(identity=identity)
        await msg.respond(reply.SerializeToString())

    sub = await bus.nc.subscribe(subjects.FACE_ENROLL_SUBJECT, cb=face_service)
    await bus.nc.flush()
    try:
        identity = await query.faces.EnrollFace(
            FS.EnrollFaceRequest(identity_id="bob", display_name="Bob", image=b"x")
        )
        assert (identity.id, identity.display_name, identity.face_count) == ("bob", "Bob", 1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await query.faces.EnrollFace(FS.EnrollFaceRequest(identity_id="bob", image=b"no face"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no face" in (err.value.details() or "")

        # From an event's snapshot: the snapshot's bytes are what gets enrolled.
        snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
        await snapshots.put("snap-7", b"face bytes")
        await bus.publish_event(make_event(7, type=8, snapshot_id="snap-7"))
        await wait_for(lambda: query.indexed() == 1, 10, "the event indexed")
        identity = await query.faces.EnrollFaceFromEvent(
            FS.EnrollFaceFromEventRequest(event_id="ev-00007", identity_id="carol", display_name="Carol")
        )
        assert identity.id == "carol"
        assert requests[-1].image == b"face bytes" and requests[-1].labels["source_event"] == "ev-00007"
        assert (
            await code_of(
                query.faces.EnrollFaceFromEvent(
                    FS.EnrollFaceFromEventRequest(event_id="nope", identity_id="x")
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )
    finally:
        await sub.unsubscribe()


async def test_identities_are_listed_and_deleted_with_their_thumbnails(bus: Bus, query: RunningQuery) -> None:
    gallery = await bus.kv(subjects.GALLERY_BUCKET)
    faces = await bus.object_store(subjects.FACES_STORE)
    for n, name in enumerate(("alice", "bob")):
        await faces.put(f"thumb-{name}", b"jpeg")
        record = identity_pb2.IdentityRecord(
            identity=identity_pb2.Identity(
                id=name, display_name=name.title(), thumbnail_ids=[f"thumb-{name}"]
            ),
            samples=[identity_pb2.FaceSample(id=f"s{n}", embedding=[0.1, 0.2], thumbnail_id=f"thumb-{name}")],
        )
        await gallery.put(name, record.SerializeToString())
    listed = await query.faces.ListIdentities(FS.ListIdentitiesRequest())
    assert [i.id for i in listed.identities] == ["alice", "bob"]
    assert (await query.faces.GetIdentity(FS.GetIdentityRequest(id="bob"))).display_name == "Bob"
    await query.faces.DeleteIdentity(FS.DeleteIdentityRequest(id="alice"))
    assert [i.id for i in (await query.faces.ListIdentities(FS.ListIdentitiesRequest())).identities] == [
        "bob"
    ]
    with pytest.raises(nats.js.errors.NotFoundError):
        await faces.get("thumb-alice")
    assert (
        await code_of(query.faces.GetIdentity(FS.GetIdentityRequest(id="alice"))) == grpc.StatusCode.NOT_FOUND
    )


async def test_enroll_honours_the_callers_deadline(bus: Bus, query: RunningQuery) -> None:
    """A face service that never answers: the call ends at the client's deadline, not 30 s later."""

    async def silent(msg: Msg) -> None:
        return None

    sub = await bus.nc.subscribe(subjects.FACE_ENROLL_SUBJECT, cb=silent)
    await bus.nc.flush()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await query.faces.EnrollFace(FS.EnrollFaceRequest(identity_id="bob", image=b"x"), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await sub.unsubscribe()


async def test_writes_are_unavailable_while_nats_is_down_and_reads_go_on(
    bus: Bus, query: RunningQuery, nats_server: EmbeddedNats
) -> None:
    await bus.publish_event(make_event(1))
    await wait_for(lambda: query.indexed() == 1, 10, "the event indexed")
    url = nats_server.url
    nats_server.stop()
    await wait_for(lambda: not query.service.ctx.bus.connected, 10, "the service to see NATS gone")
    create = CS.CreateCameraRequest(camera=camera())
    assert await code_of(query.cameras.CreateCamera(create, timeout=5)) == grpc.StatusCode.UNAVAILABLE
    listed = await query.events.ListEvents(event_service_pb2.ListEventsRequest(), timeout=5)
    assert [e.id for e in listed.events] == ["ev-00001"]
    # NATS back on the same port: writes work again without restarting the service.
    nats_server.port = int(url.rsplit(":", 1)[1])
    nats_server.start()
    await wait_for(lambda: query.service.ctx.bus.connected and bus.connected, 20, "both clients reconnected")
    await query.cameras.CreateCamera(create, timeout=5)


async def test_cameras_of_a_camera_resource_are_refused_with_a_clear_error(
    bus: Bus, query: RunningQuery
) -> None:
    """The controller owns the entries of Camera resources: the API neither changes nor
    deletes them (the controller would put them back), nor claims its label."""
    owned = camera("dock")
    owned.labels[OWNER_LABEL] = "cams/dock"
    assert await Registry(bus).put(owned, owner="cams/dock")
    patch = camera_pb2.Camera(id="dock", display_name="Dock")
    for call in (
        query.cameras.UpdateCamera(
            CS.UpdateCameraRequest(camera=patch, update_mask=FieldMask(paths=["display_name"]))
        ),
        query.cameras.UpdateCamera(CS.UpdateCameraRequest(camera=camera("dock"))),
        query.cameras.DeleteCamera(CS.DeleteCameraRequest(id="dock")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Camera resource cams/dock" in (err.value.details() or "")
    assert await stored_camera(bus, "dock") == owned
    sneaky = camera("sneaky")
    sneaky.labels[OWNER_LABEL] = "cams/dock"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.cameras.CreateCamera(CS.CreateCameraRequest(camera=sneaky))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "camera.labels" in (err.value.details() or "")
