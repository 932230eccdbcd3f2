"""What every method runner keeps to and shares: settings, work units, the runner contract.

Contract: a :class:`MethodRunner` turns ``(n, 3, S, S)`` model inputs and ``n`` targets
into ``(n, h, w)`` float32 non-negative raw maps (never min-max scaled) and releases
what it holds (hooks) on ``close``; hooks and frozen parameters are always restored
before a runner returns, so no state is left on the (shared) model.
:class:`RunSettings` are the knobs shared by the methods, :func:`work_units` a method's
progress units, :func:`occlusion_windows` the occlusion method's windows,
:func:`frozen_parameters` and :func:`score_batch` the helpers the runners share.  torch
is imported inside functions only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from inference.explain.methods import MethodSpec
from inference.explain.targets import Target

if TYPE_CHECKING:
    import torch
    from torch import nn


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients for a block (then are restored).

    Gradients then flow to the input only, and nothing accumulates in the shared model's
    ``.grad`` fields.
    """
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def score_batch(module: Any, inputs: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
    """``targets[i](module(inputs)[i])`` as float32, without gradients."""
    import torch

    outputs = module(inputs)
    values = torch.stack([t(o).float() for t, o in zip(targets, outputs, strict=True)])
    return values.detach().cpu().numpy().astype(np.float32)


@dataclass
class RunSettings:
    """Knobs shared by the methods.

    ``patch_batch``: inputs per gradient pass; ``masked_batch``: masked inputs per forward
    pass (Score-CAM, occlusion, integrated-gradient steps).  ``baseline``: the input that
    means "blank glass" ``(1, 3, S, S)`` (integrated gradients, occlusion).
    """

    patch_batch: int
    masked_batch: int
    ig_steps: int = 32
    occlusion_grid: int = 7
    baseline: torch.Tensor | None = None


def work_units(spec: MethodSpec, patches: int, channels: int, settings: RunSettings) -> int:
    """Progress units of a method over ``patches`` patches (``channels``: Score-CAM's)."""
    if spec.name == "scorecam":
        return patches * max(1, channels)
    if spec.name == "integrated-gradients":
        return patches * settings.ig_steps
    if spec.name == "occlusion":
        return patches * occlusion_windows(1, settings.occlusion_grid)[1]
    return patches


def occlusion_windows(size: int, grid: int) -> tuple[list[tuple[int, int]], int]:
    """Top-left corners of the occlusion windows on a ``size`` square and their count.

    Windows are ``ceil(size / grid)`` wide at half that stride; the last row and column
    reach the edge.  (With ``size == 1`` only the count, ``(2 * grid - 1) ** 2``, is exact.)
    """
    if size <= 1:
        return [], (2 * grid - 1) ** 2
    win = max(1, math.ceil(size / grid))
    stride = max(1, win // 2)
    starts = list(range(0, size - win + 1, stride))
    if starts[-1] != size - win:
        starts.append(size - win)
    corners = [(y, x) for y in starts for x in starts]
    return corners, len(corners)


class MethodRunner(Protocol):
    """Raw maps for a batch: ``(n, 3, S, S)`` inputs and ``n`` targets to ``(n, h, w)``
    float32 non-negative maps.  ``close`` releases whatever the runner holds (hooks)."""

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray: ...

    def close(self) -> None: ...
