"""Enrollment and the gallery on a real nats-server: KV records, thumbnails, refusals, live reload."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import nats.js.errors
import pytest
from camsight.bus import Bus, subjects
from camsight.bus.rpc import NoResponderError, request, serve_requests
from camsight.face.crops import face_crop
from camsight.face.enroll import Enroller, error_reply
from camsight.face.gallery import Gallery
from camsight.v1 import identity_pb2
from face_support import astronaut, carphone, encode, no_face, two_faces
from helpers import wait_for

MODEL = "dlib_resnet_v1"


@pytest.fixture
async def gallery(bus: Bus) -> AsyncIterator[Gallery]:
    g = Gallery(bus, MODEL)
    await g.start()
    yield g
    await g.stop()


@pytest.fixture
async def enroller(centerface: Any, gallery: Gallery) -> Enroller:
    return Enroller(centerface, gallery, functools.partial(face_crop, size=64))


async def enroll(
    enroller: Enroller, identity_id: str, image: bytes, **extra: Any
) -> identity_pb2.EnrollReply:
    payload = identity_pb2.EnrollRequest(identity_id=identity_id, image=image, **extra).SerializeToString()
    reply = identity_pb2.EnrollReply()
    reply.ParseFromString(await enroller(payload))
    return reply


async def test_enrollment_writes_the_record_and_the_thumbnail(bus: Bus, enroller: Enroller) -> None:
    reply = await enroll(
        enroller, "eileen", encode(astronaut()), display_name="Eileen Collins", labels={"crew": "sts93"}
    )
    assert reply.error == "" and reply.identity.id == "eileen" and reply.identity.face_count == 1
    reply = await enroll(enroller, "eileen", encode(astronaut(), ".png"))
    assert reply.identity.face_count == 2 and reply.identity.display_name == "Eileen Collins"

    stored = identity_pb2.IdentityRecord()
    stored.ParseFromString((await (await bus.kv(subjects.GALLERY_BUCKET)).get("eileen")).value or b"")
    assert stored.identity.labels["crew"] == "sts93"
    assert [len(s.embedding) for s in stored.samples] == [128, 128] and {s.model for s in stored.samples} == {
        MODEL
    }
    assert list(stored.identity.thumbnail_ids) == [s.thumbnail_id for s in stored.samples]
    thumbnail = await (await bus.object_store(subjects.FACES_STORE)).get(stored.samples[0].thumbnail_id)
    assert thumbnail.data is not None and thumbnail.data[:2] == b"\xff\xd8"  # a JPEG


@pytest.mark.parametrize(
    ("identity_id", "image", "reason"),
    [
        ("nobody", lambda: encode(no_face()), "no face found in the image"),
        ("crowd", lambda: encode(two_faces()), "2 faces found in the image"),
        ("garbage", lambda: b"not an image at all", "cannot be decoded"),
        ("empty", lambda: b"", "the request holds no image"),
        ("bad id!", lambda: encode(astronaut()), "identity id"),
    ],
)
async def test_bad_enrollments_are_refused_with_a_clear_reason(
    bus: Bus, enroller: Enroller, identity_id: str, image: Any, reason: str
) -> None:
    reply = await enroll(enroller, identity_id, image())
    assert reply.error_code == "INVALID_ARGUMENT" and reason in reply.error
    assert not reply.HasField("identity")
    with pytest.raises(nats.js.errors.NoKeysError):
        await (await bus.kv(subjects.GALLERY_BUCKET)).keys()


async def test_a_malformed_request_is_refused(enroller: Enroller) -> None:
    reply = identity_pb2.EnrollReply()
    reply.ParseFromString(await enroller(b"\xff\xff\xff"))
    assert reply.error_code == "INVALID_ARGUMENT" and "EnrollRequest" in reply.error


async def test_the_gallery_follows_enrollments_and_deletions(
    bus: Bus, enroller: Enroller, gallery: Gallery
) -> None:
    await enroll(enroller, "eileen", encode(astronaut()))
    await enroll(enroller, "carphone", encode(carphone()[0]))
    await wait_for(lambda: gallery.index.identities == 2, 10, "both identities in the index")
    assert len(gallery.index) == 2

    await (await bus.kv(subjects.GALLERY_BUCKET)).delete("eileen")
    await wait_for(lambda: "eileen" not in gallery.records, 10, "the deleted identity dropped")
    assert gallery.index.owners == ("carphone",)


async def test_a_new_replica_loads_the_existing_gallery(bus: Bus, enroller: Enroller) -> None:
    await enroll(enroller, "eileen", encode(astronaut()))
    late = Gallery(bus, MODEL)
    await late.start()
    try:
        assert late.index.owners == ("eileen",)
    finally:
        await late.stop()


async def test_the_endpoint_answers_over_nats_in_a_queue_group(bus: Bus, enroller: Enroller) -> None:
    with pytest.raises(NoResponderError):
        await request(bus, subjects.FACE_ENROLL_SUBJECT, b"", timeout=2)
    subs = [
        await serve_requests(bus, subjects.FACE_ENROLL_SUBJECT, "face", enroller, error_reply)
        for _ in range(2)
    ]
    try:
        payload = identity_pb2.EnrollRequest(
            identity_id="eileen", image=encode(astronaut())
        ).SerializeToString()
        reply = identity_pb2.EnrollReply()
        reply.ParseFromString(await request(bus, subjects.FACE_ENROLL_SUBJECT, payload, timeout=20))
        assert reply.identity.face_count == 1
        stored = identity_pb2.IdentityRecord()
        stored.ParseFromString((await (await bus.kv(subjects.GALLERY_BUCKET)).get("eileen")).value or b"")
        assert len(stored.samples) == 1, "answered once, by one member of the queue group"
    finally:
        for sub in subs:
            await sub.unsubscribe()
