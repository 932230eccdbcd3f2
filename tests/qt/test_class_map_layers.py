"""A multi-class model in the window, offscreen: its result comes as a class map with a
class legend, a confidence layer and one probability layer per class, all growing
together; hover names every class once; each layer's settings come back on reopening."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from tests.helpers.models import model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from viewer.layers.colormaps import result_class_colours
from viewer.layers.heatmap import (
    ARGMAX,
    ONE_MINUS_ENTROPY,
    TOP_PROBABILITY,
    HeatmapLayer,
)
from viewer.layers.legend import ClassLegend, ColourBarLegend
from viewer.qt.controllers.inference_jobs import ReadyResult
from viewer.qt.main_window import MainWindow

JOB_TIMEOUT_MS = 120_000
SIX = ("background", "stroma", "benign", "gleason3", "gleason4", "gleason5")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A six-class model (random weights) on a coarse grid: quick on the test slide."""
    return model_folder(tmp_path / "six-classes", class_names=SIX, patch=64, spacing=2.0)


def _heatmaps(window: MainWindow) -> list[HeatmapLayer]:
    """The heatmap layers, top first (as the Layers panel lists them)."""
    return [x for x in reversed(list(window.canvas.layers)) if isinstance(x, HeatmapLayer)]


def _run(qtbot: QtBot, window: MainWindow, folder: Path, scope: str = "view") -> int:
    job_id = window.analysis.run_model(folder, scope)  # type: ignore[arg-type]
    assert job_id is not None
    jobs = window.analysis.jobs
    qtbot.waitUntil(lambda: jobs.jobs[job_id].status == "done", timeout=JOB_TIMEOUT_MS)
    return job_id


def test_a_six_class_result_is_a_class_map_a_confidence_and_six_probability_layers(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, folder: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    ready: list[ReadyResult] = []
    window.analysis.jobs.result_ready.connect(ready.append)
    before = grab(window)
    job_id = _run(qtbot, window, folder)
    state = window.analysis.jobs.jobs[job_id]

    layers = _heatmaps(window)
    views = [layer.provenance.get("view") for layer in layers]
    assert views == ["class map", "confidence", *(f"probability:{n}" for n in SIX)]
    assert layers == state.layers and state.layer is layers[0]
    assert [layer.visible for layer in layers] == [True] + [False] * 7
    assert all(layer.result is state.result for layer in layers)
    assert layers[0].class_index == ARGMAX and layers[1].class_index == TOP_PROBABILITY
    assert [layer.class_index for layer in layers[2:]] == list(range(6))
    assert all(layer.progress is None for layer in layers)  # every layer saw the end
    # announced once, with every layer, the class map first
    assert len(ready) == 1 and ready[0].layers == tuple(layers)

    # the class map paints in class colours and its legend lists every class
    qtbot.waitUntil(lambda: not np.array_equal(grab(window), before), timeout=TIMEOUT_MS)
    legends = window.canvas.legends()
    assert len(legends) == 1 and isinstance(legends[0], ClassLegend)
    assert legends[0].entries == tuple(zip(SIX, result_class_colours(SIX), strict=True))

    # the confidence layer: every computed cell in [1/6, 1], NaN where nothing ran
    confidence = layers[1]
    probs = confidence.probabilities()
    values = confidence.confidence(probs)
    computed = np.isfinite(probs).all(axis=0)
    assert computed.any()
    assert np.allclose(values[computed], probs[:, computed].max(axis=0))
    assert np.isnan(values[~computed]).all()
    confidence.visible = True
    legends = window.canvas.legends()
    assert isinstance(legends[0], ClassLegend) and isinstance(legends[1], ColourBarLegend)
    assert legends[1].label == "confidence (top probability)"

    # hover: one line for the result however many of its layers are shown
    (l0_x, l0_y), l0_per_px = confidence.result.raster_geometry()
    rows, cols = np.nonzero(computed)
    x = l0_x + (cols[0] + 0.5) * l0_per_px
    y = l0_y + (rows[0] + 0.5) * l0_per_px
    window.analysis.update_values(x, y)
    text = window.analysis.values_label.text()
    assert "  |  " not in text  # one result: one entry, however many layers show it
    ranked = sorted(SIX, key=lambda name: -probs[SIX.index(name), rows[0], cols[0]])
    _layer_name, values = text.split(": ", 1)
    assert [part.rsplit(" ", 1)[0] for part in values.split(" · ")] == ranked


def test_each_layer_of_a_multi_class_result_keeps_its_settings_on_reopening(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, folder: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _run(qtbot, window, folder, "slide")
    class_map, confidence, *per_class = _heatmaps(window)
    confidence.class_index = ONE_MINUS_ENTROPY
    confidence.visible = True
    per_class[4].colormap = "inferno"
    class_map.opacity = 0.8
    window.close_slide()

    open_slide_in(qtbot, window, synthetic_slide)
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 8, timeout=TIMEOUT_MS)
    restored = {layer.provenance["view"]: layer for layer in _heatmaps(window)}
    assert restored["confidence"].class_index == ONE_MINUS_ENTROPY
    assert restored["class map"].opacity == 0.8
    assert restored["class map"].class_index == ARGMAX
    assert restored["probability:gleason4"].colormap == "inferno"
    assert restored["probability:gleason3"].colormap == "viridis"
    assert [x.provenance["view"] for x in _heatmaps(window)][:2] == ["class map", "confidence"]


def test_a_two_class_result_is_still_one_layer(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path / "two-classes", patch=64, spacing=2.0)
    open_slide_in(qtbot, window, synthetic_slide)
    _run(qtbot, window, folder)
    (layer,) = _heatmaps(window)
    assert "view" not in layer.provenance and layer.class_index == 1 and layer.visible


def test_running_a_model_again_shows_its_result_instead_of_copying_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, folder: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _run(qtbot, window, folder, "slide")
    window.close_slide()
    open_slide_in(qtbot, window, synthetic_slide)  # the result comes back from the cache
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 8, timeout=TIMEOUT_MS)
    restored = _heatmaps(window)
    restored[0].visible = False
    ready: list[ReadyResult] = []
    window.analysis.jobs.result_ready.connect(ready.append)

    job_id = _run(qtbot, window, folder, "slide")  # answered by the cache: the same result
    assert _heatmaps(window) == restored
    state = window.analysis.jobs.jobs[job_id]
    assert state.from_cache and state.layer is restored[0] and restored[0].visible
    assert window.analysis.layers_panel.selected_layer() is restored[0]
    assert len(ready) == 1 and ready[0].layers == tuple(restored)


def test_a_result_whose_layers_were_removed_mid_run_is_still_whole_when_announced(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, folder: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    jobs = window.analysis.jobs
    ready: list[ReadyResult] = []
    jobs.result_ready.connect(ready.append)

    def remove_all(_primary: object) -> None:
        for layer in _heatmaps(window):
            window.canvas.layers.remove(layer)

    jobs.layer_added.connect(remove_all)
    job_id = _run(qtbot, window, folder, "slide")
    jobs.layer_added.disconnect(remove_all)
    state = jobs.jobs[job_id]
    assert _heatmaps(window) == [] and state.done == state.total > 0
    (announced,) = ready
    # the same as the result the worker saved whole in the cache
    cached = jobs.jobs[_run(qtbot, window, folder, "slide")]
    assert cached.from_cache and cached.result is not None
    assert cached.result is not announced.result
    assert np.array_equal(announced.result.computed, cached.result.computed)
    np.testing.assert_array_equal(announced.result.probabilities(), cached.result.probabilities())

    window.close_slide()
    assert state.layers == [] and state.layer is None and state.result is None


def test_asking_again_brings_back_removed_views_and_leaves_a_cancelled_run_alone(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, folder: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    jobs = window.analysis.jobs
    cancelled_id = window.analysis.run_model(folder, "slide")
    assert cancelled_id is not None
    qtbot.waitUntil(lambda: bool(jobs.jobs[cancelled_id].layers), timeout=JOB_TIMEOUT_MS)
    jobs.cancel(cancelled_id)
    qtbot.waitUntil(lambda: jobs.jobs[cancelled_id].status == "cancelled", timeout=TIMEOUT_MS)
    cancelled = list(jobs.jobs[cancelled_id].layers)
    assert all(x.provenance.get("incomplete") for x in cancelled)

    whole = jobs.jobs[_run(qtbot, window, folder, "slide")].layers
    gleason3 = next(x for x in whole if x.provenance["view"] == "probability:gleason3")
    window.canvas.layers.remove(gleason3)
    again = jobs.jobs[_run(qtbot, window, folder, "slide")]
    assert again.from_cache and again.layers[0] is whole[0]
    assert {x.result for x in again.layers} == {whole[0].result}
    assert [x.provenance["view"] for x in again.layers] == [x.provenance["view"] for x in whole]
    assert again.layers[5] is not gleason3 and again.layers[5] in window.canvas.layers
    assert not any(x in again.layers for x in cancelled)
    assert all(x.name.endswith("(cancelled)") for x in cancelled)
    assert len(_heatmaps(window)) == len(cancelled) + len(whole)
