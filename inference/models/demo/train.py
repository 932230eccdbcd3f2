"""``python -m inference.models.demo.train [--out DIR] [--seed N]``: make the demo models.

Reproduces the bundled demo models in ``resources/models`` from nothing but code:

1. writes synthetic slides with ``slidelens synth``'s generator: the training slides
   (:data:`TRAIN_SLIDES`) and a held-out slide (:data:`HELDOUT_SLIDE`) whose seed no
   training slide uses;
2. samples labelled patches from the training slides exactly as the engine reads them
   (:mod:`inference.models.demo.data`) and trains, on the CPU, a tumour-vs-other patch
   classifier (``small_cnn``) and a tumour segmentation U-Net (``unet_small``)
   (:mod:`inference.models.demo.training`);
3. measures each model on the whole held-out slide by running the real engine
   (:mod:`inference.models.demo.evaluation`) and writes the card (``config.json``, with those
   metrics, the seeds and the training settings) and ``model.safetensors``
   (:mod:`inference.models.demo.cards`).  A model folder is built under a hidden name
   and swapped into place when complete.

``--only mil`` makes the slide-level ABMIL head ``demo-tumour-mil`` over the classifier's
embeddings instead (:mod:`inference.models.demo.mil`).
``--only prostate`` makes the demo prostate grader ``demo-prostate-grader`` (six classes,
Gleason/ISUP grading) from synthetic prostate biopsies instead
(:mod:`inference.models.demo.grader`; target: held-out slide-level kappa 0.8).

Deterministic for a given ``--seed`` and ``--threads``.  Prints progress and a summary;
exit code 0, or 1 when a model misses its target (AUC 0.9, Dice 0.7) - its folder is
written anyway so it can be inspected.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.models.card import load_card
from inference.models.demo.cards import (
    CLASSIFIER_NAME,
    SEGMENTER_NAME,
    classifier_card,
    replace_folder,
    segmenter_card,
    staging_folder,
    write_card,
    write_model_folder,
)
from inference.models.demo.data import PatchSet, SlideSpec, Strata, make_slide, sample_patches
from inference.models.demo.evaluation import classifier_metrics, segmentation_metrics
from inference.models.demo.training import (
    TrainReport,
    TrainSettings,
    channel_stats,
    state_as_numpy,
    train_classifier,
    train_segmenter,
    untrained_model,
)

#: Slides the models learn from (seeds 101..107; two scanned at 0.25 um/px).
TRAIN_SLIDES: tuple[SlideSpec, ...] = (
    SlideSpec(8192, 6144, seed=101, mpp=0.5),
    SlideSpec(8192, 6144, seed=102, mpp=0.5),
    SlideSpec(10240, 8192, seed=103, mpp=0.5),
    SlideSpec(12288, 9216, seed=104, mpp=0.5),
    SlideSpec(16384, 12288, seed=105, mpp=0.5),
    SlideSpec(12288, 9216, seed=106, mpp=0.25),
    SlideSpec(16384, 12288, seed=107, mpp=0.25),
)
#: The slide the cards' metrics are measured on; its seed is used for nothing else.
HELDOUT_SLIDE = SlideSpec(16384, 12288, seed=9001, mpp=0.5)
#: Seeds kept out of training for the test suite (tests/inference/test_demo_models.py).
TEST_SEEDS = (9002,)
#: Targets on the held-out slide; a model that misses one makes the command exit 1.
TARGET_AUC = 0.9
TARGET_DICE = 0.7


@dataclass(frozen=True)
class ModelRecipe:
    """Patch geometry, how many patches to sample per training slide, and training."""

    patch_size: int
    spacing_um_px: float
    patches_per_slide: int
    settings: TrainSettings
    strata: Strata


CLASSIFIER = ModelRecipe(
    patch_size=128,
    spacing_um_px=1.0,
    patches_per_slide=600,
    settings=TrainSettings(epochs=2, batch_size=64, lr=3e-3, log_every=20),
    strata=Strata(tumour=0.4, border=0.2, other=0.4),
)
SEGMENTER = ModelRecipe(
    patch_size=256,
    spacing_um_px=2.0,
    patches_per_slide=100,
    settings=TrainSettings(epochs=3, batch_size=16, lr=3e-3, crop=128, log_every=20),
    strata=Strata(tumour=0.45, border=0.35, other=0.2),
)


@dataclass(frozen=True)
class _Spec:
    """The patch geometry a grid needs (the two card fields of ``PatchSpec``)."""

    patch_size_pixels: int
    spacing_um_px: float


def _log(message: str) -> None:
    print(message, flush=True)


def _sample(
    slides: Sequence[Path], recipe: ModelRecipe, seed: int, stream: int, *, with_masks: bool
) -> PatchSet:
    spec = _Spec(recipe.patch_size, recipe.spacing_um_px)
    parts = []
    for i, slide in enumerate(slides):
        rng = np.random.default_rng([seed, stream, i])
        parts.append(
            sample_patches(
                slide,
                spec,
                recipe.patches_per_slide,
                rng,
                strata=recipe.strata,
                with_masks=with_masks,
            )
        )
    return PatchSet.concatenate(parts)


def _training_record(
    *,
    seed: int,
    threads: int,
    recipe: ModelRecipe,
    patches: PatchSet,
    report: TrainReport,
    sampling_s: float,
    heldout: dict[str, Any],
) -> dict[str, Any]:
    import torch

    return {
        "command": f"python -m inference.models.demo.train --seed {seed} --threads {threads}",
        "data": (
            "synthetic H&E-like slides written by `slidelens synth` "
            "(inference.slides.synth.writer.write_synthetic_slide); labels from their tumour masks"
        ),
        "seed": seed,
        "training_slides": [s.as_dict() for s in TRAIN_SLIDES],
        "training_seeds": [s.seed for s in TRAIN_SLIDES],
        "heldout_slide": HELDOUT_SLIDE.as_dict(),
        "heldout_seed": HELDOUT_SLIDE.seed,
        "reserved_test_seeds": list(TEST_SEEDS),
        "heldout": heldout,
        "patches": len(patches),
        "tumour_patches": int(patches.labels.sum()),
        "patch_sampling": (
            "random level-0 positions with at least the engine's tissue threshold, read by "
            "the engine's PatchReader; stratified by tumour fraction "
            f"{asdict(recipe.strata)}"
        ),
        "augmentation": "8 flips/quarter turns; per-channel contrast x0.92-1.08, shift 0.1 std",
        "settings": asdict(recipe.settings),
        "optimiser": "AdamW, one-cycle learning-rate schedule",
        "steps": report.steps,
        "samples_seen": report.samples,
        "train_seconds": round(report.seconds, 1),
        "sampling_seconds": round(sampling_s, 1),
        "hit_time_limit": report.hit_time_limit,
        "final_loss": round(report.final_loss, 5),
        "torch_threads": threads,
        "torch_version": torch.__version__,
        "weights_dtype": "float16 (loaded into float32); metrics measured with these weights",
    }


def make_classifier(
    out: Path, slides: Sequence[Path], heldout: Path, *, seed: int, threads: int
) -> dict[str, Any]:
    """Train, measure and write the demo classifier; return its summary."""
    recipe = CLASSIFIER
    t0 = time.perf_counter()
    _log(f"[classifier] sampling {recipe.patches_per_slide} patches a slide from {len(slides)}")
    patches = _sample(slides, recipe, seed, 1, with_masks=False)
    sampling_s = time.perf_counter() - t0
    _log(
        f"[classifier] {len(patches)} patches ({int(patches.labels.sum())} tumour) "
        f"in {sampling_s:.0f} s"
    )
    mean, std = channel_stats(patches.rgb)
    card_args: dict[str, Any] = dict(
        patch_size=recipe.patch_size,
        spacing_um_px=recipe.spacing_um_px,
        mean=mean,
        std=std,
        cam_target_layer="features.2",
    )
    staging = staging_folder(out, CLASSIFIER_NAME)
    model = untrained_model(staging, classifier_card(**card_args), seed=seed)
    report = train_classifier(model, patches, recipe.settings, seed=seed, log=_log)
    _log(f"[classifier] trained in {report.seconds:.0f} s ({report.steps} steps)")
    write_model_folder(staging, classifier_card(**card_args), state_as_numpy(model.module))
    t1 = time.perf_counter()
    metrics = classifier_metrics(heldout, staging)
    _log(
        f"[classifier] held-out (seed {HELDOUT_SLIDE.seed}): AUC {metrics.auc:.4f}, "
        f"accuracy {metrics.accuracy:.4f} over {metrics.patches} tissue patches "
        f"({metrics.tumour_patches} tumour), engine run {time.perf_counter() - t1:.0f} s"
    )
    training = _training_record(
        seed=seed,
        threads=threads,
        recipe=recipe,
        patches=patches,
        report=report,
        sampling_s=sampling_s,
        heldout={**metrics.as_dict(), "truth": "tumour fraction of the patch >= 0.5"},
    )
    card = classifier_card(
        **card_args,
        metrics={"auc": round(metrics.auc, 5), "accuracy": round(metrics.accuracy, 5)},
        training=training,
    )
    write_card(staging, card)
    load_card(staging)
    final = replace_folder(staging, out / CLASSIFIER_NAME)
    return {
        "name": CLASSIFIER_NAME,
        "folder": str(final),
        "train_s": report.seconds,
        "sampling_s": sampling_s,
        "auc": metrics.auc,
        "accuracy": metrics.accuracy,
        "ok": metrics.auc >= TARGET_AUC,
    }


def make_segmenter(
    out: Path, slides: Sequence[Path], heldout: Path, *, seed: int, threads: int
) -> dict[str, Any]:
    """Train, measure and write the demo segmentation U-Net; return its summary."""
    recipe = SEGMENTER
    t0 = time.perf_counter()
    _log(f"[segmenter] sampling {recipe.patches_per_slide} tiles a slide from {len(slides)}")
    patches = _sample(slides, recipe, seed, 2, with_masks=True)
    sampling_s = time.perf_counter() - t0
    assert patches.masks is not None
    _log(
        f"[segmenter] {len(patches)} tiles, {patches.masks.mean():.1%} tumour pixels, "
        f"in {sampling_s:.0f} s"
    )
    mean, std = channel_stats(patches.rgb)
    card_args: dict[str, Any] = dict(
        patch_size=recipe.patch_size, spacing_um_px=recipe.spacing_um_px, mean=mean, std=std
    )
    staging = staging_folder(out, SEGMENTER_NAME)
    model = untrained_model(staging, segmenter_card(**card_args), seed=seed)
    report = train_segmenter(model, patches, recipe.settings, seed=seed, log=_log)
    _log(f"[segmenter] trained in {report.seconds:.0f} s ({report.steps} steps)")
    write_model_folder(staging, segmenter_card(**card_args), state_as_numpy(model.module))
    t1 = time.perf_counter()
    metrics = segmentation_metrics(heldout, staging)
    _log(
        f"[segmenter] held-out (seed {HELDOUT_SLIDE.seed}): Dice {metrics.dice:.4f}, "
        f"IoU {metrics.iou:.4f} on {metrics.tissue_pixels} tissue pixels at "
        f"{metrics.map_l0_per_px:g} level-0 px per map px, engine run "
        f"{time.perf_counter() - t1:.0f} s"
    )
    training = _training_record(
        seed=seed,
        threads=threads,
        recipe=recipe,
        patches=patches,
        report=report,
        sampling_s=sampling_s,
        heldout={
            **metrics.as_dict(),
            "truth": "tumour mask at the map's resolution, on the engine's tissue mask",
        },
    )
    card = segmenter_card(
        **card_args,
        metrics={"dice": round(metrics.dice, 5), "iou": round(metrics.iou, 5)},
        training=training,
    )
    write_card(staging, card)
    load_card(staging)
    final = replace_folder(staging, out / SEGMENTER_NAME)
    return {
        "name": SEGMENTER_NAME,
        "folder": str(final),
        "train_s": report.seconds,
        "sampling_s": sampling_s,
        "dice": metrics.dice,
        "iou": metrics.iou,
        "ok": metrics.dice >= TARGET_DICE,
    }


def _parser() -> argparse.ArgumentParser:
    from inference.models.registry import bundled_models_dir

    parser = argparse.ArgumentParser(
        prog="python -m inference.models.demo.train",
        description=(
            "Make SlideLens's demo models (trained on synthetic slides, not for diagnosis): "
            f"{CLASSIFIER_NAME} and {SEGMENTER_NAME}."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=bundled_models_dir(),
        help="where the model folders go (default: the bundled resources/models)",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: all cores)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for the synthetic slides (kept; default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--only",
        choices=("classifier", "segmenter", "mil", "prostate"),
        default=None,
        help="make just one of the models (mil: the slide-level ABMIL head over the "
        "classifier's embeddings, see inference.models.demo.mil; prostate: the demo "
        "prostate grader, see inference.models.demo.grader)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit code."""
    import torch

    from inference.engine.cores import available_cores

    args = _parser().parse_args(argv)
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="slidelens-train-demo-"))
    started = time.perf_counter()
    try:
        summaries = []
        if args.only == "mil":
            from inference.models.demo.mil import make_mil

            summaries.append(make_mil(out, work, seed=args.seed, threads=threads, log=_log))
            return _summarise(summaries, args.seed, started)
        if args.only == "prostate":
            from inference.models.demo.grader import make_grader

            summaries.append(make_grader(out, work, seed=args.seed, threads=threads, log=_log))
            return _summarise(summaries, args.seed, started)
        _log(f"writing {len(TRAIN_SLIDES)} training slides and the held-out slide to {work}")
        slides = [make_slide(work, spec) for spec in TRAIN_SLIDES]
        heldout = make_slide(work, HELDOUT_SLIDE)
        _log(f"slides ready in {time.perf_counter() - started:.0f} s; torch threads {threads}")
        if args.only in (None, "classifier"):
            summaries.append(make_classifier(out, slides, heldout, seed=args.seed, threads=threads))
        if args.only in (None, "segmenter"):
            summaries.append(make_segmenter(out, slides, heldout, seed=args.seed, threads=threads))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return _summarise(summaries, args.seed, started)


def _summarise(summaries: Sequence[dict[str, Any]], seed: int, started: float) -> int:
    """Print what was made; the exit code (1 when a model missed its target)."""
    _log("")
    _log(f"summary (training seed {seed}):")
    for s in summaries:
        if "slide_auc" in s:
            figures = (
                f"held-out slide AUC {s['slide_auc']:.4f}, accuracy {s['slide_accuracy']:.4f}, "
                f"similarity precision@10 {s['similarity_precision_at_10']:.3f}"
            )
        elif "kappa" in s:
            kappa = "n/a" if s["kappa"] is None else f"{s['kappa']:.4f}"
            figures = (
                f"held-out slide kappa {kappa}, lowest class AUC {s['auc']:.4f}, "
                f"accuracy {s['accuracy']:.4f}"
            )
        elif "auc" in s:
            figures = f"AUC {s['auc']:.4f}, accuracy {s['accuracy']:.4f}"
        else:
            figures = f"Dice {s['dice']:.4f}, IoU {s['iou']:.4f}"
        size = sum(p.stat().st_size for p in Path(s["folder"]).iterdir()) / 1e6
        _log(
            f"  {s['name']}: {figures}; sampling {s['sampling_s']:.0f} s, training "
            f"{s['train_s']:.0f} s; folder {size:.2f} MB{'' if s['ok'] else '  MISSED TARGET'}"
        )
    _log(f"  total {time.perf_counter() - started:.0f} s")
    return 0 if all(s["ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
