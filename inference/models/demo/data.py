"""Training data for the bundled demo models: synthetic slides and labelled patches.

Patches are read exactly as the engine reads them at inference: the model card's
``patch_size_pixels`` and ``spacing_um_px`` give the patch side on the slide
(:func:`inference.engine.patches.make_patch_grid`), and
:class:`inference.engine.patches.PatchReader` reads it from the best pyramid level and
resizes it to the model's patch size.  Only
*where* patches are taken differs: training takes them at random level-0 positions (the
engine's grid starts at the origin), so the model never learns the grid.

Labels come from the slide's ground-truth mask (``OUT.mask.png`` written by
``slidelens synth``): a patch's tumour fraction is :meth:`TruthMask.fraction_in` of its
level-0 rectangle, the very number the held-out evaluation thresholds, and a
segmentation target is the mask sampled at every patch pixel's centre (the rule of
:meth:`TruthMask.resampled`).  Background is dropped with the engine's tissue mask and
threshold.  No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.core.geometry import Rect
from inference.engine.patches import PatchSpec, make_patch_grid, make_patch_reader
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD, TissueMask, tissue_mask
from inference.evaluation.truth import TruthMask, load_truth

#: Patches with at least this tumour fraction are labelled tumour (training and metrics).
TUMOUR_FRACTION_THRESHOLD = 0.5


@dataclass(frozen=True)
class SlideSpec:
    """One synthetic slide to make: level-0 size, seed and pixel size (um/px)."""

    width: int
    height: int
    seed: int
    mpp: float = 0.5

    @property
    def file_name(self) -> str:
        mpp = f"{self.mpp:g}".replace(".", "p")
        return f"synth-s{self.seed}-{self.width}x{self.height}-mpp{mpp}.tiff"

    def as_dict(self) -> dict[str, float | int]:
        return {"width": self.width, "height": self.height, "seed": self.seed, "mpp": self.mpp}


def make_slide(folder: Path, spec: SlideSpec) -> Path:
    """Write the synthetic slide (and its ground truth) into ``folder`` unless it is there.

    The generator is deterministic, so a slide already written for the same spec is
    the same slide.  Returns the slide's path.
    """
    from inference.slides.synth.writer import SynthParams, truth_paths, write_synthetic_slide

    path = Path(folder) / spec.file_name
    mask, _ = truth_paths(path)
    if not (path.is_file() and mask.is_file()):
        params = SynthParams(width=spec.width, height=spec.height, seed=spec.seed, mpp=spec.mpp)
        write_synthetic_slide(path, params)
    return path


def slide_truth(slide: Path, l0_dimensions: tuple[int, int]) -> TruthMask:
    """The tumour ground truth written beside a synthetic slide."""
    from inference.slides.synth.writer import truth_paths

    mask, _ = truth_paths(Path(slide))
    return load_truth(mask, l0_dimensions)


def truth_window(truth: TruthMask, l0_x: int, l0_y: int, l0_size: int, out_px: int) -> np.ndarray:
    """The ground truth of a square level-0 window as an ``(out_px, out_px)`` bool mask.

    Output pixel ``(i, j)`` takes the mask pixel under its centre, level-0
    ``(l0_x + (j + 0.5) * s, l0_y + (i + 0.5) * s)`` with ``s = l0_size / out_px`` (the
    nearest-at-centre rule of :meth:`TruthMask.resampled`); outside the mask is False.
    """
    step = l0_size / out_px
    centres = (np.arange(out_px) + 0.5) * step
    src_c = np.floor((l0_x + centres) / truth.l0_per_px).astype(np.intp)
    src_r = np.floor((l0_y + centres) / truth.l0_per_px).astype(np.intp)
    rows, cols = truth.mask.shape
    ok_c = (src_c >= 0) & (src_c < cols)
    ok_r = (src_r >= 0) & (src_r < rows)
    inner = truth.mask[np.clip(src_r, 0, rows - 1)][:, np.clip(src_c, 0, cols - 1)]
    return inner & ok_r[:, None] & ok_c[None, :]


@dataclass(frozen=True)
class PatchSet:
    """Patches read from one or more slides, with their labels.

    ``rgb``: ``(n, S, S, 3)`` uint8 as the engine feeds the model; ``l0_xy``: ``(n, 2)``
    level-0 top-left corners (on the slide named by ``slide_index`` into ``slides``);
    ``tumour_fraction``: ``(n,)`` share of each patch's level-0 rectangle that the
    ground truth calls tumour; ``masks``: ``(n, S, S)`` bool per-pixel truth, or ``None``
    when not asked for.  ``l0_patch`` is the patch side in level-0 pixels per slide.
    """

    rgb: np.ndarray
    l0_xy: np.ndarray
    tumour_fraction: np.ndarray
    masks: np.ndarray | None
    slide_index: np.ndarray
    slides: tuple[Path, ...]
    l0_patch: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def labels(self) -> np.ndarray:
        """``(n,)`` int64: 1 where the tumour fraction is at least one half, else 0."""
        return (self.tumour_fraction >= TUMOUR_FRACTION_THRESHOLD).astype(np.int64)

    @staticmethod
    def concatenate(parts: Sequence[PatchSet]) -> PatchSet:
        """One set holding every patch of ``parts``, in order."""
        if not parts:
            raise ValueError("no patch sets to concatenate")
        offsets = np.cumsum([0] + [len(p.slides) for p in parts[:-1]])
        has_masks = all(p.masks is not None for p in parts)
        return PatchSet(
            rgb=np.concatenate([p.rgb for p in parts]),
            l0_xy=np.concatenate([p.l0_xy for p in parts]),
            tumour_fraction=np.concatenate([p.tumour_fraction for p in parts]),
            masks=(
                np.concatenate([p.masks for p in parts if p.masks is not None])
                if has_masks
                else None
            ),
            slide_index=np.concatenate(
                [p.slide_index + int(o) for p, o in zip(parts, offsets, strict=True)]
            ),
            slides=tuple(s for p in parts for s in p.slides),
            l0_patch=tuple(s for p in parts for s in p.l0_patch),
        )


@dataclass(frozen=True)
class Strata:
    """Shares of a sample by tumour fraction ``f``: tumour (``f >= 0.5``), border
    (``0 < f < 0.5``) and other (``f == 0``).  Shares a slide cannot fill go to the others."""

    tumour: float = 0.4
    border: float = 0.2
    other: float = 0.4


def sample_patches(
    slide: Path,
    spec: PatchSpec,
    count: int,
    rng: np.random.Generator,
    *,
    strata: Strata = Strata(),
    with_masks: bool = False,
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD,
    candidates_per_patch: int = 12,
) -> PatchSet:
    """Read ``count`` labelled patches from a synthetic slide, as the engine reads them.

    Candidate corners are drawn uniformly over the slide (a patch may reach up to half
    its side past the right and bottom edges, as the engine's last grid patches do);
    candidates with less tissue than ``tissue_threshold`` (the engine's tissue mask and
    rule) are dropped; the rest are drawn by ``strata`` without replacement.  Fewer than
    ``count`` patches come back only when the slide has fewer tissue candidates.
    Deterministic for a given ``rng`` state.
    """
    from inference.slides import open_slide

    source = open_slide(slide)
    try:
        info = source.info
        grid = make_patch_grid(info, spec)
        l0_patch = grid.l0_patch
        reader = make_patch_reader(source, grid, int(spec.patch_size_pixels))
        tissue = tissue_mask(source)
        truth = slide_truth(slide, info.dimensions)
        n_cand = max(count * candidates_per_patch, 64)
        xs, ys = tissue_candidates(info.dimensions, l0_patch, n_cand, rng, tissue, tissue_threshold)
        fractions = np.array(
            [
                truth.fraction_in(Rect(int(x), int(y), l0_patch, l0_patch))
                for x, y in zip(xs, ys, strict=True)
            ],
            np.float64,
        )
        chosen = _stratified(fractions, count, strata, rng)
        out_px = int(spec.patch_size_pixels)
        rgb = np.empty((len(chosen), out_px, out_px, 3), np.uint8)
        masks = np.empty((len(chosen), out_px, out_px), bool) if with_masks else None
        for i, k in enumerate(chosen):
            rgb[i] = reader.read_l0(int(xs[k]), int(ys[k]))
            if masks is not None:
                masks[i] = truth_window(truth, int(xs[k]), int(ys[k]), l0_patch, out_px)
    finally:
        source.close()
    return PatchSet(
        rgb=rgb,
        l0_xy=np.stack([xs[chosen], ys[chosen]], 1).astype(np.int64),
        tumour_fraction=fractions[chosen].astype(np.float32),
        masks=masks,
        slide_index=np.zeros(len(chosen), np.int64),
        slides=(Path(slide),),
        l0_patch=(l0_patch,),
    )


def tissue_candidates(
    dimensions: tuple[int, int],
    l0_patch: int,
    count: int,
    rng: np.random.Generator,
    tissue: TissueMask,
    tissue_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 top-left corners ``(xs, ys)`` of patches drawn uniformly over a slide of
    ``dimensions`` (reaching up to half a patch past the right and bottom edges, as the
    engine's last grid patches do), keeping those with at least ``tissue_threshold``
    tissue by the engine's rule.  ``count`` are drawn; fewer come back."""
    width, height = dimensions
    xs = rng.integers(0, max(1, width - l0_patch // 2), count)
    ys = rng.integers(0, max(1, height - l0_patch // 2), count)
    rects = np.stack([xs, ys, np.full(count, l0_patch), np.full(count, l0_patch)], 1)
    keep = tissue.fractions_in(rects.astype(np.float64)) >= tissue_threshold
    return xs[keep], ys[keep]


def _stratified(
    fractions: np.ndarray, count: int, strata: Strata, rng: np.random.Generator
) -> np.ndarray:
    """Indices into ``fractions``: ``count`` (or all there are) drawn by ``strata``."""
    groups = [
        np.flatnonzero(fractions >= TUMOUR_FRACTION_THRESHOLD),
        np.flatnonzero((fractions > 0) & (fractions < TUMOUR_FRACTION_THRESHOLD)),
        np.flatnonzero(fractions <= 0),
    ]
    shares = np.array([strata.tumour, strata.border, strata.other], np.float64)
    shares = shares / shares.sum()
    available = [len(g) for g in groups]
    count = min(count, sum(available))
    wanted = [min(a, math.floor(count * s)) for a, s in zip(available, shares, strict=True)]
    # what a small group cannot take goes to the others, largest share first
    for g in np.argsort(-shares, kind="stable"):
        wanted[g] += min(available[g] - wanted[g], count - sum(wanted))
    picked = [rng.choice(groups[g], size=wanted[g], replace=False) for g in range(3)]
    return np.sort(np.concatenate(picked)).astype(np.int64)
