"""A live network source under the test's control: an HTTP MJPEG server that goes away and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import cv2
import numpy as np
from aiohttp import web
from camsight.bus import Bus
from camsight.cameras import CameraConfig
from camsight.v1 import camera_pb2
from decoder_support import StartDecoder, camera_status, state_is
from helpers import sample_video, wait_for


class MjpegServer:
    """Serves the carphone sample as ``multipart/x-mixed-replace`` JPEGs at about 20 fps."""

    def __init__(self, port: int) -> None:
        self.port = port
        capture = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
        self.jpegs: list[bytes] = []
        while len(self.jpegs) < 30:
            ok, image = capture.read()
            assert ok
            self.jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        capture.release()
        self.streams: set[asyncio.Task[None]] = set()
        self.runner: web.AppRunner | None = None
        self.served = 0
        self.flowing = asyncio.Event()  # cleared: connections stay open but no picture comes
        self.flowing.set()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.streams.add(task)
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await response.prepare(request)
        try:
            i = 0
            while True:
                await self.flowing.wait()
                jpeg = self.jpegs[i % len(self.jpegs)]
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                await response.write(head.encode() + jpeg + b"\r\n")
                self.served += 1
                i += 1
                await asyncio.sleep(0.05)  # the camera's frame rate, not synchronisation
        except ConnectionResetError:
            pass  # the decoder hung up (reconnecting)
        finally:
            self.streams.discard(task)
        return response

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/stream", self.stream)])
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Drop every client connection and stop listening, like a camera losing power."""
        for task in list(self.streams):
            task.cancel()
        assert self.runner is not None
        await self.runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_camera_goes_offline_and_comes_back(bus: Bus, start_decoder: StartDecoder) -> None:
    server = MjpegServer(free_port())
    await server.start()
    camera = CameraConfig(id="door", source=f"http://viewer:pa55word@127.0.0.1:{server.port}/stream")
    try:
        await start_decoder([camera])
        await wait_for(state_is(bus, "door", camera_pb2.CAMERA_STATE_ONLINE), 20, "online")
        status = await camera_status(bus, "door")
        assert status is not None and status.frames_published > 0

        await server.stop()
        await wait_for(state_is(bus, "door", camera_pb2.CAMERA_STATE_OFFLINE), 20, "offline")
        status = await camera_status(bus, "door")
        assert status is not None and "pa55word" not in status.last_error
        published = status.frames_published

        await server.start()

        async def back() -> bool:
            now = await camera_status(bus, "door")
            return (
                now is not None
                and now.state == camera_pb2.CAMERA_STATE_ONLINE
                and now.frames_published > published
            )

        await wait_for(back, 20, "back online with new frames")
    finally:
        with contextlib.suppress(Exception):
            await server.stop()


async def test_watchdog_reconnects_a_silent_stream(bus: Bus, start_decoder: StartDecoder) -> None:
    """The connection stays up but no frame comes: the watchdog (1.5 s here) reconnects."""
    server = MjpegServer(free_port())
    await server.start()
    try:
        await start_decoder([CameraConfig(id="frozen", source=f"http://127.0.0.1:{server.port}/stream")])
        await wait_for(state_is(bus, "frozen", camera_pb2.CAMERA_STATE_ONLINE), 20, "online")
        server.flowing.clear()
        await wait_for(state_is(bus, "frozen", camera_pb2.CAMERA_STATE_OFFLINE), 20, "offline by watchdog")
        server.flowing.set()
        await wait_for(state_is(bus, "frozen", camera_pb2.CAMERA_STATE_ONLINE), 20, "online again")
    finally:
        await server.stop()


def test_mjpeg_frames_are_real_jpegs() -> None:
    """The test server's pictures decode (guards the fixture itself)."""
    server = MjpegServer(0)
    image = cv2.imdecode(np.frombuffer(server.jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (144, 176, 3)
