"""Energy pointing game: its arithmetic, a model that must win it, and the bundled classifier."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bench.pointing import synthetic_cases
from inference.cli.main import main
from inference.explain.pointing import PointingCase, choose_region, energy_share, play, sample_mask
from inference.explain.requests import CamRequest
from tests.helpers.models import model_folder


def test_energy_share_against_uniform_and_perfect_maps() -> None:
    tumour = np.zeros((10, 10), bool)
    tumour[:, :3] = True
    tissue = np.ones((10, 10), bool)
    tissue[:, 8:] = False
    raw = np.ones((10, 10), np.float32)
    share, baseline = energy_share(raw, tumour, tissue)
    assert share == pytest.approx(baseline) == pytest.approx(3 / 8)
    share, _ = energy_share(tumour.astype(np.float32), tumour, tissue)
    assert share == 1.0
    share, _ = energy_share((~tumour).astype(np.float32), tumour, tissue)
    assert share == 0.0
    raw[0, 0] = np.nan  # unexplained pixels leave both figures
    share, baseline = energy_share(raw, tumour, tissue)
    assert share == pytest.approx(baseline) == pytest.approx(29 / 79)
    assert math.isnan(energy_share(np.zeros((10, 10)), tumour, tissue)[0])


def test_sample_mask_follows_the_canvas_origin_and_scale() -> None:
    mask = np.zeros((8, 8), bool)  # 4 level-0 px per mask px: a 32 x 32 slide
    mask[2, 5] = True  # level-0 x 20..24, y 8..12
    out = sample_mask(mask, 4.0, (16.0, 8.0), 2.0, (4, 6))  # x 16..28, y 8..16
    expected = np.zeros((4, 6), bool)
    expected[0:2, 2:4] = True
    np.testing.assert_array_equal(out, expected)
    assert not sample_mask(mask, 4.0, (100.0, 100.0), 2.0, (3, 3)).any()  # off the slide


@dataclass(frozen=True)
class NucleiCard:
    name: str = "nuclei-density"
    class_names: tuple[str, ...] = ("other", "tumour")
    patch_size_pixels: int = 64
    spacing_um_px: float = 1.0
    task: str = "classification"
    cam_target_layer: str = "features"
    input_size: int = 64


class NucleiDensityModel:
    """Tumour logit = how much of the patch is dark purple (haematoxylin-dense nuclei).

    ``features`` marks pixels whose green channel is below 0.45 (nuclei; pink stroma and
    glass are brighter), so a patch crowded with nuclei, as synthetic tumour is, scores
    high and its Grad-CAM lies on the nuclei.
    """

    def __init__(self) -> None:
        self.card = NucleiCard()
        conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([0.0, -1.0, 0.0]).view(1, 3, 1, 1))
            conv.bias.fill_(0.45)  # type: ignore[union-attr]
        head = torch.nn.Linear(1, 2)
        with torch.no_grad():
            head.weight.copy_(torch.tensor([[-20.0], [20.0]]))
            head.bias.copy_(torch.tensor([0.0, -1.0]))
        self.module = torch.nn.Sequential()
        self.module.add_module("features", torch.nn.Sequential(conv, torch.nn.ReLU()))
        self.module.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
        self.module.add_module("flat", torch.nn.Flatten())
        self.module.add_module("head", head)
        self.module.eval()
        self.sha256 = "0e" * 32
        self.device = "cpu"

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        return self.to_model_input(torch.from_numpy(np.ascontiguousarray(rgb)))

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).float() / 255.0

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)


def test_a_model_that_looks_at_nuclei_points_at_synthetic_tumour(synthetic_slide: Path) -> None:
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.truth import load_truth
    from inference.slides import open_slide
    from inference.slides.synth.writer import truth_paths

    model = NucleiDensityModel()
    source = open_slide(synthetic_slide)
    try:
        truth = load_truth(truth_paths(synthetic_slide)[0], source.info.dimensions)
        tissue = tissue_mask(source)
        region = choose_region(tissue, truth.mask, truth.l0_per_px, 128, 4, source.info.dimensions)
        assert region is not None
        # the region mixes tumour and other tissue (what makes the game informative)
        assert 0.1 < truth.fraction_in(region) < 0.9
        case = PointingCase("synthetic", source, truth.mask, truth.l0_per_px, region, tissue)
        results = play(model, [case], ["gradcam", "saliency"], CamRequest(target="tumour"))
    finally:
        source.close()
    gradcam = results["gradcam"]
    assert 0 < gradcam["baseline"] < 1
    assert gradcam["share"] > gradcam["baseline"] + 0.15 and gradcam["ratio"] > 1.3
    assert gradcam["beats_uniform"] == 1 and gradcam["cases"][0]["patches"] > 16
    # the same CAM scored against a mask shifted off the tumour loses: the game can fail
    shifted = np.roll(truth.mask, truth.mask.shape[1] // 2, axis=1)
    source = open_slide(synthetic_slide)
    try:
        wrong = PointingCase("shifted", source, shifted, truth.l0_per_px, region, tissue)
        worse = play(model, [wrong], ["gradcam"], CamRequest(target="tumour"))["gradcam"]
    finally:
        source.close()
    assert worse["share"] < gradcam["share"] - 0.15


def test_bench_pointing_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = model_folder(tmp_path / "tiny", seed=1)
    args = ["bench", "pointing", "--model", str(folder), "--slides", "1", "--size", "2048"]
    assert main([*args, "--methods", "gradcam,eigencam", "--region-patches", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bench"] == "pointing" and len(report["slides"]) == 1
    assert report["seeds"][0] >= 90_001
    for name in ("gradcam", "eigencam"):
        figures = report["methods"][name]
        assert 0 < figures["baseline"] < 1
        assert figures["share"] is None or 0 <= figures["share"] <= 1
    assert report["skipped"] == {}


def _bundled_classifier() -> Path | None:
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    return None if entry is None else entry.folder


def test_bundled_classifier_grad_cam_beats_uniform_on_held_out_slides(tmp_path: Path) -> None:
    folder = _bundled_classifier()
    assert folder is not None, "the bundled demo classifier is missing from resources/models"
    from inference.bench.pointing import training_seeds
    from inference.models import load_model

    model = load_model(folder)
    cases, seeds = synthetic_cases(
        model,
        2,
        folder=tmp_path,
        size=4096,
        mpp=0.5,
        patches=4,
        avoid_seeds=training_seeds(model),
    )
    assert cases, "no held-out synthetic slide had a region with tumour and other tissue"
    try:
        tumour = [n.lower() for n in model.card.class_names].index("tumour")
        results = play(model, cases, ["gradcam"], CamRequest(target=tumour))
    finally:
        for case in cases:
            case.source.close()
    gradcam = results["gradcam"]
    assert gradcam["share"] > gradcam["baseline"] + 0.1, gradcam
    assert gradcam["ratio"] > 1.25 and gradcam["beats_uniform"] == len(cases), gradcam
    assert not set(seeds) & set(training_seeds(model))
