"""A camera's behavior state as bytes, for the ``behavior_state`` KV bucket (decision 0048).

What decides a camera's future events is in memory: its reorder buffers,
its trackers (ByteTrack's tracklets with their Kalman state, candidates,
confirmed, coasting and parked tracks, the track-number counter) and its
rule runners (zone memberships, open events with their revision, dwell and
crowding timers, line counts). A checkpoint is all of it, pickled as the
engine holds it, together with the DETECTIONS stream sequence of the last
result it reflects. Pickle, not a schema of our own: the engine's state is
exactly restored (the same input after a restore gives the same events,
revisions included, which is what lets ``Nats-Msg-Id`` drop a replay), and
no rule module needs code of its own to take part.

Pickle runs code named by the data, so loading is restricted to the classes
a behavior state is made of (camsight's behavior and camera models, the
tracker library's ByteTrack, protobuf messages, numpy arrays and scalars): the bucket is writable
by the behavior user only (decision 0080), and a value naming anything else
is refused, not run. A checkpoint written by another format version, or
under other tracking settings (its trackers would keep the old ones), is
refused with a one-line reason; the camera then starts with no state, as it
did before checkpoints existed.
"""

from __future__ import annotations

import io
import pickle
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from camsight.behavior.settings import BehaviorSettings
from camsight.v1 import analysis_pb2, frame_pb2

FORMAT = b"camsight.behavior.state/1\n"
"""Prefix of every checkpoint; bump the version when the engine's classes change shape."""

RUNTIME_ONLY = frozenset(
    {
        "replica_index",
        "replicas",
        "batch",
        "ack_wait_s",
        "snapshot_cache",
        "reorder_timeout_s",
        "checkpoint_interval_s",
    }
)
"""Settings that change how the service runs, not what the engine decides: a
checkpoint stays valid across a change of these (e.g. more replicas)."""

_ALLOWED_PREFIXES = (
    "camsight.behavior.",
    "camsight.cameras",
    "camsight.v1.",
    "google.protobuf.timestamp_pb2",
    "google.protobuf.duration_pb2",
    "trackers.core.bytetrack.",
    "trackers.utils.",
)
_ALLOWED_GLOBALS = frozenset(
    {
        ("collections", "deque"),
        ("collections", "Counter"),
        # What numpy arrays and scalars pickle as (numpy 2), and nothing else of numpy.
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
    }
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored; the message says why, in one line.

    ``stale`` is the checkpoint when it could be read but not continued (taken under other
    tracking settings, or ahead of a recreated stream): its open events can still be ended,
    where an unreadable one's stay open in the index."""

    def __init__(self, message: str, stale: Checkpoint | None = None) -> None:
        super().__init__(message)
        self.stale = stale


ENGINE_KEYS = frozenset({"config", "streams", "runners"})
"""What :meth:`camsight.behavior.engine.CameraEngine.state` holds."""


@dataclass
class Checkpoint:
    """One camera's state after the result at DETECTIONS sequence ``position``: the engine's
    (:meth:`~camsight.behavior.engine.CameraEngine.state`) and the boxes to blur noted for
    its recent frames, by seq (the snapshot store's, for pictures rendered after a restore)."""

    position: int
    engine: dict[str, Any]
    private: dict[int, list[Any]]


def _fingerprint(settings: BehaviorSettings) -> dict[str, Any]:
    return settings.model_dump(exclude=set(RUNTIME_ONLY))


def _parse(cls: type[Message], data: bytes) -> Message:
    message = cls()
    message.ParseFromString(data)
    return message


def _reduce_message(message: Message) -> tuple[Any, ...]:
    return _parse, (type(message), message.SerializePartialToString())


# The messages a state holds by the hundred (a track's sightings): one function call each
# instead of protobuf's __reduce__ and __getstate__ halves the time of a whole dump.
_DISPATCH = {
    cls: _reduce_message
    for cls in (
        analysis_pb2.Detection,
        analysis_pb2.AnalysisResult,
        frame_pb2.FrameRef,
        timestamp_pb2.Timestamp,
    )
}


def dump(checkpoint: Checkpoint, settings: BehaviorSettings) -> bytes:
    """Serialise (zlib level 1: a sixth of the size for well under a millisecond)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH  # type: ignore[assignment]
    pickler.dump((checkpoint.position, _fingerprint(settings), checkpoint.engine, checkpoint.private))
    return FORMAT + zlib.compress(out.getbuffer(), 1)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, trusted: tuple[str, ...]) -> None:
        super().__init__(file)
        self.allowed = _ALLOWED_PREFIXES + trusted

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or module.startswith(self.allowed):
            return super().find_class(module, name)
        raise CheckpointError(f"checkpoint names {module}.{name}, which no behavior state holds")


def load(data: bytes, settings: BehaviorSettings, trusted: Iterable[str] = ()) -> Checkpoint:
    """The checkpoint in ``data``; raises :class:`CheckpointError` when it cannot be used.

    ``trusted``: module prefixes whose classes a state may hold besides camsight's own,
    the packages of the rule plugins the service runs (their code runs anyway; their rule
    objects are part of a camera's state)."""
    if not data.startswith(FORMAT):
        raise CheckpointError(f"not a checkpoint of format {FORMAT.decode().strip()}")
    try:
        body = zlib.decompress(data[len(FORMAT) :])
        position, fingerprint, engine, private = _Unpickler(io.BytesIO(body), tuple(trusted)).load()
    except CheckpointError:
        raise
    except Exception as exc:  # a truncated or corrupt value: any error of zlib or pickle
        raise CheckpointError(f"checkpoint is corrupt ({type(exc).__name__}: {exc})") from None
    if not (isinstance(engine, dict) and engine.keys() == ENGINE_KEYS and isinstance(private, dict)):
        raise CheckpointError("checkpoint does not hold a camera's engine state")
    saved = Checkpoint(int(position), engine, private)
    current = _fingerprint(settings)
    if fingerprint != current:
        changed = sorted(k for k in current if fingerprint.get(k) != current[k])
        raise CheckpointError(
            f"checkpoint was taken with other tracking settings ({', '.join(changed)})", stale=saved
        )
    return saved
