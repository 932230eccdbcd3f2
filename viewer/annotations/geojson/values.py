"""Reading GeoJSON values: positions, rings and geometries, classifications and colours.

:class:`ValueParser` holds what one pass over a document tracks (where it is, vertex
counts, what was skipped) and checks each value against :class:`GeoJSONLimits`; the
document and feature levels are :class:`viewer.annotations.geojson.reader.DocumentParser`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NoReturn

from viewer.annotations.classes import MAX_CLASS_NAME_CHARS, RGB, AnnotationClass
from viewer.annotations.geojson.common import AnnotationFileError, GeoJSONLimits, default_colour
from viewer.annotations.model import AnnotationKind, Point, Ring

#: One annotation's geometry as parsed: its kind, ``l0_points`` and ``l0_holes``.
Shape = tuple[AnnotationKind, tuple[Point, ...], tuple[Ring, ...]]


def json_type(value: object) -> str:
    """What kind of JSON value ``value`` is, for a message (``"an array"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def short(value: object, limit: int = 40) -> str:
    """``value`` as JSON (a string as its repr), cut to ``limit`` characters."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_axis_rectangle(ring: Ring) -> bool:
    if len(ring) != 4:
        return False
    xs = sorted({x for x, _ in ring})
    ys = sorted({y for _, y in ring})
    if len(xs) != 2 or len(ys) != 2 or len(set(ring)) != 4:
        return False
    # consecutive corners must share an x or a y (no diagonal edges)
    return all(
        ring[k][0] == ring[(k + 1) % 4][0] or ring[k][1] == ring[(k + 1) % 4][1] for k in range(4)
    )


def _bounds(ring: Ring) -> tuple[float, float, float, float]:
    xs = [x for x, _ in ring]
    ys = [y for _, y in ring]
    return min(xs), min(ys), max(xs), max(ys)


class ValueParser:
    """Values of one document; raises :class:`AnnotationFileError` at the first problem."""

    def __init__(self, source: str | Path, limits: GeoJSONLimits) -> None:
        self.source = source
        self.limits = limits
        self.total_vertices = 0
        self.geometry_vertices = 0
        self.where = ""
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []

    def fail(self, problem: str) -> NoReturn:
        prefix = f"{self.where}: " if self.where else ""
        raise AnnotationFileError(self.source, prefix + problem)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    # -- classifications ---------------------------------------------------------------

    def classification(self, value: object) -> AnnotationClass | None:
        if value is None:
            return None
        colour: object = None
        if isinstance(value, str):
            name: object = value
        elif isinstance(value, dict):
            name = value.get("name")
            names = value.get("names")
            if name is None and isinstance(names, list) and names:
                if not all(isinstance(n, str) for n in names):
                    self.fail("classification 'names' must be strings")
                name = ": ".join(names)
            if name is None:
                return None  # QuPath writes {} for "no class"
            colour = value.get("color", value.get("colorRGB"))
        else:
            self.fail(f"classification must be an object or a string, not {json_type(value)}")
        if not isinstance(name, str):
            self.fail(f"classification name must be a string, not {json_type(name)}")
        if not name.strip():
            return None
        if len(name) > MAX_CLASS_NAME_CHARS:
            self.fail(
                f"classification name has {len(name)} characters; "
                f"the limit is {MAX_CLASS_NAME_CHARS}"
            )
        rgb = default_colour(name) if colour is None else self.colour(colour)
        return AnnotationClass(name, rgb)

    def colour(self, value: object) -> RGB:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**32:
                self.fail(f"packed colour {value} is out of range")
            return ((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)
        if isinstance(value, list) and len(value) in (3, 4):
            channels = []
            for channel in value[:3]:
                if not (_is_number(channel) and 0 <= channel <= 255 and channel == int(channel)):
                    self.fail(f"colour {short(value)} must be [r, g, b] with integers 0-255")
                channels.append(int(channel))
            return (channels[0], channels[1], channels[2])
        self.fail(f"colour {short(value)} must be [r, g, b] or a packed RGB integer")

    # -- geometries --------------------------------------------------------------------

    def shapes(
        self, gtype: str, geometry: dict[str, Any], coords: list[Any], hint: AnnotationKind | None
    ) -> list[Shape]:
        """The annotations' geometries of one supported geometry (a MultiPolygon gives one
        per part); empty when the geometry is empty (counted as skipped)."""
        self.geometry_vertices = 0
        shapes: list[Shape] = []
        if gtype == "Point":
            shapes.append((AnnotationKind.POINT, (self.position(coords),), ()))
            self.count(1)
        elif gtype == "MultiPoint":
            points = self.positions(coords, "MultiPoint")
            if not points:
                self.skip("empty MultiPoint")
                return []
            shapes.append((AnnotationKind.POINT, points, ()))
        elif gtype == "LineString":
            line = self.positions(coords, "LineString")
            if len(line) < 2:
                self.fail(f"LineString has {len(line)} position(s); a line needs at least 2")
            shapes.append((AnnotationKind.RULER, line, ()))
        elif gtype == "Polygon":
            if not coords:
                self.skip("empty Polygon")
                return []
            is_ellipse = geometry.get("isEllipse") is True
            shapes.append(self.polygon(coords, hint, is_ellipse, "polygon"))
        else:
            if not coords:
                self.skip("empty MultiPolygon")
                return []
            for part_number, part in enumerate(coords, start=1):
                if not isinstance(part, list) or not part:
                    self.fail(f"MultiPolygon part {part_number} must be a non-empty array of rings")
                shapes.append(self.polygon(part, hint, False, f"MultiPolygon part {part_number}"))
            if len(shapes) > 1:
                self.notes.append(
                    f"{self.where}: a MultiPolygon of {len(shapes)} parts became "
                    f"{len(shapes)} annotations"
                )
        return shapes

    def count(self, n: int) -> None:
        self.geometry_vertices += n
        self.total_vertices += n
        if self.geometry_vertices > self.limits.max_vertices_per_geometry:
            self.fail(
                f"geometry has more than {self.limits.max_vertices_per_geometry} vertices "
                "(the limit)"
            )
        if self.total_vertices > self.limits.max_total_vertices:
            where, self.where = self.where, ""
            self.fail(
                f"file has more than {self.limits.max_total_vertices} vertices in all "
                f"(the limit; reached at {where})"
            )

    def position(self, value: object) -> Point:
        if not isinstance(value, list) or not 2 <= len(value) <= 3:
            self.fail(f"a position must be [x, y], not {short(value)}")
        limit = self.limits.max_abs_coordinate
        for c in value:
            if not _is_number(c):
                self.fail(f"a coordinate must be a number, not {json_type(c)}")
            if not math.isfinite(c):
                self.fail(f"coordinate {c} is not a finite number")
            if abs(c) > limit:
                self.fail(f"coordinate {short(c)} is out of range (at most {limit:g} in size)")
        return (float(value[0]), float(value[1]))

    def positions(self, value: object, what: str) -> tuple[Point, ...]:
        if not isinstance(value, list):
            self.fail(f"{what} coordinates must be an array of positions")
        self.count(len(value))
        limit = self.limits.max_abs_coordinate
        out: list[Point] = []
        append = out.append
        for p in value:
            # Fast path for the usual [x, y] of plain numbers (type() is never bool here);
            # anything else goes through position(), which accepts it or says what is wrong.
            if type(p) is list and len(p) == 2:
                x, y = p
                tx, ty = type(x), type(y)
                if (
                    (tx is float or tx is int)
                    and (ty is float or ty is int)
                    and -limit <= x <= limit
                    and -limit <= y <= limit
                ):
                    append((float(x), float(y)))
                    continue
            append(self.position(p))
        return tuple(out)

    def ring(self, value: object, what: str) -> Ring:
        ring = self.positions(value, what)
        if len(ring) < 4:
            self.fail(f"{what} has {len(ring)} positions; a ring needs at least 4")
        if ring[0] != ring[-1]:
            self.fail(f"{what} is not closed (its first and last positions differ)")
        return ring[:-1]

    def polygon(
        self, rings: list[Any], hint: AnnotationKind | None, is_ellipse: bool, what: str
    ) -> Shape:
        exterior = self.ring(rings[0], f"{what} ring")
        holes = tuple(self.ring(r, f"{what} hole {k}") for k, r in enumerate(rings[1:], start=1))
        if hint is AnnotationKind.ELLIPSE or (hint is None and is_ellipse):
            x0, y0, x1, y1 = _bounds(exterior)
            return AnnotationKind.ELLIPSE, ((x0, y0), (x1, y1)), ()
        if hint in (AnnotationKind.POLYGON, AnnotationKind.FREEHAND):
            return hint, exterior, holes
        if not holes and _is_axis_rectangle(exterior):
            x0, y0, x1, y1 = _bounds(exterior)
            return AnnotationKind.RECTANGLE, ((x0, y0), (x1, y1)), ()
        return AnnotationKind.POLYGON, exterior, holes
