"""``camsight serve controller``: reconcile Camera resources with the camera registry.

Level-triggered: on start (and whenever a watch ends) the controller lists
every Camera of its namespace and makes the registry match, deleting entries
it owns whose resource is gone; between lists it applies watch events. Status
is copied from ``camera_status`` to each resource every ``status_interval_s``
and only patched when it changed. All Kubernetes calls block, so they run in
threads; the event loop only sees their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiException
from kubernetes.config import ConfigException
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge
from urllib3.exceptions import HTTPError

from camsight.bus import subjects
from camsight.config import ConfigError, service_section
from camsight.controller.config import ControllerConfig
from camsight.controller.kube import KubeCameras, WatchEvent
from camsight.controller.resources import Desired, desired_camera, resource_key, status_for
from camsight.retry import Backoff, retry_async
from camsight.runtime import Service, ServiceContext
from camsight.stores.cameras import CameraOwnedError, Registry, owner_of
from camsight.v1 import camera_pb2

log = logging.getLogger(__name__)

REGISTRY_WRITES = Counter(
    "camsight_controller_registry_writes", "Changes the controller made to the camera registry", ["action"]
)
STATUS_PATCHES = Counter("camsight_controller_status_patches", "Status subresource patches sent")
RESOURCES = Gauge("camsight_controller_cameras", "Camera resources seen, by outcome", ["outcome"])

# Errors that mean "the API server is unreachable or answered badly": retry.
API_ERRORS = (ApiException, HTTPError, OSError)
# ... or NATS is (a reconnect is under way): retry the whole sync too.
REGISTRY_ERRORS = (NatsError, TimeoutError)
WATCH_STOP_TIMEOUT_S = 5.0


class ControllerService(Service):
    """Watches ``cameras.camsight.io`` and keeps the ``cameras`` KV bucket in step."""

    name = "controller"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.config = service_section(ctx.settings, "controller", ControllerConfig)
        self.namespace = self.config.resolved_namespace()
        self._kube: KubeCameras | None = None
        self._registry: Registry | None = None
        self._status: KeyValue | None = None
        self._desired: dict[str, Desired] = {}  # resource name -> what it asks for
        self._registered: dict[str, str] = {}  # resource name -> camera id it wrote
        self._conflicts: dict[str, str] = {}  # resource name -> why it was not written
        self._written: dict[str, dict[str, Any]] = {}  # resource name -> last status patched

    @property
    def registry(self) -> Registry:
        assert self._registry is not None, "start() has not run"
        return self._registry

    @property
    def kube(self) -> KubeCameras:
        assert self._kube is not None, "start() has not run"
        return self._kube

    async def start(self) -> None:
        try:
            self._kube = await asyncio.to_thread(KubeCameras, self.namespace, self.config.kubeconfig)
        except ConfigException as exc:
            where = self.config.kubeconfig or "the in-cluster service account"
            raise ConfigError(f"services.controller.kubeconfig: cannot use {where}: {exc}") from None
        self._registry = Registry(self.ctx.bus)
        self._status = await self.ctx.bus.kv(subjects.CAMERA_STATUS_BUCKET)
        self.set_ready(False, "listing Camera resources")

    async def close(self) -> None:
        if self._kube is not None:
            self._kube.stop()
            await asyncio.to_thread(self._kube.close)

    async def run(self) -> None:
        status_loop = asyncio.create_task(self._status_loop())
        # Consecutive failures back off from retry_backoff_s up to 8 times that.
        backoff = Backoff(self.config.retry_backoff_s, 8 * self.config.retry_backoff_s)
        try:
            while not self.ctx.stopping.is_set():
                try:
                    await retry_async(
                        self._list_and_watch,
                        on=(*API_ERRORS, *REGISTRY_ERRORS),
                        backoff=backoff,
                        stopping=self.ctx.stopping,
                        on_retry=self._unavailable,
                    )
                except (*API_ERRORS, *REGISTRY_ERRORS):
                    break  # stopped while retrying
        finally:
            status_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_loop

    async def _list_and_watch(self) -> None:
        """One list and the watch after it; returns when the watch ends (list again then)."""
        try:
            version = await self.sync_all()
            self.set_ready(True)
            await self._watch(version)
        except ApiException as exc:
            if exc.status != 410:
                raise
            log.info("watch expired; listing again")

    def _unavailable(self, exc: BaseException, delay: float) -> None:
        what = "Kubernetes API" if isinstance(exc, API_ERRORS) else "camera registry"
        log.warning("%s: %s; retrying in %.1fs", what, _brief(exc), delay)
        self.set_ready(False, f"{what} unavailable: {_brief(exc)}")

    async def sync_all(self) -> str:
        """Make the registry match every Camera resource; returns the list's resourceVersion."""
        items, version = await asyncio.to_thread(self.kube.list)
        present = {resource_key(obj)[1] for obj in items}
        for name in set(self._desired) - present:
            await self.remove(name)
        await self._delete_orphans(present)
        for obj in items:
            await self.apply(obj)
        return version

    async def apply(self, obj: dict[str, Any]) -> None:
        """Write one resource's camera into the registry (if valid and not conflicting)."""
        desired = await asyncio.to_thread(desired_camera, obj, self.kube.secret_value)
        name = desired.name
        self._desired[name] = desired
        self._conflicts.pop(name, None)
        camera = desired.camera
        if camera is None:
            # Keep the last good camera running; the status says what is wrong.
            log.warning("Camera %s/%s: %s", desired.namespace, name, desired.error)
        else:
            previous = self._registered.get(name)
            if previous is not None and previous != camera.id:
                await self._delete_owned(previous, desired.owner)
                self._registered.pop(name)
            await self._put(desired, camera.to_proto())
        self._count()
        await self._write_status(name)

    async def remove(self, name: str) -> None:
        """A resource is gone: delete the registry entry it owns, then retry any conflicts."""
        desired = self._desired.pop(name, None)
        camera_id = self._registered.pop(name, None)
        self._conflicts.pop(name, None)
        self._written.pop(name, None)
        if desired is not None and camera_id is not None:
            await self._delete_owned(camera_id, desired.owner)
        for other in [n for n in self._conflicts if n in self._desired]:
            await self._retry(other)
        self._count()

    async def _retry(self, name: str) -> None:
        desired = self._desired[name]
        if desired.camera is not None:
            self._conflicts.pop(name, None)
            await self._put(desired, desired.camera.to_proto())
            await self._write_status(name)

    async def _put(self, desired: Desired, camera: camera_pb2.Camera) -> None:
        try:
            changed = await self.registry.put(camera, desired.owner)
        except CameraOwnedError as exc:
            self._conflicts[desired.name] = str(exc)
            return
        self._registered[desired.name] = camera.id
        if changed:
            REGISTRY_WRITES.labels("put").inc()
            log.info("registered camera %s from Camera %s", camera.id, desired.owner)

    async def _delete_owned(self, camera_id: str, owner: str) -> None:
        try:
            deleted = await self.registry.delete(camera_id, owner)
        except CameraOwnedError:
            return  # replaced by another writer meanwhile: theirs now
        if deleted:
            REGISTRY_WRITES.labels("delete").inc()
            log.info("removed camera %s (Camera %s deleted)", camera_id, owner)

    async def _delete_orphans(self, present: set[str]) -> None:
        """Entries this namespace's resources wrote while the controller was away."""
        kv = await self.registry.kv()
        for key in await self.ctx.bus.kv_keys(subjects.CAMERAS_BUCKET):
            data = await _get(kv, key)
            if data is None:
                continue
            owner = owner_of(camera_pb2.Camera.FromString(data))
            namespace, _, name = owner.partition("/")
            if namespace == self.namespace and name not in present:
                await self._delete_owned(key, owner)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            for name in list(self._desired):
                try:
                    await self._write_status(name)
                except (*API_ERRORS, *REGISTRY_ERRORS) as exc:
                    log.warning("status of Camera %s not written: %s", name, _brief(exc))

    async def _write_status(self, name: str) -> None:
        desired = self._desired.get(name)
        if desired is None:
            return
        live = None
        camera_id = self._registered.get(name)
        if camera_id is not None and name not in self._conflicts:
            data = await _get(self._kv(self._status), camera_id)
            live = camera_pb2.CameraStatus.FromString(data) if data is not None else None
        status = status_for(desired, live, self._conflicts.get(name, ""))
        if self._written.get(name) == status:
            return
        try:
            await asyncio.to_thread(self.kube.patch_status, name, status)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile; the watch will tell
            raise
        self._written[name] = status
        STATUS_PATCHES.inc()

    async def _watch(self, version: str) -> None:
        """Apply watch events until the server ends the watch or the service stops."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

        def emit(event: WatchEvent) -> None:  # runs in the watch thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

        watcher = _in_daemon_thread(lambda: self.kube.watch(version, self.config.watch_timeout_s, emit))
        watcher.add_done_callback(lambda _: queue.put_nowait(None))
        stopping = asyncio.ensure_future(self.ctx.stopping.wait())
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                event = getting.result()
                if event is None:
                    break
                await self._on_event(event)
        finally:
            stopping.cancel()
            self.kube.stop()
        if self.ctx.stopping.is_set():
            # The socket is shut, so the thread ends at once; should a stop land before
            # its request was sent, the daemon thread must not hold up the exit.
            await asyncio.wait({watcher}, timeout=WATCH_STOP_TIMEOUT_S)
            if watcher.done() and not watcher.cancelled():
                watcher.exception()  # retrieved: errors while stopping do not matter
            return
        await watcher  # re-raises the watch's error (410 Gone: list again)

    async def _on_event(self, event: WatchEvent) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind in ("ADDED", "MODIFIED"):
            await self.apply(obj)
        elif kind == "DELETED":
            await self.remove(resource_key(obj)[1])

    def _count(self) -> None:
        invalid = sum(1 for d in self._desired.values() if d.camera is None)
        RESOURCES.labels("registered").set(len(self._registered))
        RESOURCES.labels("invalid").set(invalid)
        RESOURCES.labels("conflict").set(len(self._conflicts))

    @staticmethod
    def _kv(kv: KeyValue | None) -> KeyValue:
        assert kv is not None, "start() has not run"
        return kv


async def _get(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value


def _in_daemon_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """Run blocking ``work`` in a daemon thread; the future holds its outcome.

    Not ``asyncio.to_thread``: the default executor is joined when the loop
    closes, and a watch blocked on a socket would hold up the process's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

    def target() -> None:
        outcome: BaseException | None = None
        try:
            work()
        except BaseException as exc:
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=target, name="camsight-camera-watch", daemon=True).start()
    return future


def _brief(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
