"""GeoJSON: exact round trips, QuPath's dialect both ways, and refusal of bad or huge files."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from viewer.annotations import (
    DEFAULT_CLASSES,
    Annotation,
    AnnotationClass,
    AnnotationFileError,
    AnnotationKind,
    AnnotationSet,
    GeoJSONLimits,
    export_geojson,
    import_geojson,
    parse_geojson,
    to_geojson,
)

TUMOUR, STROMA = DEFAULT_CLASSES[0], DEFAULT_CLASSES[1]
MITOSIS = AnnotationClass("Mitosis figure", (12, 34, 56))


def every_kind() -> list[Annotation]:
    """One annotation of each kind, with awkward values (fractions, unicode, holes)."""
    return [
        Annotation.rectangle(10.25, 20.5, 400.125, 300.75, classification=TUMOUR, name="R1"),
        Annotation.ellipse(1000.1, 2000.2, 1300.3, 2100.4, classification=STROMA, note="oval"),
        Annotation.polygon(
            [(0, 0), (100, 0), (100, 100), (0, 100)],
            [[(10, 10), (20, 10), (20, 20)], [(50, 50), (60, 50), (60, 60), (50, 60)]],
            note="two holes — ünïcødé ✓",
        ),
        Annotation.polygon([(5, 5), (25, 5), (25, 15), (5, 15)]),  # looks like a rectangle
        Annotation.freehand(
            [
                (500 + 40 * math.cos(k / 50 * math.tau), 500 + 30 * math.sin(k / 50 * math.tau))
                for k in range(50)
            ],
            classification=MITOSIS,
        ),
        Annotation.points([(1.5, 2.5)], name="single"),
        Annotation.points([(1, 1), (2, 3), (5, 8)], classification=TUMOUR, note="nuclei"),
        Annotation.ruler([(0, 0), (3.3, 4.4)]),
        Annotation.ruler([(0, 0), (10, 0), (10, 7.77)], name="path"),
    ]


def test_round_trip_of_every_kind_is_exact(tmp_path: Path) -> None:
    original = every_kind()
    path = tmp_path / "out.geojson"
    export_geojson(path, original, palette=DEFAULT_CLASSES)
    result = import_geojson(path)
    assert list(result.annotations) == original  # ids, kinds, geometry, class, note, name
    assert result.skipped == {} and result.notes == ()
    assert result.palette == DEFAULT_CLASSES
    assert set(result.classes) == {TUMOUR, STROMA, MITOSIS}
    assert result.summary() == "Imported 9 annotations."


def test_export_is_in_the_form_qupath_reads() -> None:
    doc = json.loads(json.dumps(to_geojson(every_kind())))
    assert doc["type"] == "FeatureCollection"
    types = [f["geometry"]["type"] for f in doc["features"]]
    assert types == ["Polygon"] * 5 + ["MultiPoint"] * 2 + ["LineString"] * 2
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        assert str(uuid.UUID(feature["id"])) == feature["id"]
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        if "classification" in props:  # QuPath refuses a classification without a colour
            cls = props["classification"]
            assert set(cls) == {"name", "color"} and len(cls["color"]) == 3
            assert all(isinstance(c, int) for c in cls["color"])
        assert props["metadata"]["slidelens.kind"] in {k.value for k in AnnotationKind}
        assert all(isinstance(v, str) for v in props["metadata"].values())
        if feature["geometry"]["type"] == "Polygon":
            for ring in feature["geometry"]["coordinates"]:
                assert len(ring) >= 4 and ring[0] == ring[-1]
    ellipse = doc["features"][1]["geometry"]
    assert ellipse["isEllipse"] is True and len(ellipse["coordinates"][0]) == 73
    assert doc["features"][0]["properties"]["name"] == "R1"
    assert "name" not in doc["features"][2]["properties"]


def _ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _qupath_ellipse(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A closed 40-vertex ellipse ring, 2 decimals, like QuPath writes."""
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    ring = [
        [
            round(cx + rx * math.cos(k / 40 * math.tau), 2),
            round(cy + ry * math.sin(k / 40 * math.tau), 2),
        ]
        for k in range(40)
    ]
    return [*ring, ring[0]]


def _argb(r: int, g: int, b: int) -> int:
    """A colour packed as Java's signed ARGB int, as QuPath stores it."""
    value = (255 << 24) | (r << 16) | (g << 8) | b
    return value - (1 << 32)


QUPATH_IDS = [str(uuid.UUID(int=k + 1)) for k in range(12)]


def _qupath_annotations() -> list[dict[str, Any]]:
    """QuPath's annotation features of :func:`qupath_file`: each geometry and class form."""
    return [
        {
            "type": "Feature",
            "id": QUPATH_IDS[0],
            "geometry": {"type": "Polygon", "coordinates": [_ring(1000, 2000, 1500, 2600)]},
            "properties": {
                "objectType": "annotation",
                "name": "Region A",
                "classification": {"name": "Tumor", "color": [200, 0, 0]},
                "isLocked": True,
                "measurements": {"Area µm^2": 75000.0, "Mean": math.nan},  # QuPath writes NaN
            },
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[1],
            "geometry": {
                "type": "Polygon",
                "coordinates": [_qupath_ellipse(3000, 3000, 3200, 3100)],
                "isEllipse": True,
            },
            "properties": {"objectType": "annotation", "color": [255, 0, 0]},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[2],
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[0, 0], [100.5, 0], [100.5, 80.25], [0, 80.25], [0, 0]],
                    [[10, 10], [20, 10], [15, 20], [10, 10]],
                ],
            },
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Stroma", "color": [150, 200, 150]},
            },
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[3],
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[0, 0], [10, 0], [5, 10], [0, 0]]],
                    [[[100, 100], [110, 100], [105, 110], [100, 100]]],
                ],
            },
            "properties": {"objectType": "annotation", "name": "split"},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[4],
            "geometry": {"type": "LineString", "coordinates": [[10.5, 10.5], [40.5, 50.5]]},
            "properties": {"objectType": "annotation"},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[5],
            "geometry": {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4], [5, 6]]},
            "properties": {
                "objectType": "annotation",
                "classification": {"names": ["Tumor", "Positive"], "color": [200, 50, 50]},
            },
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[6],
            "geometry": {"type": "Point", "coordinates": [7, 8]},
            "properties": {"objectType": "annotation", "classification": "Other"},
        },
    ]


def _qupath_other_objects() -> list[dict[str, Any]]:
    """QuPath's other object types and geometries of :func:`qupath_file`."""
    return [
        {
            "type": "Feature",
            "id": QUPATH_IDS[7],
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 3], [0, 0]]]},
            "properties": {
                "objectType": "detection",
                "classification": {"name": "Immune cells", "color": _argb(160, 90, 160)},
            },
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[8],
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [6, 0], [6, 6], [0, 0]]]},
            "properties": {"classification": {"name": "Necrosis", "colorRGB": _argb(50, 50, 50)}},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[9],
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]]]},
            "nucleusGeometry": {
                "type": "Polygon",
                "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]],
            },
            "properties": {"objectType": "cell"},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[10],
            "geometry": {"type": "GeometryCollection", "geometries": []},
            "properties": {"objectType": "annotation"},
        },
        {
            "type": "Feature",
            "id": QUPATH_IDS[11],
            "geometry": {"type": "Polygon", "coordinates": [_ring(0, 0, 50, 50)]},
            "properties": {"objectType": "tmaCore", "isMissing": False},
        },
    ]


def qupath_file() -> str:
    """A FeatureCollection as QuPath 0.5 exports it (Gson pretty printing, 2 decimals)."""
    features = [*_qupath_annotations(), *_qupath_other_objects()]
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=2)


def test_a_qupath_export_imports_as_qupath_shows_it(tmp_path: Path) -> None:
    path = tmp_path / "from_qupath.geojson"
    path.write_text(qupath_file(), encoding="utf-8")
    result = import_geojson(path)
    a = result.annotations
    kinds = [x.kind for x in a]
    assert kinds == [
        AnnotationKind.RECTANGLE,
        AnnotationKind.ELLIPSE,
        AnnotationKind.POLYGON,
        AnnotationKind.POLYGON,
        AnnotationKind.POLYGON,
        AnnotationKind.RULER,
        AnnotationKind.POINT,
        AnnotationKind.POINT,
        AnnotationKind.POLYGON,
        AnnotationKind.POLYGON,
        AnnotationKind.POLYGON,
    ]
    rect, ellipse, holed, part1, part2, line, multi, single, detection, legacy, cell = a
    assert rect.id == QUPATH_IDS[0] and rect.name == "Region A"
    assert rect.l0_points == ((1000.0, 2000.0), (1500.0, 2600.0))
    assert rect.classification == AnnotationClass("Tumor", (200, 0, 0))
    assert ellipse.l0_bounds == (3000.0, 3000.0, 3200.0, 3100.0)
    assert ellipse.classification is None
    assert holed.l0_holes == (((10.0, 10.0), (20.0, 10.0), (15.0, 20.0)),)
    assert holed.l0_area == pytest.approx(100.5 * 80.25 - 50.0)
    assert (part1.id, part1.name, part2.name) == (QUPATH_IDS[3], "split", "split")
    assert part2.id not in QUPATH_IDS
    assert line.l0_points == ((10.5, 10.5), (40.5, 50.5))
    assert multi.classification == AnnotationClass("Tumor: Positive", (200, 50, 50))
    assert single.l0_points == ((7.0, 8.0),) and single.classification == DEFAULT_CLASSES[4]
    assert detection.classification == AnnotationClass("Immune cells", (160, 90, 160))
    assert legacy.classification == AnnotationClass("Necrosis", (50, 50, 50))
    assert cell.l0_points == ((0.0, 0.0), (9.0, 0.0), (9.0, 9.0))
    assert result.skipped == {"GeometryCollection": 1, "objectType 'tmaCore'": 1}
    assert result.notes == ("feature 4: a MultiPolygon of 2 parts became 2 annotations",)
    assert result.summary() == (
        "Imported 11 annotations; skipped 2 (1 GeometryCollection, 1 objectType 'tmaCore')."
    )
    assert result.palette == () and result.source_id is None


def test_older_qupath_bare_list_and_a_bare_feature_import() -> None:
    features = json.loads(qupath_file())["features"][:2]
    listed = parse_geojson(json.dumps(features))
    assert [x.kind for x in listed.annotations] == [
        AnnotationKind.RECTANGLE,
        AnnotationKind.ELLIPSE,
    ]
    single = parse_geojson(json.dumps(features[0]).encode("utf-8"))
    assert single.annotations[0].id == QUPATH_IDS[0]
    with_bom = parse_geojson(b"\xef\xbb\xbf" + json.dumps(features).encode("utf-8"))
    assert len(with_bom.annotations) == 2


def test_imported_annotations_join_a_set_with_its_palette() -> None:
    aset = AnnotationSet("s", 0.25, [Annotation.points([(0, 0)], classification=TUMOUR)])
    text = json.dumps(
        to_geojson(
            [Annotation.points([(1, 1)], classification=AnnotationClass("Tumour", (1, 2, 3)))]
        )
    )
    result = parse_geojson(text)
    first = aset.add_many(result.annotations, renew_duplicate_ids=True)
    second = aset.add_many(result.annotations, renew_duplicate_ids=True)  # same file twice
    assert first[0].id == result.annotations[0].id and second[0].id != first[0].id
    assert first[0].classification == TUMOUR  # the palette's colour, not the file's


def feature_with(geometry: object, properties: object = None) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties or {}}


def collection(*features: object) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


OK_RING = _ring(0, 0, 10, 10)

MALFORMED = [
    ("{", "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
    ("", "file is empty"),
    ("42", "expected a GeoJSON FeatureCollection, a Feature or a list of features, not a number"),
    ('{"type": "Topology"}', "not an object of type 'Topology'"),
    (
        '{"type": "FeatureCollection", "features": {}}',
        "a FeatureCollection needs a 'features' array",
    ),
    (
        json.dumps(polygon(OK_RING)),
        "a bare Polygon geometry; expected a Feature or a FeatureCollection",
    ),
    (
        collection(feature_with(polygon(OK_RING)), 7),
        "feature 2: expected a Feature object, not a number",
    ),
    (
        collection(feature_with(polygon(OK_RING)), feature_with(polygon([[0, 0], [1, 1]]))),
        "feature 2: polygon ring has 2 positions; a ring needs at least 4",
    ),
    (
        collection(feature_with(polygon([[0, 0], [1, 0], [1, 1], [0, 1]]))),
        "feature 1: polygon ring is not closed (its first and last positions differ)",
    ),
    (
        collection(
            feature_with({"type": "Polygon", "coordinates": [OK_RING, [[1, 1], [2, 1], [1, 1]]]})
        ),
        "feature 1: polygon hole 1 has 3 positions; a ring needs at least 4",
    ),
    (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[NaN, 1]}}',
        "feature 1: coordinate nan is not a finite number",
    ),
    (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1e999, 1]}}',
        "feature 1: coordinate inf is not a finite number",
    ),
    (
        collection(feature_with({"type": "Point", "coordinates": [1e300, 1]})),
        "feature 1: coordinate 1e+300 is out of range (at most 1e+07 in size)",
    ),
    (
        collection(feature_with({"type": "Point", "coordinates": ["1", 1]})),
        "feature 1: a coordinate must be a number, not a string",
    ),
    (
        collection(feature_with({"type": "Point", "coordinates": [True, 1]})),
        "feature 1: a coordinate must be a number, not a boolean",
    ),
    (
        collection(feature_with({"type": "MultiPoint", "coordinates": [[1, 2, 3, 4]]})),
        "feature 1: a position must be [x, y], not [1, 2, 3, 4]",
    ),
    (
        collection(feature_with({"type": "LineString", "coordinates": [[1, 2]]})),
        "feature 1: LineString has 1 position(s); a line needs at least 2",
    ),
    (
        collection(feature_with({"type": "Polygon"})),
        "feature 1: Polygon needs a 'coordinates' array",
    ),
    (
        collection(feature_with({"type": "Circle", "coordinates": [1, 2]})),
        "feature 1: unknown geometry type 'Circle'",
    ),
    (
        collection(
            feature_with(polygon(OK_RING), {"classification": {"name": "T", "color": [300, 0, 0]}})
        ),
        "feature 1: colour [300, 0, 0] must be [r, g, b] with integers 0-255",
    ),
    (
        collection(
            feature_with(
                polygon(OK_RING), {"classification": {"name": "T", "color": [math.nan, 0, 0]}}
            )
        ),
        "feature 1: colour [NaN, 0, 0] must be [r, g, b] with integers 0-255",
    ),
    (
        collection(feature_with(polygon(OK_RING), {"classification": 5})),
        "feature 1: classification must be an object or a string, not a number",
    ),
    (
        collection(feature_with(polygon(OK_RING), {"name": ["x"]})),
        "feature 1: 'name' must be a string, not an array",
    ),
    (
        collection(feature_with(polygon(OK_RING), {"metadata": {"slidelens.note": 3}})),
        "feature 1: metadata 'slidelens.note' must be a string",
    ),
    (
        collection(feature_with(polygon(OK_RING), {"deep": json.loads("[" * 30 + "]" * 30)})),
        "JSON is nested too deeply (the limit is 24 levels)",
    ),
    ("[" * 100_000 + "]" * 100_000, "JSON is nested too deeply"),
    (
        json.dumps({"type": "FeatureCollection", "slidelens": {"format": 99}, "features": []}),
        "'slidelens' member: written by a newer SlideLens (annotation format 99; "
        "this version reads format 1); please update SlideLens",
    ),
    ("9" * 5000, "not valid JSON: Exceeds the limit (4300 digits)"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_files_are_refused_with_a_message_that_names_them(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationFileError) as caught:
        import_geojson(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in caught.value.problem


def test_not_utf8_and_unreadable_files() -> None:
    with pytest.raises(AnnotationFileError, match="not UTF-8 text"):
        parse_geojson(b'{"type": "\xff"}', source="x.geojson")
    with pytest.raises(AnnotationFileError, match=r"missing\.geojson: cannot read"):
        import_geojson(Path("missing.geojson"))


SMALL = GeoJSONLimits(
    max_bytes=4000, max_features=10, max_vertices_per_geometry=8, max_total_vertices=12
)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([feature_with(polygon(OK_RING))] * 11, "file has 11 features; the limit is 10"),
        (
            [feature_with({"type": "MultiPoint", "coordinates": [[k, k] for k in range(9)]})],
            "feature 1: geometry has more than 8 vertices (the limit)",
        ),
        (
            [feature_with(polygon(OK_RING))] * 3,
            "file has more than 12 vertices in all (the limit; reached at feature 3)",
        ),
        (
            [feature_with(polygon(OK_RING), {"name": "x" * 5000})],
            "file is 5188 bytes; the limit is 4000 bytes",
        ),
    ],
)
def test_oversized_files_are_refused(tmp_path: Path, features: list[object], message: str) -> None:
    path = tmp_path / "big.geojson"
    path.write_text(collection(*features), encoding="utf-8")
    with pytest.raises(AnnotationFileError) as caught:
        import_geojson(path, limits=SMALL)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_unsupported_features_are_skipped_and_counted() -> None:
    text = collection(
        feature_with(polygon(OK_RING)),
        feature_with({"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]]]}),
        feature_with({"type": "GeometryCollection", "geometries": []}),
        feature_with({"type": "GeometryCollection", "geometries": []}),
        feature_with(None),
        feature_with({"type": "MultiPoint", "coordinates": []}),
        feature_with(polygon(OK_RING), {"objectType": "root"}),
    )
    result = parse_geojson(text)
    assert len(result.annotations) == 1
    assert result.skipped == {
        "MultiLineString": 1,
        "GeometryCollection": 2,
        "without geometry": 1,
        "empty MultiPoint": 1,
        "objectType 'root'": 1,
    }
    assert result.skipped_count == 6


def test_ids_that_are_not_fresh_uuids_are_replaced() -> None:
    same = str(uuid.uuid4())
    text = collection(
        {**feature_with(polygon(OK_RING)), "id": same},
        {**feature_with(polygon(OK_RING)), "id": same},
        {**feature_with(polygon(OK_RING)), "id": "PathAnnotationObject"},
    )
    ids = [a.id for a in parse_geojson(text).annotations]
    assert ids[0] == same and len(set(ids)) == 3
    assert all(str(uuid.UUID(i)) == i for i in ids)


# -- slides with bounds: coordinates count from the bounds, as in QuPath ---------------

#: The top-left corner of a MIRAX slide's ``openslide.bounds-x/-y``.
ORIGIN = (3000.0, 2000.0)


def _on_the_tissue() -> list[Annotation]:
    """:func:`every_kind`, moved inside bounds that start at :data:`ORIGIN`."""
    return [a.translated(*ORIGIN) for a in every_kind()]


def test_export_counts_from_the_slide_bounds_as_qupath_does() -> None:
    rect = Annotation.rectangle(3100, 2050, 3400, 2300, classification=TUMOUR)
    doc = to_geojson([rect], l0_origin=ORIGIN)
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    xs, ys = {x for x, _ in ring}, {y for _, y in ring}
    assert (xs, ys) == ({100.0, 400.0}, {50.0, 300.0})  # QuPath's pixels of the crop
    assert doc["slidelens"]["l0_origin"] == [3000.0, 2000.0]


def test_a_qupath_file_is_moved_by_the_bounds_origin() -> None:
    """What QuPath writes for that rectangle on the slide it crops to the bounds."""
    qupath = [
        {
            "type": "Feature",
            "id": str(uuid.uuid4()),
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[100, 50], [400, 50], [400, 300], [100, 300], [100, 50]]],
            },
            "properties": {"objectType": "annotation"},
        }
    ]
    result = parse_geojson(json.dumps(qupath), l0_origin=ORIGIN)
    (rect,) = result.annotations
    assert rect.kind is AnnotationKind.RECTANGLE
    assert rect.l0_bounds == (3100, 2050, 3400, 2300)
    assert result.l0_origin == ORIGIN
    assert any("bounds" in note for note in result.notes)
    # a slide without bounds: plain level-0 pixels
    assert parse_geojson(json.dumps(qupath)).annotations[0].l0_bounds == (100, 50, 400, 300)


def test_a_round_trip_through_qupath_lands_on_the_same_tissue(tmp_path: Path) -> None:
    original = _on_the_tissue()
    path = tmp_path / "for-qupath.geojson"
    export_geojson(path, original, palette=DEFAULT_CLASSES, l0_origin=ORIGIN)
    # QuPath reads the features and writes them back without our member
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["slidelens"]
    back = parse_geojson(json.dumps(doc), l0_origin=ORIGIN)
    assert list(back.annotations) == original
    # our own file reads back right however it is imported: it states its origin
    assert list(import_geojson(path, l0_origin=ORIGIN).annotations) == original
    assert list(import_geojson(path).annotations) == original


def test_files_without_an_origin_stay_in_level_0_pixels() -> None:
    """Annotation files SlideLens saves beside the data are in level-0 pixels: their
    member states no origin, so nothing is added whatever the slide's bounds."""
    saved = _on_the_tissue()
    doc = to_geojson(saved, source_id="abc", saved_at_ns=1)
    assert "l0_origin" not in doc["slidelens"]
    result = parse_geojson(json.dumps(doc), l0_origin=ORIGIN)
    assert list(result.annotations) == saved
    assert result.l0_origin == (0.0, 0.0)


@pytest.mark.parametrize("stated", [[1, 2, 3], "0,0", [1, None], [1, 1e300], [True, 0]])
def test_a_bad_stated_origin_is_refused(stated: object) -> None:
    doc = to_geojson(every_kind())
    doc["slidelens"]["l0_origin"] = stated
    with pytest.raises(AnnotationFileError, match="l0_origin"):
        parse_geojson(json.dumps(doc))
