"""Writing annotations as GeoJSON that QuPath reads (see :mod:`viewer.annotations.geojson`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inference.core.atomic_io import atomic_write_text
from viewer.annotations.classes import AnnotationClass
from viewer.annotations.geojson.common import (
    FORMAT_VERSION,
    KIND_KEY,
    NOTE_KEY,
    ORIGIN_KEY,
    SLIDELENS_MEMBER,
    AnnotationFileError,
)
from viewer.annotations.geometry import ellipse_ring
from viewer.annotations.model import Annotation, AnnotationKind, Point


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


def feature(annotation: Annotation, *, l0_origin: Point = (0.0, 0.0)) -> dict[str, Any]:
    """One annotation as a QuPath-readable GeoJSON ``Feature``.

    ``l0_origin`` is the level-0 point that the file's ``(0, 0)`` stands for: the
    coordinates written are level-0 minus it (see :mod:`viewer.annotations.geojson`).
    """
    ox, oy = l0_origin
    if ox or oy:
        annotation = annotation.translated(-ox, -oy)
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
    l0_origin: Point = (0.0, 0.0),
) -> dict[str, Any]:
    """A ``FeatureCollection`` of the annotations (in order) plus our ``slidelens`` member.

    Coordinates are level-0 minus ``l0_origin`` (QuPath's convention for a slide with
    bounds is their top-left corner); a non-zero origin is recorded in the member as
    ``l0_origin``, so that SlideLens reads its own files back wherever they count from.
    """
    member: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "classes": [_class_json(c) for c in palette],
    }
    ox, oy = float(l0_origin[0]), float(l0_origin[1])
    if ox or oy:
        member[ORIGIN_KEY] = [ox, oy]
    if source_id is not None:
        member["source_id"] = source_id
    if saved_at_ns is not None:
        member["saved_at_ns"] = int(saved_at_ns)
    return {
        "type": "FeatureCollection",
        SLIDELENS_MEMBER: member,
        "features": [feature(a, l0_origin=(ox, oy)) for a in annotations],
    }


def dumps_geojson(
    annotations: Iterable[Annotation],
    *,
    palette: Iterable[AnnotationClass] = (),
    source_id: str | None = None,
    saved_at_ns: int | None = None,
    l0_origin: Point = (0.0, 0.0),
) -> str:
    """:func:`to_geojson` as compact JSON text (UTF-8 safe, no NaN)."""
    doc = to_geojson(
        annotations,
        palette=palette,
        source_id=source_id,
        saved_at_ns=saved_at_ns,
        l0_origin=l0_origin,
    )
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def export_geojson(
    path: Path,
    annotations: Iterable[Annotation],
    *,
    palette: Iterable[AnnotationClass] = (),
    l0_origin: Point = (0.0, 0.0),
) -> None:
    """Write annotations to a GeoJSON file QuPath can import (atomically).

    ``l0_origin``: pass the top-left corner of the slide's bounds
    (``SlideInfo.l0_bounds``), which QuPath counts its coordinates from.  Raises
    :class:`AnnotationFileError` if the file cannot be written.
    """
    text = dumps_geojson(annotations, palette=palette, l0_origin=l0_origin)
    try:
        atomic_write_text(Path(path), text)
    except OSError as exc:
        raise AnnotationFileError(path, f"cannot write: {exc.strerror or exc}") from exc
