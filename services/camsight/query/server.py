"""The grpc.aio server: the three camsight services, health, reflection, TLS, auth."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from camsight.bus import Bus
from camsight.config import ConfigError
from camsight.query.auth import TokenAuth
from camsight.query.cameras_api import CameraServicer
from camsight.query.events_api import EventServicer
from camsight.query.faces_api import FaceGalleryServicer
from camsight.query.index import EventIndex
from camsight.query.ingest import LiveHub
from camsight.query.settings import QuerySettings
from camsight.v1 import (
    camera_service_pb2,
    camera_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    face_gallery_service_pb2,
    face_gallery_service_pb2_grpc,
)

SERVICES = (
    event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    camera_service_pb2.DESCRIPTOR.services_by_name["CameraService"].full_name,
    face_gallery_service_pb2.DESCRIPTOR.services_by_name["FaceGalleryService"].full_name,
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# grpcio-reflection ships the v1alpha service only; v1 has the same messages (field for
# field) under another package name, so the one servicer answers both.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class HealthServicer(health.aio.HealthServicer):
    """grpcio-health-checking's servicer with List, which its 1.85 answers UNIMPLEMENTED.

    List reads the table Check and Watch read (the base class keeps it for its
    subclasses in ``_server_status``), so the three never disagree.
    """

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        )


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    health: HealthServicer
    port: int

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICES):
            await self.health.set(name, status)


def build_server(cfg: QuerySettings, index: EventIndex, hub: LiveHub, bus: Bus) -> GrpcServer:
    """Create and bind the server (not started); raises ConfigError when it cannot bind."""
    server = grpc.aio.server(
        # Always installed: with no tokens it still refuses methods missing from its table.
        interceptors=[TokenAuth(cfg.tokens)],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
        ],
    )
    event_service_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(index, hub, bus), server)
    camera_service_pb2_grpc.add_CameraServiceServicer_to_server(CameraServicer(bus), server)
    face_gallery_service_pb2_grpc.add_FaceGalleryServiceServicer_to_server(
        FaceGalleryServicer(bus, index), server
    )
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_reflection(server, (*SERVICES, health.SERVICE_NAME))
    address = f"{cfg.host}:{cfg.port}"
    try:
        if cfg.tls_cert_file and cfg.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(cfg.tls_key_file.read_bytes(), cfg.tls_cert_file.read_bytes())]
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except (OSError, RuntimeError) as exc:
        if cfg.port and _in_use(cfg.host, cfg.port):
            raise ConfigError(
                f"services.query.port: port {cfg.port} is already in use (another query service?); "
                "set services.query.port"
            ) from None
        raise ConfigError(f"services.query: cannot serve gRPC on {address}: {exc}") from None
    if port == 0:
        raise ConfigError(f"services.query: cannot serve gRPC on {address}")
    return GrpcServer(server, health_servicer, port)


def add_reflection(server: grpc.aio.Server, names: tuple[str, ...]) -> None:
    """Serve reflection as v1alpha and v1: clients that speak only v1 (newer grpcurl, grpcui,
    Postman) would otherwise get UNIMPLEMENTED. Both are listed, and both described."""
    register_reflection_v1()
    servicer = reflection.aio.ReflectionServicer((*names, reflection.SERVICE_NAME, REFLECTION_V1))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1}),)
    )


def register_reflection_v1() -> None:
    """Put grpc/reflection/v1/reflection.proto in the default descriptor pool, which the
    reflection servicer describes services from: without it, a client that lists the
    services and then describes each (``grpcurl describe``) fails on the v1 name.

    The file is v1alpha's renamed, as the two are field for field the same, and v1 is
    not deprecated. Adding an identical file again (one per server built) changes nothing.
    """
    v1alpha = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(v1alpha)
    v1 = text_format.Parse(
        text_format.MessageToString(v1alpha).replace("v1alpha", "v1"), descriptor_pb2.FileDescriptorProto()
    )
    v1.name = "grpc/reflection/v1/reflection.proto"
    v1.options.ClearField("deprecated")
    descriptor_pool.Default().AddSerializedFile(v1.SerializeToString())


def _in_use(host: str, port: int) -> bool:
    """Whether ``port`` is taken: gRPC's bind error does not say why it failed."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
