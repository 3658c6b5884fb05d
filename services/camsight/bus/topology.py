"""Declare the streams, KV buckets and object stores, idempotently.

:func:`ensure_topology` creates what is missing and updates a stream whose
limits changed in the configuration in place. One privileged step runs it
(``camsight topology``, or a service whose ``nats.declare_topology`` is on);
services that may not change the topology run :func:`check_topology`
instead, which only looks (decision 0081). See docs/architecture.md for why
each stream has the limits it has.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError

from camsight.bus import subjects
from camsight.config import StreamSettings

log = logging.getLogger(__name__)
DAY = 86400.0

# KV buckets: (bucket, history, description).
BUCKETS = (
    (subjects.CAMERAS_BUCKET, 5, "Camera registry (camsight.v1.Camera), the source of truth."),
    (subjects.CAMERA_STATUS_BUCKET, 1, "Live camera status (camsight.v1.CameraStatus)."),
    (subjects.GALLERY_BUCKET, 1, "Face gallery (camsight.v1.IdentityRecord)."),
    (subjects.BEHAVIOR_STATE_BUCKET, 1, "Behavior state checkpoints, one key per camera."),
)

# JetStream answers while a cluster is still forming (nodes joining, no meta leader
# yet): worth retrying, unlike a refusal of the request itself.
CLUSTER_FORMING_CODES = frozenset({10005, 10008})  # no suitable peers; JetStream unavailable


class ClusterFormingError(Exception):
    """JetStream cannot place or create a stream yet: the cluster is still forming."""


def cluster_forming(exc: APIError) -> bool:
    """True for the answers of a JetStream cluster that has not formed yet (503s too)."""
    return exc.code == 503 or exc.err_code in CLUSTER_FORMING_CODES


class TopologyMissingError(Exception):
    """A stream, bucket or object store of the topology does not exist (yet)."""


def topology_streams() -> list[str]:
    """The JetStream stream behind every stream, bucket and object store declared here."""
    return [
        *(c.name or "" for c in stream_configs(StreamSettings())),
        *(f"KV_{kv.bucket}" for kv in kv_configs(StreamSettings())),
        *(f"OBJ_{store.bucket}" for store in object_store_configs(StreamSettings())),
    ]


def stream_configs(cfg: StreamSettings) -> list[StreamConfig]:
    """The four streams: frames (memory, newest win), detections, events, dead letters."""
    return [
        StreamConfig(
            name=subjects.FRAMES_STREAM,
            description="Decoded frames; bounded per camera, newest frames win.",
            subjects=[subjects.FRAMES_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            max_msgs_per_subject=cfg.frames_per_camera,
            max_age=cfg.frames_max_age_s,
            max_bytes=cfg.frames_max_bytes,
            allow_direct=True,
            num_replicas=1,
        ),
        StreamConfig(
            name=subjects.DETECTIONS_STREAM,
            description="AnalysisResults of every analyzer.",
            subjects=[subjects.DETECTIONS_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=cfg.detections_max_age_s,
            num_replicas=1,
        ),
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            description="Events, de-duplicated by Nats-Msg-Id.",
            subjects=[subjects.EVENTS_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=cfg.events_max_age_days * DAY,
            duplicate_window=cfg.events_duplicate_window_s,
            num_replicas=cfg.events_replicas,
        ),
        StreamConfig(
            name=subjects.DEADLETTER_STREAM,
            description="Messages no handler could process, with the reason in headers.",
            subjects=[subjects.DEADLETTER_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=cfg.deadletter_max_age_days * DAY,
            max_bytes=256 * 1024 * 1024,
            num_replicas=1,
        ),
    ]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream", extra={"stream": config.name})
        return
    try:
        await js.update_stream(config)
    except BadRequestError as exc:  # e.g. a storage type cannot change in place
        log.warning("stream %s kept its old config: %s", config.name, exc.description)


async def ensure_topology(js: JetStreamContext, cfg: StreamSettings) -> None:
    """Create or update every stream, bucket and object store camsight uses.

    Raises :class:`ClusterFormingError` while a JetStream cluster cannot place
    streams yet (a topology Job that starts with the NATS pods): the caller retries.
    """
    try:
        await _declare(js, cfg)
    except APIError as exc:
        if cluster_forming(exc):
            raise ClusterFormingError(exc.description or str(exc)) from exc
        raise


def kv_configs(cfg: StreamSettings) -> list[KeyValueConfig]:
    """The KV buckets, each kept in ``events_replicas`` copies."""
    return [
        KeyValueConfig(
            bucket=bucket,
            description=description,
            history=history,
            storage=StorageType.FILE,
            replicas=cfg.events_replicas,
        )
        for bucket, history, description in BUCKETS
    ]


def object_store_configs(cfg: StreamSettings) -> list[ObjectStoreConfig]:
    """The object stores: event snapshots (bounded in bytes and age) and face thumbnails."""
    return [
        ObjectStoreConfig(
            bucket=subjects.SNAPSHOTS_STORE,
            description="Event snapshots (JPEG).",
            ttl=cfg.snapshots_max_age_days * DAY,
            max_bytes=cfg.snapshots_max_bytes,
            storage=StorageType.FILE,
            replicas=cfg.events_replicas,
        ),
        ObjectStoreConfig(
            bucket=subjects.FACES_STORE,
            description="Thumbnails of enrolled faces.",
            storage=StorageType.FILE,
            replicas=cfg.events_replicas,
        ),
    ]


async def _declare(js: JetStreamContext, cfg: StreamSettings) -> None:
    for config in stream_configs(cfg):
        await ensure_stream(js, config)
    for kv in kv_configs(cfg):
        await js.create_key_value(kv)
    for store in object_store_configs(cfg):
        await js.create_object_store(store.bucket or "", config=store)


async def check_topology(js: JetStreamContext) -> None:
    """Raise :class:`TopologyMissingError` naming the first missing stream, bucket or store.

    Only reads stream info, so a user without the right to create streams
    can run it.
    """
    for stream in topology_streams():
        try:
            await js.stream_info(stream)
        except NotFoundError:
            raise TopologyMissingError(
                f"stream {stream} does not exist: run `camsight topology` (or a process with "
                "nats.declare_topology: true) to declare camsight's streams and buckets"
            ) from None
