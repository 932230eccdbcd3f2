"""``slidelens export`` of a grading model's results: the figure's provenance carries the
grade and class areas of ``<stem>.slide.json``; a report that cannot be used is a warning
line naming it, never a failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from inference.cli.main import main as cli_main
from inference.models.demo.cards import GRADER_NAME
from viewer.__main__ import main
from viewer.grade_provenance import PROVENANCE_KEY, SUMMARY_KEYS

SEED = 9110  # truth: ISUP 2, Gleason 3+4


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("graded")
    slide = root / "biopsy.tiff"
    argv = ["synth", str(slide), "--kind", "prostate", "--seed", str(SEED)]
    assert cli_main([*argv, "--width", "3072", "--height", "1024", "--mpp", "1.0"]) == 0
    out = root / "out"
    argv = ["infer", str(slide), "--model", GRADER_NAME, "--out", str(out)]
    assert cli_main([*argv, "--device", "cpu", "--no-cache", "--quiet"]) == 0
    return slide, out


def _export(slide: Path, results: Path, figure: Path) -> dict[str, Any]:
    argv = ["export", str(slide), "--results", str(results), "--mpp", "8", "--quiet"]
    assert main([*argv, "--out", str(figure)]) == 0
    doc: dict[str, Any] = json.loads(figure.with_name(f"{figure.name}.json").read_text())
    return doc


def test_the_figure_carries_the_grade_of_the_slide_report(
    inferred: tuple[Path, Path], tmp_path: Path
) -> None:
    slide, out = inferred
    report = json.loads((out / "biopsy.slide.json").read_text())
    doc = _export(slide, out, tmp_path / "fig.png")
    (layer,) = doc["layers"]
    summary = layer["provenance"][PROVENANCE_KEY]
    assert summary == {key: report[key] for key in SUMMARY_KEYS}
    assert (summary["isup_grade"], summary["gleason_score"]) == (2, "3+4")
    assert summary["class_area_mm2"]["gleason3"] > 0 and summary["mpp"] == 1.0


def test_a_report_that_cannot_be_used_is_a_warning(
    inferred: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    results = tmp_path / "results"
    shutil.copytree(out, results)
    report_path = results / "biopsy.slide.json"
    report = json.loads(report_path.read_text())

    report_path.write_text("{damaged")
    capsys.readouterr()
    doc = _export(slide, results, tmp_path / "damaged.png")
    assert PROVENANCE_KEY not in doc["layers"][0]["provenance"]
    err = capsys.readouterr().err
    assert "warning" in err and "biopsy.slide.json" in err and "no grade" in err

    report["model"]["sha256"] = "ef" * 32  # another model's report beside these results
    report_path.write_text(json.dumps(report))
    doc = _export(slide, results, tmp_path / "other.png")
    assert PROVENANCE_KEY not in doc["layers"][0]["provenance"]
    assert "another model" in capsys.readouterr().err

    report_path.unlink()  # no report at all: nothing to say
    doc = _export(slide, results, tmp_path / "none.png")
    assert PROVENANCE_KEY not in doc["layers"][0]["provenance"]
    assert capsys.readouterr().err == ""


def test_a_multi_class_figure_shows_the_class_map_or_the_confidence(
    inferred: tuple[Path, Path], tmp_path: Path
) -> None:
    slide, out = inferred
    doc = _export(slide, out, tmp_path / "classes.png")
    assert doc["layers"][0]["settings"]["class"] == "argmax"  # the class map by default
    argv = ["export", str(slide), "--results", str(out), "--mpp", "8", "--quiet"]
    figure = tmp_path / "sure.png"
    assert main([*argv, "--out", str(figure), "--class", "1 - entropy"]) == 0
    doc = json.loads(figure.with_name(f"{figure.name}.json").read_text())
    assert doc["layers"][0]["settings"]["class"] == "1 - entropy"
    assert main([*argv, "--out", str(tmp_path / "no.png"), "--class", "entropy"]) == 2
