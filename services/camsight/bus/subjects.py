"""Names of streams, subjects, buckets and endpoints: the bus's address book.

Subjects put the camera id last so one wildcard selects a camera across
analyzers (``detections.*.lobby``) and the id is always a single token
(see :mod:`camsight.naming`).
"""

from __future__ import annotations

from camsight.naming import validate_id
from camsight.v1 import event_pb2

FRAMES_STREAM = "FRAMES"
DETECTIONS_STREAM = "DETECTIONS"
EVENTS_STREAM = "EVENTS"
DEADLETTER_STREAM = "DEADLETTER"

FRAMES_ALL = "frames.>"
DETECTIONS_ALL = "detections.>"
EVENTS_ALL = "events.>"
DEADLETTER_ALL = "deadletter.>"
JS_API_PREFIX = "$JS.API."
"""Where JetStream's API requests go (NATS permissions grant them by these subjects)."""

CAMERAS_BUCKET = "cameras"
CAMERA_STATUS_BUCKET = "camera_status"
GALLERY_BUCKET = "gallery"
SNAPSHOTS_STORE = "snapshots"
FACES_STORE = "faces"
# Behavior state per camera (camsight.behavior.checkpoint): restored by the camera's next owner.
BEHAVIOR_STATE_BUCKET = "behavior_state"
# Memory KV with a TTL: decoder replica heartbeats and camera leases (camsight.bus.leases).
DECODER_LEASES_BUCKET = "decoder_leases"

FACE_ENROLL_SUBJECT = "camsight.face.enroll"

# Headers camsight sets on messages.
MSG_ID_HEADER = "Nats-Msg-Id"
ORIGINAL_SUBJECT_HEADER = "Camsight-Original-Subject"
ERROR_HEADER = "Camsight-Error"
CONSUMER_HEADER = "Camsight-Consumer"


def frames(camera_id: str) -> str:
    return f"frames.{validate_id(camera_id, 'camera id')}"


def detections(analyzer: str, camera_id: str) -> str:
    return f"detections.{validate_id(analyzer, 'analyzer name')}.{validate_id(camera_id, 'camera id')}"


def detections_of_camera(camera_id: str) -> str:
    """Every analyzer's results for one camera."""
    return f"detections.*.{validate_id(camera_id, 'camera id')}"


def event_type_token(event_type: event_pb2.EventType.ValueType) -> str:
    """EVENT_TYPE_ZONE_ENTER -> "zone_enter"."""
    return event_pb2.EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower()


def events(event_type: event_pb2.EventType.ValueType, camera_id: str) -> str:
    return f"events.{event_type_token(event_type)}.{validate_id(camera_id, 'camera id')}"


def deadletter(consumer: str) -> str:
    return f"deadletter.{validate_id(consumer, 'consumer name')}"
