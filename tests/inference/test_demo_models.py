"""The bundled demo models: valid cards, held-out quality via the real engine, and the
training path (patch sampling and labels, a few deterministic training steps).

The held-out slide is made here with a seed that no training slide uses
(``train_demo.TEST_SEEDS``), small enough that both whole-slide runs take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.core.geometry import Rect
from inference.engine.job import InferenceJob
from inference.engine.prepare import prepare
from inference.models import list_models, load_card, load_model
from inference.models.card import validate_card_data
from inference.models.demo.cards import (
    CLASSIFIER_NAME,
    SEGMENTER_NAME,
    WEIGHTS_NAME,
    classifier_card,
    segmenter_card,
    write_card,
    write_model_folder,
)
from inference.models.demo.data import (
    PatchSet,
    SlideSpec,
    Strata,
    make_slide,
    sample_patches,
    slide_truth,
    truth_window,
)
from inference.models.demo.evaluation import (
    classifier_metrics,
    dice,
    roc_auc,
    segmentation_metrics,
)
from inference.models.demo.train import HELDOUT_SLIDE, TEST_SEEDS, TRAIN_SLIDES, _Spec
from inference.models.demo.training import (
    TrainSettings,
    channel_stats,
    state_as_numpy,
    train_classifier,
    train_segmenter,
)
from inference.models.loading import LoadedModel
from inference.models.registry import bundled_models_dir

NAMES = (CLASSIFIER_NAME, SEGMENTER_NAME)
TEST_SLIDE = SlideSpec(4096, 3072, seed=TEST_SEEDS[0], mpp=0.5)
#: A slide for the sampling tests; its seed is in no training or evaluation set either.
SAMPLING_SLIDE = SlideSpec(3072, 2048, seed=9003, mpp=0.5)


@pytest.fixture(scope="module")
def test_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slide(tmp_path_factory.mktemp("demo-heldout"), TEST_SLIDE)


@pytest.fixture(scope="module")
def sampling_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slide(tmp_path_factory.mktemp("demo-sampling"), SAMPLING_SLIDE)


def test_evaluation_seeds_are_never_trained_on() -> None:
    trained = {s.seed for s in TRAIN_SLIDES}
    assert HELDOUT_SLIDE.seed not in trained
    assert TEST_SLIDE.seed not in trained and SAMPLING_SLIDE.seed not in trained
    assert TEST_SLIDE.seed != HELDOUT_SLIDE.seed


# -- bundled cards ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bundled_card_is_valid_and_honest(name: str) -> None:
    folder = bundled_models_dir() / name
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert validate_card_data(raw, folder) == []
    card = load_card(folder)
    assert card.name == name
    for text in (card.description, card.intended_use):
        assert "synthetic" in text and "slidelens synth" in text
        assert "NOT FOR DIAGNOSIS" in text
    assert card.licence
    training = card.training
    assert training["heldout_seed"] == HELDOUT_SLIDE.seed
    assert training["heldout_seed"] not in training["training_seeds"]
    assert training["training_seeds"] == [s.seed for s in TRAIN_SLIDES]
    assert training["train_seconds"] <= 600
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(sizes) == {"config.json", WEIGHTS_NAME}
    assert sum(sizes.values()) < 1.5e6


def test_bundled_cards_report_measured_metrics_above_target() -> None:
    classifier = load_card(bundled_models_dir() / CLASSIFIER_NAME)
    assert classifier.metrics["auc"] >= 0.9
    assert 0.5 < classifier.metrics["accuracy"] <= 1.0
    assert classifier.training["heldout"]["patches"] > 100
    segmenter = load_card(bundled_models_dir() / SEGMENTER_NAME)
    assert segmenter.metrics["dice"] >= 0.7
    assert segmenter.training["heldout"]["tumour_pixels"] > 100


def test_bundled_models_load_and_are_listed() -> None:
    listed = {e.name: e for e in list_models() if e.source == "bundled"}
    for name in NAMES:
        assert listed[name].ok, listed[name].error
        model = load_model(bundled_models_dir() / name)
        assert model.kind == "eager"
        assert model.cam_target_layer in dict(model.module.named_modules())
    classifier = load_card(bundled_models_dir() / CLASSIFIER_NAME)
    assert classifier.class_names == ("other", "tumour")
    assert (classifier.task, classifier.activation) == ("classification", "softmax")
    segmenter = load_card(bundled_models_dir() / SEGMENTER_NAME)
    assert segmenter.class_names == ("tumour",)
    assert (segmenter.task, segmenter.activation) == ("segmentation", "sigmoid")


# -- held-out quality through the real engine -----------------------------------------


def test_classifier_heatmap_finds_tumour_on_a_heldout_slide(test_slide: Path) -> None:
    metrics = classifier_metrics(test_slide, CLASSIFIER_NAME)
    assert metrics.tumour_patches >= 5 and metrics.patches - metrics.tumour_patches >= 5
    assert metrics.auc >= 0.9, metrics
    assert metrics.accuracy >= 0.85, metrics


def test_unet_segments_tumour_on_a_heldout_slide(test_slide: Path) -> None:
    metrics = segmentation_metrics(test_slide, SEGMENTER_NAME)
    assert metrics.tumour_pixels > 100
    assert metrics.dice >= 0.7, metrics


def test_cli_lists_and_runs_the_bundled_models(
    test_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inference.cli.main import main

    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed[CLASSIFIER_NAME]["metrics"]["auc"] >= 0.9
    assert listed[SEGMENTER_NAME]["metrics"]["dice"] >= 0.7
    out = tmp_path / "out"
    args = ["infer", str(test_slide), "--model", CLASSIFIER_NAME, "--out", str(out)]
    code = main([*args, "--device", "cpu", "--no-cache", "-q"])
    assert code == 0
    run_json = json.loads(next(out.glob("*.run.json")).read_text())
    assert run_json["status"] == "complete"
    assert next(out.glob("*.heatmap.tiff")).stat().st_size > 0


# -- metric helpers --------------------------------------------------------------------


def test_roc_auc_and_dice_on_known_cases() -> None:
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5  # a tie counts half
    assert roc_auc(np.array([0.9, 0.1]), np.array([0, 1])) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    a = np.array([1, 1, 0, 0], bool)
    assert dice(a, np.array([1, 0, 1, 0], bool)) == 0.5
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


# -- the training path -----------------------------------------------------------------


def test_truth_window_agrees_with_the_mask(sampling_slide: Path) -> None:
    truth = slide_truth(sampling_slide, (SAMPLING_SLIDE.width, SAMPLING_SLIDE.height))
    whole = truth_window(truth, 0, 0, 2048, 256)  # 8 level-0 px per output pixel
    assert np.array_equal(whole, truth.resampled((256, 256), 8.0))
    # past the slide's edge there is no tumour
    assert not truth_window(truth, SAMPLING_SLIDE.width - 64, 0, 256, 32)[:, 8:].any()


def test_sampled_patches_are_the_engines_pixels_with_labels_from_the_mask(
    sampling_slide: Path,
) -> None:
    spec = _Spec(patch_size_pixels=128, spacing_um_px=1.0)
    patches = sample_patches(
        sampling_slide, spec, 40, np.random.default_rng(7), strata=Strata(), with_masks=True
    )
    assert len(patches) == 40 and patches.l0_patch == (256,)  # 128 px at 1 um/px on 0.5 um/px
    f = patches.tumour_fraction
    assert (f >= 0.5).sum() == 16 and ((f > 0) & (f < 0.5)).sum() == 8 and (f == 0).sum() == 16
    truth = slide_truth(sampling_slide, (SAMPLING_SLIDE.width, SAMPLING_SLIDE.height))
    # the engine, preparing a job with the same spacing, reads the very same pixels
    with prepare(
        InferenceJob(slide=sampling_slide, model=CLASSIFIER_NAME, device="cpu")
    ) as prepared:
        assert prepared.grid.l0_patch == 256
        tissue = prepared.tissue
        assert tissue is not None
        for i in range(0, 40, 5):
            l0_x, l0_y = (int(v) for v in patches.l0_xy[i])
            assert np.array_equal(patches.rgb[i], prepared.reader.read_l0(l0_x, l0_y))
            rect = Rect(l0_x, l0_y, 256, 256)
            assert f[i] == pytest.approx(truth.fraction_in(rect))
            assert tissue.fraction_in(rect) >= 0.1
    assert patches.masks is not None
    # per-pixel truth matches the patch label, and tumour pixels look like tumour: the
    # dense dark nuclei make them darker than the rest of the tissue
    assert np.allclose(patches.masks.mean(axis=(1, 2)), f, atol=0.06)
    rgb = patches.rgb.astype(np.float64).mean(axis=-1)
    tissue_px = rgb < 230
    assert rgb[patches.masks & tissue_px].mean() < rgb[~patches.masks & tissue_px].mean() - 20
    assert np.array_equal(patches.labels, (f >= 0.5).astype(np.int64))


def _tiny_model(folder: Path, card: dict[str, object], arch: str, classes: int) -> LoadedModel:
    from inference.models.architectures import build_architecture

    folder.mkdir(parents=True, exist_ok=True)
    write_card(folder, card)
    torch.manual_seed(0)
    loaded = load_card(folder)
    module = build_architecture(arch, classes, loaded.task)
    return LoadedModel(loaded, module, folder / WEIGHTS_NAME, "", "eager", torch.device("cpu"))


def test_a_few_training_steps_are_deterministic_and_round_trip(
    sampling_slide: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    patches = sample_patches(sampling_slide, _Spec(64, 2.0), 24, np.random.default_rng(1))
    mean, std = channel_stats(patches.rgb)
    card = classifier_card(
        patch_size=64, spacing_um_px=2.0, mean=mean, std=std, cam_target_layer="features.2"
    )
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_steps=2)
    states = []
    for run in range(2):
        model = _tiny_model(tmp_path / f"c{run}", card, "small_cnn", 2)
        report = train_classifier(model, patches, settings, seed=5)
        assert report.steps == 2 and np.isfinite(report.final_loss)
        assert not model.module.training
        states.append(state_as_numpy(model.module))
    assert all(np.array_equal(states[0][k], states[1][k]) for k in states[0])
    write_model_folder(tmp_path / "c0", card, states[0])
    loaded = load_model(tmp_path / "c0")
    x = loaded.preprocess(patches.rgb[:4])
    with torch.inference_mode():
        stored = loaded.module(x)
        trained = model.module(x)
    assert torch.allclose(stored, trained, atol=0.05)  # float16 storage


def test_a_few_segmenter_steps_run_on_crops(sampling_slide: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    patches: PatchSet = sample_patches(
        sampling_slide, _Spec(64, 8.0), 8, np.random.default_rng(2), with_masks=True
    )
    assert patches.masks is not None and patches.masks.any()
    mean, std = channel_stats(patches.rgb)
    card = segmenter_card(patch_size=64, spacing_um_px=8.0, mean=mean, std=std)
    model = _tiny_model(tmp_path / "s", card, "unet_small", 1)
    settings = TrainSettings(epochs=1, batch_size=4, lr=1e-3, crop=32, max_steps=2)
    report = train_segmenter(model, patches, settings, seed=3)
    assert report.steps == 2 and np.isfinite(report.final_loss)
    with pytest.raises(ValueError, match="multiple of 8"):
        train_segmenter(model, patches, TrainSettings(1, 4, 1e-3, crop=30), seed=3)
