"""AI layers in the viewer, offscreen: run a model, watch the heatmap, tune it, cancel,
reopen from the cache, and survive a model that fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from inference.evaluation.truth import load_truth
from inference.slides.synth.writer import truth_paths
from tests.helpers.models import write_model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.main_window import MainWindow

JOB_TIMEOUT_MS = 120_000


@pytest.fixture(scope="session")
def bundled_classifier() -> Path:
    """The bundled demo tumour classifier (resources/models)."""
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    assert entry is not None, "no bundled classification model in resources/models"
    return entry.folder


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "tiny-model")


def _wait_job(qtbot: QtBot, window: MainWindow, job_id: int | None) -> None:
    assert job_id is not None
    jobs = window.analysis.jobs
    qtbot.waitUntil(
        lambda: jobs.jobs[job_id].status in ("done", "cancelled", "failed"),
        timeout=JOB_TIMEOUT_MS,
    )


def _heatmaps(window: MainWindow) -> list[HeatmapLayer]:
    return [layer for layer in window.canvas.layers if isinstance(layer, HeatmapLayer)]


def test_bundled_classifier_heatmap_matches_the_ground_truth(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, bundled_classifier: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    job_id = window.analysis.run_model(bundled_classifier, "slide")
    with qtbot.waitSignal(
        window.analysis.worker.finished,
        timeout=JOB_TIMEOUT_MS,
        check_params_cb=lambda task_id, cancelled: task_id == job_id,
    ):
        pass
    state = window.analysis.jobs.jobs[job_id]  # type: ignore[index]
    assert state.status == "done" and state.done == state.total > 0
    layer = state.layer
    assert layer is not None and layer in window.canvas.layers
    tumour = layer.class_names.index("tumour")
    probs = layer.probabilities()[tumour]
    (l0_x, l0_y), l0_per_px = layer.result.raster_geometry()
    assert (l0_x, l0_y) == (0.0, 0.0)
    truth = load_truth(truth_paths(synthetic_slide)[0], window.canvas.viewport.l0_size)
    is_tumour = truth.resampled(probs.shape, l0_per_px)
    computed = np.isfinite(probs)
    assert probs[computed & is_tumour].mean() > 0.75
    assert probs[computed & ~is_tumour].mean() < 0.25


def test_heatmap_grows_and_opacity_and_visibility_change_the_grab(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    before = grab(window)
    job_id = window.analysis.run_model(tiny_model, "view")
    _wait_job(qtbot, window, job_id)
    (layer,) = _heatmaps(window)
    assert np.isfinite(layer.probabilities()).any()
    layer.opacity = 0.5
    half = grab(window)
    layer.opacity = 1.0
    full = grab(window)
    assert np.abs(half.astype(int) - before).mean() > 2
    assert np.abs(full.astype(int) - half).mean() > 2
    layer.visible = False
    hidden = grab(window)
    assert np.abs(hidden.astype(int) - before).mean() < 1.0
    # the legend follows the layer's visibility and settings
    assert window.canvas.legends() == ()
    layer.visible = True
    layer.class_index = ARGMAX
    assert window.canvas.legends() == (layer.legend(),)


def test_layers_panel_drives_the_layer(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _wait_job(qtbot, window, window.analysis.run_model(tiny_model, "view"))
    (layer,) = _heatmaps(window)
    panel = window.analysis.layers_panel
    panel.select(layer)
    panel.threshold_check.setChecked(True)
    panel.threshold.setValue(0.7)
    assert layer.threshold == pytest.approx(0.7)
    panel.colormap_combo.setCurrentText("magma")
    assert layer.colormap == "magma"
    panel.interpolation_combo.setCurrentIndex(panel.interpolation_combo.findData("smooth"))
    assert layer.interpolation == "smooth"
    panel.opacity.setValue(20)
    assert layer.opacity == pytest.approx(0.2)
    item = panel.item_of(layer)
    assert item is not None
    item.setCheckState(Qt.CheckState.Unchecked)
    assert layer.visible is False
    panel.remove_button.click()
    assert layer not in window.canvas.layers


def test_hovering_shows_the_values_under_the_cursor(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _wait_job(qtbot, window, window.analysis.run_model(tiny_model, "view"))
    (layer,) = _heatmaps(window)
    probs = layer.probabilities()
    rows, cols = np.nonzero(np.isfinite(probs[0]))
    (o_x, o_y), px = layer.result.raster_geometry()
    l0_x, l0_y = o_x + (cols[0] + 0.5) * px, o_y + (rows[0] + 0.5) * px
    window.canvas.cursor_moved.emit(l0_x, l0_y)
    text = window.analysis.values_label.text()
    assert f"tumour {probs[1, rows[0], cols[0]]:.2f}" in text
    assert f"benign {probs[0, rows[0], cols[0]]:.2f}" in text


def test_cancel_stops_within_one_batch(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    window.analysis.models_panel.batch_spin.setValue(8)
    job_id = window.analysis.run_model(tiny_model, "slide")
    assert job_id is not None
    state = window.analysis.jobs.jobs[job_id]
    qtbot.waitUntil(lambda: state.done >= 16, timeout=JOB_TIMEOUT_MS)
    window.analysis.job_status.cancel_button.click()
    at_cancel = state.done
    _wait_job(qtbot, window, job_id)
    assert state.status == "cancelled"
    assert state.done - at_cancel <= 8
    assert state.done < state.total
    assert state.layer is not None and "cancelled" in state.layer.name
    assert not window.analysis.job_status.isVisible()


def test_cached_result_reappears_on_reopen_without_running_the_model(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _wait_job(qtbot, window, window.analysis.run_model(tiny_model, "view"))
    (first,) = _heatmaps(window)
    expected = first.probabilities()
    window.close_slide()
    assert _heatmaps(window) == []

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached result must not load or run a model")

    import inference.engine.runner
    import inference.models

    monkeypatch.setattr(inference.engine.runner, "run_prepared", no_model)
    monkeypatch.setattr(inference.models, "load_model", no_model)
    open_slide_in(qtbot, window, synthetic_slide)
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 1, timeout=TIMEOUT_MS)
    (restored,) = _heatmaps(window)
    assert "cached" not in restored.name  # the legend title stays clean; the panel says it
    assert restored.provenance.get("from_cache") is True
    np.testing.assert_array_equal(restored.probabilities(), expected)


def test_a_failing_model_shows_an_error_and_the_slide_stays_open(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path
) -> None:
    (tiny_model / "model.safetensors").write_bytes(b"this is not a safetensors file")
    open_slide_in(qtbot, window, synthetic_slide)
    job_id = window.analysis.run_model(tiny_model, "view")
    _wait_job(qtbot, window, job_id)
    assert window.analysis.jobs.jobs[job_id].status == "failed"  # type: ignore[index]
    message = window.analysis.last_error or ""
    assert "model.safetensors" in message and "tiny-model" in message
    assert window.current is not None and window.current.path == synthetic_slide
    window.canvas.viewport.zoom_by(1.5)
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    # the worker survives: the next job runs
    write_model_folder(tiny_model.parent / "good-model")
    good = window.analysis.run_model(tiny_model.parent / "good-model", "view")
    _wait_job(qtbot, window, good)
    assert window.analysis.jobs.jobs[good].status == "done"  # type: ignore[index]


def test_ground_truth_loads_as_an_outline_layer(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    geojson_path = truth_paths(synthetic_slide)[1]
    window.analysis.load_truth(geojson_path)
    qtbot.waitUntil(
        lambda: any(isinstance(layer, MaskLayer) for layer in window.canvas.layers),
        timeout=TIMEOUT_MS,
    )
    (layer,) = [layer for layer in window.canvas.layers if isinstance(layer, MaskLayer)]
    assert layer.outline_only and layer.mask.any()
    bad = synthetic_slide.parent / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": 7}))
    window.analysis.load_truth(bad)
    qtbot.waitUntil(lambda: window.analysis.last_error is not None, timeout=TIMEOUT_MS)
    assert "bad.geojson" in (window.analysis.last_error or "")


def test_show_tissue_adds_one_visible_tissue_layer_and_reuses_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    from viewer.layers.masks import is_tissue_layer

    open_slide_in(qtbot, window, synthetic_slide)
    window.analysis.show_tissue()
    qtbot.waitUntil(
        lambda: any(is_tissue_layer(layer) for layer in window.canvas.layers),
        timeout=TIMEOUT_MS,
    )
    (layer,) = [layer for layer in window.canvas.layers if is_tissue_layer(layer)]
    assert isinstance(layer, MaskLayer) and layer.visible and layer.mask.any()
    assert not layer.mask.all()  # glass around the tissue islands is not tissue
    layer.visible = False
    window.analysis.show_tissue()  # shows the same layer again, computes nothing
    assert layer.visible
    assert [lay for lay in window.canvas.layers if is_tissue_layer(lay)] == [layer]
