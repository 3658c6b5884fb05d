"""The bus against a real nats-server: topology, de-duplication, worker semantics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
import pytest
from camsight.bus import Bus, Pipeline, PullWorker, WorkerConfig, connect, each, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.v1 import event_pb2, frame_pb2
from helpers import wait_for
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, StorageType


async def test_topology_is_idempotent(bus: Bus) -> None:
    await bus.ensure_topology()  # second declaration: no error, nothing changes
    names = {info.config.name async for info in _streams(bus)}
    assert {"FRAMES", "DETECTIONS", "EVENTS", "DEADLETTER"} <= names
    frames = await bus.js.stream_info("FRAMES")
    assert frames.config.max_msgs_per_subject == StreamSettings().frames_per_camera
    assert frames.config.storage == StorageType.MEMORY
    for bucket in (subjects.CAMERAS_BUCKET, subjects.CAMERA_STATUS_BUCKET, subjects.GALLERY_BUCKET):
        await bus.kv(bucket)
    await bus.object_store(subjects.SNAPSHOTS_STORE)


async def _streams(bus: Bus):
    for info in await bus.js.streams_info():
        yield info


async def test_changed_limits_update_the_stream(bus: Bus) -> None:
    bus.streams = StreamSettings(frames_per_camera=3)
    await bus.ensure_topology()
    assert (await bus.js.stream_info("FRAMES")).config.max_msgs_per_subject == 3


async def test_same_event_published_twice_is_stored_once(bus: Bus) -> None:
    event = event_pb2.Event(
        id="evt-1",
        type=event_pb2.EVENT_TYPE_ZONE_ENTER,
        state=event_pb2.EVENT_STATE_STARTED,
        camera_id="cam1",
    )
    first = await bus.publish_event(event)
    second = await bus.publish_event(event)
    assert not first.duplicate
    assert second.duplicate
    assert first.seq == second.seq
    info = await bus.js.stream_info("EVENTS")
    assert info.state.messages == 1
    # The next state of the same event is a new message.
    event.state = event_pb2.EVENT_STATE_ENDED
    assert not (await bus.publish_event(event)).duplicate
    assert (await bus.js.stream_info("EVENTS")).state.messages == 2


async def test_frames_keep_only_the_newest_per_camera(bus: Bus) -> None:
    for i in range(StreamSettings().frames_per_camera + 12):
        await bus.publish(subjects.frames("cam1"), str(i).encode())
    await bus.publish(subjects.frames("cam2"), b"x")
    info = await bus.js.stream_info("FRAMES")
    assert info.state.messages == StreamSettings().frames_per_camera + 1
    last = await bus.js.get_last_msg("FRAMES", subjects.frames("cam1"))
    assert last.data == str(StreamSettings().frames_per_camera + 11).encode()


def _config(durable: str, **kw) -> WorkerConfig:
    return WorkerConfig(
        stream="EVENTS", durable=durable, filter_subjects=["events.>"], fetch_timeout=0.2, **kw
    )


async def test_raising_handler_dead_letters_and_goes_on(bus: Bus) -> None:
    handled: list[str] = []

    async def handle(msg: Msg) -> None:
        event = event_pb2.Event.FromString(msg.data)
        if event.id == "bad":
            raise ValueError("rule exploded")
        handled.append(event.id)

    dlq = await bus.js.subscribe(subjects.deadletter("indexer"), stream="DEADLETTER")
    worker = PullWorker(bus, _config("indexer"), each(handle))
    task = asyncio.create_task(worker.run())
    for eid in ("a", "bad", "b"):
        await bus.publish_event(event_pb2.Event(id=eid, type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c"))
    # Not a protobuf Event at all: parse failure.
    await bus.publish("events.zone_enter.c", b"\xff\xff\xff garbage")
    await bus.publish_event(event_pb2.Event(id="c", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c"))
    await wait_for(lambda: handled == ["a", "b", "c"], what="good events handled in order")

    first = await dlq.next_msg(timeout=5)
    assert first.headers[subjects.ORIGINAL_SUBJECT_HEADER] == "events.zone_enter.c"
    assert "ValueError: rule exploded" in first.headers[subjects.ERROR_HEADER]
    assert event_pb2.Event.FromString(first.data).id == "bad"
    second = await dlq.next_msg(timeout=5)
    assert second.headers[subjects.ERROR_HEADER].startswith("MalformedMessageError")
    assert second.data == b"\xff\xff\xff garbage"

    await worker.stop()
    await asyncio.wait_for(task, 5)
    # Everything was acked: nothing pending for the consumer.
    info = await bus.js.consumer_info("EVENTS", "indexer")
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_unacked_message_is_redelivered_to_another_worker(
    nats_settings: NatsSettings, bus: Bus
) -> None:
    """Worker A takes the message and dies without acking; worker B gets it."""
    bus_a = await connect(nats_settings, StreamSettings(), name="a")
    a_got = asyncio.Event()

    async def hang(msgs: Sequence[Msg]) -> list[BaseException | None]:
        a_got.set()
        await asyncio.Event().wait()  # never returns: the process "dies" here
        raise AssertionError("unreachable")

    config = _config("shared", ack_wait=1.0)
    worker_a = PullWorker(bus_a, config, hang)
    task_a = asyncio.create_task(worker_a.run())
    await worker_a.subscribe()
    await bus.publish_event(event_pb2.Event(id="x", type=event_pb2.EVENT_TYPE_LINE_CROSS, camera_id="c"))
    await asyncio.wait_for(a_got.wait(), 5)
    task_a.cancel()
    await bus_a.nc.close()  # dies: no ack, no nak

    got: list[tuple[str, int]] = []

    async def record(msg: Msg) -> None:
        got.append((event_pb2.Event.FromString(msg.data).id, msg.metadata.num_delivered))

    worker_b = PullWorker(bus, config, each(record))
    task_b = asyncio.create_task(worker_b.run())
    await wait_for(lambda: got, what="redelivery to worker B")
    assert got == [("x", 2)]
    await worker_b.stop()
    await asyncio.wait_for(task_b, 5)


async def test_transient_failure_is_retried_not_dead_lettered(bus: Bus) -> None:
    attempts: list[int] = []

    async def flaky(msg: Msg) -> None:
        attempts.append(msg.metadata.num_delivered)
        if len(attempts) == 1:
            raise nats.errors.TimeoutError

    worker = PullWorker(bus, _config("flaky", retry_delay=0.05), each(flaky))
    task = asyncio.create_task(worker.run())
    await bus.publish_event(event_pb2.Event(id="t", type=event_pb2.EVENT_TYPE_ZONE_EXIT, camera_id="c"))
    await wait_for(lambda: len(attempts) == 2, what="redelivery after nak")
    assert attempts == [1, 2]
    await worker.stop()
    await asyncio.wait_for(task, 5)
    assert (await bus.js.stream_info("DEADLETTER")).state.messages == 0


async def test_a_worker_creates_its_consumer_again_when_the_stream_comes_back(bus: Bus) -> None:
    # FRAMES after a nats-server restart: the topology step declares the stream again, not the
    # analyzers' consumers; the worker that owns one creates it again (decision 0083).
    seen: list[int] = []

    async def record(msg: Msg) -> None:
        seen.append(frame_pb2.Frame.FromString(msg.data).seq)

    config = WorkerConfig(stream="FRAMES", durable="det", filter_subjects=["frames.>"], fetch_timeout=0.2)
    worker = PullWorker(bus, config, each(record))
    task = asyncio.create_task(worker.run())
    await bus.publish(subjects.frames("cam"), frame_pb2.Frame(camera_id="cam", seq=1))
    await wait_for(lambda: seen == [1], what="the first frame")
    await bus.js.delete_stream("FRAMES")  # what the restarted server has of a memory stream
    await bus.ensure_topology()
    await bus.publish(subjects.frames("cam"), frame_pb2.Frame(camera_id="cam", seq=2))
    await wait_for(lambda: seen == [1, 2], 10, "the frame published into the new stream")
    await worker.stop()
    await asyncio.wait_for(task, 5)


async def test_worker_with_several_filters(bus: Bus) -> None:
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    config = WorkerConfig(
        stream="EVENTS",
        durable="two",
        filter_subjects=["events.*.cam1", "events.*.cam2"],
        fetch_timeout=0.2,
        deliver_policy=DeliverPolicy.ALL,
    )
    worker = PullWorker(bus, config, each(record))
    task = asyncio.create_task(worker.run())
    for cam in ("cam1", "cam3", "cam2"):
        await bus.publish_event(event_pb2.Event(id=cam, type=event_pb2.EVENT_TYPE_ZONE_EXIT, camera_id=cam))
    await wait_for(lambda: len(seen) == 2, what="two filtered events")
    assert sorted(seen) == ["events.zone_exit.cam1", "events.zone_exit.cam2"]
    await worker.stop()
    await asyncio.wait_for(task, 5)


def test_bad_subject_tokens_are_refused() -> None:
    for bad in ("a.b", "*", ">", "", "x y", "../etc"):
        with pytest.raises(ValueError, match="invalid camera id"):
            subjects.frames(bad)


async def test_read_stream_returns_everything_stored_on_a_subject(bus: Bus) -> None:
    for i in range(600):
        await bus.publish(f"detections.hog.cam{i % 2}", str(i).encode())
    got = await bus.read_stream("DETECTIONS", "detections.*.cam1")
    assert got == [str(i).encode() for i in range(1, 600, 2)]
    assert await bus.read_stream("DETECTIONS", "detections.*.none") == []


async def test_kv_keys_lists_every_key_at_once_from_the_server(bus: Bus) -> None:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    assert await bus.kv_keys(subjects.CAMERAS_BUCKET) == []
    for key in ("b", "a", "c-1"):
        await kv.put(key, b"x")
    assert await bus.kv_keys(subjects.CAMERAS_BUCKET) == ["a", "b", "c-1"]  # no watcher to lag
    await kv.purge("b")
    assert await bus.kv_keys(subjects.CAMERAS_BUCKET) == ["a", "b", "c-1"]  # its marker is kept


async def test_a_pipeline_overlaps_its_stages_keeps_order_and_acks_after_the_last(bus: Bus) -> None:
    """Stage 1 takes batch n+1 while stage 2 still holds batch n; nothing is acked before stage 3."""
    release = asyncio.Event()
    seen: dict[str, list[str]] = {"first": [], "second": [], "last": []}

    def ids(msgs: Sequence[Msg]) -> list[str]:
        return [event_pb2.Event.FromString(m.data).id for m in msgs]

    async def first(msgs: Sequence[Msg]) -> Sequence[Msg]:
        seen["first"].extend(ids(msgs))
        return msgs

    async def second(msgs: Sequence[Msg]) -> Sequence[Msg]:
        seen["second"].extend(ids(msgs))
        if "bad" in ids(msgs):
            raise ValueError("stage exploded")
        await release.wait()  # the model is busy with this batch
        return msgs

    async def last(msgs: Sequence[Msg]) -> list[BaseException | None]:
        seen["last"].extend(ids(msgs))
        return [None] * len(msgs)

    worker = PullWorker(bus, _config("staged", batch=1), Pipeline([first, second, last]))
    task = asyncio.create_task(worker.run())
    for eid in ("a", "b", "c"):
        await bus.publish_event(event_pb2.Event(id=eid, type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c"))
    # "a" is held in stage 2; "b" went through stage 1 meanwhile (and waits for stage 2).
    await wait_for(lambda: seen["first"][:2] == ["a", "b"], what="stage 1 runs ahead of stage 2")
    assert seen["second"] == ["a"] and seen["last"] == []
    info = await bus.js.consumer_info("EVENTS", "staged")
    assert info.num_ack_pending >= 2  # delivered, not acked: the last stage has not run
    release.set()
    await bus.publish_event(event_pb2.Event(id="bad", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c"))
    await bus.publish_event(event_pb2.Event(id="d", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c"))
    await wait_for(lambda: seen["last"] == ["a", "b", "c", "d"], what="every good batch, in order")
    await worker.stop()
    await asyncio.wait_for(task, 5)
    info = await bus.js.consumer_info("EVENTS", "staged")
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert (await bus.js.stream_info("DEADLETTER")).state.messages == 1  # the failed batch
