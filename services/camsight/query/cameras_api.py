"""CameraService: the camera registry (KV ``cameras``) and live status (KV ``camera_status``).

Cameras are validated by :class:`camsight.cameras.CameraConfig`, the same
model that validates YAML configs, and stored normalised. Answers never
carry credentials: source URIs are redacted. An update that sends back the
redacted URI keeps the stored one, so a read-modify-write round trip works.
Writes go through the registry store (:mod:`camsight.stores.cameras`): an
update lost to a concurrent writer is re-applied to what is stored, and a
camera a Kubernetes Camera resource owns is refused (FAILED_PRECONDITION):
the controller would put the resource's version back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import nats.js.errors
from google.protobuf import empty_pb2
from pydantic import ValidationError

from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig
from camsight.naming import redact_uri, shown
from camsight.query import rpc
from camsight.query.errors import ApiError, invalid, not_found
from camsight.query.registry import check_id, get_entry, list_page
from camsight.stores.cameras import (
    CameraExistsError,
    CameraNotFoundError,
    CameraOwnedError,
    Registry,
    ReservedLabelError,
)
from camsight.stores.revisioned import ConflictError
from camsight.v1 import camera_pb2, camera_service_pb2, camera_service_pb2_grpc

# Wire field names for the model's field names, so errors name what the client sent.
WIRE_NAMES = {"source": "source_uri", "fps": "target_fps"}


def validated(camera: camera_pb2.Camera) -> camera_pb2.Camera:
    """The normalised camera; INVALID_ARGUMENT naming the first bad field."""
    try:
        return CameraConfig.from_proto(camera).to_proto()
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [WIRE_NAMES.get(str(part), str(part)) for part in error["loc"]]
        field = ".".join(["camera", *loc])
        raise invalid(field, error["msg"]) from None


def redacted(camera: camera_pb2.Camera) -> camera_pb2.Camera:
    out = camera_pb2.Camera()
    out.CopyFrom(camera)
    out.source_uri = redact_uri(camera.source_uri)
    return out


@asynccontextmanager
async def registry_errors(camera_id: str) -> AsyncIterator[None]:
    """The registry store's refusals as gRPC statuses."""
    try:
        yield
    except CameraNotFoundError:
        raise not_found(f"camera {camera_id!r}") from None
    except CameraExistsError as exc:
        raise ApiError(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
    except CameraOwnedError as exc:
        raise ApiError(
            grpc.StatusCode.FAILED_PRECONDITION, f"{exc}: change or delete the resource instead"
        ) from None
    except ReservedLabelError as exc:
        raise invalid("camera.labels", str(exc)) from None
    except ConflictError as exc:
        raise ApiError(grpc.StatusCode.ABORTED, str(exc)) from None


class CameraServicer(camera_service_pb2_grpc.CameraServiceServicer):
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.registry = Registry(bus)

    @rpc.unary
    async def CreateCamera(
        self, request: camera_service_pb2.CreateCameraRequest, context: grpc.aio.ServicerContext
    ) -> camera_pb2.Camera:
        camera = validated(request.camera)
        rpc.ensure_connected(self.bus)
        async with registry_errors(camera.id):
            await self.registry.create(camera)
        return redacted(camera)

    @rpc.unary
    async def GetCamera(
        self, request: camera_service_pb2.GetCameraRequest, context: grpc.aio.ServicerContext
    ) -> camera_pb2.Camera:
        camera_id = check_id(request.id, "id")
        rpc.ensure_connected(self.bus)
        async with registry_errors(camera_id):
            camera, _ = await self.registry.get(camera_id)
        return redacted(camera)

    @rpc.unary
    async def ListCameras(
        self, request: camera_service_pb2.ListCamerasRequest, context: grpc.aio.ServicerContext
    ) -> camera_service_pb2.ListCamerasResponse:
        cameras, token = await list_page(
            self.bus, subjects.CAMERAS_BUCKET, camera_pb2.Camera, request, "camera"
        )
        return camera_service_pb2.ListCamerasResponse(
            cameras=[redacted(c) for c in cameras], next_page_token=token
        )

    @rpc.unary
    async def UpdateCamera(
        self, request: camera_service_pb2.UpdateCameraRequest, context: grpc.aio.ServicerContext
    ) -> camera_pb2.Camera:
        camera_id = check_id(request.camera.id, "camera.id")
        mask = list(request.update_mask.paths)
        for path in mask:
            if path not in camera_pb2.Camera.DESCRIPTOR.fields_by_name:
                raise invalid("update_mask", f"unknown field {shown(path)}")
        if "id" in mask:
            raise invalid("update_mask", "id cannot be changed")

        def change(stored: camera_pb2.Camera) -> camera_pb2.Camera:
            updated = camera_pb2.Camera()
            updated.CopyFrom(stored)
            if mask:
                request.update_mask.MergeMessage(request.camera, updated, replace_repeated_field=True)
            else:
                updated.CopyFrom(request.camera)
            if updated.source_uri == redact_uri(stored.source_uri):
                updated.source_uri = stored.source_uri
            return validated(updated)

        rpc.ensure_connected(self.bus)
        async with registry_errors(camera_id):
            camera = await self.registry.update(camera_id, change)
        return redacted(camera)

    @rpc.unary
    async def DeleteCamera(
        self, request: camera_service_pb2.DeleteCameraRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        camera_id = check_id(request.id, "id")
        rpc.ensure_connected(self.bus)
        async with registry_errors(camera_id):
            if not await self.registry.delete(camera_id):
                raise CameraNotFoundError(camera_id)
        return empty_pb2.Empty()

    @rpc.unary
    async def GetCameraStatus(
        self, request: camera_service_pb2.GetCameraStatusRequest, context: grpc.aio.ServicerContext
    ) -> camera_pb2.CameraStatus:
        kv = await self._statuses()
        status, _ = await get_entry(
            kv, check_id(request.camera_id, "camera_id"), camera_pb2.CameraStatus, "status of camera"
        )
        return status

    @rpc.unary
    async def ListCameraStatuses(
        self, request: camera_service_pb2.ListCameraStatusesRequest, context: grpc.aio.ServicerContext
    ) -> camera_service_pb2.ListCameraStatusesResponse:
        statuses, token = await list_page(
            self.bus, subjects.CAMERA_STATUS_BUCKET, camera_pb2.CameraStatus, request, "camera status"
        )
        return camera_service_pb2.ListCameraStatusesResponse(statuses=statuses, next_page_token=token)

    async def _statuses(self) -> nats.js.kv.KeyValue:
        rpc.ensure_connected(self.bus)
        return await self.bus.kv(subjects.CAMERA_STATUS_BUCKET)
