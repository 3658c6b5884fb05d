"""Least privilege on the bus: one NATS user per service, allowed only the subjects it needs.

:func:`service_users` generates a user and a random password per role (a
service, or :data:`TOPOLOGY_ROLE`); :func:`authorization` turns them into
the nats-server ``authorization`` block (``EmbeddedNats(authorization=...)``),
and :func:`credentials` into the ``nats`` settings section each connects with.

What each service may touch is declared once, in :data:`NEEDS`, in bus
terms (streams it consumes, buckets it reads or writes, subjects it
publishes), and compiled into NATS subject permissions by
:func:`permissions`. Everything not listed is refused by the server with a
permissions violation (the client sees an error, the server log names the
user and subject).

Replies stay private: every user gets its own inbox prefix,
``_INBOX.<user>`` (:func:`inbox_prefix`, the ``nats.inbox_prefix`` setting
that :func:`credentials` includes), and may subscribe below it only, so no
service can read another's request replies, JetStream API answers, pull
fetches or KV watches. A service that answers requests publishes its replies
through the server's ``allow_responses`` (to the reply subject of a request
it received, once) instead of a right on other users' inboxes.

No service user may create, update, delete or purge camsight's streams:
services run with ``nats.declare_topology: false`` and only check the
topology; the ``topology`` role (``camsight topology``, a Helm Job) is the
one allowed to create and update them (decision 0081). The Helm chart reads
the same permissions from ``helm/camsight/files/nats-permissions.json``,
written by ``python -m camsight.natsauth FILE`` and checked by a test.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camsight.bus import subjects
from camsight.bus.topology import topology_streams

# Subjects of the JetStream API every client uses to inspect (never change) the topology.
TOPOLOGY = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
]
# The role of `camsight topology`: creates and updates camsight's streams, nothing else.
TOPOLOGY_ROLE = "topology"
# The role of applications that read events on NATS: EVENTS and snapshots, nothing else.
READER_ROLE = "events-reader"
# What generated user names start with (the Helm chart uses the same: camsight-<role>).
USER_PREFIX = "camsight-"
# A request-serving user may answer each request it received once, within a minute.
# The expiry also bounds the server's per-connection table of reply subjects, which
# records every message delivered with a reply subject (JetStream deliveries included,
# whose acks go through explicit `$JS.ACK` rights and never clear an entry). No camsight
# requester waits longer than a minute (enrollment: 30 s over gRPC, 60 s in embedded mode).
ALLOW_RESPONSES = {"max": 1, "expires": "1m"}


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
    """Request subjects it answers (it may reply once to each request: :data:`ALLOW_RESPONSES`)."""
    listens: tuple[str, ...] = ()
    """Other subjects it subscribes to (advisories)."""
    inspects: tuple[str, ...] = ()
    """Streams whose consumers it lists and inspects without consuming."""
    peeks: tuple[str, ...] = ()
    """Streams whose messages it reads by subject or sequence, without a consumer."""
    owns: tuple[str, ...] = ()
    """KV buckets it creates itself because their settings are its own (the decoder's lease
    TTL): create only, never update or delete."""
    watches: tuple[str, ...] = ()
    """Streams it reads through ordered consumers only (ephemeral, pushed to its own inbox):
    it can neither pull from, replace nor delete another user's consumer."""
    dead_letters: bool = True
    """It copies what it cannot process to ``deadletter.<consumer>`` (every service does)."""


NEEDS: dict[str, Needs] = {
    "decoder": Needs(
        consumes=(),
        # cameras: it seeds the config file's cameras into the registry (seed_cameras).
        writes=(subjects.CAMERAS_BUCKET, subjects.CAMERA_STATUS_BUCKET, subjects.DECODER_LEASES_BUCKET),
        owns=(subjects.DECODER_LEASES_BUCKET,),
        publishes=(subjects.FRAMES_ALL, "events.camera_status.*"),
        inspects=(subjects.FRAMES_STREAM,),
        # A file taken over mid-way resumes after its last frame on FRAMES.
        peeks=(subjects.FRAMES_STREAM,),
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
        # Its cameras' state checkpoints (decision 0048).
        writes=(subjects.BEHAVIOR_STATE_BUCKET,),
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
    # Not a service: applications outside camsight that follow events on NATS
    # (docs/api.md, "Events on NATS"). Read-only: events and their snapshots.
    READER_ROLE: Needs(
        watches=(subjects.EVENTS_STREAM, f"OBJ_{subjects.SNAPSHOTS_STORE}"),
        peeks=(subjects.EVENTS_STREAM, f"OBJ_{subjects.SNAPSHOTS_STORE}"),
        dead_letters=False,
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


def inbox_prefix(user: str) -> str:
    """The reply-inbox prefix of NATS user ``user``: ``_INBOX.<user>``.

    The user name must be one subject token: with a dot, one user's prefix
    could lie below another's (``_INBOX.a.>`` covers ``_INBOX.a.b``).
    """
    if not user or any(c in user for c in ".*> \t\r\n"):
        raise ValueError(f"NATS user {user!r} cannot name an inbox: no dots, wildcards or spaces")
    return f"_INBOX.{user}"


def permissions(needs: Needs, inbox: str) -> dict[str, Any]:
    """NATS ``permissions`` for a service whose inbox prefix is ``inbox``: publish and
    subscribe allow-lists, and ``allow_responses`` when it answers requests."""
    publish = [*TOPOLOGY, *(["deadletter.>"] if needs.dead_letters else []), *needs.publishes]
    subscribe = [f"{inbox}.>", *needs.serves, *needs.listens]
    for stream in needs.consumes:
        publish += _stream_read(stream)
    for stream in needs.watches:
        publish += [
            f"$JS.API.CONSUMER.CREATE.{stream}",  # no name: ephemeral, never another's consumer
            f"$JS.API.CONSUMER.INFO.{stream}.*",
            f"$JS.FC.{stream}.>",  # the ordered consumer's flow-control replies
        ]
    for stream in needs.inspects:
        publish += [f"$JS.API.CONSUMER.LIST.{stream}", f"$JS.API.CONSUMER.NAMES.{stream}"]
        publish += [f"$JS.API.CONSUMER.INFO.{stream}.*"]
    for stream in needs.peeks:
        publish += [
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
        ]
    for bucket in dict.fromkeys((*needs.reads, *needs.writes)):
        publish += _stream_read(f"KV_{bucket}")
    for bucket in needs.writes:
        publish.append(f"$KV.{bucket}.>")
    for bucket in needs.owns:
        publish.append(f"$JS.API.STREAM.CREATE.KV_{bucket}")
    for store in dict.fromkeys((*needs.objects_read, *needs.objects_write)):
        publish += _stream_read(f"OBJ_{store}")
    for store in needs.objects_write:
        publish += [
            f"$O.{store}.>",
            f"$JS.API.STREAM.PURGE.OBJ_{store}",
        ]  # replacing an object purges its chunks
    result: dict[str, Any] = {
        "publish": {"allow": list(dict.fromkeys(publish))},
        "subscribe": {"allow": list(dict.fromkeys(subscribe))},
    }
    if needs.serves:
        result["allow_responses"] = dict(ALLOW_RESPONSES)
    return result


def topology_permissions(inbox: str) -> dict[str, Any]:
    """NATS ``permissions`` of the topology role (inbox prefix ``inbox``): create and
    update camsight's streams only."""
    streams = topology_streams()
    publish = [
        *TOPOLOGY,
        *(f"$JS.API.STREAM.CREATE.{s}" for s in streams),
        *(f"$JS.API.STREAM.UPDATE.{s}" for s in streams),
    ]
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{inbox}.>"]}}


def role_permissions(role: str, user: str) -> dict[str, Any]:
    """The permissions of NATS user ``user`` in ``role`` (a service or :data:`TOPOLOGY_ROLE`)."""
    inbox = inbox_prefix(user)
    if role == TOPOLOGY_ROLE:
        return topology_permissions(inbox)
    return permissions(NEEDS[role], inbox)


ROLES = (*NEEDS, TOPOLOGY_ROLE)


@dataclass(frozen=True)
class ServiceUser:
    service: str
    """The role: a service name or :data:`TOPOLOGY_ROLE`."""
    user: str
    password: str = field(repr=False)

    @property
    def inbox_prefix(self) -> str:
        """Its own reply-inbox prefix, the only inboxes it may subscribe to."""
        return inbox_prefix(self.user)


def service_users(services: Iterable[str] = ROLES, prefix: str = USER_PREFIX) -> dict[str, ServiceUser]:
    """A user with a fresh random password for each service (or the topology role)."""
    unknown = sorted(set(services) - set(ROLES))
    if unknown:
        raise ValueError(f"no NATS permissions are defined for service(s) {', '.join(unknown)}")
    users = {s: ServiceUser(s, f"{prefix}{s}", secrets.token_urlsafe(24)) for s in services}
    for user in users.values():
        inbox_prefix(user.user)  # fails early on a name that cannot name an inbox
    return users


def admin_user(prefix: str = USER_PREFIX) -> ServiceUser:
    """An unrestricted user with a fresh random password (embedded mode's own connection)."""
    return ServiceUser("admin", f"{prefix}admin", secrets.token_urlsafe(24))


def authorization(users: Mapping[str, ServiceUser], admin: ServiceUser | None = None) -> dict[str, Any]:
    """The nats-server ``authorization`` block: each user with its role's permissions.

    ``admin`` (optional) gets no restriction: for the process that starts the
    system and for operators' tools.
    """
    entries: list[dict[str, Any]] = [
        {"user": u.user, "password": u.password, "permissions": role_permissions(u.service, u.user)}
        for u in users.values()
    ]
    if admin is not None:
        entries.append({"user": admin.user, "password": admin.password})
    return {"users": entries}


def credentials(user: ServiceUser) -> dict[str, str]:
    """What to merge into a service's ``nats`` settings section to connect as ``user``
    (with its own inbox prefix, the only one its permissions let it subscribe to)."""
    return {"user": user.user, "password": user.password, "inbox_prefix": user.inbox_prefix}


SECRETS_FILE = "camsight_nats"
"""The file, in a role's credentials folder, that holds its ``nats`` settings: pydantic-settings
reads a ``CAMSIGHT_SECRETS_DIR`` file named like the variable, and merges its JSON into the
section, so the YAML file keeps ``servers`` and everything else."""


def write_credentials(folder: Path, users: Mapping[str, ServiceUser]) -> None:
    """``<folder>/<role>/camsight_nats`` per user, private to the owner: a service runs with
    ``CAMSIGHT_SECRETS_DIR=<folder>/<role>``. Services only check the topology
    (``declare_topology: false``); the topology role declares it."""
    for role, user in users.items():
        (folder / role).mkdir(mode=0o700, parents=True, exist_ok=True)
        file = folder / role / SECRETS_FILE
        file.touch(mode=0o600)
        file.write_text(json.dumps({**credentials(user), "declare_topology": role == TOPOLOGY_ROLE}) + "\n")


def credentials_folder(folder: Path, roles: Iterable[str] = ROLES) -> dict[str, ServiceUser]:
    """The users of ``folder`` (:func:`write_credentials`'s layout), generating and writing the
    roles it lacks: a restarted server keeps the passwords its services hold.

    Raises ValueError naming the file that cannot be read or written.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"credentials folder {folder} is not a folder")
    users: dict[str, ServiceUser] = {}
    missing = []
    for role in roles:
        file = folder / role / SECRETS_FILE
        try:
            data = json.loads(file.read_text())
            users[role] = ServiceUser(role, str(data["user"]), str(data["password"]))
        except FileNotFoundError:
            missing.append(role)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"credentials file {file} cannot be read: {exc}") from None
    fresh = service_users(missing)
    try:
        write_credentials(folder, fresh)
    except OSError as exc:
        raise ValueError(f"credentials folder {folder} cannot be written: {exc.strerror or exc}") from None
    return users | fresh


def permissions_document() -> str:
    """Every role's permissions as JSON, for the user ``camsight-<role>`` (inbox prefix
    ``_INBOX.camsight-<role>``): what the Helm chart builds its NATS users from."""
    document = {role: role_permissions(role, f"{USER_PREFIX}{role}") for role in ROLES}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """``python -m camsight.natsauth FILE``: write :func:`permissions_document` to FILE."""
    if len(argv) != 1:
        print("usage: python -m camsight.natsauth helm/camsight/files/nats-permissions.json", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(permissions_document(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
