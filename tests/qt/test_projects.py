"""Projects in the window: the slide browser, Page Up / Page Down keeping the layers'
look, and "Run on project" on a real Dask cluster while the window stays usable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from inference.batch.cluster import ClusterRequest
from inference.batch.progress import BatchFigures, SlideState
from inference.batch.runner import BatchUpdate
from tests.helpers.models import write_model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.layers.heatmap import HeatmapLayer
from viewer.projects.model import DONE, FAILED, NOT_RUN, PROJECT_SUFFIX, RUNNING
from viewer.projects.storage import load_project
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.slide_browser import NAME_COLUMN, STATUS_COLUMN

#: A batch from the window: a local cluster starts, its worker imports torch.
RUN_TIMEOUT_MS = 180_000


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "tiny-model")


def _heatmaps(window: MainWindow) -> list[HeatmapLayer]:
    return [layer for layer in window.canvas.layers if isinstance(layer, HeatmapLayer)]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Three small synthetic slides and a damaged one."""
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    folder = tmp_path / "study"
    folder.mkdir()
    for seed in range(3):
        params = SynthParams(width=1024, height=1024, seed=seed, mpp=0.5)
        write_synthetic_slide(folder / f"slide-{seed}.tiff", params)
    (folder / "damaged.svs").write_bytes(b"II*\x00" + b"\x00garbage" * 64)
    return folder


def _texts(window: MainWindow, column: int) -> list[str]:
    proxy = window.projects.panel.proxy
    return [str(proxy.index(row, column).data()) for row in range(proxy.rowCount())]


def _new_project(qtbot: QtBot, window: MainWindow, study: Path) -> Path:
    path = study.parent / f"study{PROJECT_SUFFIX}"
    project = window.projects.new_project(study, path)
    assert project is not None
    qtbot.waitUntil(
        lambda: (
            all(s.has_facts for s in project.slides)
            and len(window.projects.panel.model.thumbnails) == 3
        ),
        timeout=TIMEOUT_MS,
    )
    return path


def test_the_browser_lists_sorts_and_filters_a_project(
    qtbot: QtBot, window: MainWindow, study: Path
) -> None:
    path = _new_project(qtbot, window, study)
    controller = window.projects
    assert controller.dock.isVisible()
    assert _texts(window, NAME_COLUMN) == ["damaged", "slide-0", "slide-1", "slide-2"]
    assert _texts(window, 2)[1:] == ["1,024 x 1,024"] * 3
    assert _texts(window, 3)[1:] == ["0.500"] * 3
    assert _texts(window, 2)[0] == "unreadable"
    damaged = window.projects.panel.proxy.index(0, 2)
    assert "damaged.svs" in str(damaged.data(Qt.ItemDataRole.ToolTipRole))
    assert _texts(window, STATUS_COLUMN) == [NOT_RUN] * 4

    panel = controller.panel
    panel.table.sortByColumn(NAME_COLUMN, Qt.SortOrder.DescendingOrder)
    assert _texts(window, NAME_COLUMN) == ["slide-2", "slide-1", "slide-0", "damaged"]
    panel.filter_edit.setText("slide 1")  # every word must match
    assert _texts(window, NAME_COLUMN) == ["slide-1"]
    panel.filter_edit.setText("")
    panel.status_combo.setCurrentIndex(panel.status_combo.findData(FAILED))
    assert _texts(window, NAME_COLUMN) == []
    panel.status_combo.setCurrentIndex(0)

    # saved, remembered, and opened again as it was
    qtbot.waitUntil(lambda: not controller.project.dirty, timeout=TIMEOUT_MS)  # type: ignore[union-attr]
    assert load_project(path)[1].width == 1024
    assert controller.recent.paths[0] == path.resolve()
    controller.close_project()
    assert not controller.dock.isVisible() and controller.project is None
    assert controller.open_project(path)
    assert [s.name for s in controller.project.slides] == [  # type: ignore[union-attr]
        "damaged",
        "slide-0",
        "slide-1",
        "slide-2",
    ]
    assert not controller.open_project(study / "slide-0.tiff")  # not a project: says why
    assert "not a project file" in controller.last_message
    assert controller.project is not None  # the open project stays


def test_a_payload_of_another_run_is_dropped(qtbot: QtBot, window: MainWindow, study: Path) -> None:
    _new_project(qtbot, window, study)
    controller = window.projects
    controller.runs.run_id = "the-current-run"
    figures = BatchFigures(4, 0, 0, 0, 0, 1, 0, 0.0, 1.0, None)
    state = SlideState(controller.project.slides[1].path, status=RUNNING)  # type: ignore[arg-type, union-attr]
    from inference.batch.inputs import BatchItem

    state.item = BatchItem.for_file(study / "slide-0.tiff")
    controller._on_update(BatchUpdate("an-older-run", "slide", figures, (state,)))
    assert controller.project[1].status == NOT_RUN  # type: ignore[index]
    controller._on_update(BatchUpdate("the-current-run", "slide", figures, (state,)))
    assert controller.project[1].status == RUNNING  # type: ignore[index]


def test_typed_pixel_size_is_kept_in_the_project(
    qtbot: QtBot, window: MainWindow, study: Path
) -> None:
    import numpy as np
    from PIL import Image

    _new_project(qtbot, window, study)
    controller = window.projects
    plain = study.parent / "plain.png"
    Image.fromarray(np.full((300, 400, 3), (200, 120, 170), np.uint8)).save(plain)
    (index,) = controller.add_slides([plain])
    controller.open_index(index)
    qtbot.waitUntil(lambda: window.current is not None and window.current.path == plain)
    window.pixel_size.set_typed(0.7)
    project = controller.project
    assert project is not None and project[index].typed_mpp == 0.7
    controller.save_now()
    assert load_project(project.path)[index].typed_mpp == 0.7  # type: ignore[arg-type]
    assert controller.panel.model.index(index, 3).data() == "0.700 (typed)"


def test_run_on_project_then_page_through_keeping_the_layers_look(
    qtbot: QtBot,
    window: MainWindow,
    study: Path,
    tiny_model: Path,
    synthetic_slide: Path,
) -> None:
    path = _new_project(qtbot, window, study)
    controller = window.projects
    controller.cluster_request = ClusterRequest(workers=1, dashboard=False)
    assert window.analysis.models_panel.add_folder(tiny_model)  # and selects it
    run_id = controller.run_on_project()
    assert run_id is not None and controller.runs.running
    assert not controller.run_action.isEnabled() and controller.stop_action.isEnabled()

    # the window stays usable: another slide opens and paints while the batch runs
    open_slide_in(qtbot, window, synthetic_slide)
    window.canvas.viewport.zoom_by(1.5)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    assert controller.runs.running  # ...while the workers are still at it

    project = controller.project
    assert project is not None
    qtbot.waitUntil(lambda: not controller.runs.running, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: {s.status for s in project.slides} == {DONE, FAILED}, timeout=TIMEOUT_MS
    )
    by_name = {s.name: s for s in project.slides}
    assert by_name["damaged"].status == FAILED and "damaged.svs" in by_name["damaged"].message
    for name in ("slide-0", "slide-1", "slide-2"):
        slide = by_name[name]
        assert slide.status == DONE and slide.results == project.results_folder / name
        assert (slide.results / f"{name}.csv").is_file()
        assert set(slide.outputs) == {"fraction_benign", "fraction_tumour", "max_prob_tumour"}
    assert "fraction tumour" in [
        controller.panel.model.headerData(c, Qt.Orientation.Horizontal)
        for c in range(controller.panel.model.columnCount())
    ]
    assert controller.panel.figures_label.text().startswith("Run finished: 3 done, 0 already")
    assert controller.run_action.isEnabled()
    controller.save_now()
    saved = {s.name: s for s in load_project(path).slides}
    assert saved["slide-1"].status == DONE and saved["damaged"].status == FAILED

    # open the first slide from the browser: its result comes back from the cache
    names = [s.name for s in project.slides]
    controller.panel.table.sortByColumn(NAME_COLUMN, Qt.SortOrder.AscendingOrder)
    controller.open_index(names.index("slide-0"))
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 1, timeout=TIMEOUT_MS)
    assert window.current is not None and window.current.path == study / "slide-0.tiff"
    layer = _heatmaps(window)[0]
    layer.opacity, layer.colormap = 0.85, "magma"

    window.activateWindow()
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageDown)
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.path == study / "slide-1.tiff",
        timeout=TIMEOUT_MS,
    )
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 1, timeout=TIMEOUT_MS)
    carried = _heatmaps(window)[0]
    assert carried is not layer
    assert (carried.opacity, carried.colormap) == (0.85, "magma")
    selected = controller.panel.table.currentIndex()
    assert selected.siblingAtColumn(NAME_COLUMN).data() == "slide-1"

    qtbot.keyClick(window.canvas, Qt.Key.Key_PageUp)
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.path == study / "slide-0.tiff",
        timeout=TIMEOUT_MS,
    )
    controller.page(-1)  # before the first: stays, says so
    assert window.current.path == study / "slide-0.tiff"

    doc = json.loads((project.results_folder / "summary.json").read_text())
    assert {r["name"]: r["status"] for r in doc["slides"]}["damaged"] == FAILED
