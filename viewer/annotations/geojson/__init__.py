"""GeoJSON import and export of annotations, in the dialect QuPath reads and writes.

Writing (:func:`to_geojson`, :func:`dumps_geojson`, :func:`export_geojson`) gives a
``FeatureCollection``; each annotation is a ``Feature`` with its UUID as ``id``,
geometry in level-0 pixels counted from ``l0_origin`` (see "Coordinates" below), and
``properties``:

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

Coordinates: QuPath opens a slide that states bounds (``openslide.bounds-x``/``-y``/
``-width``/``-height``: MIRAX, Hamamatsu VMS) cropped to them, so its pixel ``(0, 0)``
is the bounds' top-left corner, level-0 ``(bounds-x, bounds-y)``; QuPath's
``OpenslideImageServer`` crops by default and adds ``boundsX``/``boundsY`` to every
tile it reads.  The same convention holds here so that a GeoJSON round trip through
QuPath lands on the same tissue: callers pass the bounds' corner
(``SlideInfo.l0_bounds``) as ``l0_origin``; export writes level-0 coordinates minus
it, import adds it back.  Slides without bounds have origin ``(0, 0)``: plain level-0
pixels.  A file SlideLens wrote says in its ``"slidelens"`` member which origin its
coordinates count from (``"l0_origin"``; absent means ``(0, 0)``, as in the
annotation files SlideLens saves beside your data, which are always in level-0 pixels),
and import honours that instead of the caller's, so our own files read back right
whichever way they were written.  The round trip is exact for annotations inside the
bounds.

``NaN`` and ``Infinity`` (not JSON, but QuPath writes them in measurements) are accepted
where they are ignored and refused in coordinates and colours.

Files are untrusted.  Every limit of :class:`GeoJSONLimits` is enforced and every
problem raises one :class:`AnnotationFileError` whose message names the file and the
problem (``feature 12: polygon ring has 2 positions; a ring needs at least 4``).
Features are numbered from 1 in file order.  A feature keeps its UUID ``id``; a
feature whose ``id`` is not a UUID (``"tumour-0"``), or that has none, gets a UUID
derived from that id or from its content, so reading a file twice gives the same ids
(``viewer.annotations.import_plan`` then sees what is already on the slide).
Well-formed features that cannot be represented (``GeometryCollection``,
``MultiLineString``, no geometry, other object types) are skipped and counted in
:attr:`ImportResult.skipped`.

Modules: :mod:`~.common` (format constants, :class:`GeoJSONLimits`,
:class:`AnnotationFileError`, :class:`ImportResult`), :mod:`~.writer` (writing),
:mod:`~.reader` (documents and features) and :mod:`~.values` (geometries, classes,
colours).  This package re-exports their public names for callers outside
``viewer.annotations``; modules inside it import from those modules directly.
"""

from viewer.annotations.geojson.common import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    IMPORTED_OBJECT_TYPES,
    KIND_KEY,
    NOTE_KEY,
    SLIDELENS_MEMBER,
    AnnotationFileError,
    GeoJSONLimits,
    ImportResult,
    default_colour,
)
from viewer.annotations.geojson.reader import import_geojson, parse_geojson
from viewer.annotations.geojson.writer import dumps_geojson, export_geojson, feature, to_geojson

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "IMPORTED_OBJECT_TYPES",
    "KIND_KEY",
    "NOTE_KEY",
    "SLIDELENS_MEMBER",
    "AnnotationFileError",
    "GeoJSONLimits",
    "ImportResult",
    "default_colour",
    "dumps_geojson",
    "export_geojson",
    "feature",
    "import_geojson",
    "parse_geojson",
    "to_geojson",
]
