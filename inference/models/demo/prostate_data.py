"""Training data for the demo prostate grader: synthetic biopsies and patches with class shares.

Slides are ``slidelens synth --kind prostate`` slides (:func:`make_prostate_slide`); their
label masks (PANDA's Radboud values 0-5) are the truth.  A patch's target is the share
of each label in its level-0 rectangle (:meth:`TruthMask.label_fractions_in`; the part
past the slide's edge is background), so the grader learns soft targets the way the
tumour classifier does.  Patches are read exactly as the engine reads them
(:class:`inference.engine.patches.PatchReader` at the card's spacing), at random tissue
positions (:func:`inference.models.demo.data.tissue_candidates`), drawn over all the
training slides at once so that every class's majority is about equally common
(:func:`sample_labelled_patches`).  No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.core.geometry import Rect
from inference.engine.patches import PatchSpec, make_patch_grid, make_patch_reader
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD, tissue_mask
from inference.evaluation.truth import TruthMask, load_truth
from inference.models.demo.data import SlideSpec, tissue_candidates


def prostate_file_name(spec: SlideSpec) -> str:
    """The file name of a synthetic prostate slide (``prostate-s<seed>-...tiff``)."""
    mpp = f"{spec.mpp:g}".replace(".", "p")
    return f"prostate-s{spec.seed}-{spec.width}x{spec.height}-mpp{mpp}.tiff"


def make_prostate_slide(folder: Path, spec: SlideSpec) -> Path:
    """Write the synthetic prostate slide of ``spec`` (and its truth) into ``folder``
    unless it is there (the generator is deterministic); return its path."""
    from inference.slides.synth.writer import SynthParams, truth_json_path, write_synthetic_slide

    path = Path(folder) / prostate_file_name(spec)
    if not (path.is_file() and truth_json_path(path).is_file()):
        params = SynthParams(
            width=spec.width, height=spec.height, seed=spec.seed, mpp=spec.mpp, kind="prostate"
        )
        write_synthetic_slide(path, params)
    return path


def prostate_truth(slide: Path, l0_dimensions: tuple[int, int]) -> TruthMask:
    """The label mask written beside a synthetic prostate slide."""
    from inference.slides.synth.writer import truth_paths

    mask, _ = truth_paths(Path(slide))
    return load_truth(mask, l0_dimensions)


@dataclass(frozen=True)
class LabelledPatches:
    """Patches with class shares.

    ``rgb``: ``(n, S, S, 3)`` uint8 as the engine feeds the model; ``fractions``: ``(n, C)``
    share of each class (label) in the patch's level-0 rectangle; ``l0_xy``: ``(n, 2)``
    top-left corners on the slide ``slides[slide_index[i]]``.
    """

    rgb: np.ndarray
    fractions: np.ndarray
    l0_xy: np.ndarray
    slide_index: np.ndarray
    slides: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def labels(self) -> np.ndarray:
        """``(n,)`` int64: each patch's majority class."""
        return np.argmax(self.fractions, axis=1).astype(np.int64)

    @staticmethod
    def concatenate(parts: Sequence[LabelledPatches]) -> LabelledPatches:
        """One set holding every patch of ``parts``, in order."""
        if not parts:
            raise ValueError("no patch sets to concatenate")
        offsets = np.cumsum([0] + [len(p.slides) for p in parts[:-1]])
        return LabelledPatches(
            rgb=np.concatenate([p.rgb for p in parts]),
            fractions=np.concatenate([p.fractions for p in parts]),
            l0_xy=np.concatenate([p.l0_xy for p in parts]),
            slide_index=np.concatenate(
                [p.slide_index + int(o) for p, o in zip(parts, offsets, strict=True)]
            ),
            slides=tuple(s for p in parts for s in p.slides),
        )


def balanced_choice(
    labels: np.ndarray, count: int, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices into ``labels``: ``count`` (or all there are) drawn without
    replacement so that each class has an equal share; what a rare class cannot fill
    goes to the others, most plentiful first."""
    groups = [np.flatnonzero(labels == k) for k in range(n_classes)]
    available = np.array([len(g) for g in groups])
    count = min(count, int(available.sum()))
    wanted = np.minimum(available, count // n_classes)
    for k in np.argsort(-available, kind="stable"):
        wanted[k] += min(available[k] - wanted[k], count - int(wanted.sum()))
    picked = [rng.choice(groups[k], size=int(wanted[k]), replace=False) for k in range(n_classes)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


@dataclass(frozen=True)
class Candidates:
    """Where patches of one slide may be taken: level-0 top-left corners (``xs``, ``ys``,
    tissue only) and the ``(n, C)`` class shares of each."""

    slide: Path
    xs: np.ndarray
    ys: np.ndarray
    fractions: np.ndarray


def patch_candidates(
    slide: Path,
    spec: PatchSpec,
    count: int,
    n_classes: int,
    rng: np.random.Generator,
    *,
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD,
) -> Candidates:
    """``count`` random positions of a synthetic prostate slide, those with tissue kept
    (:func:`~inference.models.demo.data.tissue_candidates`), with their class shares.
    Reads the tissue mask and the truth, no patch.  Deterministic for ``rng``."""
    from inference.slides import open_slide

    source = open_slide(slide)
    try:
        info = source.info
        l0_patch = make_patch_grid(info, spec).l0_patch
        tissue = tissue_mask(source)
        truth = prostate_truth(slide, info.dimensions)
    finally:
        source.close()
    xs, ys = tissue_candidates(info.dimensions, l0_patch, count, rng, tissue, tissue_threshold)
    fractions = np.array(
        [
            truth.label_fractions_in(Rect(int(x), int(y), l0_patch, l0_patch), n_classes)
            for x, y in zip(xs, ys, strict=True)
        ],
        np.float64,
    ).reshape(-1, n_classes)
    return Candidates(Path(slide), xs, ys, fractions)


def read_patches(
    candidates: Candidates, chosen: np.ndarray, spec: PatchSpec, slide_index: int = 0
) -> LabelledPatches:
    """The ``chosen`` candidates of one slide, read as the engine reads them."""
    from inference.slides import open_slide

    source = open_slide(candidates.slide)
    try:
        grid = make_patch_grid(source.info, spec)
        reader = make_patch_reader(source, grid, int(spec.patch_size_pixels))
        out_px = int(spec.patch_size_pixels)
        rgb = np.empty((len(chosen), out_px, out_px, 3), np.uint8)
        for i, k in enumerate(chosen):
            rgb[i] = reader.read_l0(int(candidates.xs[k]), int(candidates.ys[k]))
    finally:
        source.close()
    return LabelledPatches(
        rgb=rgb,
        fractions=candidates.fractions[chosen].astype(np.float32),
        l0_xy=np.stack([candidates.xs[chosen], candidates.ys[chosen]], 1).astype(np.int64),
        slide_index=np.full(len(chosen), slide_index, np.int64),
        slides=(candidates.slide,),
    )


def sample_labelled_patches(
    slides: Sequence[Path],
    spec: PatchSpec,
    count: int,
    n_classes: int,
    rng: np.random.Generator,
    *,
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD,
    candidates_per_patch: int = 8,
) -> LabelledPatches:
    """Read ``count`` patches with class shares from synthetic prostate slides, as the
    engine reads them, drawn over all the slides at once so that each class's majority
    is about equally common (:func:`balanced_choice`).  Deterministic for ``rng``."""
    per_slide = max(64, count * candidates_per_patch // max(1, len(slides)))
    pools = [
        patch_candidates(slide, spec, per_slide, n_classes, rng, tissue_threshold=tissue_threshold)
        for slide in slides
    ]
    fractions = np.concatenate([p.fractions for p in pools])
    owner = np.concatenate([np.full(len(p.xs), i) for i, p in enumerate(pools)])
    local = np.concatenate([np.arange(len(p.xs)) for p in pools])
    chosen = balanced_choice(np.argmax(fractions, axis=1), count, n_classes, rng)
    parts = [
        read_patches(pool, local[chosen[owner[chosen] == i]], spec) for i, pool in enumerate(pools)
    ]
    return LabelledPatches.concatenate(parts)
