"""FaceGalleryService: enrollment through the face service, the gallery in KV ``gallery``.

Enrollment needs the face models, which only the face service loads: the
query service forwards the image as a NATS request on
``camsight.face.enroll`` and maps the reply's error code to a gRPC status.
Reads and deletions go through the gallery store
(:mod:`camsight.stores.gallery`), which removes a record and its thumbnails
together.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import nats.js.errors
from google.protobuf import empty_pb2

from camsight.bus import Bus, subjects
from camsight.bus import rpc as bus_rpc
from camsight.naming import shown
from camsight.query import rpc
from camsight.query.errors import ApiError, invalid, not_found
from camsight.query.index import EventIndex
from camsight.query.queries import opaque_id
from camsight.query.registry import check_id, list_page
from camsight.stores.gallery import GalleryConflictError, GalleryStore, IdentityNotFoundError
from camsight.v1 import face_gallery_service_pb2, face_gallery_service_pb2_grpc, identity_pb2

log = logging.getLogger(__name__)

ENROLL_TIMEOUT_S = 30.0
MAX_IMAGE_BYTES = 8 * 1024 * 1024


class FaceGalleryServicer(face_gallery_service_pb2_grpc.FaceGalleryServiceServicer):
    def __init__(self, bus: Bus, index: EventIndex) -> None:
        self.bus = bus
        self.index = index
        self.gallery = GalleryStore(bus)

    async def _enroll(
        self, request: identity_pb2.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Identity:
        if not request.image:
            raise invalid("image", "must hold a JPEG or PNG image")
        if len(request.image) > MAX_IMAGE_BYTES:
            raise invalid("image", f"larger than {MAX_IMAGE_BYTES} bytes")
        rpc.ensure_connected(self.bus)
        try:
            data = await bus_rpc.request(
                self.bus,
                subjects.FACE_ENROLL_SUBJECT,
                request.SerializeToString(),
                timeout=rpc.timeout(context, ENROLL_TIMEOUT_S),
            )
        except bus_rpc.NoResponderError:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "no face service runs to enroll faces") from None
        except TimeoutError:
            raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, "the face service did not answer") from None
        reply = identity_pb2.EnrollReply()
        reply.ParseFromString(data)
        if reply.error:
            code = grpc.StatusCode.__members__.get(reply.error_code or "INTERNAL", grpc.StatusCode.INTERNAL)
            if code is grpc.StatusCode.OK:
                code = grpc.StatusCode.INTERNAL
            raise ApiError(code, reply.error)
        return reply.identity

    @rpc.unary
    async def EnrollFace(
        self, request: face_gallery_service_pb2.EnrollFaceRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Identity:
        check_id(request.identity_id, "identity_id")
        enroll = identity_pb2.EnrollRequest(
            identity_id=request.identity_id, display_name=request.display_name, image=request.image
        )
        return await self._enroll(enroll, context)

    @rpc.unary
    async def EnrollFaceFromEvent(
        self, request: face_gallery_service_pb2.EnrollFaceFromEventRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Identity:
        check_id(request.identity_id, "identity_id")
        event_id = opaque_id(request.event_id, "event_id")
        event = await asyncio.to_thread(self.index.get, event_id, rpc.deadline(context))
        if event is None:
            raise not_found(f"event {shown(event_id)}")
        if not event.snapshot_id:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"event {event.id!r} has no snapshot")
        rpc.ensure_connected(self.bus)
        store = await self.bus.object_store(subjects.SNAPSHOTS_STORE)
        try:
            snapshot = await store.get(event.snapshot_id)
        except nats.js.errors.NotFoundError:
            raise not_found(f"snapshot {event.snapshot_id!r} of event {event.id!r}") from None
        enroll = identity_pb2.EnrollRequest(
            identity_id=request.identity_id,
            display_name=request.display_name,
            image=snapshot.data or b"",
            labels={"source_event": event.id},
        )
        return await self._enroll(enroll, context)

    @rpc.unary
    async def GetIdentity(
        self, request: face_gallery_service_pb2.GetIdentityRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Identity:
        rpc.ensure_connected(self.bus)
        identity_id = check_id(request.id, "id")
        try:
            record, _ = await self.gallery.get(identity_id)
        except IdentityNotFoundError:
            raise not_found(f"identity {identity_id!r}") from None
        return record.identity

    @rpc.unary
    async def ListIdentities(
        self, request: face_gallery_service_pb2.ListIdentitiesRequest, context: grpc.aio.ServicerContext
    ) -> face_gallery_service_pb2.ListIdentitiesResponse:
        records, token = await list_page(
            self.bus, subjects.GALLERY_BUCKET, identity_pb2.IdentityRecord, request, "identity"
        )
        return face_gallery_service_pb2.ListIdentitiesResponse(
            identities=[r.identity for r in records], next_page_token=token
        )

    @rpc.unary
    async def DeleteIdentity(
        self, request: face_gallery_service_pb2.DeleteIdentityRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        rpc.ensure_connected(self.bus)
        identity_id = check_id(request.id, "id")
        try:
            await self.gallery.delete(identity_id)
        except IdentityNotFoundError:
            raise not_found(f"identity {identity_id!r}") from None
        except GalleryConflictError as exc:
            raise ApiError(grpc.StatusCode.ABORTED, str(exc)) from None
        return empty_pb2.Empty()
