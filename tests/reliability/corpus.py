"""The bad-input corpus: every case, what it feeds camsight, and what must come out.

Each :class:`Case` either carries its own check (``offline`` needs no bus,
``system`` runs against the whole pipeline of :mod:`reliability_support`) or
names the existing test that already proves it (``covered_by``), which
``test_corpus_table.py`` verifies still exists. The table is the reference
for docs/operations.md.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import grpc
import nats.errors
import numpy as np
import pytest
from camsight.bus import subjects
from camsight.cameras import CameraConfig
from camsight.config import Settings
from camsight.decoder.frames import resize_and_encode
from camsight.decoder.service import InvalidCamera, parse_entry
from camsight.decoder.sources import EndOfSource, SourceError, open_source
from camsight.v1 import (
    analysis_pb2,
    camera_pb2,
    camera_service_pb2,
    event_pb2,
    event_service_pb2,
    frame_pb2,
    identity_pb2,
)
from helpers import sample_video, wait_for
from nats.aio.msg import Msg
from pydantic import ValidationError
from reliability_support import (
    RULED_CAMERA,
    System,
    acked,
    dead_lettered_from,
    deadletter_seq,
    good_frame,
    good_result,
    jpeg,
)

OfflineCheck = Callable[[Path], None]
SystemCheck = Callable[[System], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    id: str
    feeds: str
    expected: str
    offline: OfflineCheck | None = None
    system: SystemCheck | None = None
    covered_by: str = ""
    xfail: str = ""


# -- sources (decoder) ---------------------------------------------------------


def _open_error(uri: str) -> SourceError:
    """The SourceError opening ``uri`` (or reading its first frames) raises."""
    try:
        source = open_source(uri, image_fps=5, open_timeout_s=2, read_timeout_s=2)
        try:  # a source that opened must fail on its first reads
            for _ in range(3):
                source.grab(lambda t: True)
        finally:
            source.close()
    except SourceError as exc:
        return exc
    except EndOfSource:
        pytest.fail(f"{uri} opened and ended instead of failing")
    pytest.fail(f"{uri} opened without an error")


def _bad_file(content: Callable[[bytes], bytes], name: str = "bad.mp4") -> OfflineCheck:
    def check(tmp: Path) -> None:
        path = tmp / name
        path.write_bytes(content(sample_video("bikes.mp4").read_bytes()))
        error = _open_error(str(path))
        assert error.permanent and "cannot decode" in str(error) and str(path) in str(error)

    return check


def _decodes_by_content(tmp: Path) -> None:
    path = tmp / "bikes.txt"
    path.write_bytes(sample_video("carphone_pristine.mp4").read_bytes())
    source = open_source(str(path), image_fps=5, open_timeout_s=2, read_timeout_s=2)
    try:
        grabbed = source.grab(lambda t: True)
        assert grabbed is not None and grabbed.image is not None and grabbed.image.shape == (144, 176, 3)
    finally:
        source.close()


def _huge_image_is_resized(tmp: Path) -> None:
    folder = tmp / "huge"
    folder.mkdir()
    cv2.imwrite(str(folder / "big.png"), np.zeros((8000, 8000, 3), np.uint8))
    source = open_source(str(folder), image_fps=5, open_timeout_s=2, read_timeout_s=2)
    try:
        grabbed = source.grab(lambda t: True)
        assert grabbed is not None and grabbed.image is not None
        camera = CameraConfig(id="huge", source=str(folder))
        encoded = resize_and_encode(grabbed.image, camera.max_width, camera.max_height, camera.jpeg_quality)
        assert encoded is not None and (encoded.width, encoded.height) == (640, 640)
        assert (encoded.source_width, encoded.source_height) == (8000, 8000)
        assert len(encoded.data) < 1024 * 1024
    finally:
        source.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def _closed_port_is_retried(tmp: Path) -> None:
    error = _open_error(f"http://viewer:s3cret-pw@127.0.0.1:{_closed_port()}/stream.mjpg")
    assert not error.permanent, "an unreachable stream must be retried"
    assert "cannot open stream" in str(error) and "s3cret-pw" not in str(error) and "***" in str(error)


# -- configuration ---------------------------------------------------------------


def _invalid_camera(field: str, **fields: object) -> OfflineCheck:
    def check(tmp: Path) -> None:
        with pytest.raises(ValidationError) as err:
            CameraConfig.model_validate({"id": "cam", "source": "video.mp4", **fields})
        assert field in str(err.value)

    return check


def _fps_zero_means_native_rate(tmp: Path) -> None:
    assert CameraConfig(id="cam", source="v.mp4", fps=0).fps == 0.0
    _invalid_camera("fps", fps=-1)(tmp)
    _invalid_camera("image_fps", image_fps=0)(tmp)


def _duplicate_cameras(tmp: Path) -> None:
    with pytest.raises(ValidationError, match="camera id 'a' is used twice"):
        Settings(cameras=[{"id": "a", "source": "x.mp4"}, {"id": "a", "source": "y.mp4"}])


def _registry_key_with_dot(tmp: Path) -> None:
    camera = CameraConfig(id="lobby", source="rtsp://cam/1").to_proto().SerializeToString()
    for key in ("a.b", "lobby.x", "..", "*"):
        entry = parse_entry(key, camera)
        assert isinstance(entry, InvalidCamera) and entry.error, key


def _wire_camera_with_bad_id(tmp: Path) -> None:
    for bad in ("a.b", "../etc", "cam*", "cam>", ""):
        with pytest.raises(ValueError, match="id"):
            CameraConfig.from_proto(camera_pb2.Camera(id=bad, source_uri="x.mp4"))


# -- bus cases (whole system) ------------------------------------------------------


async def _garbage_then_good(
    system: System, subject: str, bad: bytes, good: bytes, stream: str, durables: tuple[str, ...]
) -> None:
    """Publish ``bad`` then ``good`` on ``subject``: the bad one is dead-lettered with a
    reason by every consuming durable, and the good one is acked after it."""
    bus = system.bus
    before = await deadletter_seq(bus)
    await bus.publish(subject, bad)
    ack = await bus.publish(subject, good)
    await wait_for(
        lambda: acked(bus, stream, ack.seq, durables), 20, f"the good message on {subject} handled"
    )

    async def all_dead_lettered() -> bool:
        letters = await dead_lettered_from(bus, subject, before)
        by = {(m.headers or {}).get(subjects.CONSUMER_HEADER) for m in letters}
        return bool(letters) and by >= set(durables)

    await wait_for(all_dead_lettered, 5, f"the bad message on {subject} dead-lettered by {durables}")
    for letter in await dead_lettered_from(bus, subject, before):
        assert (letter.headers or {}).get(subjects.ERROR_HEADER), "a dead letter says why"
        assert letter.data == bad
    await system.assert_ready()


_seq = iter(range(1000, 10**6))


def _frames(bad: Callable[[], bytes], camera: str = "garbage") -> SystemCheck:
    async def check(system: System) -> None:
        good = good_frame(camera, next(_seq)).SerializeToString()
        await _garbage_then_good(
            system, subjects.frames(camera), bad(), good, subjects.FRAMES_STREAM, ("detector", "face")
        )

    return check


def _detections(bad: Callable[[], bytes]) -> SystemCheck:
    async def check(system: System) -> None:
        good = good_result(RULED_CAMERA, next(_seq)).SerializeToString()
        await _garbage_then_good(
            system,
            subjects.detections("motion", RULED_CAMERA),
            bad(),
            good,
            subjects.DETECTIONS_STREAM,
            ("behavior-0",),
        )

    return check


def _event(n: int, **fields: object) -> event_pb2.Event:
    event = event_pb2.Event(
        id=f"rel-{n}",
        type=event_pb2.EVENT_TYPE_OBJECT_DETECTED,
        state=event_pb2.EVENT_STATE_ENDED,
        camera_id="garbage",
        label="person",
    )
    event.start_time.GetCurrentTime()
    for key, value in fields.items():
        setattr(event, key, value)
    return event


def _events(bad: Callable[[], bytes]) -> SystemCheck:
    async def check(system: System) -> None:
        event = _event(next(_seq))
        subject = subjects.events(event.type, event.camera_id)
        await _garbage_then_good(
            system, subject, bad(), event.SerializeToString(), subjects.EVENTS_STREAM, ()
        )
        got = await system.events.GetEvent(event_service_pb2.GetEventRequest(id=event.id))
        assert got.id == event.id

    return check


async def _frame_header_lie(system: System) -> None:
    """A Frame claiming 8000x8000 around a 64x48 JPEG: analysed at its real size."""
    seq = next(_seq)
    results = await _results_of(system, "liar", [good_frame("liar", seq, width=8000, height=8000)])
    motion = [r for r in results if r.analyzer == "motion"]
    assert motion and not motion[0].skipped, motion


async def _frame_undecodable(system: System) -> None:
    seq = next(_seq)
    frame = good_frame("undecodable", seq, data=b"\xff\xd8 not really a jpeg")
    results = await _results_of(system, "undecodable", [frame])
    assert all(r.skipped and r.skip_reason for r in results) and results
    await system.assert_ready()


async def _results_of(
    system: System, camera: str, frames: list[frame_pb2.Frame]
) -> list[analysis_pb2.AnalysisResult]:
    bus = system.bus
    results: list[analysis_pb2.AnalysisResult] = []

    async def collect(msg: Msg) -> None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        if result.frame.camera_id == camera:
            results.append(result)

    sub = await bus.nc.subscribe("detections.>", cb=collect)
    try:
        for frame in frames:
            await bus.publish(subjects.frames(camera), frame)
        await wait_for(lambda: len(results) >= 2 * len(frames), 20, f"results for {camera}")
    finally:
        await sub.unsubscribe()
    return results


def _nan_result() -> bytes:
    result = good_result(RULED_CAMERA, next(_seq))
    det = result.detections.add(label="person", score=float("nan"))
    det.box.x1, det.box.y1, det.box.x2, det.box.y2 = math.nan, 0.1, math.inf, -5.0
    return result.SerializeToString()


async def _oversized(system: System) -> None:
    payload = good_frame("big", next(_seq), data=b"\0" * (9 * 1024 * 1024)).SerializeToString()
    with pytest.raises((nats.errors.MaxPayloadError, nats.errors.Error)):
        await system.bus.publish(subjects.frames("big"), payload)
    await _frames(lambda: b"\x00")(system)  # still connected, every consumer still works


async def _hostile_event_ids(system: System) -> None:
    for n, hostile in enumerate(("../../etc/passwd", "x'; DROP TABLE events; --", "a.b*>", "é🙂\x00z")):
        event = _event(n, id=hostile)
        await system.bus.publish_event(event)
        got = await wait_for_event(system, hostile)
        assert got.id == hostile
    listed = await system.events.ListEvents(event_service_pb2.ListEventsRequest(page_size=1000))
    assert listed.events, "the index still answers"


async def wait_for_event(system: System, event_id: str) -> event_pb2.Event:
    found: list[event_pb2.Event] = []

    async def present() -> bool:
        try:
            found.append(await system.events.GetEvent(event_service_pb2.GetEventRequest(id=event_id)))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False
        return True

    await wait_for(present, 10, f"event {event_id!r} indexed")
    return found[-1]


async def _enroll(system: System) -> None:
    async def ask(payload: bytes) -> identity_pb2.EnrollReply:
        msg = await system.bus.nc.request(subjects.FACE_ENROLL_SUBJECT, payload, timeout=20)
        return identity_pb2.EnrollReply.FromString(msg.data)

    for bad in (b"\xff\xff\xff", event_pb2.Event(id="x").SerializeToString()):
        reply = await ask(bad)
        assert reply.error_code == "INVALID_ARGUMENT" and reply.error, reply
    reply = await ask(identity_pb2.EnrollRequest(identity_id="nobody", image=jpeg()).SerializeToString())
    assert reply.error_code == "INVALID_ARGUMENT" and "no face" in reply.error
    await system.assert_ready()


async def _registry_garbage(system: System) -> None:
    registry = await system.bus.kv(subjects.CAMERAS_BUCKET)
    await registry.put("junk", b"\xff\x00 not a camera")
    status = await system.bus.kv(subjects.CAMERA_STATUS_BUCKET)

    async def reported() -> bool:
        try:
            entry = await status.get("junk")
        except Exception:
            return False
        msg = camera_pb2.CameraStatus.FromString(entry.value or b"")
        return msg.state == camera_pb2.CAMERA_STATE_ERROR and "not a camsight.v1.Camera" in msg.last_error

    await wait_for(reported, 15, "the junk registry entry reported in error")
    await registry.delete("junk")
    await system.assert_ready()


def _grpc_invalid(call: Callable[[System], Awaitable[object]], field: str) -> SystemCheck:
    async def check(system: System) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(system)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
        assert field in (err.value.details() or ""), err.value.details()
        await system.assert_ready()

    return check


def _list(**fields: object) -> Callable[[System], Awaitable[object]]:
    return lambda s: s.events.ListEvents(event_service_pb2.ListEventsRequest(**fields))  # type: ignore[arg-type]


def _create(**fields: object) -> Callable[[System], Awaitable[object]]:
    camera = camera_pb2.Camera(source_uri="rtsp://cam/1", enabled=False)
    for key, value in fields.items():
        if key == "polygon":
            zone = camera.zones.add(id="z")
            for x, y in value:  # type: ignore[attr-defined]
                zone.polygon.add(x=x, y=y)
        else:
            setattr(camera, key, value)
    return lambda s: s.cameras.CreateCamera(camera_service_pb2.CreateCameraRequest(camera=camera))


async def _page_size_capped(system: System) -> None:
    page = await system.events.ListEvents(event_service_pb2.ListEventsRequest(page_size=2**31 - 1))
    assert len(page.events) <= 1000


def _serialized(message: object) -> Callable[[], bytes]:
    return lambda: message.SerializeToString()  # type: ignore[attr-defined]


RANDOM = np.random.default_rng(11).bytes(300)
A_FRAME = good_frame("garbage", 1)
A_RESULT = good_result("garbage", 1)
A_CAMERA = camera_pb2.Camera(id="garbage", source_uri="x.mp4")

CASES: list[Case] = [
    # sources
    Case(
        "video-zero-byte",
        "an empty .mp4",
        "camera in error: 'cannot decode <path>', permanent (no retry)",
        offline=_bad_file(lambda b: b""),
    ),
    Case(
        "video-truncated",
        "the first third of an mp4 (no moov atom)",
        "camera in error: 'cannot decode', permanent",
        offline=_bad_file(lambda b: b[: len(b) // 3]),
    ),
    Case(
        "video-truncated-after-its-index",
        "the first 60 % of an mp4 written with faststart (its index in front: it plays, then ends)",
        "its 140 frames analysed, then camera in error: 'truncated: read 5.6 s of 10.0 s'",
        covered_by="tests/decoder/test_decoder.py::test_a_truncated_file_is_analysed_as_far_as_it_goes_then_its_camera_is_in_error",
    ),
    Case(
        "video-header-only",
        "the first 2000 bytes of an mp4",
        "camera in error: 'cannot decode', permanent",
        offline=_bad_file(lambda b: b[:2000]),
    ),
    Case(
        "video-random-bytes",
        "random bytes named .mp4",
        "camera in error: 'cannot decode', permanent",
        offline=_bad_file(lambda b: RANDOM * 100),
    ),
    Case(
        "video-wrong-extension",
        "an mp4 named .txt",
        "decoded by content (extensions are not trusted)",
        offline=_decodes_by_content,
    ),
    Case(
        "image-folder-corrupt-file",
        "a folder with a text file named .jpg",
        "that file skipped, the rest decoded",
        covered_by="tests/decoder/test_decoder.py::test_image_folder_skips_corrupt_images",
    ),
    Case(
        "video-missing",
        "a path that does not exist",
        "camera in error: 'file not found', permanent",
        covered_by="tests/decoder/test_units.py::test_open_errors_name_the_problem",
    ),
    Case(
        "huge-resolution",
        "an 8000x8000 image in an image folder",
        "resized to the camera's max size (640x640) before encoding; source size kept in the Frame",
        offline=_huge_image_is_resized,
    ),
    Case(
        "fps-zero",
        "fps: 0, fps: -1, image_fps: 0",
        "fps 0 = the source's own rate (documented); negative fps and image_fps 0 are validation errors",
        offline=_fps_zero_means_native_rate,
    ),
    Case(
        "url-closed-port",
        "http://user:pw@127.0.0.1:<closed port>/...",
        "'cannot open stream', transient (retried with back-off), password redacted",
        offline=_closed_port_is_retried,
    ),
    Case(
        "bad-sources-in-service",
        "missing, garbage and unreachable cameras next to a good one",
        "each camera in error with its reason, the good one streams, no password anywhere",
        covered_by="tests/decoder/test_decoder.py::test_bad_sources_fail_alone_and_never_leak_credentials",
    ),
    # camera ids and geometry
    Case(
        "camera-id-wildcard",
        "id 'cam*' / 'cam>'",
        "validation error naming id",
        offline=_invalid_camera("id", id="cam*"),
    ),
    Case("camera-id-dot", "id 'a.b'", "validation error naming id", offline=_invalid_camera("id", id="a.b")),
    Case(
        "camera-id-traversal",
        "id '../etc'",
        "validation error naming id",
        offline=_invalid_camera("id", id="../etc"),
    ),
    Case(
        "camera-id-on-the-wire",
        "Camera protos with ids a.b, ../etc, cam*, cam>, ''",
        "ValueError naming id",
        offline=_wire_camera_with_bad_id,
    ),
    Case(
        "subject-token-injection",
        "subjects.frames('a.*') and friends",
        "ValueError before anything is published",
        covered_by="tests/test_bus.py::test_bad_subject_tokens_are_refused",
    ),
    Case(
        "registry-key-with-dot",
        "cameras KV keys 'a.b', 'lobby.x', '..', '*'",
        "InvalidCamera with a reason",
        offline=_registry_key_with_dot,
    ),
    Case(
        "registry-garbage-value",
        "cameras KV value that is not a Camera",
        "status ERROR 'not a camsight.v1.Camera'; services stay ready",
        system=_registry_garbage,
    ),
    Case(
        "polygon-two-points",
        "a zone with 2 points",
        "validation error 'at least 3'",
        covered_by="tests/test_config.py::test_camera_validation",
    ),
    Case(
        "polygon-self-intersecting",
        "a bow-tie zone",
        "validation error 'intersects itself'",
        covered_by="tests/test_config.py::test_camera_validation",
    ),
    Case(
        "polygon-nan",
        "a zone with a NaN coordinate",
        "validation error 'finite number'",
        covered_by="tests/test_config.py::test_camera_validation",
    ),
    Case(
        "line-infinite",
        "a line end at +inf",
        "validation error",
        offline=_invalid_camera("lines", lines=[{"id": "l", "a": [0, math.inf], "b": [1, 0.5]}]),
    ),
    Case(
        "duplicate-camera-ids",
        "two cameras with the same id in Settings",
        "validation error: camera id 'a' is used twice",
        offline=_duplicate_cameras,
    ),
    Case(
        "config-bad-value",
        "streams.events_replicas: 9",
        "exit 2 naming the field and value, no traceback",
        covered_by="tests/test_config.py::test_malformed_config_exits_2_naming_the_field",
    ),
    # every subject
    Case(
        "frames-random-bytes",
        "random bytes on frames.<cam>",
        "dead-lettered by detector and face; next frame analysed",
        system=_frames(lambda: RANDOM),
    ),
    Case(
        "frames-wrong-type-result",
        "an AnalysisResult on frames.<cam>",
        "dead-lettered by detector and face",
        system=_frames(_serialized(A_RESULT)),
    ),
    Case(
        "frames-wrong-type-event",
        "an Event on frames.<cam>",
        "dead-lettered by detector and face",
        system=_frames(lambda: _event(1).SerializeToString()),
    ),
    Case(
        "frames-camera-mismatch",
        "a Frame for camera 'other' on frames.garbage",
        "dead-lettered by detector and face",
        system=_frames(_serialized(good_frame("other", 1))),
    ),
    Case(
        "frames-header-lie",
        "a Frame claiming 8000x8000 around a 64x48 JPEG",
        "analysed at its real size",
        system=_frame_header_lie,
    ),
    Case(
        "frames-undecodable-image",
        "a Frame whose JPEG bytes are garbage",
        "a skipped result with the reason",
        system=_frame_undecodable,
    ),
    Case(
        "oversized-payload",
        "a 9 MiB Frame",
        "publish refused (max_payload); every consumer still works",
        system=_oversized,
    ),
    Case(
        "detections-random-bytes",
        "random bytes on detections.<analyzer>.<cam>",
        "dead-lettered by behavior; next result handled",
        system=_detections(lambda: RANDOM),
    ),
    Case(
        "detections-wrong-type-frame",
        "a Frame on detections.*.*",
        "dead-lettered by behavior",
        system=_detections(_serialized(A_FRAME)),
    ),
    Case(
        "detections-wrong-type-event",
        "an Event on detections.*.*",
        "dead-lettered by behavior",
        system=_detections(lambda: _event(2).SerializeToString()),
    ),
    Case(
        "detections-nan-boxes",
        "a result with NaN/inf/negative box coordinates",
        "dead-lettered by behavior ('non-finite score or box'); next result handled",
        system=_detections(_nan_result),
    ),
    Case(
        "events-random-bytes",
        "random bytes on events.<type>.<cam>",
        "dead-lettered by query; next event indexed",
        system=_events(lambda: RANDOM),
    ),
    Case(
        "events-wrong-type-frame",
        "a Frame on events.*.*",
        "dead-lettered by query",
        system=_events(_serialized(A_FRAME)),
    ),
    Case(
        "events-wrong-type-camera",
        "a Camera on events.*.*",
        "dead-lettered by query (it parses as an Event with id = camera id)",
        system=_events(_serialized(A_CAMERA)),
    ),
    Case(
        "events-hostile-ids",
        "event ids with ../, quotes, SQL, wildcards, NUL",
        "stored and found verbatim; no SQL effect",
        system=_hostile_event_ids,
    ),
    Case(
        "enroll-garbage-and-wrong-type",
        "bytes and an Event on the enroll subject, then an image without a face",
        "INVALID_ARGUMENT replies with the reason; the endpoint keeps answering",
        system=_enroll,
    ),
    Case(
        "enroll-no-face",
        "an enrollment image without a face",
        "INVALID_ARGUMENT 'no face found in the image'",
        covered_by="tests/face/test_face_enroll.py::test_bad_enrollments_are_refused_with_a_clear_reason",
    ),
    Case(
        "enroll-several-faces",
        "an enrollment image with two faces",
        "INVALID_ARGUMENT '2 faces found in the image'",
        covered_by="tests/face/test_face_enroll.py::test_bad_enrollments_are_refused_with_a_clear_reason",
    ),
    # gRPC
    Case(
        "grpc-filter-syntax",
        "filter 'camera = '",
        "INVALID_ARGUMENT naming filter",
        system=_grpc_invalid(_list(filter="camera = "), "filter"),
    ),
    Case(
        "grpc-filter-unknown-field",
        "filter 'password = x'",
        "INVALID_ARGUMENT naming filter",
        system=_grpc_invalid(_list(filter="password = x"), "filter"),
    ),
    Case(
        "grpc-filter-injection",
        "filter \"camera = 'x' OR 1=1; DROP TABLE events; --\"",
        "INVALID_ARGUMENT; the index intact",
        system=_grpc_invalid(_list(filter="camera = 'x' OR 1=1; DROP TABLE events; --"), "filter"),
    ),
    Case(
        "grpc-filter-injection-values",
        "SQL in quoted values",
        "values are bound parameters, never SQL text",
        covered_by="tests/query/test_query_index.py::test_values_never_become_sql_text",
    ),
    Case(
        "grpc-page-token-garbage",
        "page_token 'not-a-token'",
        "INVALID_ARGUMENT naming page_token",
        system=_grpc_invalid(_list(page_token="not-a-token"), "page_token"),
    ),
    Case(
        "grpc-page-token-other-filter",
        "a token reused with another filter",
        "INVALID_ARGUMENT naming page_token",
        covered_by="tests/query/test_query_events.py::test_a_page_token_only_works_with_its_own_filter",
    ),
    Case(
        "grpc-page-size-negative",
        "page_size -1",
        "INVALID_ARGUMENT naming page_size",
        system=_grpc_invalid(_list(page_size=-1), "page_size"),
    ),
    Case(
        "grpc-page-size-huge", "page_size 2^31-1", "capped at the maximum (AIP-158)", system=_page_size_capped
    ),
    Case(
        "grpc-camera-id-dot",
        "CreateCamera id 'a.b'",
        "INVALID_ARGUMENT naming the id",
        system=_grpc_invalid(_create(id="a.b"), "id"),
    ),
    Case(
        "grpc-camera-id-traversal",
        "CreateCamera id '../x'",
        "INVALID_ARGUMENT naming the id",
        system=_grpc_invalid(_create(id="../x"), "id"),
    ),
    Case(
        "grpc-camera-id-wildcard",
        "CreateCamera id 'cam*'",
        "INVALID_ARGUMENT naming the id",
        system=_grpc_invalid(_create(id="cam*"), "id"),
    ),
    Case(
        "grpc-camera-nan-polygon",
        "CreateCamera with a NaN zone point",
        "INVALID_ARGUMENT naming the zone",
        system=_grpc_invalid(_create(id="nanzone", polygon=[(0, 0), (math.nan, 0), (1, 1)]), "polygon"),
    ),
    # plugins
    Case(
        "plugin-unknown",
        "an analyzer name no plugin provides",
        "config error naming the analyzer",
        covered_by="tests/analyzers/test_detector.py::test_unknown_analyzer_is_a_config_error",
    ),
    Case(
        "plugin-raises-on-load",
        "an analyzer whose load() raises",
        "service alive, not ready, frames answered as skipped with the reason",
        covered_by="tests/analyzers/test_host.py::test_plugin_failing_to_load_makes_the_service_not_ready_but_alive",
    ),
    Case(
        "plugin-raises-on-analyze",
        "an analyzer whose analyze() raises",
        "counted, frames answered as failed, other analyzers go on",
        covered_by="tests/analyzers/test_host.py::test_plugin_raising_on_a_batch_is_counted_and_the_service_goes_on",
    ),
    Case(
        "plugin-broken-import",
        "a plugin package that fails to import",
        "reported, the other plugins still work",
        covered_by="tests/analyzers/test_plugins.py::test_a_broken_plugin_is_reported_and_the_others_still_work",
    ),
]
