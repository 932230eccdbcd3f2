"""Export region: a figure larger than a figure needs is written only after a yes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog
from pytestqt.qtbot import QtBot

import viewer.export.compositor as compositor
from inference.core.geometry import Rect
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.qt.controllers import export as export_controller
from viewer.qt.main_window import MainWindow


def test_a_large_region_figure_asks_first(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    # the dialog's default keeps a region within 4,000 px; call that large here
    monkeypatch.setattr(compositor, "LARGE_FIGURE_PIXELS", 1000 * 1000)
    monkeypatch.setattr(
        export_controller.FigureDialog, "exec", lambda _self: QDialog.DialogCode.Accepted
    )
    target = tmp_path / "region.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    asked: list[tuple[int, int]] = []
    answer = [False]

    def confirm(_parent: object, width: int, height: int) -> bool:
        asked.append((width, height))
        return answer[0]

    monkeypatch.setattr(export_controller, "confirm_large_figure", confirm)
    exports = window.exports
    region = Rect(0, 0, 2048, 2048)  # at the slide's 0.5 µm/px: 2,048 x 2,048 px
    exports._export_region_of(region)
    assert asked == [(2048, 2048)]
    assert not exports.busy and not target.exists()  # "no": nothing written

    answer[0] = True
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports._export_region_of(region)
    assert len(asked) == 2
    assert exports.last_error is None and target.is_file()

    # a figure within the limit is not asked about
    monkeypatch.setattr(compositor, "LARGE_FIGURE_PIXELS", 100_000_000)
    target.unlink()
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports._export_region_of(region)
    assert len(asked) == 2 and target.is_file()


def test_a_figure_being_written_finishes_after_its_slide_is_closed(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    from viewer.export.figure import ExportResult
    from viewer.export.scene import FigureOptions

    open_slide_in(qtbot, window, synthetic_slide)
    exports = window.exports
    source = exports.opened.source if exports.opened is not None else None
    assert source is not None
    compositor = exports.view_compositor(FigureOptions(), 4.0)  # a large figure: slow
    results: list[object] = []
    exports.finished.connect(results.append)
    exports.write(compositor, tmp_path / "view.png")
    window.close_slide()  # while it is written
    assert exports.busy or results  # nothing cancelled it
    qtbot.waitUntil(lambda: bool(results), timeout=TIMEOUT_MS * 3)
    (result,) = results
    assert isinstance(result, ExportResult), result
    assert result.path.is_file() and (result.width, result.height) == (
        compositor.width,
        compositor.height,
    )
    # and the slide is closed once the figure no longer reads it
    qtbot.waitUntil(lambda: source._gate.closed, timeout=TIMEOUT_MS)  # type: ignore[attr-defined]
