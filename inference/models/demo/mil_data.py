"""Bags for the demo MIL head: synthetic slides with and without tumour, run once.

Each :class:`MilSlide` is a small synthetic slide (``slidelens synth``'s generator) with
a tumour size (:attr:`~inference.slides.synth.writer.SynthParams.tumour_scale`: 0 for a
slide without tumour, small values for small tumours).  :func:`slide_bag` runs the demo
patch classifier over it with the real engine, asking for embeddings, and keeps the
result (probabilities and float16 embeddings) as ``<slide>.result.npz`` beside the
slide, so training, evaluation and reruns read the stored arrays and never run the
classifier twice.  A bag's slide label is whether the slide's truth mask holds any
tumour in tissue; each patch's tumour fraction comes from the same mask.  No torch
here (the engine imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.core.geometry import Rect
from inference.results.store import InferenceResult

#: A patch is tumour (for similarity hits and clicks) at this tumour fraction.
PATCH_TUMOUR_FRACTION = 0.5


@dataclass(frozen=True)
class MilSlide:
    """One slide of the MIL data: level-0 size, seed, pixel size and tumour size."""

    width: int
    height: int
    seed: int
    mpp: float
    tumour_scale: float

    @property
    def file_name(self) -> str:
        scale = f"{self.tumour_scale:.2f}".replace(".", "p")
        return f"mil-s{self.seed}-{self.width}x{self.height}-t{scale}.tiff"

    def as_dict(self) -> dict[str, float | int]:
        return {
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "mpp": self.mpp,
            "tumour_scale": self.tumour_scale,
        }


@dataclass(frozen=True, eq=False)
class Bag:
    """One slide's stored result, its slide label and its patches' tumour fractions
    (``(n,)``, in the order of the result's embeddings)."""

    slide: Path
    result: InferenceResult
    label: int
    tumour_fraction: np.ndarray


def mil_slides(
    seeds: range | tuple[int, ...], scales: list[float], *, size: tuple[int, int], mpp: float
) -> tuple[MilSlide, ...]:
    """Slides of the given seeds and tumour scales (one each, in order)."""
    if len(seeds) != len(scales):
        raise ValueError(f"{len(seeds)} seeds for {len(scales)} tumour scales")
    return tuple(
        MilSlide(size[0], size[1], seed, mpp, round(float(scale), 3))
        for seed, scale in zip(seeds, scales, strict=True)
    )


def make_mil_slide(folder: Path, spec: MilSlide) -> Path:
    """Write the slide and its truth into ``folder`` unless already there; its path.

    Beside the mask and GeoJSON goes ``<stem>.truth.json`` with the slide's label
    (``slide_label``: ``tumour`` when the mask holds tumour, else ``no tumour``), which
    ``slidelens evaluate`` scores slide-level answers against.
    """
    import json

    from PIL import Image

    from inference.core.atomic_io import atomic_write_text
    from inference.slides.synth.writer import (
        SynthParams,
        truth_json_path,
        truth_paths,
        write_synthetic_slide,
    )

    path = Path(folder) / spec.file_name
    mask = truth_paths(path)[0]
    if not (path.is_file() and mask.is_file()):
        params = SynthParams(
            width=spec.width,
            height=spec.height,
            seed=spec.seed,
            mpp=spec.mpp,
            tumour_scale=spec.tumour_scale,
        )
        write_synthetic_slide(path, params, workers=1)
    truth = truth_json_path(path)
    if not truth.is_file():
        with Image.open(mask) as image:
            tumour = bool(np.asarray(image).any())
        doc = {"slide_label": "tumour" if tumour else "no tumour", **spec.as_dict()}
        atomic_write_text(truth, json.dumps(doc, indent=2) + "\n")
    return path


def stored_result_path(slide: Path) -> Path:
    return Path(slide).with_name(Path(slide).stem + ".result.npz")


def slide_bag(slide: Path, classifier: Path, *, threads: int = 1) -> Bag:
    """The slide's result with embeddings (stored beside it, made once), its label and
    its patches' tumour fractions (see the module docstring)."""
    from inference.engine.job import InferenceJob
    from inference.engine.runner import run
    from inference.models.demo.data import slide_truth
    from inference.results.exports import read_result_npz, write_result_npz
    from inference.results.store import collect
    from inference.slides import open_slide

    stored = stored_result_path(slide)
    result = read_result_npz(stored) if stored.is_file() else None
    if result is None or result.embeddings is None:
        job = InferenceJob(
            slide=slide,
            model=classifier,
            device="cpu",
            embeddings=True,
            cpu_lanes=1,
            torch_threads=threads,
        )
        result = collect(run(job))
        if result is None:
            raise ValueError(f"{slide.name}: the engine returned nothing")
        write_result_npz(stored, result)
    assert result.embeddings is not None
    source = open_slide(slide)
    try:
        dims = source.info.dimensions
    finally:
        source.close()
    truth = slide_truth(slide, dims)
    rects = result.grid.l0_rects(result.embeddings.p_ij())
    fractions = np.array(
        [truth.fraction_in(Rect(float(x), float(y), float(w), float(h))) for x, y, w, h in rects],
        np.float32,
    )
    label = int(truth.mask.any())
    return Bag(Path(slide), result, label, fractions)
