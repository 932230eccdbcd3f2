"""Slide-level predictions in the window, offscreen: the demo MIL head answers a synthetic
slide with tumour, its attention becomes a layer (raw or rank percentile), the gallery
and the similar places move the view, and a click finds regions like the clicked one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from inference.models.registry import bundled_models_dir
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from tests.qt.test_ai_layers import JOB_TIMEOUT_MS
from tests.qt.test_explain_tool import _tumour_point
from viewer.layers.masks import PolygonLayer
from viewer.layers.scores import AttentionLayer, SimilarityLayer
from viewer.qt.controllers.slide_level_tasks import SlideLevelOutcome
from viewer.qt.main_window import MainWindow

MIL = bundled_models_dir() / "demo-tumour-mil"


def _answer(qtbot: QtBot, window: MainWindow, slide: Path) -> SlideLevelOutcome:
    open_slide_in(qtbot, window, slide)
    controller = window.slide_level
    index = controller.panel.model_combo.findData(str(MIL))
    assert index >= 0, "the bundled MIL head is offered"
    controller.panel.model_combo.setCurrentIndex(index)
    with qtbot.waitSignal(controller.answered, timeout=JOB_TIMEOUT_MS) as blocker:
        assert controller.run() > 0
    outcome: SlideLevelOutcome = blocker.args[0]
    return outcome


def test_mil_head_answers_and_attention_becomes_a_layer(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    outcome = _answer(qtbot, window, synthetic_slide)
    controller = window.slide_level
    answer = outcome.answer
    assert answer.label == "tumour" and answer.probability > 0.5
    assert "tumour" in controller.panel.label_text.text()
    assert "abmil" in controller.panel.aggregation_text.text()
    assert "NOT FOR DIAGNOSIS" in controller.panel.warning_text.text()  # the head's card
    layer = controller.attention_layer
    assert isinstance(layer, AttentionLayer) and layer in window.canvas.layers
    assert layer.warning == "NOT FOR DIAGNOSIS"
    assert abs(float(np.nansum(layer.scores.raw)) - 1.0) < 1e-4  # a softmax over the patches
    # rank percentiles by default: 0..1 over the slide's patches
    assert layer.scaling == "percentile" and layer.value_range == (0.0, 1.0)
    shown = layer.scores.shown[0]
    assert np.nanmin(shown) == 0.0 and np.nanmax(shown) == 1.0
    controller.panel.scaling_combo.setCurrentIndex(controller.panel.scaling_combo.findData("raw"))
    assert layer.scaling == "raw" and layer.value_range[1] < 1.0
    assert layer.settings()["scaling"] == "raw"
    # the gallery: the most attended patches, a click away
    gallery = controller.panel.gallery
    assert gallery.count() == 8
    item = gallery.item(0)
    x, y, w, h = item.data(0x0100)
    gallery.itemClicked.emit(item)
    cx, cy = window.canvas.viewport.l0_center
    assert abs(cx - (x + w / 2)) < 1 and abs(cy - (y + h / 2)) < 1


def test_a_click_finds_regions_like_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _answer(qtbot, window, synthetic_slide)
    controller = window.slide_level
    qtbot.waitUntil(lambda: controller.search is not None, timeout=TIMEOUT_MS)
    controller.panel.similar_button.setChecked(True)
    assert getattr(window.canvas.tool, "name", "") == "similar"
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    with qtbot.waitSignal(controller.similar_found, timeout=TIMEOUT_MS) as blocker:
        assert controller.find_similar(x, y) > 0
    found = blocker.args[0]
    assert len(found.places) == 10
    assert [p.rank for p in found.places] == list(range(1, 11))
    similarities = [p.similarity for p in found.places]
    assert similarities == sorted(similarities, reverse=True)
    assert (found.query.p_col, found.query.p_row) not in {(p.p_col, p.p_row) for p in found.places}
    layers = list(window.canvas.layers)
    assert any(isinstance(layer, SimilarityLayer) for layer in layers)
    assert controller.places_layer in layers and controller.query_layer in layers
    assert controller.places_layer is not None and len(controller.places_layer.polygons) == 10
    assert isinstance(controller.query_layer, PolygonLayer)
    assert controller.panel.similar_list.count() == 10
    item = controller.panel.similar_list.item(3)
    px, py, pw, ph = item.data(0x0100)
    controller.panel.similar_list.itemClicked.emit(item)
    cx, cy = window.canvas.viewport.l0_center
    assert abs(cx - (px + pw / 2)) < 1 and abs(cy - (py + ph / 2)) < 1
    # a second click replaces the similarity layer instead of piling them up
    with qtbot.waitSignal(controller.similar_found, timeout=TIMEOUT_MS):
        controller.find_similar(found.places[0].l0_centre[0], found.places[0].l0_centre[1])
    assert sum(isinstance(layer, SimilarityLayer) for layer in window.canvas.layers) == 1
    assert sum(isinstance(layer, PolygonLayer) for layer in window.canvas.layers) == 2


def test_closing_the_slide_clears_the_report_and_other_reports_add_sections(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    _answer(qtbot, window, synthetic_slide)
    controller = window.slide_level
    box = controller.panel.add_section("Grade", QLabel("ISUP 2"))
    assert box.title() == "Grade"
    window.close_slide()
    assert controller.outcome is None and controller.search is None
    assert controller.panel.gallery.count() == 0
    assert not controller.panel.similar_button.isEnabled()
