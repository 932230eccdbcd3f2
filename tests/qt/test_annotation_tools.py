"""Annotating in the window, offscreen: draw with each tool, select, move, delete, undo;
measurements in um (px without mpp); save, recover after a crash, ask before losing work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from inference.slides.synth.writer import truth_paths
from tests.qt.conftest import new_window
from tests.qt.qt_helpers import grab, open_slide_in
from viewer.annotations import AnnotationKind, ConflictPolicy
from viewer.qt.controllers import annotation_files
from viewer.qt.main_window import MainWindow

LEFT = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton


def _mouse(
    canvas: object,
    kind: QEvent.Type,
    pos: tuple[float, float],
    button: Qt.MouseButton,
    buttons: Qt.MouseButton,
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    point = QPointF(*pos)
    event = QMouseEvent(kind, point, point, button, buttons, modifiers)
    QApplication.sendEvent(canvas, event)  # type: ignore[arg-type]


def drag(window: MainWindow, start: tuple[float, float], end: tuple[float, float]) -> None:
    canvas = window.canvas
    _mouse(canvas, QEvent.Type.MouseButtonPress, start, LEFT, LEFT)
    for t in np.linspace(0, 1, 8)[1:]:
        pos = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        _mouse(canvas, QEvent.Type.MouseMove, pos, NONE, LEFT)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, end, LEFT, NONE)


def click(window: MainWindow, pos: tuple[float, float], shift: bool = False) -> None:
    mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    _mouse(window.canvas, QEvent.Type.MouseButtonPress, pos, LEFT, LEFT, mods)
    _mouse(window.canvas, QEvent.Type.MouseButtonRelease, pos, LEFT, NONE, mods)


def key(window: MainWindow, which: Qt.Key) -> None:
    QApplication.sendEvent(
        window.canvas,
        QKeyEvent(QEvent.Type.KeyPress, which, Qt.KeyboardModifier.NoModifier),
    )


def l0(window: MainWindow, scr: tuple[float, float]) -> tuple[float, float]:
    return window.canvas.viewport.transform().scr_to_l0(*scr)


@pytest.fixture
def opened(qtbot: QtBot, window: MainWindow, synthetic_slide: Path) -> MainWindow:
    open_slide_in(qtbot, window, synthetic_slide)
    window.canvas.setFocus()
    return window


def test_rectangle_is_drawn_classified_and_measured_in_um(opened: MainWindow) -> None:
    window = opened
    before = grab(window)
    window.annotations.panel.choose_class("Tumour")
    window.annotations.choose_tool("rectangle")
    drag(window, (100, 100), (200, 160))
    annotations = window.annotations.annotations
    assert annotations is not None and len(annotations) == 1
    (rect,) = annotations.annotations()
    assert rect.kind is AnnotationKind.RECTANGLE
    assert rect.class_name == "Tumour"  # the class chosen in the panel
    (x0, y0), (x1, y1) = l0(window, (100, 100)), l0(window, (200, 160))
    assert rect.l0_bounds == pytest.approx((x0, y0, x1, y1), abs=0.5)
    measured = annotations.measure(rect)
    assert measured.area_unit == "µm²"
    assert measured.area == pytest.approx((x1 - x0) * (y1 - y0) * 0.5**2, rel=1e-3)
    table = window.annotations.panel.table
    assert table.rowCount() == 1 and "µm²" in table.item(0, 3).text()
    assert np.abs(grab(window).astype(int) - before).sum() > 0  # drawn on the canvas


def test_each_tool_makes_its_kind(opened: MainWindow) -> None:
    window = opened
    ctl = window.annotations
    ctl.choose_tool("ellipse")
    drag(window, (50, 50), (120, 90))
    ctl.choose_tool("ruler")
    drag(window, (60, 200), (260, 200))
    ctl.choose_tool("polygon")
    for pos in [(300, 60), (380, 70), (360, 150)]:
        click(window, pos)
    key(window, Qt.Key.Key_Return)
    ctl.choose_tool("freehand")
    drag(window, (400, 300), (460, 360))  # a straight stroke is degenerate...
    ctl.choose_tool("freehand")
    canvas = window.canvas
    _mouse(canvas, QEvent.Type.MouseButtonPress, (400, 200), LEFT, LEFT)
    for angle in np.linspace(0, 2 * np.pi, 30):
        pos = (450 + 40 * np.cos(angle), 200 + 40 * np.sin(angle))
        _mouse(canvas, QEvent.Type.MouseMove, pos, NONE, LEFT)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, (450 + 40, 200), LEFT, NONE)
    ctl.choose_tool("points")
    click(window, (150, 300))
    click(window, (170, 310))
    click(window, (190, 320))
    annotations = ctl.annotations
    assert annotations is not None
    kinds = sorted(str(a.kind) for a in annotations)
    assert kinds.count("freehand") >= 1
    for kind in ("ellipse", "ruler", "polygon", "point"):
        assert kind in kinds
    points = next(a for a in annotations if a.kind is AnnotationKind.POINT)
    assert len(points.l0_points) == 3  # one Points object, three points
    ruler = next(a for a in annotations if a.kind is AnnotationKind.RULER)
    length_px = 200 / window.canvas.viewport.scale
    assert annotations.measure(ruler).length == pytest.approx(length_px * 0.5, rel=1e-3)


def test_select_move_delete_undo_redo(opened: MainWindow) -> None:
    window = opened
    ctl = window.annotations
    ctl.choose_tool("rectangle")
    drag(window, (100, 100), (200, 200))
    annotations = ctl.annotations
    assert annotations is not None
    (rect,) = annotations.annotations()
    ctl.choose_tool("select")
    click(window, (600, 500))
    assert not annotations.selection
    click(window, (150, 150))
    assert annotations.selection == {rect.id}
    drag(window, (150, 150), (180, 170))  # one undo step for the whole drag
    moved = annotations.get(rect.id)
    scale = window.canvas.viewport.scale
    assert moved.l0_bounds[0] - rect.l0_bounds[0] == pytest.approx(30 / scale, rel=1e-3)
    assert moved.l0_bounds[1] - rect.l0_bounds[1] == pytest.approx(20 / scale, rel=1e-3)
    ctl.delete_selected()
    assert len(annotations) == 0
    ctl.undo()
    assert annotations.get(rect.id).l0_bounds == pytest.approx(moved.l0_bounds)
    ctl.undo()
    assert annotations.get(rect.id).l0_bounds == pytest.approx(rect.l0_bounds)
    ctl.redo()
    assert annotations.get(rect.id).l0_bounds == pytest.approx(moved.l0_bounds)


def test_saved_annotations_come_back_and_crashed_work_is_recovered(
    qtbot: QtBot,
    opened: MainWindow,
    synthetic_slide: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = opened
    ctl = window.annotations
    ctl.choose_tool("rectangle")
    drag(window, (100, 100), (200, 200))
    assert ctl.save()
    ctl.choose_tool("ellipse")
    drag(window, (300, 100), (360, 150))
    ctl.autosave()  # what the timer does two seconds after a change
    # a crash: the window goes away without the close prompt or a save
    annotations = ctl.annotations
    assert annotations is not None and annotations.dirty

    answers: list[str] = []

    def answer_yes(*args: object, **kwargs: object) -> QMessageBox.StandardButton:
        answers.append(str(args[1]))
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    second = new_window(qtbot)
    open_slide_in(qtbot, second, synthetic_slide)
    assert answers == ["Recover unsaved annotations?"]
    recovered = second.annotations.annotations
    assert recovered is not None
    assert sorted(str(a.kind) for a in recovered) == ["ellipse", "rectangle"]
    assert recovered.dirty  # recovered work still has to be saved


def test_quitting_with_unsaved_changes_asks(
    qtbot: QtBot, opened: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = opened
    window.annotations.choose_tool("rectangle")
    drag(window, (100, 100), (200, 200))
    reply = [QMessageBox.StandardButton.Cancel]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: reply[0])
    window.close()
    assert window.isVisible()  # cancelled: nothing lost, nothing closed
    assert window.annotations.annotations is not None
    reply[0] = QMessageBox.StandardButton.Save
    window.close()
    assert not window.isVisible()
    store = window.annotations.store
    assert store.files(window.current.source.info.source_id).main.is_file()  # type: ignore[union-attr]


def test_import_qupath_geojson_and_export(
    opened: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    ctl = opened.annotations
    count = ctl.import_file(truth_paths(synthetic_slide)[1])
    annotations = ctl.annotations
    assert annotations is not None and count == len(annotations) > 0
    assert all(a.class_name == "Tumour" for a in annotations)
    out = tmp_path / "out.geojson"
    assert ctl.export_file(out)
    assert out.read_text().count('"Feature"') == count
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]')
    assert ctl.import_file(bad) == 0
    assert "bad.geojson" in ctl.last_message


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ConflictPolicy.SKIP, 1),
        (ConflictPolicy.REPLACE, 1),
        (ConflictPolicy.KEEP_BOTH, 2),
        (None, 1),  # cancelled: nothing added
    ],
)
def test_importing_a_file_twice_asks_once_and_never_duplicates_ids(
    opened: MainWindow,
    synthetic_slide: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: ConflictPolicy | None,
    expected: int,
) -> None:
    asked: list[str] = []

    def answer(_parent: object, question: str) -> ConflictPolicy | None:
        asked.append(question)
        return policy

    monkeypatch.setattr(annotation_files, "ask_conflict_policy", answer)
    ctl = opened.annotations
    path = truth_paths(synthetic_slide)[1]
    first = ctl.import_file(path)
    assert first > 0 and asked == []  # nothing to ask the first time
    ctl.import_file(path)
    assert len(asked) == 1 and f"{first} of the {first} annotations in {path.name}" in asked[0]
    annotations = ctl.annotations
    assert annotations is not None and len(annotations) == expected * first
    assert len(set(annotations.ids())) == len(annotations)
    assert path.name in ctl.last_message


def test_without_mpp_measurements_are_in_px(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    image = np.full((600, 800, 3), 230, np.uint8)
    image[100:500, 100:700] = (200, 120, 170)
    path = tmp_path / "patch.png"
    Image.fromarray(image).save(path)
    open_slide_in(qtbot, window, path)
    ctl = window.annotations
    ctl.choose_tool("rectangle")
    drag(window, (100, 100), (200, 200))
    annotations = ctl.annotations
    assert annotations is not None
    measured = annotations.measure(annotations.annotations()[0])
    assert measured.area_unit == "px²" and measured.area_um2 is None
    assert "pixels" in ctl.panel.units_label.text()
