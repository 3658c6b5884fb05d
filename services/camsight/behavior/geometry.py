"""Plane geometry in normalised image coordinates ((0, 0) top-left, y down)."""

from __future__ import annotations

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


def side_of_segment(p: XY, a: XY, b: XY) -> int | None:
    """+1 right of a->b (as drawn on screen, y down), -1 left, None when undecided.

    Undecided means exactly on the line, or beside the segment's ends (the
    projection of ``p`` falls outside ``[a, b]``): walking around the end of a
    counting line is not a crossing.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    px, py = p[0] - a[0], p[1] - a[1]
    t = (px * dx + py * dy) / (dx * dx + dy * dy)
    if not 0.0 <= t <= 1.0:
        return None
    cross = dx * py - dy * px
    if cross > 0:
        return 1
    if cross < 0:
        return -1
    return None
