"""The camera registry (``cameras`` KV): who may write which entry, and how.

Written by the query service (the gRPC CameraService), the controller (Camera
resources), the decoder (cameras of the config file) and ``camsight run``.
Every write here is revision-checked (a lost race reads again, so two writers
never overwrite each other) and respects ownership: an entry written for a
Camera resource carries :data:`OWNER_LABEL` and only that resource's writer
(the controller) may change or delete it; entries without the label belong to
the API and the config file, which the controller never touches. No writer
may set another's label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nats.js.kv import KeyValue

from camsight.bus import Bus, subjects
from camsight.stores import revisioned
from camsight.stores.revisioned import DELETE, Delete, Stored
from camsight.v1 import camera_pb2

# A registry entry written by the controller carries this label (value
# "<namespace>/<name>"), so cameras added over gRPC, the CLI or the config file
# are never touched, and a resource can only replace an entry it owns.
OWNER_LABEL = "camsight.io/resource"

API = ""
"""The owner of entries written over gRPC, by the CLI or from a config file (no label)."""


def owner_of(entry: camera_pb2.Camera) -> str:
    """The resource ("ns/name") that owns a registry entry; "" when none does."""
    return entry.labels.get(OWNER_LABEL, "")


def describe(owner: str) -> str:
    return f"Camera resource {owner}" if owner else "the API or config file"


class CameraNotFoundError(LookupError):
    """No camera with that id is registered."""


class CameraExistsError(ValueError):
    """Create: a camera with that id is registered already."""


class CameraOwnedError(PermissionError):
    """The entry belongs to another writer (a Camera resource, or the API)."""


class ReservedLabelError(ValueError):
    """A writer tried to set the ownership label to someone else's value."""


@dataclass(frozen=True)
class Registry:
    """The one way to change the ``cameras`` bucket. Each write names its writer as
    ``owner``: :data:`API`, or a Camera resource's "namespace/name" (the controller)."""

    bus: Bus

    async def kv(self) -> KeyValue:
        """The bucket, for reading and watching (writes go through this class)."""
        return await self.bus.kv(subjects.CAMERAS_BUCKET)

    async def get(self, camera_id: str) -> tuple[camera_pb2.Camera, int]:
        stored = await revisioned.read(await self.kv(), camera_id)
        if stored is None:
            raise CameraNotFoundError(f"camera {camera_id!r}")
        return camera_pb2.Camera.FromString(stored.value), stored.revision

    async def create(self, camera: camera_pb2.Camera, owner: str = API) -> None:
        """Register a new camera; :class:`CameraExistsError` when the id is taken."""
        _check_label(camera, owner)

        def create(stored: Stored | None) -> bytes:
            if stored is not None:
                raise CameraExistsError(f"camera {camera.id!r} already exists")
            return _bytes(camera)

        await revisioned.modify(await self.kv(), camera.id, create)

    async def update(
        self, camera_id: str, change: Callable[[camera_pb2.Camera], camera_pb2.Camera], owner: str = API
    ) -> camera_pb2.Camera:
        """Replace the camera with ``change(stored)``, re-applied after a lost race; returns it."""
        result: list[camera_pb2.Camera] = []

        def update(stored: Stored | None) -> bytes:
            if stored is None:
                raise CameraNotFoundError(f"camera {camera_id!r}")
            current = camera_pb2.Camera.FromString(stored.value)
            _check_owner(current, owner)
            new = change(current)
            _check_label(new, owner)
            result[:] = [new]
            return _bytes(new)

        await revisioned.modify(await self.kv(), camera_id, update)
        return result[0]

    async def put(self, camera: camera_pb2.Camera, owner: str = API) -> bool:
        """Create or replace a camera this writer owns; True when the registry changed.

        :class:`CameraOwnedError` when another writer registered that id.
        """
        _check_label(camera, owner)
        data = _bytes(camera)

        changed: list[bool] = []

        def put(stored: Stored | None) -> bytes | None:
            changed[:] = [False]
            if stored is not None:
                current = camera_pb2.Camera.FromString(stored.value)
                _check_owner(current, owner)
                if current == camera:  # compared as messages: a map's order is no change
                    return None
            changed[:] = [True]
            return data

        await revisioned.modify(await self.kv(), camera.id, put)
        return changed[0]

    async def delete(self, camera_id: str, owner: str = API) -> bool:
        """Remove a camera this writer owns; False when none is registered.

        :class:`CameraOwnedError` when another writer owns it.
        """
        found: list[bool] = []

        def delete(stored: Stored | None) -> Delete | None:
            found[:] = [stored is not None]
            if stored is None:
                return None
            _check_owner(camera_pb2.Camera.FromString(stored.value), owner)
            return DELETE

        await revisioned.modify(await self.kv(), camera_id, delete)
        return found[0]


def _bytes(camera: camera_pb2.Camera) -> bytes:
    return camera.SerializeToString(deterministic=True)


def _check_owner(current: camera_pb2.Camera, owner: str) -> None:
    if owner_of(current) != owner:
        raise CameraOwnedError(
            f"camera id {current.id!r} is already registered by {describe(owner_of(current))}"
        )


def _check_label(camera: camera_pb2.Camera, owner: str) -> None:
    if owner_of(camera) != owner:
        raise ReservedLabelError(
            f"label {OWNER_LABEL} is reserved: the controller sets it for Camera resources"
        )
