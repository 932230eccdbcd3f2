"""A slide that states bounds (MIRAX, Hamamatsu VMS): the first view, Fit (``0``) and the
overview map frame the scanned area, not the empty glass around it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from inference.core.geometry import Rect
from inference.slides.base import SlideInfo
from tests.helpers.figures import PatternSource
from viewer.qt.canvas.overview import OVERVIEW_SIDE, OverviewMap
from viewer.qt.canvas.slide_canvas import SlideCanvas
from viewer.qt.canvas.tile_bridge import TileBridge

#: Where the scan lies on a 20,000 x 12,000 px slide (a 2:1 area off its centre).
BOUNDS = Rect(6000, 3000, 8000, 4000)


class BoundedSource(PatternSource):
    """A :class:`PatternSource` whose properties state :data:`BOUNDS`, as OpenSlide
    does for a MIRAX slide."""

    def __init__(self) -> None:
        super().__init__(20_000, 12_000)
        self._info: SlideInfo = dataclasses.replace(
            self._info,
            properties={
                "openslide.bounds-x": str(int(BOUNDS.x)),
                "openslide.bounds-y": str(int(BOUNDS.y)),
                "openslide.bounds-width": str(int(BOUNDS.w)),
                "openslide.bounds-height": str(int(BOUNDS.h)),
            },
        )


@pytest.fixture
def canvas(qtbot: QtBot) -> Iterator[SlideCanvas]:
    bridge = TileBridge(cache_mb=64, n_readers=1)
    widget = SlideCanvas(bridge)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.clear_slide()
    bridge.shutdown()


def _frames_bounds(view: Rect) -> bool:
    """The view holds the bounds and touches them on the tighter axis."""
    inside = (
        view.x <= BOUNDS.x + 1e-6
        and view.y <= BOUNDS.y + 1e-6
        and view.right >= BOUNDS.right - 1e-6
        and view.bottom >= BOUNDS.bottom - 1e-6
    )
    tight = abs(view.w - BOUNDS.w) < 1e-6 or abs(view.h - BOUNDS.h) < 1e-6
    return inside and tight


def test_the_first_view_and_fit_frame_the_bounds(qtbot: QtBot, canvas: SlideCanvas) -> None:
    source = BoundedSource()
    assert source.info.l0_bounds == BOUNDS
    canvas.set_slide(source, None)
    viewport = canvas.viewport
    assert viewport.l0_center == pytest.approx(BOUNDS.center)
    assert _frames_bounds(viewport.visible_l0_rect())
    # zoom and pan away, then "0" (Fit) comes home to the bounds
    viewport.zoom_by(5.0)
    viewport.pan_by_scr(150, -80)
    assert not _frames_bounds(viewport.visible_l0_rect())
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    assert viewport.l0_center == pytest.approx(BOUNDS.center)
    assert _frames_bounds(viewport.visible_l0_rect())


def test_the_overview_shows_the_bounds_and_moves_within_them(
    qtbot: QtBot, canvas: SlideCanvas
) -> None:
    canvas.set_slide(BoundedSource(), None)
    # a whole-slide thumbnail: the bounds painted red on white glass
    thumbnail = QImage(200, 120, QImage.Format.Format_RGB32)
    thumbnail.fill(QColor(255, 255, 255))
    for y in range(30, 70):  # BOUNDS / 100
        for x in range(60, 140):
            thumbnail.setPixelColor(x, y, QColor(255, 0, 0))
    overview = OverviewMap(canvas.viewport, canvas)
    overview.set_thumbnail(thumbnail)
    overview.show()
    # the map has the bounds' 2:1 shape (the slide's is 5:3) and shows only them
    assert (overview.width(), overview.height()) == (OVERVIEW_SIDE, OVERVIEW_SIDE // 2)
    shown = overview.grab().toImage()
    corners = [(2, 2), (shown.width() - 3, 2), (2, shown.height() - 3)]
    for x, y in corners:
        assert shown.pixelColor(x, y).red() > 200 and shown.pixelColor(x, y).green() < 60
    # a click near the map's top-left corner centres the view near the bounds' corner
    # (a QPoint(0, 0) would mean "the middle" to qtbot)
    qtbot.mouseClick(overview, Qt.MouseButton.LeftButton, pos=QPoint(1, 1))
    per_px = BOUNDS.w / overview.width()
    assert canvas.viewport.l0_center == pytest.approx((BOUNDS.x + per_px, BOUNDS.y + per_px))
