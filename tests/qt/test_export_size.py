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
