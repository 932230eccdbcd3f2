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
* storage: :class:`AnnotationStore` (save with ``.bak``, autosave, recovery),
  :class:`OpenResult`, :class:`RecoveryInfo`, :func:`load_user_palette`,
  :func:`save_user_palette`.
"""

from viewer.annotations.annotation_set import AnnotationSet, SelectMode
from viewer.annotations.geojson import (
    DEFAULT_LIMITS,
    AnnotationFileError,
    GeoJSONLimits,
    ImportResult,
    dumps_geojson,
    export_geojson,
    import_geojson,
    parse_geojson,
    to_geojson,
)
from viewer.annotations.measurements import Measurements, measure
from viewer.annotations.model import (
    CLASS,
    DEFAULT_CLASSES,
    GEOMETRY,
    NAME,
    NOTE,
    UNCLASSIFIED_COLOUR,
    Annotation,
    AnnotationClass,
    AnnotationKind,
    ClassPalette,
    VertexHit,
)
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
    "GeoJSONLimits",
    "ImportResult",
    "Measurements",
    "OpenResult",
    "RecoveryInfo",
    "SelectMode",
    "VertexHit",
    "dumps_geojson",
    "export_geojson",
    "import_geojson",
    "load_user_palette",
    "measure",
    "parse_geojson",
    "save_user_palette",
    "to_geojson",
]
