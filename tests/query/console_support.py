"""Helpers of the console tests: the real query service with its console, tokens, a face endpoint.

The face service's enroll endpoint is stood in for (its models are dlib's, slow to load on a
shared CI machine): the stand-in refuses images without a face marker like the service refuses
photos without a face, and stores what it enrolls through the real gallery store, so the
identity and its thumbnail are what the console then reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
from camsight.bus import Bus, subjects
from camsight.config import NatsSettings
from camsight.stores.gallery import GalleryStore, Sample
from camsight.v1 import analysis_pb2, camera_pb2, frame_pb2, identity_pb2
from helpers import sample_video
from nats.aio.msg import Msg
from query_helpers import RunningQuery, query_settings, running_query

ADMIN_TOKEN = "console-admin-token-0123456789"
READ_TOKEN = "console-read-token-0123456789"
TOKENS = [
    {"name": "ops", "token": ADMIN_TOKEN, "scope": "admin"},
    {"name": "viewer", "token": READ_TOKEN, "scope": "read"},
]


def console_url(query: RunningQuery) -> str:
    console = query.service.console
    assert console is not None, "the console is not enabled"
    return f"http://127.0.0.1:{console.port}"


@asynccontextmanager
async def running_console(
    nats: NatsSettings, data_dir: Path, *, tokens: bool = True
) -> AsyncIterator[RunningQuery]:
    """The query service serving its console on a free loopback port."""
    settings = query_settings(
        nats,
        data_dir,
        tokens=TOKENS if tokens else [],
        console={"enabled": True, "host": "127.0.0.1", "port": 0},
    )
    async with running_query(settings) as query:
        yield query


def sample_jpeg(frame: int = 30) -> bytes:
    """A real JPEG: one frame of a sample video."""
    capture = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = capture.read()
    capture.release()
    assert ok
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data.tobytes())


@asynccontextmanager
async def face_endpoint(bus: Bus) -> AsyncIterator[list[identity_pb2.EnrollRequest]]:
    """Answers ``camsight.face.enroll`` like the face service, storing through the gallery store."""
    gallery = GalleryStore(bus)
    received: list[identity_pb2.EnrollRequest] = []

    async def enroll(msg: Msg) -> None:
        request = identity_pb2.EnrollRequest.FromString(msg.data)
        received.append(request)
        sample = Sample(embedding=[0.0] * 128, model="stand-in", thumbnail=request.image,
                        display_name=request.display_name)  # fmt: skip
        identity, _ = await gallery.add_sample(request.identity_id, sample)
        await msg.respond(identity_pb2.EnrollReply(identity=identity).SerializeToString())

    sub = await bus.nc.subscribe(subjects.FACE_ENROLL_SUBJECT, cb=enroll)
    try:
        yield received
    finally:
        await sub.unsubscribe()


def camera_with_zone(camera_id: str) -> camera_pb2.Camera:
    """A camera with a zone on the left half (drawn in the live view)."""
    camera = camera_pb2.Camera(id=camera_id, source_uri="rtsp://10.0.0.9/live", enabled=True)
    zone = camera.zones.add(id="door")
    for x, y in ((0.05, 0.05), (0.45, 0.05), (0.45, 0.95), (0.05, 0.95)):
        zone.polygon.add(x=x, y=y)
    return camera


async def publish_frame(bus: Bus, camera_id: str, jpeg: bytes, seq: int) -> None:
    """A JPEG frame on ``frames.<camera>``, as the decoder publishes it."""
    frame = frame_pb2.Frame(camera_id=camera_id, seq=seq, encoding=frame_pb2.IMAGE_ENCODING_JPEG, data=jpeg)
    frame.width, frame.height = 176, 144
    await bus.publish(subjects.frames(camera_id), frame)


async def publish_person(bus: Bus, camera_id: str, box: tuple[float, float, float, float]) -> None:
    """A detector's result with one tracked person, on ``detections.hog.<camera>``."""
    result = analysis_pb2.AnalysisResult(analyzer="hog", kind="objects")
    result.frame.camera_id = camera_id
    x1, y1, x2, y2 = box
    result.detections.add(
        label="person", score=0.9, track_id=7, box=analysis_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2)
    )
    await bus.publish(subjects.detections("hog", camera_id), result)
