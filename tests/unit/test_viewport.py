"""The viewport model and the view planner."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.geometry import Rect
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
    viewport.set_scale(0.3)  # 3.3 level-0 px per screen px: level 0 is the coarsest sharp one
    plan = plan_view(grids, viewport.transform(), 1600, 1000)
    assert plan.level == 0
    assert plan.coarse_level == coarse_level_for(info, 0) == 1
    view = viewport.visible_l0_rect()
    for t_col, t_row in plan.visible:
        tile = grids.tile_l0_rect(plan.level, t_col, t_row)
        assert not tile.intersect(view).is_empty()
    assert not set(plan.prefetch) & set(plan.visible)
    assert len(plan.coarse_visible) < len(plan.visible)


def test_covering_tile() -> None:
    grids = TileGridSet(_info())
    assert grids.covering_tile(2, 16 * 256 * 3 + 5, 10) == (3, 0)
    assert grids.tile_l0_rect(1, 0, 0) == Rect(0, 0, 1024, 1024)
