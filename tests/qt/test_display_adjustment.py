"""Brightness, contrast and gamma: the canvas shows the slide through one lookup table,
without reading the slide again, and figures show and record the same."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from viewer.export.figure import compose_view
from viewer.export.scene import FigureOptions
from viewer.qt.canvas.tile_bridge import DecodedTile
from viewer.qt.main_window import MainWindow
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment
from viewer.tiles.keys import TileKey

ADJUSTED = DisplayAdjustment(brightness=0.1, contrast=1.4, gamma=0.7)


def _at_level_scale(qtbot: QtBot, window: MainWindow, *, corner: bool = False) -> None:
    """Level 1 at its own scale, on whole level pixels: each slide pixel of it is one
    screen pixel, so screen, figure and lookup table can be compared pixel for pixel.
    ``corner``: the slide's bottom-right corner in the middle of the view (glass
    beside and below it), else the view inside the slide."""
    canvas = window.canvas
    window.overview.hide()
    canvas.show_scale_bar = False
    canvas.viewport.set_scale(0.25)
    scr_w, scr_h = canvas.viewport.scr_size
    l0_x, l0_y = (4096 - 2 * scr_w, 3072 - 2 * scr_h) if corner else (1024, 512)
    l0_x, l0_y = l0_x // 4 * 4, l0_y // 4 * 4  # whole level-1 pixels
    canvas.viewport.center_on(l0_x + scr_w / 2 / 0.25, l0_y + scr_h / 2 / 0.25)
    transform = canvas.viewport.transform()
    assert (transform.l0_x, transform.l0_y) == pytest.approx((l0_x, l0_y))
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    assert window.bridge.scheduler.wait_idle(TIMEOUT_MS / 1000)  # prefetched tiles too
    _wait_painted(qtbot, window)


def _on_slide(window: MainWindow, rgb: np.ndarray) -> np.ndarray:
    """The part of a grab that shows the slide (the glass around it is not adjusted)."""
    assert window.current is not None
    l0_w, l0_h = window.current.source.info.dimensions
    t = window.canvas.viewport.transform()
    x1, y1 = t.l0_to_scr(l0_w, l0_h)
    return rgb[: int(y1) - 1, : int(x1) - 1]


def _wait_painted(qtbot: QtBot, window: MainWindow) -> None:
    before = window.canvas.paint_count
    window.canvas.update()
    qtbot.waitUntil(lambda: window.canvas.paint_count > before, timeout=TIMEOUT_MS)


def test_the_canvas_shows_the_slide_through_the_lookup_table_without_reading_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _at_level_scale(qtbot, window, corner=True)
    plain = grab(window)
    loaded = window.bridge.scheduler.stats.loaded
    window.display.model.set(ADJUSTED)
    _wait_painted(qtbot, window)
    adjusted = grab(window)
    slide = _on_slide(window, plain)
    assert slide.shape[0] > 150 and slide.shape[1] > 150
    assert np.array_equal(_on_slide(window, adjusted), ADJUSTED.lut()[slide])
    assert np.array_equal(adjusted[-5:], plain[-5:])  # the glass around it is not
    assert (plain[-5:] == (48, 50, 54)).all()
    assert np.array_equal(adjusted[:, -5:], plain[:, -5:])
    assert window.bridge.scheduler.stats.loaded == loaded  # no tile read again
    # reset: the slide as scanned, still without reading
    window.display.model.reset()
    _wait_painted(qtbot, window)
    assert np.array_equal(grab(window), plain)
    assert window.bridge.scheduler.stats.loaded == loaded


def test_tiles_read_while_adjusted_show_adjusted_and_are_cached_once(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    window.display.model.set(ADJUSTED)
    open_slide_in(qtbot, window, synthetic_slide)
    assert window.display.adjustment == NEUTRAL  # a new slide starts as scanned
    window.display.model.set(ADJUSTED)
    _at_level_scale(qtbot, window, corner=True)  # tiles read under the adjustment
    adjusted = grab(window)
    cache = window.bridge.cache
    # the tile cache keeps each tile once, as read: its budget holds as many tiles
    assert all(
        isinstance(tile, DecodedTile) and tile.nbytes == tile.image.sizeInBytes()
        for tile in (cache.peek(key) for key in _visible_keys(window))
    )
    cached_bytes = cache.nbytes
    window.display.model.reset()
    _wait_painted(qtbot, window)
    plain = grab(window)
    assert np.array_equal(_on_slide(window, adjusted), ADJUSTED.lut()[_on_slide(window, plain)])
    assert cache.nbytes == cached_bytes


def _visible_keys(window: MainWindow) -> list[TileKey]:
    plan = window.canvas.plan
    assert plan is not None and window.current is not None
    source_id = window.current.source.info.source_id
    return [TileKey(source_id, plan.level, c, r) for c, r in plan.visible]


def test_the_figure_is_what_the_canvas_shows_and_says_so(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _at_level_scale(qtbot, window)
    window.display.model.set(ADJUSTED)
    _wait_painted(qtbot, window)
    canvas = window.canvas
    assert window.current is not None
    shown = grab(window)
    figure = compose_view(
        window.current.source,
        canvas.layers,
        canvas.viewport.transform(),
        (canvas.width(), canvas.height()),
        show_scale_bar=False,
        show_legend=False,
        pixel_ratio=canvas.devicePixelRatioF(),
        adjustment=canvas.adjustment,
    )
    assert np.abs(figure.astype(int) - shown.astype(int)).max() <= 1
    # the window's own export records it
    exports = window.exports
    path = tmp_path / "view.png"
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.write(exports.view_compositor(FigureOptions(), 1.0), path)
    doc = json.loads(path.with_name("view.png.json").read_text("utf-8"))
    recorded = doc["slide"]["display_adjustment"]
    assert (recorded["brightness"], recorded["contrast"], recorded["gamma"]) == pytest.approx(
        (0.1, 1.4, 0.7)
    )
    assert DisplayAdjustment.from_dict(recorded) == ADJUSTED


def test_the_panel_the_menu_and_the_status_note(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    display = window.display
    view_actions = [a.text() for a in window.menus.view_menu.actions()]
    assert "&Display adjustment…" in view_actions
    assert "&Reset display adjustment" in view_actions
    assert not display.dock.isVisible()
    display.show_action.trigger()
    assert display.dock.isVisible()
    assert not display.reset_action.isEnabled() and not display.note.isVisible()

    display.panel.brightness.setValue(20)
    display.panel.contrast.setValue(100)  # log2 steps of 1/100: x2
    assert window.canvas.adjustment == DisplayAdjustment(0.2, 2.0, 1.0)
    assert display.note.isVisible() and "brightness +20 %" in display.note.text()
    assert display.panel.values["contrast"].text() == "2.00"
    assert display.reset_action.isEnabled()
    display.reset_action.trigger()
    assert window.canvas.adjustment == NEUTRAL
    assert display.panel.brightness.value() == 0 and display.panel.contrast.value() == 0
    assert not display.note.isVisible()


def test_adjusted_copies_are_made_once_within_their_budget() -> None:
    from viewer.qt.canvas.adjusted_tiles import AdjustedTiles

    rng = np.random.default_rng(1)
    tiles = [DecodedTile(rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)) for _ in range(6)]
    keys = [TileKey("s", 0, i, 0) for i in range(6)]
    copies = AdjustedTiles(capacity_bytes=4 * 256 * 256 * 4)  # four tiles' worth
    first = copies.image(keys[0], tiles[0], ADJUSTED)
    assert copies.image(keys[0], tiles[0], ADJUSTED) is first and copies.made == 1
    for key, tile in zip(keys, tiles, strict=True):
        copies.image(key, tile, ADJUSTED)
    assert len(copies) == 4 and copies.nbytes == 4 * 256 * 256 * 4  # oldest evicted
    # a copy is of its tile's pixels through the table
    shown = copies.image(keys[5], tiles[5], ADJUSTED)
    assert shown.pixelColor(3, 7).red() == ADJUSTED.lut()[tiles[5].pixels[7, 3, 2]]
    # a new decode of the same key (re-read after eviction) gets a new copy
    again = DecodedTile(tiles[5].pixels.copy())
    assert copies.image(keys[5], again, ADJUSTED) is not shown
    # copies do not keep evicted tiles alive
    gone = DecodedTile(tiles[4].pixels.copy())
    copies.image(TileKey("s", 0, 9, 9), gone, ADJUSTED)
    probe = weakref.ref(gone)
    del gone
    gc.collect()
    assert probe() is None
    # none, or another adjustment, forgets them
    assert copies.image(keys[1], tiles[1], NEUTRAL) is tiles[1].image
    assert len(copies) == 0 and copies.nbytes == 0
