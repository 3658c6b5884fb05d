"""Event snapshots: fetch the frame again by its claim check, draw the box, keep it.

The frame comes back from the FRAMES stream with a direct get of the
``stream_sequence`` in the result's FrameRef. FRAMES keeps only the newest
few frames per camera, so the engine asks for a snapshot as soon as a better
one is seen; when the frame is gone anyway the next candidate is tried (the
latest frame of the event), then a face crop carried in the detection, else
the event goes without (counted).

Objects are named ``<event id>-<frame seq>``: a replay stores the same name
again instead of a second copy.

Explanations (docs/decisions/0037): when the result of the snapshot's frame
carried a saliency map (an analyzer with ``explain: true``), the map is drawn
over the same frame, boxes blurred and drawn as in the snapshot, and kept
beside it as ``<snapshot name>-explain``. The maps are remembered per frame
like the boxes to blur; a restored event goes without one.

Privacy (:mod:`camsight.privacy`): the box of a detection whose privacy says
blur is blurred before the box is drawn, and so is every such box the
service has already seen in the same frame (a face the face service flagged,
in the snapshot of a person event); a stored face crop of such a detection
is blurred again before it is kept. A face result that arrives after the
snapshot was stored cannot be applied to it (docs/decisions/0034).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import nats.js.errors
import numpy as np
from google.protobuf.message import DecodeError
from nats.js.api import ObjectMeta
from prometheus_client import Counter

from camsight.analyzers.explain import decode as decode_saliency
from camsight.analyzers.explain import overlay
from camsight.behavior.events import SnapshotRequest
from camsight.bus import Bus, subjects
from camsight.privacy import blur_boxes, blur_jpeg, detection_must_blur
from camsight.v1 import analysis_pb2, frame_pb2

log = logging.getLogger(__name__)

SNAPSHOTS = Counter("camsight_behavior_snapshots", "Event snapshots stored, by source", ["source"])
JPEG = "image/jpeg"
PRIVATE_FRAMES = 1024
"""Frames whose boxes to blur are remembered for snapshots (FRAMES keeps fewer per camera)."""
SALIENCY_FRAMES = 1024
"""Frames whose saliency maps (~1 KB each) are remembered for snapshots."""
EXPLAIN_SUFFIX = "-explain"


@dataclass(frozen=True, slots=True)
class Stored:
    """A kept snapshot: its name, and its explanation's name ("" when it has none)."""

    name: str
    explanation: str = ""


def decode(frame: frame_pb2.Frame) -> np.ndarray | None:
    """The frame's pixels as BGR, whatever its encoding; None when unreadable."""
    if frame.encoding == frame_pb2.IMAGE_ENCODING_RAW_BGR:
        if len(frame.data) != frame.width * frame.height * 3:
            return None
        return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).copy()
    image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None else None


def render(
    frame: frame_pb2.Frame,
    detection: analysis_pb2.Detection,
    quality: int = 90,
    private: Iterable[analysis_pb2.Detection] = (),
    saliency: bytes = b"",
) -> bytes | None:
    """The full frame as JPEG with the detection's box and label drawn on it.

    The detection's box, when its privacy says blur, and the boxes of
    ``private`` (other detections of the same frame) that must be blurred
    are blurred first, so the box and label drawn over them stay sharp.
    With ``saliency`` (a map from ``AnalysisResult.saliency``) the map is
    drawn over the blurred frame as a heat map, then the box: the
    explanation of the snapshot. None when the frame or the map is unreadable.
    """
    image = decode(frame)
    if image is None:
        return None
    blur_boxes(image, [detection, *private])
    if saliency:
        found = decode_saliency(saliency, *image.shape[:2])
        if found is None:
            return None
        image = overlay(image, found)
    h, w = image.shape[:2]
    b = detection.box
    p1 = (round(b.x1 * w), round(b.y1 * h))
    p2 = (round(b.x2 * w), round(b.y2 * h))
    thickness = max(2, w // 320)
    cv2.rectangle(image, p1, p2, (0, 255, 0), thickness)
    text = f"{detection.label} {detection.track_id} {detection.score:.2f}"
    cv2.putText(image, text, (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpeg.tobytes() if ok else None


class SnapshotStore:
    """Stores snapshots in the ``snapshots`` object store, remembering what it stored."""

    def __init__(self, bus: Bus, cache_size: int) -> None:
        self.bus = bus
        self._stored: OrderedDict[str, Stored] = OrderedDict()
        self._cache_size = cache_size
        self._private: OrderedDict[tuple[str, int], list[analysis_pb2.Detection]] = OrderedDict()
        self._saliency: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()

    def note(self, result: analysis_pb2.AnalysisResult) -> None:
        """Remember the detections of ``result`` that must be blurred, and its saliency map,
        for snapshots of the same frame."""
        if result.saliency.png:
            self._saliency[(result.frame.camera_id, result.frame.seq, result.analyzer)] = result.saliency.png
            while len(self._saliency) > SALIENCY_FRAMES:
                self._saliency.popitem(last=False)
        private = [d for d in result.detections if detection_must_blur(d)]
        if not private:
            return
        key = (result.frame.camera_id, result.frame.seq)
        self._private.setdefault(key, []).extend(private)
        self._private.move_to_end(key)
        while len(self._private) > PRIVATE_FRAMES:
            self._private.popitem(last=False)

    def private_of(self, camera: str) -> dict[int, list[analysis_pb2.Detection]]:
        """The boxes to blur noted for ``camera``'s frames, by seq: a checkpoint keeps them,
        since a restored event's best picture may be of a frame noted before the restart."""
        return {seq: boxes for (cam, seq), boxes in self._private.items() if cam == camera}

    def restore_private(self, camera: str, private: dict[int, list[analysis_pb2.Detection]]) -> None:
        for seq, boxes in sorted(private.items()):
            self._private[(camera, seq)] = boxes
        while len(self._private) > PRIVATE_FRAMES:
            self._private.popitem(last=False)

    async def keep(self, request: SnapshotRequest) -> Stored | None:
        """Store the first candidate that can be had (and its explanation); None when none could."""
        for candidate in request.candidates:
            name = request.name(candidate)
            if name in self._stored:
                return self._stored[name]
            ref = candidate.frame.ref
            if ref.stream_sequence < 1:
                continue  # no claim check (a result not made from a FRAMES message)
            try:
                data = await self.bus.direct_get(ref.stream or subjects.FRAMES_STREAM, ref.stream_sequence)
            except nats.js.errors.APIError as exc:
                # The snapshot is optional: the event must still be published.
                log.warning(
                    "frame %s/%d not fetched for a snapshot: %s", ref.stream, ref.stream_sequence, exc
                )
                continue
            frame = _parse(data)
            if frame is None or frame.camera_id != ref.camera_id or frame.seq != ref.seq:
                continue  # gone (or the sequence now holds another frame)
            private = self._private.get((ref.camera_id, ref.seq), [])
            jpeg = await asyncio.to_thread(render, frame, candidate.detection, 90, private)
            if jpeg is not None:
                saliency = self._saliency.get((ref.camera_id, ref.seq, candidate.frame.analyzer), b"")
                explained = None
                if saliency:
                    explained = await asyncio.to_thread(
                        render, frame, candidate.detection, 90, private, saliency
                    )
                if explained is not None:
                    await self._put(name + EXPLAIN_SUFFIX, explained, "explanation")
                return await self._put(name, jpeg, "frame", name + EXPLAIN_SUFFIX if explained else "")
        for candidate in request.candidates:
            detection = candidate.detection
            if detection.crop_jpeg:
                crop = detection.crop_jpeg
                if detection_must_blur(detection):
                    # The face service blurred it already; blurring again costs ~0.6 ms and holds
                    # for crops from any other producer.
                    crop = await asyncio.to_thread(blur_jpeg, crop)
                    if not crop:
                        continue
                return await self._put(request.name(candidate), crop, "crop")
        SNAPSHOTS.labels("none").inc()
        return None

    async def _put(self, name: str, data: bytes, source: str, explanation: str = "") -> Stored:
        store = await self.bus.object_store(subjects.SNAPSHOTS_STORE)
        meta = ObjectMeta(name=name, description=JPEG, headers={"Content-Type": [JPEG]})
        await store.put(name, data, meta=meta)
        SNAPSHOTS.labels(source).inc()
        stored = self._stored[name] = Stored(name, explanation)
        while len(self._stored) > self._cache_size:
            self._stored.popitem(last=False)
        return stored


def _parse(data: bytes | None) -> frame_pb2.Frame | None:
    if data is None:
        return None
    try:
        return frame_pb2.Frame.FromString(data)
    except DecodeError:
        log.warning("FRAMES holds a message that is not a Frame")
        return None
