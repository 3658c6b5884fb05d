"""Exclusive leases and live membership in a JetStream KV bucket with a TTL.

Any service whose replicas must split work (the decoder splits cameras, the
behavior service may split partitions) uses :class:`LeaseTable`:

* every replica writes a heartbeat key ``member.<holder>``; the bucket's TTL
  (its ``max_age``) makes the key vanish when the replica dies, so
  :meth:`LeaseTable.members` lists the live replicas;
* :func:`rendezvous_owner` (highest random weight hashing) picks, for each
  work item, one preferred replica out of the live ones: items spread evenly
  and only the items of a replica that joins or leaves move;
* a replica works on an item only while it holds ``lease.<item>``: taken with
  a compare-and-set create (only one replica can win), renewed with an update
  on the revision it last wrote (fails once someone else took it), released
  with a delete on that revision, and expiring ``ttl`` after the last renewal
  when its holder dies.

Takeover bound: a dead holder's last renewal was at most ``renew_interval``
before it died, so its leases expire at most ``ttl`` after its death, and the
next replica claims them on its next tick: ``ttl + renew_interval``.

A holder that cannot renew (network partition) treats a lease as lost once
``ttl`` has passed since its last successful renewal (see :meth:`valid`), so
two replicas never believe they hold the same lease at the same time (up to
clock-rate skew, which is negligible over seconds).

The bucket is kept in memory, so a restarted nats-server loses every lease
and heartbeat at once (decision 0083): without a cluster the bucket itself is
gone, and the first holder to beat creates it again; in a cluster it comes
back empty, its sequence counting from 0 again. A holder takes back the
leases it still holds (a create, so only if nobody was first), and no holder
that saw the bucket lose its keys claims anything else for one ``ttl``: by
then every live holder has beaten and taken its own back, so nobody takes a
lease whose holder, not yet listed again, still works on it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable
from datetime import datetime

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from camsight.bus.connection import Bus

log = logging.getLogger(__name__)

MEMBER_PREFIX = "member."
LEASE_PREFIX = "lease."
_UNSAFE = re.compile(r"[^A-Za-z0-9_=-]")

LEASE_ERRORS: tuple[type[BaseException], ...] = (
    nats.js.errors.KeyWrongLastSequenceError,
    nats.js.errors.APIError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    TimeoutError,
)


def holder_id(*parts: str) -> str:
    """A KV-key-safe holder id from free text (host names may hold dots)."""
    return "-".join(_UNSAFE.sub("-", p) for p in parts if p)[:120]


def rendezvous_owner(item: str, members: Iterable[str]) -> str | None:
    """The member that should own ``item``: highest hash of (member, item).

    Every replica computes the same answer from the same member list, with
    no coordination; when a member leaves only its items move.
    """

    def weight(member: str) -> bytes:
        return hashlib.blake2b(f"{member}\x00{item}".encode(), digest_size=8).digest()

    return max(members, key=weight, default=None)


async def open_lease_bucket(bus: Bus, bucket: str, ttl: float) -> tuple[KeyValue, float, bool]:
    """Open (or create) a memory KV bucket whose keys expire ``ttl`` after their last write.

    Returns the bucket, its real TTL and whether this call created it: a bucket
    created earlier with another TTL is kept as it is (every replica must agree),
    with a warning.
    """
    try:
        info = await bus.js.stream_info(f"KV_{bucket}")
    except nats.js.errors.NotFoundError:
        kv = await bus.js.create_key_value(
            KeyValueConfig(
                bucket=bucket,
                description="Leases and replica heartbeats (keys expire with the TTL).",
                history=1,
                ttl=ttl,
                storage=StorageType.MEMORY,
            )
        )
        return kv, ttl, True
    actual = float(info.config.max_age or 0.0)
    if abs(actual - ttl) > 1e-3:
        log.warning(
            "lease bucket %s has ttl %.3fs, not the configured %.3fs; using %.3fs",
            bucket,
            actual,
            ttl,
            actual,
        )
    return await bus.js.key_value(bucket), actual, False


class LeaseTable:
    """The leases one holder has in one bucket, and the bucket's live members."""

    def __init__(self, bus: Bus, bucket: str, kv: KeyValue, holder: str, ttl: float) -> None:
        self.bus = bus
        self.bucket = bucket
        self.kv = kv
        self.holder = holder
        self.ttl = ttl
        self._revisions: dict[str, int] = {}
        self._renewed: dict[str, float] = {}
        self._listed: tuple[datetime | None, int] | None = None  # the bucket's creation, last sequence
        self._claims_from = 0.0  # monotonic: no new claim before (the bucket was recreated)

    @classmethod
    async def open(cls, bus: Bus, bucket: str, holder: str, ttl: float) -> LeaseTable:
        kv, actual_ttl, _ = await open_lease_bucket(bus, bucket, ttl)
        return cls(bus, bucket, kv, holder, actual_ttl)

    async def heartbeat(self) -> None:
        """Say this holder is alive (call more often than the TTL); create the bucket again
        when it is gone."""
        key, value = MEMBER_PREFIX + self.holder, str(time.time()).encode()
        try:
            await self.kv.put(key, value)
        except nats.js.errors.NoStreamResponseError:  # no stream stores the bucket's subjects
            self.kv, _, created = await open_lease_bucket(self.bus, self.bucket, self.ttl)
            if created:  # else another holder was first, which the next listing shows
                log.warning(
                    "lease bucket %s was gone (a nats-server restart?); created it again", self.bucket
                )
                self._bucket_lost()
            await self.kv.put(key, value)

    def _bucket_lost(self) -> None:
        """Every lease vanished with the bucket: claim nothing new for one TTL (see the module)."""
        self._claims_from = time.monotonic() + self.ttl

    async def leave(self) -> None:
        """Remove the heartbeat so others stop counting this holder at once."""
        await self.kv.delete(MEMBER_PREFIX + self.holder)

    async def members(self) -> list[str]:
        """Holders whose heartbeat has neither expired nor been withdrawn, sorted.

        Always includes this holder once it beat. The keys come from
        :meth:`Bus.kv_keys` (nats-py's ``keys()`` sometimes answered with
        fewer keys than there were, which dropped a live replica for a tick
        and moved its cameras). A member that left still has its delete
        marker listed there until the TTL removes it, so each listed
        heartbeat is read: a deleted one does not count.
        """
        listed, info = await self.bus.kv_listing(self.bucket, match=MEMBER_PREFIX + ">")
        seen, self._listed = self._listed, (info.created, info.state.last_seq)
        if seen is not None and (seen[0] != info.created or info.state.last_seq < seen[1]):
            self._bucket_lost()  # created again by another holder, or emptied (a cluster's restart)
        live = []
        for key in listed:
            try:
                await self.kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):  # it left
                continue
            live.append(key.removeprefix(MEMBER_PREFIX))
        return live

    def held(self) -> set[str]:
        return set(self._revisions)

    def valid(self, name: str) -> bool:
        """True while ``name`` is held and its last renewal is younger than the TTL."""
        renewed = self._renewed.get(name)
        return renewed is not None and time.monotonic() - renewed < self.ttl

    async def claim(self, name: str) -> bool:
        """Take the lease if nobody holds it; True when this holder now holds it."""
        if name in self._revisions:
            return await self.renew(name)
        if time.monotonic() < self._claims_from:
            return False
        return await self._create(name)

    async def _create(self, name: str) -> bool:
        """Take the lease with a create: only when nobody holds it."""
        started = time.monotonic()
        try:
            revision = await self.kv.create(LEASE_PREFIX + name, self.holder.encode())
        except LEASE_ERRORS:
            return False
        self._revisions[name] = revision
        self._renewed[name] = started
        return True

    async def renew(self, name: str) -> bool:
        """Extend the lease; False (and forgotten) when it was lost to another holder."""
        revision = self._revisions.get(name)
        if revision is None:
            return False
        started = time.monotonic()
        try:
            self._revisions[name] = await self.kv.update(
                LEASE_PREFIX + name, self.holder.encode(), last=revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            if self.valid(name) and await self.holder_of(name) is None and await self._create(name):
                # The key vanished while the lease was ours: the bucket was created again (or emptied).
                log.info("lease %s taken back in a recreated bucket", name)
                self._bucket_lost()
                return True
            taken = "was taken over by another holder" if self.valid(name) else "expired before its renewal"
            log.warning("lease %s %s", name, taken)
            self._forget(name)
            return False
        except LEASE_ERRORS as exc:
            log.warning("could not renew lease %s: %s", name, exc)
            if not self.valid(name):
                self._forget(name)
            return self.valid(name)
        self._renewed[name] = started
        return True

    async def release(self, name: str) -> None:
        """Give the lease up (only if still ours) so another holder can take it at once."""
        revision = self._revisions.get(name)
        self._forget(name)
        if revision is None:
            return
        try:
            await self.kv.delete(LEASE_PREFIX + name, last=revision)
        except LEASE_ERRORS as exc:
            log.debug("lease %s not released (%s); it will expire", name, exc)

    async def holder_of(self, name: str) -> str | None:
        """Who holds ``name`` now, or None."""
        try:
            entry = await self.kv.get(LEASE_PREFIX + name)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None

    def _forget(self, name: str) -> None:
        self._revisions.pop(name, None)
        self._renewed.pop(name, None)
