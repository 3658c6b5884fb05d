"""Plane geometry in normalised image coordinates ((0, 0) top-left, y down)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from camsight.cameras import Anchor

XY = tuple[float, float]


def anchor_point(box: Sequence[float], anchor: Anchor) -> XY:
    """The point of a box (x1, y1, x2, y2) that stands for the object.

    Bottom-centre is the default because it is where a person or vehicle
    touches the ground: zones drawn on the floor then mean what they look like.
    """
    x1, y1, x2, y2 = box[0], box[1], box[2], box[3]
    cx = (x1 + x2) / 2
    if anchor is Anchor.BOTTOM_CENTER:
        return cx, y2
    if anchor is Anchor.TOP_CENTER:
        return cx, y1
    return cx, (y1 + y2) / 2


def point_in_polygon(p: XY, polygon: Sequence[XY]) -> bool:
    """Even-odd ray casting; points exactly on an edge may fall either way
    (hysteresis absorbs that)."""
    x, y = p
    inside = False
    n = len(polygon)
    for i in range(n):
        xa, ya = polygon[i]
        xb, yb = polygon[(i + 1) % n]
        if (ya > y) != (yb > y) and x < (xb - xa) * (y - ya) / (yb - ya) + xa:
            inside = not inside
    return inside


def _segment_distance(p: XY, a: XY, b: XY) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def zone_side(p: XY, polygon: Sequence[XY], margin: float = 0.0) -> bool | None:
    """Inside (True) or outside (False) the polygon, None within ``margin`` of its edge.

    The undecided band is a spatial hysteresis: a box whose anchor wobbles
    on the edge changes nothing until it is clearly on one side.
    """
    inside = point_in_polygon(p, polygon)
    if margin > 0.0:
        n = len(polygon)
        if min(_segment_distance(p, polygon[i], polygon[(i + 1) % n]) for i in range(n)) < margin:
            return None
    return inside


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def inside_share(inner: Sequence[float], outer: Sequence[float]) -> float:
    """The share of box ``inner``'s area that lies inside box ``outer`` (0 to 1)."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    if w <= 0 or h <= 0 or area <= 0:
        return 0.0
    return w * h / area


def hull(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The smallest box holding every box of ``boxes`` (not empty)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def side_of_segment(p: XY, a: XY, b: XY, margin: float = 0.0) -> int | None:
    """+1 right of a->b (as drawn on screen, y down), -1 left, None when undecided.

    Undecided means within ``margin`` of the line, or beside the segment's
    ends (the projection of ``p`` falls outside ``[a, b]``): walking around
    the end of a counting line is not a crossing.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    px, py = p[0] - a[0], p[1] - a[1]
    t = (px * dx + py * dy) / (dx * dx + dy * dy)
    if not 0.0 <= t <= 1.0:
        return None
    cross = dx * py - dy * px
    if abs(cross) <= margin * math.hypot(dx, dy) and margin > 0.0:
        return None
    if cross > 0:
        return 1
    if cross < 0:
        return -1
    return None
