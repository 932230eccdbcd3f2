"""Explain a click in the window, offscreen: Grad-CAM of the bundled classifier on a tumour
spot, pinned as a layer; two methods side by side; Score-CAM progress and cancel; a
click jumps ahead of a running whole-slide job; TorchScript models get hook-free methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QStandardItemModel
from pytestqt.qtbot import QtBot

from inference.core.geometry import Rect
from inference.evaluation.truth import load_truth
from inference.models import TrustStore, file_sha256
from inference.slides.synth.writer import truth_paths
from tests.helpers.models import model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from tests.qt.test_ai_layers import JOB_TIMEOUT_MS, bundled_classifier  # noqa: F401
from viewer.qt.controllers.explain import ExplainOutcome
from viewer.qt.main_window import MainWindow


def _tumour_point(slide: Path, dims: tuple[int, int]) -> tuple[float, float]:
    """A level-0 point deep inside the ground-truth tumour."""
    truth = load_truth(truth_paths(slide)[0], dims)
    import cv2

    inside = cv2.erode(truth.mask.astype(np.uint8), np.ones((9, 9), np.uint8))
    rows, cols = np.nonzero(inside)
    k = len(rows) // 2
    return (cols[k] + 0.5) * truth.l0_per_px, (rows[k] + 0.5) * truth.l0_per_px


def _choose_model(qtbot: QtBot, window: MainWindow, folder: Path) -> None:
    explain = window.explain
    index = explain.panel.model_combo.findData(str(folder))
    if index < 0:
        window.analysis.models_panel.add_folder(folder)
        explain._fill_models()
        index = explain.panel.model_combo.findData(str(folder.resolve()))
    explain.info = None
    explain.panel.model_combo.setCurrentIndex(index)
    explain.load_model_info(folder)
    qtbot.waitUntil(
        lambda: explain.info is not None and explain.info.folder.resolve() == folder.resolve(),
        timeout=TIMEOUT_MS,
    )


def _choose(combo: object, name: str | None) -> None:
    index = combo.findData(name)  # type: ignore[attr-defined]
    assert index >= 0, name
    combo.setCurrentIndex(index)  # type: ignore[attr-defined]


def test_click_on_tumour_explains_it_and_the_pinned_layer_shows(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    bundled_classifier: Path,  # noqa: F811
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, bundled_classifier)
    explain = window.explain
    _choose(explain.panel.method_combo, "gradcam")
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    window.canvas.viewport.center_on(x, y)
    window.canvas.viewport.set_scale(0.5)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    before = grab(window)
    with qtbot.waitSignal(explain.cam_ready, timeout=JOB_TIMEOUT_MS) as blocker:
        explain.explain_point(x, y)
    outcome: ExplainOutcome = blocker.args[0]
    cam = outcome.cam
    assert cam.class_name == "tumour"  # the predicted class on a tumour spot
    assert cam.scores["tumour"] > 0.5
    assert cam.provenance["method"] == "gradcam"
    assert "Grad-CAM" in explain.panel.views[0].details.text()
    layer = explain.pin(0)
    assert layer is not None and layer in window.canvas.layers
    assert window.analysis.layers_panel.item_of(layer) is not None
    window.analysis.layers_panel.select(layer)
    assert "Grad-CAM" in window.analysis.layers_panel.provenance.text()
    after = grab(window)
    assert np.abs(after.astype(int) - before).mean() > 1.0


def test_two_methods_side_by_side(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    bundled_classifier: Path,  # noqa: F811
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, bundled_classifier)
    explain = window.explain
    _choose(explain.panel.method_combo, "gradcam")
    _choose(explain.panel.beside_combo, "eigencam")
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    explain.explain_point(x, y)
    qtbot.waitUntil(lambda: len(explain.outcomes) == 2, timeout=JOB_TIMEOUT_MS)
    methods = {s: explain.outcomes[s].cam.provenance["method"] for s in (0, 1)}
    assert methods == {0: "gradcam", 1: "eigencam"}
    assert explain.pin(1) is not None


def test_score_cam_shows_progress_and_cancels(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    bundled_classifier: Path,  # noqa: F811
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, bundled_classifier)
    explain = window.explain
    _choose(explain.panel.method_combo, "scorecam")
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    (task_id,) = explain.explain_region(_around(x, y, 1200))
    qtbot.waitUntil(explain.panel.progress.isVisible, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(
        window.analysis.worker.finished,
        timeout=JOB_TIMEOUT_MS,
        check_params_cb=lambda tid, cancelled: tid == task_id and cancelled,
    ):
        explain.panel.cancel_button.click()
    assert not explain.panel.progress.isVisible()
    assert 0 not in explain.outcomes


def test_an_explanation_jumps_ahead_of_a_whole_slide_job(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    bundled_classifier: Path,  # noqa: F811
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, bundled_classifier)
    window.analysis.models_panel.batch_spin.setValue(4)
    job_id = window.analysis.run_model(bundled_classifier, "slide")
    assert job_id is not None
    state = window.analysis.jobs.jobs[job_id]
    qtbot.waitUntil(lambda: state.done > 0, timeout=JOB_TIMEOUT_MS)
    explain = window.explain
    _choose(explain.panel.method_combo, "gradcam")
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    with qtbot.waitSignal(explain.cam_ready, timeout=JOB_TIMEOUT_MS):
        explain.explain_point(x, y)
    assert state.status == "running" and state.done < state.total
    window.analysis.jobs.cancel(job_id)


def test_torchscript_models_offer_hook_free_methods_only(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path / "zoo-ts", torchscript=True)
    TrustStore().trust(file_sha256(folder / "torchscript_model.pt"), folder)
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, folder)
    combo = window.explain.panel.method_combo
    model = combo.model()
    assert isinstance(model, QStandardItemModel)
    states = {
        combo.itemData(i): (model.item(i).isEnabled(), model.item(i).toolTip())
        for i in range(combo.count())
    }
    assert states["saliency"][0] and states["occlusion"][0]
    enabled, tip = states["gradcam"]
    assert not enabled and "TorchScript" in tip and "hook" in tip
    assert combo.currentData() in ("saliency", "integrated-gradients", "occlusion")
    with qtbot.waitSignal(window.explain.cam_ready, timeout=JOB_TIMEOUT_MS) as blocker:
        window.explain.explain_point(2048, 1536)
    assert blocker.args[0].cam.provenance["model"]["kind"] == "torchscript"


def _around(x: float, y: float, side: float) -> Rect:
    return Rect(x - side / 2, y - side / 2, side, side)
