"""What an inference job is and what it yields: the job, its batches, its one error type.

Contract: :class:`InferenceJob` says what to compute (one model on one slide, how);
:class:`BatchResult` is one batch of results as :func:`inference.engine.runner.run`
yields it; :class:`InferenceError` is raised when a job cannot go on (the message says
why and what to do).  :class:`ModelLike` / :class:`CardLike` are the only parts of a
model the engine touches.  Plain data: nothing here reads, loads or computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from inference.core.geometry import Rect
from inference.engine.patches import PatchGrid
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD, TissueMask

if TYPE_CHECKING:
    import torch

    from inference.slides import SlideSource


class InferenceError(RuntimeError):
    """An inference job cannot go on; the message says why and what to do."""


# -- what the engine needs from a model --------------------------------------------------


class CardLike(Protocol):
    """The model-card fields the engine reads."""

    @property
    def name(self) -> str: ...

    @property
    def class_names(self) -> Sequence[str]: ...

    @property
    def patch_size_pixels(self) -> int: ...

    @property
    def spacing_um_px(self) -> float: ...

    @property
    def task(self) -> str: ...

    @property
    def threshold(self) -> float:
        """A one-output model's class applies at or above this probability."""
        ...


class ModelLike(Protocol):
    """A loaded model (``inference.models.LoadedModel`` or a hand-built one in tests).

    ``to_model_input`` is the device half of preprocessing: it turns a ``(N, H, W, 3)``
    uint8 RGB tensor (:func:`~inference.engine.device.host_batch`) into the module's
    float input ``(N, 3, S, S)`` with operations on that tensor's device only (the
    engine calls it on the thread that runs the forward passes, after the upload).
    ``preprocess`` is both halves on the calling thread, ``(N, H, W, 3)`` uint8 RGB in,
    the same input out on :attr:`device` (for explanations, which run on that thread).
    ``postprocess`` turns logits into probabilities.
    """

    @property
    def card(self) -> CardLike: ...

    @property
    def module(self) -> Any: ...

    @property
    def sha256(self) -> str: ...

    @property
    def device(self) -> Any: ...

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor: ...

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor: ...

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor: ...


# -- job and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceJob:
    """One model on one slide.

    ``slide``: a path (opened and closed by the engine) or an open ``SlideSource`` (the
    caller's).  ``model``: a model folder, a registered model name, or a loaded model.
    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` (CUDA when available).
    ``region``: a level-0 rectangle computed first; with ``only_region`` nothing else is.
    ``overlap``: fraction of the patch side (``None``: 0 for classification,
    ``DEFAULT_SEG_OVERLAP`` for segmentation).  ``tissue_threshold``: patches with less
    tissue than this fraction are skipped as background (0 computes every patch);
    ``tissue``: a mask already computed for this slide.  ``cpu_lanes``: on the CPU, how
    many batches are computed at once, each on its own thread that reads its patches
    and runs the model (``None``: one per core; 1: one batch at a time, with
    ``num_readers`` reader threads ahead of it).  ``torch_threads``: intra-op threads of
    each lane (``None``: the cores shared out among the lanes, see
    :func:`~inference.engine.cores.default_cpu_threads`).  ``seg_tile_px``: segmentation
    tiles are returned at most this many pixels square.  ``backend``: which form of a
    model folder runs (``eager``, ``pt2``, ``onnx``, ``torchscript``; ``None``: the
    fastest measured on this machine, see :func:`inference.models.load_model`).
    ``embeddings``: also return each patch's embedding from the same forward pass
    (classification only; :mod:`inference.engine.embedding`): the output of
    ``embedding_layer``, else of the card's ``embedding_layer``, else the model's
    penultimate layer.
    """

    slide: str | Path | SlideSource
    model: str | Path | ModelLike
    device: str | None = None
    batch_size: int = 32
    overlap: float | None = None
    region: Rect | None = None
    only_region: bool = False
    mpp_override: float | None = None
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD
    tissue: TissueMask | None = None
    num_readers: int | None = None
    cpu_lanes: int | None = None
    torch_threads: int | None = None
    seg_tile_px: int = 64
    trust: bool = False
    backend: str | None = None
    embeddings: bool = False
    embedding_layer: str | None = None
    job_id: int = 0


@dataclass(frozen=True, eq=False)
class BatchResult:
    """One batch of results.

    ``p_ij``: ``(n, 2)`` int32 patch indices ``(col, row)`` of ``grid``; ``l0_xy``:
    ``(n, 2)`` int64 level-0 top-left corners.  ``probs``: ``(n, C)`` float32 class
    probabilities, or for segmentation ``(n, C, t, t)`` probability tiles covering each
    patch at ``l0_per_px`` level-0 pixels per tile pixel.  ``background_p_ij``: patches
    skipped as background, all reported with the first batch.  ``unreadable_p_ij``:
    patches whose pixels could not be read (damaged tiles).  ``done`` / ``total``:
    patches computed so far / to compute; ``skipped_background``: background patches.
    ``embeddings``: ``(n, D)`` float16 patch embeddings from the same forward pass, when
    the job asked for them (``None`` otherwise), taken from ``embedding_layer``.
    """

    job_id: int
    grid: PatchGrid
    class_names: tuple[str, ...]
    p_ij: np.ndarray
    l0_xy: np.ndarray
    probs: np.ndarray
    l0_per_px: float | None
    background_p_ij: np.ndarray
    unreadable_p_ij: np.ndarray
    done: int
    total: int
    skipped_background: int
    embeddings: np.ndarray | None = None
    embedding_layer: str = ""

    @property
    def task(self) -> str:
        return "segmentation" if self.probs.ndim == 4 else "classification"

    def __len__(self) -> int:
        return len(self.p_ij)
