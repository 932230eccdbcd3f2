"""Metrics panel and figure export in the window: the panel's figures equal the headless
evaluation, follow the threshold and save; the view exports and copies as shown."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from inference.engine.tissue import tissue_mask
from inference.evaluation.metrics import evaluate
from inference.evaluation.truth import load_truth
from inference.slides.synth.writer import truth_paths
from tests.qt.qt_helpers import TIMEOUT_MS, answer_save_dialogs, open_slide_in
from tests.qt.test_ai_layers import JOB_TIMEOUT_MS, bundled_classifier  # noqa: F401
from viewer.export.scene import FigureOptions
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.main_window import MainWindow


def _run_and_load_truth(qtbot: QtBot, window: MainWindow, slide: Path, model: Path) -> None:
    open_slide_in(qtbot, window, slide)
    job_id = window.analysis.run_model(model, "slide")
    assert job_id is not None
    jobs = window.analysis.jobs
    qtbot.waitUntil(lambda: jobs.jobs[job_id].status == "done", timeout=JOB_TIMEOUT_MS)
    window.analysis.load_truth(truth_paths(slide)[0])
    qtbot.waitUntil(
        lambda: any(isinstance(layer, MaskLayer) for layer in window.canvas.layers),
        timeout=TIMEOUT_MS,
    )


def test_metrics_panel_matches_the_headless_evaluation(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    bundled_classifier: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run_and_load_truth(qtbot, window, synthetic_slide, bundled_classifier)
    panel = window.analysis.metrics_panel
    qtbot.waitUntil(lambda: panel.report is not None, timeout=JOB_TIMEOUT_MS)
    report = panel.report
    assert report is not None and report.class_name == "tumour"
    (heatmap,) = [layer for layer in window.canvas.layers if isinstance(layer, HeatmapLayer)]
    source = window.current.source  # type: ignore[union-attr]
    headless = evaluate(
        heatmap.result,  # type: ignore[arg-type]
        load_truth(truth_paths(synthetic_slide)[0], source.info.dimensions),
        tissue_mask(source),
        "tumour",
        0.5,
        l0_dimensions=source.info.dimensions,
    )
    assert (report.tp, report.tn, report.fp, report.fn) == (
        headless.tp,
        headless.tn,
        headless.fp,
        headless.fn,
    )
    assert report.accuracy is not None and report.accuracy > 0.9
    assert report.auc is not None and report.auc > 0.95
    assert panel.figure_labels["accuracy"].text().endswith("%")
    with qtbot.waitSignal(panel.report_ready, timeout=TIMEOUT_MS):
        panel.threshold.setValue(0.95)
    assert panel.report is not None and panel.report.threshold == pytest.approx(0.95)
    assert panel.report.predicted_positive_fraction <= report.predicted_positive_fraction  # type: ignore[operator]
    qtbot.waitUntil(
        lambda: panel.roc_view.pixmap() is not None and not panel.roc_view.pixmap().isNull(),
        timeout=TIMEOUT_MS,
    )
    opened_at = answer_save_dialogs(monkeypatch, tmp_path / "metrics.csv")
    panel.choose_save()
    # beside the slide, named after the slide and the model
    expected = synthetic_slide.parent / f"synthetic.{bundled_classifier.name}.metrics.csv"
    assert opened_at == [str(expected)]
    written = [tmp_path / f"metrics{end}" for end in (".csv", ".roc.csv", ".roc.png")]
    written.append(tmp_path / "metrics.confusion.png")
    assert all(p.stat().st_size > 0 for p in written)
    with written[0].open() as fh:
        rows = {row["metric"]: row["value"] for row in csv.DictReader(fh)}
    assert (rows["slide"], rows["model"]) == (synthetic_slide.name, bundled_classifier.name)
    assert rows["truth"] == truth_paths(synthetic_slide)[0].name and rows["threshold"] == "0.95"


def test_export_view_writes_what_the_canvas_shows_and_copies_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    exports = window.exports
    path = tmp_path / "view.png"
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.write(exports.view_compositor(FigureOptions(caption="Case 12"), 2.0), path)
    assert exports.last_error is None and exports.last_result is not None
    with Image.open(path) as image:
        width, height = image.size
    assert (width, height) == (2 * window.canvas.width(), 2 * window.canvas.height())
    sidecar = json.loads(path.with_name("view.png.json").read_text())
    assert sidecar["slide"]["source_id"] == window.current.source.info.source_id  # type: ignore[union-attr]
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.copy_view()
    copied = QGuiApplication.clipboard().image()
    assert copied.width() == round(window.canvas.width() * window.canvas.devicePixelRatioF())


def test_export_to_an_unwritable_place_says_so(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    exports = window.exports
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "view.png"
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.write(exports.view_compositor(FigureOptions(), 1.0), target)
    assert exports.last_error is not None and "view.png" in exports.last_error
    assert not target.exists()
    assert window.current is not None  # the slide is still open
