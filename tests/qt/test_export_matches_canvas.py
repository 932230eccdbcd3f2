"""The exported view is the canvas: the compositor's picture of a view equals a grab of
the canvas showing it (offscreen), for slide pixels, heatmaps and legends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from tests.helpers.figures import result_grid
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from viewer.annotations import Annotation, AnnotationClass
from viewer.export.figure import compose_view
from viewer.export.scale_bar_render import MAX_BAR_PX, scale_bar_spec
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.main_window import MainWindow


def _heatmap() -> HeatmapLayer:
    rng = np.random.default_rng(5)
    probs = rng.random((12, 16))
    probs[rng.random((12, 16)) < 0.2] = np.nan  # some patches not computed
    return HeatmapLayer("Tumour model", result_grid(probs, 256), opacity=0.6)


def _show(qtbot: QtBot, window: MainWindow, scale: float, l0_x: float, l0_y: float) -> None:
    """Put the view's top-left corner at level-0 ``(l0_x, l0_y)`` at ``scale``; wait
    for sharp tiles."""
    canvas = window.canvas
    scr_w, scr_h = canvas.viewport.scr_size
    canvas.viewport.set_scale(scale)
    canvas.viewport.center_on(l0_x + scr_w / 2 / scale, l0_y + scr_h / 2 / scale)
    transform = canvas.viewport.transform()
    assert transform.scale == pytest.approx(scale)
    assert (transform.l0_x, transform.l0_y) == pytest.approx((l0_x, l0_y))
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)


def _export_of(window: MainWindow, *, legend: bool) -> np.ndarray:
    """The view exported at the screen's device pixel ratio (what "copy view" does):
    the same pixels as a grab of the canvas, on a HiDPI screen too."""
    canvas = window.canvas
    assert window.current is not None
    return compose_view(
        window.current.source,
        canvas.layers,
        canvas.viewport.transform(),
        (canvas.width(), canvas.height()),
        show_scale_bar=False,
        show_legend=legend,
        pixel_ratio=canvas.devicePixelRatioF(),
    )


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


@pytest.fixture
def shown(qtbot: QtBot, window: MainWindow, synthetic_slide: Path) -> MainWindow:
    open_slide_in(qtbot, window, synthetic_slide)
    window.overview.hide()  # a child widget over the canvas: in grabs, not in exports
    window.canvas.show_scale_bar = False
    window.canvas.layers.append(_heatmap())
    return window


def test_a_view_at_a_levels_scale_is_the_canvas(qtbot: QtBot, shown: MainWindow) -> None:
    """At a level's own scale both show the level's pixels 1:1: equal up to Qt's
    rounding when blending the heatmap (and legend) at their opacity."""
    _show(qtbot, shown, 0.25, 1024.0, 512.0)  # level 1, whole level pixels
    canvas = grab(shown)
    export = _export_of(shown, legend=True)
    diff = _diff(canvas, export)
    assert diff.max() <= 3, f"max difference {diff.max()}"
    # a figure one pixel off would not pass: the test can fail
    assert _diff(canvas[:, 1:], export[:, :-1]).max() > 20


def test_a_view_between_levels_matches_within_filtering(qtbot: QtBot, shown: MainWindow) -> None:
    """Between levels the canvas scales tiles bilinearly while exports average areas:
    the pictures agree except for fine texture."""
    layer = next(lay for lay in shown.canvas.layers if isinstance(lay, HeatmapLayer))
    layer.interpolation = "smooth"
    _show(qtbot, shown, 0.37, 1000.3, 700.7)
    canvas = grab(shown)
    export = _export_of(shown, legend=True)
    diff = _diff(canvas, export)
    assert diff.mean() < 3.0, f"mean difference {diff.mean():.2f}"
    assert np.percentile(diff, 99) < 40
    shifted = _diff(canvas[:, 3:], export[:, :-3])
    assert shifted.mean() > 2 * diff.mean()  # misplacement would show


def test_annotations_look_the_same_on_screen_and_in_the_figure(
    qtbot: QtBot, shown: MainWindow
) -> None:
    """The window's annotation layer, as the canvas paints it and as exported: the
    outlines, fills, points and rulers cover the same pixels."""
    annotations = shown.annotations.annotations
    for layer in [lay for lay in shown.canvas.layers if isinstance(lay, HeatmapLayer)]:
        shown.canvas.layers.remove(layer)
    red = AnnotationClass("Red marks", (200, 0, 0))  # a class of its own: pure red
    annotations.add(Annotation.rectangle(1300, 700, 1900, 1100, classification=red))
    annotations.add(Annotation.ellipse(1200, 1300, 1700, 1700, classification=red))
    annotations.add(
        Annotation.polygon([(2000, 800), (2600, 900), (2300, 1500)], classification=red)
    )
    annotations.add(Annotation.points([(2800, 1000), (2900, 1100)], classification=red))
    annotations.add(Annotation.ruler([(1200, 2000), (2200, 2300)], classification=red))
    _show(qtbot, shown, 0.25, 1024.0, 512.0)
    qtbot.wait(50)
    canvas = grab(shown)
    export = _export_of(shown, legend=True)
    assert _diff(canvas, export).mean() < 1.5

    def strokes(rgb: np.ndarray) -> np.ndarray:
        r, g, b = (rgb[..., k].astype(int) for k in range(3))
        return (r > 150) & (g < 60) & (b < 60)  # pure annotation red, not tissue

    on_screen, in_figure = strokes(canvas), strokes(export)
    assert on_screen.sum() > 1000
    overlap = (on_screen & in_figure).sum() / (on_screen | in_figure).sum()
    assert overlap > 0.75, f"stroke pixels overlap {overlap:.2f}"


def test_the_canvas_draws_the_shared_scale_bar(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    """The canvas shows the Qt-free scale bar that figures get: same length in (device)
    pixels."""
    open_slide_in(qtbot, window, synthetic_slide)
    ratio = window.canvas.devicePixelRatioF()
    for scale in (0.1, 0.37, 1.0):
        window.canvas.viewport.set_scale(scale)
        qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
        spec = scale_bar_spec(1.0 / (scale * ratio), 0.5, MAX_BAR_PX * ratio)
        assert spec is not None
        corner = grab(window)[-round(80 * ratio) :, : round(260 * ratio)].astype(int)
        ink = (np.abs(corner - 20) <= 12).all(axis=2)
        longest = max(_longest_run(row) for row in ink)
        assert abs(longest - spec.bar_px) <= 1.0, (scale, longest, spec.bar_px)


def _longest_run(row: np.ndarray) -> int:
    best = run = 0
    for value in row:
        run = run + 1 if value else 0
        best = max(best, run)
    return best
