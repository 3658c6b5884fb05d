"""The one-server recipe of docs/deploy.md, end to end: every piece its own process on one host.

``camsight nats --credentials`` generates a NATS user per role; ``camsight topology``
declares the streams as the topology user; decoder, detector, behavior and query run as
``camsight serve`` processes, each with only its own credentials folder
(``CAMSIGHT_SECRETS_DIR``); a camera is added with the CLI and its events are read back
with the CLI. Health ports are given here only because other test runs may share the
machine; the recipe relies on the per-service defaults. The nats-server is then restarted
under a file being analysed, twice (decision 0083).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import yaml
from behavior.truth_video import Figure
from camsight.bus import Bus, connect, subjects
from camsight.cameras import CameraConfig
from camsight.config import NatsSettings, StreamSettings
from camsight.natsauth import SECRETS_FILE
from camsight.stores.cameras import Registry
from camsight.v1 import analysis_pb2, camera_pb2, event_pb2
from helpers import camsight_command, sample_video, wait_for
from processes import HERE, ServiceProcess, free_port

pytestmark = pytest.mark.slow

SERVICES = ("decoder", "detector", "behavior", "query")


@dataclass
class NatsProcess:
    """``camsight nats --credentials root/creds`` on ports that a restart keeps."""

    root: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, *options: str) -> None:
        """Start it and wait until it says it is ready (and, with ``--config``, declared the topology)."""
        self.proc = await asyncio.create_subprocess_exec(
            *camsight_command("nats", "--data-dir", str(self.root / "nats"), "--port", str(self.port),
                              "--monitor-port", str(self.monitor_port), "--credentials",
                              str(self.root / "creds"), *options),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        ready = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        assert ready.startswith(f"nats-server ready: {self.url}"), ready
        users = (await asyncio.wait_for(self.proc.stdout.readline(), 5)).decode()
        assert "camsight-events-reader" in users and "camsight-decoder" in users, users
        if "--config" in options:
            declared = (await asyncio.wait_for(self.proc.stdout.readline(), 5)).decode()
            assert declared.startswith("topology declared: FRAMES"), declared

    async def stop(self) -> None:
        """Ctrl-C, as an operator stops it."""
        assert self.proc is not None
        self.proc.send_signal(2)
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0

    async def connect_as(self, role: str) -> Bus:
        """A client connection as ``role``'s NATS user, riding out restarts."""
        login = json.loads((self.root / "creds" / role / SECRETS_FILE).read_text())
        settings = NatsSettings(servers=[self.url], reconnect_wait_s=0.1, reconnect_jitter_s=0.05, **login)
        return await connect(settings, StreamSettings(), name=f"test-{role}")


@asynccontextmanager
async def nats_with_users(root: Path, *options: str) -> AsyncIterator[NatsProcess]:
    """``camsight nats --credentials root/creds OPTIONS`` until the block ends."""
    server = NatsProcess(root)
    await server.start(*options)
    try:
        yield server
    finally:
        await server.stop()


def cli(*args: str, secrets: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"CAMSIGHT_SECRETS_DIR": str(secrets)} if secrets else {})}
    return subprocess.run(
        [sys.executable, "-m", "camsight", *args], capture_output=True, text=True, timeout=120, env=env
    )


def start_services(
    root: Path, config: dict[str, Any], env: dict[str, str] | None = None
) -> list[ServiceProcess]:
    """Every service of :data:`SERVICES` as its own process and NATS user."""
    processes = []
    for name in SERVICES:
        (root / name).mkdir()
        secrets = {"CAMSIGHT_SECRETS_DIR": str(root / "creds" / name)}
        processes.append(ServiceProcess(name, root / name, config, env={**(env or {}), **secrets}).start())
    return processes


async def test_one_server_recipe(tmp_path: Path) -> None:
    grpc = f"127.0.0.1:{free_port()}"
    async with nats_with_users(tmp_path) as server:
        config = {
            "nats": {"servers": [server.url]},
            "data_dir": str(tmp_path / "data"),
            "log": {"format": "text"},
            "services": {
                "detector": {"analyzers": {"motion": {}}},
                "query": {"host": "127.0.0.1", "port": int(grpc.rsplit(":", 1)[1])},
            },
        }
        (tmp_path / "camsight.yaml").write_text(yaml.safe_dump(config))
        declared = await asyncio.to_thread(
            cli,
            "topology",
            "--config",
            str(tmp_path / "camsight.yaml"),
            secrets=tmp_path / "creds" / "topology",
        )
        assert declared.returncode == 0, declared.stderr[-2000:]
        processes = start_services(tmp_path, config)
        try:
            await wait_for(lambda: all(p.ready() for p in processes), 120, "every service ready")
            camera = {
                "id": "bikes",
                "source": str(sample_video("bikes.mp4")),
                "fps": 5,
                "rules": [{"id": "moving", "type": "object_detected", "labels": ["motion"]}],
            }
            (tmp_path / "bikes.yaml").write_text(yaml.safe_dump(camera))
            added = await asyncio.to_thread(cli, "cameras", "add", "--file", str(tmp_path / "bikes.yaml"),
                                            "--server", grpc)  # fmt: skip
            assert added.returncode == 0, added.stderr

            def events() -> list[dict[str, object]]:
                listed = cli("events", "list", "--server", grpc, "--json")
                assert listed.returncode == 0, listed.stderr
                return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

            async def detected() -> bool:
                return any("OBJECT_DETECTED" in str(e.get("type")) for e in await asyncio.to_thread(events))

            await wait_for(detected, 120, "an event read back")
        finally:
            codes = {p.name: await p.stop() for p in processes}
        assert set(codes.values()) == {0}, codes
        for process in processes:
            assert "Violation" not in process.log.read_text()


# -- a nats-server restarted under a file ------------------------------------------------

FRAMES = 250  # bikes.mp4: 10 s at 25 fps
WALKERS = [Figure([(5, -20, 200), (200, 300, 200)]), Figure([(90, 340, 150), (240, -20, 150)])]
"""Two people crossing, as the sparse truth analyzer reports them (one box per frame each)."""
WAITING = "waiting for the topology: stream FRAMES does not exist"


def file_camera(camera_id: str) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": camera_id,
            "source": str(sample_video("bikes.mp4")),
            "rules": [{"id": "people", "type": "object_detected", "labels": ["person"]}],
        }
    )


async def status(bus: Bus, camera_id: str) -> camera_pb2.CameraStatus | None:
    """The camera's status record; None while there is none or NATS cannot answer."""
    try:
        entry = await (await bus.kv(subjects.CAMERA_STATUS_BUCKET)).get(camera_id)
    except nats.errors.Error:
        return None
    return camera_pb2.CameraStatus.FromString(entry.value or b"")


def published(bus: Bus, camera_id: str, frames: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        record = await status(bus, camera_id)
        return record is not None and record.frames_published >= frames

    return check


def ended(bus: Bus, camera_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        record = await status(bus, camera_id)
        return record is not None and record.state == camera_pb2.CAMERA_STATE_ENDED

    return check


async def happenings(bus: Bus, camera_id: str) -> set[tuple[object, ...]]:
    """What the camera's events say, without what names the camera (ids, wall-clock times):
    two cameras playing one file must agree on it."""
    stored = [
        event_pb2.Event.FromString(m)
        for m in await bus.read_stream(subjects.EVENTS_STREAM, f"events.*.{camera_id}")
    ]
    events = [e for e in stored if e.type != event_pb2.EVENT_TYPE_CAMERA_STATUS]
    started = {e.id for e in events if e.state == event_pb2.EVENT_STATE_STARTED}
    assert started and started <= {e.id for e in events if e.state == event_pb2.EVENT_STATE_ENDED}, (
        "left STARTED"
    )
    return {
        (e.type, e.state, e.revision, e.label, e.analyzer, e.track_id, e.start_media_time.ToNanoseconds(),
         e.end_media_time.ToNanoseconds(), round(e.confidence, 6))
        for e in events
    }  # fmt: skip


async def analysed(bus: Bus, camera_id: str) -> dict[int, int]:
    """Frame number -> media time (ns) of every result of the truth analyzer for the camera."""
    subject = f"detections.sparse_truth.{camera_id}"
    results = [
        analysis_pb2.AnalysisResult.FromString(m)
        for m in await bus.read_stream(subjects.DETECTIONS_STREAM, subject)
    ]
    frames: dict[int, int] = {}
    for result in results:
        assert (
            frames.setdefault(result.frame.seq, result.frame.media_time.ToNanoseconds())
            == result.frame.media_time.ToNanoseconds()
        )
    return frames


async def test_a_nats_restart_mid_file_loses_no_frame_and_changes_no_event(tmp_path: Path) -> None:
    """Two nats-server restarts under a file, against the same file played undisturbed before.

    FRAMES and the decoder's lease bucket are memory streams: the restarted server comes back
    without them. First stopped until the decoder's lease lapsed and started without declaring
    the topology (the recipe before decision 0083): every service waits, not ready, until
    ``camsight topology``, and the decoder starts the file again after the last frame the
    analyzers acknowledged. Then restarted at once with ``--config``, the server declaring the
    topology itself: the decoder keeps its lease and rewinds in place. Either way the file's
    events are the undisturbed run's, every frame was analysed, nothing is left STARTED, and the
    file ends only once every frame was."""
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([[f.box(i) for f in WALKERS if f.box(i)] for i in range(FRAMES)]))
    server = NatsProcess(tmp_path)
    config = {
        "nats": {"servers": [server.url]},
        "data_dir": str(tmp_path / "data"),
        "log": {"format": "text"},
        "services": {
            # Status every 0.2 s, to restart at a frame count; a lease that outlives a quick
            # restart (3-5 s without NATS) but lapses while the test waits for it to.
            "decoder": {"status_interval_s": 0.2, "lease_ttl_s": 12.0, "renew_interval_s": 3.0},
            "detector": {
                "plugin_modules": ["behavior.truth_plugin", "run.slow_plugin"],
                "analyzers": {
                    "sparse_truth": {"truth": str(truth), "fps": 25, "drop": 0.3},
                    "slow": {"cost_s": 0.03},
                },
            },
            "query": {"host": "127.0.0.1", "port": 0},
        },
    }  # fmt: skip
    (tmp_path / "camsight.yaml").write_text(yaml.safe_dump(config))
    declare = ("--config", str(tmp_path / "camsight.yaml"))
    await server.start(*declare)
    plugins = {"PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    processes = start_services(tmp_path, config, env=plugins)
    decoder = processes[0]
    query, behavior = await server.connect_as("query"), await server.connect_as("behavior")
    try:
        await wait_for(lambda: all(p.ready() for p in processes), 120, "every service ready")
        registry = Registry(query)
        await registry.put(file_camera("calm").to_proto())
        await wait_for(ended(query, "calm"), 120, "the undisturbed file ended")
        await registry.put(file_camera("storm").to_proto())

        await wait_for(published(query, "storm", 50), 60, "50 frames of the file published")
        await server.stop()
        await wait_for(lambda: not any(p.ready() for p in processes), 15, "every service not ready")
        await wait_for(lambda: "expired without renewal" in decoder.log.read_text(), 45, "the lease lapsed")
        await server.start()
        await wait_for(
            lambda: all(WAITING in (p.not_ready_reason() or "") for p in processes), 60, "waiting for FRAMES"
        )
        record = await status(query, "storm")
        assert record is not None and record.state != camera_pb2.CAMERA_STATE_ENDED
        topology = await asyncio.to_thread(cli, "topology", *declare, secrets=tmp_path / "creds" / "topology")
        assert topology.returncode == 0, topology.stderr[-2000:]
        await wait_for(lambda: all(p.ready() for p in processes), 60, "every service ready again")

        await wait_for(published(query, "storm", 150), 60, "150 frames of the file published")
        await server.stop()
        await wait_for(lambda: not any(p.ready() for p in processes), 15, "every service not ready")
        await server.start(*declare)
        await wait_for(lambda: all(p.ready() for p in processes), 60, "every service ready after the restart")
        await wait_for(ended(query, "storm"), 120, "the file ended")

        record = await status(query, "storm")
        assert record is not None and record.last_error == ""
        assert record.frames_published == FRAMES and record.frames_dropped == 0
        assert "FRAMES lost the frames after it" in decoder.log.read_text()  # the lapsed lease's rewind
        assert "decoding again after frame" in decoder.log.read_text()  # the rewind in place
        assert await happenings(query, "storm") == await happenings(query, "calm")
        frames = await analysed(behavior, "storm")
        assert set(frames) == set(range(1, FRAMES + 2))  # and the end marker
        assert frames == await analysed(behavior, "calm")
    finally:
        # Within 15 s: behavior's frame followers once left a pull subscription behind when a
        # fetch failed, and its stop waited out the connection's 30 s drain.
        stopped = await asyncio.gather(*(p.stop(timeout=15) for p in processes))
        codes = {p.name: code for p, code in zip(processes, stopped, strict=True)}
        await query.close()
        await behavior.close()
        await server.stop()
    assert set(codes.values()) == {0}, codes
    for process in processes:
        assert "Violation" not in process.log.read_text()
