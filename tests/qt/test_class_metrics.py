"""The Metrics panel's class report (a result of three or more classes): the same figures
as scikit-learn on the same samples, the class truth read from the truth layer's file
(label mask, GeoJSON mapped by the model's card), clear refusals, one heatmap per
result, stale answers dropped, the three files saved; two-class results stay binary."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pytestqt.qtbot import QtBot
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

from inference.engine.patches import PatchGrid
from inference.engine.tissue import tissue_mask
from inference.evaluation.class_truth import load_class_truth
from inference.evaluation.metrics import MetricsReport
from inference.evaluation.multiclass import (
    ClassReport,
    collect_class_samples,
    compute_class_metrics,
)
from inference.evaluation.truth import load_truth
from inference.results.store import ResultGrid
from inference.slides import SlideSource, open_slide
from inference.slides.synth.prostate_layout import PROSTATE_CLASSES
from inference.slides.synth.writer import SynthParams, truth_paths, write_synthetic_slide
from tests.helpers.results import batch
from tests.qt.qt_helpers import TIMEOUT_MS, answer_save_dialogs, open_slide_in
from viewer.layers.base import LayerStack
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.metrics import MetricsPanel

NAMES = PROSTATE_CLASSES  # background, stroma, benign, gleason3-5: label value = index
PATCH = 64  # level-0 px per patch of the hand-made results
MODEL = "test-grader"


@pytest.fixture(scope="session")
def prostate_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic needle biopsy with its label mask (``slidelens synth --kind
    prostate --seed 7000``, shrunk: 3000 x 1000 px at 2 um/px)."""
    path = tmp_path_factory.mktemp("prostate") / "biopsy.tiff"
    write_synthetic_slide(
        path, SynthParams(width=3000, height=1000, seed=7000, mpp=2.0, kind="prostate")
    )
    return path


def class_result(slide: Path, *, noise: float, seed: int = 0) -> ResultGrid:
    """A 6-class result over ``slide`` made from its label mask: each patch's class
    shares, blurred by ``noise`` (0: the most likely class is the truth's majority)."""
    source = open_slide(slide)
    dims = source.info.dimensions
    source.close()
    truth = load_class_truth(truth_paths(slide)[0], dims, NAMES)
    assert truth.labels is not None
    step = round(PATCH / truth.l0_per_px)  # mask pixels per patch side
    cols, rows = dims[0] // PATCH, dims[1] // PATCH
    grid = PatchGrid(l0_patch=PATCH, l0_stride=PATCH, l0_origin=(0, 0), p_cols=cols, p_rows=rows)
    rng = np.random.default_rng(seed)
    ij, probs = [], []
    for r in range(rows):
        for c in range(cols):
            block = truth.labels[r * step : (r + 1) * step, c * step : (c + 1) * step]
            shares = np.bincount(block.ravel(), minlength=len(NAMES)) / block.size
            p = shares + noise * rng.random(len(NAMES))
            ij.append((c, r))
            probs.append(p / p.sum())
    result = ResultGrid(grid, NAMES)
    result.add(batch(grid, ij, np.asarray(probs, np.float32)))
    return result


def layers_of(result: ResultGrid, name: str, folder: Path | None = None) -> list[HeatmapLayer]:
    """A result shown as several layers sharing it (class map, two probabilities)."""
    provenance = {"model": MODEL, **({"model_folder": str(folder)} if folder else {})}
    return [
        HeatmapLayer(f"{name}: classes", result, class_index=ARGMAX, provenance=provenance),
        HeatmapLayer(f"{name}: benign", result, class_index=2, provenance=provenance),
        HeatmapLayer(f"{name}: gleason4", result, class_index=4, provenance=provenance),
    ]


def truth_layer(path: Path, dims: tuple[int, int]) -> MaskLayer:
    """The truth layer ``ReferenceLayers.load_truth`` makes of ``path``."""
    truth = load_truth(path, dims)
    return MaskLayer(
        f"Ground truth: {path.name}",
        truth.mask,
        truth.l0_per_px,
        provenance={"kind": "truth", "source": str(path)},
    )


@pytest.fixture
def source(prostate_slide: Path) -> Iterator[SlideSource]:
    opened = open_slide(prostate_slide)
    yield opened
    opened.close()


@pytest.fixture
def panel(qtbot: QtBot, source: SlideSource) -> Iterator[MetricsPanel]:
    """A Metrics panel on its own over the prostate slide."""
    widget = MetricsPanel(LayerStack())
    qtbot.addWidget(widget)
    widget.set_slide(source)
    widget.show()
    yield widget
    # no comparison or drawing left running: a thread cut off at exit aborts Python
    widget.set_slide(None)  # answers still to come start nothing more
    widget.background.wait()


def wait_class_report(qtbot: QtBot, panel: MetricsPanel) -> ClassReport:
    qtbot.waitUntil(lambda: panel.class_report is not None, timeout=TIMEOUT_MS)
    assert panel.class_report is not None
    return panel.class_report


def test_class_report_matches_scikit_learn_and_saves_three_files(
    qtbot: QtBot,
    window: MainWindow,
    prostate_slide: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_slide_in(qtbot, window, prostate_slide)
    result = class_result(prostate_slide, noise=0.9)
    for layer in layers_of(result, "grader"):
        window.canvas.layers.add(layer)
    mask_path = truth_paths(prostate_slide)[0]
    window.analysis.load_truth(mask_path)  # the real way in: ReferenceLayers
    panel = window.analysis.metrics_panel
    report = wait_class_report(qtbot, panel)

    # one entry for the three layers of the result; argmax decides, no threshold
    assert panel.heatmap_combo.count() == 1 and panel.class_mode
    assert not panel.class_combo.isEnabled() and not panel.threshold.isEnabled()
    assert not panel.binary_figures.isVisibleTo(panel)
    assert panel.class_figures.isVisibleTo(panel) and panel.report is None

    source = window.current.source  # type: ignore[union-attr]
    dims = source.info.dimensions
    samples = collect_class_samples(
        result, load_class_truth(mask_path, dims, NAMES), tissue_mask(source), l0_dimensions=dims
    )
    headless = compute_class_metrics(samples, mpp=source.info.mpp)
    assert panel.class_samples is not None
    assert np.array_equal(panel.class_samples.truth, samples.truth)
    truth, predicted = samples.truth, samples.predicted
    assert 0.5 < report.accuracy < 1.0  # type: ignore[operator]  # the noise made errors
    assert report.accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert report.macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))
    kappa = cohen_kappa_score(truth, predicted, labels=list(range(6)), weights="quadratic")
    assert report.quadratic_weighted_kappa == pytest.approx(kappa)
    assert report.confusion.tolist() == headless.confusion.tolist()
    stroma = report.per_class[1]
    assert stroma.auc == pytest.approx(roc_auc_score(truth == 1, samples.probs[:, 1]))

    figures = panel.class_figures
    assert figures.figure_labels["quadratic_weighted_kappa"].text() == f"{kappa:.3f}"
    assert figures.table.rowCount() == len(NAMES)
    share = stroma.truth_count / report.n_samples
    assert figures.cell_text(1, "Class") == "stroma"
    assert figures.cell_text(1, "Truth area") == f"{100 * share:.1f} %"
    assert figures.cell_text(1, "Dice") == f"{stroma.dice:.3f}"
    assert figures.cell_text(3, "AUC") == "n/a"  # no gleason3 on this biopsy
    qtbot.waitUntil(lambda: not panel.class_confusion.pixmap().isNull(), timeout=TIMEOUT_MS)

    opened_at = answer_save_dialogs(monkeypatch, tmp_path / "classes.csv")
    panel.choose_save()
    assert opened_at == [str(prostate_slide.parent / f"biopsy.{MODEL}.metrics.csv")]
    written = [tmp_path / n for n in ("classes.csv", "classes.confusion.csv")]
    written.append(tmp_path / "classes.confusion.png")
    assert all(p.stat().st_size > 0 for p in written)
    with written[0].open() as fh:
        caption, *table = list(csv.reader(fh))
    assert caption == [f"# slide biopsy.tiff, model {MODEL}, truth {mask_path.name}"]
    rows = {row[0]: row for row in table}
    assert [name for name in NAMES if name in rows] == list(NAMES)
    assert float(rows["overall:quadratic_weighted_kappa"][3]) == pytest.approx(kappa)
    with written[1].open() as fh:
        counts = [row[2:] for row in csv.reader(fh) if row[0] == "count"]
    assert [[int(v) for v in row] for row in counts] == report.confusion.tolist()
    with Image.open(written[2]) as image:
        assert image.format == "PNG"
    panel.background.wait()  # no thread left running when the window closes


def test_a_binary_truth_with_a_six_class_result_says_why(
    qtbot: QtBot, panel: MetricsPanel, source: SlideSource, prostate_slide: Path, tmp_path: Path
) -> None:
    dims = source.info.dimensions
    labels = np.asarray(Image.open(truth_paths(prostate_slide)[0]))
    binary = tmp_path / "tumour.png"
    Image.fromarray(np.where(labels >= 3, 255, 0).astype(np.uint8)).save(binary)
    for layer in layers_of(class_result(prostate_slide, noise=0.5), "grader"):
        panel.layers.add(layer)
    panel.layers.add(truth_layer(binary, dims))
    qtbot.waitUntil(lambda: panel.last_error is not None, timeout=TIMEOUT_MS)
    message = panel.last_error
    assert message is not None and message.startswith("tumour.png: a binary mask")
    assert "6 classes" in message and "label image" in message
    assert panel.status.text() == message and panel.class_report is None
    assert not panel.save_button.isEnabled()
    # still usable: the label mask loaded next is compared
    panel.layers.add(truth_layer(truth_paths(prostate_slide)[0], dims))
    panel.truth_combo.setCurrentIndex(0)  # the top truth layer, the label mask
    wait_class_report(qtbot, panel)
    assert panel.last_error is None


def _write_geojson(path: Path, polygons: list[tuple[str, list[list[float]]]]) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"classification": {"name": name}},
        }
        for name, ring in polygons
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _card_folder(folder: Path, truth_classes: dict[str, str] | None) -> Path:
    """A model folder with a card of the six classes (no weights: only its card is read)."""
    folder.mkdir()
    card = {
        "spec_version": "1.0",
        "architecture": "small_cnn",
        "num_classes": len(NAMES),
        "class_names": list(NAMES),
        "patch_size_pixels": PATCH,
        "spacing_um_px": 2.0,
        "transform": [{"name": "ToTensor"}],
        "slidelens": {
            "task": "classification",
            **({"truth_classes": truth_classes} if truth_classes else {}),
        },
    }
    (folder / "config.json").write_text(json.dumps(card))
    return folder


def test_geojson_class_names_are_mapped_by_the_models_card(
    qtbot: QtBot, panel: MetricsPanel, source: SlideSource, prostate_slide: Path, tmp_path: Path
) -> None:
    dims = source.info.dimensions
    geojson = tmp_path / "regions.geojson"
    square = [[0.0, 0.0], [1500.0, 0.0], [1500.0, 1000.0], [0.0, 1000.0], [0.0, 0.0]]
    _write_geojson(geojson, [("Stroma", square), ("Tumour G4", [[x + 1500, y] for x, y in square])])
    result = class_result(prostate_slide, noise=0.5)
    unmapped = _card_folder(tmp_path / "plain", None)
    for layer in layers_of(result, "plain", unmapped):
        panel.layers.add(layer)
    panel.layers.add(truth_layer(geojson, dims))
    qtbot.waitUntil(lambda: panel.last_error is not None, timeout=TIMEOUT_MS)
    assert panel.last_error is not None
    assert panel.last_error.startswith("regions.geojson: classes 'Tumour G4' are not classes")
    assert "truth_classes" in panel.last_error

    mapped = _card_folder(tmp_path / "mapped", {"Tumour G4": "gleason4"})
    for layer in layers_of(class_result(prostate_slide, noise=0.5), "mapped", mapped):
        panel.layers.add(layer)  # on top: chosen
    panel.heatmap_combo.setCurrentIndex(0)
    report = wait_class_report(qtbot, panel)
    counts = {figures.name: figures.truth_count for figures in report.per_class}
    assert counts["stroma"] > 0 and counts["gleason4"] > 0
    assert counts["gleason3"] == counts["gleason5"] == counts["benign"] == 0


def test_an_answer_for_an_earlier_choice_is_dropped(
    qtbot: QtBot, panel: MetricsPanel, source: SlideSource, prostate_slide: Path
) -> None:
    exact = class_result(prostate_slide, noise=0.0)
    noisy = class_result(prostate_slide, noise=0.9, seed=1)
    for layer in [*layers_of(noisy, "noisy"), *layers_of(exact, "exact")]:
        panel.layers.add(layer)
    assert [panel.heatmap_combo.itemText(i) for i in range(2)] == [
        "exact: gleason4",
        "noisy: gleason4",
    ]
    panel.heatmap_combo.setCurrentIndex(0)
    panel.layers.add(truth_layer(truth_paths(prostate_slide)[0], source.info.dimensions))
    assert panel.heatmap_combo.currentText() == "exact: gleason4"  # being compared
    panel.heatmap_combo.setCurrentIndex(1)  # the noisy one, before that answer came
    reports: list[object] = []
    panel.report_ready.connect(reports.append)
    wait_class_report(qtbot, panel)
    panel.background.wait()
    qtbot.wait(100)  # any late answer would have arrived by now
    assert len(reports) == 1 and isinstance(reports[0], ClassReport)
    assert reports[0].accuracy is not None and reports[0].accuracy < 0.99
    # another slide: what is still being compared is dropped
    panel.heatmap_combo.setCurrentIndex(0)
    panel.set_slide(None)
    panel.background.wait()
    qtbot.wait(100)
    assert panel.class_report is None and len(reports) == 1


def test_two_class_results_keep_the_binary_panel(
    qtbot: QtBot, panel: MetricsPanel, source: SlideSource, prostate_slide: Path
) -> None:
    dims = source.info.dimensions
    six = class_result(prostate_slide, noise=0.5)
    for layer in layers_of(six, "grader"):
        panel.layers.add(layer)
    panel.layers.add(truth_layer(truth_paths(prostate_slide)[0], dims))
    wait_class_report(qtbot, panel)
    # one more layer of the compared result: listed in its place, not compared again
    again: list[object] = []
    panel.report_ready.connect(again.append)
    panel.layers.add(HeatmapLayer("grader: stroma", six, class_index=1))
    panel.background.wait()
    qtbot.wait(50)
    assert again == [] and panel.heatmap_combo.currentText() == "grader: stroma"
    # a two-class result (tumour = gleason 3-5), shown by two layers
    probs = six.probabilities()
    tumour = probs[3:].sum(axis=0)
    grid = six.grid
    two = ResultGrid(grid, ("benign", "tumour"))
    ij = [(c, r) for r in range(grid.p_rows) for c in range(grid.p_cols)]
    values = np.array([[1 - tumour[r, c], tumour[r, c]] for c, r in ij], np.float32)
    two.add(batch(grid, ij, values))
    for index in (0, 1):
        panel.layers.add(HeatmapLayer(f"tumour {index}", two, class_index=index))
    assert panel.heatmap_combo.count() == 2
    with qtbot.waitSignal(panel.report_ready, timeout=TIMEOUT_MS) as signal:
        panel.heatmap_combo.setCurrentIndex(0)
    assert isinstance(signal.args[0], MetricsReport) and panel.class_report is None
    assert not panel.class_mode and panel.threshold.isEnabled()
    assert panel.class_combo.isVisibleTo(panel) and panel.binary_figures.isVisibleTo(panel)
    assert not panel.class_figures.isVisibleTo(panel)
    assert panel.report is not None and panel.report.class_name == "tumour"
