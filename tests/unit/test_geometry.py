"""Coordinate conversions, level choice, tile grids, physical units."""

from __future__ import annotations

import math

import pytest

from inference.core.geometry import (
    Rect,
    TileGrid,
    ViewTransform,
    choose_level,
    is_upsampled,
    l0_to_lv,
    lv_to_l0,
    magnification_at,
    nice_length,
    patch_size_on_slide,
    scale_for_magnification,
    scan_magnification,
)

DOWNSAMPLES = (1.0, 4.000183, 16.0012, 64.01)


@pytest.mark.parametrize("value", [0.0, 1.5, 1234.0, 99_999.0])
@pytest.mark.parametrize("downsample", DOWNSAMPLES)
def test_level_round_trip(value: float, downsample: float) -> None:
    assert lv_to_l0(l0_to_lv(value, downsample), downsample) == pytest.approx(value)


def test_view_transform_round_trip() -> None:
    transform = ViewTransform(1000.0, 2000.0, 0.125)
    for scr in [(0.0, 0.0), (640.5, 480.25), (-10.0, 3000.0)]:
        assert transform.l0_to_scr(*transform.scr_to_l0(*scr)) == pytest.approx(scr)
    rect = Rect(1000, 2000, 800, 400)
    assert transform.l0_rect_to_scr(rect) == Rect(0, 0, 100, 50)
    assert transform.scr_rect_to_l0(transform.l0_rect_to_scr(rect)) == rect


@pytest.mark.parametrize(
    ("l0_per_scr", "expected"),
    [
        (0.25, 0),
        (1.0, 0),
        (3.99, 0),
        (4.0, 1),
        (10.0, 1),
        (16.0, 2),
        (63.0, 2),
        (64.0, 3),
        (500.0, 3),
    ],
)
def test_choose_level_is_coarsest_with_a_data_pixel_per_screen_pixel(
    l0_per_scr: float, expected: int
) -> None:
    assert choose_level(DOWNSAMPLES, l0_per_scr) == expected


def test_tile_grid_edges_and_order() -> None:
    grid = TileGrid(1000, 600, 256)
    assert (grid.t_cols, grid.t_rows) == (4, 3)
    assert grid.tile_lv_rect(3, 2) == (768, 512, 232, 88)
    tiles = grid.tiles_in_lv_rect(Rect(300, 300, 400, 100))
    assert set(tiles) == {(1, 1), (2, 1)}
    everything = grid.tiles_in_lv_rect(Rect(-50, -50, 2000, 2000))
    assert len(everything) == 12
    # nearest the rectangle's centre comes first
    centre = grid.tiles_in_lv_rect(Rect(0, 0, 1000, 600))[0]
    assert centre in {(1, 1), (2, 1)}
    assert grid.tiles_in_lv_rect(Rect(2000, 2000, 10, 10)) == []


def test_rect_intersection() -> None:
    assert Rect(0, 0, 10, 10).intersect(Rect(5, 5, 10, 10)) == Rect(5, 5, 5, 5)
    assert Rect(0, 0, 10, 10).intersect(Rect(20, 20, 1, 1)).is_empty()
    assert Rect(0.5, 0.5, 1.0, 1.0).to_int() == (0, 0, 2, 2)


def test_nice_length() -> None:
    assert nice_length(163.0) == 100.0
    assert nice_length(260.0) == 200.0
    assert nice_length(0.7) == 0.5
    assert nice_length(5000.0) == 5000.0
    assert nice_length(0.0) == 0.0


def test_magnification_from_mpp_and_objective() -> None:
    assert magnification_at(1.0, 0.25, None) == pytest.approx(40.0)
    assert magnification_at(0.5, 0.5, 20.0) == pytest.approx(10.0)
    assert magnification_at(0.5, None, 40.0) == pytest.approx(20.0)
    assert magnification_at(1.0, None, None) is None
    for mag in (1.25, 5, 10, 20, 40):
        scale = scale_for_magnification(mag, 0.499, 20)
        assert scale is not None
        assert magnification_at(scale, 0.499, 20) == pytest.approx(mag)


def test_a_view_above_the_scans_magnification_is_upsampled() -> None:
    assert scan_magnification(0.499, 20.0) == 20.0  # the stated objective first
    assert scan_magnification(0.25, None) == pytest.approx(40.0)
    assert scan_magnification(None, None) is None
    assert is_upsampled(40.0, 0.499, 20.0)  # a 40x preset on a 20x scan
    assert not is_upsampled(20.0, 0.499, 20.0)
    assert not is_upsampled(40.0, 0.2527, None)  # a 40x scan at "40x" (39.6x)
    assert is_upsampled(80.0, 0.2527, 40.0)
    assert not is_upsampled(400.0, None, None)  # unknown: never claimed


def test_patch_size_on_slide() -> None:
    assert patch_size_on_slide(224, 0.5, 0.25) == 448
    assert patch_size_on_slide(350, 0.25, 0.499) == 175
    with pytest.raises(ValueError):
        patch_size_on_slide(224, 0.5, 0.0)
    assert math.isclose(patch_size_on_slide(224, 0.5, 0.5), 224)
