"""What GeoJSON reading and writing share: format constants, limits, the error, the result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inference.core.palette import named_class_colour
from viewer.annotations.classes import RGB, AnnotationClass
from viewer.annotations.model import Annotation

#: Version of our ``"slidelens"`` member; files with a newer one are refused.
FORMAT_VERSION = 1
SLIDELENS_MEMBER = "slidelens"
KIND_KEY = "slidelens.kind"
NOTE_KEY = "slidelens.note"
#: In our member: the level-0 point the file's coordinates count from (absent: ``(0, 0)``).
ORIGIN_KEY = "l0_origin"

#: QuPath object types imported (as annotations); others are skipped.
IMPORTED_OBJECT_TYPES = frozenset({"annotation", "detection", "cell", "tile"})
SUPPORTED_GEOMETRIES = ("Polygon", "MultiPolygon", "LineString", "Point", "MultiPoint")
SKIPPED_GEOMETRIES = frozenset({"GeometryCollection", "MultiLineString"})
GEOMETRY_TYPES = frozenset({*SUPPORTED_GEOMETRIES, *SKIPPED_GEOMETRIES})


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
    files (``None`` otherwise); ``l0_origin`` is the level-0 point the file's ``(0, 0)``
    stood for, added to every coordinate read (see :mod:`viewer.annotations.geojson`).
    """

    annotations: tuple[Annotation, ...]
    classes: tuple[AnnotationClass, ...] = ()
    palette: tuple[AnnotationClass, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source_id: str | None = None
    saved_at_ns: int | None = None
    l0_origin: tuple[float, float] = (0.0, 0.0)

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
    else a stable colour derived from the name (see
    :func:`inference.core.palette.named_class_colour`)."""
    return named_class_colour(name)
