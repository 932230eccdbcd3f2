"""Synthetic prostate biopsies: the seed's grade, truth files that agree with each other and
with the grading rule, textures that tell the patterns apart, seamless tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.cli.main import main
from inference.evaluation.class_truth import load_class_truth
from inference.models.demo.cards import GRADER_CLASSES, GRADER_TRUTH_CLASSES
from inference.results.grading import gleason_grade
from inference.slides import open_slide
from inference.slides.synth.prostate_layout import (
    BENIGN,
    GLEASON3,
    GLEASON4,
    GLEASON5,
    PROSTATE_CLASSES,
    STROMA,
    make_prostate_layout,
    plan_for_seed,
)
from inference.slides.synth.prostate_render import ProstateRenderer
from inference.slides.synth.writer import (
    SynthParams,
    truth_json_path,
    truth_paths,
    write_synthetic_slide,
)

SIZE = (3072, 1536)  # 3 x 1.5 mm at 1 um/px: one core
SEED = 9111  # grade group 9111 % 6 = 3 (4+3); no demo model trains on it


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prostate") / "biopsy.tiff"
    params = SynthParams(width=SIZE[0], height=SIZE[1], seed=SEED, mpp=1.0, kind="prostate")
    write_synthetic_slide(path, params)
    return path


@pytest.mark.parametrize("seed", range(30, 48))
def test_the_seed_picks_the_grade_and_areas_that_give_it(seed: int) -> None:
    plan = plan_for_seed(seed)
    assert plan.isup_grade == seed % 6
    if plan.isup_grade == 0:
        assert plan.gleason_score is None and plan.tumour_share == 0
        return
    assert 0.3 <= plan.tumour_share <= 0.55
    assert plan.secondary_share == 0 or 0.2 <= plan.secondary_share <= 0.4
    areas = {plan.primary: 1 - plan.secondary_share}
    if plan.secondary != plan.primary:
        areas[plan.secondary] = plan.secondary_share
    grade = gleason_grade(areas, biopsy=True)
    assert (grade.gleason_score, grade.isup_grade) == (plan.gleason_score, plan.isup_grade)


def test_truth_files_agree_with_each_other_and_the_rule(written: Path) -> None:
    truth = json.loads(truth_json_path(written).read_text())
    plan = plan_for_seed(SEED)
    assert truth["isup_grade"] == plan.isup_grade == 3 and truth["gleason_score"] == "4+3"
    assert truth["labels"] == {str(i): n for i, n in enumerate(PROSTATE_CLASSES)}
    areas = {int(p): a for p, a in truth["pattern_area_mm2"].items()}
    grade = gleason_grade(areas, biopsy=truth["biopsy"])
    assert (grade.gleason_score, grade.isup_grade) == (truth["gleason_score"], 3)
    shares = truth["pattern_fraction_of_tumour"]
    assert shares["3"] == pytest.approx(plan.secondary_share, abs=0.01)
    assert sum(truth["class_fraction"].values()) == pytest.approx(1.0, abs=1e-5)

    mask_path, geojson_path = truth_paths(written)
    mask = load_class_truth(mask_path, SIZE, GRADER_CLASSES)
    assert mask.labels is not None and mask.encoding.startswith("labels")
    px_mm2 = (mask.l0_per_px * 1.0 / 1000) ** 2
    counts = np.bincount(mask.labels.ravel(), minlength=6)
    assert counts[GLEASON4] * px_mm2 == pytest.approx(truth["pattern_area_mm2"]["4"])
    polygons = load_class_truth(
        geojson_path,
        SIZE,
        GRADER_CLASSES,
        truth_classes=GRADER_TRUTH_CLASSES,
        l0_per_px=mask.l0_per_px,
    )
    assert polygons.labels is not None
    assert (polygons.labels == mask.labels).mean() > 0.97


def test_each_pattern_has_its_own_texture(written: Path) -> None:
    """Measured on the slide's pixels, per label: lumens (near-white pixels) are wide in
    benign glands, present in Gleason 3 and 4, absent in the sheets of Gleason 5; nuclei
    (dark pixels) are sparse in stroma and benign glands, dense in Gleason 4 and 5."""
    mask = load_class_truth(truth_paths(written)[0], SIZE, GRADER_CLASSES)
    assert mask.labels is not None
    source = open_slide(written)
    try:
        rgb = source.read_region(0, 0, 0, *SIZE).astype(np.int32)
    finally:
        source.close()
    d = int(mask.l0_per_px)
    labels = np.kron(mask.labels, np.ones((d, d), np.uint8))[: SIZE[1], : SIZE[0]]
    # the inside of each region only (its outermost 40 um may show the neighbour)
    import cv2

    white = (rgb.min(axis=2) > 225) & (rgb.max(axis=2) - rgb.min(axis=2) < 25)
    dark = rgb.sum(axis=2) < 330
    stats = {}
    for label in (STROMA, BENIGN, GLEASON3, GLEASON4, GLEASON5):
        region = cv2.erode((labels == label).astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
        if region.sum() < 5000:
            continue
        stats[label] = (white[region].mean(), dark[region].mean())
    assert {STROMA, BENIGN, GLEASON3, GLEASON4} <= set(stats)  # 4+3: no pattern 5 here
    assert stats[STROMA][0] < 0.02 and stats[BENIGN][0] > 0.15
    assert stats[GLEASON3][0] > 0.05 and stats[GLEASON4][0] > 0.02
    assert stats[GLEASON4][1] > 2 * stats[STROMA][1]
    assert stats[GLEASON4][1] > stats[GLEASON3][1] > stats[BENIGN][1]


def test_pattern_5_is_sheets_without_lumens() -> None:
    seed = 5  # 4+5 / 5+4 / 5+5: pattern 5 is present
    layout = make_prostate_layout(6144, 2048, seed, 1.0)
    renderer = ProstateRenderer(layout, seed, 1.0)
    import cv2

    inner = cv2.erode((layout.labels == GLEASON5).astype(np.uint8), np.ones((15, 15), np.uint8))
    rows, cols = np.nonzero(inner)
    assert len(rows) > 0
    k = len(rows) // 2
    x, y = int(cols[k]) * layout.l0_per_px - 64, int(rows[k]) * layout.l0_per_px - 64
    rgb = renderer.render(x, y, 128, 128).astype(np.int32)
    white = (rgb.min(axis=2) > 225).mean()
    dark = (rgb.sum(axis=2) < 330).mean()
    assert white < 0.01 and dark > 0.2


def test_prostate_tiles_meet_without_seams() -> None:
    layout = make_prostate_layout(4096, 2048, 5, 0.5)
    renderer = ProstateRenderer(layout, 5, 0.5)
    ys, xs = np.nonzero(layout.labels >= GLEASON3)
    x, y = int(xs[len(xs) // 2]) * layout.l0_per_px, int(ys[len(ys) // 2]) * layout.l0_per_px
    whole = renderer.render(x, y, 512, 512).astype(int)
    for dx, dy in [(256, 0), (0, 256), (256, 256)]:
        part = renderer.render(x + dx, y + dy, 256, 256).astype(int)
        assert np.abs(whole[dy : dy + 256, dx : dx + 256] - part).max() <= 1


def test_synth_command_writes_a_prostate_slide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.tiff"
    args = ["synth", str(out), "--kind", "prostate", "--seed", "9110", "--mpp", "4.0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "grade: ISUP 2 (Gleason 3+4)" in printed  # 9110 % 6
    truth = json.loads(truth_json_path(out).read_text())
    assert truth["isup_grade"] == 2 and truth["mpp"] == 4.0
    source = open_slide(out)
    try:
        assert source.info.dimensions == (1536, 512)  # the default 6 x 2 mm
    finally:
        source.close()
    assert main(["synth", str(tmp_path / "t.tiff")]) == 2
    assert "--width and --height are required" in capsys.readouterr().err
