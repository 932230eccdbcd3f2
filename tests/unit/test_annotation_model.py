"""Annotation values: validation, measurements against hand-computed values, hit tests, edits."""

from __future__ import annotations

import math

import pytest

from viewer.annotations import (
    DEFAULT_CLASSES,
    UNCLASSIFIED_COLOUR,
    Annotation,
    AnnotationClass,
    AnnotationKind,
    AnnotationSet,
    ClassPalette,
    measure,
)
from viewer.annotations.geometry import ellipse_ring

TUMOUR = DEFAULT_CLASSES[0]


def _exact_ellipse_perimeter(a: float, b: float, steps: int = 20000) -> float:
    """Arc length of x = a cos t, y = b sin t by the midpoint rule (independent of the code)."""
    total = 0.0
    for i in range(steps):
        t = (i + 0.5) / steps * 2.0 * math.pi
        total += math.hypot(a * math.sin(t), b * math.cos(t))
    return total * 2.0 * math.pi / steps


# -- validation -----------------------------------------------------------------------------


def test_box_corners_are_normalised_and_rings_stored_open() -> None:
    rect = Annotation.rectangle(40, 60, 10, 20)
    assert rect.l0_points == ((10.0, 20.0), (40.0, 60.0))
    poly = Annotation.polygon([(0, 0), (4, 0), (4, 3), (0, 0)])
    assert poly.l0_points == ((0.0, 0.0), (4.0, 0.0), (4.0, 3.0))
    assert poly.id != Annotation.polygon(poly.l0_points).id


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Annotation.polygon([(0, 0), (1, 1)]), "at least 3 points"),
        (lambda: Annotation.ruler([(0, 0)]), "at least 2 points"),
        (lambda: Annotation.points([]), "at least 1 points"),
        (lambda: Annotation.rectangle(0, 0, math.nan, 1), "finite"),
        (lambda: Annotation.polygon([(0, 0), (1, 0), (1, 1)], [[(0, 0), (1, 1)]]), "hole"),
        (
            lambda: Annotation(
                kind=AnnotationKind.RULER,
                l0_points=((0, 0), (1, 1)),
                l0_holes=(((0, 0), (1, 0), (0, 1)),),
            ),
            "cannot have holes",
        ),
        (lambda: AnnotationClass("", (1, 2, 3)), "non-empty name"),
        (lambda: AnnotationClass("x", (256, 0, 0)), "0-255"),
    ],
)
def test_invalid_values_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_colour_falls_back_for_unclassified() -> None:
    assert Annotation.points([(1, 1)]).colour == UNCLASSIFIED_COLOUR
    assert Annotation.points([(1, 1)], classification=TUMOUR).colour == TUMOUR.colour


# -- measurements ---------------------------------------------------------------------------


def test_rectangle_measurements_with_and_without_mpp() -> None:
    rect = Annotation.rectangle(10, 20, 40, 60)  # 30 x 40
    m = measure(rect, 0.5)
    assert (m.l0_area, m.l0_length) == (1200.0, 140.0)
    assert m.has_physical_units
    assert m.area_um2 == pytest.approx(300.0)  # 1200 * 0.25
    assert m.length_um == pytest.approx(70.0)
    assert (m.area, m.area_unit, m.length, m.length_unit) == (300.0, "µm²", 70.0, "µm")
    assert m.describe() == "area 300.00 µm², perimeter 70.00 µm"

    raw = measure(rect, None)
    assert not raw.has_physical_units
    assert raw.area_um2 is None and raw.length_um is None
    assert (raw.area, raw.area_unit, raw.length, raw.length_unit) == (1200.0, "px²", 140.0, "px")
    assert raw.describe() == "area 1200.00 px², perimeter 140.00 px (pixel size unknown)"


def test_ellipse_area_is_analytic_and_perimeter_matches_the_arc_length() -> None:
    ellipse = Annotation.ellipse(0, 0, 20, 10)  # rx 10, ry 5
    m = measure(ellipse, 2.0)
    assert m.l0_area == pytest.approx(50.0 * math.pi, rel=1e-12)
    assert m.area_um2 == pytest.approx(200.0 * math.pi, rel=1e-12)
    assert m.l0_length == pytest.approx(_exact_ellipse_perimeter(10, 5), rel=1e-7)
    circle = Annotation.ellipse(0, 0, 8, 8)
    assert circle.l0_length == pytest.approx(8 * math.pi, rel=1e-12)


def test_polygon_shoelace_with_hole_and_far_from_origin() -> None:
    triangle = [(0, 0), (30, 0), (0, 40)]
    assert Annotation.polygon(triangle).l0_area == pytest.approx(600.0)
    assert Annotation.polygon(triangle).l0_length == pytest.approx(120.0)  # 30 + 40 + 50
    holed = Annotation.polygon(triangle, [[(5, 5), (10, 5), (10, 10), (5, 10)]])
    assert holed.l0_area == pytest.approx(575.0)
    assert holed.l0_length == pytest.approx(140.0)  # the hole's edges count
    far = Annotation.freehand([(x + 1e6, y + 2e6) for x, y in triangle])
    assert far.l0_area == pytest.approx(600.0, abs=1e-6)
    m = measure(holed, 0.25)
    assert m.area_um2 == pytest.approx(575.0 / 16)


def test_ruler_and_points_measurements() -> None:
    ruler = Annotation.ruler([(0, 0), (3, 4), (3, 10)])
    m = measure(ruler, 0.25)
    assert (m.l0_area, m.l0_length) == (0.0, 11.0)
    assert m.length_um == pytest.approx(2.75)
    assert m.length_label == "length"
    assert m.describe() == "length 2.75 µm"
    assert measure(ruler, None).describe() == "length 11.00 px (pixel size unknown)"
    points = measure(Annotation.points([(1, 1), (2, 2), (3, 3)]), None)
    assert (points.count, points.l0_area, points.l0_length) == (3, 0.0, 0.0)
    assert points.describe() == "3 points"


@pytest.mark.parametrize("mpp", [0.0, -1.0, math.inf, math.nan])
def test_bad_mpp_is_refused(mpp: float) -> None:
    with pytest.raises(ValueError, match="microns per pixel"):
        measure(Annotation.points([(0, 0)]), mpp)


def test_ellipse_polygon_has_the_exact_bounding_box() -> None:
    ring = ellipse_ring(0.1, 0.3, 1234.7, 99.9)
    xs, ys = [x for x, _ in ring], [y for _, y in ring]
    assert (min(xs), min(ys), max(xs), max(ys)) == (0.1, 0.3, 1234.7, 99.9)
    assert len(ring) == 72


# -- hit testing ----------------------------------------------------------------------------


def test_hits_inside_near_outline_and_in_holes() -> None:
    ellipse = Annotation.ellipse(0, 0, 100, 50)
    assert ellipse.hit(50, 25)
    assert not ellipse.hit(3, 3)  # in the bounding box, outside the ellipse
    assert ellipse.hit(50, -2, l0_tolerance=2.5)
    holed = Annotation.polygon(
        [(0, 0), (100, 0), (100, 100), (0, 100)], [[(40, 40), (60, 40), (60, 60), (40, 60)]]
    )
    assert holed.hit(20, 20)
    assert not holed.hit(50, 50)
    assert holed.hit(50, 50, l0_tolerance=10.5)  # within reach of the hole's edge
    ruler = Annotation.ruler([(0, 0), (100, 0)])
    assert ruler.hit(50, 3, 3.0) and not ruler.hit(50, 3, 2.9)
    assert not ruler.contains(50, 0)


def test_set_picks_the_smallest_then_the_topmost() -> None:
    big = Annotation.rectangle(0, 0, 100, 100)
    small = Annotation.rectangle(40, 40, 60, 60)
    dot = Annotation.points([(50, 50)])
    aset = AnnotationSet("s", None, [small, big])  # big is on top of small
    assert aset.annotation_at(50, 50) == small
    assert aset.annotation_at(10, 10) == big
    assert aset.annotation_at(200, 200) is None
    assert aset.annotation_at(105, 50, 2.0) is None
    assert aset.annotation_at(105, 50, 6.0) == big
    aset.add(dot)
    assert aset.annotations_at(50.5, 50, 1.0) == [dot, small, big]
    twin = Annotation.rectangle(0, 0, 100, 100)
    aset.add(twin)
    assert aset.annotations_at(10, 10) == [twin, big]  # equal areas: topmost first


def test_vertex_hits_and_in_rect() -> None:
    poly = Annotation.polygon([(0, 0), (10, 0), (10, 10)])
    rect = Annotation.rectangle(100, 100, 120, 130)
    aset = AnnotationSet("s", None, [poly, rect])
    hit = aset.vertex_at(10.5, 0.5, 1.0)
    assert hit is not None
    assert (hit.annotation_id, hit.ring, hit.index, hit.l0_x, hit.l0_y) == (
        poly.id,
        0,
        1,
        10.0,
        0.0,
    )
    assert aset.vertex_at(10.5, 0.5, 0.5) is None
    corner = aset.vertex_at(121, 131, 2.0)
    assert corner is not None and (corner.ring, corner.index) == (0, 2)  # bottom-right
    assert aset.vertex_at(121, 131, 2.0, ids=[poly.id]) is None
    assert aset.in_rect(5, 5, 105, 105) == [poly, rect]
    assert aset.in_rect(-1, -1, 50, 50, fully_inside=True) == [poly]


# -- edits ------------------------------------------------------------------------------------


def test_vertex_edits_and_translation_keep_the_id() -> None:
    rect = Annotation.rectangle(0, 0, 10, 20)
    moved = rect.with_vertex(0, 2, (30, 5))  # drag bottom-right; top-left stays
    assert moved.id == rect.id and moved.l0_points == ((0.0, 0.0), (30.0, 5.0))
    flipped = rect.with_vertex(0, 0, (15, 25))  # past the opposite corner
    assert flipped.l0_points == ((10.0, 20.0), (15.0, 25.0))
    poly = Annotation.polygon([(0, 0), (10, 0), (10, 10)], [[(2, 1), (3, 1), (3, 2)]])
    assert poly.with_vertex(1, 0, (2.5, 1.5)).l0_holes == (((2.5, 1.5), (3.0, 1.0), (3.0, 2.0)),)
    assert poly.with_vertex_inserted(0, 3, (0, 10)).l0_points[-1] == (0.0, 10.0)
    assert poly.with_vertex_removed(1, 0).l0_holes == ()  # a hole below 3 vertices goes
    with pytest.raises(ValueError, match="at least 3"):
        poly.with_vertex_removed(0, 0)
    with pytest.raises(IndexError):
        poly.with_vertex(0, 3, (1, 1))
    shifted = poly.translated(5, -1)
    assert shifted.l0_points[0] == (5.0, -1.0) and shifted.l0_holes[0][0] == (7.0, 0.0)
    assert shifted.l0_area == pytest.approx(poly.l0_area)


def test_palette_keeps_one_colour_per_name() -> None:
    palette = ClassPalette()
    assert palette.names() == ["Tumour", "Stroma", "Immune cells", "Necrosis", "Other"]
    events: list[None] = []
    palette.changed.connect(lambda: events.append(None))
    palette.add(AnnotationClass("Mitosis", (1, 2, 3)))
    palette.add(AnnotationClass("Mitosis", (1, 2, 3)))  # identical: nothing happens
    with pytest.raises(ValueError, match="already exists"):
        palette.add(AnnotationClass("Mitosis", (9, 9, 9)))
    assert palette.ensure(AnnotationClass("Tumour", (0, 0, 255))) == TUMOUR
    assert len(events) == 1 and "Mitosis" in palette
