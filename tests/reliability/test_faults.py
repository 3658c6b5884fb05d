"""Fault injection with real processes: SIGKILLed services, a restarted and a degraded NATS.

Every test publishes with acknowledgements and then proves that whatever
was acknowledged made it through (indexed, or stored in the stream) exactly
once. The query service's own kill -9 test is
tests/query/test_query_restart.py::test_killed_mid_ingest_loses_and_doubles_nothing;
these add the other failures of issue 11.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from camsight.bus import Bus, connect, subjects
from camsight.bus.worker import TRANSIENT_ERRORS
from camsight.cameras import CameraConfig
from camsight.config import NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.query.settings import default_index_path
from camsight.stores.cameras import Registry
from camsight.v1 import analysis_pb2, camera_pb2, event_pb2, frame_pb2
from helpers import sample_video, wait_for
from nats.js.api import AckPolicy, ConsumerConfig
from processes import ServiceProcess, cluster, restarted, retry

TESTS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    nats.errors.Error,
    nats.js.errors.Error,
)


def event(n: int) -> event_pb2.Event:
    e = event_pb2.Event(
        id=f"fault-{n:05d}",
        type=event_pb2.EVENT_TYPE_OBJECT_DETECTED,
        state=event_pb2.EVENT_STATE_ENDED,
        camera_id="lobby",
        label="person",
        revision=1,
    )
    e.start_time.FromSeconds(1_767_225_600 + n)
    return e


async def client(servers: list[str], name: str, **streams: Any) -> Bus:
    settings = NatsSettings(
        servers=servers, reconnect_wait_s=0.1, reconnect_jitter_s=0.05, connect_timeout_s=1
    )
    return await connect(settings, StreamSettings(**streams), name=name)


def indexed_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return [row[0] for row in conn.execute("SELECT id FROM events")]
    except sqlite3.OperationalError:  # schema not there yet
        return []


async def stream_messages(bus: Bus, stream: str, subject: str = ">") -> list[bytes]:
    return await bus.read_stream(stream, subject)


# -- NATS restart -------------------------------------------------------------------


async def test_nats_restart_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """SIGKILL the nats-server (file storage) under a running query service, start it
    again on the same port and store: the service reconnects, becomes ready again
    and indexes every event whose publish was acknowledged, once."""
    server = EmbeddedNats(store_dir=tmp_path / "js", log_file=tmp_path / "nats.log").start()
    query = ServiceProcess(
        "query",
        tmp_path,
        {
            "instance": "q1",
            "nats": {"servers": [server.url], "reconnect_wait_s": 0.1, "reconnect_jitter_s": 0.05},
            "data_dir": str(tmp_path / "data"),
            "log": {"level": "INFO"},
            "services": {"query": {"host": "127.0.0.1", "port": 0, "ack_wait_s": 1.0}},
        },
    ).start()
    bus = await client([server.url], "publisher")
    acknowledged: list[str] = []
    try:
        await bus.ensure_topology()
        await wait_for(query.ready, 30, "query ready")

        async def publish(n: int) -> None:
            e = event(n)
            await retry(lambda: bus.publish_event(e, timeout=1), PUBLISH_ERRORS)
            acknowledged.append(e.id)

        for n in range(150):
            await publish(n)
        server.kill()
        await wait_for(lambda: not query.ready(), 15, "query not ready while NATS is down")
        server = restarted(server).start()
        for n in range(150, 300):
            await publish(n)
        await wait_for(query.ready, 30, "query ready again after the restart")
        index = default_index_path(tmp_path / "data")
        await wait_for(
            lambda: len(indexed_ids(index)) >= len(acknowledged), 30, "every acknowledged event indexed"
        )
        ids = indexed_ids(index)
        assert sorted(ids) == sorted(set(ids)) and set(acknowledged) <= set(ids)
    finally:
        code = await query.stop()
        await bus.close()
        server.stop()
    assert code == 0, query.log.read_text()[-3000:]


# -- cluster --------------------------------------------------------------------------


async def test_cluster_loses_a_node_and_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    """Three routed servers, EVENTS at 3 replicas: SIGKILL the stream's leader mid-run.
    Publishing goes on (after a leader election) and every acknowledged event is stored once."""
    nodes = cluster(tmp_path)
    await asyncio.gather(*(asyncio.to_thread(n.start, 30) for n in nodes))
    urls = [n.url for n in nodes]
    bus = await client(urls, "cluster-publisher", events_replicas=3)
    try:
        await retry(bus.ensure_topology, PUBLISH_ERRORS, tries=100)
        info = await bus.js.stream_info(subjects.EVENTS_STREAM)
        assert info.config.num_replicas == 3
        acknowledged: list[str] = []
        for n in range(400):
            if n == 150:
                info = await retry(lambda: bus.js.stream_info(subjects.EVENTS_STREAM), PUBLISH_ERRORS)
                leader = info.cluster.leader  # type: ignore[union-attr]
                victim = next(node for node in nodes if node.server_name == leader)
                victim.kill()
            e = event(n)
            await retry(lambda e=e: bus.publish_event(e, timeout=1), PUBLISH_ERRORS)
            acknowledged.append(e.id)
        # Reads ride out the leader election too: the server may answer late under load.
        raw = await retry(lambda: stream_messages(bus, subjects.EVENTS_STREAM), PUBLISH_ERRORS)
        stored = [event_pb2.Event.FromString(data).id for data in raw]
        counts = Counter(stored)
        assert set(acknowledged) <= set(counts), "an acknowledged event was lost"
        assert max(counts.values()) == 1, "an event was stored twice"
        survivor = (await retry(lambda: bus.js.stream_info(subjects.EVENTS_STREAM), PUBLISH_ERRORS)).cluster
        assert survivor is not None and survivor.leader != victim.server_name
    finally:
        await bus.close()
        for node in nodes:
            node.stop()


async def test_a_file_loses_no_frame_when_the_cluster_node_holding_frames_restarts(tmp_path: Path) -> None:
    """In a cluster, FRAMES (one replica, in memory) outlives the restart of its node as a
    stream, but empty and numbering from 1 again, and the decoder, connected to another node,
    never sees its connection drop. It finds the frames the analyzer was owed gone once the
    acks stall, and decodes the file again after the last frame it acknowledged
    (decision 0083): the analyzer gets every frame, and the file ends once, whole."""
    nodes = cluster(tmp_path)
    await asyncio.gather(*(asyncio.to_thread(n.start, 30) for n in nodes))
    bus = await client([n.url for n in nodes], "analyzer")
    received: list[frame_pb2.Frame] = []
    decoder: ServiceProcess | None = None
    try:
        await retry(bus.ensure_topology, PUBLISH_ERRORS, tries=100)
        info = await retry(lambda: bus.js.stream_info(subjects.FRAMES_STREAM), PUBLISH_ERRORS)
        holder = next(n for n in nodes if n.server_name == info.cluster.leader)  # type: ignore[union-attr]
        others = [n.url for n in nodes if n is not holder]
        fast = {"reconnect_wait_s": 0.1, "reconnect_jitter_s": 0.05}
        settings = {"nats": {"servers": others, **fast}, "log": {"level": "INFO"}}
        decoder = ServiceProcess(
            "decoder", tmp_path, settings | {"services": {"decoder": {"status_interval_s": 0.2}}}
        )
        decoder.start()
        await wait_for(decoder.ready, 30, "decoder ready")
        stop = asyncio.Event()
        analyzer = asyncio.create_task(_analyze_slowly(bus, received, stop))
        camera = CameraConfig(id="car", source=str(sample_video("carphone_pristine.mp4")))
        await Registry(bus).put(camera.to_proto())
        await wait_for(lambda: len(received) >= 40, 60, "40 frames analysed")
        holder.stop()
        holder = restarted(holder).start()

        async def ended() -> bool:
            statuses = await retry(lambda: bus.kv(subjects.CAMERA_STATUS_BUCKET), PUBLISH_ERRORS)
            entry = await retry(lambda: statuses.get("car"), PUBLISH_ERRORS)
            status = camera_pb2.CameraStatus.FromString(entry.value or b"")
            return status.state == camera_pb2.CAMERA_STATE_ENDED and status.frames_published == 120

        await wait_for(ended, 120, "the file ended, every frame published")
        stop.set()
        await analyzer
        assert {f.seq for f in received} == set(range(1, 122))  # 120 pictures and the end marker
        assert received[-1].end_of_stream
        assert "decoding again after frame" in decoder.log.read_text()
    finally:
        if decoder is not None:
            assert await decoder.stop() == 0, decoder.log.read_text()[-3000:]
        await bus.close()
        for node in nodes:
            node.stop()


async def _analyze_slowly(bus: Bus, received: list[frame_pb2.Frame], stop: asyncio.Event) -> None:
    """An analyzer slower than the decoder: a durable consumer of every frame, acked one by one
    after a while, riding out the restart of a node."""
    config = ConsumerConfig(durable_name="analyzer", ack_policy=AckPolicy.EXPLICIT, sample_freq="100%")
    sub = await retry(
        lambda: bus.js.pull_subscribe(
            subjects.FRAMES_ALL, durable="analyzer", stream=subjects.FRAMES_STREAM, config=config
        ),
        PUBLISH_ERRORS,
    )
    while not stop.is_set():
        try:
            for msg in await sub.fetch(4, timeout=0.5):
                received.append(frame_pb2.Frame.FromString(msg.data))
                await asyncio.sleep(0.03)  # the analysis
                await msg.ack()
        except PUBLISH_ERRORS:
            continue


# -- behavior kill -9 ----------------------------------------------------------------

BEHAVIOR_CAMERA = CameraConfig.model_validate(
    {
        "id": "cam",
        "source": "file:///scene.mp4",
        "enabled": False,
        "zones": [{"id": "door", "polygon": [[0.3, 0.0], [0.7, 0.0], [0.7, 1.0], [0.3, 1.0]]}],
        "rules": [{"id": "enter", "type": "zone_enter", "zone": "door", "labels": ["person"]}],
    }
)
WALK = 40  # frames a person takes to cross the picture
GAP = 120  # empty frames between two people (longer than the tracker's memory)


def person_scene(frames: int, x: Callable[[int], float | None]) -> list[analysis_pb2.AnalysisResult]:
    """Results of camera ``cam`` at 8 fps: one person whose box is centred at ``x(seq)`` (none
    in the frame when None)."""
    out = []
    for seq in range(1, frames + 1):
        result = analysis_pb2.AnalysisResult(analyzer="hog", kind="objects")
        result.frame.CopyFrom(frame_pb2.FrameRef(camera_id="cam", seq=seq, width=640, height=480))
        result.frame.capture_time.FromNanoseconds(1_800_000_000 * 10**9 + seq * 125_000_000)
        result.frame.media_time.FromNanoseconds(seq * 125_000_000)
        cx = x(seq)
        if cx is not None:
            d = result.detections.add(label="person", score=0.9)
            d.box.x1, d.box.y1, d.box.x2, d.box.y2 = cx - 0.05, 0.4, cx + 0.05, 0.8
        out.append(result)
    return out


def behavior_scene(people: int) -> list[analysis_pb2.AnalysisResult]:
    """People crossing the zone one after another, GAP empty frames apart."""
    period = WALK + GAP

    def x(seq: int) -> float | None:
        step = (seq - 1) % period
        return 0.05 + 0.9 * step / WALK if step < WALK else None

    return person_scene(people * period, x)


async def test_behavior_killed_mid_run_reports_no_happening_twice(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """SIGKILL behavior while it consumes a quiet stretch, restart it: results after its
    checkpoint are processed again, each person's zone entry is reported under exactly one
    event id, and the event count matches an uninterrupted run."""
    bus = await client([nats_server.url], "behavior-test")
    behavior = behavior_process(tmp_path, nats_server, ack_wait_s=1.0, batch=16)
    results = behavior_scene(people=4)
    period = WALK + GAP
    try:
        await bus.ensure_topology()
        await (await bus.kv(subjects.CAMERAS_BUCKET)).put(
            "cam", BEHAVIOR_CAMERA.to_proto().SerializeToString()
        )
        behavior.start()
        await wait_for(behavior.ready, 30, "behavior ready")

        # Two people, then half of the gap after them: their events are complete.
        first = 2 * period - GAP // 2
        last = await publish_results(bus, results[:first])
        await wait_for(lambda: handled(bus, last), 30, "the first two people handled")
        # The rest of the quiet stretch arrives; kill while it is being consumed.
        await publish_results(bus, results[first : 2 * period])
        await behavior.kill9()
        behavior.start()
        last = await publish_results(bus, results[2 * period :])
        await wait_for(behavior.ready, 30, "behavior ready after the restart")
        await wait_for(lambda: handled(bus, last), 30, "every result handled after the restart")
        expected = reference_events(results)
        await wait_for(
            lambda: events_settled(bus, len(expected)), 20, f"{len(expected)} event messages stored"
        )
        stored = [event_pb2.Event.FromString(d) for d in await stream_messages(bus, subjects.EVENTS_STREAM)]
    finally:
        code = await behavior.stop()
        await bus.close()
    assert code == 0, behavior.log.read_text()[-3000:]
    keys = Counter((e.id, e.state, e.revision) for e in stored)
    assert max(keys.values()) == 1
    happenings: dict[tuple[str, int], set[str]] = {}
    for e in stored:
        happenings.setdefault((e.rule_id, e.start_time.ToNanoseconds()), set()).add(e.id)
    assert all(len(ids) == 1 for ids in happenings.values()), happenings
    assert len(happenings) == len({(e.rule_id, e.start_time.ToNanoseconds()) for e in expected}) == 4
    assert Counter(e.state for e in stored) == Counter(e.state for e in expected)


def behavior_process(tmp_path: Path, nats_server: EmbeddedNats, **settings: Any) -> ServiceProcess:
    """``camsight serve behavior`` on ``nats_server`` (not started), with ``settings``."""
    return ServiceProcess(
        "behavior",
        tmp_path,
        {
            "nats": {"servers": [nats_server.url], "reconnect_wait_s": 0.1},
            "log": {"level": "INFO"},
            "services": {"behavior": {"reorder_timeout_s": 0.2, **settings}},
        },
    )


async def publish_results(bus: Bus, results: list[analysis_pb2.AnalysisResult]) -> int:
    """Publish camera ``cam``'s results; returns the DETECTIONS sequence of the last one."""
    seq = 0
    for r in results:
        seq = (await bus.publish(subjects.detections("hog", "cam"), r)).seq
    return seq


async def handled(bus: Bus, seq: int) -> bool:
    """Behavior acknowledged every DETECTIONS message up to ``seq``."""
    try:
        info = await bus.js.consumer_info(subjects.DETECTIONS_STREAM, "behavior-0")
    except nats.js.errors.NotFoundError:  # a restarted replica recreates it at its checkpoint
        return False
    return bool(info.ack_floor and (info.ack_floor.stream_seq or 0) >= seq)


async def events_settled(bus: Bus, count: int) -> bool:
    info = await bus.js.stream_info(subjects.EVENTS_STREAM)
    return bool(info.state.messages >= count)


def reference_events(
    results: list[analysis_pb2.AnalysisResult], config: CameraConfig = BEHAVIOR_CAMERA
) -> list[event_pb2.Event]:
    """What one uninterrupted engine makes of the same results."""
    from camsight.behavior.engine import Engine
    from camsight.behavior.settings import BehaviorSettings

    engine = Engine(BehaviorSettings())
    engine.set_camera(config)
    emissions = [em for r in results for em in engine.push(r)] + engine.flush()
    return [em.event for em in emissions if em.event is not None]


DWELL_CAMERA = CameraConfig.model_validate(
    {
        "id": "cam",
        "source": "file:///scene.mp4",
        "enabled": False,
        "zones": [{"id": "bench", "polygon": [[0.35, 0.0], [0.65, 0.0], [0.65, 1.0], [0.35, 1.0]]}],
        "rules": [
            {"id": "enter", "type": "zone_enter", "zone": "bench", "labels": ["person"]},
            {"id": "dwell", "type": "loitering", "zone": "bench", "duration_s": 3, "labels": ["person"]},
            {"id": "exit", "type": "zone_exit", "zone": "bench", "labels": ["person"]},
        ],
    }
)


def dwell_scene() -> list[analysis_pb2.AnalysisResult]:
    """A person walks into the zone (frames 1-16), stands there swaying for 8 s (17-80),
    walks out (81-96); 54 empty frames follow (longer than the tracker's memory)."""

    def x(seq: int) -> float | None:
        if seq <= 16:
            return 0.05 + 0.45 * seq / 16
        if seq <= 80:
            return 0.5 + (0.005 if seq % 2 else -0.005)
        if seq <= 96:
            return 0.5 + 0.45 * (seq - 80) / 16
        return None

    return person_scene(150, x)


async def test_behavior_killed_mid_dwell_restores_its_state_no_event_lost_or_doubled(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """A person dwells in a zone; behavior is SIGKILLed before the loitering threshold,
    stopped for an upgrade (SIGTERM) after the loitering started, and SIGKILLed again
    later in the dwell, each time while consuming, and started again. Its state comes
    back from the camera's checkpoint: exactly one zone entry, one loitering (started,
    updated, ended under one id) and one exit, message for message those of an
    uninterrupted run: 0 lost, 0 duplicated."""
    bus = await client([nats_server.url], "behavior-test")
    behavior = behavior_process(tmp_path, nats_server, batch=4)
    results = dwell_scene()

    try:
        await bus.ensure_topology()
        await (await bus.kv(subjects.CAMERAS_BUCKET)).put("cam", DWELL_CAMERA.to_proto().SerializeToString())
        behavior.start()
        await wait_for(behavior.ready, 30, "behavior ready")
        # Interruptions: after the entry (frame ~12), before the loitering starts (~36);
        # after it started; late in the dwell, after its first update (~76).
        done = 0
        for cut, interrupt in ((30, behavior.kill9), (48, behavior.stop), (77, behavior.kill9)):
            last = await publish_results(bus, results[done:cut])
            await wait_for(lambda last=last: handled(bus, last), 30, f"results up to frame {cut} handled")
            await publish_results(bus, results[cut : cut + 4])  # interrupted while consuming these
            await interrupt()
            behavior.start()
            done = cut + 4
        last = await publish_results(bus, results[done:])
        await wait_for(behavior.ready, 30, "behavior ready after the last restart")
        await wait_for(lambda: handled(bus, last), 30, "every result handled")
        expected = reference_events(results, DWELL_CAMERA)
        await wait_for(lambda: events_settled(bus, len(expected)), 20, f"{len(expected)} event messages")
        stored = [event_pb2.Event.FromString(d) for d in await stream_messages(bus, subjects.EVENTS_STREAM)]
    finally:
        code = await behavior.stop()
        await bus.close()
    assert code == 0, behavior.log.read_text()[-3000:]
    states = Counter((e.rule_id, event_pb2.EventState.Name(e.state)) for e in stored)
    assert states == {
        ("enter", "EVENT_STATE_ENDED"): 1,
        ("dwell", "EVENT_STATE_STARTED"): 1,
        ("dwell", "EVENT_STATE_UPDATED"): 1,
        ("dwell", "EVENT_STATE_ENDED"): 1,
        ("exit", "EVENT_STATE_ENDED"): 1,
    }, stored
    assert len({e.id for e in stored if e.rule_id == "dwell"}) == 1
    assert [e.SerializeToString(deterministic=True) for e in stored] == [
        e.SerializeToString(deterministic=True) for e in expected
    ]
    log = behavior.log.read_text()
    assert log.count("restored from its checkpoint") == 3, log[-3000:]


# -- analyzer replica kill -9 -----------------------------------------------------------


async def test_killed_analyzer_replica_frames_are_redelivered(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """A real decoder plays a file losslessly to two detector replicas sharing one
    consumer; SIGKILL one mid-run. Every frame the decoder published still gets a
    result: what the dead replica held comes back to the survivor after ack_wait_s
    (the decoder's lossless window waits for it, so nothing is evicted meanwhile)."""
    bus = await client([nats_server.url], "analyzer-test")
    await bus.ensure_topology()
    common = {
        "nats": {"servers": [nats_server.url], "reconnect_wait_s": 0.1},
        "log": {"level": "INFO"},
    }
    detector = {
        "analyzers": {"hold": {}},
        "plugin_modules": ["hold_plugin"],
        "batch": 4,
        "ack_wait_s": 1.0,
        "max_frame_age_s": 0,
    }
    held = tmp_path / "held"
    replicas = [
        ServiceProcess(
            "detector",
            tmp_path / f"r{i}",
            common | {"services": {"detector": detector}},
            env={"CAMSIGHT_TEST_HOLD": str(held)} if i == 0 else {},
        )
        for i in range(2)
    ]
    camera = {"id": "cam", "source": str(sample_video("bikes.mp4")), "fps": 10, "max_width": 320}
    decoder = ServiceProcess(
        "decoder",
        tmp_path / "decoder",
        common | {"cameras": [camera], "services": {"decoder": {"status_interval_s": 0.5}}},
    )
    seen: Counter[int] = Counter()
    ends: list[int] = []  # the answer to the decoder's end-of-file marker (not a frame)

    async def collect(msg: Any) -> None:
        result = analysis_pb2.AnalysisResult.FromString(msg.data)
        if result.frame.camera_id == "cam":
            if result.frame.end_of_stream:
                ends.append(result.frame.seq)
            else:
                seen[result.frame.seq] += 1

    sub = await bus.nc.subscribe("detections.>", cb=collect)
    try:
        for process in (*replicas, decoder):
            process.workdir.mkdir()
        for replica in replicas:
            replica.start()
        await wait_for(lambda: all(r.ready() for r in replicas), 60, "both replicas ready")
        decoder.start()
        await wait_for(held.exists, 60, "replica 0 holding a batch")
        await replicas[0].kill9()
        in_hand = [int(seq) for seq in held.read_text().split(",")]
        status = await wait_for_camera_end(bus)
        total = status.frames_published
        assert total >= 90 and status.frames_dropped == 0
        await wait_for(lambda: len(seen) >= total, 30, f"a result for each of {total} frames")
        assert replicas[1].ready()
    finally:
        await sub.unsubscribe()
        codes = [await replicas[1].stop(), await decoder.stop()]
        await bus.close()
    assert sorted(seen) == list(range(1, total + 1))
    assert ends == [total + 1]
    assert codes == [0, 0], replicas[1].log.read_text()[-3000:] + decoder.log.read_text()[-3000:]
    # Replica 0 never returned from analyze(): these results came from the survivor.
    assert in_hand and all(seen[seq] == 1 for seq in in_hand), in_hand


# -- behavior far behind the analyzers ---------------------------------------------------


def slow_rule_site(tmp_path: Path) -> Path:
    """A folder that, on ``PYTHONPATH``, installs slow_rule.py as a rule plugin (entry point)."""
    info = tmp_path / "site" / "slow_rule-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-rule\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[camsight]\nslow_rule = slow_rule\n")
    return info.parent


def walk_file_services(tmp_path: Path, nats_server: EmbeddedNats, **behavior: Any) -> list[ServiceProcess]:
    """Decoder, behavior (``behavior`` settings) and a fast detector (the scene's true boxes)
    for camera ``cam``: a 200-frame file with two walkers early on, whose frames would be
    long evicted (the analyzers are done with the file in a few seconds) before a slow
    behavior got to them; rules ``seen`` (object_detected) and ``heavy`` (slow_rule.py,
    50 ms of behavior's time per frame: a tenth of the analyzers' rate)."""
    from behavior.truth_video import FPS, Figure, write

    walkers = [Figure([(0, -20, 120), (40, 340, 120)]), Figure([(30, 340, 220), (70, -20, 220)])]
    video = write(tmp_path / "walk.mp4", walkers, 200)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([[b for f in walkers if (b := f.box(i))] for i in range(200)]))
    common = {"nats": {"servers": [nats_server.url], "reconnect_wait_s": 0.1}, "log": {"level": "INFO"}}
    camera = {
        "id": "cam",
        "source": str(video),
        "rules": [
            {"id": "seen", "type": "object_detected", "labels": ["person"]},
            {"id": "heavy", "type": "slow", "config": {"cost_s": 0.05}},
        ],
    }
    path = [slow_rule_site(tmp_path), TESTS, TESTS / "reliability"]
    env = {"PYTHONPATH": os.pathsep.join([*map(str, path), os.environ.get("PYTHONPATH", "")])}
    truth_analyzer = {"sparse_truth": {"truth": str(truth), "fps": FPS, "drop": 0.2}}
    detector = {"analyzers": truth_analyzer, "plugin_modules": ["behavior.truth_plugin"]}
    settings = {
        "decoder": {"cameras": [camera]},
        "behavior": {"cameras": [camera], "services": {"behavior": behavior}},
        "detector": {"services": {"detector": detector}},
    }
    services = [
        ServiceProcess(name, tmp_path / name, common | extra, env=env) for name, extra in settings.items()
    ]
    for process in services:
        process.workdir.mkdir()
    return services


async def start(process: ServiceProcess) -> None:
    process.start()
    await wait_for(process.ready, 60, f"{process.name} ready")


async def test_a_file_keeps_every_snapshot_however_far_behavior_lags(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """A real decoder plays a file losslessly to a fast detector and a behavior slowed by a
    heavy rule to a tenth of their rate, with the default ``frames_per_camera`` (32): the
    camera is paced on behavior too (decision 0079), so every snapshot frame is still on
    FRAMES when behavior gets to it, and every event message names a stored snapshot."""
    bus = await client([nats_server.url], "lag-test")
    await bus.ensure_topology()
    services = walk_file_services(tmp_path, nats_server)
    decoder, behavior, detector = services
    try:
        # The camera waits for an analyzer (behavior's consumer alone starts nothing): the
        # detector comes last, once behavior follows the camera, so every frame is paced on it.
        await start(decoder)
        await start(behavior)
        await wait_for(lambda: follows(bus), 30, "behavior following the camera's frames")
        await start(detector)
        status = await wait_for_camera_end(bus)
        assert status.frames_published == 200 and status.frames_dropped == 0
        last = (await bus.js.stream_info(subjects.DETECTIONS_STREAM)).state.last_seq
        await wait_for(lambda: handled(bus, last), 60, "behavior through every result")
        events = [event_pb2.Event.FromString(m) for m in await stream_messages(bus, subjects.EVENTS_STREAM)]
    finally:
        codes = [await p.stop() for p in reversed(services)]
        await bus.close()
    assert codes == [0, 0, 0], "".join(p.log.read_text()[-2000:] for p in services)
    seen = [e for e in events if e.rule_id == "seen"]
    assert len({e.id for e in seen}) == 2, [(e.id, e.state) for e in seen]
    assert all(e.snapshot_id for e in seen), [(e.id, e.state, e.snapshot_id) for e in seen]


async def test_a_stopped_behavior_holds_a_file_back_only_until_its_consumer_expires(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """Behavior follows the camera, then stops (its consumer stays, for a restart): the file
    is held back, and goes on to its end once the server deleted the idle consumer after
    ``frames_inactive_s``; a file never waits on a behavior that is gone."""
    bus = await client([nats_server.url], "stopped-behavior-test")
    await bus.ensure_topology()
    decoder, behavior, detector = walk_file_services(tmp_path, nats_server, frames_inactive_s=5)
    try:
        await start(decoder)
        await start(behavior)
        await wait_for(lambda: follows(bus), 30, "behavior following the camera's frames")
        assert await behavior.stop() == 0
        assert await follows(bus)  # kept: a replica back within frames_inactive_s goes on
        await start(detector)
        status = await wait_for_camera_end(bus)
        assert status.frames_published == 200 and status.frames_dropped == 0
        assert not await follows(bus)
    finally:
        codes = [await detector.stop(), await decoder.stop()]
        await bus.close()
    assert codes == [0, 0], detector.log.read_text()[-2000:] + decoder.log.read_text()[-2000:]


async def follows(bus: Bus) -> bool:
    try:
        info = await bus.js.consumer_info(subjects.FRAMES_STREAM, "behavior-frames-cam")
    except nats.js.errors.NotFoundError:
        return False
    return info.config.filter_subject == subjects.frames("cam")


async def wait_for_camera_end(bus: Bus) -> camera_pb2.CameraStatus:
    status_kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    found: list[camera_pb2.CameraStatus] = []

    async def ended() -> bool:
        try:
            entry = await status_kv.get("cam")
        except nats.js.errors.KeyNotFoundError:
            return False
        found.append(camera_pb2.CameraStatus.FromString(entry.value or b""))
        assert found[-1].state != camera_pb2.CAMERA_STATE_ERROR, found[-1].last_error
        return found[-1].state == camera_pb2.CAMERA_STATE_ENDED

    await wait_for(ended, 60, "the file camera to end")
    return found[-1]
