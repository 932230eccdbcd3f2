"""``slidelens explain`` and ``slidelens bench cam`` end to end on files written by code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.cli.main import BENCH_MODULES, COMMAND_MODULES, main
from tests.helpers.models import model_folder
from tests.helpers.slides import two_tone


@pytest.fixture(scope="module")
def png_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain PNG "slide" (no mpp in it): dark tissue left, pale tissue right, glass below."""
    img = np.full((384, 512, 3), 242, np.uint8)
    img[:256] = two_tone(512, 256, seed=1)
    path = tmp_path_factory.mktemp("png") / "two-tone.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_folder(tmp_path_factory.mktemp("models") / "tiny-cnn", seed=3)


def _explain(slide: Path, model: Path, out: Path, *extra: str) -> int:
    args = ["explain", str(slide), "--model", str(model), "--mpp", "0.5", "--out", str(out)]
    return main([*args, "-q", *extra])


def test_commands_are_registered() -> None:
    assert "inference.cli.explain" in COMMAND_MODULES
    assert {"inference.bench.cam", "inference.bench.pointing"} <= set(BENCH_MODULES)


def test_explain_a_point_writes_png_json_npy(png_slide: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cam.png"
    assert _explain(png_slide, model, out, "--at", "200,100", "--method", "gradcam++") == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    raw = np.load(out.with_suffix(".npy"))
    image = np.asarray(Image.open(out))
    prov = doc["provenance"]
    sha = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    assert prov["model"]["sha256"] == sha and prov["model"]["name"] == "tiny-cnn"
    assert prov["method"] == "gradcam++" and prov["layer"] == "features.2"
    assert prov["slide"]["mpp_used"] == 0.5
    assert doc["cam"]["l0_origin"] == [128.0, 0.0]  # the 128 px patch holding (200, 100)
    assert doc["cam"]["l0_per_px"] == 2.0
    assert list(raw.shape) == doc["cam"]["shape"] == [64, 64] and raw.dtype == np.float32
    assert image.shape == (64, 64, 3)
    assert doc["cam"]["vmax"] == pytest.approx(float(np.percentile(raw, 99)), rel=1e-5)
    assert doc["outputs"] == {"png": "cam.png", "json": "cam.json", "npy": "cam.npy"}
    assert set(doc["scores"]) == {"benign", "tumour"}
    assert prov["versions"]["grad-cam"] == "1.5.7"
    # the overlay is the slide's pixels with the CAM blended in, not the bare slide
    slide = np.asarray(Image.open(png_slide))[0:128:2, 128:256:2]
    assert np.abs(image.astype(int) - slide.astype(int)).mean() > 10


def test_explain_a_region_for_a_named_class(png_slide: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "region.png"
    code = _explain(
        png_slide,
        model,
        out,
        "--region",
        "0,0,512,384",
        "--class",
        "Benign",
        "--method",
        "saliency",
    )
    assert code == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    raw = np.load(out.with_suffix(".npy"))
    assert doc["cam"]["class_name"] == "benign" and doc["provenance"]["class_from"] == "requested"
    assert raw.shape == (192, 256)
    assert np.isnan(raw[160:]).all()  # patches of glass only (y >= 256) are not explained
    assert np.isfinite(raw[:120]).all()
    assert doc["provenance"]["geometry"]["background_patches"] > 0


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--at", "900,10"], "outside the slide two-tone.png (512 x 384"),
        (["--region", "0,300,500,80"], "holds no tissue"),
        (["--at", "10,10", "--class", "stroma"], "unknown class 'stroma'"),
        (["--at", "10,10", "--layer", "features.7"], "no layer 'features.7'"),
        (["--at", "10,10", "--method", "gradcam3"], "unknown explanation method 'gradcam3'"),
    ],
)
def test_user_errors_are_one_line(
    png_slide: Path,
    model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    out = tmp_path / "cam.png"
    assert _explain(png_slide, model, out, *extra) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_slide_and_bad_model_are_one_line(
    png_slide: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cam.png"
    # a slide that cannot be read is a failed slide (1), a broken model bad input (2)
    assert _explain(tmp_path / "missing.svs", model, out, "--at", "1,1") == 1
    err = capsys.readouterr().err
    assert "missing.svs" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    assert _explain(png_slide, broken, out, "--at", "1,1") == 2
    err = capsys.readouterr().err
    assert "broken-model" in err and "not valid JSON" in err
    assert len(err.strip().splitlines()) == 1


def test_slide_without_mpp_asks_for_it(
    png_slide: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cam.png"
    args = ["explain", str(png_slide), "--model", str(model), "--at", "5,5", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "two-tone.png has no microns-per-pixel" in err and "--mpp" in err
    assert len(err.strip().splitlines()) == 1


def test_bench_cam_prints_one_json_object(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "cam",
            "--model",
            str(model),
            "--methods",
            "gradcam,scorecam,saliency",
            "--repeats",
            "1",
            "--region-patches",
            "2",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bench"] == "cam" and report["model"] == "tiny-cnn"
    assert set(report["methods"]) == {"gradcam", "scorecam", "saliency"}
    for row in report["methods"].values():
        assert row["patch_s"] > 0 and row["region_s"] > 0
        assert row["region_patches"] >= 4  # 2 x 2 patches, more with the blending overlap
        # both times are rounded to 0.1 ms and the ratio to 0.01: allow for that rounding
        patch, forward, half = row["patch_s"], report["forward_patch_s"], 0.5e-4
        low = (patch - half) / (forward + half) - 0.005
        high = (patch + half) / max(forward - half, 1e-9) + 0.005
        assert low <= row["patch_vs_forward"] <= high
    scorecam = report["methods"]["scorecam"]
    assert 0 < report["scorecam_first_progress_s"] == scorecam["first_progress_s"]
    assert report["scorecam_first_progress_s"] < scorecam["patch_s"]
    assert report["library_gradcam_patch_s"] > 0 and report["library_scorecam_patch_s"] > 0
