"""Metrics of many classes: the confusion matrix, accuracy, macro-F1, quadratic weighted
kappa and per-class figures against hand-computed values and scikit-learn; ground truth
of many classes from label masks and classified GeoJSON; the cohort's grade agreement;
the files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, roc_auc_score

from inference.engine.patches import PatchGrid
from inference.evaluation.class_plots import (
    write_class_confusion_csv,
    write_class_confusion_png,
    write_class_metrics_csv,
)
from inference.evaluation.class_truth import class_index_of, load_class_truth
from inference.evaluation.cohort import SlideGrade, cohort_summary, read_truth_grade
from inference.evaluation.multiclass import (
    collect_class_samples,
    compute_class_metrics,
    quadratic_weighted_kappa,
)
from inference.evaluation.sampling import MetricsError
from inference.evaluation.truth import TruthError, TruthMask
from inference.results.store import ResultGrid
from tests.helpers.results import batch

NAMES = ("a", "b", "c")
# a 4 x 2 grid of 100 px patches; the truth mask has 2 x 2 pixels per patch (50 px each)
# truth pixels of each patch, row-major: a majority decides; a 2/2 tie goes to the first
TRUTH_PIXELS = [
    [[0, 0, 0, 0], [1, 1, 1, 2], [2, 2, 2, 2], [2, 2, 1, 1]],
    [[0, 0, 0, 1], [1, 1, 1, 1], [2, 2, 2, 0], [0, 0, 2, 2]],
]
TRUTH = [0, 1, 2, 1, 0, 1, 2, 0]  # row by row
PREDICTED = [0, 2, 2, 1, 1, 1, 2, 0]
SCORES = [0.6, 0.7, 0.8, 0.5, 0.45, 0.9, 0.55, 0.65]  # probability of the predicted class


def _probs(k: int, p: float) -> list[float]:
    out = [(1 - p) / 2] * 3
    out[k] = p
    return out


@pytest.fixture
def known() -> tuple[ResultGrid, TruthMask]:
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=4, p_rows=2)
    result = ResultGrid(grid, NAMES)
    ij = [(c, r) for r in range(2) for c in range(4)]
    probs = np.array([_probs(k, p) for k, p in zip(PREDICTED, SCORES, strict=True)])
    result.add(batch(grid, ij, probs))
    labels = np.zeros((4, 8), np.uint8)
    for r in range(2):
        for c in range(4):
            labels[2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = np.reshape(TRUTH_PIXELS[r][c], (2, 2))
    return result, TruthMask(labels > 0, 50.0, Path("truth.png"), labels=labels)


def test_samples_take_the_majority_class_of_each_square(
    known: tuple[ResultGrid, TruthMask],
) -> None:
    result, truth = known
    samples = collect_class_samples(result, truth, None)
    assert samples.truth.tolist() == TRUTH
    assert samples.predicted.tolist() == PREDICTED
    assert samples.truth_share.tolist() == [1, 0.75, 1, 0.5, 0.75, 1, 0.75, 0.5]


def test_figures_equal_hand_computed_values_and_scikit_learn(
    known: tuple[ResultGrid, TruthMask],
) -> None:
    result, truth = known
    report = compute_class_metrics(collect_class_samples(result, truth, None), mpp=0.5)
    #           predicted a  b  c
    expected = [[2, 1, 0], [0, 2, 1], [0, 0, 2]]
    assert report.confusion.tolist() == expected
    assert report.confusion.tolist() == confusion_matrix(TRUTH, PREDICTED).tolist()
    assert report.accuracy == 6 / 8
    assert report.macro_f1 == pytest.approx(f1_score(TRUTH, PREDICTED, average="macro"))
    # F1: a 2*2/(2*2+0+1) = 0.8; b 2*2/(4+1+1) = 2/3; c 2*2/(4+1+0) = 0.8
    assert report.macro_f1 == pytest.approx((0.8 + 2 / 3 + 0.8) / 3)
    kappa = cohen_kappa_score(TRUTH, PREDICTED, weights="quadratic")
    assert report.quadratic_weighted_kappa == pytest.approx(kappa)
    a, b, c = report.per_class
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 0, 1, 5)
    assert (b.tp, b.fp, b.fn, b.tn) == (2, 1, 1, 4)
    assert a.sensitivity == 2 / 3 and a.specificity == 1.0 and a.dice == 0.8
    assert b.iou == 0.5 and b.precision == 2 / 3
    assert c.sensitivity == 1.0 and c.specificity == 5 / 6
    probs = result.probabilities()[:, :, :].reshape(3, -1).T
    for k, figures in enumerate(report.per_class):
        truth_k = np.array(TRUTH) == k
        assert figures.auc == pytest.approx(roc_auc_score(truth_k, probs[:, k]))
    doc = report.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["confusion_matrix"]["row_normalised"][0] == [2 / 3, 1 / 3, 0.0]
    assert doc["per_class"][1]["truth_area_mm2"] == pytest.approx(3 * 0.05**2)
    assert "grid squares" in doc["summary"]


def test_quadratic_weighted_kappa_by_hand() -> None:
    # observed disagreement sum(w * O) = 2, expected sum(w * E) = 22 / 4: kappa = 7 / 11
    truth, predicted = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])
    assert quadratic_weighted_kappa(truth, predicted, [0, 1, 2]) == pytest.approx(7 / 11)
    assert quadratic_weighted_kappa(np.array([1, 1]), np.array([1, 1]), [0, 1, 2]) is None
    assert quadratic_weighted_kappa(np.array([1, 1]), np.array([2, 2]), [0, 1, 2]) == 0.0


def test_undefined_figures_are_none(known: tuple[ResultGrid, TruthMask]) -> None:
    result, truth = known
    only_b = TruthMask(truth.mask, 50.0, truth.path, labels=np.ones_like(truth.labels))
    report = compute_class_metrics(collect_class_samples(result, only_b, None))
    a, b, _ = report.per_class
    assert a.sensitivity is None and a.auc is None and b.auc is None
    assert report.confusion_normalised[0] == [None, None, None]
    json.dumps(report.to_dict(), allow_nan=False)


def test_labels_the_result_has_no_class_for_are_refused(
    known: tuple[ResultGrid, TruthMask],
) -> None:
    result, truth = known
    labels = truth.labels.copy()
    labels[0, 0] = 5
    with pytest.raises(MetricsError, match="holds label 5, but the result has 3 classes"):
        collect_class_samples(result, TruthMask(labels > 0, 50.0, truth.path, labels=labels), None)


def test_class_files_are_written(known: tuple[ResultGrid, TruthMask], tmp_path: Path) -> None:
    result, truth = known
    report = compute_class_metrics(collect_class_samples(result, truth, None))
    png = write_class_confusion_png(tmp_path / "c.png", report, caption="slide s, model m")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    rows = list(
        csv.reader(write_class_confusion_csv(tmp_path / "c.csv", report).read_text().splitlines())
    )
    assert rows[0] == ["table", "truth", "a", "b", "c"]
    assert rows[1] == ["count", "a", "2", "1", "0"]
    assert rows[4][:3] == ["row_share", "a", "0.666667"]
    metrics_csv = write_class_metrics_csv(tmp_path / "m.csv", report)
    metrics = list(csv.reader(metrics_csv.read_text().splitlines()))
    assert metrics[1][0] == "a" and metrics[1][4] == "1"  # specificity of a
    assert metrics[-1][0] == "overall:quadratic_weighted_kappa"


# -- ground truth of many classes ---------------------------------------------------------

SIX = ("background", "stroma", "benign", "gleason3", "gleason4", "gleason5")


def test_label_mask_values_are_class_indices(tmp_path: Path) -> None:
    values = np.zeros((20, 40), np.uint8)
    values[:, 10:20], values[:, 20:30], values[:, 30:] = 1, 3, 5
    path = tmp_path / "labels.png"
    Image.fromarray(values).save(path)
    truth = load_class_truth(path, (400, 200), SIX)
    assert truth.labels is not None and truth.l0_per_px == 10
    assert np.array_equal(truth.labels, values)
    assert "3 gleason3" in truth.note
    with pytest.raises(TruthError, match="holds label 5, but the model has 3 classes"):
        load_class_truth(path, (400, 200), ("a", "b", "c"))
    binary = tmp_path / "binary.png"
    Image.fromarray((values > 0).astype(np.uint8) * 255).save(binary)
    with pytest.raises(TruthError, match="binary mask"):
        load_class_truth(binary, (400, 200), SIX)
    zero_one = tmp_path / "zero_one.png"
    Image.fromarray((values > 0).astype(np.uint8)).save(zero_one)
    assert load_class_truth(zero_one, (400, 200), SIX).labels.max() == 1  # type: ignore[union-attr]


def _feature(name: str | None, x0: float, y0: float, x1: float, y1: float) -> dict[str, object]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    props: dict[str, object] = {"objectType": "annotation"}
    if name is not None:
        props["classification"] = {"name": name, "color": [1, 2, 3]}
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
    }


def test_geojson_classes_are_mapped_and_painted_in_order(tmp_path: Path) -> None:
    features = [
        _feature("Stroma", 0, 0, 400, 200),
        _feature("Gleason 4", 100, 0, 200, 100),
        _feature("BENIGN", 300, 100, 400, 200),
        _feature("Gleason 3", 150, 50, 250, 150),  # painted over part of Gleason 4
    ]
    path = tmp_path / "truth.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    mapping = {"Gleason 3": "gleason3", "gleason 4": "gleason4"}
    truth = load_class_truth(path, (400, 200), SIX, truth_classes=mapping, l0_per_px=10)
    labels = truth.labels
    assert labels is not None and labels.shape == (20, 40)
    assert labels[0, 0] == 1 and labels[2, 12] == 4 and labels[12, 35] == 2
    assert labels[8, 18] == 3 and labels[5, 22] == 3 and labels[2, 16] == 4
    path.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [*features, _feature("Necrosis", 0, 0, 9, 9)]}
        )
    )
    with pytest.raises(TruthError, match="'Gleason 3', 'Gleason 4', 'Necrosis'"):
        load_class_truth(path, (400, 200), SIX, l0_per_px=10)
    path.write_text(json.dumps([_feature(None, 0, 0, 9, 9)]))
    with pytest.raises(TruthError, match=r"'\(unclassified\)'.*truth_classes"):
        load_class_truth(path, (400, 200), SIX, l0_per_px=10)


def test_class_names_match_exactly_then_ignoring_case_and_spelling() -> None:
    names = ("other", "tumour", "Gleason3")
    assert class_index_of("tumour", names) == 1
    assert class_index_of("Tumor", names) == 1  # QuPath's spelling
    assert class_index_of("GLEASON3", names) == 2
    assert class_index_of("Gleason 3", names) is None
    assert class_index_of("Gleason 3", names, {"Gleason 3": "Gleason3"}) == 2
    assert class_index_of("necrosis", names) is None


# -- the cohort ---------------------------------------------------------------------------


def test_cohort_kappa_accuracy_and_grade_confusion(tmp_path: Path) -> None:
    grades = [
        SlideGrade("s0", 0, 0),
        SlideGrade("s1", 1, 2, "3+3", "3+4"),
        SlideGrade("s2", 2, 2, "3+4", "3+4"),
        SlideGrade("s3", 2, 1, "3+4", "3+3"),
    ]
    cohort = cohort_summary(grades)
    assert cohort["quadratic_weighted_kappa"] == pytest.approx(7 / 11)
    kappa = cohen_kappa_score([0, 1, 2, 2], [0, 2, 2, 1], weights="quadratic")
    assert cohort["quadratic_weighted_kappa"] == pytest.approx(kappa)
    assert cohort["grade_accuracy"] == 0.5 and cohort["n_slides"] == 4
    matrix = cohort["grade_confusion_matrix"]["matrix"]
    assert len(matrix) == 6 and matrix[1][2] == 1 and matrix[2][1] == 1 and matrix[2][2] == 1
    assert cohort["slides"][1]["predicted_gleason_score"] == "3+4"
    truth = tmp_path / "s.truth.json"
    truth.write_text(json.dumps({"isup_grade": 3, "gleason_score": "4+3"}))
    assert read_truth_grade(truth) == (3, "4+3")
    truth.write_text(json.dumps({"isup_grade": 7}))
    with pytest.raises(ValueError, match="no 'isup_grade' of 0-5"):
        read_truth_grade(truth)


def test_label_fractions_of_a_patch_count_the_outside_as_background() -> None:
    from inference.core.geometry import Rect

    labels = np.array([[1, 1, 2, 2], [1, 3, 3, 2]], np.uint8)
    truth = TruthMask(labels > 0, 10.0, Path("t.png"), labels=labels)
    np.testing.assert_allclose(
        truth.label_fractions_in(Rect(0, 0, 20, 20), 4), [0.0, 0.75, 0.0, 0.25]
    )
    # half of this window lies past the mask's right edge: background
    np.testing.assert_allclose(
        truth.label_fractions_in(Rect(30, 0, 20, 20), 4), [0.5, 0.0, 0.5, 0.0]
    )
    binary = TruthMask(labels > 1, 10.0, Path("b.png"))
    np.testing.assert_allclose(binary.label_fractions_in(Rect(0, 0, 40, 20), 2), [0.375, 0.625])
