"""Least privilege on the bus: one NATS user per service, allowed only the subjects it needs.

:func:`service_users` generates a user and a random password per service;
:func:`authorization` turns them into the nats-server ``authorization``
block (``EmbeddedNats(authorization=...)``), and :func:`credentials` into
the ``nats`` settings section each service connects with.

What each service may touch is declared once, in :data:`NEEDS`, in bus
terms (streams it consumes, buckets it reads or writes, subjects it
publishes), and compiled into NATS subject permissions by
:func:`permissions`. Everything not listed is refused by the server with a
permissions violation (the client sees an error, the server log names the
user and subject). Known gap, documented in docs/operations.md: every
service declares the topology at start (``Bus.ensure_topology``), so every
user may create and update streams; deleting or purging is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from camsight.bus import subjects

# Subjects of the JetStream API every client uses to declare and inspect the topology.
TOPOLOGY = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
]


@dataclass(frozen=True)
class Needs:
    """What one service does on the bus."""

    consumes: tuple[str, ...] = ()
    """Streams it reads through consumers (and by sequence)."""
    reads: tuple[str, ...] = ()
    """KV buckets it reads or watches."""
    writes: tuple[str, ...] = ()
    """KV buckets it writes (implies reads)."""
    objects_read: tuple[str, ...] = ()
    objects_write: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    """Subjects it publishes to (streams' subjects, requests)."""
    serves: tuple[str, ...] = ()
    """Request subjects it answers (it may reply on inboxes)."""
    listens: tuple[str, ...] = ()
    """Other subjects it subscribes to (advisories)."""
    inspects: tuple[str, ...] = ()
    """Streams whose consumers it lists and inspects without consuming."""


NEEDS: dict[str, Needs] = {
    "decoder": Needs(
        consumes=(),
        # cameras: it seeds the config file's cameras into the registry (seed_cameras).
        writes=(subjects.CAMERAS_BUCKET, subjects.CAMERA_STATUS_BUCKET, subjects.DECODER_LEASES_BUCKET),
        publishes=(subjects.FRAMES_ALL, "events.camera_status.*"),
        inspects=(subjects.FRAMES_STREAM,),
        # Lossless pacing follows the analyzers' acks on FRAMES.
        listens=(
            f"$JS.EVENT.METRIC.CONSUMER.ACK.{subjects.FRAMES_STREAM}.*",
            f"$JS.EVENT.ADVISORY.CONSUMER.*.{subjects.FRAMES_STREAM}.*",
        ),
    ),
    "detector": Needs(consumes=(subjects.FRAMES_STREAM,), publishes=(subjects.DETECTIONS_ALL,)),
    "face": Needs(
        consumes=(subjects.FRAMES_STREAM,),
        writes=(subjects.GALLERY_BUCKET,),
        objects_write=(subjects.FACES_STORE,),
        publishes=(subjects.DETECTIONS_ALL,),
        serves=(subjects.FACE_ENROLL_SUBJECT,),
    ),
    "behavior": Needs(
        consumes=(subjects.DETECTIONS_STREAM, subjects.FRAMES_STREAM),
        reads=(subjects.CAMERAS_BUCKET,),
        objects_write=(subjects.SNAPSHOTS_STORE,),
        publishes=(subjects.EVENTS_ALL,),
    ),
    "query": Needs(
        consumes=(subjects.EVENTS_STREAM,),
        reads=(subjects.CAMERA_STATUS_BUCKET,),
        writes=(subjects.CAMERAS_BUCKET, subjects.GALLERY_BUCKET),
        objects_read=(subjects.SNAPSHOTS_STORE,),
        objects_write=(subjects.FACES_STORE,),
        publishes=(subjects.FACE_ENROLL_SUBJECT,),
    ),
    "controller": Needs(
        reads=(subjects.CAMERA_STATUS_BUCKET,),
        writes=(subjects.CAMERAS_BUCKET,),
    ),
}


def _stream_read(stream: str) -> list[str]:
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.LIST.{stream}",
        f"$JS.API.CONSUMER.NAMES.{stream}",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.ACK.{stream}.>",
    ]


def permissions(needs: Needs) -> dict[str, Any]:
    """NATS ``permissions`` for a service: publish and subscribe allow-lists."""
    publish = [*TOPOLOGY, "deadletter.>", *needs.publishes]
    subscribe = ["_INBOX.>", *needs.serves, *needs.listens]
    for stream in needs.consumes:
        publish += _stream_read(stream)
    for stream in needs.inspects:
        publish += [f"$JS.API.CONSUMER.LIST.{stream}", f"$JS.API.CONSUMER.NAMES.{stream}"]
        publish += [f"$JS.API.CONSUMER.INFO.{stream}.*"]
    for bucket in dict.fromkeys((*needs.reads, *needs.writes)):
        publish += _stream_read(f"KV_{bucket}")
    for bucket in needs.writes:
        publish.append(f"$KV.{bucket}.>")
    for store in dict.fromkeys((*needs.objects_read, *needs.objects_write)):
        publish += _stream_read(f"OBJ_{store}")
    for store in needs.objects_write:
        publish += [
            f"$O.{store}.>",
            f"$JS.API.STREAM.PURGE.OBJ_{store}",
        ]  # replacing an object purges its chunks
    if needs.serves:
        publish.append("_INBOX.>")  # replies
    return {
        "publish": {"allow": list(dict.fromkeys(publish))},
        "subscribe": {"allow": list(dict.fromkeys(subscribe))},
    }


@dataclass(frozen=True)
class ServiceUser:
    service: str
    user: str
    password: str = field(repr=False)


def service_users(services: Iterable[str] = NEEDS, prefix: str = "camsight-") -> dict[str, ServiceUser]:
    """A user with a fresh random password for each service."""
    unknown = sorted(set(services) - set(NEEDS))
    if unknown:
        raise ValueError(f"no NATS permissions are defined for service(s) {', '.join(unknown)}")
    return {s: ServiceUser(s, f"{prefix}{s}", secrets.token_urlsafe(24)) for s in services}


def authorization(users: Mapping[str, ServiceUser], admin: ServiceUser | None = None) -> dict[str, Any]:
    """The nats-server ``authorization`` block: each user with its service's permissions.

    ``admin`` (optional) gets no restriction: for the process that starts the
    system and for operators' tools.
    """
    entries: list[dict[str, Any]] = [
        {"user": u.user, "password": u.password, "permissions": permissions(NEEDS[u.service])}
        for u in users.values()
    ]
    if admin is not None:
        entries.append({"user": admin.user, "password": admin.password})
    return {"users": entries}


def credentials(user: ServiceUser) -> dict[str, str]:
    """What to merge into a service's ``nats`` settings section to connect as ``user``."""
    return {"user": user.user, "password": user.password}
