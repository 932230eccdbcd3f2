"""``slidelens evaluate`` end to end: a synthetic slide, ``slidelens infer`` with a tiny
random model, then the report, the files it writes, and its refusals."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.cli.main import main
from inference.slides.synth.writer import truth_paths
from tests.helpers.models import write_model_folder

torch.set_num_threads(1)

STEM = "synth-eval"
GRID_CELLS = 16 * 12  # 2048 x 1536 slide, 128 px patches (64 px at 1 um/px, slide 0.5)


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(slide, results folder)`` after ``slidelens infer`` on a small synthetic slide."""
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    root = tmp_path_factory.mktemp("evaluate")
    slide = root / f"{STEM}.tiff"
    write_synthetic_slide(slide, SynthParams(width=2048, height=1536, seed=1, mpp=0.5))
    model = write_model_folder(root / "tiny-cnn")
    out = root / "out"
    args = ["infer", str(slide), "--model", str(model), "--out", str(out)]
    assert main([*args, "--device", "cpu", "--no-cache", "--quiet"]) == 0
    return slide, out


def _evaluate(slide: Path, out: Path, *extra: str) -> list[str]:
    mask, _ = truth_paths(slide)
    return ["evaluate", str(slide), "--results", str(out), "--truth", str(mask), *extra]


def _json_run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_report_matches_the_library_on_the_same_inputs(
    inferred: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.metrics import evaluate
    from inference.evaluation.truth import load_truth
    from inference.results.exports import find_result, read_result_npz
    from inference.slides import open_slide

    slide, out = inferred
    doc = _json_run(capsys, _evaluate(slide, out))
    source = open_slide(slide)
    try:
        truth = load_truth(truth_paths(slide)[0], source.info.dimensions)
        expected = evaluate(
            read_result_npz(find_result(out, slide)),
            truth,
            tissue_mask(source),
            "tumour",
            0.5,
            mpp=source.info.mpp,
            l0_dimensions=source.info.dimensions,
        ).to_dict(max_roc_points=1000)
    finally:
        source.close()
    assert doc["counts"] == expected["counts"]
    assert doc["metrics"] == expected["metrics"]
    assert doc["class"] == {"name": "tumour", "index": 1}  # default: the last class
    samples = doc["samples"]
    assert isinstance(samples, dict)
    # every raster cell is a sample or excluded for one reason; background patches exist
    assert samples["n"] + sum(samples["excluded"].values()) == GRID_CELLS
    assert samples["excluded"]["background"] > 0 and samples["n"] > 20
    assert 0 < samples["truth_positive"] < samples["n"]  # the slide has tumour and not
    assert doc["slide"] == str(slide) and doc["notes"] == []


def test_mask_and_geojson_truth_agree(
    inferred: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    mask, geojson = truth_paths(slide)
    from_mask = _json_run(capsys, _evaluate(slide, out))
    argv = _evaluate(slide, out)
    argv[argv.index(str(mask))] = str(geojson)
    from_geojson = _json_run(capsys, [*argv, "--truth-class", "Tumour"])
    samples_m, samples_g = from_mask["samples"], from_geojson["samples"]
    assert isinstance(samples_m, dict) and isinstance(samples_g, dict)
    assert samples_m["n"] == samples_g["n"]
    # the polygons trace the mask; only cells right at the 50 % line may flip
    assert abs(samples_m["truth_positive"] - samples_g["truth_positive"]) <= 2


def test_human_readable_report_and_files(
    inferred: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    files = {
        "--roc-png": tmp_path / "roc.png",
        "--confusion-png": tmp_path / "confusion.png",
        "--csv": tmp_path / "metrics.csv",
        "--roc-csv": tmp_path / "roc.csv",
    }
    extra = [item for flag, path in files.items() for item in (flag, str(path))]
    capsys.readouterr()
    assert main([*_evaluate(slide, out, "--threshold", "0.3"), *extra]) == 0
    text = capsys.readouterr().out
    assert "Mask area" in text and "accuracy" in text and "threshold 0.3" in text
    assert "Specificity (TNR)" in text and "ROC AUC" in text and "areas (mm²)" in text
    for path in files.values():
        assert f"wrote {path}" in text
        assert path.stat().st_size > 0
    for png in (files["--roc-png"], files["--confusion-png"]):
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) > 200
            assert len(np.unique(np.asarray(image.convert("L")))) > 5
    with files["--csv"].open() as fh:
        rows = {row["metric"]: row["value"] for row in csv.DictReader(fh)}
    assert rows["threshold"] == "0.3" and rows["class"] == "tumour"
    # the file says what it is about, as the GUI's does (slide, model, truth, threshold)
    assert (rows["slide"], rows["model"]) == (slide.name, "tiny-cnn")
    assert rows["truth"] == truth_paths(slide)[0].name
    assert f"{slide.name} (tiny-cnn) vs" in text and "grid squares" in text
    n = sum(int(rows[k]) for k in ("tp", "tn", "fp", "fn"))
    assert n == int(rows["n_samples"]) > 0
    with files["--roc-csv"].open() as fh:
        roc = list(csv.DictReader(fh))
    assert roc[0]["threshold"] == "inf" and (roc[-1]["fpr"], roc[-1]["tpr"]) == ("1.0", "1.0")


def test_threshold_and_class_change_the_report(
    inferred: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    low = _json_run(capsys, _evaluate(slide, out, "--threshold", "0"))
    high = _json_run(capsys, _evaluate(slide, out, "--threshold", "1"))
    low_counts, high_counts = low["counts"], high["counts"]
    assert isinstance(low_counts, dict) and isinstance(high_counts, dict)
    assert low_counts["fn"] == low_counts["tn"] == 0  # everything predicted positive
    assert high_counts["tp"] + high_counts["fp"] <= low_counts["tp"] + low_counts["fp"]
    benign = _json_run(capsys, _evaluate(slide, out, "--class", "benign"))
    assert benign["class"] == {"name": "benign", "index": 0}
    metrics_b, metrics_t = benign["metrics"], low["metrics"]
    assert isinstance(metrics_b, dict) and isinstance(metrics_t, dict)
    # benign = 1 - tumour (softmax of two classes): the ranking reverses
    assert metrics_b["auc"] == pytest.approx(1 - metrics_t["auc"], abs=1e-6)


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 1) -> str:
    """The one line of a refused command, which exits with ``code`` (1: a file could
    not be used; 2: an option the files cannot honour)."""
    capsys.readouterr()
    assert main(argv) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("slidelens evaluate: ")
    return lines[0]


def test_missing_results_and_bad_truth_are_refused(
    inferred: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _fails(capsys, _evaluate(slide, empty))
    assert f"no results for {slide.name}" in line and f"{STEM}.result.npz" in line
    assert "no such results folder" in _fails(capsys, _evaluate(slide, tmp_path / "nowhere"))

    argv = _evaluate(slide, out)
    truth_at = argv.index("--truth") + 1
    missing = tmp_path / "missing.png"
    argv[truth_at] = str(missing)
    assert "missing.png: no such file" in _fails(capsys, argv)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    argv[truth_at] = str(garbage)
    assert "garbage.png: not a readable image" in _fails(capsys, argv)
    narrow = tmp_path / "narrow.png"
    Image.fromarray(np.zeros((10, 100), np.uint8)).save(narrow)
    argv[truth_at] = str(narrow)
    assert "narrow.png: its shape (100 x 10) does not match" in _fails(capsys, argv)

    geojson = truth_paths(slide)[1]
    argv[truth_at] = str(geojson)
    line = _fails(capsys, [*argv, "--truth-class", "Stroma"])
    assert f"{geojson.name}: no polygon features of class 'Stroma'" in line
    mask_argv = _evaluate(slide, out, "--truth-class", "Tumour")
    assert "--truth-class selects GeoJSON features" in _fails(capsys, mask_argv, 2)


def test_unknown_class_and_foreign_results_are_refused(
    inferred: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    slide, out = inferred
    line = _fails(capsys, _evaluate(slide, out, "--class", "stroma"), 2)
    assert f"{STEM}.result.npz" in line and "unknown class 'stroma'" in line
    assert "benign, tumour" in line

    line = _fails(capsys, _evaluate(slide, out, "--region", "0,0,10,10"))
    assert f"{STEM}.result.npz: nothing to evaluate" in line and "outside region" in line
    line = _fails(capsys, _evaluate(tmp_path / "absent.svs", out))
    assert "absent.svs" in line

    # a slide of another size under the same name: the results are not its results
    other = tmp_path / f"{STEM}.tiff"
    write_synthetic_slide(other, SynthParams(width=1024, height=768, seed=2, mpp=0.5))
    line = _fails(capsys, _evaluate(other, out))
    assert "computed for a slide of 2048 x 1536" in line and "1024 x 768" in line

    # a damaged result file names itself
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / f"{STEM}.result.npz").write_bytes(b"PK\x03\x04 damaged")
    line = _fails(capsys, _evaluate(slide, broken))
    assert f"{STEM}.result.npz: not a readable SlideLens result file" in line


def test_bad_arguments_exit_with_usage(
    inferred: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    for bad in (["--threshold", "1.5"], ["--threshold", "half"], ["--region", "1,2"]):
        with pytest.raises(SystemExit) as exit_info:
            main(_evaluate(slide, out, *bad))
        assert exit_info.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_missing_run_json_is_a_note_not_an_error(
    inferred: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide, out = inferred
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(out / f"{STEM}.result.npz", bare)
    doc = _json_run(capsys, _evaluate(slide, bare))
    notes = doc["notes"]
    assert isinstance(notes, list) and any("run.json missing" in n for n in notes)
