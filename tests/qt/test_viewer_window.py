"""The viewer window offscreen: open, pan, zoom, grab; bad files; no reads on the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from pytestqt.qtbot import QtBot

from inference.slides import SlideSource, open_slide
from tests.qt.qt_helpers import TIMEOUT_MS
from tests.qt.qt_helpers import grab as _grab
from tests.qt.qt_helpers import open_slide_in as _open
from tests.qt.qt_helpers import tissue_fraction as _tissue_fraction
from viewer.qt.controllers import slide_opener
from viewer.qt.main_window import MainWindow


def test_open_shows_tissue_not_blank(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _open(qtbot, window, synthetic_slide)
    qtbot.wait(50)
    grab = _grab(window)
    assert _tissue_fraction(grab) > 0.1
    assert window.overview.isVisible()
    assert "synthetic.tiff" in window.windowTitle()


def test_pan_and_zoom_change_the_view_and_show_tissue(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _open(qtbot, window, synthetic_slide)
    canvas = window.canvas
    viewport = canvas.viewport
    scale0 = viewport.scale
    # wheel zoom about a point keeps that point fixed
    anchor = QPointF(600, 300)
    before = viewport.transform().scr_to_l0(anchor.x(), anchor.y())
    wheel = QWheelEvent(
        anchor,
        canvas.mapToGlobal(anchor),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    canvas.wheelEvent(wheel)
    assert viewport.scale == pytest.approx(scale0 * 1.25**2)
    assert viewport.transform().scr_to_l0(anchor.x(), anchor.y()) == pytest.approx(before)
    # keyboard zoom and pan
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert viewport.scale > scale0 * 1.25**2
    centre = viewport.l0_center
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    assert viewport.l0_center[0] > centre[0]
    # drag pans with the mouse
    centre = viewport.l0_center
    press = QMouseEvent(
        QMouseEvent.Type.MouseButtonPress,
        QPointF(500, 400),
        QPointF(500, 400),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    move = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        QPointF(400, 350),
        QPointF(400, 350),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    release = QMouseEvent(
        QMouseEvent.Type.MouseButtonRelease,
        QPointF(400, 350),
        QPointF(400, 350),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    canvas.mousePressEvent(press)
    canvas.mouseMoveEvent(move)
    canvas.mouseReleaseEvent(release)
    expected_dx = 100 / viewport.scale
    assert viewport.l0_center[0] == pytest.approx(centre[0] + expected_dx)
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    qtbot.wait(50)
    # zoomed in on the slide's middle: the grab shows stained tissue
    info = window.current.source.info if window.current else None
    assert info is not None
    viewport.center_on(info.dimensions[0] / 2, info.dimensions[1] / 2)
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    qtbot.wait(50)
    assert _grab(window).std() > 5


def test_status_bar_and_magnification_presets(
    qtbot: QtBot, window: MainWindow, aperio_slide: Path
) -> None:
    _open(qtbot, window, aperio_slide)
    window.set_magnification(20.0)
    # a 20x slide at 20x: one slide pixel per device pixel (on a HiDPI screen too)
    assert window.canvas.viewport.dev_scale == pytest.approx(1.0, rel=0.01)
    assert window.magnification_label.text() == "20.0x"
    # a 20x scan: the 40x preset says it only enlarges the pixels, here and in the status
    labels = {a.text(): a.toolTip() for a in window.menus.magnification_actions}
    assert list(labels) == ["1.25x", "5x", "10x", "20x", "40x (upsampled)"]
    assert "scanned at 20x" in labels["40x (upsampled)"]
    window.set_magnification(40.0)
    assert window.magnification_label.text() == "40.0x (upsampled)"
    window.set_magnification(20.0)
    window.canvas.cursor_moved.emit(100.0, 200.0)
    assert "x 100  y 200 px" in window.cursor_label.text()
    assert "µm" in window.cursor_label.text()
    dialog = window.show_properties()
    assert dialog is not None
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert {"Summary", "Label", "Macro", "Thumbnail"} <= set(tabs)
    dialog.close()


def test_bad_file_shows_message_and_keeps_the_open_slide(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    _open(qtbot, window, synthetic_slide)
    current = window.current
    bad = tmp_path / "notes.svs"
    bad.write_text("not a slide")
    window.open_path(bad)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=TIMEOUT_MS)
    assert "notes.svs" in (window.last_error or "")
    assert window.current is current
    assert window._error_box is not None and window._error_box.isVisible()
    window._error_box.close()
    assert window.canvas.source is current.source if current else False
    # still usable: pan works and the grab is still tissue
    window.canvas.viewport.zoom_by(1.5)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)


def test_no_slide_read_runs_on_the_gui_thread(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gui_thread = threading.main_thread()
    reads_on_gui: list[str] = []
    reads_elsewhere: list[str] = []

    class WatchedSource:
        """The real source, noting the thread of every read."""

        def __init__(self, inner: SlideSource) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> object:
            attr = getattr(self._inner, name)
            if name in {"read_region", "read_region_bgrx", "thumbnail", "associated_image"}:

                def watched(*args: object) -> object:
                    target = (
                        reads_on_gui
                        if threading.current_thread() is gui_thread
                        else reads_elsewhere
                    )
                    target.append(name)
                    return attr(*args)

                return watched
            return attr

        @property
        def info(self) -> object:
            return self._inner.info

    monkeypatch.setattr(slide_opener, "open_slide", lambda path: WatchedSource(open_slide(path)))
    _open(qtbot, window, synthetic_slide)
    viewport = window.canvas.viewport
    for _ in range(5):
        viewport.zoom_by(1.6)
        viewport.pan_by_scr(120, 40)
        qtbot.wait(20)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    window.show_properties()
    assert reads_on_gui == []
    # tiles are read as BGRX (the display layout), the overview from the thumbnail
    assert "read_region_bgrx" in reads_elsewhere and "thumbnail" in reads_elsewhere


def test_overview_click_moves_the_view(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _open(qtbot, window, synthetic_slide)
    window.canvas.viewport.zoom_by(4.0)
    overview = window.overview
    qtbot.mouseClick(
        overview, Qt.MouseButton.LeftButton, pos=QPoint(overview.width() - 5, overview.height() - 5)
    )
    l0_w, l0_h = window.canvas.viewport.l0_size
    cx, cy = window.canvas.viewport.l0_center
    assert cx > 0.9 * l0_w and cy > 0.9 * l0_h


def test_recent_files_remember_opened_slides(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _open(qtbot, window, synthetic_slide)
    assert window.settings.recent_files[0] == str(synthetic_slide.resolve())


def test_a_wrong_settings_file_is_said_in_the_status_bar(qtbot: QtBot, tmp_path: Path) -> None:
    import json

    from tests.qt.conftest import forget_unsaved_annotations
    from viewer.settings import load_settings

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"result_cache_mb": "lots"}))
    win = MainWindow(load_settings(path))
    qtbot.addWidget(win, before_close_func=forget_unsaved_annotations)
    message = win.statusBar().currentMessage()
    assert str(path) in message and "result_cache_mb" in message
