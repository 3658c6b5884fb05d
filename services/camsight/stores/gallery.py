"""The face gallery: ``gallery`` KV (an IdentityRecord per identity) and ``faces`` thumbnails.

Written by the face service (enrollments) and the query service (deletions).
The invariant both keep through this module: every thumbnail in ``faces``
belongs to the record that names it, and every thumbnail a record names
exists. An enrollment stores its thumbnail before the record names it (and
removes it again if the record cannot be written); a deletion removes the
record at the revision it read, so an enrollment that landed in between makes
the deletion read again and take the new thumbnail with it, and only then
removes the thumbnails of the record it deleted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from camsight.bus import Bus, subjects
from camsight.stores import revisioned
from camsight.stores.revisioned import DELETE, ConflictError, Delete, Stored
from camsight.v1 import identity_pb2


class IdentityNotFoundError(LookupError):
    """No identity with that id is enrolled."""


class GalleryConflictError(ConflictError):
    """The identity kept changing under a write (concurrent enrollments); try again."""


def thumbnail_name(identity_id: str, sample_id: str) -> str:
    """Object name of a thumbnail in the ``faces`` store: ``<identity>/<sample>.jpg``."""
    return f"{identity_id}/{sample_id}.jpg"


def thumbnails_of(record: identity_pb2.IdentityRecord) -> set[str]:
    """Every thumbnail a record names (the identity's list and each sample's)."""
    names = set(record.identity.thumbnail_ids) | {s.thumbnail_id for s in record.samples}
    return {n for n in names if n}


@dataclass
class Sample:
    """One face to enroll: its embedding (of ``model``) and the JPEG shown for it."""

    embedding: Sequence[float]
    model: str
    thumbnail: bytes
    display_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class GalleryStore:
    """The one writer of the gallery bucket and the faces object store."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def kv(self) -> KeyValue:
        """The gallery bucket, for reading and watching (writes go through this class)."""
        return await self.bus.kv(subjects.GALLERY_BUCKET)

    async def get(self, identity_id: str) -> tuple[identity_pb2.IdentityRecord, int]:
        """The record and its revision; :class:`IdentityNotFoundError` when not enrolled."""
        stored = await revisioned.read(await self.kv(), identity_id)
        if stored is None:
            raise IdentityNotFoundError(f"identity {identity_id!r}")
        return identity_pb2.IdentityRecord.FromString(stored.value), stored.revision

    async def add_sample(self, identity_id: str, sample: Sample) -> tuple[identity_pb2.Identity, int]:
        """Create the identity or add a face to it; returns the identity and the KV revision.

        The thumbnail is stored first, so a record never names a missing one;
        if the record cannot be written, the thumbnail is removed again.
        """
        sample_id = uuid.uuid4().hex[:16]
        name = thumbnail_name(identity_id, sample_id)
        store = await self.bus.object_store(subjects.FACES_STORE)
        await store.put(name, sample.thumbnail)
        written: list[identity_pb2.Identity] = []

        def enroll(stored: Stored | None) -> bytes:
            record = identity_pb2.IdentityRecord()
            if stored is None:
                record.identity.id = identity_id
                record.identity.create_time.GetCurrentTime()
            else:
                record.ParseFromString(stored.value)
            added = record.samples.add(id=sample_id, embedding=sample.embedding, model=sample.model)
            added.thumbnail_id = name
            added.create_time.GetCurrentTime()
            identity = record.identity
            if sample.display_name:
                identity.display_name = sample.display_name
            identity.labels.update(sample.labels)
            identity.thumbnail_ids.append(name)
            identity.face_count = len(record.samples)
            identity.update_time.GetCurrentTime()
            written[:] = [identity]
            return record.SerializeToString()

        try:
            revision = await revisioned.modify(await self.kv(), identity_id, enroll)
        except BaseException as exc:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                await store.delete(name)
            if isinstance(exc, ConflictError):
                raise GalleryConflictError(
                    f"identity {identity_id} kept changing during enrollment; try again"
                ) from None
            raise
        return written[0], revision

    async def delete(self, identity_id: str) -> identity_pb2.IdentityRecord:
        """Remove the identity and its thumbnails; returns the record removed.

        :class:`IdentityNotFoundError` when it is not enrolled.
        """
        deleted: list[identity_pb2.IdentityRecord] = []

        def remove(stored: Stored | None) -> Delete | None:
            deleted.clear()
            if stored is None:
                return None
            deleted.append(identity_pb2.IdentityRecord.FromString(stored.value))
            return DELETE

        try:
            await revisioned.modify(await self.kv(), identity_id, remove)
        except ConflictError:
            raise GalleryConflictError(
                f"identity {identity_id} kept changing during deletion; try again"
            ) from None
        if not deleted:
            raise IdentityNotFoundError(f"identity {identity_id!r}")
        store = await self.bus.object_store(subjects.FACES_STORE)
        for name in sorted(thumbnails_of(deleted[0])):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await store.delete(name)
        return deleted[0]
