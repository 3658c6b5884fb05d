"""Live network streams served by a real FFmpeg (imageio-ffmpeg's binary), read by the decoder.

RTMP: ``ffmpeg -f flv -listen 1 rtmp://...`` is a one-client RTMP server: it
streams to the first player that connects and exits when that player goes.
RTSP: FFmpeg only publishes RTSP, so a small relay in this module serves
the players (see :class:`RtspRelay`).

The tests kill, freeze (SIGSTOP) and restart the servers under a running
decoder and check that the camera goes offline and comes back by itself,
with the same camera worker (frame seq keeps counting up: no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest
from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig
from camsight.decoder.sources import SourceError, open_source
from camsight.v1 import camera_pb2, frame_pb2
from decoder_support import Frames, StartDecoder, camera_status, state_is
from helpers import sample_video, wait_for

CARPHONE = (176, 144)  # width, height of the sample the servers stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ffmpeg:
    """One ``ffmpeg`` process streaming the carphone sample, looped in real time, to ``output``.

    H.264 with a key frame every half second, so a player that joins
    mid-stream shows pictures quickly. ``audio`` adds silent AAC, as most
    RTMP encoders send: with video only, FFmpeg's RTMP reader waits its
    whole analyzeduration (5 s) for an audio stream that never comes.
    """

    def __init__(self, output: list[str], log_dir: Path, *, audio: bool) -> None:
        self.output = output
        self.log_dir = log_dir
        self.audio = audio
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start a fresh process (the previous one must be gone)."""
        self.starts += 1
        sound = ["-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-map", "0:v", "-map", "1:a"]
        # ffmpeg's own diagnostics, kept for a failing test's post-mortem.
        with open(self.log_dir / f"ffmpeg-{self.starts}.log", "wb") as log_file:
            self.process = subprocess.Popen(
                [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    *("-hide_banner", "-loglevel", "warning", "-nostdin"),
                    *("-re", "-stream_loop", "-1", "-i", str(sample_video("carphone_pristine.mp4"))),
                    *(sound if self.audio else ["-an"]),
                    *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15"),
                    *(["-c:a", "aac", "-b:a", "32k"] if self.audio else []),
                    *self.output,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )

    def freeze(self) -> None:
        """The camera hangs: its connection stays open, nothing more comes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """The camera loses power: its connections drop at once."""
        if self.process is None:
            return
        self.process.kill()  # also ends a frozen (SIGSTOPped) process
        self.process.wait(timeout=10)
        self.process = None


class RtmpServer(Ffmpeg):
    """``ffmpeg -f flv -listen 1``: an RTMP server for exactly one player, gone when the player goes."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.url = f"rtmp://127.0.0.1:{port}/live/cam"
        super().__init__(["-f", "flv", "-listen", "1", self.url], log_dir, audio=True)


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    server = RtmpServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()  # never leave an ffmpeg behind, whatever the test did


class RtspRelay:
    """A minimal RTSP server: ffmpeg publishes into it, players read from it (TCP interleaved only).

    FFmpeg can push RTSP (ANNOUNCE + RECORD) but cannot serve players, and no
    media server is installable here, so this relay keeps the SDP of the
    publisher's ANNOUNCE, answers the players' DESCRIBE with it and copies
    the publisher's interleaved RTP packets to every player after PLAY.
    Players are FFmpeg's real RTSP client, inside OpenCV. A SETUP that asks
    for UDP is refused (461) and recorded, so a test sees which transport
    the decoder asked for first.
    """

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/live/cam"
        self.publisher = Ffmpeg(["-f", "rtsp", "-rtsp_transport", "tcp", self.url], log_dir, audio=False)
        self.transports: list[str] = []  # the Transport header of every player SETUP
        self._sdp: bytes | None = None
        self._players: set[asyncio.StreamWriter] = set()
        self._sessions: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen, then start the publisher (players that come before it get 404 and retry)."""
        self._sdp = None
        self._server = await asyncio.start_server(self._session, "127.0.0.1", self.port, reuse_address=True)
        self.publisher.start()

    async def stop(self) -> None:
        """The camera loses power: the publisher dies, every connection drops, nobody listens."""
        self.publisher.kill()
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # an interleaved packet: channel, 16-bit length, payload
                    head = await reader.readexactly(3)
                    packet = first + head + await reader.readexactly(int.from_bytes(head[1:], "big"))
                    if writer not in self._players:  # from the publisher (players send only RTCP)
                        for player in self._players:
                            player.write(packet)
                    continue
                request = (first + await reader.readuntil(b"\r\n\r\n")).decode()
                method, url, _ = request.split("\r\n")[0].split(" ")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in request.split("\r\n")[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                writer.write(self._answer(method, url, headers, body, writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # The peer or stop() hung up. A cancelled handler is not re-raised: asyncio's
            # stream server would log it as an error on Python 3.11.
            pass
        finally:
            self._players.discard(writer)
            self._sessions.discard(task)
            writer.transport.abort()

    def _answer(
        self, method: str, url: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bytes:
        status, extra, content = "200 OK", "", b""
        if method == "ANNOUNCE":
            self._sdp = body
        elif method == "DESCRIBE" and self._sdp is None:
            status = "404 Not Found"
        elif method == "DESCRIBE":
            extra, content = f"Content-Base: {url}/\r\nContent-Type: application/sdp\r\n", self._sdp or b""
        elif method == "SETUP":
            transport = headers.get("transport", "")
            if "mode=record" not in transport:
                self.transports.append(transport)
            if "RTP/AVP/TCP" in transport:
                extra = f"Transport: {transport}\r\n"
            else:
                status = "461 Unsupported Transport"
        elif method == "PLAY":
            self._players.add(writer)
        elif method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN\r\n"
        return (
            f"RTSP/1.0 {status}\r\nCSeq: {headers.get('cseq', '0')}\r\nSession: 1;timeout=60\r\n{extra}"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode() + content


@pytest.fixture
async def rtsp_relay(tmp_path: Path) -> AsyncIterator[RtspRelay]:
    relay = RtspRelay(free_port(), tmp_path)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()  # kills the publishing ffmpeg too


def assert_live_frames(frames: list[frame_pb2.Frame]) -> None:
    """Real pictures of the sample's size, numbered without gaps in order of arrival."""
    assert frames
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for frame in frames:
        assert (frame.width, frame.height) == CARPHONE
        assert (frame.source_width, frame.source_height) == CARPHONE
        assert frame.data[:2] == b"\xff\xd8"  # a JPEG
        assert not frame.paced  # live sources are always real time


async def test_rtmp_camera_goes_offline_when_the_server_dies_and_comes_back(
    bus: Bus,
    start_decoder: StartDecoder,
    rtmp_server: RtmpServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Kill the RTMP server under a running decoder, start a new one: frames flow again, no restart.

    The URL carries credentials (FFmpeg's RTMP client accepts and ignores
    them here): the password shows up in no log, status record or event, and not in
    what OpenCV and FFmpeg print on stderr either.
    """
    caplog.set_level(logging.DEBUG)
    source = rtmp_server.url.replace("rtmp://", "rtmp://viewer:rtmp-s3cret@")
    frames = await Frames.subscribe(bus, "stage")
    await start_decoder([CameraConfig(id="stage", source=source)])
    await wait_for(state_is(bus, "stage", camera_pb2.CAMERA_STATE_ONLINE), 20, "online")
    await wait_for(lambda: frames.more_than(10), 10, "live frames")
    assert_live_frames(frames.frames)
    assert frames.frames[0].seq == 1

    rtmp_server.kill()
    await wait_for(state_is(bus, "stage", camera_pb2.CAMERA_STATE_OFFLINE), 10, "offline")

    async def retrying() -> bool:
        # Reconnection attempts find nobody listening; having been online, the camera stays offline.
        status = await camera_status(bus, "stage")
        return (
            status is not None
            and status.state == camera_pb2.CAMERA_STATE_OFFLINE
            and status.last_error.startswith("cannot open stream rtmp://viewer:***@127.0.0.1")
        )

    await wait_for(retrying, 10, "refused reconnection attempts")
    before = len(frames.frames)

    rtmp_server.start()
    await wait_for(lambda: frames.more_than(before + 10), 20, "frames from the new server")
    await wait_for(state_is(bus, "stage", camera_pb2.CAMERA_STATE_ONLINE), 5, "online again")
    # The same worker: seq went on counting (a restarted camera would start again at 1).
    assert_live_frames(frames.frames)

    assert "rtmp-s3cret" not in caplog.text
    assert "rtmp-s3cret" not in capfd.readouterr().err
    status_kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    assert b"rtmp-s3cret" not in ((await status_kv.get("stage")).value or b"")
    events = await bus.js.stream_info(subjects.EVENTS_STREAM)
    assert events.state.last_seq >= 3  # at least starting, online, offline
    for seq in range(events.state.first_seq, events.state.last_seq + 1):
        assert b"rtmp-s3cret" not in ((await bus.js.get_msg(subjects.EVENTS_STREAM, seq)).data or b"")


async def test_rtmp_read_timeout_frees_a_camera_stuck_on_a_frozen_server(
    bus: Bus, start_decoder: StartDecoder, rtmp_server: RtmpServer
) -> None:
    """The server stops sending but keeps the connection: the read times out (watchdog_s, 1.5 s here).

    The watchdog alone would only mark the camera offline: its reconnect
    flag is checked between reads, so without the read timeout the decode
    thread would wait in the dead connection's read as long as the server
    keeps it open.
    """
    frames = await Frames.subscribe(bus, "frozen")
    await start_decoder([CameraConfig(id="frozen", source=rtmp_server.url)])
    await wait_for(lambda: frames.more_than(5), 20, "live frames")

    rtmp_server.freeze()
    await wait_for(state_is(bus, "frozen", camera_pb2.CAMERA_STATE_OFFLINE), 10, "offline")

    async def reconnecting() -> bool:
        # The frozen server accepted its one player and closed its listening socket:
        # a new connection is refused. Seeing that refusal while the server is still
        # frozen proves the decode thread is no longer stuck in the old read.
        status = await camera_status(bus, "frozen")
        return status is not None and status.last_error.startswith("cannot open stream")

    await wait_for(reconnecting, 10, "a reconnection attempt while the server is still frozen")
    before = len(frames.frames)
    rtmp_server.kill()
    rtmp_server.start()
    await wait_for(lambda: frames.more_than(before + 5), 20, "frames from the new server")
    assert_live_frames(frames.frames)


async def test_rtsp_camera_over_tcp_goes_offline_and_comes_back(
    bus: Bus, start_decoder: StartDecoder, rtsp_relay: RtspRelay
) -> None:
    """RTSP through FFmpeg's client, interleaved over TCP from the first SETUP on (never UDP)."""
    frames = await Frames.subscribe(bus, "lobby")
    await start_decoder([CameraConfig(id="lobby", source=rtsp_relay.url)])
    await wait_for(state_is(bus, "lobby", camera_pb2.CAMERA_STATE_ONLINE), 20, "online")
    await wait_for(lambda: frames.more_than(10), 10, "live frames")
    assert_live_frames(frames.frames)

    await rtsp_relay.stop()
    await wait_for(state_is(bus, "lobby", camera_pb2.CAMERA_STATE_OFFLINE), 10, "offline")
    before = len(frames.frames)
    await rtsp_relay.start()
    await wait_for(lambda: frames.more_than(before + 10), 20, "frames after the relay came back")
    await wait_for(state_is(bus, "lobby", camera_pb2.CAMERA_STATE_ONLINE), 5, "online again")
    assert_live_frames(frames.frames)
    assert rtsp_relay.transports and all(t.startswith("RTP/AVP/TCP") for t in rtsp_relay.transports)


async def test_open_timeout_holds_for_streams_that_never_answer(
    bus: Bus, start_decoder: StartDecoder
) -> None:
    """A port that accepts TCP connections but never speaks: opening gives up after open_timeout_s.

    Neither FFmpeg's RTMP handshake nor its RTSP client has a timeout of
    its own by default; without OpenCV's open timeout the decode thread
    would wait forever and the camera would never leave ``starting``.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever reads
        port = silent.getsockname()[1]
        cameras = [
            CameraConfig(id="mute-rtmp", source=f"rtmp://127.0.0.1:{port}/live/cam"),
            CameraConfig(id="mute-rtsp", source=f"rtsp://127.0.0.1:{port}/live/cam"),
        ]
        await start_decoder(cameras)
        for camera in cameras:
            await wait_for(state_is(bus, camera.id, camera_pb2.CAMERA_STATE_ERROR), 15, f"{camera.id} error")
            status = await camera_status(bus, camera.id)
            assert status is not None and status.last_error.startswith("cannot open stream")


@pytest.mark.parametrize(("threads", "complete"), [(0, True), (2, False)], ids=["automatic", "two-threads"])
def test_a_live_stream_picture_comes_out_once_the_next_one_arrives(
    tmp_path: Path, threads: int, complete: bool
) -> None:
    # An HTTP camera sends an H.264 picture only once the decoder has put out the one
    # before the last (the stream runs one picture ahead, what FFmpeg's parser needs to
    # see a picture end). FFmpeg's frame threads would hold each picture back by one more
    # frame per extra thread (0.6 s at 25 fps with 16 threads): with the automatic setting
    # (one thread for a live stream) every picture comes out whatever the core count; with
    # two threads the stream stalls. The first 130 pictures go at once: FFmpeg's probe.
    stream = tmp_path / "live.h264"
    encode = "-f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 200 -c:v libx264 -tune zerolatency"
    encode += " -g 25 -x264-params aud=1 -f h264"  # an access unit delimiter starts each picture
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error"]
    subprocess.run([*ffmpeg, *encode.split(), str(stream)], check=True)
    data = stream.read_bytes()
    starts = [i for i in range(len(data) - 4) if data.startswith(b"\x00\x00\x00\x01\x09", i)]
    pictures = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]
    assert len(pictures) == 200
    decoded = 0
    progress = threading.Condition()

    def decoded_at_least(count: int) -> Callable[[], bool]:
        return lambda: decoded >= count

    def camera(server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/h264\r\n\r\n")
            for k, picture in enumerate(pictures):
                with progress:
                    if k > 130 and not progress.wait_for(decoded_at_least(k - 1), timeout=3):
                        return  # the decoder holds pictures back: end the stream
                conn.sendall(picture)

    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = threading.Thread(target=camera, args=(server,), daemon=True)
        sender.start()
        source = open_source(
            f"http://127.0.0.1:{server.getsockname()[1]}/live.h264",
            image_fps=0,
            open_timeout_s=5,
            read_timeout_s=2,
            decode_threads=threads,
        )
        with contextlib.suppress(SourceError):  # the stream's end
            while source.grab(lambda t: True) is not None:
                with progress:
                    decoded += 1
                    progress.notify_all()
        source.close()
        sender.join(10)
    assert (decoded == 200) is complete, f"{decoded} of 200 pictures decoded"
