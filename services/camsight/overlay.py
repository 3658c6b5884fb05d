"""Drawing detections, zones and lines on a frame: one look for the annotated videos of
``camsight run --annotate`` and the console's live view.

Coordinates on the wire are normalised (0..1); sizes scale with the frame, so a
176x144 sample and a 1080p camera read the same.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from camsight.analyzers import FACE_LABEL, KIND_MOTION
from camsight.cameras import CameraConfig, Line
from camsight.v1 import analysis_pb2

# Colours are BGR.
ZONE_COLOUR = (0, 200, 255)
LINE_COLOUR = (255, 0, 255)
MOTION_COLOUR = (190, 190, 190)
TEXT_COLOUR = (255, 255, 255)
PANEL_COLOUR = (0, 0, 0)

FONT = cv2.FONT_HERSHEY_SIMPLEX

Image = np.ndarray  # H x W x 3, uint8, BGR


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable, bright BGR colour per label, so "person" looks the same in every video."""
    hue = hashlib.blake2s(label.encode(), digest_size=1).digest()[0] / 256
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 1.0)
    return round(b * 255), round(g * 255), round(r * 255)


def detection_caption(detection: analysis_pb2.Detection) -> str:
    """``person 0.87 #12`` or, for faces, ``driver 0.91`` / ``unknown 0.66``."""
    name = detection.label
    if detection.label == FACE_LABEL or detection.HasField("identity"):
        identity = detection.identity
        name = (identity.display_name or identity.identity_id) if identity.matched else "unknown"
    caption = f"{name} {detection.score:.2f}"
    if detection.track_id:
        caption += f" #{detection.track_id}"
    return caption


@dataclass(frozen=True)
class Style:
    """Sizes scaled to the frame: carphone is 176x144, a camera may be 1920x1080."""

    scale: float
    thickness: int
    line_height: int

    @classmethod
    def for_frame(cls, height: int) -> Style:
        scale = max(0.3, height / 720.0)
        return cls(scale=scale, thickness=max(1, round(2 * scale)), line_height=max(12, round(32 * scale)))


def draw_text(
    image: Image, text: str, org: tuple[int, int], style: Style, colour: tuple[int, int, int]
) -> None:
    """Text on a dark strip, readable on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, style.scale, 1)
    x, y = org
    cv2.rectangle(image, (x, y - h - base), (x + w + 2, y + base), PANEL_COLOUR, cv2.FILLED)
    cv2.putText(image, text, (x + 1, y), FONT, style.scale, colour, 1, cv2.LINE_AA)


def pixel(image: Image, x: float, y: float) -> tuple[int, int]:
    height, width = image.shape[:2]
    return round(min(max(x, 0.0), 1.0) * (width - 1)), round(min(max(y, 0.0), 1.0) * (height - 1))


def draw_result(image: Image, result: analysis_pb2.AnalysisResult, style: Style) -> None:
    """Boxes with captions; motion regions (many, and not objects) as thin uncaptioned boxes."""
    motion = result.kind == KIND_MOTION
    for detection in result.detections:
        box = detection.box
        p1, p2 = pixel(image, box.x1, box.y1), pixel(image, box.x2, box.y2)
        colour = MOTION_COLOUR if motion else label_colour(detection.label)
        cv2.rectangle(image, p1, p2, colour, 1 if motion else style.thickness)
        if not motion:
            draw_text(
                image, detection_caption(detection), (p1[0], max(p1[1] - 2, style.line_height)), style, colour
            )


def draw_zones_and_lines(image: Image, camera: CameraConfig, style: Style) -> None:
    for zone in camera.zones:
        points = np.array([pixel(image, p.x, p.y) for p in zone.polygon], dtype=np.int32)
        cv2.polylines(image, [points], True, ZONE_COLOUR, style.thickness, cv2.LINE_AA)
        draw_text(image, zone.display_name or zone.id, tuple(points[0]), style, ZONE_COLOUR)
    for line in camera.lines:
        draw_line(image, line, style)


def in_arrow(
    a: tuple[int, int], b: tuple[int, int], in_side_right: bool, length: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Start and tip, in pixels, of an arrow from the middle of a->b into its "in" side.

    Same convention as the behavior service (camsight.behavior.geometry): with
    y pointing down, the right of a->b is where ``dx*py - dy*px > 0``, i.e.
    along the normal (-dy, dx). Scaling x and y by positive factors keeps the
    sign, so the normal can be taken in pixels.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    normal = np.array([-dy, dx] if in_side_right else [dy, -dx], dtype=float)
    normal /= max(float(np.linalg.norm(normal)), 1e-9)
    mid = np.array([(a[0] + b[0]) / 2, (a[1] + b[1]) / 2])
    tip = mid + normal * length
    return (round(mid[0]), round(mid[1])), (round(tip[0]), round(tip[1]))


def draw_line(image: Image, line: Line, style: Style) -> None:
    """The segment, its name, and an arrow into its "in" side."""
    a, b = pixel(image, line.a.x, line.a.y), pixel(image, line.b.x, line.b.y)
    cv2.line(image, a, b, LINE_COLOUR, style.thickness, cv2.LINE_AA)
    start, end = in_arrow(a, b, line.in_side_right, 4 * style.line_height)
    cv2.arrowedLine(image, start, end, LINE_COLOUR, style.thickness, cv2.LINE_AA, tipLength=0.3)
    draw_text(image, "in", end, style, LINE_COLOUR)
    label_at = a if a[1] > style.line_height else (a[0], style.line_height)
    draw_text(image, line.display_name or line.id, label_at, style, LINE_COLOUR)
