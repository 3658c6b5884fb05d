"""The decoder service end to end: a real nats-server, real OpenCV decoding of the sample videos."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig
from camsight.decoder.settings import DecoderSettings
from camsight.v1 import camera_pb2, event_pb2, frame_pb2
from decoder_support import (
    TRUNCATED,
    Frames,
    StartDecoder,
    camera_status,
    put_camera,
    state_is,
    truncated_video,
)
from helpers import sample_video, wait_for
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY


def bikes(camera_id: str = "bikes", **kw: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": camera_id, "source": str(sample_video("bikes.mp4")), "pacing": "realtime", "loop": True, **kw}
    )


async def test_config_cameras_are_seeded_and_frames_flow_until_removed(
    bus: Bus, start_decoder: StartDecoder
) -> None:
    frames = await Frames.subscribe(bus, "bikes")
    decoder = await start_decoder([bikes(max_width=320, max_height=320)])
    registry = await bus.kv(subjects.CAMERAS_BUCKET)
    assert CameraConfig.from_proto(
        camera_pb2.Camera.FromString((await registry.get("bikes")).value or b"")
    ).id
    await wait_for(lambda: len(frames.frames) >= 5, 15, "frames of the seeded camera")
    seqs = [f.seq for f in frames.frames]
    assert seqs == list(range(1, len(seqs) + 1))
    first = frames.frames[0]
    assert (first.width, first.height) == (320, 136)  # 640x272 fitted into 320x320
    assert (first.source_width, first.source_height) == (640, 272)
    assert not first.paced
    assert cv2.imdecode(np.frombuffer(first.data, np.uint8), cv2.IMREAD_COLOR).shape == (136, 320, 3)
    media = [f.media_time.ToTimedelta().total_seconds() for f in frames.frames[:5]]
    assert media == sorted(media) and media[1] > media[0]
    await wait_for(state_is(bus, "bikes", camera_pb2.CAMERA_STATE_ONLINE), 5, "online status")

    # A camera added at run time starts without a restart.
    other = await Frames.subscribe(bus, "carphone")
    await put_camera(bus, bikes("carphone", source=str(sample_video("carphone_pristine.mp4")), fps=10))
    await wait_for(lambda: len(other.frames) >= 3, 15, "frames of the added camera")

    # Removing a camera stops its frames, without a restart.
    await registry.delete("bikes")
    await wait_for(lambda: "bikes" not in decoder.service.owned(), 10, "camera stopped")
    last = (await bus.js.get_last_msg(subjects.FRAMES_STREAM, subjects.frames("bikes"))).seq
    seen = len(other.frames)
    await wait_for(lambda: len(other.frames) >= seen + 5, 15, "the other camera going on")
    assert (await bus.js.get_last_msg(subjects.FRAMES_STREAM, subjects.frames("bikes"))).seq == last
    assert await camera_status(bus, "bikes") is None


async def _slow_consumer(
    bus: Bus, received: list[frame_pb2.Frame], stop: asyncio.Event, camera: str = "carphone"
) -> None:
    sub = await bus.js.pull_subscribe(
        subjects.frames(camera),
        durable="slow",
        stream=subjects.FRAMES_STREAM,
        config=ConsumerConfig(durable_name="slow", ack_policy=AckPolicy.EXPLICIT, sample_freq="100%"),
    )
    while not stop.is_set():
        try:
            msgs = await sub.fetch(2, timeout=0.5)
        except TimeoutError:
            continue
        for msg in msgs:
            received.append(frame_pb2.Frame.FromString(msg.data))
            await asyncio.sleep(0.005)  # simulated analysis work: slower than the decoder
            await msg.ack()
    await sub.unsubscribe()


@pytest.mark.parametrize("encode_thread", [True, False], ids=["encode-thread", "one-thread"])
async def test_lossless_file_loses_no_frame_and_ends(
    bus: Bus, start_decoder: StartDecoder, encode_thread: bool
) -> None:
    camera = CameraConfig(id="carphone", source=str(sample_video("carphone_pristine.mp4")))
    await start_decoder([camera], encode_thread=encode_thread)
    # No analyzer yet: the camera waits instead of publishing into the void.
    await wait_for(state_is(bus, "carphone", camera_pb2.CAMERA_STATE_STARTING), 5, "starting")

    async def waiting() -> bool:
        status = await camera_status(bus, "carphone")
        return status is not None and "waiting for analyzers" in status.last_error

    await wait_for(waiting, 5, "waiting for analyzers")
    received: list[frame_pb2.Frame] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(_slow_consumer(bus, received, stop))
    await wait_for(state_is(bus, "carphone", camera_pb2.CAMERA_STATE_ENDED), 60, "ended")
    stop.set()
    await consumer
    # 120 pictures, then the end marker (seq 121, no image, media time of the last frame).
    assert [f.seq for f in received] == list(range(1, 122))
    assert all(f.paced for f in received)
    *pictures, marker = received
    assert not any(f.end_of_stream for f in pictures) and all(f.data for f in pictures)
    assert marker.end_of_stream and not marker.data
    assert marker.media_time == pictures[-1].media_time
    # The same pictures whichever thread encodes them: carphone's own, in order.
    first = cv2.imdecode(np.frombuffer(pictures[0].data, np.uint8), cv2.IMREAD_COLOR)
    capture = cv2.VideoCapture(camera.source)
    ok, expected = capture.read()
    capture.release()
    assert ok and first.shape == expected.shape and np.abs(first.astype(int) - expected).mean() < 3
    times = [f.media_time.ToNanoseconds() for f in pictures]
    assert times == sorted(times) and len(set(times)) == len(times)
    status = await camera_status(bus, "carphone")
    assert status is not None
    assert status.frames_published == 120 and status.frames_dropped == 0 and status.progress == 1.0
    states = await _status_events(bus, "carphone")
    assert states[-1] == "ended" and "online" in states


async def test_a_truncated_file_is_analysed_as_far_as_it_goes_then_its_camera_is_in_error(
    bus: Bus, start_decoder: StartDecoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Readable up to the cut, so it used to end like a whole file: "ended", 100 %, no error.
    caplog.set_level(logging.WARNING, logger="camsight.decoder.status")
    path = truncated_video(tmp_path / "cut.mp4")
    await start_decoder([CameraConfig(id="cut", source=str(path))])
    received: list[frame_pb2.Frame] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(_slow_consumer(bus, received, stop, "cut"))
    await wait_for(state_is(bus, "cut", camera_pb2.CAMERA_STATE_ERROR), 60, "camera in error")
    stop.set()
    await consumer
    # Every picture there is, then the end marker (behavior closes the file's events on it),
    # acknowledged before the error is reported.
    assert [f.seq for f in received] == list(range(1, 142)) and received[-1].end_of_stream
    status = await camera_status(bus, "cut")
    assert status is not None and status.last_error == f"{path}: {TRUNCATED}"
    assert status.frames_published == 140 and status.progress == pytest.approx(0.56)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"camera cut is error: {path}: {TRUNCATED}"]


async def test_a_truncated_file_looped_is_said_once_and_loops_what_there_is(
    bus: Bus, start_decoder: StartDecoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="camsight.decoder")
    path = truncated_video(tmp_path / "cut.mp4")
    await start_decoder([CameraConfig(id="cut", source=str(path), loop=True)])
    received: list[frame_pb2.Frame] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(_slow_consumer(bus, received, stop, "cut"))
    await wait_for(lambda: len(received) > 2 * 140 + 1, 60, "the readable part looped twice")
    stop.set()
    await consumer
    assert not any(f.end_of_stream for f in received)
    status = await camera_status(bus, "cut")
    assert status is not None and status.state == camera_pb2.CAMERA_STATE_ONLINE
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"camera cut: {path}: {TRUNCATED}; looping the part that can be read"]


@pytest.mark.parametrize(("window", "batch"), [(None, None), (9, 7)], ids=["defaults", "partial-batches"])
async def test_lossless_frames_go_in_batches_within_the_window(
    bus: Bus, start_decoder: StartDecoder, window: int | None, batch: int | None
) -> None:
    # An analyzer acks 60 of carphone's 120 frames, then holds the rest: the camera stops
    # mid-file, as many whole batches ahead of the acks as the pacing window allows.
    window, batch = window or DecoderSettings().pacing_window, batch or DecoderSettings().publish_batch
    sub = await bus.js.pull_subscribe(
        "frames.carphone",
        durable="half",
        stream=subjects.FRAMES_STREAM,
        config=ConsumerConfig(durable_name="half", ack_policy=AckPolicy.EXPLICIT, sample_freq="100%"),
    )
    camera = CameraConfig(id="carphone", source=str(sample_video("carphone_pristine.mp4")))
    await start_decoder([camera], pacing_window=window, publish_batch=batch)
    received: list[frame_pb2.Frame] = []

    async def ack(count: int) -> None:
        with contextlib.suppress(TimeoutError):
            for msg in await sub.fetch(count, timeout=0.5):
                received.append(frame_pb2.Frame.FromString(msg.data))
                await msg.ack()

    while len(received) < 60:
        await ack(min(4, 60 - len(received)))
    ahead = (60 + window) // batch * batch  # the last whole batch that fits in the window

    async def stopped_ahead() -> bool:
        status = await camera_status(bus, "carphone")
        return status is not None and status.frames_published == ahead

    await wait_for(stopped_ahead, 10, f"{ahead} frames published for 60 acked")
    status = await camera_status(bus, "carphone")
    assert status is not None and status.state == camera_pb2.CAMERA_STATE_ONLINE
    assert status.progress == pytest.approx(ahead / 120)  # the fraction published, not decoded
    last = await bus.js.get_last_msg(subjects.FRAMES_STREAM, subjects.frames("carphone"))
    assert frame_pb2.Frame.FromString(last.data or b"").seq == ahead

    # The rest, with a last batch shorter than the others when 120 is no multiple of it.
    while not (received and received[-1].end_of_stream):
        await ack(16)
    assert [f.seq for f in received] == list(range(1, 122))
    await wait_for(state_is(bus, "carphone", camera_pb2.CAMERA_STATE_ENDED), 10, "ended")
    status = await camera_status(bus, "carphone")
    assert status is not None and status.frames_published == 120 and status.progress == 1.0
    await sub.unsubscribe()


@pytest.mark.parametrize(
    ("encode_thread", "message"),
    [(True, "encoder failure: RuntimeError"), (False, "decoder failure: RuntimeError")],
    ids=["encode-thread", "one-thread"],
)
async def test_a_failing_encoder_fails_its_camera_alone(
    bus: Bus, start_decoder: StartDecoder, monkeypatch: pytest.MonkeyPatch, encode_thread: bool, message: str
) -> None:
    # A bug (not an OpenCV error, which counts a corrupt frame) in the encode step: the
    # camera goes to error naming the thread and the error; the service and the other
    # camera go on.
    from camsight.decoder import nvjpeg as encoder_module  # the camera's encoder calls OpenCV's path

    real = encoder_module.resize_and_encode

    def encode(image: np.ndarray, width: int, height: int, quality: int) -> object:
        if width == 100:  # only the broken camera's size
            raise RuntimeError("bug")
        return real(image, width, height, quality)

    monkeypatch.setattr(encoder_module, "resize_and_encode", encode)
    broken = CameraConfig(id="broken", source=str(sample_video("carphone_pristine.mp4")), max_width=100)
    decoder = await start_decoder([broken, bikes()], encode_thread=encode_thread)
    await wait_for(state_is(bus, "broken", camera_pb2.CAMERA_STATE_ERROR), 10, "broken camera in error")
    status = await camera_status(bus, "broken")
    assert status is not None and status.last_error == message
    other = await Frames.subscribe(bus, "bikes")
    await wait_for(lambda: other.more_than(3), 10, "the other camera going on")
    assert not decoder.task.done()


async def test_a_stopped_camera_accounts_for_every_frame_it_sent(
    bus: Bus, start_decoder: StartDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    # Lossless: frames are sent ahead of their PubAcks (up to pacing_window), so a
    # stop usually finds some in flight; they must still be counted.
    caplog.set_level(logging.ERROR, logger="asyncio")
    camera = CameraConfig(id="carphone", source=str(sample_video("carphone_pristine.mp4")), loop=True)
    decoder = await start_decoder([camera])
    received: list[frame_pb2.Frame] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(_slow_consumer(bus, received, stop))
    await wait_for(lambda: len(received) >= 20, 30, "frames flowing")
    await decoder.stop()
    stop.set()
    await consumer
    # Nothing of the camera's ends unobserved: asyncio reports a task whose exception nobody
    # retrieved when it is collected (a turn cancelled while stop() closed its channel).
    gc.collect()
    assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == []
    status = await camera_status(bus, "carphone")
    last = await bus.js.get_last_msg(subjects.FRAMES_STREAM, subjects.frames("carphone"))
    assert status is not None and status.state == camera_pb2.CAMERA_STATE_STOPPED
    assert status.frames_published + status.frames_dropped == frame_pb2.Frame.FromString(last.data or b"").seq


async def test_a_file_taken_over_mid_way_resumes_after_its_last_frame(
    bus: Bus, start_decoder: StartDecoder
) -> None:
    camera = CameraConfig(id="carphone", source=str(sample_video("carphone_pristine.mp4")))
    received: list[frame_pb2.Frame] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(_slow_consumer(bus, received, stop))
    first = await start_decoder([camera])
    await wait_for(lambda: len(received) >= 30, 30, "frames flowing")
    await first.kill()  # a crash: its lease expires, then the next decoder claims the file
    second = await start_decoder([camera])
    await wait_for(state_is(bus, "carphone", camera_pb2.CAMERA_STATE_ENDED), 60, "ended")
    stop.set()
    await consumer
    # Every picture once, in order, numbered on from where the first decoder stopped: no
    # replay of what was analysed, no gap, no restart of the numbers.
    *pictures, marker = received
    assert [f.seq for f in received] == list(range(1, 122)) and marker.end_of_stream
    times = [f.media_time.ToNanoseconds() for f in pictures]
    assert len(times) == 120 and times == sorted(set(times))
    assert len({f.camera_revision for f in received}) == 1 and received[0].camera_revision > 0
    status = await camera_status(bus, "carphone")
    assert status is not None and status.frames_published == 120
    assert status.decoder_id == second.service.decoder_id


async def _status_events(bus: Bus, camera: str) -> list[str]:
    sub = await bus.js.subscribe(
        subjects.events(event_pb2.EVENT_TYPE_CAMERA_STATUS, camera), ordered_consumer=True
    )
    states = []
    while True:
        try:
            msg = await sub.next_msg(timeout=0.5)
        except TimeoutError:
            break
        states.append(event_pb2.Event.FromString(msg.data).attributes["state"])
    await sub.unsubscribe()
    return states


async def test_bad_sources_fail_alone_and_never_leak_credentials(
    bus: Bus, start_decoder: StartDecoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 400)
    cameras = [
        CameraConfig(id="missing", source=str(tmp_path / "nope.mp4")),
        CameraConfig(id="garbage", source=str(garbage)),
        CameraConfig(id="secret", source="rtsp://admin:hunter2@127.0.0.1:1/stream"),
        bikes("good", fps=5),
    ]
    good = await Frames.subscribe(bus, "good")
    await start_decoder(cameras)
    for camera in ("missing", "garbage", "secret"):
        await wait_for(state_is(bus, camera, camera_pb2.CAMERA_STATE_ERROR), 20, f"{camera} in error")
    await wait_for(lambda: len(good.frames) >= 3, 15, "the good camera running")
    errors = {c: (await camera_status(bus, c)).last_error for c in ("missing", "garbage", "secret")}  # type: ignore[union-attr]
    assert errors["missing"].startswith("file not found")
    assert "cannot decode" in errors["garbage"] or "no decodable video frame" in errors["garbage"]
    assert "rtsp://admin:***@127.0.0.1:1/stream" in errors["secret"]
    # The password is nowhere: logs, status records, events.
    assert "hunter2" not in caplog.text
    status_kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    for key in await status_kv.keys():
        assert b"hunter2" not in ((await status_kv.get(key)).value or b"")
    events = await bus.js.stream_info(subjects.EVENTS_STREAM)
    for seq in range(events.state.first_seq, events.state.last_seq + 1):
        assert b"hunter2" not in (await bus.js.get_msg(subjects.EVENTS_STREAM, seq)).data


def _write_pictures(folder: Path, count: int) -> None:
    """The first ``count`` pictures of carphone as img00.png, img01.png, ... (an image folder source)."""
    capture = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
    for i in range(count):
        ok, image = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"img{i:02d}.png"), image)
    capture.release()


async def test_image_folder_skips_corrupt_images(
    bus: Bus, start_decoder: StartDecoder, tmp_path: Path
) -> None:
    _write_pictures(tmp_path, 5)
    (tmp_path / "img02b.jpg").write_bytes(b"not a jpeg")
    frames = await Frames.subscribe(bus, "folder")
    await start_decoder([CameraConfig(id="folder", source=str(tmp_path), pacing="realtime", image_fps=50)])
    await wait_for(state_is(bus, "folder", camera_pb2.CAMERA_STATE_ENDED), 15, "folder ended")
    status = await camera_status(bus, "folder")
    assert status is not None and status.frames_corrupt == 1 and status.frames_published == 5
    await wait_for(lambda: frames.end is not None, 5, "the end marker")
    assert len(frames.frames) == 5 and frames.end is not None and frames.end.seq == 6
    assert [round(f.media_time.ToTimedelta().total_seconds(), 2) for f in frames.frames] == [
        0.0,
        0.02,
        0.04,
        0.08,
        0.1,
    ]


async def test_an_ended_file_stays_ended_across_decoder_restarts_until_written_again(
    bus: Bus, start_decoder: StartDecoder, tmp_path: Path
) -> None:
    _write_pictures(tmp_path, 4)
    camera = CameraConfig(id="clip", source=str(tmp_path), pacing="realtime", image_fps=50)
    first = await start_decoder([camera])
    await wait_for(state_is(bus, "clip", camera_pb2.CAMERA_STATE_ENDED), 15, "clip ended")
    ended = await camera_status(bus, "clip")
    assert ended is not None and ended.frames_published == 4 and ended.camera_revision > 0
    stream_last = (await bus.js.stream_info(subjects.FRAMES_STREAM)).state.last_seq
    await first.stop()  # graceful: an ended file is not reported "stopped"
    assert _outcome(await camera_status(bus, "clip")) == _outcome(ended)

    # A new decoder (same config: nothing is written to the registry) owns the camera but
    # does not replay it. A camera it decodes would be "starting" before it is owned.
    second = await start_decoder([camera])
    await wait_for(lambda: "clip" in second.service.owned(), 10, "the new decoder owns the clip")
    assert _outcome(await camera_status(bus, "clip")) == _outcome(ended)  # first's record, untouched
    ended_gauge = {"camera": "clip", "state": "ended"}
    assert REGISTRY.get_sample_value("camsight_decoder_camera_state", ended_gauge) == 1.0
    assert (await bus.js.stream_info(subjects.FRAMES_STREAM)).state.last_seq == stream_last

    # Writing the entry again, even unchanged, replays it: a new revision, 4 frames and a marker.
    await put_camera(bus, camera)

    async def replayed() -> bool:
        status = await camera_status(bus, "clip")
        return (
            status is not None
            and status.state == camera_pb2.CAMERA_STATE_ENDED
            and status.camera_revision > ended.camera_revision
        )

    await wait_for(replayed, 15, "the clip replayed")
    again = await camera_status(bus, "clip")
    assert again is not None and again.frames_published == 4
    assert (await bus.js.stream_info(subjects.FRAMES_STREAM)).state.last_seq == stream_last + 5


def _outcome(status: camera_pb2.CameraStatus | None) -> tuple[object, ...]:
    """What a status says about a run (not fps or update time, which the owner refreshes)."""
    assert status is not None
    return (status.state, status.frames_published, status.camera_revision, status.decoder_id)
