"""Annotation values: kinds and the immutable :class:`Annotation`.

Classes (:class:`AnnotationClass`, :data:`DEFAULT_CLASSES`, :class:`ClassPalette`) live
in :mod:`viewer.annotations.classes`; they are re-exported here for callers outside the
package.

An :class:`Annotation` is a frozen value.  Editing makes a new value with the same
``id`` (``translated``, ``with_vertex``, ``with_class``...); the
:class:`~viewer.annotations.annotation_set.AnnotationSet` swaps values and records the
swap for undo.  Holding on to an annotation is therefore always safe: it never changes
under you; look the current value up by ``id``.

Geometry is in level-0 slide pixels (``l0_``):

=============  ============================================================================
kind           ``l0_points``
=============  ============================================================================
rectangle      two corners ``(x0, y0), (x1, y1)`` with ``x0 <= x1``, ``y0 <= y1``
ellipse        the same two corners of its (axis-aligned) bounding box
polygon        the exterior ring, open (no repeated closing vertex), at least 3 vertices;
               ``l0_holes`` holds interior rings the same way
freehand       as polygon (drawn by dragging, so usually many vertices)
point          one or more points (QuPath's "Points" object)
ruler          a polyline of at least 2 vertices (a line segment when 2)
=============  ============================================================================
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np

from inference.core.palette import UNCLASSIFIED_COLOUR
from viewer.annotations.classes import (
    DEFAULT_CLASSES,
    MAX_CLASS_NAME_CHARS,
    RGB,
    AnnotationClass,
    ClassPalette,
    as_rgb,
)
from viewer.annotations.geometry import (
    as_array,
    distance_to_points,
    distance_to_polyline,
    ellipse_area,
    ellipse_perimeter,
    ellipse_ring,
    point_in_ellipse,
    point_in_ring,
    polyline_centroid,
    polyline_length,
    ring_area,
    ring_centroid,
)

__all__ = [
    "CLASS",
    "DEFAULT_CLASSES",
    "GEOMETRY",
    "MAX_CLASS_NAME_CHARS",
    "NAME",
    "NOTE",
    "RGB",
    "UNCLASSIFIED_COLOUR",
    "Annotation",
    "AnnotationClass",
    "AnnotationKind",
    "ClassPalette",
    "Point",
    "Ring",
    "VertexHit",
    "as_rgb",
    "changed_parts",
    "new_id",
]

Point = tuple[float, float]
Ring = tuple[Point, ...]

#: The ``what`` of ``AnnotationSet.changed``: which part of an annotation changed.
GEOMETRY = "geometry"
CLASS = "class"
NOTE = "note"
NAME = "name"


class AnnotationKind(StrEnum):
    """What was drawn; the value is the name used in files."""

    RECTANGLE = "rectangle"
    ELLIPSE = "ellipse"
    POLYGON = "polygon"
    FREEHAND = "freehand"
    POINT = "point"
    RULER = "ruler"

    @property
    def is_area(self) -> bool:
        """Encloses an area (rectangle, ellipse, polygon, freehand)."""
        return self in _AREA_KINDS

    @property
    def is_box(self) -> bool:
        """Defined by a bounding box (rectangle, ellipse)."""
        return self in (AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE)

    @property
    def min_points(self) -> int:
        """The fewest ``l0_points`` an annotation of this kind may have."""
        return _MIN_POINTS[self]


_AREA_KINDS = frozenset(
    {
        AnnotationKind.RECTANGLE,
        AnnotationKind.ELLIPSE,
        AnnotationKind.POLYGON,
        AnnotationKind.FREEHAND,
    }
)
_MIN_POINTS = {
    AnnotationKind.RECTANGLE: 2,
    AnnotationKind.ELLIPSE: 2,
    AnnotationKind.POLYGON: 3,
    AnnotationKind.FREEHAND: 3,
    AnnotationKind.POINT: 1,
    AnnotationKind.RULER: 2,
}


def new_id() -> str:
    """A fresh annotation id: a random UUID in its canonical text form (QuPath's too)."""
    return str(uuid.uuid4())


def _point(xy: Sequence[float]) -> Point:
    if len(xy) != 2:
        raise ValueError(f"a point is (x, y), not {tuple(xy)!r}")
    x, y = float(xy[0]), float(xy[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"coordinates must be finite, not ({x}, {y})")
    return (x, y)


def _points(points: Iterable[Sequence[float]]) -> tuple[Point, ...]:
    """Points as float pairs; :class:`ValueError` unless each is two finite numbers."""
    try:
        out = tuple([(float(x), float(y)) for x, y in points])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a point is (x, y) with two numbers ({exc})") from None
    if out and not np.isfinite(np.asarray(out)).all():
        bad = next(p for p in out if not (math.isfinite(p[0]) and math.isfinite(p[1])))
        raise ValueError(f"coordinates must be finite, not {bad}")
    return out


def _ring(points: Iterable[Sequence[float]]) -> Ring:
    ring = _points(points)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring = ring[:-1]  # accept closed rings (GeoJSON's convention); store them open
    return ring


def _normalised_geometry(
    kind: AnnotationKind,
    l0_points: Iterable[Sequence[float]],
    l0_holes: Iterable[Iterable[Sequence[float]]],
) -> tuple[tuple[Point, ...], tuple[Ring, ...]]:
    """An annotation's points and holes, validated and normalised for ``kind`` (see
    :class:`Annotation`); :class:`ValueError` when they do not make a ``kind``."""
    if kind.is_area and kind not in (AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE):
        points = _ring(l0_points)
    else:
        points = _points(l0_points)
    if kind.is_box:
        if len(points) != 2:
            raise ValueError(f"a {kind} is given by 2 corners, not {len(points)} points")
        (ax, ay), (bx, by) = points
        points = ((min(ax, bx), min(ay, by)), (max(ax, bx), max(ay, by)))
    elif len(points) < kind.min_points:
        raise ValueError(f"a {kind} needs at least {kind.min_points} points, not {len(points)}")
    holes = tuple(_ring(h) for h in l0_holes)
    if holes and kind not in (AnnotationKind.POLYGON, AnnotationKind.FREEHAND):
        raise ValueError(f"a {kind} cannot have holes")
    for hole in holes:
        if len(hole) < 3:
            raise ValueError(f"a hole needs at least 3 vertices, not {len(hole)}")
    return points, holes


@dataclass(frozen=True)
class VertexHit:
    """A handle under the cursor.

    ``ring`` 0 is ``l0_points`` (a box's four corners), ring ``k > 0`` is hole ``k - 1``;
    ``index`` is the vertex in that ring, at ``(l0_x, l0_y)``, ``l0_distance`` away.
    """

    annotation_id: str
    ring: int
    index: int
    l0_x: float
    l0_y: float
    l0_distance: float


@dataclass(frozen=True, kw_only=True, repr=False)
class Annotation:
    """One annotation (see the module docstring for the geometry of each kind).

    Construction validates and normalises: coordinates become finite floats, box
    corners are sorted, closed rings are opened, holes are only allowed on polygons and
    freehand shapes.  Invalid input raises :class:`ValueError`.  Degenerate shapes
    (a zero-width rectangle, collinear polygon vertices) are allowed; they measure 0.
    """

    kind: AnnotationKind
    l0_points: tuple[Point, ...]
    l0_holes: tuple[Ring, ...] = ()
    classification: AnnotationClass | None = None
    note: str = ""
    name: str = ""
    id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        kind = AnnotationKind(self.kind)
        object.__setattr__(self, "kind", kind)
        points, holes = _normalised_geometry(kind, self.l0_points, self.l0_holes)
        object.__setattr__(self, "l0_points", points)
        object.__setattr__(self, "l0_holes", holes)
        if self.classification is not None and not isinstance(self.classification, AnnotationClass):
            raise TypeError("classification must be an AnnotationClass or None")
        if not isinstance(self.note, str) or not isinstance(self.name, str):
            raise TypeError("note and name must be strings")
        if not isinstance(self.id, str) or not self.id or len(self.id) > 64:
            raise ValueError(f"an annotation id is a non-empty string, not {self.id!r}")

    def __repr__(self) -> str:
        cls = f", class={self.class_name!r}" if self.classification is not None else ""
        return f"Annotation({self.kind}, {self.vertex_count} vertices{cls}, id={self.id!r})"

    # -- constructors (keyword arguments: classification, note, name, id) ---------------

    @classmethod
    def rectangle(
        cls, l0_x0: float, l0_y0: float, l0_x1: float, l0_y1: float, **meta: Any
    ) -> Annotation:
        """An axis-aligned rectangle between two opposite corners (in any order)."""
        corners = ((l0_x0, l0_y0), (l0_x1, l0_y1))
        return cls(kind=AnnotationKind.RECTANGLE, l0_points=corners, **meta)

    @classmethod
    def ellipse(
        cls, l0_x0: float, l0_y0: float, l0_x1: float, l0_y1: float, **meta: Any
    ) -> Annotation:
        """The axis-aligned ellipse inscribed in the box between two opposite corners."""
        corners = ((l0_x0, l0_y0), (l0_x1, l0_y1))
        return cls(kind=AnnotationKind.ELLIPSE, l0_points=corners, **meta)

    @classmethod
    def polygon(
        cls,
        l0_points: Iterable[Sequence[float]],
        l0_holes: Iterable[Iterable[Sequence[float]]] = (),
        **meta: Any,
    ) -> Annotation:
        """A polygon from its exterior ring (open or closed) and optional holes."""
        return cls(
            kind=AnnotationKind.POLYGON,
            l0_points=_ring(l0_points),
            l0_holes=tuple(_ring(h) for h in l0_holes),
            **meta,
        )

    @classmethod
    def freehand(cls, l0_points: Iterable[Sequence[float]], **meta: Any) -> Annotation:
        """A freehand outline (a polygon with many vertices, drawn by dragging)."""
        return cls(kind=AnnotationKind.FREEHAND, l0_points=_ring(l0_points), **meta)

    @classmethod
    def points(cls, l0_points: Iterable[Sequence[float]], **meta: Any) -> Annotation:
        """One or more points."""
        return cls(kind=AnnotationKind.POINT, l0_points=_points(l0_points), **meta)

    @classmethod
    def ruler(cls, l0_points: Iterable[Sequence[float]], **meta: Any) -> Annotation:
        """A measured line: a segment (2 points) or a polyline."""
        return cls(kind=AnnotationKind.RULER, l0_points=_points(l0_points), **meta)

    # -- derived values ----------------------------------------------------------------

    @property
    def colour(self) -> RGB:
        """The class's colour, or :data:`UNCLASSIFIED_COLOUR`."""
        cls = self.classification
        return cls.colour if cls is not None else UNCLASSIFIED_COLOUR

    @property
    def class_name(self) -> str | None:
        return self.classification.name if self.classification is not None else None

    @property
    def vertex_count(self) -> int:
        """Vertices stored (box kinds: 2 corners), holes included."""
        return len(self.l0_points) + sum(len(h) for h in self.l0_holes)

    @cached_property
    def l0_bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)``: the bounding box."""
        pts = as_array(self.l0_points)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        """Rings as arrays: area kinds exterior then holes (an ellipse as a polygon)."""
        if self.kind is AnnotationKind.RECTANGLE:
            return (as_array(self.box_corners()),)
        if self.kind is AnnotationKind.ELLIPSE:
            return (as_array(ellipse_ring(*self.l0_bounds)),)
        return (as_array(self.l0_points), *(as_array(h) for h in self.l0_holes))

    def box_corners(self) -> tuple[Point, Point, Point, Point]:
        """A box kind's corners: top-left, top-right, bottom-right, bottom-left."""
        x0, y0, x1, y1 = self.l0_bounds
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))

    def l0_rings(self) -> tuple[Ring, ...]:
        """Outline(s) as vertex rings: the exterior (an ellipse as a 72-gon), then holes.

        Points and rulers give their points as a single sequence.
        """
        if self.kind is AnnotationKind.RECTANGLE:
            return (self.box_corners(),)
        if self.kind is AnnotationKind.ELLIPSE:
            return (ellipse_ring(*self.l0_bounds),)
        return (self.l0_points, *self.l0_holes)

    @cached_property
    def l0_area(self) -> float:
        """Area in level-0 px² (0 for points and rulers); holes are subtracted."""
        if self.kind is AnnotationKind.RECTANGLE:
            x0, y0, x1, y1 = self.l0_bounds
            return (x1 - x0) * (y1 - y0)
        if self.kind is AnnotationKind.ELLIPSE:
            x0, y0, x1, y1 = self.l0_bounds
            return ellipse_area((x1 - x0) / 2.0, (y1 - y0) / 2.0)
        if not self.kind.is_area:
            return 0.0
        exterior, *holes = self._arrays
        return max(0.0, ring_area(exterior) - sum(ring_area(h) for h in holes))

    @cached_property
    def l0_length(self) -> float:
        """Perimeter (holes included) for areas, polyline length for rulers, 0 for points."""
        if self.kind is AnnotationKind.RECTANGLE:
            x0, y0, x1, y1 = self.l0_bounds
            return 2.0 * ((x1 - x0) + (y1 - y0))
        if self.kind is AnnotationKind.ELLIPSE:
            x0, y0, x1, y1 = self.l0_bounds
            return ellipse_perimeter((x1 - x0) / 2.0, (y1 - y0) / 2.0)
        if self.kind is AnnotationKind.RULER:
            return polyline_length(self._arrays[0])
        if self.kind is AnnotationKind.POINT:
            return 0.0
        return sum(polyline_length(ring, closed=True) for ring in self._arrays)

    @cached_property
    def l0_centroid(self) -> Point:
        """The centre of mass: of the area for area kinds (holes taken out; a degenerate
        area's vertices' mean), of the line for rulers, of the points for points."""
        if self.kind.is_box:
            x0, y0, x1, y1 = self.l0_bounds
            return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        if self.kind is AnnotationKind.RULER:
            return polyline_centroid(self._arrays[0])
        if self.kind.is_area:
            parts = [(ring_area(r), ring_centroid(r)) for r in self._arrays]
            (area, centre), holes = parts[0], parts[1:]
            net = area - sum(a for a, _ in holes)
            if centre is not None and net > 0.0:
                sx = area * centre[0] - sum(a * c[0] for a, c in holes if c is not None)
                sy = area * centre[1] - sum(a * c[1] for a, c in holes if c is not None)
                return (sx / net, sy / net)
        cx, cy = self._arrays[0].mean(axis=0)
        return (float(cx), float(cy))

    # -- hit testing -----------------------------------------------------------------

    def contains(self, l0_x: float, l0_y: float) -> bool:
        """Whether a point is inside the area (never for points and rulers)."""
        if not self.kind.is_area:
            return False
        x0, y0, x1, y1 = self.l0_bounds
        if not (x0 <= l0_x <= x1 and y0 <= l0_y <= y1):
            return False
        if self.kind is AnnotationKind.RECTANGLE:
            return True
        if self.kind is AnnotationKind.ELLIPSE:
            return point_in_ellipse(l0_x, l0_y, x0, y0, x1, y1)
        exterior, *holes = self._arrays
        return point_in_ring(l0_x, l0_y, exterior) and not any(
            point_in_ring(l0_x, l0_y, h) for h in holes
        )

    def distance_to_outline(self, l0_x: float, l0_y: float) -> float:
        """Distance to the nearest edge (areas, rulers) or point (points)."""
        if self.kind is AnnotationKind.POINT:
            return float(distance_to_points(l0_x, l0_y, self._arrays[0]).min())
        closed = self.kind.is_area
        return min(distance_to_polyline(l0_x, l0_y, r, closed=closed) for r in self._arrays)

    def hit(self, l0_x: float, l0_y: float, l0_tolerance: float = 0.0) -> bool:
        """Inside the area, or within ``l0_tolerance`` of its outline, line or points."""
        x0, y0, x1, y1 = self.l0_bounds
        t = l0_tolerance
        if l0_x < x0 - t or l0_x > x1 + t or l0_y < y0 - t or l0_y > y1 + t:
            return False
        return self.contains(l0_x, l0_y) or self.distance_to_outline(l0_x, l0_y) <= t

    def handles(self) -> tuple[Ring, ...]:
        """Editable vertices by ring: ring 0 is ``l0_points`` (a box's 4 corners), then holes."""
        if self.kind.is_box:
            return (self.box_corners(),)
        return (self.l0_points, *self.l0_holes)

    def vertex_at(self, l0_x: float, l0_y: float, l0_tolerance: float) -> VertexHit | None:
        """The handle nearest a point if it lies within ``l0_tolerance``, else ``None``."""
        best: VertexHit | None = None
        for r, ring in enumerate(self.handles()):
            d = distance_to_points(l0_x, l0_y, as_array(ring))
            i = int(np.argmin(d))
            if d[i] <= l0_tolerance and (best is None or d[i] < best.l0_distance):
                x, y = ring[i]
                best = VertexHit(self.id, r, i, x, y, float(d[i]))
        return best

    # -- edits (each returns a new value with the same id) -----------------------------

    def translated(self, l0_dx: float, l0_dy: float) -> Annotation:
        dx, dy = float(l0_dx), float(l0_dy)

        def shift(ring: Sequence[Point]) -> Ring:
            return tuple((x + dx, y + dy) for x, y in ring)

        return dataclasses.replace(
            self,
            l0_points=shift(self.l0_points),
            l0_holes=tuple(shift(h) for h in self.l0_holes),
        )

    def _check_handle(self, ring: int, index: int) -> Ring:
        rings = self.handles()
        if not 0 <= ring < len(rings):
            raise IndexError(f"{self.kind} annotation has no ring {ring}")
        if not 0 <= index < len(rings[ring]):
            raise IndexError(f"ring {ring} has no vertex {index}")
        return rings[ring]

    def with_vertex(self, ring: int, index: int, l0_xy: Sequence[float]) -> Annotation:
        """Move one handle (see :meth:`handles`) to ``l0_xy``.

        For a box kind the handle is a corner: the opposite corner stays put and the
        box is re-normalised (dragging past the opposite corner flips it).
        """
        handles = self._check_handle(ring, index)
        xy = _point(l0_xy)
        if self.kind.is_box:
            opposite = handles[(index + 2) % 4]
            return dataclasses.replace(self, l0_points=(xy, opposite))
        return self._with_ring(ring, (*handles[:index], xy, *handles[index + 1 :]))

    def with_vertex_inserted(self, ring: int, index: int, l0_xy: Sequence[float]) -> Annotation:
        """Insert a vertex before position ``index`` of a ring (``index == len`` appends).

        Not for box kinds; on a point annotation this adds a point.
        """
        if self.kind.is_box:
            raise ValueError(f"a {self.kind} has no vertices to insert")
        rings = self.handles()
        if not 0 <= ring < len(rings) or not 0 <= index <= len(rings[ring]):
            raise IndexError(f"no vertex position {index} in ring {ring}")
        old = rings[ring]
        return self._with_ring(ring, (*old[:index], _point(l0_xy), *old[index:]))

    def with_vertex_removed(self, ring: int, index: int) -> Annotation:
        """Remove one vertex; :class:`ValueError` if the shape would have too few left.

        Not for box kinds.  Removing a hole's vertex below 3 removes the hole.
        """
        if self.kind.is_box:
            raise ValueError(f"a {self.kind} has no vertices to remove")
        old = self._check_handle(ring, index)
        new = old[:index] + old[index + 1 :]
        if ring > 0 and len(new) < 3:
            holes = self.l0_holes[: ring - 1] + self.l0_holes[ring:]
            return dataclasses.replace(self, l0_holes=holes)
        return self._with_ring(ring, new)

    def _with_ring(self, ring: int, points: Ring) -> Annotation:
        if ring == 0:
            return dataclasses.replace(self, l0_points=points)
        holes = list(self.l0_holes)
        holes[ring - 1] = points
        return dataclasses.replace(self, l0_holes=tuple(holes))

    def with_class(self, classification: AnnotationClass | None) -> Annotation:
        return dataclasses.replace(self, classification=classification)

    def with_note(self, note: str) -> Annotation:
        return dataclasses.replace(self, note=note)

    def with_name(self, name: str) -> Annotation:
        return dataclasses.replace(self, name=name)

    def with_new_id(self) -> Annotation:
        """A copy under a fresh id (for duplicating or importing a second time)."""
        return dataclasses.replace(self, id=new_id())


def changed_parts(old: Annotation, new: Annotation) -> str:
    """Which part differs between two values of one annotation: ``geometry``, ``class``,
    ``note``, ``name``, or ``all`` when more than one does (``""`` when none does)."""
    parts = []
    if (old.kind, old.l0_points, old.l0_holes) != (new.kind, new.l0_points, new.l0_holes):
        parts.append(GEOMETRY)
    if old.classification != new.classification:
        parts.append(CLASS)
    if old.note != new.note:
        parts.append(NOTE)
    if old.name != new.name:
        parts.append(NAME)
    if len(parts) > 1:
        return "all"
    return parts[0] if parts else ""
