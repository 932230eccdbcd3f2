"""End to end: ``slidelens synth --kind prostate``, ``slidelens infer`` with the bundled demo
grader, ``slidelens evaluate`` of one slide and of a cohort; the grader's card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import tifffile
import torch

from inference.cli.main import main
from inference.models import load_card, load_model
from inference.models.card import validate_card_data
from inference.models.demo.cards import GRADER_CLASSES, GRADER_NAME, WEIGHTS_NAME
from inference.models.demo.data import SlideSpec
from inference.models.demo.grader import (
    COHORT_SEEDS,
    GRADER_HELDOUT_SLIDES,
    GRADER_TEST_SEEDS,
    GRADER_TRAIN_SEEDS,
)
from inference.models.registry import bundled_models_dir
from inference.results.grading import GradingSpec

torch.set_num_threads(1)

#: 3 x 1 mm biopsies at 1 um/px (one needle core), grade groups 2 and 3.
SLIDES = {f"biopsy-{seed}": seed for seed in GRADER_TEST_SEEDS}


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    root = tmp_path_factory.mktemp("grading")
    slides = []
    for stem, seed in SLIDES.items():
        slide = root / f"{stem}.tiff"
        argv = ["synth", str(slide), "--kind", "prostate", "--seed", str(seed)]
        assert main([*argv, "--width", "3072", "--height", "1024", "--mpp", "1.0"]) == 0
        slides.append(slide)
    out = root / "out"
    argv = ["infer", *map(str, slides), "--model", GRADER_NAME, "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--no-cache", "--quiet"]) == 0
    return slides, out


def test_seeds_of_tests_and_cohort_are_never_trained_or_held_out() -> None:
    used = set(GRADER_TRAIN_SEEDS) | {s.seed for s in GRADER_HELDOUT_SLIDES}
    assert not used & set(GRADER_TEST_SEEDS) and not used & set(COHORT_SEEDS)
    assert sorted(s.seed % 6 for s in GRADER_HELDOUT_SLIDES) == [0, 1, 2, 3, 4, 5]
    assert isinstance(GRADER_HELDOUT_SLIDES[0], SlideSpec)


def test_the_bundled_grader_card_is_valid_honest_and_small() -> None:
    folder = bundled_models_dir() / GRADER_NAME
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert validate_card_data(raw, folder) == []
    card = load_card(folder)
    assert card.class_names == GRADER_CLASSES
    for text in (card.description, card.intended_use):
        assert "NOT FOR DIAGNOSIS" in text and "slidelens synth --kind prostate" in text
    assert card.domain.for_diagnosis is False
    spec = GradingSpec.from_card(card)
    assert spec is not None and spec.patterns == {"gleason3": 3, "gleason4": 4, "gleason5": 5}
    assert card.truth_classes["Gleason 4"] == "gleason4"
    for name in GRADER_CLASSES:
        assert 0.5 < card.metrics[f"auc_{name}"] <= 1.0
    assert card.metrics["quadratic_weighted_kappa"] >= 0.8
    heldout = card.training["heldout"]
    matrix = heldout["confusion_matrix"]["matrix"]
    assert len(matrix) == len(matrix[0]) == len(GRADER_CLASSES)
    assert heldout["cohort"]["n_slides"] == len(GRADER_HELDOUT_SLIDES)
    assert card.training["train_seconds"] <= 600
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(sizes) == {"config.json", WEIGHTS_NAME}
    assert sum(sizes.values()) < 2e6
    assert load_model(folder).cam_target_layer == "blocks.5"


def test_infer_writes_the_slide_report_and_every_class_page(
    inferred: tuple[list[Path], Path],
) -> None:
    slides, out = inferred
    stem = slides[1].stem  # seed 9111: grade group 3 (4+3)
    report = json.loads((out / f"{stem}.slide.json").read_text())
    for key in ("isup_grade", "gleason_score", "class_area_mm2", "class_fraction"):
        assert key in report
    assert report["class_names"] == list(GRADER_CLASSES)
    assert report["isup_grade"] in range(6) and report["grading"]["biopsy"] is True
    assert sum(report["class_fraction"].values()) == pytest.approx(1.0, abs=1e-5)
    assert report["class_area_mm2"]["stroma"] > 0
    for name in ("gleason3", "gleason4"):
        region = report["largest_region"][name]
        assert region is not None and len(region["l0_rect"]) == 4
    run = json.loads((out / f"{stem}.run.json").read_text())
    assert run["outputs"]["slide_report"] == f"{stem}.slide.json"
    with tifffile.TiffFile(out / f"{stem}.heatmap.tiff") as tif:
        names = {page.tags["PageName"].value for page in tif.pages}  # type: ignore[union-attr]
    assert names == {f"prob_{n}" for n in GRADER_CLASSES} | {"class_map"}


def test_evaluate_one_slide_finds_its_truth_and_grades_it(
    inferred: tuple[list[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    slides, out = inferred
    capsys.readouterr()
    assert main(["evaluate", str(slides[1]), "--results", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"] == "classes" and doc["class_names"] == list(GRADER_CLASSES)
    assert doc["truth"].endswith(f"{slides[1].stem}.mask.png")
    assert len(doc["confusion_matrix"]["matrix"]) == 6
    assert doc["metrics"]["accuracy"] > 0.8
    assert doc["grade"]["truth"] == {
        "isup_grade": 3,
        "gleason_score": "4+3",
        "file": f"{slides[1].stem}.truth.json",
    }
    assert doc["cohort"]["n_slides"] == 1
    assert (
        doc["grade"]["predicted"]["isup_grade"]
        == doc["cohort"]["slides"][0]["predicted_isup_grade"]
    )


def test_evaluate_a_cohort(
    inferred: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slides, out = inferred
    capsys.readouterr()
    assert main(["evaluate", *map(str, slides), "--results", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["slide"] for s in doc["slides"]] == [str(s) for s in slides]
    cohort = doc["cohort"]
    assert cohort["n_slides"] == 2 and doc["failed"] == []
    assert [s["truth_isup_grade"] for s in cohort["slides"]] == [2, 3]
    assert sum(map(sum, cohort["grade_confusion_matrix"]["matrix"])) == 2
    # the grader gets both right, the Gleason scores too (3+4 and 4+3)
    assert cohort["grade_accuracy"] == 1.0 and cohort["quadratic_weighted_kappa"] == 1.0
    assert [s["predicted_gleason_score"] for s in cohort["slides"]] == ["3+4", "4+3"]

    assert main(["evaluate", *map(str, slides), "--results", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cohort: 2 slides, quadratic weighted kappa" in text
    assert "confusion (rows truth, columns predicted)" in text

    png = tmp_path / "confusion.png"
    argv = ["evaluate", str(slides[0]), "--results", str(out), "--confusion-png", str(png)]
    assert main([*argv, "--confusion-csv", str(tmp_path / "c.csv")]) == 0
    rows = list(csv.reader((tmp_path / "c.csv").read_text().splitlines()))
    assert png.stat().st_size > 0 and rows[0] == [
        f"# slide {slides[0].name}, model {GRADER_NAME}, truth {slides[0].stem}.mask.png"
    ]
    assert rows[1] == ["table", "truth", *GRADER_CLASSES]
    capsys.readouterr()
    assert main([*argv[:-2], "--roc-png", str(png)]) == 2
    assert "per-class AUCs" in capsys.readouterr().err
    assert main(["evaluate", *map(str, slides), "--results", str(out), "--truth", "x.png"]) == 2


def test_one_class_of_many_is_scored_binary(
    inferred: tuple[list[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    slides, out = inferred
    capsys.readouterr()
    argv = ["evaluate", str(slides[1]), "--results", str(out), "--class", "gleason4", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["class"] == {"name": "gleason4", "index": 4}
    assert doc["samples"]["truth_positive"] > 0
    assert doc["metrics"]["auc"] > 0.7
