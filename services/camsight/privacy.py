"""Privacy: which detections must be blurred, and the one blur every writer of pictures uses.

A detection whose ``privacy`` is :data:`~camsight.v1.analysis_pb2.PRIVACY_BLUR`
must never be shown in full: event snapshots, face crops, annotated videos
and the HTML report all blur its box through :func:`blur_boxes` (or a whole
crop through :func:`blur` / :func:`blur_jpeg`) before they draw or store
anything. Keeping the decision (:func:`must_blur`) and the blur itself here
means that a new writer cannot pick a weaker blur or forget the reader rule:

* ``PRIVACY_UNSPECIFIED`` (no decision: objects, motion, scene labels) and
  ``PRIVACY_VISIBLE`` are shown;
* ``PRIVACY_BLUR`` and any number this reader does not know (proto3 enums are
  open: a newer writer may send one) are blurred, so that an unknown value
  fails closed;
* the attribute ``privacy=blur`` that face services before the typed field
  set is honoured too, so a rolling upgrade leaks nothing.

The blur pixelates the box to :data:`BLOCKS` cells across its longer side,
then smooths the cells: measured on the carphone face (docs/decisions/0034),
dlib's embedding of the blurred face is further from the original than the
gallery's match threshold, and CenterFace no longer finds a face there.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from camsight.v1 import analysis_pb2

# A BGR picture (the plugin API's Image; not imported from it: this module sits below it).
Image = npt.NDArray[np.uint8]

SHOWN = frozenset({analysis_pb2.PRIVACY_UNSPECIFIED, analysis_pb2.PRIVACY_VISIBLE})
"""The privacy values a picture may show as is; every other value is blurred."""

LEGACY_ATTRIBUTE, LEGACY_BLUR = "privacy", "blur"
"""How face services before the typed ``privacy`` field flagged a face (read, never written)."""

BLOCKS = 6
"""Cells across the longer side of a blurred box: too few for a face to be recognised."""

MARGIN = 0.15
"""A blurred box grows by this fraction of its size per side: detectors' face boxes
cut through the hair and ears, which help to recognise someone too."""


def must_blur(privacy: int) -> bool:
    """True unless ``privacy`` is a value known to allow showing the pixels (unknown values: blur)."""
    return privacy not in SHOWN


def detection_must_blur(detection: analysis_pb2.Detection) -> bool:
    """Whether the pixels of ``detection``'s box must be blurred wherever they are shown."""
    return must_blur(detection.privacy) or detection.attributes.get(LEGACY_ATTRIBUTE) == LEGACY_BLUR


def blur(image: Image) -> Image:
    """A copy of ``image`` (a whole face crop) blurred beyond recognition: pixelated, then smoothed."""
    h, w = image.shape[:2]
    cell = max(1.0, max(h, w) / BLOCKS)
    small = cv2.resize(
        image, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA
    )
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.asarray(cv2.GaussianBlur(coarse, (0, 0), cell / 2), dtype=np.uint8)


def blur_box(image: Image, box: tuple[float, float, float, float], margin: float = MARGIN) -> None:
    """Blur, in place, the normalised ``box`` of ``image``, grown by ``margin`` per side."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, right = max(0, int(np.floor((x1 - dx) * width))), min(width, int(np.ceil((x2 + dx) * width)))
    top, bottom = max(0, int(np.floor((y1 - dy) * height))), min(height, int(np.ceil((y2 + dy) * height)))
    if right > left and bottom > top:
        image[top:bottom, left:right] = blur(image[top:bottom, left:right])


def blur_boxes(image: Image, detections: Iterable[analysis_pb2.Detection]) -> int:
    """Blur, in place, the box of every detection that must be blurred; returns how many.

    Call it before drawing boxes or text, so the drawing stays sharp.
    """
    count = 0
    for detection in detections:
        if detection_must_blur(detection):
            b = detection.box
            blur_box(image, (b.x1, b.y1, b.x2, b.y2))
            count += 1
    return count


def blur_jpeg(data: bytes, quality: int = 80) -> bytes:
    """``data`` (a JPEG or PNG crop of a face) blurred as a whole and encoded as JPEG.

    An image that cannot be decoded is dropped (``b""``): bytes that cannot be
    checked are not passed on.
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return b""
    ok, encoded = cv2.imencode(".jpg", blur(np.asarray(image, np.uint8)), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return encoded.tobytes() if ok else b""
