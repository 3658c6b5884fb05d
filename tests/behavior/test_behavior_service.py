"""The behavior service on a real nats-server: results in on DETECTIONS, events out on EVENTS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence

import cv2
import numpy as np
import pytest
from behavior_scenes import CAMERA, camera, mover, ref, scene, seq_of
from camsight.behavior import checkpoint, framepace, partition
from camsight.behavior.engine import Engine
from camsight.behavior.service import BehaviorService
from camsight.behavior.settings import BehaviorSettings
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, Settings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.runtime import ServiceContext
from camsight.v1 import analysis_pb2, event_pb2, frame_pb2
from helpers import wait_for
from nats.js.errors import NotFoundError
from privacy_support import CARPHONE_FACE, assert_blurred, carphone_frame, decode, region, sharpness

DOOR = {"id": "door", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}
SQUARE = {"id": "square", "polygon": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]]}


@pytest.fixture
async def roomy_bus(nats_settings: NatsSettings) -> AsyncIterator[Bus]:
    """A bus whose FRAMES stream keeps every frame of the scene, so snapshots are certain."""
    b = await connect(nats_settings, StreamSettings(frames_per_camera=1000), name="test")
    await b.ensure_topology()
    yield b
    await b.close()


class Running:
    """A BehaviorService started on the test's bus, stopped (drained) on exit."""

    def __init__(self, bus: Bus, **behavior: object) -> None:
        settings = Settings(services={"behavior": {"reorder_timeout_s": 0.2} | behavior})
        self.ctx = ServiceContext(settings=settings)
        self.ctx.attach(bus)
        self.service = BehaviorService(self.ctx)

    async def __aenter__(self) -> BehaviorService:

        await self.service.start()
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        self.ctx.stopping.set()
        await self.task
        await self.service.close()


async def put_camera(bus: Bus, **fields: object) -> None:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    await kv.put(CAMERA, camera(**fields).to_proto().SerializeToString())


def picture(boxes: Sequence[analysis_pb2.Detection]) -> bytes:
    image = np.full((480, 640, 3), 40, np.uint8)
    for d in boxes:
        b = d.box
        cv2.rectangle(
            image, (int(b.x1 * 640), int(b.y1 * 480)), (int(b.x2 * 640), int(b.y2 * 480)), (200, 200, 200), -1
        )
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    return jpeg.tobytes()


async def publish_scene(
    bus: Bus, results: Sequence[analysis_pb2.AnalysisResult], frames: bool = True
) -> None:
    """Publish each result's frame on FRAMES (so it can be fetched again), then the results."""
    for r in results:
        if frames:
            frame = frame_pb2.Frame(
                camera_id=CAMERA,
                seq=r.frame.seq,
                width=640,
                height=480,
                encoding=frame_pb2.IMAGE_ENCODING_JPEG,
            )
            frame.capture_time.CopyFrom(r.frame.capture_time)
            frame.data = picture(r.detections)
            ack = await bus.publish(subjects.frames(CAMERA), frame)
            r.frame.stream_sequence = ack.seq
    for r in results:
        await bus.publish(subjects.detections(r.analyzer, CAMERA), r)


async def events(bus: Bus) -> list[event_pb2.Event]:
    info = await bus.js.stream_info(subjects.EVENTS_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(subjects.EVENTS_STREAM, seq)
        out.append(event_pb2.Event.FromString(msg.data or b""))
    return out


async def count_events(bus: Bus) -> int:
    return (await bus.js.stream_info(subjects.EVENTS_STREAM)).state.messages


async def consumed(bus: Bus, durable: str = "behavior-0") -> bool:
    try:
        info = await bus.js.consumer_info(subjects.DETECTIONS_STREAM, durable)
    except NotFoundError:
        return False  # the replica has not created it yet
    return info.num_pending == 0 and info.num_ack_pending == 0


def crossing_scene() -> list[analysis_pb2.AnalysisResult]:
    # One walks right across the door and through the square, one walks left.
    return scene(80, [mover((0.103, 0.5), (0.01, 0)), mover((0.897, 0.9), (-0.01, 0))])


async def test_events_with_ids_states_and_snapshots_then_a_replay_is_stored_once(roomy_bus: Bus) -> None:
    bus = roomy_bus
    await put_camera(
        bus,
        lines=[DOOR],
        zones=[SQUARE],
        rules=[
            {"id": "count", "type": "line_cross", "line": "door"},
            {"id": "in", "type": "zone_enter", "zone": "square"},
        ],
    )
    results = crossing_scene()
    async with Running(bus):
        await publish_scene(bus, results)
        await wait_for(lambda: consumed(bus), 20, "all results consumed")
        await wait_for(lambda: _at_least(bus, 3), 20, "three events")
    got = await events(bus)
    crossings = [e for e in got if e.type == event_pb2.EVENT_TYPE_LINE_CROSS]
    enters = [e for e in got if e.type == event_pb2.EVENT_TYPE_ZONE_ENTER]
    assert [e.direction for e in crossings] == [
        analysis_pb2.CROSSING_DIRECTION_IN,
        analysis_pb2.CROSSING_DIRECTION_OUT,
    ]
    assert [seq_of(e.start_time) for e in crossings] == [41, 41]
    assert [seq_of(e.start_time) for e in enters] == [31]
    assert all(e.state == event_pb2.EVENT_STATE_ENDED and e.revision == 1 for e in got)
    # Each event carries a snapshot: the full frame, as JPEG, with the object in it.
    store = await bus.object_store(subjects.SNAPSHOTS_STORE)
    for e in got:
        assert e.snapshot_id, e.explanation.summary
        obj = await store.get(e.snapshot_id)
        image = cv2.imdecode(np.frombuffer(obj.data or b"", np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (480, 640, 3)
        box = e.explanation.detections[0].box
        cx, cy = int((box.x1 + box.x2) / 2 * 640), int((box.y1 + box.y2) / 2 * 480)
        assert image[cy, cx].mean() > 120  # the object is there (bright on a dark frame)
    # A crash that lost the state too (no consumer, no checkpoint) and a replay: a fresh
    # replica consumes the same results again from the start and publishes the same ids;
    # JetStream stores nothing twice.
    await bus.js.delete_consumer(subjects.DETECTIONS_STREAM, "behavior-0")
    await (await bus.kv(subjects.BEHAVIOR_STATE_BUCKET)).delete(CAMERA)
    before = await count_events(bus)
    async with Running(bus) as again:
        await wait_for(lambda: consumed(bus), 20, "the replay consumed")
        await wait_for(lambda: again.engine.stats.events >= len(got), 20, "events re-derived")
    assert await count_events(bus) == before
    assert [e.id for e in await events(bus)] == [e.id for e in got]


async def _at_least(bus: Bus, n: int) -> bool:
    return await count_events(bus) >= n


async def test_rules_are_hot_reloaded(bus: Bus) -> None:
    await put_camera(bus, lines=[DOOR])  # no rules yet
    first = scene(80, [mover((0.103, 0.5), (0.01, 0))])
    async with Running(bus) as service:
        await publish_scene(bus, first, frames=False)
        await wait_for(lambda: consumed(bus), 20, "first scene consumed")
        assert await count_events(bus) == 0
        await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
        await wait_for(lambda: "count" in service.engine.cameras[CAMERA].runners, 10, "rule loaded")
        # The same walker comes back left, then crosses right again.
        back = {seq: (0.893 - 0.01 * (seq - 81), 0.5) for seq in range(81, 161)}
        second = [r for r in scene(160, [lambda s: _box(back.get(s))]) if r.frame.seq > 80]
        await publish_scene(bus, second, frames=False)
        await wait_for(lambda: _at_least(bus, 1), 20, "a crossing after the reload")
        await wait_for(lambda: consumed(bus), 20, "second scene consumed")
    got = await events(bus)
    assert [(e.rule_id, e.direction) for e in got] == [("count", analysis_pb2.CROSSING_DIRECTION_OUT)]
    assert got[0].snapshot_id == ""  # no frames were published: no snapshot, and no error


def _box(point: tuple[float, float] | None) -> tuple[float, float, float, float] | None:
    if point is None:
        return None
    return (point[0] - 0.05, point[1] - 0.2, point[0] + 0.05, point[1])


def test_reference_frames_are_exact() -> None:
    # The scene helper's capture times map back to their frames (the tests above rely on it).
    assert seq_of(ref(41).capture_time) == 41


async def test_a_camera_added_while_running_is_consumed(bus: Bus) -> None:
    await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    async with Running(bus) as service:
        await wait_for(lambda: consumed(bus), 10, "the consumer of the first camera")
        other = camera(lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
        other = other.model_copy(update={"id": "cam2"})
        kv = await bus.kv(subjects.CAMERAS_BUCKET)
        await kv.put("cam2", other.to_proto().SerializeToString())
        await wait_for(lambda: "cam2" in service.engine.cameras, 10, "the second camera owned")
        for r in scene(80, [mover((0.103, 0.5), (0.01, 0))], camera="cam2"):
            await bus.publish(subjects.detections(r.analyzer, "cam2"), r)
        await wait_for(lambda: _at_least(bus, 1), 20, "a crossing on the second camera")
    info = await bus.js.consumer_info(subjects.DETECTIONS_STREAM, "behavior-0")
    assert sorted(info.config.filter_subjects or []) == ["detections.*.cam", "detections.*.cam2"]
    assert [e.camera_id for e in await events(bus)] == ["cam2"]


async def followed(bus: Bus, camera_id: str) -> bool:
    """Behavior has a pacing consumer on the camera's frames (decision 0079)."""
    try:
        await bus.js.consumer_info(subjects.FRAMES_STREAM, framepace.durable(camera_id))
    except NotFoundError:
        return False
    return True


async def test_behavior_follows_the_frames_of_lossless_cameras_only(bus: Bus) -> None:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    live = camera(source="rtsp://cam.example/stream").model_copy(update={"id": "live"})
    await kv.put("live", live.to_proto().SerializeToString())
    await put_camera(bus)  # a file, lossless by default
    async with Running(bus) as service:
        await wait_for(lambda: followed(bus, CAMERA), 10, "the file camera's pacing consumer")
        await wait_for(lambda: "live" in service.engine.cameras, 10, "the live camera owned")
        await put_camera(bus, pacing="realtime")  # the file, now in real time: not held back either
        await wait_for(lambda: _not(followed(bus, CAMERA)), 10, "the file's consumer deleted")
        await put_camera(bus)  # lossless again
        await wait_for(lambda: followed(bus, CAMERA), 10, "the file followed again")
        # Checked last, long after a consumer for it would have been created: nothing holds
        # a live camera back, so nothing follows it.
        assert not await followed(bus, "live")


async def _not(condition: Awaitable[bool]) -> bool:
    return not await condition


async def test_without_the_frame_a_face_crop_is_the_snapshot_and_bad_results_are_dead_lettered(
    bus: Bus,
) -> None:
    await put_camera(bus, rules=[{"id": "known", "type": "face_recognized"}])
    ok, crop = cv2.imencode(".jpg", np.full((40, 32, 3), 180, np.uint8))
    assert ok
    async with Running(bus):
        # Garbage and a result claiming another camera: dead-lettered, the service goes on.
        await bus.publish(subjects.detections("centerface", CAMERA), b"\xff\xff not protobuf")
        stray = analysis_pb2.AnalysisResult(frame=ref(1, "elsewhere"), analyzer="centerface")
        await bus.publish(subjects.detections("centerface", CAMERA), stray)
        for seq in range(1, 11):
            face = analysis_pb2.Detection(
                label="face",
                score=0.9,
                box=analysis_pb2.BoundingBox(x1=0.4, y1=0.2, x2=0.5, y2=0.35),
                identity=analysis_pb2.IdentityMatch(
                    identity_id="ada", display_name="Ada", distance=0.3, matched=True
                ),
                crop_jpeg=crop.tobytes(),
            )
            r = analysis_pb2.AnalysisResult(
                frame=ref(seq), analyzer="centerface", kind="faces", detections=[face]
            )
            r.frame.stream_sequence = 10_000 + seq  # never published: the frame is gone
            await bus.publish(subjects.detections("centerface", CAMERA), r)
        await wait_for(lambda: _at_least(bus, 1), 20, "the face event")
        await wait_for(lambda: consumed(bus), 20, "everything consumed")
        # STARTED while running; ENDED when the camera is removed (a graceful stop would
        # keep it open in the camera's checkpoint for the next owner).
        await (await bus.kv(subjects.CAMERAS_BUCKET)).delete(CAMERA)
        await wait_for(lambda: _at_least(bus, 2), 20, "the face event ended")
    started, ended = await events(bus)
    assert [started.state, ended.state] == [event_pb2.EVENT_STATE_STARTED, event_pb2.EVENT_STATE_ENDED]
    assert started.id == ended.id and ended.snapshot_id == started.snapshot_id
    event = started
    assert event.type == event_pb2.EVENT_TYPE_FACE_RECOGNIZED and event.identity_name == "Ada"
    store = await bus.object_store(subjects.SNAPSHOTS_STORE)
    assert (await store.get(event.snapshot_id)).data == crop.tobytes()
    dead = await bus.js.stream_info(subjects.DEADLETTER_STREAM)
    assert dead.state.messages == 2


async def test_a_result_held_for_reordering_is_acked_only_once_processed(bus: Bus) -> None:
    await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    results = scene(3, [mover((0.103, 0.5), (0.01, 0))])

    async def acks(pending: int) -> bool:
        try:
            info = await bus.js.consumer_info(subjects.DETECTIONS_STREAM, "behavior-0")
        except NotFoundError:
            return False
        return info.num_pending == 0 and info.num_ack_pending == pending

    async with Running(bus, reorder_timeout_s=60) as service:
        await wait_for(lambda: acks(0), 10, "the consumer")
        for r in (results[0], results[2]):  # frame 2 is missing: 3 waits for it
            await bus.publish(subjects.detections(r.analyzer, CAMERA), r)
        # A crash now must not lose frame 3: it is delivered but not acked.
        # Frame 3 counts as ack-pending once delivered, before the service has read it:
        # wait until it is in the reorder buffer too.
        await wait_for(
            lambda: service.engine.holds(CAMERA, "hog", 3), 10, "frame 3 held in the reorder buffer"
        )
        await wait_for(lambda: acks(1), 10, "frame 1 acked, frame 3 held unacked")
        assert service.engine.holds(CAMERA, "hog", 3) and service.engine.stats.processed == 1
        await bus.publish(subjects.detections("hog", CAMERA), results[1])
        await wait_for(lambda: acks(0), 10, "frames 2 and 3 processed and acked")
        assert service.engine.stats.processed == 3


def carphone_result(
    seq: int, analyzer: str, *detections: analysis_pb2.Detection
) -> analysis_pb2.AnalysisResult:
    kind = "faces" if analyzer == "centerface" else "objects"
    r = analysis_pb2.AnalysisResult(frame=ref(seq), analyzer=analyzer, kind=kind, detections=detections)
    r.frame.width, r.frame.height = 176, 144
    return r


def unknown_face(crop: bytes = b"") -> analysis_pb2.Detection:
    x1, y1, x2, y2 = CARPHONE_FACE
    return analysis_pb2.Detection(
        label="face",
        score=0.9,
        box=analysis_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
        identity=analysis_pb2.IdentityMatch(matched=False, distance=0.9),
        privacy=analysis_pb2.PRIVACY_BLUR,
        crop_jpeg=crop,
    )


async def test_snapshots_blur_faces_whose_privacy_says_blur(roomy_bus: Bus) -> None:
    """carphone's face, flagged PRIVACY_BLUR: blurred in its own event's snapshot and in a person's."""
    bus = roomy_bus
    await put_camera(
        bus,
        rules=[
            {"id": "stranger", "type": "unknown_face"},
            {"id": "people", "type": "object_detected", "labels": ["person"]},
        ],
    )
    original = carphone_frame()
    ok, jpeg = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    person = analysis_pb2.Detection(
        label="person", score=0.9, box=analysis_pb2.BoundingBox(x1=0.1, y1=0.1, x2=0.9, y2=1.0)
    )
    async with Running(bus):
        for seq in range(1, 11):
            frame = frame_pb2.Frame(
                camera_id=CAMERA, seq=seq, width=176, height=144, encoding=frame_pb2.IMAGE_ENCODING_JPEG
            )
            frame.capture_time.CopyFrom(ref(seq).capture_time)
            frame.data = jpeg.tobytes()
            ack = await bus.publish(subjects.frames(CAMERA), frame)
            # The face result first: the person's snapshot of the same frame must know the face.
            for r in (
                carphone_result(seq, "centerface", unknown_face()),
                carphone_result(seq, "hog", person),
            ):
                r.frame.stream_sequence = ack.seq
                await bus.publish(subjects.detections(r.analyzer, CAMERA), r)
        await wait_for(lambda: _at_least(bus, 2), 20, "the face and person events")
        await wait_for(lambda: consumed(bus), 20, "everything consumed")
    by_type = {e.type: e for e in await events(bus)}
    store = await bus.object_store(subjects.SNAPSHOTS_STORE)
    for kind in (event_pb2.EVENT_TYPE_UNKNOWN_FACE, event_pb2.EVENT_TYPE_OBJECT_DETECTED):
        snapshot = (await store.get(by_type[kind].snapshot_id)).data or b""
        assert_blurred(decode(snapshot), original, CARPHONE_FACE)


async def test_a_face_crop_snapshot_of_a_face_to_blur_is_blurred(bus: Bus) -> None:
    """Without the frame the crop is the snapshot: blurred again whoever made it."""
    await put_camera(bus, rules=[{"id": "stranger", "type": "unknown_face"}])
    face_crop = region(carphone_frame(), CARPHONE_FACE, shrink=0.0)
    ok, crop = cv2.imencode(".jpg", face_crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    async with Running(bus):
        for seq in range(1, 11):
            r = carphone_result(seq, "centerface", unknown_face(crop.tobytes()))
            r.frame.stream_sequence = 10_000 + seq  # never published: the frame is gone
            await bus.publish(subjects.detections("centerface", CAMERA), r)
        await wait_for(lambda: _at_least(bus, 1), 20, "the face event")
        await wait_for(lambda: consumed(bus), 20, "everything consumed")
    event = (await events(bus))[0]
    assert event.type == event_pb2.EVENT_TYPE_UNKNOWN_FACE and event.snapshot_id
    stored = (await (await bus.object_store(subjects.SNAPSHOTS_STORE)).get(event.snapshot_id)).data or b""
    assert sharpness(decode(stored)) < sharpness(face_crop) / 10


async def test_an_unusable_checkpoint_starts_the_camera_afresh_and_a_removed_camera_loses_its_own(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    states = await bus.kv(subjects.BEHAVIOR_STATE_BUCKET)
    await states.put(CAMERA, b"written by something else")
    async with Running(bus):
        await publish_scene(bus, crossing_scene(), frames=False)
        await wait_for(lambda: consumed(bus), 20, "all results consumed")
        await wait_for(lambda: _at_least(bus, 2), 20, "both crossings")
    assert (
        "camera cam starts with no state: not a checkpoint of format camsight.behavior.state/1" in caplog.text
    )
    # The graceful stop checkpointed the camera at its last result; a new replica restores it.
    last = (await bus.js.stream_info(subjects.DETECTIONS_STREAM)).state.last_seq
    entry = await states.get(CAMERA)
    assert checkpoint.load(entry.value or b"", BehaviorSettings()).position == last
    async with Running(bus) as again:
        assert again.engine.cameras[CAMERA].streams["hog"].tracker.confirmed == 2

        async def forgotten() -> bool:
            try:
                await states.get(CAMERA)
            except NotFoundError:
                return True
            return False

        await (await bus.kv(subjects.CAMERAS_BUCKET)).delete(CAMERA)
        await wait_for(forgotten, 10, "the removed camera's checkpoint deleted")
    assert await count_events(bus) == 2


async def test_a_replica_leaves_the_checkpoint_of_another_replicas_camera_alone(bus: Bus) -> None:
    mine = partition.owner(CAMERA, 2)
    other = next(f"cam{n}" for n in range(100) if partition.owner(f"cam{n}", 2) != mine)
    states = await bus.kv(subjects.BEHAVIOR_STATE_BUCKET)
    await states.put(other, b"the other replica's checkpoint")
    cameras = await bus.kv(subjects.CAMERAS_BUCKET)
    async with Running(bus, replicas=2, replica_index=mine) as service:
        for name in ("before", "after"):  # a camera of the other replica, changed, then removed
            entry = camera().model_copy(update={"id": other, "display_name": name})
            await cameras.put(other, entry.to_proto().SerializeToString())
        seen = service._cameras  # the registry as the service sees it
        await wait_for(lambda: getattr(seen.get(other), "display_name", "") == "after", 10, "the change seen")
        await cameras.delete(other)
        await wait_for(lambda: other not in seen, 10, "the removal seen")
    assert (await states.get(other)).value == b"the other replica's checkpoint"


async def test_a_checkpoint_ahead_of_the_stream_is_refused(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """DETECTIONS was recreated since (a test system reset): the old position would skip
    every new result, so the camera starts with no state instead."""
    await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    engine = Engine(BehaviorSettings())
    engine.set_camera(camera(lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}]))
    stale = checkpoint.Checkpoint(10**6, engine.cameras[CAMERA].state(), {})
    await (await bus.kv(subjects.BEHAVIOR_STATE_BUCKET)).put(
        CAMERA, checkpoint.dump(stale, BehaviorSettings())
    )
    async with Running(bus):
        await publish_scene(bus, crossing_scene(), frames=False)
        await wait_for(lambda: _at_least(bus, 2), 20, "both crossings")
    assert (
        "camera cam starts with no state: checkpoint is at DETECTIONS sequence 1000000, beyond" in caplog.text
    )


async def test_a_replica_stopping_without_nats_skips_its_checkpoints_and_stops(
    bus: Bus, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping while NATS is down does not wait out one store timeout per camera."""
    await put_camera(bus, lines=[DOOR], rules=[{"id": "count", "type": "line_cross", "line": "door"}])
    running = Running(bus)
    service = await running.__aenter__()
    await publish_scene(bus, crossing_scene(), frames=False)
    await wait_for(lambda: consumed(bus), 20, "all results consumed")
    nats_server.stop()
    await wait_for(lambda: not bus.connected, 20, "the client saw the server go")
    assert CAMERA in service.engine.cameras
    await asyncio.wait_for(running.__aexit__(None, None, None), 30)
    assert "not checkpointing 1 cameras at shutdown: not connected to NATS" in caplog.text


async def test_a_checkpoint_taken_under_other_settings_ends_its_open_events(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """Its state cannot go on, but it can be read: its open loitering ends (with the reason)
    instead of staying STARTED in the index for good."""
    square = {"id": "square", "polygon": [[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]}
    await put_camera(
        bus, zones=[square], rules=[{"id": "idle", "type": "loitering", "zone": "square", "duration_s": 1}]
    )
    standing = scene(40, [mover((0.5, 0.6), (0, 0))])
    async with Running(bus):
        await publish_scene(bus, standing, frames=False)
        await wait_for(lambda: consumed(bus), 20, "all results consumed")
    assert [e.state for e in await events(bus)] == [event_pb2.EVENT_STATE_STARTED]
    async with Running(bus, stationary_speed=0.3):
        await wait_for(lambda: _at_least(bus, 2), 20, "the open loitering ended")
    started, ended = await events(bus)
    assert (ended.id, ended.state) == (started.id, event_pb2.EVENT_STATE_ENDED)
    assert "behavior's state was reset: checkpoint was taken with other tracking settings" in (
        ended.explanation.summary
    )
    assert "camera cam starts with no state" in caplog.text
