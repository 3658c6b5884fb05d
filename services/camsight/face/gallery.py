"""The enrolled gallery in JetStream: ``gallery`` KV bucket (IdentityRecord per id) + ``faces`` thumbnails.

Every face replica holds the whole gallery in memory and follows the bucket
with a KV watch: an enrollment, an update or a deletion made anywhere (this
replica, another one, the query service) reaches every replica's matcher
within moments, without a restart. A deleted (or purged) identity is
dropped with all its embeddings. Writes go through
:class:`camsight.stores.gallery.GalleryStore`, which the query service's
deletions use too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import nats.errors
from google.protobuf.message import DecodeError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from prometheus_client import Gauge

from camsight.bus import Bus
from camsight.face.matching import GalleryIndex
from camsight.stores.gallery import GalleryStore, Sample
from camsight.v1 import identity_pb2

log = logging.getLogger(__name__)

IDENTITIES = Gauge("camsight_face_gallery_identities", "Identities in this replica's gallery index")
EMBEDDINGS = Gauge("camsight_face_gallery_embeddings", "Enrolled embeddings in this replica's gallery index")


class Gallery:
    """This replica's view of the gallery, kept current by a KV watch; also writes enrollments."""

    def __init__(self, bus: Bus, model: str) -> None:
        self.bus = bus
        self.store = GalleryStore(bus)
        self.model = model
        self.records: dict[str, identity_pb2.IdentityRecord] = {}
        self.index = GalleryIndex.build([], model)
        self.revision = 0
        """KV revision of the last change applied (tests and metrics wait on it)."""
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        """Load the current gallery (up to the watch's "no more" marker), then follow changes."""
        kv = await self.store.kv()
        self._watcher = await kv.watchall()
        async for entry in self._watcher:
            if entry is None:
                break
            self._apply(entry)
        self._rebuild()
        log.info("gallery loaded: %d identities, %d embeddings", self.index.identities, len(self.index))
        self._task = asyncio.create_task(self._follow(self._watcher), name="face-gallery-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._watcher is not None:
            with contextlib.suppress(nats.errors.Error, AttributeError):
                await self._watcher.stop()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(entry)
                self._rebuild()

    def _apply(self, entry: KeyValue.Entry) -> None:
        self.revision = max(self.revision, int(entry.revision or 0))
        if entry.operation in (KV_DEL, KV_PURGE):
            if self.records.pop(entry.key, None) is not None:
                log.info("identity %s removed from the gallery", entry.key)
            return
        record = identity_pb2.IdentityRecord()
        try:
            record.ParseFromString(entry.value or b"")
        except DecodeError as exc:
            log.warning("gallery entry %s is not an IdentityRecord (%s); ignored", entry.key, exc)
            self.records.pop(entry.key, None)
            return
        self.records[entry.key] = record

    def _rebuild(self) -> None:
        self.index = GalleryIndex.build(self.records.values(), self.model)
        IDENTITIES.set(self.index.identities)
        EMBEDDINGS.set(len(self.index))

    async def add_sample(
        self,
        identity_id: str,
        embedding: Sequence[float],
        thumbnail: bytes,
        display_name: str = "",
        labels: dict[str, str] | None = None,
    ) -> tuple[identity_pb2.Identity, int]:
        """Create the identity or add a face sample to it; returns the identity and the KV revision.

        The gallery store writes it (thumbnail first, record at the revision
        read), so two replicas enrolling the same person at once both land.
        """
        sample = Sample(embedding, self.model, thumbnail, display_name, labels or {})
        return await self.store.add_sample(identity_id, sample)
