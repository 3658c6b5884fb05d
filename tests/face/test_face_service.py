"""The face service on a real nats-server: JPEG frames of carphone in, face AnalysisResults out.

Frames are published in small chunks, each waited for, so the FRAMES
stream's per-camera limit never drops one before the service fetched it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import cv2
import numpy as np
import pytest
from camsight.bus import Bus, subjects
from camsight.bus.rpc import request
from camsight.config import ConfigError, NatsSettings, Settings
from camsight.face.crops import crop_box
from camsight.face.service import FaceService
from camsight.runtime import ServiceContext
from camsight.v1 import analysis_pb2, frame_pb2, identity_pb2
from face_support import Image, astronaut, carphone, carphone_distorted, encode
from helpers import wait_for
from privacy_support import sharpness

CAMERA = "car"


def make_frame(seq: int, image: Image) -> frame_pb2.Frame:
    height, width = image.shape[:2]
    frame = frame_pb2.Frame(
        camera_id=CAMERA,
        seq=seq,
        width=width,
        height=height,
        encoding=frame_pb2.IMAGE_ENCODING_JPEG,
        data=encode(image),
    )
    frame.capture_time.FromNanoseconds(time.time_ns())
    return frame


class Results:
    """Every AnalysisResult of the camera, by frame sequence number."""

    def __init__(self) -> None:
        self.by_seq: dict[int, analysis_pb2.AnalysisResult] = {}

    async def feed(self, bus: Bus, first_seq: int, images: Sequence[Image], chunk: int = 4) -> None:
        """Publish ``images`` as frames ``first_seq``, ... a chunk at a time; await each chunk."""
        for start in range(0, len(images), chunk):
            seqs = range(first_seq + start, first_seq + min(start + chunk, len(images)))
            for seq in seqs:
                await bus.publish(subjects.frames(CAMERA), make_frame(seq, images[seq - first_seq]))
            await wait_for(
                lambda s=seqs: all(q in self.by_seq for q in s), 30, f"results of frames {list(seqs)}"
            )

    def faces(self, seqs: Sequence[int]) -> list[list[analysis_pb2.Detection]]:
        return [list(self.by_seq[s].detections) for s in seqs]


@pytest.fixture
async def results(bus: Bus) -> AsyncIterator[Results]:
    collected = Results()

    async def on_msg(msg: Any) -> None:
        result = analysis_pb2.AnalysisResult()
        result.ParseFromString(msg.data)
        collected.by_seq[result.frame.seq] = result

    sub = await bus.nc.subscribe(subjects.detections("centerface", CAMERA), cb=on_msg)
    yield collected
    await sub.unsubscribe()


@pytest.fixture
async def face_service(
    bus: Bus, nats_settings: NatsSettings
) -> AsyncIterator[Callable[..., Awaitable[FaceService]]]:
    """Start a FaceService with the given ``services.face`` section; stop, drain and close it at the end."""
    started: list[tuple[FaceService, asyncio.Task[None]]] = []

    async def start(**section: Any) -> FaceService:
        settings = Settings(
            nats=nats_settings, instance="face-1", services={"face": {"device": "cpu", **section}}
        )
        ctx = ServiceContext(settings)
        ctx.attach(bus)
        service = FaceService(ctx)
        await service.start()
        started.append((service, asyncio.create_task(service.run())))
        return service

    yield start
    for service, task in started:
        service.ctx.stopping.set()
        await asyncio.wait_for(task, 30)
        await service.close()


async def enroll(bus: Bus, identity_id: str, image: Image) -> identity_pb2.EnrollReply:
    payload = identity_pb2.EnrollRequest(identity_id=identity_id, image=encode(image)).SerializeToString()
    reply = identity_pb2.EnrollReply()
    reply.ParseFromString(await request(bus, subjects.FACE_ENROLL_SUBJECT, payload, timeout=30))
    return reply


@pytest.mark.slow
async def test_frames_in_identities_out_and_enrolling_takes_effect_without_restart(
    bus: Bus, face_service: Any, results: Results
) -> None:
    """Every 4th carphone frame before and after enrolling the man (30 + 30 frames)."""
    service = await face_service(batch=4, crop_size=64)
    assert service.readiness() == (True, "")
    assert (await enroll(bus, "eileen", astronaut())).identity.face_count == 1
    frames = carphone()
    before, after = list(range(1, 31)), list(range(31, 61))
    await results.feed(bus, 1, frames[0::4])

    first = results.by_seq[1]
    assert first.analyzer == "centerface" and first.kind == "faces" and not first.skipped
    faces = [d for dets in results.faces(before) for d in dets]
    assert len(faces) >= 0.95 * len(before)
    assert all(d.label == "face" and not d.identity.matched and d.identity.identity_id == "" for d in faces)
    assert all(d.identity.distance > 0.6 for d in faces), "the astronaut is far from every carphone face"
    assert all(d.crop_jpeg[:2] == b"\xff\xd8" and not d.embedding for d in faces)
    crop = cv2.imdecode(np.frombuffer(faces[0].crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (64, 64, 3)

    reply = await enroll(bus, "carphone", carphone_distorted()[64])
    assert reply.error == "" and reply.identity.id == "carphone"
    await wait_for(
        lambda: service.gallery is not None and service.gallery.index.identities == 2, 10, "reload"
    )
    await results.feed(bus, 31, frames[2::4])
    detected = [dets for dets in results.faces(after) if dets]
    recognised = [dets for dets in detected if any(d.identity.identity_id == "carphone" for d in dets)]
    assert len(recognised) >= 0.9 * len(detected), f"recognised in {len(recognised)}/{len(detected)} frames"
    assert all(d.identity.identity_id != "eileen" for dets in detected for d in dets)
    match = recognised[0][0].identity
    assert match.matched and match.display_name == "" and 0 < match.distance <= 0.6


async def test_unknown_faces_are_blurred_and_flagged_when_privacy_is_on(
    bus: Bus, face_service: Any, results: Results
) -> None:
    await face_service(blur_unknown=True, crop_size=64, publish_embeddings=True)
    await results.feed(bus, 1, carphone()[:2])
    face = results.faces([1])[0][0]
    assert face.privacy == analysis_pb2.PRIVACY_BLUR and len(face.embedding) == 128
    assert "privacy" not in face.attributes, "the typed field replaces the attribute"
    # The crop against the same square of the original frame (face_crop's geometry).
    left, top, right, bottom = crop_box((face.box.x1, face.box.y1, face.box.x2, face.box.y2), 176, 144, 0.25)
    original = cv2.resize(carphone()[0][top:bottom, left:right], (64, 64), interpolation=cv2.INTER_AREA)
    crop = cv2.imdecode(np.frombuffer(face.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert sharpness(crop) < sharpness(original) / 10, "the crop of an unknown face was not blurred"


async def test_faces_are_explicitly_visible_when_privacy_is_off(
    bus: Bus, face_service: Any, results: Results
) -> None:
    await face_service(crop_size=64)
    await results.feed(bus, 1, carphone()[:2])
    face = results.faces([1])[0][0]
    assert face.privacy == analysis_pb2.PRIVACY_VISIBLE, "the face service always decides"


async def test_enrollment_refusals_travel_over_nats(bus: Bus, face_service: Any) -> None:
    await face_service()
    reply = await enroll(bus, "nobody", np.zeros((200, 200, 3), np.uint8))
    assert (reply.error_code, reply.error) == ("INVALID_ARGUMENT", "no face found in the image")


async def test_bad_face_settings_are_config_errors(bus: Bus, nats_settings: NatsSettings) -> None:
    for section, needle in (
        ({"detector": "mtcnn"}, "detector"),
        ({"match_threshold": -1}, "match_threshold"),
        ({"analyzers": {"centerface": {"min_score": 2}}}, "min_score"),
        ({"analyzers": {"hog": {}}}, "face"),
    ):
        ctx = ServiceContext(Settings(nats=nats_settings, services={"face": section}))
        with pytest.raises(ConfigError, match=needle):
            FaceService(ctx)
