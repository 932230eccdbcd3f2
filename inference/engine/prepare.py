"""Preparing a job: slide open, model loaded, grid laid out, background dropped, patches ordered.

Contract: :func:`prepare` turns an :class:`~inference.engine.job.InferenceJob` into a
:class:`PreparedJob` (or raises; a slide it opened is closed again).  A prepared job
holds everything a run needs and what its results depend on (:meth:`PreparedJob.params`,
the cache key's parameters); it makes its :class:`~inference.engine.forward.Forward`
on first use and decides how the batches run (lanes on the CPU, one at a time on
CUDA).  Order of patches: those overlapping ``job.region`` first (nearest its centre
first), then the rest.  A job that asks for embeddings hooks its embedding layer when
the forward step is made (:mod:`inference.engine.embedding`), and the layer joins the
parameters (a result with embeddings is another cache entry than one without).  Close a
prepared job (or use ``with``) to release a slide the engine opened and remove the hook.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.engine.cores import default_cpu_lanes, default_cpu_threads, default_num_readers
from inference.engine.device import host_batch, is_cuda, resolve_device
from inference.engine.forward import Forward
from inference.engine.job import InferenceError, InferenceJob, ModelLike
from inference.engine.patches import (
    PatchGrid,
    PatchReader,
    make_patch_grid,
    make_patch_reader,
    order_patches,
    slide_mpp,
)
from inference.engine.tissue import TissueMask, tissue_mask

if TYPE_CHECKING:
    import torch

    from inference.engine.embedding import EmbeddingTap
    from inference.slides import SlideSource

#: Longest side (pixels) of a segmentation probability map; tiles shrink to fit.
MAX_SEG_MAP_SIDE = 4096
#: Default overlap of segmentation windows (classification defaults to none).
DEFAULT_SEG_OVERLAP = 0.25


def _open_source(slide: str | Path | SlideSource) -> tuple[SlideSource, bool]:
    """The slide's source and whether the engine opened it (and so must close it)."""
    if isinstance(slide, str | Path):
        from inference.slides import open_slide

        return open_slide(slide), True
    return slide, False


def _load_model(
    model: str | Path | ModelLike, device: str, trust: bool, backend: str | None = None
) -> ModelLike:
    """The model loaded from a name or folder (in the ``backend`` form, else the fastest
    here), or a loaded one moved to ``device``."""
    if isinstance(model, str | Path):
        from inference.models import load_model, resolve_model

        folder = resolve_model(str(model))
        loaded: ModelLike = load_model(folder, trust=trust, device=device, backend=backend)
        return loaded
    if str(model.device) != device and hasattr(model, "to"):
        moved = model.to(device)
        return moved if moved is not None else model
    return model


@dataclass
class PreparedJob:
    """A job with its slide open, model loaded, grid laid out and patches ordered.

    Made by :func:`prepare`; :func:`inference.engine.runner.run_prepared` runs it.  Close it
    (or use ``with``) to release a slide the engine opened.
    """

    job: InferenceJob
    source: SlideSource
    model: ModelLike
    device: str
    grid: PatchGrid
    reader: PatchReader
    order: np.ndarray
    background_p_ij: np.ndarray
    tissue: TissueMask | None
    num_readers: int
    overlap: float
    mpp: float
    seg_tile_px: int | None
    owns_source: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    _forward: Forward | None = field(default=None, repr=False)
    _tap: EmbeddingTap | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        return "segmentation" if self.seg_tile_px is not None else "classification"

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model.card.class_names)

    @property
    def l0_per_px(self) -> float | None:
        """Level-0 pixels per pixel of segmentation tiles (``None`` for classification)."""
        return None if self.seg_tile_px is None else self.grid.l0_patch / self.seg_tile_px

    @property
    def forward(self) -> Forward:
        if self._forward is None:
            tap = None
            if self.job.embeddings:
                from inference.engine.embedding import attach_tap

                if self.seg_tile_px is not None:
                    raise InferenceError("patch embeddings are made for classification models only")
                if self._tap is None:
                    layer = self.job.embedding_layer or getattr(
                        self.model.card, "embedding_layer", None
                    )
                    self._tap = attach_tap(self.model.module, layer)
                tap = self._tap
            self._forward = Forward(self.model, self.device, self.seg_tile_px, tap)
        return self._forward

    @property
    def lanes(self) -> int:
        """Batches computed at once: 1 on CUDA, else ``job.cpu_lanes`` or one per core."""
        if self.device.startswith("cuda"):
            return 1
        return max(1, self.job.cpu_lanes or default_cpu_lanes())

    @property
    def cpu_threads(self) -> int | None:
        """torch threads of each lane (``None`` on CUDA: left as they are)."""
        if self.device.startswith("cuda"):
            return None
        return self.job.torch_threads or default_cpu_threads(self.lanes)

    def empty_probs(self) -> np.ndarray:
        """Probabilities of no patch: ``(0, C)``, or ``(0, C, t, t)`` for segmentation."""
        c = len(self.class_names)
        t = self.seg_tile_px
        return np.zeros((0, c) if t is None else (0, c, t, t), np.float32)

    def empty_embeddings(self) -> np.ndarray | None:
        """Embeddings of no patch (``(0, 0)``), or ``None`` when the job asked for none."""
        return np.zeros((0, 0), np.float32) if self.job.embeddings else None

    def read_and_forward(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A lane's work on one batch of read patches: host batch, forward step,
        probabilities (and embeddings when the job asked for them)."""
        return self.forward.run(self.make_input(rgb))

    def make_input(self, rgb: np.ndarray) -> torch.Tensor:
        """A reader's part of a batch: the read patches as a ``(N, H, W, 3)`` uint8 CPU
        tensor, pinned for CUDA so that :class:`Forward` copies it without blocking.

        Host work only, safe on any thread: no device operation runs here.  Uploading,
        converting, resizing and normalising are the forward step's, on the thread that
        runs the model.
        """
        return host_batch(rgb, pin=is_cuda(self.device))

    def params(self) -> dict[str, Any]:
        """What the results depend on besides slide and model (the cache key's parameters)."""
        card = self.model.card
        return {
            "task": self.task,
            "grid": self.grid.to_dict(),
            "overlap": self.overlap,
            "mpp": self.mpp,
            "patch_size_pixels": int(card.patch_size_pixels),
            "spacing_um_px": float(card.spacing_um_px),
            "read_level_downsample": self.reader.lv_downsample,
            "tissue_threshold": self.job.tissue_threshold,
            "tissue_l0_per_px": None if self.tissue is None else self.tissue.l0_per_px,
            "seg_tile_px": self.seg_tile_px,
            "only_region": self.job.only_region,
            "precision": self.forward.precision,
            # only when asked for: results without embeddings keep their cache keys
            **({"embeddings": self.forward.tap.layer} if self.forward.tap is not None else {}),
        }

    def limited(self, max_patches: int) -> PreparedJob:
        """The same job restricted to its first ``max_patches`` patches (for benchmarks)."""
        return replace(
            self, order=self.order[:max_patches], owns_source=False, _forward=None, _tap=None
        )

    def close(self) -> None:
        if self._tap is not None:
            self._tap.close()
            self._tap = None
            self._forward = None
        if self.owns_source:
            self.source.close()
            self.owns_source = False

    def __enter__(self) -> PreparedJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seg_tile_px(job: InferenceJob, grid: PatchGrid) -> int:
    extent = grid.l0_extent
    fit = math.floor(grid.l0_patch * MAX_SEG_MAP_SIDE / max(extent.w, extent.h))
    return max(1, min(job.seg_tile_px, grid.l0_patch, fit))


def prepare(job: InferenceJob) -> PreparedJob:
    """Open the slide, load the model, lay out the grid, filter background, order patches."""
    if job.batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {job.batch_size}")
    t0 = time.perf_counter()
    device = resolve_device(job.device)
    source, owns = _open_source(job.slide)
    try:
        model = _load_model(job.model, device, job.trust, job.backend)
        card = model.card
        segmentation = card.task == "segmentation"
        overlap = (
            job.overlap
            if job.overlap is not None
            else (DEFAULT_SEG_OVERLAP if segmentation else 0.0)
        )
        grid = make_patch_grid(
            source.info,
            card,
            mpp_override=job.mpp_override,
            overlap=overlap,
            region=job.region if job.only_region else None,
        )
        mpp = slide_mpp(source.info, job.mpp_override)
        candidates = grid.all_p_ij()
        tissue = job.tissue
        t1 = time.perf_counter()
        background = np.zeros((0, 2), np.int32)
        if job.tissue_threshold > 0:
            if tissue is None:
                tissue = tissue_mask(source)
            fractions = tissue.fractions_in(grid.l0_rects(candidates))
            keep = fractions >= job.tissue_threshold
            background = candidates[~keep]
            candidates = candidates[keep]
        t2 = time.perf_counter()
        num_readers = job.num_readers or default_num_readers(device)
        prepared = PreparedJob(
            job=job,
            source=source,
            model=model,
            device=device,
            grid=grid,
            reader=make_patch_reader(source, grid, int(card.patch_size_pixels)),
            order=order_patches(grid, candidates, job.region),
            background_p_ij=background,
            tissue=tissue,
            num_readers=max(1, num_readers),
            overlap=overlap,
            mpp=mpp,
            seg_tile_px=_seg_tile_px(job, grid) if segmentation else None,
            owns_source=owns,
            timings={"prepare_s": t1 - t0, "tissue_s": t2 - t1},
        )
    except BaseException:
        if owns:
            source.close()
        raise
    return prepared
