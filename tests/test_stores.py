"""The store layer (camsight.stores) on a real nats-server: revision-checked writes,
a gallery record and its thumbnails coming and going together, camera ownership."""

from __future__ import annotations

import asyncio

import pytest
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.stores import revisioned
from camsight.stores.cameras import OWNER_LABEL, CameraOwnedError, Registry, ReservedLabelError
from camsight.stores.gallery import GalleryStore, IdentityNotFoundError, Sample, thumbnails_of
from camsight.stores.revisioned import Stored
from camsight.v1 import camera_pb2

MODEL = "test-model"


def sample(n: int) -> Sample:
    return Sample(embedding=[float(n)] * 4, model=MODEL, thumbnail=f"jpeg {n}".encode())


async def objects_of(bus: Bus, identity_id: str) -> set[str]:
    store = await bus.object_store(subjects.FACES_STORE)
    try:
        infos = await store.list(ignore_deletes=True)
    except Exception as exc:  # nats-py raises NotFoundError for an empty store
        if "not found" in str(exc).lower() or type(exc).__name__ == "NotFoundError":
            return set()
        raise
    return {i.name for i in infos if i.name.startswith(f"{identity_id}/") and not i.deleted}


async def test_a_conflicting_write_is_read_again_and_re_applied(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer changes the key between this writer's read and its write: the server
    refuses the write by its revision, the change runs again on the new value, both land."""
    kv = await bus.kv(subjects.GALLERY_BUCKET)
    await kv.put("k", b"a")
    seen: list[bytes] = []
    update = kv.update

    async def another_writer_first(key: str, value: bytes, last: int | None = None) -> int:
        if len(seen) == 1:
            await kv.put(key, b"ab")  # lands after this writer's read, before its write
        return await update(key, value, last=last)

    monkeypatch.setattr(kv, "update", another_writer_first)

    def change(stored: Stored | None) -> bytes:
        assert stored is not None
        seen.append(stored.value)
        return stored.value + b"c"

    revision = await revisioned.modify(kv, "k", change)
    assert seen == [b"a", b"ab"]
    entry = await kv.get("k")
    assert entry.value == b"abc" and entry.revision == revision


async def test_concurrent_enrollments_of_one_identity_all_land(bus: Bus, nats_settings: NatsSettings) -> None:
    """Two connections (two face replicas) enroll the same person at once."""
    other = await connect(nats_settings, StreamSettings(), name="test-other")
    try:
        stores = [GalleryStore(bus), GalleryStore(other)]
        await asyncio.gather(*(stores[n % 2].add_sample("ada", sample(n)) for n in range(12)))
        record, _ = await stores[0].get("ada")
        assert sorted(s.embedding[0] for s in record.samples) == [float(n) for n in range(12)]
        assert record.identity.face_count == 12
        assert thumbnails_of(record) == await objects_of(bus, "ada")
    finally:
        await other.close()


async def test_concurrent_enroll_and_delete_leave_no_orphan(bus: Bus, nats_settings: NatsSettings) -> None:
    """Enrollments racing a deletion: afterwards the thumbnails in the object store are
    exactly those the record names (none when the deletion came last)."""
    other = await connect(nats_settings, StreamSettings(), name="test-other")
    try:
        enroller, deleter = GalleryStore(bus), GalleryStore(other)
        for round_ in range(8):
            identity_id = f"p{round_}"
            await enroller.add_sample(identity_id, sample(0))
            enrolls = [enroller.add_sample(identity_id, sample(n)) for n in range(1, 6)]
            # The deletion starts after a varying number of enrollments have started.
            await asyncio.gather(*enrolls[: round_ % 5], deleter.delete(identity_id), *enrolls[round_ % 5 :])
            names = await objects_of(bus, identity_id)
            try:
                record, _ = await enroller.get(identity_id)
            except IdentityNotFoundError:
                assert names == set(), f"round {round_}: orphaned thumbnails {sorted(names)}"
            else:
                assert thumbnails_of(record) == names, f"round {round_}"
    finally:
        await other.close()


async def test_an_enrollment_between_a_deletions_read_and_write_is_deleted_too(
    bus: Bus, nats_settings: NatsSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that used to orphan a thumbnail, made to happen: the deletion has read the
    record when an enrollment (another connection: the face service) adds a sample. The
    deletion's revision no longer matches, so it reads again and removes the new
    thumbnail with the record, instead of deleting a record it never saw."""
    other = await connect(nats_settings, StreamSettings(), name="face-replica")
    try:
        enroller, deleter = GalleryStore(other), GalleryStore(bus)
        await enroller.add_sample("ada", sample(0))
        kv = await deleter.kv()
        delete = kv.delete
        raced: list[str] = []

        async def enrollment_lands_first(key: str, last: int | None = None) -> bool:
            if not raced:
                identity, _ = await enroller.add_sample(key, sample(1))
                raced.append(identity.thumbnail_ids[-1])
            return await delete(key, last=last)

        monkeypatch.setattr(kv, "delete", enrollment_lands_first)
        removed = await deleter.delete("ada")
        assert raced and raced[0] in thumbnails_of(removed)
        assert await objects_of(bus, "ada") == set()
        with pytest.raises(IdentityNotFoundError):
            await deleter.get("ada")
    finally:
        await other.close()


async def test_deleting_a_missing_identity_says_so(bus: Bus) -> None:
    with pytest.raises(IdentityNotFoundError):
        await GalleryStore(bus).delete("nobody")


def owned(camera_id: str, owner: str, source: str = "/videos/a.mp4") -> camera_pb2.Camera:
    return camera_pb2.Camera(id=camera_id, source_uri=source, labels={OWNER_LABEL: owner})


async def test_every_writer_respects_the_owner(bus: Bus) -> None:
    """An entry of a Camera resource is changed only by that resource's writer; one of
    the API is never taken over by the controller; no writer sets another's label."""
    registry = Registry(bus)
    assert await registry.put(owned("dock", "ns/dock"), owner="ns/dock")
    assert not await registry.put(owned("dock", "ns/dock"), owner="ns/dock")  # unchanged
    with pytest.raises(CameraOwnedError, match="Camera resource ns/dock"):
        await registry.put(camera_pb2.Camera(id="dock", source_uri="/videos/b.mp4"))
    with pytest.raises(CameraOwnedError):
        await registry.update("dock", lambda c: c)
    with pytest.raises(CameraOwnedError):
        await registry.delete("dock")
    with pytest.raises(CameraOwnedError):
        await registry.put(owned("dock", "ns/other"), owner="ns/other")
    await registry.create(camera_pb2.Camera(id="gate", source_uri="/videos/c.mp4"))
    with pytest.raises(CameraOwnedError, match="the API or config file"):
        await registry.put(owned("gate", "ns/gate"), owner="ns/gate")
    with pytest.raises(ReservedLabelError):
        await registry.create(owned("sneaky", "ns/dock"))
    assert (await registry.get("dock"))[0].source_uri == "/videos/a.mp4"
    assert await registry.delete("dock", owner="ns/dock")
    assert not await registry.delete("dock", owner="ns/dock")


async def test_an_equal_camera_is_no_new_revision_whatever_its_label_order(bus: Bus) -> None:
    """A config file seeded at every decoder start must not restart (or replay) its cameras:
    a put of the same camera leaves the revision alone, label order included."""
    registry = Registry(bus)
    first = camera_pb2.Camera(id="gate", source_uri="/videos/c.mp4", labels={"b": "2", "a": "1"})
    assert await registry.put(first)
    _, revision = await registry.get("gate")
    again = camera_pb2.Camera(id="gate", source_uri="/videos/c.mp4", labels={"a": "1", "b": "2"})
    assert not await registry.put(again)
    assert (await registry.get("gate"))[1] == revision
