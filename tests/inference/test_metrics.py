"""Metrics against ground truth: hand-computed counts, exact AUC and area shares,
exclusions, thresholds, segmentation input, plots and CSV, refusals."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text

from inference.core.geometry import Rect
from inference.engine.patches import PatchGrid
from inference.engine.tissue import TissueMask
from inference.evaluation.metrics import (
    OUTCOME_EXCLUDED,
    OUTCOME_FN,
    OUTCOME_FP,
    OUTCOME_TN,
    OUTCOME_TP,
    MetricsError,
    MetricsReport,
    area_fractions,
    collect_samples,
    compute_metrics,
    evaluate,
    roc_auc,
    roc_curve,
)
from inference.evaluation.plots import (
    EvaluationContext,
    confusion_figure,
    metrics_rows,
    roc_figure,
    write_confusion_png,
    write_metrics_csv,
    write_roc_csv,
    write_roc_png,
)
from inference.evaluation.truth import TruthMask
from inference.results.store import ResultGrid, SegmentationMap
from tests.helpers.results import NAMES, batch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _blocks(cells: list[list[int]], px_per_cell: int = 2) -> np.ndarray:
    """A mask in which cell (r, c) is ``px_per_cell`` x ``px_per_cell`` pixels, of which
    the first ``cells[r][c]`` (row-major) are True."""
    rows, cols = len(cells), len(cells[0])
    mask = np.zeros((rows * px_per_cell, cols * px_per_cell), bool)
    for r, c in itertools.product(range(rows), range(cols)):
        block = np.zeros(px_per_cell * px_per_cell, bool)
        block[: cells[r][c]] = True
        k = px_per_cell
        mask[r * k : (r + 1) * k, c * k : (c + 1) * k] = block.reshape(k, k)
    return mask


# A 4 x 3 grid of 100 px patches on a 400 x 300 slide; masks at 50 px, so each cell is
# 2 x 2 mask pixels.  Tumour probabilities (dyadic, exact in float32); None: no value.
SCORES: list[list[float | None]] = [
    [0.875, 0.75, 0.4375, None],  # (0, 3): background
    [0.625, 0.375, 0.4375, 0.25],
    [0.125, 0.5, None, 0.9375],  # (2, 2): never computed; (2, 3): too little tissue
]
# truth pixels per cell (of 4): share 1, 0.5 (exactly half: positive), 0.25, ...
TRUTH_PX = [[4, 2, 1, 4], [3, 0, 4, 0], [0, 1, 4, 4]]
# tissue pixels per cell (of 4): (1, 3) exactly half (tissue), (2, 3) a quarter (not)
TISSUE_PX = [[4, 4, 4, 4], [4, 4, 4, 2], [4, 4, 4, 1]]


@pytest.fixture
def known() -> tuple[ResultGrid, TruthMask, TissueMask]:
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=4, p_rows=3)
    result = ResultGrid(grid, NAMES)
    cells = [(c, r) for r in range(3) for c in range(4) if SCORES[r][c] is not None]
    p = np.array([SCORES[r][c] for c, r in cells], np.float32)[:, None]
    result.add(batch(grid, cells[:1], np.hstack([1 - p, p])[:1], background=[(3, 0)]))
    cells = cells[1:]
    p = np.array([SCORES[r][c] for c, r in cells], np.float32)[:, None]
    result.add(batch(grid, cells, np.hstack([1 - p, p])))
    truth = TruthMask(_blocks(TRUTH_PX), 50.0, Path("truth.png"))
    tissue = TissueMask(_blocks(TISSUE_PX), 50.0)
    return result, truth, tissue


def test_counts_and_rates_equal_hand_computed_values(
    known: tuple[ResultGrid, TruthMask, TissueMask],
) -> None:
    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour", 0.5, l0_dimensions=(400, 300))
    # samples (score, truth):  (0,0) .875 T  (0,1) .75 T  (0,2) .4375 F  (1,0) .625 T
    # (1,1) .375 F  (1,2) .4375 T  (1,3) .25 F  (2,0) .125 F  (2,1) .5 F
    # at >= 0.5: TP = .875 .75 .625; FP = .5; FN = .4375(T); TN = .4375 .375 .25 .125
    assert (report.tp, report.fp, report.fn, report.tn) == (3, 1, 1, 4)
    assert report.n_samples == 9
    assert dict(report.excluded) == {
        "outside_region": 0,
        "background": 1,
        "uncomputed": 1,
        "non_tissue": 1,
    }
    assert report.accuracy == pytest.approx(7 / 9)
    assert report.tpr == pytest.approx(3 / 4) and report.sensitivity == report.tpr
    assert report.tnr == pytest.approx(4 / 5) and report.specificity == report.tnr
    assert report.fpr == pytest.approx(1 / 5)
    assert report.fnr == pytest.approx(1 / 4)
    assert report.precision == pytest.approx(3 / 4) and report.ppv == report.precision
    assert report.npv == pytest.approx(4 / 5)
    assert report.dice == pytest.approx(6 / 8)
    assert report.iou == pytest.approx(3 / 5)
    assert report.prevalence == pytest.approx(4 / 9)
    assert report.predicted_positive_fraction == pytest.approx(4 / 9)
    # pairs: .875 .75 .625 beat all 5 negatives; .4375 beats 3, ties 1, loses to .5
    assert report.auc == pytest.approx(18.5 / 20)
    np.testing.assert_array_equal(report.confusion_matrix, [[4, 1], [1, 3]])
    assert report.confusion_labels == ("not tumour", "tumour")
    line = report.summary()
    assert "Mask area 44.4 %" in line and "accuracy 77.8 %" in line
    assert "TPR 75.0 %" in line and "FPR 20.0 %" in line and "AUC 0.925" in line


def test_class_by_index_name_and_case(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, tissue = known
    by_name = evaluate(result, truth, tissue, "Tumour").to_dict()
    assert by_name == evaluate(result, truth, tissue, 1).to_dict()
    assert by_name == evaluate(result, truth, tissue, -1).to_dict()
    benign = evaluate(result, truth, tissue, "benign")
    # benign scores are 1 - tumour: the ranking reverses, so the AUC mirrors
    assert benign.class_index == 0
    assert benign.auc == pytest.approx(1 - 18.5 / 20)


def test_threshold_behaviour(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, tissue = known
    samples = collect_samples(result, truth, tissue, "tumour")
    counts = {
        t: (r.tp, r.fp, r.fn, r.tn)
        for t in (0.0, 0.4375, 0.5, 0.5001, 0.9, 1.0)
        for r in [compute_metrics(samples, t)]
    }
    assert counts[0.0] == (4, 5, 0, 0)  # everything positive
    assert counts[0.4375] == (4, 2, 0, 3)  # a score equal to the threshold is positive
    assert counts[0.5] == (3, 1, 1, 4)
    assert counts[0.5001] == (3, 0, 1, 5)
    assert counts[0.9] == (0, 0, 4, 5)
    nothing = compute_metrics(samples, 1.0)
    assert counts[1.0] == (0, 0, 4, 5)
    assert nothing.precision is None and nothing.dice == 0.0 and nothing.tpr == 0.0
    # the AUC and the ROC curve do not depend on the threshold
    assert compute_metrics(samples, 0.0).auc == compute_metrics(samples, 1.0).auc
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(MetricsError, match="threshold"):
            compute_metrics(samples, bad)


def test_outcome_map_has_the_result_raster_geometry(
    known: tuple[ResultGrid, TruthMask, TissueMask],
) -> None:
    result, truth, tissue = known
    samples = collect_samples(result, truth, tissue, "tumour")
    tp, fp, fn, tn, ex = OUTCOME_TP, OUTCOME_FP, OUTCOME_FN, OUTCOME_TN, OUTCOME_EXCLUDED
    expected = [[tp, tp, tn, ex], [tp, tn, fn, tn], [tn, fp, ex, ex]]
    np.testing.assert_array_equal(samples.outcome_map(0.5), expected)
    np.testing.assert_array_equal(samples.truth_fraction, [1, 0.5, 0.25, 0.75, 0, 1, 0, 0, 0.25])


def test_exclusions_tissue_none_and_region(
    known: tuple[ResultGrid, TruthMask, TissueMask],
) -> None:
    result, truth, tissue = known
    everywhere = evaluate(result, truth, None, "tumour")
    # without a tissue mask the (2, 3) cell (score .9375, truth 4/4) is a true positive
    assert everywhere.excluded["non_tissue"] == 0 and everywhere.n_samples == 10
    assert everywhere.tp == 4
    # a stricter tissue rule drops the half-tissue cell (1, 3) too
    strict = evaluate(result, truth, tissue, "tumour", min_tissue_fraction=0.75)
    assert strict.excluded["non_tissue"] == 2 and strict.n_samples == 8
    # a region keeps the cells whose centre lies in it: the left two columns
    left = evaluate(result, truth, tissue, "tumour", l0_region=Rect(0, 0, 200, 300))
    assert left.excluded == {
        "outside_region": 6,
        "background": 0,
        "uncomputed": 0,
        "non_tissue": 0,
    }
    assert (left.tp, left.fp, left.fn, left.tn) == (3, 1, 0, 2)
    # the truth rule follows min_truth_fraction; half-covered (0, 1) is then negative
    strict_truth = evaluate(result, truth, tissue, "tumour", min_truth_fraction=0.75)
    assert strict_truth.n_positive == 3


def test_nothing_to_evaluate_is_refused(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, _ = known
    no_tissue = TissueMask(np.zeros((6, 8), bool), 50.0)
    with pytest.raises(
        MetricsError, match=r"nothing to evaluate.*1 background, 1 uncomputed, 10 non tissue"
    ):
        evaluate(result, truth, no_tissue, "tumour")
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=4, p_rows=3)
    with pytest.raises(MetricsError, match="12 uncomputed"):
        evaluate(ResultGrid(grid, NAMES), truth, None, "tumour")
    with pytest.raises(MetricsError, match="outside region"):
        evaluate(result, truth, None, "tumour", l0_region=Rect(1000, 1000, 10, 10))


def test_bad_inputs_are_refused(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, tissue = known
    with pytest.raises(MetricsError, match=r"unknown class 'stroma'.*benign, tumour"):
        evaluate(result, truth, tissue, "stroma")
    with pytest.raises(MetricsError, match="class index 2 is out of range"):
        evaluate(result, truth, tissue, 2)
    with pytest.raises(MetricsError, match="threshold"):
        evaluate(result, truth, tissue, "tumour", 2.0)
    # a truth of another slide's size
    with pytest.raises(MetricsError, match=r"truth\.png: .*800 x 600.*not this slide"):
        evaluate(result, truth, tissue, "tumour", l0_dimensions=(800, 600))
    big_truth = TruthMask(np.zeros((12, 16), bool), 50.0, Path("big.geojson"))
    with pytest.raises(MetricsError, match=r"big\.geojson: .*tissue mask"):
        evaluate(result, big_truth, tissue, "tumour")
    # a result whose raster lies outside the truth
    far = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(5000, 5000), p_cols=2, p_rows=2)
    with pytest.raises(MetricsError, match="outside the ground truth"):
        evaluate(ResultGrid(far, NAMES), truth, None, "tumour")
    with pytest.raises(MetricsError, match="minimum truth fraction"):
        evaluate(result, truth, tissue, "tumour", min_truth_fraction=0.0)


def test_one_truth_class_leaves_auc_undefined_and_json_clean(
    known: tuple[ResultGrid, TruthMask, TissueMask], tmp_path: Path
) -> None:
    result, _, tissue = known
    empty = TruthMask(np.zeros((6, 8), bool), 50.0, Path("empty.png"))
    report = evaluate(result, empty, tissue, "tumour")
    assert report.auc is None and len(report.roc) == 0
    assert report.tpr is None and report.fnr is None and report.fp == 4
    assert any("no positive grid square" in note for note in report.notes)
    doc = report.to_dict()
    text = json.dumps(doc, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["metrics"]["auc"] is None
    assert "AUC n/a" in report.summary()
    png = write_roc_png(tmp_path / "roc.png", report)
    assert png.read_bytes().startswith(PNG_MAGIC)
    lines = write_roc_csv(tmp_path / "roc.csv", report).read_text().splitlines()
    assert lines == ["threshold,fpr,tpr"]


# -- AUC and ROC -----------------------------------------------------------------------


def _pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_auc_equals_brute_force_pairwise_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 120))
    levels = int(rng.integers(1, 6))  # few distinct scores: many ties (one level: all tied)
    scores = rng.integers(0, levels, n) / 4.0
    labels = rng.random(n) < 0.3
    labels[0], labels[-1] = True, False
    assert roc_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    # and the trapezoid area under the ROC curve is the same number
    curve = roc_curve(scores, labels)
    area = float(np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2))
    assert area == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    assert curve.thresholds[0] == np.inf and (curve.fpr[-1], curve.tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve.thresholds) < 0)


def test_auc_of_one_class_is_undefined() -> None:
    assert roc_auc(np.array([0.1, 0.2]), np.array([True, True])) is None
    assert roc_auc(np.array([0.1, 0.2]), np.array([False, False])) is None
    assert roc_auc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(np.array([np.nan, 0.2]), np.array([True, False]))


def test_auc_and_roc_match_scikit_learn() -> None:
    from sklearn import metrics

    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(3, 400))
        scores = np.round(rng.random(n), int(rng.integers(1, 3))).astype(np.float32)
        labels = rng.random(n) < rng.uniform(0.1, 0.9)
        labels[0], labels[1] = True, False
        assert roc_auc(scores, labels) == pytest.approx(
            metrics.roc_auc_score(labels, scores), abs=1e-12
        )
        fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
        curve = roc_curve(scores, labels)
        np.testing.assert_allclose(curve.fpr, fpr)
        np.testing.assert_allclose(curve.tpr, tpr)
        np.testing.assert_array_equal(curve.thresholds[1:], thresholds[1:])


def test_roc_thinning_keeps_the_ends() -> None:
    rng = np.random.default_rng(3)
    scores, labels = rng.random(5000), rng.random(5000) < 0.5
    curve = roc_curve(scores, labels)
    assert len(curve) > 100
    thin = curve.thinned(50)
    assert len(thin) <= 50
    assert (thin.fpr[0], thin.tpr[0], thin.fpr[-1], thin.tpr[-1]) == (0, 0, 1, 1)
    with pytest.raises(ValueError):
        curve.thinned(1)


# -- exact area shares -------------------------------------------------------------------


def _brute_fractions(
    mask: np.ndarray, mask_px: int, origin: tuple[int, int], cell: int, shape: tuple[int, int]
) -> np.ndarray:
    """Area shares by expanding the mask to level-0 pixels (exact for integer geometry)."""
    fine = np.kron(mask.astype(np.int64), np.ones((mask_px, mask_px), np.int64))
    out = np.zeros(shape)
    for r, c in itertools.product(range(shape[0]), range(shape[1])):
        y0, x0 = origin[1] + r * cell, origin[0] + c * cell
        out[r, c] = fine[max(0, y0) : y0 + cell, max(0, x0) : x0 + cell].sum() / (cell * cell)
    return out


@pytest.mark.parametrize(
    ("mask_px", "origin", "cell", "shape"),
    [
        (7, (13, 5), 11, (9, 8)),  # raster cells finer than mask pixels, misaligned
        (3, (4, 0), 16, (4, 5)),  # coarser, reaching past the mask's right edge
        (5, (0, 2), 5, (13, 10)),  # same size, offset; the last rows lie past the mask
    ],
)
def test_area_fractions_are_exact(
    mask_px: int, origin: tuple[int, int], cell: int, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(cell)
    mask = rng.random((12, 10)) < 0.4
    got = area_fractions(mask, float(mask_px), (float(origin[0]), float(origin[1])), cell, shape)
    np.testing.assert_allclose(
        got, _brute_fractions(mask, mask_px, origin, cell, shape), atol=1e-12
    )


def test_area_fractions_in_blocks_match_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import inference.evaluation.sampling as sampling

    rng = np.random.default_rng(1)
    mask = rng.random((60, 70)) < 0.5
    whole = area_fractions(mask, 4.0, (3.0, 7.0), 9.5, (25, 28))
    monkeypatch.setattr(sampling, "_BLOCK_ELEMENTS", 1)  # one raster row at a time
    np.testing.assert_allclose(area_fractions(mask, 4.0, (3.0, 7.0), 9.5, (25, 28)), whole)


def test_truth_at_cell_boundaries_uses_exact_area(tmp_path: Path) -> None:
    """A polygon edge inside a cell: 50 % covered is positive, 49 % is not, whatever
    the pixel at the cell's centre says."""
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=3, p_rows=1)
    result = ResultGrid(grid, NAMES)
    p = np.array([[0.8], [0.6], [0.4]], np.float32)
    result.add(batch(grid, [(0, 0), (1, 0), (2, 0)], np.hstack([1 - p, p])))

    def truth_to(l0_x_right: int) -> TruthMask:
        """Truth over level-0 x < l0_x_right, at one level-0 px per mask px."""
        mask = np.zeros((100, 300), bool)
        mask[:, :l0_x_right] = True
        return TruthMask(mask, 1.0, Path(f"edge-{l0_x_right}.png"))

    half = collect_samples(result, truth_to(150), None, "tumour")
    np.testing.assert_allclose(half.truth_fraction, [1.0, 0.5, 0.0])
    assert half.truth.tolist() == [True, True, False]
    under = collect_samples(result, truth_to(149), None, "tumour")
    np.testing.assert_allclose(under.truth_fraction, [1.0, 0.49, 0.0])
    assert under.truth.tolist() == [True, False, False]
    # nearest sampling at the cell centre (x = 150) would call both cells the same
    assert compute_metrics(half).tp == 2 and compute_metrics(under).fp == 1
    # the same edge on a coarser mask whose pixels straddle no cell edge (25 px each)
    coarse = TruthMask(truth_to(150).mask[::25, ::25], 25.0, Path("coarse.png"))
    np.testing.assert_allclose(
        collect_samples(result, coarse, None, "tumour").truth_fraction, [1.0, 0.5, 0.0]
    )
    # and on one whose pixels (40 px) straddle the cell edges: 100..160 of cell 1
    straddling_mask = np.zeros((3, 8), bool)
    straddling_mask[:, :3] = True  # level-0 x < 120
    straddling = TruthMask(straddling_mask, 40.0, Path("straddling.png"))
    np.testing.assert_allclose(
        collect_samples(result, straddling, None, "tumour").truth_fraction, [1.0, 0.2, 0.0]
    )


# -- segmentation -----------------------------------------------------------------------


def test_segmentation_map_pixels_are_samples() -> None:
    # two 100 px patches side by side; the left one skipped as background; the right
    # one a 4 x 4 tile at 25 level-0 px per map pixel
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=2, p_rows=1)
    seg = SegmentationMap(grid, NAMES, l0_per_px=25.0, tile_px=4)
    tumour = np.array(
        [[0.9, 0.9, 0.2, 0.1], [0.8, 0.7, 0.1, 0.1], [0.9, 0.3, 0.6, 0.1], [0.9, 0.9, 0.1, 0.1]],
        np.float32,
    )
    tiles = np.stack([1 - tumour, tumour])[None]
    seg.add(batch(grid, [(1, 0)], tiles, background=[(0, 0)], l0_per_px=25.0))
    # truth: the left half of the right patch (map columns 4, 5), at 12.5 px per mask
    # pixel so that map pixel (0, 6) is half covered and (1, 6) a quarter
    truth_mask = np.zeros((8, 16), bool)
    truth_mask[:, 8:12] = True
    truth_mask[0:2, 12] = True
    truth_mask[2, 12] = True
    truth = TruthMask(truth_mask, 12.5, Path("seg.png"))
    report = evaluate(seg, truth, None, "tumour", 0.5, l0_dimensions=(200, 100))
    assert report.task == "segmentation" and report.cell_l0_px == 25.0
    assert report.excluded["background"] == 16 and report.n_samples == 16
    # truth positive: columns 4-5 (8 px) and (0, 6) (half covered) -> 9
    # predicted >= .5: column 4 all (4), column 5 rows 0, 1, 3 (3), (2, 6) -> 8
    # TP = 7 (columns 4-5 except (2, 5)); FP = (2, 6); FN = (2, 5), (0, 6)
    assert (report.tp, report.fp, report.fn, report.tn) == (7, 1, 2, 6)
    samples = collect_samples(seg, truth, None, "tumour")
    assert samples.truth_fraction.max() == 1.0
    cells = zip(samples.rows.tolist(), samples.cols.tolist(), strict=True)
    fraction = dict(zip(cells, samples.truth_fraction.tolist(), strict=True))
    assert fraction[(0, 6)] == 0.5 and fraction[(1, 6)] == 0.25
    assert report.auc == pytest.approx(_pairwise_auc(samples.scores, samples.truth))


# -- report, plots and tables -------------------------------------------------------------


def test_report_to_dict_is_plain_json(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour", mpp=0.5)
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["counts"] == {"tp": 3, "tn": 4, "fp": 1, "fn": 1}
    assert doc["confusion_matrix"]["matrix"] == [[4, 1], [1, 3]]
    assert doc["samples"]["n"] == 9 and doc["samples"]["excluded"]["background"] == 1
    assert doc["metrics"]["dice"] == pytest.approx(0.75)
    assert doc["roc"]["thresholds"][0] is None  # +inf has no JSON form
    assert len(doc["roc"]["fpr"]) == doc["roc"]["points_total"] == len(report.roc)
    # 9 cells of 100 x 100 px at 0.5 um/px: 50 um squares, 0.0025 mm² each
    assert doc["areas_mm2"]["tissue"] == pytest.approx(9 * 0.0025)
    assert doc["areas_mm2"]["predicted_positive"] == pytest.approx(4 * 0.0025)
    assert report.to_dict(max_roc_points=2)["roc"]["fpr"] == [0.0, 1.0]


def test_plots_and_csv_are_written(
    known: tuple[ResultGrid, TruthMask, TissueMask], tmp_path: Path
) -> None:
    from PIL import Image

    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour")
    for write in (write_roc_png, write_confusion_png):
        path = write(tmp_path / f"{write.__name__}.png", report)
        assert path.read_bytes().startswith(PNG_MAGIC)
        with Image.open(path) as image:
            assert min(image.size) > 200
            colours = np.asarray(image.convert("RGB")).reshape(-1, 3)
            assert len(np.unique(colours, axis=0)) > 10  # something was drawn

    with write_metrics_csv(tmp_path / "m.csv", report).open() as fh:
        rows = {row["metric"]: row["value"] for row in csv.DictReader(fh)}
    assert rows["tp"] == "3" and rows["fn"] == "1" and rows["n_samples"] == "9"
    assert float(rows["accuracy"]) == pytest.approx(7 / 9, abs=1e-5)
    assert float(rows["auc"]) == pytest.approx(0.925)
    assert rows["excluded_non_tissue"] == "1" and rows["class"] == "tumour"

    with write_roc_csv(tmp_path / "roc.csv", report).open() as fh:
        roc_rows = list(csv.DictReader(fh))
    assert len(roc_rows) == len(report.roc)
    assert roc_rows[0] == {"threshold": "inf", "fpr": "0.0", "tpr": "0.0"}
    np.testing.assert_allclose([float(r["tpr"]) for r in roc_rows], report.roc.tpr)


def test_files_name_the_slide_model_truth_and_threshold(
    known: tuple[ResultGrid, TruthMask, TissueMask], tmp_path: Path
) -> None:
    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour", 0.4)
    context = EvaluationContext.of(report, slide="case7.svs", model="demo-x")
    assert context.truth == truth.path.name and context.threshold == 0.4
    with write_metrics_csv(tmp_path / "m.csv", report, context).open() as fh:
        rows = {row["metric"]: row["value"] for row in csv.DictReader(fh)}
    assert (rows["slide"], rows["model"], rows["truth"]) == ("case7.svs", "demo-x", context.truth)
    assert rows["threshold"] == "0.4" and rows["n_samples"] == "9"
    for make in (roc_figure, confusion_figure):
        figure = make(report, context=context)
        texts = " ".join(t.get_text() for t in figure.findobj(Text)).replace("\n", " ")
        assert f"slide case7.svs, model demo-x, truth {context.truth}, threshold 0.4" in texts
    assert "tissue grid squares" in texts + roc_figure(report).axes[0].get_title()
    other = EvaluationContext("a", "b", "c", threshold=0.9)
    with pytest.raises(ValueError, match=r"threshold 0\.9 is not the report's 0\.4"):
        write_metrics_csv(tmp_path / "bad.csv", report, other)


def test_user_facing_text_says_grid_squares_not_cells(
    known: tuple[ResultGrid, TruthMask, TissueMask],
) -> None:
    """ "cells" reads as biological cells to a pathologist."""
    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour")
    labels = [label for _key, label, _value in metrics_rows(report)]
    shown = [report.summary(), roc_figure(report).axes[0].get_title(), *labels]
    assert not [text for text in shown if "cell" in text.lower()]
    assert "tissue grid squares" in report.summary()


def test_report_is_a_value(known: tuple[ResultGrid, TruthMask, TissueMask]) -> None:
    result, truth, tissue = known
    report = evaluate(result, truth, tissue, "tumour")
    assert isinstance(report, MetricsReport)
    with pytest.raises(AttributeError):
        report.tp = 5  # type: ignore[misc]
