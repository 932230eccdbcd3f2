"""``slidelens export``: results, annotations and truth on a figure, and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.results.exports import write_result_npz
from inference.slides import open_slide
from inference.slides.synth.writer import truth_paths
from tests.helpers.figures import result_grid
from viewer.__main__ import main
from viewer.annotations import Annotation, AnnotationClass, export_geojson
from viewer.layers.colormaps import lut

MODEL_SHA = "cd" * 32
ROOT = Path(__file__).resolve().parents[2]


def _results(folder: Path, slide: Path, source_id: str) -> Path:
    """What ``slidelens infer --out folder`` leaves for ``slide``: result and run JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    probs = np.full((12, 16), 0.1)
    probs[0:4, 0:4] = 1.0  # level-0 [0, 1024) x [0, 1024)
    write_result_npz(folder / f"{slide.stem}.result.npz", result_grid(probs, 256))
    run = {
        "status": "complete",
        "slide": {"path": str(slide), "source_id": source_id},
        "model": {"name": "demo-classifier", "sha256": MODEL_SHA},
        "parameters": {"overlap": 0.0},
    }
    (folder / f"{slide.stem}.run.json").write_text(json.dumps(run))
    return folder


def _source_id(slide: Path) -> str:
    source = open_slide(slide)
    try:
        return source.info.source_id
    finally:
        source.close()


def test_export_with_results_annotations_and_truth(
    synthetic_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _results(tmp_path / "results", synthetic_slide, _source_id(synthetic_slide))
    geojson = tmp_path / "notes.geojson"
    notes = [
        Annotation.rectangle(
            2100, 1100, 2900, 1900, classification=AnnotationClass("Stroma", (0, 200, 0))
        )
    ]
    export_geojson(geojson, notes)
    out = tmp_path / "figs" / "fig.png"
    code = main(
        [
            "export",
            str(synthetic_slide),
            "--region",
            "0,0,4096,3072",
            "--mpp",
            "4",
            "--results",
            str(results),
            "--class",
            "Tumour",
            "--opacity",
            "1",
            "--annotations",
            str(geojson),
            "--truth",
            str(truth_paths(synthetic_slide)[0]),
            "--caption",
            "Case 3",
            "--no-scale-bar",
            "--no-legend",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size == (512, 384)  # 4096 x 3072 level-0 px at 8 px each (4 / 0.5)
        rgb = np.asarray(image)
    # the heatmap at opacity 1: tumour probability 1 in the top-left 128 x 128 px
    assert (rgb[60:120, 40:120] == lut("viridis")[255]).all()
    assert (rgb[280:340, 100:200] == lut("viridis")[round(0.1 * 255)]).all()
    # the annotation's outline at x = 2100 / 8 = 262.5, in its class colour
    assert (np.abs(rgb[150:220, 262].astype(int) - (0, 200, 0)) < 60).all(axis=1).mean() > 0.9
    doc = json.loads(out.with_name("fig.png.json").read_text("utf-8"))
    results_layer, truth_layer = doc["layers"]
    assert results_layer["provenance"]["model_sha256"] == MODEL_SHA
    assert results_layer["settings"]["class"] == "tumour"
    assert truth_layer["settings"]["outline_only"] is True
    assert doc["annotations"]["classes"] == {"Stroma": 1}
    assert doc["figure"]["um_per_px"] == pytest.approx(4.0)
    assert doc["overlays"]["caption"] == "Case 3"


def test_default_is_full_resolution_of_the_whole_slide(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fig.tiff"
    assert main(["export", str(synthetic_slide), "--region", "0,0,600,400", "--out", str(out)]) == 0
    doc = json.loads(out.with_name("fig.tiff.json").read_text("utf-8"))
    assert (doc["figure"]["width"], doc["figure"]["height"]) == (600, 400)
    assert doc["figure"]["um_per_px"] == pytest.approx(0.5)


def test_slides_without_mpp_use_downsample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "patch.png"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(plain)
    out = tmp_path / "fig.png"
    assert main(["export", str(plain), "--mpp", "1", "--out", str(out)]) == 2
    assert "does not state its pixel size" in capsys.readouterr().err
    assert main(["export", str(plain), "--downsample", "2", "--out", str(out)]) == 0
    doc = json.loads(out.with_name("fig.png.json").read_text("utf-8"))
    assert (doc["figure"]["width"], doc["figure"]["height"]) == (200, 150)
    assert doc["figure"]["um_per_px"] is None
    assert doc["overlays"]["scale_bar"]["label"].endswith(" px")


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--region", "9000,0,100,100"], 2, "outside the slide"),
        (["--mpp", "0.001"], 2, "100,000 per side"),
        (["--class", "tumour"], 2, "give --results"),
        (["--region", "0,0,-5,10"], 2, "W, H > 0"),
    ],
)
def test_refusals_are_clear(
    synthetic_slide: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    code: int,
    message: str,
) -> None:
    out = tmp_path / "fig.png"
    try:
        got = main(["export", str(synthetic_slide), *extra, "--out", str(out)])
    except SystemExit as exit_:  # argparse refuses bad argument values itself
        got = int(exit_.code or 0)
    assert got == code
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_size_is_said_before_writing_and_a_large_figure_needs_force(
    synthetic_slide: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole slide at full resolution, with the limit lowered to a tenth of it (the
    trial wrote a 318 MB PNG of a real slide without a word)."""
    import viewer.export.compositor as compositor

    monkeypatch.setattr(compositor, "LARGE_FIGURE_PIXELS", 4096 * 3072 // 10)
    out = tmp_path / "whole.png"
    assert main(["export", str(synthetic_slide), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "whole.png would be 4,096 x 3,072 px (12.6 megapixels" in err
    assert "--force" in err and "--mpp" in err
    assert not out.exists()

    assert main(["export", str(synthetic_slide), "--out", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "whole.png will be 4,096 x 3,072 px (12.6 megapixels, about 37.7 MB" in err
    assert out.is_file()
    # below the limit nothing needs forcing, and the size is still said first
    small = tmp_path / "small.png"
    assert main(["export", str(synthetic_slide), "--mpp", "8", "--out", str(small)]) == 0
    assert "small.png will be 256 x 192 px" in capsys.readouterr().err


def test_results_must_belong_to_the_slide(
    synthetic_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fig.png"
    wrong = _results(tmp_path / "wrong", synthetic_slide, "another-slide-id")
    args = ["export", str(synthetic_slide), "--mpp", "8", "--out", str(out)]
    assert main([*args, "--results", str(wrong)]) == 1
    assert "computed for another slide" in capsys.readouterr().err
    assert main([*args, "--results", str(tmp_path)]) == 1
    assert "no results for synthetic.tiff" in capsys.readouterr().err
    right = _results(tmp_path / "right", synthetic_slide, _source_id(synthetic_slide))
    assert main([*args, "--results", str(right), "--class", "necrosis"]) == 2
    err = capsys.readouterr().err
    assert "choose one of benign, tumour, argmax, top probability, 1 - entropy" in err
    assert not out.exists()


def test_the_command_is_registered_and_loads_neither_qt_nor_torch(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fig.png"
    code = (
        "import sys\n"
        "from viewer.__main__ import main\n"
        f"rc = main(['export', {str(synthetic_slide)!r}, '--mpp', '8', '--out', {str(out)!r}])\n"
        "loaded = [m for m in ('PySide6', 'torch') if m in sys.modules]\n"
        "print(rc, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "0 []"
    assert out.is_file()
