"""Cards and folders of the bundled demo models (``resources/models/<name>/``).

:func:`classifier_card` and :func:`segmenter_card` build the ``config.json`` data (WSInfer
model config plus our ``slidelens`` object) that :func:`inference.models.load_card`
validates.  :func:`write_model_folder` writes a card and its ``model.safetensors``;
:func:`replace_folder` swaps a finished folder into place so a reader never sees half
a model.  No torch here; weights arrive as NumPy arrays.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.models.card import CONFIG_NAME
from inference.slides.synth.writer import SYNTH_SOFTWARE

CLASSIFIER_NAME = "demo-tumour-classifier"
SEGMENTER_NAME = "demo-tumour-unet"
GRADER_NAME = "demo-prostate-grader"
WEIGHTS_NAME = "model.safetensors"
LICENCE = (
    "Apache-2.0 (as SlideLens); trained by SlideLens's own command on slides it generates, "
    "with no third-party data or weights"
)
NOT_FOR_DIAGNOSIS = (
    "Trained only on synthetic H&E-like tissue made by `slidelens synth`, never on a real "
    "specimen. NOT FOR DIAGNOSIS or any clinical or research use on real slides, where its "
    "output is meaningless."
)
INTENDED_USE = (
    "Demonstrating and testing SlideLens (heatmaps, segmentation overlays, CAM "
    "explanations, export, benchmarks) on synthetic slides made by `slidelens synth`. "
    + NOT_FOR_DIAGNOSIS
)
#: ``slidelens.domain`` of both demo models: not for diagnosis, made for the slides
#: ``slidelens synth`` writes (recognised by their TIFF Software tag).
DOMAIN: dict[str, Any] = {
    "for_diagnosis": False,
    "trained_on": "synthetic H&E-like tissue (slidelens synth)",
    "slides": [{"property": "tiff.Software", "equals": SYNTH_SOFTWARE}],
}


def _transform(mean: Sequence[float], std: Sequence[float]) -> list[dict[str, Any]]:
    return [
        {"name": "ToTensor"},
        {
            "name": "Normalize",
            "arguments": {
                "mean": [round(float(v), 4) for v in mean],
                "std": [round(float(v), 4) for v in std],
            },
        },
    ]


def classifier_card(
    *,
    patch_size: int,
    spacing_um_px: float,
    mean: Sequence[float],
    std: Sequence[float],
    cam_target_layer: str,
    metrics: Mapping[str, float] | None = None,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` data of the demo tumour-vs-other patch classifier."""
    return {
        "spec_version": "1.0",
        "architecture": "small_cnn",
        "num_classes": 2,
        "class_names": ["other", "tumour"],
        "patch_size_pixels": int(patch_size),
        "spacing_um_px": float(spacing_um_px),
        "transform": _transform(mean, std),
        "slidelens": {
            "task": "classification",
            "activation": "softmax",
            "cam_target_layer": cam_target_layer,
            "description": (
                f"Demo patch classifier, tumour vs other tissue: small_cnn on {patch_size} px "
                f"patches at {spacing_um_px:g} um/px. " + NOT_FOR_DIAGNOSIS
            ),
            "licence": LICENCE,
            "intended_use": INTENDED_USE,
            "domain": DOMAIN,
            "metrics": dict(metrics or {}),
            "training": dict(training or {}),
        },
    }


def segmenter_card(
    *,
    patch_size: int,
    spacing_um_px: float,
    mean: Sequence[float],
    std: Sequence[float],
    metrics: Mapping[str, float] | None = None,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` data of the demo tumour segmentation U-Net (one sigmoid output:
    the per-pixel tumour probability)."""
    return {
        "spec_version": "1.0",
        "architecture": "unet_small",
        "num_classes": 1,
        "class_names": ["tumour"],
        "patch_size_pixels": int(patch_size),
        "spacing_um_px": float(spacing_um_px),
        "transform": _transform(mean, std),
        "slidelens": {
            "task": "segmentation",
            "activation": "sigmoid",
            "cam_target_layer": "dec1",
            "description": (
                f"Demo tumour segmentation: unet_small on {patch_size} px tiles at "
                f"{spacing_um_px:g} um/px, per-pixel tumour probability. " + NOT_FOR_DIAGNOSIS
            ),
            "licence": LICENCE,
            "intended_use": INTENDED_USE,
            "domain": DOMAIN,
            "metrics": dict(metrics or {}),
            "training": dict(training or {}),
        },
    }


#: The demo prostate grader's classes: label value = class index (PANDA's Radboud masks).
GRADER_CLASSES = ("background", "stroma", "benign", "gleason3", "gleason4", "gleason5")
#: Which grader classes are Gleason patterns, and how a slide's grade follows.
GRADER_GRADING: dict[str, Any] = {
    "rule": "gleason-isup",
    "patterns": {"gleason3": 3, "gleason4": 4, "gleason5": 5},
    "biopsy": True,
}
#: How the ground truth of ``slidelens synth --kind prostate`` (and a pathologist's
#: QuPath annotations) names the grader's classes.
GRADER_TRUTH_CLASSES: dict[str, str] = {
    "Background": "background",
    "Stroma": "stroma",
    "Benign": "benign",
    "Gleason 3": "gleason3",
    "Gleason 4": "gleason4",
    "Gleason 5": "gleason5",
}


def grader_card(
    *,
    architecture: str,
    patch_size: int,
    spacing_um_px: float,
    mean: Sequence[float],
    std: Sequence[float],
    cam_target_layer: str,
    min_pattern_fraction: float,
    metrics: Mapping[str, float] | None = None,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` data of the demo prostate grader: a patch classifier of
    :data:`GRADER_CLASSES` whose card declares the Gleason/ISUP grading of its class map
    (``min_pattern_fraction``: the share of the tissue below which a predicted pattern
    is noise)."""
    return {
        "spec_version": "1.0",
        "architecture": architecture,
        "num_classes": len(GRADER_CLASSES),
        "class_names": list(GRADER_CLASSES),
        "patch_size_pixels": int(patch_size),
        "spacing_um_px": float(spacing_um_px),
        "transform": _transform(mean, std),
        "slidelens": {
            "task": "classification",
            "activation": "softmax",
            "cam_target_layer": cam_target_layer,
            "description": (
                f"Demo prostate grader: {architecture} on {patch_size} px patches at "
                f"{spacing_um_px:g} um/px, classes background, stroma, benign glands and "
                "Gleason patterns 3, 4 and 5 (PANDA's Radboud labels); the slide's Gleason "
                "score and ISUP grade group follow from its class map. "
                "Trained only on synthetic prostate biopsies made by `slidelens synth "
                "--kind prostate`, whose patterns are drawn textures, never on a real "
                "specimen. NOT FOR DIAGNOSIS or any clinical or research use on real "
                "slides, where its output is meaningless."
            ),
            "licence": LICENCE,
            "intended_use": (
                "Demonstrating and testing SlideLens's multi-class maps, slide reports and "
                "grading on synthetic prostate biopsies made by `slidelens synth --kind "
                "prostate`. " + NOT_FOR_DIAGNOSIS
            ),
            "domain": DOMAIN,
            "grading": {**GRADER_GRADING, "min_pattern_fraction": min_pattern_fraction},
            "truth_classes": dict(GRADER_TRUTH_CLASSES),
            "metrics": dict(metrics or {}),
            "training": dict(training or {}),
        },
    }


def write_card(folder: Path, card: Mapping[str, Any]) -> Path:
    """Write ``folder/config.json`` (indented, keys in the order given)."""
    path = Path(folder) / CONFIG_NAME
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


def write_model_folder(
    folder: Path, card: Mapping[str, Any], weights: Mapping[str, np.ndarray]
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created).

    Floating-point weights are stored as float16 to keep the bundled folders small;
    :func:`inference.models.load_model` copies them into the float32 network, and every
    metric in a card is measured with the weights as stored.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # np.array keeps 0-d entries (BatchNorm's num_batches_tracked) 0-d, unlike
    # np.ascontiguousarray, which would make them 1-d and unloadable
    tensors = {
        name: np.array(
            value.astype(np.float16) if np.issubdtype(value.dtype, np.floating) else value,
            order="C",
        )
        for name, value in weights.items()
    }
    weights_path = folder / WEIGHTS_NAME
    save_file(tensors, str(weights_path), metadata={"format": "pt"})
    weights_path.chmod(0o644)  # safetensors creates the file owner-only
    write_card(folder, card)
    return folder


def staging_folder(out: Path, name: str) -> Path:
    """Where a model is built before it replaces ``out/name``: a hidden sibling that the
    registry does not list.  Any leftover from an interrupted run is removed first."""
    staging = Path(out) / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    return staging


def replace_folder(staging: Path, final: Path) -> Path:
    """Move a finished ``staging`` folder to ``final``, replacing what was there."""
    final = Path(final)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)
    return final
