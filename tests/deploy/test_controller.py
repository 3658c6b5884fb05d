"""The controller against a Kubernetes API under the test's control and a real nats-server.

The real ``kubernetes`` client talks HTTP to :class:`FakeKubeApi` (list, watch,
status patches, Secrets); the registry is the real ``cameras`` KV bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from camsight.bus import Bus, subjects
from camsight.config import ConfigError, NatsSettings, Settings
from camsight.controller.service import ControllerService
from camsight.runtime import ServiceContext
from camsight.runtime.serve import DRAIN_TIMEOUT_S, Runtime
from camsight.stores.cameras import OWNER_LABEL
from camsight.v1 import camera_pb2
from fake_kube_api import NAMESPACE, FakeKubeApi
from google.protobuf.timestamp_pb2 import Timestamp
from helpers import wait_for
from nats.js.errors import KeyNotFoundError, NoKeysError

VIDEO = "/videos/lobby.mp4"


async def registry(bus: Bus) -> dict[str, camera_pb2.Camera]:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    out: dict[str, camera_pb2.Camera] = {}
    try:
        keys = await kv.keys()
    except NoKeysError:
        return out
    for key in keys:
        try:
            out[key] = camera_pb2.Camera.FromString((await kv.get(key)).value or b"")
        except KeyNotFoundError:
            continue
    return out


@pytest.fixture
async def controller(
    kube_api: FakeKubeApi, nats_settings: NatsSettings, bus: Bus, tmp_path: Path
) -> AsyncIterator[Runtime]:
    """The controller served as `camsight serve controller` would, on port 0."""
    async with _running(kube_api, nats_settings, tmp_path) as runtime:
        yield runtime


def spec(**over: Any) -> dict[str, Any]:
    return {"source": VIDEO, "fps": 5.0, "analyzers": ["detector"]} | over


async def test_create_update_delete_change_the_registry(
    kube_api: FakeKubeApi, bus: Bus, controller: Runtime
) -> None:
    await kube_api.create("lobby", spec())
    await wait_for(lambda: _has(bus, "lobby"), 10, "lobby in the registry")
    cam = (await registry(bus))["lobby"]
    assert cam.source_uri == VIDEO and cam.target_fps == 5.0 and list(cam.analyzers) == ["detector"]
    assert cam.labels[OWNER_LABEL] == f"{NAMESPACE}/lobby"

    await kube_api.update(
        "lobby", spec(fps=12.5, zones=[{"id": "door", "polygon": [[0, 0], [1, 0], [1, 1]]}])
    )

    async def updated() -> bool:
        cam = (await registry(bus)).get("lobby")
        return cam is not None and cam.target_fps == 12.5 and len(cam.zones) == 1

    await wait_for(updated, 10, "lobby updated")

    await kube_api.delete("lobby")

    async def gone() -> bool:
        return "lobby" not in await registry(bus)

    await wait_for(gone, 10, "lobby removed from the registry")


async def test_status_is_copied_from_camera_status(
    kube_api: FakeKubeApi, bus: Bus, controller: Runtime
) -> None:
    await kube_api.create("gate", spec())
    await wait_for(lambda: kube_api.status("gate").get("state") == "Pending", 10, "pending status")
    assert kube_api.status("gate")["cameraId"] == "gate"

    last_frame = Timestamp(seconds=1_800_000_000)
    live = camera_pb2.CameraStatus(
        camera_id="gate",
        state=camera_pb2.CAMERA_STATE_ONLINE,
        fps=4.96,
        frames_published=120,
        last_frame_time=last_frame,
        decoder_id="decoder-0",
    )
    kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    await kv.put("gate", live.SerializeToString())
    await wait_for(lambda: kube_api.status("gate").get("state") == "Online", 10, "online status")
    status = kube_api.status("gate")
    assert status["fps"] == 4.96
    assert status["lastFrameTime"] == last_frame.ToJsonString()
    assert status["framesPublished"] == 120 and status["decoder"] == "decoder-0"
    assert status["observedGeneration"] == 1
    assert set(kube_api.patch_content_types) == {"application/merge-patch+json"}

    live.state = camera_pb2.CAMERA_STATE_ERROR
    live.last_error = "cannot open rtsp://admin:***@cam/stream"
    await kv.put("gate", live.SerializeToString())
    await wait_for(lambda: kube_api.status("gate").get("state") == "Error", 10, "error status")
    assert kube_api.status("gate")["message"] == live.last_error


async def test_invalid_spec_is_reported_and_not_registered(
    kube_api: FakeKubeApi, bus: Bus, controller: Runtime
) -> None:
    await kube_api.create("bad", spec(fps=500, source="gopher+tls://x"))
    await wait_for(lambda: kube_api.status("bad").get("state") == "Invalid", 10, "invalid status")
    message = kube_api.status("bad")["message"]
    assert "fps" in message and "gopher" in message
    assert "bad" not in await registry(bus)
    assert controller.readiness() == (True, "")


async def test_a_camera_registered_elsewhere_is_never_overwritten(
    kube_api: FakeKubeApi, bus: Bus, controller: Runtime
) -> None:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    api_camera = camera_pb2.Camera(id="dock", source_uri="/videos/dock.mp4", enabled=True)
    await kv.put("dock", api_camera.SerializeToString())
    await kube_api.create("dock", spec())
    await wait_for(lambda: kube_api.status("dock").get("state") == "Conflict", 10, "conflict status")
    assert "already registered" in kube_api.status("dock")["message"]
    assert (await registry(bus))["dock"].source_uri == "/videos/dock.mp4"
    await kube_api.delete("dock")
    await wait_for(lambda: kube_api.status("dock") == {}, 10, "resource gone")
    assert (await registry(bus))["dock"].source_uri == "/videos/dock.mp4"


async def test_source_from_a_secret(kube_api: FakeKubeApi, bus: Bus, controller: Runtime) -> None:
    kube_api.add_secret("yard-cam", {"url": "rtsp://admin:hunter2@10.0.0.5/stream"})
    body = spec(source_from={"secret_key_ref": {"name": "yard-cam", "key": "url"}})
    del body["source"]
    await kube_api.create("yard", body)
    await wait_for(lambda: _has(bus, "yard"), 10, "yard in the registry")
    assert (await registry(bus))["yard"].source_uri == "rtsp://admin:hunter2@10.0.0.5/stream"
    assert "hunter2" not in str(kube_api.status("yard"))

    missing = spec(source_from={"secret_key_ref": {"name": "nope", "key": "url"}})
    del missing["source"]
    await kube_api.create("lost", missing)
    await wait_for(lambda: kube_api.status("lost").get("state") == "Invalid", 10, "invalid status")
    assert "secret 'nope' not found" in kube_api.status("lost")["message"]


async def test_startup_lists_and_removes_orphans(
    kube_api: FakeKubeApi, bus: Bus, nats_settings: NatsSettings, tmp_path: Path
) -> None:
    """Resources made while the controller was down are registered; entries whose
    resource vanished meanwhile are removed; entries of other namespaces stay."""
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    for camera_id, owner in (("old", f"{NAMESPACE}/old"), ("other", "elsewhere/other")):
        cam = camera_pb2.Camera(id=camera_id, source_uri=VIDEO, enabled=True, labels={OWNER_LABEL: owner})
        await kv.put(camera_id, cam.SerializeToString())
    await kube_api.create("early", spec())
    async with _running(kube_api, nats_settings, tmp_path):
        await wait_for(lambda: _has(bus, "early"), 10, "early registered")
        cams = await registry(bus)
        assert "old" not in cams and "other" in cams
    assert any("watch=true" in r for r in kube_api.requests)


async def _has(bus: Bus, camera_id: str) -> bool:
    return camera_id in await registry(bus)


class _running:
    """The controller in a Runtime, as `camsight serve controller` runs it, until the block ends."""

    def __init__(self, kube_api: FakeKubeApi, nats_settings: NatsSettings, tmp_path: Path) -> None:
        settings = Settings(
            nats=nats_settings,
            http={"host": "127.0.0.1", "port": 0},
            services={
                "controller": {
                    "kubeconfig": str(kube_api.kubeconfig(tmp_path / "kubeconfig")),
                    "namespace": NAMESPACE,
                    "status_interval_s": 0.05,
                }
            },
        )
        self.runtime = Runtime(settings, [ControllerService], "controller")

    async def __aenter__(self) -> Runtime:
        self.task = asyncio.create_task(self.runtime.run())
        await wait_for(lambda: self.runtime.readiness()[0] or self.task.done(), 20, "controller ready")
        return self.runtime

    async def __aexit__(self, *exc: object) -> None:
        self.runtime.stop()
        # The runtime's own drain limit, plus a margin: a loaded CI machine once took
        # over 20 s here; a service that really hangs is cancelled by the runtime first.
        assert await asyncio.wait_for(self.task, DRAIN_TIMEOUT_S + 10) == 0


def test_bad_controller_config_is_a_clear_error() -> None:
    settings = Settings(services={"controller": {"namespace": "x", "status_interval": 5}})
    with pytest.raises(ConfigError, match=r"services\.controller\.status_interval: Extra inputs"):
        ControllerService(ServiceContext(settings=settings))


async def test_unreachable_api_server_keeps_the_controller_up_and_not_ready(
    nats_settings: NatsSettings, bus: Bus, tmp_path: Path
) -> None:
    api = FakeKubeApi(NAMESPACE)
    await api.start()
    await api.stop()  # the port is now closed: connections are refused
    settings = Settings(
        nats=nats_settings,
        http={"host": "127.0.0.1", "port": 0},
        services={"controller": {"kubeconfig": str(api.kubeconfig(tmp_path / "kc")), "retry_backoff_s": 0.1}},
    )
    runtime = Runtime(settings, [ControllerService], "controller")
    task = asyncio.create_task(runtime.run())
    await wait_for(lambda: "Kubernetes API unavailable" in runtime.readiness()[1], 20, "not-ready reason")
    assert not task.done()
    runtime.stop()
    assert await asyncio.wait_for(task, 20) == 0


async def test_missing_kubeconfig_is_a_config_error(
    nats_settings: NatsSettings, bus: Bus, tmp_path: Path
) -> None:
    settings = Settings(
        nats=nats_settings,
        http={"host": "127.0.0.1", "port": 0},
        services={"controller": {"kubeconfig": str(tmp_path / "missing")}},
    )
    with pytest.raises(ConfigError, match=r"services\.controller\.kubeconfig: cannot use"):
        await Runtime(settings, [ControllerService], "controller").run()
