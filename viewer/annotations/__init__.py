"""Qt-free annotations: the model, measurements, undo, GeoJSON and per-slide storage.

Everything a GUI needs is importable from here:

* values: :class:`Annotation` (immutable; edits return new values with the same id),
  :class:`AnnotationKind`, :class:`AnnotationClass`, :data:`DEFAULT_CLASSES`,
  :class:`ClassPalette`, :class:`VertexHit`;
* :class:`AnnotationSet`: one slide's annotations with events, selection, hit tests
  and an undo/redo stack; :class:`Measurements` from :meth:`AnnotationSet.measure`;
* GeoJSON (QuPath's dialect): :func:`import_geojson`, :func:`export_geojson`,
  :func:`parse_geojson`, :func:`dumps_geojson`, :class:`ImportResult`,
  :class:`GeoJSONLimits`, and the one error class :class:`AnnotationFileError`;
* adding a file to a set without duplicate ids: :func:`plan_import`,
  :func:`apply_import`, :class:`ImportPlan`, :class:`ConflictPolicy`,
  :class:`ImportOutcome`;
* storage: :class:`AnnotationStore` (save with ``.bak``, autosave, recovery),
  :class:`OpenResult`, :class:`RecoveryInfo`, :func:`load_user_palette`,
  :func:`save_user_palette`.

These re-exports are for callers outside the package: modules inside
``viewer.annotations`` import each other by their own module path, never from here.
"""

from viewer.annotations.annotation_set import AnnotationSet
from viewer.annotations.classes import DEFAULT_CLASSES, AnnotationClass, ClassPalette
from viewer.annotations.geojson.common import (
    DEFAULT_LIMITS,
    AnnotationFileError,
    GeoJSONLimits,
    ImportResult,
)
from viewer.annotations.geojson.reader import import_geojson, parse_geojson
from viewer.annotations.geojson.writer import dumps_geojson, export_geojson, to_geojson
from viewer.annotations.import_plan import (
    ConflictPolicy,
    ImportOutcome,
    ImportPlan,
    apply_import,
    plan_import,
)
from viewer.annotations.measurements import Measurements, measure
from viewer.annotations.model import (
    CLASS,
    GEOMETRY,
    NAME,
    NOTE,
    UNCLASSIFIED_COLOUR,
    Annotation,
    AnnotationKind,
    VertexHit,
)
from viewer.annotations.selection import SelectMode
from viewer.annotations.storage import (
    AnnotationStore,
    OpenResult,
    RecoveryInfo,
    load_user_palette,
    save_user_palette,
)

__all__ = [
    "CLASS",
    "DEFAULT_CLASSES",
    "DEFAULT_LIMITS",
    "GEOMETRY",
    "NAME",
    "NOTE",
    "UNCLASSIFIED_COLOUR",
    "Annotation",
    "AnnotationClass",
    "AnnotationFileError",
    "AnnotationKind",
    "AnnotationSet",
    "AnnotationStore",
    "ClassPalette",
    "ConflictPolicy",
    "GeoJSONLimits",
    "ImportOutcome",
    "ImportPlan",
    "ImportResult",
    "Measurements",
    "OpenResult",
    "RecoveryInfo",
    "SelectMode",
    "VertexHit",
    "apply_import",
    "dumps_geojson",
    "export_geojson",
    "import_geojson",
    "load_user_palette",
    "measure",
    "parse_geojson",
    "plan_import",
    "save_user_palette",
    "to_geojson",
]
