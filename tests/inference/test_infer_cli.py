"""``slidelens infer`` end to end on a synthetic slide with a tiny model folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.cli.main import main
from inference.results.exports import read_heatmap_geometry
from tests.helpers.models import write_model_folder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = tmp_path_factory.mktemp("slide") / "synth-cli.tiff"
    write_synthetic_slide(path, SynthParams(width=2048, height=1536, seed=1, mpp=0.5))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "tiny-cnn")


def _base(slide: Path, model: Path, out: Path) -> list[str]:
    return ["infer", str(slide), "--model", str(model), "--out", str(out), "--device", "cpu"]


def _outputs(out: Path, stem: str) -> dict[str, Path]:
    return {
        "csv": out / f"{stem}.csv",
        "geojson": out / f"{stem}.geojson",
        "heatmap": out / f"{stem}.heatmap.tiff",
        "result": out / f"{stem}.result.npz",
        "json": out / f"{stem}.run.json",
    }


def test_infer_writes_every_output_and_resumes(
    slide: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [str(slide), "--model", str(model), "--out", str(out), "--device", "cpu"]
    assert main(["infer", *args, "--batch-size", "16"]) == 0
    files = _outputs(out, "synth-cli")
    assert all(p.is_file() for p in files.values())

    doc = json.loads(files["json"].read_text())
    assert doc["status"] == "complete"
    from inference.results.exports import find_result, read_result_npz

    assert find_result(out, slide) == files["result"]
    reloaded = read_result_npz(files["result"])
    assert int(reloaded.computed.sum()) == doc["counts"]["computed"]
    import hashlib

    sha = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    assert doc["model"]["sha256"] == sha
    assert doc["slide"]["mpp_used"] == 0.5 and doc["slide"]["source_id"]
    assert doc["parameters"]["grid"]["l0_patch"] == 128
    assert doc["versions"]["torch"] == torch.__version__
    counts = doc["counts"]
    assert counts["patches"] == 16 * 12
    assert counts["background"] > 0 and counts["computed"] > 0
    assert counts["computed"] + counts["background"] == counts["patches"]
    assert doc["timings"]["total_s"] > 0

    with files["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == counts["computed"]
    assert {r["width"] for r in rows} == {"128"}
    probs = np.array([[float(r["prob_benign"]), float(r["prob_tumour"])] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    features = json.loads(files["geojson"].read_text())["features"]
    assert len(features) == counts["computed"]
    assert features[0]["properties"]["objectType"] == "tile"

    geometry = read_heatmap_geometry(files["heatmap"])
    assert geometry["class_name"] == "tumour" and geometry["l0_per_px"] == 128.0
    assert (geometry["width"], geometry["height"]) == (16, 12)

    # a second run finds the results and skips the slide
    mtimes = {k: p.stat().st_mtime_ns for k, p in files.items()}
    capsys.readouterr()
    assert main(["infer", *args]) == 0
    assert "skipped" in capsys.readouterr().err
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == mtimes

    # a lost output makes it run again, served from the result cache
    files["csv"].unlink()
    assert main(["infer", *args]) == 0
    again = json.loads(files["json"].read_text())
    assert again["from_cache"] is True and again["counts"] == counts
    with files["csv"].open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def test_region_only_computes_the_region(slide: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    region = "512,512,256,128"
    code = main(
        [*_base(slide, model, out), "--region", region, "--tissue-threshold", "0", "--no-cache"]
    )
    assert code == 0
    with (out / "synth-cli.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    corners = {(int(r["minx"]), int(r["miny"])) for r in rows}
    assert corners == {(512, 512), (640, 512)}


def test_a_failed_slide_is_reported_and_the_rest_go_on(
    slide: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"this is not a slide at all" * 10)
    no_mpp = tmp_path / "no-mpp.png"
    Image.fromarray(np.full((300, 300, 3), (200, 100, 170), np.uint8)).save(no_mpp)
    out = tmp_path / "out"
    code = main(["infer", str(broken), str(no_mpp), *_base(slide, model, out)[1:], "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.svs" in err
    assert "no-mpp.png" in err and "--mpp" in err
    assert (out / "synth-cli.run.json").is_file()
    assert not (out / "broken.run.json").exists()

    # with an explicit mpp the plain image runs
    code = main([*_base(no_mpp, model, out), "--mpp", "1.0", "-q"])
    assert code == 0 and (out / "no-mpp.csv").is_file()


def test_a_bad_model_stops_before_any_slide(
    slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["infer", str(slide), "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_bench_inference_prints_every_figure(
    slide: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "inference", "--slide", str(slide), "--model", str(model), "--json"]
    assert main([*args, "--device", "cpu", "--max-patches", "24", "--naive-patches", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "end_to_end_patches_per_s",
        "reader_ceiling_patches_per_s",
        "model_ceiling_patches_per_s",
        "efficiency",
        "naive_patches_per_s",
        "speedup_vs_naive",
    ):
        assert report[key] > 0, key
    assert report["patches"] == 24 and report["naive_patches"] == 4
