"""The bundled demo MIL head ``demo-tumour-mil``: gated-attention ABMIL over the demo
classifier's embeddings, answering "is there tumour on this slide?".

Made by ``python -m inference.models.demo.train --only mil`` from code alone:

1. writes :data:`MIL_TRAIN` (half without tumour, half with tumours of random size down
   to small ones) and :data:`MIL_HELDOUT` (six without tumour, six with tumours of
   graded size; seeds used nowhere else) with ``slidelens synth``'s generator;
2. runs the bundled ``demo-tumour-classifier`` over each once, with embeddings, and
   stores the result beside the slide (:mod:`inference.models.demo.mil_data`);
3. trains an ABMIL head (:func:`~inference.slide_level.heads.abmil_class`) on the
   training bags, one bag per step, AdamW, a fixed number of epochs, seeded;
4. measures it on the held-out bags through the same aggregator ``slidelens infer``
   uses (slide-level AUC and accuracy), and similarity search on them: for every
   tumour patch of a held-out slide with at least :data:`PRECISION_MIN_TUMOUR` tumour
   patches, the share of its ten most similar patches that are tumour too;
5. writes the folder: a WSInfer-MIL style ``config.json`` (with those figures, seeds
   and settings; not for diagnosis) and ``model.safetensors``.

Deterministic for a seed on one machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.models.demo.cards import (
    CLASSIFIER_NAME,
    DOMAIN,
    LICENCE,
    NOT_FOR_DIAGNOSIS,
    replace_folder,
    staging_folder,
    write_model_folder,
)
from inference.models.demo.mil_data import (
    PATCH_TUMOUR_FRACTION,
    Bag,
    MilSlide,
    make_mil_slide,
    mil_slides,
    slide_bag,
)

MIL_NAME = "demo-tumour-mil"
SLIDE_CLASSES = ("no tumour", "tumour")
#: Training slides: 4 x 3 mm at 1 um/px; even seeds without tumour, odd ones with.
MIL_TRAIN: tuple[MilSlide, ...] = mil_slides(
    tuple(range(2001, 2041)),
    [0.0 if s % 2 == 0 else 0.15 + 0.85 * ((s * 0.6180339887) % 1.0) for s in range(2001, 2041)],
    size=(4096, 3072),
    mpp=1.0,
)
#: Held-out slides: 6 x 4.5 mm, six without tumour, six with tumours of graded size.
MIL_HELDOUT: tuple[MilSlide, ...] = mil_slides(
    tuple(range(3001, 3013)),
    [0.0, 0.2, 0.0, 0.35, 0.0, 0.5, 0.0, 0.65, 0.0, 0.8, 0.0, 1.0],
    size=(6144, 4608),
    mpp=1.0,
)
#: Similarity precision is measured on held-out slides with at least this many tumour
#: patches (ten answers must be possible besides the clicked patch).
PRECISION_MIN_TUMOUR = 11
TARGET_AUC = 0.9
TARGET_PRECISION = 0.8


@dataclass(frozen=True)
class MilSettings:
    """The head's sizes and its training."""

    hidden: int = 64
    attention_dim: int = 32
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4


def train_abmil(
    bags: Sequence[Bag], settings: MilSettings, *, seed: int, log: Callable[[str], None]
) -> tuple[Any, dict[str, Any]]:
    """A trained ABMIL module (eval mode) and what the run did."""
    import torch
    import torch.nn.functional as F

    from inference.slide_level.heads import abmil_class

    torch.manual_seed(seed)
    width = bags[0].result.embeddings.width  # type: ignore[union-attr]
    module = abmil_class()(
        width, settings.attention_dim, len(SLIDE_CLASSES), hidden=settings.hidden
    )
    inputs = [torch.from_numpy(b.result.embeddings.matrix().astype(np.float32)) for b in bags]  # type: ignore[union-attr]
    labels = torch.tensor([b.label for b in bags])
    optimiser = torch.optim.AdamW(
        module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    losses: list[float] = []
    module.train()
    for epoch in range(settings.epochs):
        total = 0.0
        for i in torch.randperm(len(bags), generator=gen).tolist():
            logits, _attention = module(inputs[i])
            loss = F.cross_entropy(logits, labels[i : i + 1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / len(bags))
        if epoch % 10 == 9 or epoch == settings.epochs - 1:
            log(f"[mil] epoch {epoch + 1}/{settings.epochs}: mean loss {losses[-1]:.4f}")
    module.eval()
    return module, {
        "epochs": settings.epochs,
        "steps": settings.epochs * len(bags),
        "final_loss": round(losses[-1], 5),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }


def evaluate_head(folder: Path, bags: Sequence[Bag]) -> dict[str, Any]:
    """Slide-level AUC and accuracy of the head in ``folder`` on ``bags`` (through
    :func:`~inference.slide_level.pipeline.resolve_pipeline`, as ``slidelens infer``),
    and similarity precision at ten on them (see the module docstring)."""
    from inference.evaluation.roc import roc_auc
    from inference.slide_level.pipeline import resolve_pipeline

    aggregator = resolve_pipeline(folder).aggregator
    assert aggregator is not None
    scores, labels, rows = [], [], []
    for bag in bags:
        answer = aggregator(bag.result)
        p = float(answer.probabilities[answer.class_names.index("tumour")])
        scores.append(p)
        labels.append(bag.label)
        rows.append({"slide": bag.slide.name, "truth": bag.label, "p_tumour": round(p, 5)})
    auc = roc_auc(np.array(scores), np.array(labels))
    accuracy = float(np.mean([(s >= 0.5) == bool(y) for s, y in zip(scores, labels, strict=True)]))
    return {
        "slide_auc": None if auc is None else float(auc),
        "slide_accuracy": accuracy,
        "slides": len(bags),
        "tumour_slides": int(sum(labels)),
        "per_slide": rows,
        **similarity_precision(bags),
    }


def similarity_precision(bags: Sequence[Bag], top: int = 10) -> dict[str, Any]:
    """Precision at ``top`` of similarity search from every tumour patch of the bags with
    at least :data:`PRECISION_MIN_TUMOUR` tumour patches; also over every tumour slide
    (where fewer than ``top`` correct answers may exist)."""
    from inference.slide_level.similarity import SimilarityIndex

    per_slide: dict[str, float] = {}
    eligible: list[float] = []
    every: list[float] = []
    for bag in bags:
        tumour = bag.tumour_fraction >= PATCH_TUMOUR_FRACTION
        if not tumour.any():
            continue
        assert bag.result.embeddings is not None
        index = SimilarityIndex(bag.result.embeddings.matrix())
        hits = [float(tumour[index.query(int(i), top).top].mean()) for i in np.flatnonzero(tumour)]
        per_slide[bag.slide.name] = round(float(np.mean(hits)), 4)
        every += hits
        if int(tumour.sum()) >= PRECISION_MIN_TUMOUR:
            eligible += hits
    return {
        "similarity_precision_at_10": float(np.mean(eligible)) if eligible else None,
        "similarity_clicks": len(eligible),
        "similarity_precision_at_10_all_tumour_slides": float(np.mean(every)) if every else None,
        "similarity_per_slide": per_slide,
    }


def mil_card(
    *, settings: MilSettings, metrics: dict[str, float], training: dict[str, Any]
) -> dict[str, Any]:
    """The head folder's ``config.json`` (WSInfer-MIL's keys, then SlideLens's)."""
    return {
        "spec_version": "1.0",
        "type": "abmil",
        "num_classes": len(SLIDE_CLASSES),
        "class_names": list(SLIDE_CLASSES),
        "feature_extractor": CLASSIFIER_NAME,
        "patch_size_um": 128.0,
        "slidelens": {
            "aggregation": {"gallery": 8},
            "description": (
                "Demo slide-level head: gated-attention ABMIL over the 128-value "
                f"penultimate embeddings of {CLASSIFIER_NAME}, answering whether a slide "
                "holds tumour, with attention over its patches. " + NOT_FOR_DIAGNOSIS
            ),
            "licence": LICENCE,
            "intended_use": (
                "Demonstrating and testing SlideLens's slide-level answers, attention "
                "layers and slide reports on synthetic slides made by `slidelens synth`. "
                + NOT_FOR_DIAGNOSIS
            ),
            "domain": DOMAIN,
            "metrics": metrics,
            "training": {**training, "settings": asdict(settings)},
        },
    }


def make_mil(
    out: Path,
    work: Path,
    *,
    seed: int,
    threads: int,
    classifier: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Make, measure and write ``demo-tumour-mil`` into ``out``; return a summary."""
    import torch

    from inference.models.demo.training import state_as_numpy
    from inference.models.registry import bundled_models_dir

    classifier = classifier or (out / CLASSIFIER_NAME)
    if not (classifier / "config.json").is_file():
        classifier = bundled_models_dir() / CLASSIFIER_NAME
    t0 = time.perf_counter()
    bags = []
    for specs in (MIL_TRAIN, MIL_HELDOUT):
        for spec in specs:
            bags.append(slide_bag(make_mil_slide(work, spec), classifier, threads=threads))
    train, heldout = bags[: len(MIL_TRAIN)], bags[len(MIL_TRAIN) :]
    bag_s = time.perf_counter() - t0
    log(f"[mil] {len(bags)} slides written and run once, with embeddings, in {bag_s:.0f} s")
    settings = MilSettings()
    module, record = train_abmil(train, settings, seed=seed, log=log)
    staging = staging_folder(out, MIL_NAME)
    training = {
        "command": f"python -m inference.models.demo.train --only mil --seed {seed} "
        f"--threads {threads}",
        "data": (
            "synthetic H&E-like slides written by `slidelens synth` with tumour_scale 0 "
            "(no tumour) or 0.15..1 (tumour regions that small); slide label: tumour in "
            f"the truth mask; embeddings of {CLASSIFIER_NAME} stored once per slide"
        ),
        "seed": seed,
        "training_slides": [s.as_dict() for s in MIL_TRAIN],
        "heldout_slides": [s.as_dict() for s in MIL_HELDOUT],
        "slides_and_embeddings_seconds": round(bag_s, 1),
        "torch_threads": threads,
        "torch_version": torch.__version__,
        **record,
    }
    card = mil_card(settings=settings, metrics={}, training=training)
    write_model_folder(staging, card, state_as_numpy(module))
    heldout_metrics = evaluate_head(staging, heldout)  # with the weights as stored
    log(
        f"[mil] held-out: slide AUC {heldout_metrics['slide_auc']:.4f}, accuracy "
        f"{heldout_metrics['slide_accuracy']:.4f} over {len(heldout)} slides; similarity "
        f"precision@10 {heldout_metrics['similarity_precision_at_10']:.3f} "
        f"({heldout_metrics['similarity_clicks']} clicks)"
    )
    metrics = {
        "slide_auc": round(float(heldout_metrics["slide_auc"]), 5),
        "slide_accuracy": round(heldout_metrics["slide_accuracy"], 5),
        "similarity_precision_at_10": round(
            float(heldout_metrics["similarity_precision_at_10"]), 5
        ),
    }
    training["heldout"] = heldout_metrics
    training["total_seconds"] = round(time.perf_counter() - t0, 1)
    write_model_folder(
        staging,
        mil_card(settings=settings, metrics=metrics, training=training),
        state_as_numpy(module),
    )
    final = replace_folder(staging, out / MIL_NAME)
    return {
        "name": MIL_NAME,
        "folder": str(final),
        "train_s": record["train_seconds"],
        "sampling_s": bag_s,
        **metrics,
        "ok": metrics["slide_auc"] >= TARGET_AUC
        and metrics["similarity_precision_at_10"] >= TARGET_PRECISION,
    }
