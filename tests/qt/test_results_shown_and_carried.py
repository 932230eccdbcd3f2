"""How results are shown and carried between steps, offscreen: a model's domain warning
and its question, segmentation layers clipped to the tissue, layer settings that come
back on reopen, hover values that name their layer, a legend that moves, panels that
show their controls, and the keyboard back on the slide after every dialog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget
from pytestqt.qtbot import QtBot

from inference.core.paths import user_data_dir
from inference.models.registry import bundled_model
from tests.helpers.models import write_model_folder
from tests.qt.conftest import forget_unsaved_annotations
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.qt import dialogs
from viewer.qt.main_window import MainWindow
from viewer.qt.messages import show_warning
from viewer.settings import Settings

JOB_TIMEOUT_MS = 120_000


def _wait_job(qtbot: QtBot, window: MainWindow, job_id: int | None) -> HeatmapLayer:
    assert job_id is not None
    state = window.analysis.jobs.jobs[job_id]
    qtbot.waitUntil(lambda: state.status in ("done", "failed"), timeout=JOB_TIMEOUT_MS)
    assert state.status == "done" and state.layer is not None
    return state.layer


def _heatmaps(window: MainWindow) -> list[HeatmapLayer]:
    return [layer for layer in window.canvas.layers if isinstance(layer, HeatmapLayer)]


def _card_with_domain(folder: Path, domain: dict[str, object]) -> Path:
    path = folder / "config.json"
    card = json.loads(path.read_text())
    card["slidelens"]["domain"] = domain
    path.write_text(json.dumps(card))
    return folder


@pytest.fixture
def aperio_only_model(tmp_path: Path) -> Path:
    """A research model whose card says it was made for Aperio slides only."""
    return _card_with_domain(
        write_model_folder(tmp_path / "aperio-model"),
        {
            "for_diagnosis": False,
            "trained_on": "Aperio scans",
            "slides": [{"property": "openslide.vendor", "equals": "aperio"}],
        },
    )


# -- 1: trust ---------------------------------------------------------------------------


def test_a_model_outside_its_domain_asks_once_per_slide_and_its_layer_warns(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    aperio_only_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    answers = [False, True]

    def confirm(parent: QWidget, check: object, slide_name: str) -> bool:
        asked.append(slide_name)
        return answers.pop(0)

    monkeypatch.setattr(dialogs, "confirm_outside_domain", confirm)
    open_slide_in(qtbot, window, synthetic_slide)
    assert window.analysis.run_model(aperio_only_model, "view") is None  # cancelled
    assert window.analysis.jobs.jobs == {} and asked == [synthetic_slide.name]
    layer = _wait_job(qtbot, window, window.analysis.run_model(aperio_only_model, "view"))
    assert asked == [synthetic_slide.name] * 2
    # the answer holds for the whole window: the Slide report's runs ask the same object
    assert window.slide_level.domain_questions is window.analysis.domain_questions
    info = window.canvas.source.info if window.canvas.source is not None else None
    assert info is not None
    assert window.slide_level.domain_questions.accepted(aperio_only_model, info)
    assert asked == [synthetic_slide.name] * 2
    assert layer.warning.splitlines()[:2] == [
        "NOT FOR DIAGNOSIS",
        "Slide outside the model's domain",
    ]
    assert layer.provenance["domain"]["slide_in_domain"] is False
    (legend,) = window.canvas.legends()
    assert legend.warning == layer.warning
    panel = window.analysis.layers_panel
    panel.select(layer)
    assert not panel.warning_label.isHidden()
    assert "outside the model's domain" in panel.warning_label.text()
    item = panel.item_of(layer)
    assert item is not None and not item.icon().isNull()
    assert item.toolTip().startswith("NOT FOR DIAGNOSIS")
    # the answer holds for this slide and model: no second question
    _wait_job(qtbot, window, window.analysis.run_model(aperio_only_model, "view"))
    assert len(asked) == 2
    from viewer.export.scene import FigureOptions

    compositor = window.exports.view_compositor(FigureOptions(legend=False), 1.0)
    assert compositor.scene.warnings and compositor.scene.warnings[0][1] == layer.warning


def test_the_demo_classifier_on_its_own_slides_is_labelled_not_questioned(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> bool:
        raise AssertionError("a synthetic slide is the demo model's own domain")

    monkeypatch.setattr(dialogs, "confirm_outside_domain", never)
    entry = bundled_model("classification")
    assert entry is not None
    open_slide_in(qtbot, window, synthetic_slide)
    layer = _wait_job(qtbot, window, window.analysis.run_model(entry.folder, "view"))
    assert layer.warning == "NOT FOR DIAGNOSIS"
    assert layer.provenance["domain"]["slide_in_domain"] is True


def test_a_pinned_explanation_carries_its_models_warning(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    from tests.qt.test_explain_tool import _choose, _choose_model, _tumour_point

    entry = bundled_model("classification")
    assert entry is not None
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, entry.folder)
    explain = window.explain
    _choose(explain.panel.method_combo, "gradcam")
    x, y = _tumour_point(synthetic_slide, window.canvas.viewport.l0_size)
    with qtbot.waitSignal(explain.cam_ready, timeout=JOB_TIMEOUT_MS):
        explain.explain_point(x, y)
    layer = explain.pin(0)
    assert layer is not None
    assert layer.warning == "NOT FOR DIAGNOSIS"
    assert layer.provenance["domain"]["slide_in_domain"] is True
    assert layer.legend().warning == "NOT FOR DIAGNOSIS"


# -- 2: clipping ------------------------------------------------------------------------


def test_the_unet_layer_is_clipped_to_the_tissue_and_the_panel_turns_that_off(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    entry = bundled_model("segmentation")
    assert entry is not None
    open_slide_in(qtbot, window, synthetic_slide)
    window.canvas.viewport.fit()
    layer = _wait_job(qtbot, window, window.analysis.run_model(entry.folder, "view"))
    clip = layer.clip
    assert clip is not None and clip.has_tissue and layer.clip_to_tissue
    assert clip.l0_slide_size == window.canvas.viewport.l0_size
    alpha = layer.colour_image().rgba[..., 3]
    (o_x, o_y), px = layer.result.raster_geometry()
    h, w = alpha.shape
    keep = clip.keep((o_x, o_y), px, slice(0, h), slice(0, w), to_tissue=True)
    assert (~keep).sum() > 100 and not alpha[~keep].any()
    assert alpha[keep].any()
    panel = window.analysis.layers_panel
    panel.select(layer)
    assert panel.clip_check.isEnabled() and panel.clip_check.isChecked()
    panel.clip_check.setChecked(False)
    assert layer.clip_to_tissue is False
    on_slide = clip.keep((o_x, o_y), px, slice(0, h), slice(0, w), to_tissue=False)
    alpha = layer.colour_image().rgba[..., 3]
    assert alpha[on_slide & ~keep].any() and not alpha[~on_slide].any()


# -- 6: remembered settings ---------------------------------------------------------------


def test_layer_settings_and_order_come_back_when_the_slide_is_reopened(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    first = write_model_folder(tmp_path / "model-a")
    second = write_model_folder(tmp_path / "model-b", seed=1)
    open_slide_in(qtbot, window, synthetic_slide)
    a = _wait_job(qtbot, window, window.analysis.run_model(first, "view"))
    b = _wait_job(qtbot, window, window.analysis.run_model(second, "view"))
    a.class_index = ARGMAX
    b.colormap = "magma"
    b.value_range = (0.1, 0.8)
    b.threshold = 0.3
    b.opacity = 0.9
    b.interpolation = "smooth"
    window.canvas.layers.move(b, window.canvas.layers.index(a))  # b below a
    order = [layer.provenance["model"] for layer in _heatmaps(window)]
    assert order == ["model-b", "model-a"]
    window.close_slide()
    assert (user_data_dir() / "layer-settings.json").is_file()

    open_slide_in(qtbot, window, synthetic_slide)
    qtbot.waitUntil(lambda: len(_heatmaps(window)) == 2, timeout=TIMEOUT_MS)
    restored = {layer.provenance["model"]: layer for layer in _heatmaps(window)}
    assert [layer.provenance["model"] for layer in _heatmaps(window)] == order
    assert restored["model-a"].class_index == ARGMAX
    rb = restored["model-b"]
    assert (rb.colormap, rb.value_range, rb.threshold) == ("magma", (0.1, 0.8), 0.3)
    assert rb.opacity == pytest.approx(0.9) and rb.interpolation == "smooth"


# -- 7: hover values name their layer -------------------------------------------------------


def test_hover_values_name_the_layer_they_come_from(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    first = write_model_folder(tmp_path / "model-a")
    second = write_model_folder(tmp_path / "model-b", seed=1)
    a = _wait_job(qtbot, window, window.analysis.run_model(first, "view"))
    _wait_job(qtbot, window, window.analysis.run_model(second, "view"))
    probs = a.probabilities()
    rows, cols = np.nonzero(np.isfinite(probs[0]))
    (o_x, o_y), px = a.result.raster_geometry()
    window.canvas.cursor_moved.emit(o_x + (cols[0] + 0.5) * px, o_y + (rows[0] + 0.5) * px)
    text = window.analysis.values_label.text()
    top, bottom = text.split("  |  ")
    assert top.startswith("model-b: benign ") and "tumour" in top
    assert bottom.startswith(f"model-a: benign {probs[0, rows[0], cols[0]]:.2f}")


# -- 9: the legend moves, the panels fit ---------------------------------------------------


def _mouse(widget: QWidget, kind: QEvent.Type, pos: QPointF, held: bool) -> None:
    buttons = Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton
    event = QMouseEvent(
        kind,
        pos,
        widget.mapToGlobal(pos),
        Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def test_the_legend_is_dragged_to_another_corner_and_stays_there(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    _wait_job(qtbot, window, window.analysis.run_model(write_model_folder(tmp_path / "m"), "view"))
    canvas = window.canvas
    canvas.repaint()
    start = canvas.legend_scr_rect()
    assert start is not None and window.canvas.legend_corner == "bottom-right"
    assert start.right() > canvas.width() - 40 and start.bottom() > canvas.height() - 40
    grab_at = start.center()
    _mouse(canvas, QEvent.Type.MouseButtonPress, grab_at, True)
    _mouse(canvas, QEvent.Type.MouseMove, QPointF(120, 90), True)
    dragging = canvas.legend_scr_rect()
    assert dragging is not None and dragging.center().x() == pytest.approx(120, abs=1)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(120, 90), False)
    assert canvas.legend_corner == "top-left"
    canvas.repaint()
    moved = canvas.legend_scr_rect()
    assert moved is not None and moved.left() < 30 and moved.top() < 30
    assert window.settings.legend_corner == "top-left"
    saved = json.loads((user_data_dir() / "settings.json").read_text())
    assert saved["legend_corner"] == "top-left"
    # a new window puts it where it was left
    again = MainWindow(Settings(legend_corner="top-left"))
    qtbot.addWidget(again)
    assert again.canvas.legend_corner == "top-left"


def _shown_in_scroll_area(widget: QWidget) -> bool:
    """Whether ``widget`` lies wholly inside the visible part of its scroll area."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    assert parent is not None
    viewport = parent.viewport()
    top_left = widget.mapTo(viewport, widget.rect().topLeft())
    bottom_right = widget.mapTo(viewport, widget.rect().bottomRight())
    return viewport.rect().contains(top_left) and viewport.rect().contains(bottom_right)


def test_the_panels_show_their_controls_in_a_1400_by_900_window(qtbot: QtBot) -> None:
    window = MainWindow(Settings(preload_models=False))
    qtbot.addWidget(window, before_close_func=forget_unsaved_annotations)
    window.show()
    qtbot.waitExposed(window)
    assert (window.width(), window.height()) == (1400, 900)
    analysis = window.analysis
    layers = analysis.layers_panel
    qtbot.waitUntil(lambda: _shown_in_scroll_area(layers.clip_check), timeout=5000)
    for control in (layers.list, layers.opacity, layers.colormap_combo, layers.threshold):
        assert _shown_in_scroll_area(control)
    analysis.metrics_dock.raise_()
    metrics = analysis.metrics_panel
    qtbot.waitUntil(lambda: metrics.isVisible(), timeout=5000)
    for control in (metrics.heatmap_combo, metrics.threshold, metrics.save_button):
        # the newly raised tab lays itself out on the next turns of the event loop
        qtbot.waitUntil(lambda c=control: _shown_in_scroll_area(c), timeout=5000)
    models = analysis.models_panel
    for control in (models.list, models.run_view, models.run_slide):
        assert _shown_in_scroll_area(control)


# -- 10: the keyboard goes back to the slide ----------------------------------------------


def test_the_canvas_has_the_keyboard_after_a_dialog_closes(
    qtbot: QtBot, window: MainWindow
) -> None:
    panel = window.analysis.layers_panel
    window.activateWindow()
    panel.list.setFocus()
    qtbot.waitUntil(panel.list.hasFocus, timeout=5000)
    box = show_warning(window, "A message", "Something to read")
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.accept()
    qtbot.waitUntil(window.canvas.hasFocus, timeout=5000)
    assert window.focus_return.returned == 1
    # and again when a dialog is cancelled
    panel.list.setFocus()
    qtbot.waitUntil(panel.list.hasFocus, timeout=5000)
    box = show_warning(window, "Another", "text")
    box.reject()
    qtbot.waitUntil(window.canvas.hasFocus, timeout=5000)
