"""A slide that states no pixel size, offscreen: the size is asked once per slide, kept
between sessions, used by measurements, the scale bar, jobs, explanations and figures,
changeable in Slide properties; a damaged store costs a message, nothing else."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QInputDialog, QTableWidget
from pytestqt.qtbot import QtBot

from inference.slides import SlideInfo
from tests.qt.conftest import new_window
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from tests.qt.test_ai_layers import _wait_job, tiny_model  # noqa: F401
from tests.qt.test_annotation_tools import drag
from tests.qt.test_export_matches_canvas import _longest_run
from tests.qt.test_slide_switch import _block, _running
from viewer.export.scale_bar_render import scale_bar_spec
from viewer.export.scene import FigureOptions
from viewer.pixel_size import STORE_FILE_NAME
from viewer.qt import dialogs
from viewer.qt.controllers import explain as explain_module
from viewer.qt.main_window import MainWindow

TYPED = 0.5


@pytest.fixture
def patch_slide(tmp_path: Path) -> Path:
    """A plain image with no resolution: its pixel size is unknown."""
    image = np.full((600, 800, 3), 235, np.uint8)
    image[100:500, 100:700] = (190, 110, 160)
    path = tmp_path / "patch.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pixel-size question, answered with :data:`TYPED`; the names it was asked for."""
    calls: list[str] = []

    def answer(parent: object, info: SlideInfo) -> float:
        calls.append(info.path.name)
        return TYPED

    def no_real_dialog(*args: object) -> object:
        raise AssertionError("the real pixel-size dialog must not open in a test")

    monkeypatch.setattr(dialogs, "ask_slide_mpp", answer)
    monkeypatch.setattr(QInputDialog, "getDouble", no_real_dialog)
    return calls


@pytest.fixture
def busy(window: MainWindow) -> Iterator[threading.Event]:
    """The worker held by another task: jobs and explanations queue and never run (the
    hold ends when the window closes, which pytest-qt does before fixtures end)."""
    gate, _blocker = _block(window.analysis.worker)
    analysis = window.analysis
    shutdown = analysis.shutdown

    def release_then_shut_down() -> None:
        analysis.jobs.cancel_all()
        window.explain.cancel()
        gate.set()
        shutdown()

    analysis.shutdown = release_then_shut_down  # type: ignore[method-assign]
    yield gate
    gate.set()


def _type_through_a_job(window: MainWindow, folder: Path) -> int:
    """Run a model on the view: the first job on the slide asks the pixel size."""
    job_id = window.analysis.run_model(folder, "view")
    assert job_id is not None
    return job_id


def _scale_bar_px(qtbot: QtBot, window: MainWindow) -> int:
    window.canvas.update()
    qtbot.wait(50)
    corner = grab(window)[-80:, :260].astype(int)
    ink = (np.abs(corner - 20) <= 12).all(axis=2)
    return max(_longest_run(row) for row in ink)


def _cell(table: QTableWidget, row: int, col: int) -> str:
    item = table.item(row, col)
    assert item is not None, (row, col)
    return item.text()


def _bar_px(scale: float, mpp: float | None) -> float:
    spec = scale_bar_spec(1.0 / scale, mpp)
    assert spec is not None
    return spec.bar_px


def test_asked_once_for_two_jobs_and_an_explanation(
    qtbot: QtBot,
    window: MainWindow,
    patch_slide: Path,
    tiny_model: Path,  # noqa: F811
    asked: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_slide_in(qtbot, window, patch_slide)
    jobs = window.analysis.jobs
    first = _type_through_a_job(window, tiny_model)
    _wait_job(qtbot, window, first)
    assert jobs.jobs[first].status == "done"
    layer = jobs.jobs[first].layer
    assert layer is not None
    assert layer.provenance["mpp_source"] == "typed"
    assert layer.provenance["typed_mpp"] == TYPED
    cam_tasks: list[object] = []
    real_cam_task = explain_module.cam_task

    def watched(pool: object, task: object) -> object:
        cam_tasks.append(task)
        return real_cam_task(pool, task)  # type: ignore[arg-type]

    monkeypatch.setattr(explain_module, "cam_task", watched)
    worker = window.analysis.worker
    gate, blocker = _block(worker)
    try:
        qtbot.waitUntil(_running(worker, blocker), timeout=TIMEOUT_MS)
        second = _type_through_a_job(window, tiny_model)
        assert window.explain.model_folder is not None
        assert window.explain.explain_point(400.0, 300.0) != []
    finally:
        jobs.cancel_all()
        window.explain.cancel()
        gate.set()
    assert asked == ["patch.png"]
    assert jobs.jobs[second].spec.mpp_override == TYPED
    assert [getattr(task, "mpp_override", None) for task in cam_tasks] == [TYPED]


def test_measurements_scale_bar_and_cursor_in_um_after_typing_and_after_a_change(
    qtbot: QtBot,
    window: MainWindow,
    patch_slide: Path,
    asked: list[str],
    busy: threading.Event,
) -> None:
    open_slide_in(qtbot, window, patch_slide)
    scale = 0.37
    window.canvas.viewport.set_scale(scale)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    window.annotations.choose_tool("rectangle")
    drag(window, (400, 300), (480, 360))
    annotations = window.annotations.annotations
    assert annotations is not None
    (rect,) = annotations.annotations()
    x0, y0, x1, y1 = rect.l0_bounds
    l0_area = (x1 - x0) * (y1 - y0)
    table = window.annotations.panel.table
    assert "px²" in _cell(table, 0, 3)
    assert abs(_scale_bar_px(qtbot, window) - _bar_px(scale, None)) <= 1.0

    _type_through_a_job(window, Path("any-model"))  # the job asks; it never runs
    assert asked == ["patch.png"]
    measured = annotations.measure(rect)
    assert measured.area_unit == "µm²"
    assert measured.area == pytest.approx(l0_area * TYPED**2)
    assert "µm²" in _cell(table, 0, 3)
    assert window.annotations.panel.units_label.text() == ""
    assert abs(_scale_bar_px(qtbot, window) - _bar_px(scale, TYPED)) <= 1.0
    window.canvas.cursor_moved.emit(100.0, 100.0)
    assert "µm" in window.cursor_label.text()

    # Slide properties change it, and everything follows
    dialog = window.show_properties()
    assert dialog is not None
    summary = dialog.summary
    pixel_row = [_cell(summary, r, 1) for r in range(summary.rowCount())][3]
    assert "0.5000 µm/px (typed" in pixel_row
    dialog.mpp_spin.setValue(0.25)
    dialog.mpp_use.click()
    assert window.pixel_size.mpp == 0.25
    assert annotations.measure(rect).area == pytest.approx(l0_area * 0.25**2)
    assert f"{l0_area * 0.25**2:,.0f} µm²" == _cell(table, 0, 3)
    assert abs(_scale_bar_px(qtbot, window) - _bar_px(scale, 0.25)) <= 1.0
    assert "0.2500 µm/px (typed" in _cell(summary, 3, 1)
    dialog.mpp_forget.click()  # back to pixels
    assert window.pixel_size.mpp is None
    assert "px²" in _cell(table, 0, 3)
    assert "pixels" in window.annotations.panel.units_label.text()
    assert abs(_scale_bar_px(qtbot, window) - _bar_px(scale, None)) <= 1.0
    dialog.close()


def test_a_typed_size_is_remembered_in_a_new_window_and_for_a_copy(
    qtbot: QtBot,
    window: MainWindow,
    patch_slide: Path,
    asked: list[str],
    busy: threading.Event,
    tmp_path: Path,
) -> None:
    open_slide_in(qtbot, window, patch_slide)
    _type_through_a_job(window, Path("any-model"))
    assert asked == ["patch.png"]
    window.close_slide()

    second = new_window(qtbot)
    open_slide_in(qtbot, second, patch_slide)
    assert (second.pixel_size.mpp, second.pixel_size.source) == (TYPED, "typed")
    assert second.canvas.mpp == TYPED
    second.annotations.choose_tool("rectangle")
    drag(second, (300, 300), (400, 380))
    annotations = second.annotations.annotations
    assert annotations is not None
    assert annotations.measure(annotations.annotations()[0]).area_unit == "µm²"
    # the same bytes under another name and folder: the same slide
    copy = tmp_path / "elsewhere" / "renamed.png"
    copy.parent.mkdir()
    shutil.copyfile(patch_slide, copy)
    annotations.mark_clean()
    open_slide_in(qtbot, second, copy)
    assert second.pixel_size.mpp == TYPED
    assert asked == ["patch.png"]  # never asked again


def test_figure_provenance_records_a_typed_pixel_size(
    qtbot: QtBot,
    window: MainWindow,
    patch_slide: Path,
    asked: list[str],
    busy: threading.Event,
    tmp_path: Path,
) -> None:
    open_slide_in(qtbot, window, patch_slide)
    _type_through_a_job(window, Path("any-model"))
    exports = window.exports
    path = tmp_path / "view.png"
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.write(exports.view_compositor(FigureOptions(), 1.0), path)
    assert exports.last_error is None
    sidecar = json.loads(path.with_name("view.png.json").read_text())
    assert sidecar["slide"]["mpp"] == TYPED
    assert sidecar["slide"]["mpp_source"] == "typed"
    assert sidecar["figure"]["um_per_px"] is not None
    assert sidecar["overlays"]["scale_bar"]["unit"] == "µm"


def test_a_damaged_store_is_reported_and_the_window_works(
    qtbot: QtBot, patch_slide: Path, asked: list[str], _isolated_user_data: Path
) -> None:
    store_file = _isolated_user_data / STORE_FILE_NAME
    store_file.write_text('{"version": 1, "slides": {')
    window = new_window(qtbot)
    problem = window.pixel_size.store.problem
    assert problem is not None and STORE_FILE_NAME in problem and "not valid JSON" in problem
    assert STORE_FILE_NAME in window.statusBar().currentMessage()
    open_slide_in(qtbot, window, patch_slide)
    assert window.pixel_size.mpp is None
    dialog = window.show_properties()
    assert dialog is not None
    dialog.set_typed_mpp(0.3)
    dialog.close()
    assert window.pixel_size.mpp == 0.3
    assert json.loads(store_file.read_text())["slides"]  # a valid file again
    assert store_file.with_name(STORE_FILE_NAME + ".damaged").is_file()
