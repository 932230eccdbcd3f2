"""Plane geometry for annotations, in level-0 slide pixels (no Qt, no shapely).

Rings are open vertex sequences (the closing edge from the last vertex back to the
first is implied); arrays are ``(n, 2)`` float64 ``x, y``.  Polygons may be
self-intersecting: areas are then the shoelace (net signed) area in absolute value,
and insideness is the even-odd rule, as QuPath and Qt's default fill rule use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]

#: Vertices of the polygon that stands for an ellipse (export, outline hit tests).
ELLIPSE_VERTICES = 72


def as_array(points: Sequence[Point]) -> np.ndarray:
    """``(n, 2)`` float64 copy of a vertex sequence."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def ring_area(ring: np.ndarray) -> float:
    """Area enclosed by a ring (shoelace formula, absolute value)."""
    if len(ring) < 3:
        return 0.0
    # Shifting to the first vertex keeps precision for rings far from the origin.
    x = ring[:, 0] - ring[0, 0]
    y = ring[:, 1] - ring[0, 1]
    twice = float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    return abs(twice) / 2.0


def ring_centroid(ring: np.ndarray) -> Point | None:
    """The centroid of the area a ring encloses (``None`` when it encloses none)."""
    if len(ring) < 3:
        return None
    x0, y0 = ring[0]
    x = ring[:, 0] - x0  # shifted for precision, as in ring_area
    y = ring[:, 1] - y0
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    twice_area = float(cross.sum())
    if twice_area == 0.0:
        return None
    cx = float(((x + np.roll(x, -1)) * cross).sum()) / (3.0 * twice_area)
    cy = float(((y + np.roll(y, -1)) * cross).sum()) / (3.0 * twice_area)
    return (cx + float(x0), cy + float(y0))


def polyline_centroid(points: np.ndarray) -> Point:
    """The centre of mass of a polyline (its segments weighted by length); the mean of
    its points when it has no length."""
    if len(points) > 1:
        lengths = np.hypot(*np.diff(points, axis=0).T)
        total = float(lengths.sum())
        if total > 0.0:
            middles = (points[:-1] + points[1:]) / 2.0
            cx, cy = (middles * lengths[:, None]).sum(axis=0) / total
            return (float(cx), float(cy))
    cx, cy = points.mean(axis=0)
    return (float(cx), float(cy))


def polyline_length(points: np.ndarray, *, closed: bool = False) -> float:
    """Sum of the segment lengths; ``closed`` adds the edge from last to first."""
    if len(points) < 2:
        return 0.0
    pts = np.vstack([points, points[:1]]) if closed else points
    return float(np.hypot(*np.diff(pts, axis=0).T).sum())


def ellipse_area(l0_rx: float, l0_ry: float) -> float:
    """``pi * rx * ry``."""
    return math.pi * l0_rx * l0_ry


def ellipse_perimeter(l0_rx: float, l0_ry: float) -> float:
    """Ramanujan's second approximation: exact for a circle, 1e-9 off at 2:1, 4e-4 when flat."""
    a, b = abs(l0_rx), abs(l0_ry)
    if a + b == 0.0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


def ellipse_ring(
    l0_x0: float, l0_y0: float, l0_x1: float, l0_y1: float, n: int = ELLIPSE_VERTICES
) -> tuple[Point, ...]:
    """An ``n``-vertex polygon inscribed in the axis-aligned ellipse of a bounding box.

    ``n`` is a multiple of 4 and the vertices at 0, 90, 180 and 270 degrees are set to
    the box's edges exactly, so the polygon's bounding box *is* the ellipse's (QuPath
    reads an ellipse back from its polygon's bounding box).
    """
    if n < 4 or n % 4:
        raise ValueError(f"an ellipse polygon needs a multiple of 4 vertices, not {n}")
    cx, cy = (l0_x0 + l0_x1) / 2.0, (l0_y0 + l0_y1) / 2.0
    rx, ry = (l0_x1 - l0_x0) / 2.0, (l0_y1 - l0_y0) / 2.0
    quarter = n // 4
    out: list[Point] = []
    for k in range(n):
        if k == 0:
            out.append((l0_x1, cy))
        elif k == quarter:
            out.append((cx, l0_y1))
        elif k == 2 * quarter:
            out.append((l0_x0, cy))
        elif k == 3 * quarter:
            out.append((cx, l0_y0))
        else:
            t = 2.0 * math.pi * k / n
            x = min(l0_x1, max(l0_x0, cx + rx * math.cos(t)))
            y = min(l0_y1, max(l0_y0, cy + ry * math.sin(t)))
            out.append((x, y))
    return tuple(out)


def point_in_ring(l0_x: float, l0_y: float, ring: np.ndarray) -> bool:
    """Whether a point is inside a ring (even-odd rule; points on an edge may go either way)."""
    if len(ring) < 3:
        return False
    xs, ys = ring[:, 0], ring[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    crosses = (ys > l0_y) != (yj > l0_y)
    if not crosses.any():
        return False
    xs, ys, xj, yj = xs[crosses], ys[crosses], xj[crosses], yj[crosses]
    # ys != yj wherever the edge crosses the horizontal line, so no division by zero
    x_at = xs + (l0_y - ys) * (xj - xs) / (yj - ys)
    return bool(np.count_nonzero(l0_x < x_at) % 2)


def point_in_ellipse(
    l0_x: float, l0_y: float, l0_x0: float, l0_y0: float, l0_x1: float, l0_y1: float
) -> bool:
    """Whether a point is inside (or on) the ellipse inscribed in a bounding box."""
    rx, ry = (l0_x1 - l0_x0) / 2.0, (l0_y1 - l0_y0) / 2.0
    if rx <= 0.0 or ry <= 0.0:
        return False
    dx = (l0_x - (l0_x0 + rx)) / rx
    dy = (l0_y - (l0_y0 + ry)) / ry
    return dx * dx + dy * dy <= 1.0


def distance_to_polyline(
    l0_x: float, l0_y: float, points: np.ndarray, *, closed: bool = False
) -> float:
    """Shortest distance from a point to a polyline (or to a single point)."""
    if len(points) == 0:
        return math.inf
    if len(points) == 1:
        return float(math.hypot(points[0, 0] - l0_x, points[0, 1] - l0_y))
    a = points
    b = np.roll(points, -1, axis=0) if closed else points[1:]
    if not closed:
        a = points[:-1]
    d = b - a
    p = np.array([l0_x, l0_y]) - a
    length2 = np.einsum("ij,ij->i", d, d)
    safe = np.where(length2 > 0.0, length2, 1.0)
    t = np.clip(np.einsum("ij,ij->i", p, d) / safe, 0.0, 1.0)
    t = np.where(length2 > 0.0, t, 0.0)
    nearest = a + d * t[:, None]
    return float(np.hypot(nearest[:, 0] - l0_x, nearest[:, 1] - l0_y).min())


def distance_to_points(l0_x: float, l0_y: float, points: np.ndarray) -> np.ndarray:
    """Distance from a point to each of ``points`` (``(n,)`` array)."""
    return np.hypot(points[:, 0] - l0_x, points[:, 1] - l0_y)
