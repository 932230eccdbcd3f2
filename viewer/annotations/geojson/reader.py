"""Reading GeoJSON annotations: documents and features (see :mod:`viewer.annotations.geojson`).

:class:`DocumentParser` reads the document (size, encoding, JSON, nesting, the top
level and our ``"slidelens"`` member) and each feature (object type, properties, id);
geometries and values are read by its base, :class:`~.values.ValueParser`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from viewer.annotations.classes import AnnotationClass
from viewer.annotations.geojson.common import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    GEOMETRY_TYPES,
    IMPORTED_OBJECT_TYPES,
    KIND_KEY,
    NOTE_KEY,
    ORIGIN_KEY,
    SKIPPED_GEOMETRIES,
    SLIDELENS_MEMBER,
    SUPPORTED_GEOMETRIES,
    AnnotationFileError,
    GeoJSONLimits,
    ImportResult,
)
from viewer.annotations.geojson.values import ValueParser, json_type, short
from viewer.annotations.model import Annotation, AnnotationKind, Point, new_id

_NOT_A_DOCUMENT = "expected a GeoJSON FeatureCollection, a Feature or a list of features"
#: The namespace of ids derived from a feature without a UUID (``uuid5``).
DERIVED_IDS = uuid.UUID("5f0c4a8e-6d3b-4b7e-9a41-2c9d3e1f7a60")


class DocumentParser(ValueParser):
    """One pass over one document; raises :class:`AnnotationFileError` at the first problem.

    ``l0_origin`` is the level-0 point that ``(0, 0)`` of a file from elsewhere (QuPath)
    stands for; a file SlideLens wrote states its own (in our member).
    """

    def __init__(
        self, source: str | Path, limits: GeoJSONLimits, l0_origin: Point = (0.0, 0.0)
    ) -> None:
        super().__init__(source, limits)
        self.classes: dict[str, AnnotationClass] = {}
        self.ids: set[str] = set()
        self.l0_origin = (float(l0_origin[0]), float(l0_origin[1]))

    # -- document ----------------------------------------------------------------------

    def parse(self, data: bytes | str) -> ImportResult:
        doc = self.load(data)
        self.check_depth(doc)
        features, member = self.top_level(doc)
        palette, source_id, saved_at_ns = self.member(member)
        origin = self.file_origin(member)
        annotations: list[Annotation] = []
        for number, item in enumerate(features, start=1):
            self.where = f"feature {number}"
            annotations.extend(self.feature(item))
        self.where = ""
        ox, oy = origin
        if ox or oy:
            annotations = [a.translated(ox, oy) for a in annotations]
            if member is None:
                self.notes.append(
                    f"coordinates counted from the slide's bounds at ({ox:g}, {oy:g}) "
                    "level-0 px, as QuPath counts them"
                )
        return ImportResult(
            annotations=tuple(annotations),
            classes=tuple(self.classes.values()),
            palette=palette,
            skipped=dict(self.skipped),
            notes=tuple(self.notes),
            source_id=source_id,
            saved_at_ns=saved_at_ns,
            l0_origin=origin,
        )

    def file_origin(self, member: object) -> tuple[float, float]:
        """The level-0 point the file's ``(0, 0)`` stands for: what our member states
        (``(0, 0)`` when it states none: SlideLens wrote level-0 coordinates before it
        wrote origins), else the caller's ``l0_origin`` (a file from QuPath)."""
        if not isinstance(member, dict):
            return self.l0_origin
        stated = member.get(ORIGIN_KEY)
        if stated is None:
            return (0.0, 0.0)
        self.where = f"'{SLIDELENS_MEMBER}' member"
        limit = self.limits.max_abs_coordinate
        if (
            not isinstance(stated, list)
            or len(stated) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in stated)
            or not all(math.isfinite(v) and abs(v) <= limit for v in stated)
        ):
            self.fail(f"'{ORIGIN_KEY}' must be two finite numbers [x, y], not {short(stated)}")
        self.where = ""
        return float(stated[0]), float(stated[1])

    def load(self, data: bytes | str) -> object:
        """The JSON value of the text (size, encoding and syntax checked)."""
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
            return json.loads(text)
        except RecursionError:
            self.fail(f"JSON is nested too deeply (the limit is {self.limits.max_depth} levels)")
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
        except ValueError as exc:  # e.g. an integer with thousands of digits
            self.fail(f"not valid JSON: {exc}")

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
                skip = "coordinates" if node.get("type") in GEOMETRY_TYPES else None
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
            elif isinstance(kind, str) and kind in SUPPORTED_GEOMETRIES:
                self.fail(f"a bare {kind} geometry; expected a Feature or a FeatureCollection")
            else:
                self.fail(f"{_NOT_A_DOCUMENT}, not an object of type {short(kind)}")
        else:
            self.fail(f"{_NOT_A_DOCUMENT}, not {json_type(doc)}")
        assert isinstance(features, list)
        if len(features) > self.limits.max_features:
            self.fail(f"file has {len(features)} features; the limit is {self.limits.max_features}")
        return features, member

    def member(self, member: object) -> tuple[tuple[AnnotationClass, ...], str | None, int | None]:
        if member is None:
            return (), None, None
        self.where = f"'{SLIDELENS_MEMBER}' member"
        if not isinstance(member, dict):
            self.fail(f"expected an object, not {json_type(member)}")
        version = member.get("format")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.fail(f"format must be a positive integer, not {short(version)}")
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
            self.fail(f"expected a Feature object, not {json_type(item)}")
        kind = item.get("type")
        if kind is not None and kind != "Feature":
            self.fail(f"type is {short(kind)}, expected 'Feature'")
        properties = item.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            self.fail(f"'properties' must be an object, not {json_type(properties)}")
        object_type = properties.get("objectType", properties.get("object_type", "annotation"))
        if not isinstance(object_type, str):
            self.fail(f"objectType must be a string, not {json_type(object_type)}")
        if object_type not in IMPORTED_OBJECT_TYPES:
            self.skip(f"objectType {short(object_type, 30)}")
            return []
        geometry = item.get("geometry")
        if geometry is None:
            self.skip("without geometry")
            return []
        if not isinstance(geometry, dict):
            self.fail(f"'geometry' must be an object, not {json_type(geometry)}")
        gtype = geometry.get("type")
        if not isinstance(gtype, str):
            self.fail("geometry has no 'type'")
        if gtype in SKIPPED_GEOMETRIES:
            self.skip(gtype)
            return []
        if gtype not in SUPPORTED_GEOMETRIES:
            self.fail(f"unknown geometry type {short(gtype, 30)}")

        meta = self.properties(properties)
        hint = meta.pop("hint")
        coords = geometry.get("coordinates")
        if not isinstance(coords, list):
            self.fail(f"{gtype} needs a 'coordinates' array")
        shapes = self.shapes(gtype, geometry, coords, hint)
        if not shapes:
            return []

        first_id = self.identifier(item.get("id"), item)
        out = []
        for k, (shape_kind, points, holes) in enumerate(shapes):
            try:
                annotation = Annotation(
                    kind=shape_kind,
                    l0_points=points,
                    l0_holes=holes,
                    id=first_id if k == 0 else self.fresh(f"{first_id}/part {k}"),
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
            self.fail(f"'name' must be a string, not {json_type(name)}")
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

    def identifier(self, value: object, item: dict[str, Any]) -> str:
        """The feature's id: its UUID; else one derived from the id it has (``"tumour-0"``)
        or, without one, from its content, so that a file read twice gives the same ids
        (an import can then tell what is already on the slide).  An id met before in the
        file gets a new one."""
        if isinstance(value, str) and len(value) <= 64:
            try:
                text = str(uuid.UUID(value))
            except ValueError:
                pass
            else:
                return text if text not in self.ids else new_id()
        if isinstance(value, str | int) and not isinstance(value, bool):
            return self.fresh(f"id {value}")
        return self.fresh("content " + json.dumps(item, sort_keys=True, default=str))

    def fresh(self, seed: str) -> str:
        """The UUID derived from ``seed`` (:data:`DERIVED_IDS`), or a new one when the
        file already gave it."""
        derived = str(uuid.uuid5(DERIVED_IDS, seed))
        return derived if derived not in self.ids else new_id()


def parse_geojson(
    data: bytes | str,
    *,
    source: str | Path = "<memory>",
    limits: GeoJSONLimits = DEFAULT_LIMITS,
    l0_origin: Point = (0.0, 0.0),
) -> ImportResult:
    """Parse GeoJSON text (see :mod:`viewer.annotations.geojson` for what is accepted).

    ``source`` names the file in error messages.  ``l0_origin`` is added to the
    coordinates of a file that SlideLens did not write: pass the top-left corner of the
    slide's bounds (``SlideInfo.l0_bounds``), which QuPath counts from.  Raises
    :class:`AnnotationFileError`.
    """
    return DocumentParser(source, limits, l0_origin).parse(data)


def import_geojson(
    path: Path, *, limits: GeoJSONLimits = DEFAULT_LIMITS, l0_origin: Point = (0.0, 0.0)
) -> ImportResult:
    """Read and parse a GeoJSON file; the size limit is checked before reading.

    ``l0_origin`` as for :func:`parse_geojson`.  Raises :class:`AnnotationFileError`
    (unreadable, too large, malformed).
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
    return parse_geojson(data, source=path, limits=limits, l0_origin=l0_origin)
