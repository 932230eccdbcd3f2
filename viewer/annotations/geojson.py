"""GeoJSON import and export of annotations, in the dialect QuPath reads and writes.

Writing (:func:`to_geojson`, :func:`dumps_geojson`, :func:`export_geojson`) gives a
``FeatureCollection``; each annotation is a ``Feature`` with its UUID as ``id``,
geometry in level-0 pixels, and ``properties``:

* ``objectType``: ``"annotation"``;
* ``name`` when it has one;
* ``classification``: ``{"name": ..., "color": [r, g, b]}`` when classified (QuPath
  refuses a classification without a colour);
* ``metadata``: ``{"slidelens.kind": ..., "slidelens.note": ...}``.  QuPath keeps
  string metadata and writes it back, so our kind and note survive a trip through it.

Rectangles, polygons and freehand shapes are ``Polygon`` (closed rings, holes after the
exterior); an ellipse is a 72-vertex ``Polygon`` whose geometry carries
``"isEllipse": true``, as QuPath writes ellipses (it reads them back from the bounding
box); points are ``MultiPoint``; a ruler is a ``LineString``.  Coordinates are written
at full precision, so our own round trip is exact.  The collection also carries a
``"slidelens"`` member (format version, class palette, slide id, save time), which
QuPath ignores.

Reading (:func:`parse_geojson`, :func:`import_geojson`) accepts what QuPath writes: a
``FeatureCollection``, a bare ``Feature`` or a bare JSON list of features (older QuPath);
``Polygon`` (holes kept), ``MultiPolygon`` (one annotation per part), ``LineString``,
``Point`` and ``MultiPoint``; a classification as an object with ``name`` (or
``names``, joined with ``": "`` as QuPath names derived classes) and ``color`` as
``[r, g, b]``, ``[r, g, b, a]`` or a packed integer (or legacy ``colorRGB``), or as a
bare string; ``objectType`` ``annotation``, ``detection``, ``cell`` or ``tile`` (all
become annotations here).  Axis-aligned 4-corner polygons become rectangles.

``NaN`` and ``Infinity`` (not JSON, but QuPath writes them in measurements) are accepted
where they are ignored and refused in coordinates and colours.

Files are untrusted.  Every limit of :class:`GeoJSONLimits` is enforced and every
problem raises one :class:`AnnotationFileError` whose message names the file and the
problem (``feature 12: polygon ring has 2 positions; a ring needs at least 4``).
Features are numbered from 1 in file order.  Well-formed features that cannot be
represented (``GeometryCollection``, ``MultiLineString``, no geometry, other object
types) are skipped and counted in :attr:`ImportResult.skipped`.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from inference.core.atomic_io import atomic_write_text
from viewer.annotations.geometry import ellipse_ring
from viewer.annotations.model import (
    DEFAULT_CLASSES,
    MAX_CLASS_NAME_CHARS,
    RGB,
    Annotation,
    AnnotationClass,
    AnnotationKind,
    Point,
    Ring,
    new_id,
)

#: Version of our ``"slidelens"`` member; files with a newer one are refused.
FORMAT_VERSION = 1
SLIDELENS_MEMBER = "slidelens"
KIND_KEY = "slidelens.kind"
NOTE_KEY = "slidelens.note"

#: QuPath object types imported (as annotations); others are skipped.
IMPORTED_OBJECT_TYPES = frozenset({"annotation", "detection", "cell", "tile"})
_SUPPORTED_GEOMETRIES = ("Polygon", "MultiPolygon", "LineString", "Point", "MultiPoint")
_SKIPPED_GEOMETRIES = frozenset({"GeometryCollection", "MultiLineString"})
_GEOMETRY_TYPES = frozenset({*_SUPPORTED_GEOMETRIES, *_SKIPPED_GEOMETRIES})


@dataclass(frozen=True)
class GeoJSONLimits:
    """What an imported file may contain at most (defaults suit whole-slide annotation)."""

    max_bytes: int = 64 * 1024 * 1024
    max_features: int = 100_000
    max_vertices_per_geometry: int = 250_000
    max_total_vertices: int = 4_000_000
    #: JSON nesting outside ``coordinates`` (whose depth the geometry type fixes).
    max_depth: int = 24
    #: Largest absolute coordinate, in level-0 px (slides are below 10^6 px a side).
    max_abs_coordinate: float = 1e7
    max_text_chars: int = 100_000


DEFAULT_LIMITS = GeoJSONLimits()


class AnnotationFileError(Exception):
    """An annotation file that cannot be read or written; the message names it and why."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass(frozen=True)
class ImportResult:
    """What a file held.

    ``annotations`` in file order; ``classes`` the classes they use, first seen first;
    ``palette`` the class palette saved by SlideLens (empty for other files);
    ``skipped`` counts features left out, by reason; ``notes`` says what was adapted
    (e.g. a MultiPolygon split); ``source_id`` and ``saved_at_ns`` come from our own
    files (``None`` otherwise).
    """

    annotations: tuple[Annotation, ...]
    classes: tuple[AnnotationClass, ...] = ()
    palette: tuple[AnnotationClass, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source_id: str | None = None
    saved_at_ns: int | None = None

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One sentence for the user.

        E.g. ``Imported 3 annotations; skipped 2 (1 GeometryCollection, 1 without geometry).``
        """
        n = len(self.annotations)
        text = f"Imported {n} annotation{'' if n == 1 else 's'}"
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.items())
            text += f"; skipped {self.skipped_count} ({reasons})"
        return text + "."


def default_colour(name: str) -> RGB:
    """The colour for a class a file names without one: ours if it is a default class,
    else a stable colour derived from the name."""
    for cls in DEFAULT_CLASSES:
        if cls.name == name:
            return cls.colour
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return (64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192)


# -- writing ------------------------------------------------------------------------------


def _closed(ring: Iterable[Point]) -> list[list[float]]:
    coords = [[x, y] for x, y in ring]
    return [*coords, coords[0]]


def _geometry(annotation: Annotation) -> dict[str, Any]:
    kind = annotation.kind
    if kind is AnnotationKind.RECTANGLE:
        return {"type": "Polygon", "coordinates": [_closed(annotation.box_corners())]}
    if kind is AnnotationKind.ELLIPSE:
        ring = ellipse_ring(*annotation.l0_bounds)
        return {"type": "Polygon", "coordinates": [_closed(ring)], "isEllipse": True}
    if kind is AnnotationKind.POINT:
        return {"type": "MultiPoint", "coordinates": [[x, y] for x, y in annotation.l0_points]}
    if kind is AnnotationKind.RULER:
        return {"type": "LineString", "coordinates": [[x, y] for x, y in annotation.l0_points]}
    rings = [_closed(annotation.l0_points), *(_closed(h) for h in annotation.l0_holes)]
    return {"type": "Polygon", "coordinates": rings}


def _class_json(cls: AnnotationClass) -> dict[str, Any]:
    return {"name": cls.name, "color": list(cls.colour)}


def feature(annotation: Annotation) -> dict[str, Any]:
    """One annotation as a QuPath-readable GeoJSON ``Feature``."""
    properties: dict[str, Any] = {"objectType": "annotation"}
    if annotation.name:
        properties["name"] = annotation.name
    if annotation.classification is not None:
        properties["classification"] = _class_json(annotation.classification)
    metadata = {KIND_KEY: str(annotation.kind)}
    if annotation.note:
        metadata[NOTE_KEY] = annotation.note
    properties["metadata"] = metadata
    return {
        "type": "Feature",
        "id": annotation.id,
        "geometry": _geometry(annotation),
        "properties": properties,
    }


def to_geojson(
    annotations: Iterable[Annotation],
    *,
    palette: Iterable[AnnotationClass] = (),
    source_id: str | None = None,
    saved_at_ns: int | None = None,
) -> dict[str, Any]:
    """A ``FeatureCollection`` of the annotations (in order) plus our ``slidelens`` member."""
    member: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "classes": [_class_json(c) for c in palette],
    }
    if source_id is not None:
        member["source_id"] = source_id
    if saved_at_ns is not None:
        member["saved_at_ns"] = int(saved_at_ns)
    return {
        "type": "FeatureCollection",
        SLIDELENS_MEMBER: member,
        "features": [feature(a) for a in annotations],
    }


def dumps_geojson(
    annotations: Iterable[Annotation],
    *,
    palette: Iterable[AnnotationClass] = (),
    source_id: str | None = None,
    saved_at_ns: int | None = None,
) -> str:
    """:func:`to_geojson` as compact JSON text (UTF-8 safe, no NaN)."""
    doc = to_geojson(annotations, palette=palette, source_id=source_id, saved_at_ns=saved_at_ns)
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def export_geojson(
    path: Path, annotations: Iterable[Annotation], *, palette: Iterable[AnnotationClass] = ()
) -> None:
    """Write annotations to a GeoJSON file QuPath can import (atomically).

    Raises :class:`AnnotationFileError` if the file cannot be written.
    """
    text = dumps_geojson(annotations, palette=palette)
    try:
        atomic_write_text(Path(path), text)
    except OSError as exc:
        raise AnnotationFileError(path, f"cannot write: {exc.strerror or exc}") from exc


# -- reading ------------------------------------------------------------------------------


def _json_type(value: object) -> str:
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


def _short(value: object, limit: int = 40) -> str:
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


class _Parser:
    """One pass over one document; raises :class:`AnnotationFileError` at the first problem."""

    def __init__(self, source: str | Path, limits: GeoJSONLimits) -> None:
        self.source = source
        self.limits = limits
        self.total_vertices = 0
        self.geometry_vertices = 0
        self.where = ""
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []
        self.classes: dict[str, AnnotationClass] = {}
        self.ids: set[str] = set()

    def fail(self, problem: str) -> NoReturn:
        prefix = f"{self.where}: " if self.where else ""
        raise AnnotationFileError(self.source, prefix + problem)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    # -- document ----------------------------------------------------------------------

    def parse(self, data: bytes | str) -> ImportResult:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > self.limits.max_bytes:
            self.fail(f"file is {len(raw)} bytes; the limit is {self.limits.max_bytes} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.fail(f"not UTF-8 text (undecodable byte at offset {exc.start})")
        if not text.strip():
            self.fail("file is empty")
        try:
            # NaN and Infinity are not JSON, but QuPath writes them in measurements; they
            # are accepted here and refused where a finite number is needed.
            doc = json.loads(text)
        except RecursionError:
            self.fail(f"JSON is nested too deeply (the limit is {self.limits.max_depth} levels)")
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
        except ValueError as exc:  # e.g. an integer with thousands of digits
            self.fail(f"not valid JSON: {exc}")
        self.check_depth(doc)
        features, member = self.top_level(doc)
        palette, source_id, saved_at_ns = self.member(member)
        annotations: list[Annotation] = []
        for number, item in enumerate(features, start=1):
            self.where = f"feature {number}"
            annotations.extend(self.feature(item))
        self.where = ""
        return ImportResult(
            annotations=tuple(annotations),
            classes=tuple(self.classes.values()),
            palette=palette,
            skipped=dict(self.skipped),
            notes=tuple(self.notes),
            source_id=source_id,
            saved_at_ns=saved_at_ns,
        )

    def check_depth(self, doc: object) -> None:
        stack: list[tuple[object, int]] = [(doc, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > self.limits.max_depth:
                self.fail(
                    f"JSON is nested too deeply (the limit is {self.limits.max_depth} levels)"
                )
            if isinstance(node, dict):
                # a geometry's coordinates are checked position by position instead
                skip = "coordinates" if node.get("type") in _GEOMETRY_TYPES else None
                children: Iterable[object] = (v for k, v in node.items() if k != skip)
            elif isinstance(node, list):
                children = node
            else:
                continue
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))

    def top_level(self, doc: object) -> tuple[list[object], object]:
        features: object
        member: object = None
        if isinstance(doc, list):
            features = doc
        elif isinstance(doc, dict):
            kind = doc.get("type")
            member = doc.get(SLIDELENS_MEMBER)
            if kind == "FeatureCollection":
                features = doc.get("features")
                if not isinstance(features, list):
                    self.fail("a FeatureCollection needs a 'features' array")
            elif kind == "Feature":
                features = [doc]
            elif isinstance(kind, str) and kind in _SUPPORTED_GEOMETRIES:
                self.fail(f"a bare {kind} geometry; expected a Feature or a FeatureCollection")
            else:
                self.fail(
                    "expected a GeoJSON FeatureCollection, a Feature or a list of features, "
                    f"not an object of type {_short(kind)}"
                )
        else:
            self.fail(
                "expected a GeoJSON FeatureCollection, a Feature or a list of features, "
                f"not {_json_type(doc)}"
            )
        assert isinstance(features, list)
        if len(features) > self.limits.max_features:
            self.fail(f"file has {len(features)} features; the limit is {self.limits.max_features}")
        return features, member

    def member(self, member: object) -> tuple[tuple[AnnotationClass, ...], str | None, int | None]:
        if member is None:
            return (), None, None
        self.where = f"'{SLIDELENS_MEMBER}' member"
        if not isinstance(member, dict):
            self.fail(f"expected an object, not {_json_type(member)}")
        version = member.get("format")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.fail(f"format must be a positive integer, not {_short(version)}")
        if version > FORMAT_VERSION:
            self.fail(
                f"written by a newer SlideLens (annotation format {version}; "
                f"this version reads format {FORMAT_VERSION}); please update SlideLens"
            )
        classes = member.get("classes", [])
        if not isinstance(classes, list):
            self.fail("'classes' must be an array")
        palette: list[AnnotationClass] = []
        for entry in classes[: self.limits.max_features]:
            cls = self.classification(entry)
            if cls is not None:
                palette.append(cls)
        source_id = member.get("source_id")
        if source_id is not None and not isinstance(source_id, str):
            self.fail("'source_id' must be a string")
        saved = member.get("saved_at_ns")
        if saved is not None and (not isinstance(saved, int) or isinstance(saved, bool)):
            self.fail("'saved_at_ns' must be an integer")
        self.where = ""
        return tuple(palette), source_id, saved

    # -- one feature -------------------------------------------------------------------

    def feature(self, item: object) -> list[Annotation]:
        if not isinstance(item, dict):
            self.fail(f"expected a Feature object, not {_json_type(item)}")
        kind = item.get("type")
        if kind is not None and kind != "Feature":
            self.fail(f"type is {_short(kind)}, expected 'Feature'")
        properties = item.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            self.fail(f"'properties' must be an object, not {_json_type(properties)}")
        object_type = properties.get("objectType", properties.get("object_type", "annotation"))
        if not isinstance(object_type, str):
            self.fail(f"objectType must be a string, not {_json_type(object_type)}")
        if object_type not in IMPORTED_OBJECT_TYPES:
            self.skip(f"objectType {_short(object_type, 30)}")
            return []
        geometry = item.get("geometry")
        if geometry is None:
            self.skip("without geometry")
            return []
        if not isinstance(geometry, dict):
            self.fail(f"'geometry' must be an object, not {_json_type(geometry)}")
        gtype = geometry.get("type")
        if not isinstance(gtype, str):
            self.fail("geometry has no 'type'")
        if gtype in _SKIPPED_GEOMETRIES:
            self.skip(gtype)
            return []
        if gtype not in _SUPPORTED_GEOMETRIES:
            self.fail(f"unknown geometry type {_short(gtype, 30)}")

        meta = self.properties(properties)
        hint = meta.pop("hint")
        coords = geometry.get("coordinates")
        if not isinstance(coords, list):
            self.fail(f"{gtype} needs a 'coordinates' array")
        self.geometry_vertices = 0
        shapes: list[tuple[AnnotationKind, tuple[Point, ...], tuple[Ring, ...]]] = []
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

        first_id = self.identifier(item.get("id"))
        out = []
        for k, (shape_kind, points, holes) in enumerate(shapes):
            try:
                annotation = Annotation(
                    kind=shape_kind,
                    l0_points=points,
                    l0_holes=holes,
                    id=first_id if k == 0 else new_id(),
                    **meta,
                )
            except ValueError as exc:
                self.fail(str(exc))
            out.append(annotation)
            self.ids.add(annotation.id)
        return out

    def properties(self, properties: dict[str, Any]) -> dict[str, Any]:
        name = properties.get("name")
        if name is None:
            name = ""
        if not isinstance(name, str):
            self.fail(f"'name' must be a string, not {_json_type(name)}")
        if len(name) > self.limits.max_text_chars:
            self.fail(
                f"'name' has {len(name)} characters; the limit is {self.limits.max_text_chars}"
            )
        cls = self.classification(properties.get("classification"))
        if cls is not None:
            cls = self.classes.setdefault(cls.name, cls)
        note, hint = "", None
        metadata = properties.get("metadata")
        if isinstance(metadata, dict):
            raw_note = metadata.get(NOTE_KEY)
            if raw_note is not None:
                if not isinstance(raw_note, str):
                    self.fail(f"metadata '{NOTE_KEY}' must be a string")
                if len(raw_note) > self.limits.max_text_chars:
                    self.fail(
                        f"the note has {len(raw_note)} characters; "
                        f"the limit is {self.limits.max_text_chars}"
                    )
                note = raw_note
            raw_kind = metadata.get(KIND_KEY)
            if isinstance(raw_kind, str) and raw_kind in AnnotationKind.__members__.values():
                hint = AnnotationKind(raw_kind)
        return {"name": name, "classification": cls, "note": note, "hint": hint}

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
            self.fail(f"classification must be an object or a string, not {_json_type(value)}")
        if not isinstance(name, str):
            self.fail(f"classification name must be a string, not {_json_type(name)}")
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
                    self.fail(f"colour {_short(value)} must be [r, g, b] with integers 0-255")
                channels.append(int(channel))
            return (channels[0], channels[1], channels[2])
        self.fail(f"colour {_short(value)} must be [r, g, b] or a packed RGB integer")

    def identifier(self, value: object) -> str:
        """The feature's UUID if it has a fresh one, else a new id."""
        if isinstance(value, str) and len(value) <= 64:
            try:
                text = str(uuid.UUID(value))
            except ValueError:
                return new_id()
            if text not in self.ids:
                return text
        return new_id()

    # -- coordinates -------------------------------------------------------------------

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
            self.fail(f"a position must be [x, y], not {_short(value)}")
        limit = self.limits.max_abs_coordinate
        for c in value:
            if not _is_number(c):
                self.fail(f"a coordinate must be a number, not {_json_type(c)}")
            if not math.isfinite(c):
                self.fail(f"coordinate {c} is not a finite number")
            if abs(c) > limit:
                self.fail(f"coordinate {_short(c)} is out of range (at most {limit:g} in size)")
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
    ) -> tuple[AnnotationKind, tuple[Point, ...], tuple[Ring, ...]]:
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


def parse_geojson(
    data: bytes | str, *, source: str | Path = "<memory>", limits: GeoJSONLimits = DEFAULT_LIMITS
) -> ImportResult:
    """Parse GeoJSON text (see the module docstring for what is accepted).

    ``source`` names the file in error messages.  Raises :class:`AnnotationFileError`.
    """
    return _Parser(source, limits).parse(data)


def import_geojson(path: Path, *, limits: GeoJSONLimits = DEFAULT_LIMITS) -> ImportResult:
    """Read and parse a GeoJSON file; the size limit is checked before reading.

    Raises :class:`AnnotationFileError` (unreadable, too large, malformed).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise AnnotationFileError(
                path, f"file is {size} bytes; the limit is {limits.max_bytes} bytes"
            )
        with open(path, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise AnnotationFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    return parse_geojson(data, source=path, limits=limits)
