"""The viewport model and the view planner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from inference.core.geometry import Rect
from inference.slides.base import SlideInfo
from viewer.tiles.planner import TileGridSet, coarse_level_for, plan_view
from viewer.tiles.viewport import MAX_SCALE, ViewportModel


def _viewport() -> ViewportModel:
    viewport = ViewportModel(100_000, 80_000)
    viewport.resize(1600, 1000)
    viewport.fit()
    return viewport


def test_fit_shows_the_whole_slide() -> None:
    viewport = _viewport()
    view = viewport.visible_l0_rect()
    assert view.x <= 0 and view.y <= 0
    assert view.right >= 100_000 and view.bottom >= 80_000


def test_zoom_keeps_the_point_under_the_cursor() -> None:
    viewport = _viewport()
    anchor = (1200.0, 300.0)
    before = viewport.transform().scr_to_l0(*anchor)
    viewport.zoom_by(3.7, anchor)
    assert viewport.transform().scr_to_l0(*anchor) == pytest.approx(before)


def test_zoom_is_bounded() -> None:
    viewport = _viewport()
    viewport.set_scale(1e6)
    assert viewport.scale == MAX_SCALE
    viewport.set_scale(1e-9)
    assert viewport.scale == pytest.approx(viewport.min_scale())


def test_pan_moves_content_with_the_drag_and_stays_on_the_slide() -> None:
    viewport = _viewport()
    viewport.set_scale(1.0)
    cx, cy = viewport.l0_center
    viewport.pan_by_scr(100, -50)
    assert viewport.l0_center == pytest.approx((cx - 100, cy + 50))
    viewport.pan_by_scr(1e9, 1e9)
    assert viewport.l0_center == (0.0, 0.0)


def test_changed_event_fires() -> None:
    viewport = _viewport()
    calls: list[int] = []
    viewport.changed.connect(lambda: calls.append(1))
    viewport.zoom_by(2.0)
    viewport.pan_by_scr(10, 0)
    assert len(calls) == 2


def _info() -> SlideInfo:
    dims = tuple((100_000 // 4**i, 80_000 // 4**i) for i in range(4))
    return SlideInfo(
        path=Path("x.svs"),
        source_id="abc",
        vendor="test",
        level_dimensions=dims,
        level_downsamples=(1.0, 4.0, 16.0, 64.0),
        mpp=0.25,
        objective_power=40.0,
    )


def test_plan_asks_for_coarse_then_visible_then_margin() -> None:
    info = _info()
    grids = TileGridSet(info)
    viewport = ViewportModel(*info.dimensions)
    viewport.resize(1600, 1000)
    viewport.set_scale(0.3)  # 3.3 level-0 px per screen px: display level 1 (2x) is sharp
    plan = plan_view(grids, viewport.transform(), 1600, 1000)
    assert grids.downsamples[:4] == (1.0, 2.0, 4.0, 8.0)
    assert plan.level == 1
    assert plan.coarse_level == coarse_level_for(grids, 1) == 3
    view = viewport.visible_l0_rect()
    for t_col, t_row in plan.visible:
        tile = grids.tile_l0_rect(plan.level, t_col, t_row)
        assert not tile.intersect(view).is_empty()
    assert not set(plan.prefetch) & set(plan.visible)
    assert len(plan.coarse_visible) < len(plan.visible)


def test_covering_tile() -> None:
    grids = TileGridSet(_info())
    assert grids.covering_tile(4, 16 * 256 * 3 + 5, 10) == (3, 0)  # display level 4 = 16x
    assert grids.tile_l0_rect(2, 0, 0) == Rect(0, 0, 1024, 1024)


def test_display_levels_fill_the_gaps_of_a_4x_pyramid() -> None:
    grids = TileGridSet(_info())
    levels = grids.levels
    # stored levels are used as they are; in-between levels shrink the finer one by 2
    assert [(lv.source_level, lv.shrink) for lv in levels[:5]] == [
        (0, 1.0),
        (0, 2.0),
        (1, 1.0),
        (1, 2.0),
        (2, 1.0),
    ]
    assert (
        max(levels[-1].width, levels[-1].height) <= 256 < max(levels[-2].width, levels[-2].height)
    )
    level, (lv_x, lv_y, lv_w, lv_h), size = grids.source_region(1, 2, 1)
    assert level == 0 and (lv_x, lv_y, lv_w, lv_h) == (1024, 512, 512, 512) and size == (256, 256)
    # the last column of a display level reads exactly to the slide's edge
    grid = grids.grid(3)
    level, (lv_x, _, lv_w, _), (w, _) = grids.source_region(3, grid.t_cols - 1, 0)
    assert level == 1 and lv_x + lv_w == 25_000 and w == grid.lv_width - (grid.t_cols - 1) * 256


# -- HiDPI screens: levels and "1:1" per device pixel -----------------------------------


def test_a_hidpi_screen_reads_the_level_its_device_pixels_need() -> None:
    """At 2 level-0 px per logical px a 2x screen shows one level-0 px per device px:
    it needs level 0, not the 2x level a classic screen reads."""
    grids = TileGridSet(_info())
    viewport = ViewportModel(*_info().dimensions)
    viewport.resize(800, 500)
    viewport.set_scale(0.5)
    classic = plan_view(grids, viewport.transform(), 800, 500)
    hidpi = plan_view(grids, viewport.transform(), 800, 500, dev_per_scr=2.0)
    assert grids.downsamples[classic.level] == 2.0
    assert grids.downsamples[hidpi.level] == 1.0
    # the same tiles of the view are asked for, at the sharper level
    view = viewport.visible_l0_rect()
    for t_col, t_row in hidpi.visible:
        assert not grids.tile_l0_rect(hidpi.level, t_col, t_row).intersect(view).is_empty()


def test_dev_scale_counts_device_pixels() -> None:
    viewport = _viewport()
    calls: list[int] = []
    viewport.changed.connect(lambda: calls.append(1))
    viewport.set_scale(0.8)
    view = viewport.visible_l0_rect()
    viewport.set_device_pixel_ratio(2.0)
    assert calls == [1, 1]  # the level to read changed
    # the widget keeps its logical size: the same part of the slide stays on screen
    assert viewport.visible_l0_rect() == view
    assert viewport.dev_scale == pytest.approx(1.6)
    viewport.set_dev_scale(1.0)  # "1:1": one slide pixel per device pixel
    assert viewport.scale == pytest.approx(0.5)
    assert viewport.dev_scale == pytest.approx(1.0)
    viewport.set_dev_scale(1e6)
    assert viewport.dev_scale == pytest.approx(MAX_SCALE)
    viewport.set_device_pixel_ratio(float("nan"))  # ignored
    assert viewport.device_pixel_ratio == 2.0


# -- slides that state bounds -----------------------------------------------------------


def _bounded_info(**bounds: str) -> SlideInfo:
    properties = {f"openslide.bounds-{k}": v for k, v in bounds.items()}
    return dataclasses.replace(_info(), properties=properties)


def test_stated_bounds_are_the_l0_bounds() -> None:
    info = _bounded_info(x="20000", y="15000", width="50000", height="30000")
    assert info.l0_bounds == Rect(20000, 15000, 50000, 30000)


@pytest.mark.parametrize(
    "bounds",
    [
        {},  # none stated
        {"x": "20000", "y": "15000", "width": "50000"},  # one missing
        {"x": "20000", "y": "15000", "width": "50000", "height": "3e4"},  # not an integer
        {"x": "20000", "y": "15000", "width": "0", "height": "30000"},  # empty
        {"x": "-1", "y": "15000", "width": "50000", "height": "30000"},  # outside
        {"x": "60000", "y": "15000", "width": "50000", "height": "30000"},  # past the edge
    ],
)
def test_missing_or_invalid_bounds_are_the_whole_slide(bounds: dict[str, str]) -> None:
    assert _bounded_info(**bounds).l0_bounds == Rect(0, 0, 100_000, 80_000)


def test_fit_frames_the_bounds_and_the_view_stays_on_them() -> None:
    bounds = Rect(20000, 15000, 50000, 30000)
    viewport = ViewportModel()
    viewport.resize(1600, 1000)
    viewport.zoom_by(3.0)
    viewport.set_slide_size(100_000, 80_000, bounds)
    assert viewport.l0_center == bounds.center
    assert viewport.scale == pytest.approx(min(1600 / 50000, 1000 / 30000))
    view = viewport.visible_l0_rect()
    assert view.x == pytest.approx(bounds.x) and view.right == pytest.approx(bounds.right)
    assert view.y <= bounds.y and view.bottom >= bounds.bottom
    viewport.pan_by_scr(1e9, 1e9)  # the centre stops at the bounds, not the slide
    assert viewport.l0_center == (bounds.x, bounds.y)
    viewport.zoom_by(4.0)
    viewport.fit()
    assert viewport.l0_center == bounds.center
