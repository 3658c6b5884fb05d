"""Bearer-token scopes, TLS, health checking and reflection on a real gRPC server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from camsight.config import NatsSettings
from camsight.v1 import camera_pb2, camera_service_pb2, event_service_pb2, event_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from query_helpers import query_settings, running_query

READ = "read-token-0123456789"
ADMIN = "admin-token-0123456789"


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_scopes(nats_settings: NatsSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokens = [
        {"name": "viewer", "token": READ, "scope": "read"},
        {"name": "ops", "token": ADMIN, "scope": "admin"},
    ]
    async with running_query(query_settings(nats_settings, tmp_path, tokens=tokens)) as query:
        listing = event_service_pb2.ListEventsRequest()
        create = camera_service_pb2.CreateCameraRequest(
            camera=camera_pb2.Camera(id="cam", source_uri="/v.mp4")
        )
        for metadata in ([], auth("wrong-token-000000000"), [("authorization", READ)]):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await query.events.ListEvents(listing, metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await query.events.ListEvents(listing, metadata=auth(READ))
        await query.events.ListEvents(listing, metadata=auth(ADMIN))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await query.cameras.CreateCamera(create, metadata=auth(READ))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await query.cameras.CreateCamera(create, metadata=auth(ADMIN))
        # A streaming method is refused the same way.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await query.events.StreamEvents(event_service_pb2.StreamEventsRequest()).read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health needs no token (probes).
        health = health_pb2_grpc.HealthStub(query.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="camsight.v1.EventService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert READ not in caplog.text and ADMIN not in caplog.text


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_reflection_lists_the_services(
    nats_settings: NatsSettings, tmp_path: Path, version: str
) -> None:
    async with running_query(query_settings(nats_settings, tmp_path)) as query:
        # v1's messages are v1alpha's field for field: only the method path differs.
        call = query.channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.write(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="camsight.v1.EventService")
        )
        described = await call.read()
        await call.done_writing()
        names = {s.name for s in reply.list_services_response.service}
        assert {
            "camsight.v1.EventService",
            "camsight.v1.CameraService",
            "camsight.v1.FaceGalleryService",
        } <= names
        assert described.file_descriptor_response.file_descriptor_proto


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl binary to make a test certificate"
)
async def test_tls(nats_settings: NatsSettings, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await asyncio.to_thread(
        subprocess.run,
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = query_settings(nats_settings, tmp_path, tls_cert_file=str(cert), tls_key_file=str(key))
    async with running_query(settings) as query:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{query.service.port}", credentials) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            await stub.ListEvents(event_service_pb2.ListEventsRequest(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError):  # plaintext is refused
            await query.events.ListEvents(event_service_pb2.ListEventsRequest(), timeout=2)
