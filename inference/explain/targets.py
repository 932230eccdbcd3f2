"""What to explain: a target turns one sample's model output into the scalar to explain.

Contract: a :data:`Target` is a plain callable on one sample's output (logits ``(C,)``
or ``(C, H, W)``) returning a scalar tensor.  :class:`ClassTarget` is one class's logit
of a classifier; :class:`SegmentationTarget` one class's logits summed over a mask of a
segmentation network's output.  A target of the wrong kind for the output raises
:class:`~inference.explain.methods.ExplainError`.  torch is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.explain.methods import ExplainError

if TYPE_CHECKING:
    import torch

#: A target: one sample's model output (logits ``(C,)`` or ``(C, H, W)``) to a scalar tensor.
Target = Callable[["torch.Tensor"], "torch.Tensor"]


class ClassTarget:
    """The logit of one class in a classifier's output for one sample (shape ``(C,)``)."""

    def __init__(self, index: int) -> None:
        self.index = int(index)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim != 1:
            raise ExplainError(
                f"a class target expects one sample's class scores (C,), got {tuple(output.shape)}"
            )
        return output[self.index]

    def __repr__(self) -> str:
        return f"ClassTarget({self.index})"


class SegmentationTarget:
    """The sum of one class's logits over a mask, for one sample's ``(C, H, W)`` output.

    ``mask`` is a boolean ``(h, w)`` array at the network's input resolution (``None``:
    every pixel); it is resized (nearest) when the output has another resolution.
    """

    def __init__(self, index: int, mask: np.ndarray | None = None) -> None:
        self.index = int(index)
        self.mask = None if mask is None else np.asarray(mask, bool)
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def _mask_for(self, like: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        import torch
        import torch.nn.functional as F

        key = (tuple(like.shape), str(like.device), like.dtype)
        if key not in self._cache:
            m = torch.from_numpy(self.mask.astype(np.float32))
            if tuple(m.shape) != tuple(like.shape):
                m = F.interpolate(m[None, None], size=tuple(like.shape), mode="nearest")[0, 0]
            self._cache[key] = m.to(device=like.device, dtype=like.dtype)
        return self._cache[key]

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim != 3:
            raise ExplainError(
                "a segmentation target expects one sample's (C, H, W) output, "
                f"got {tuple(output.shape)}"
            )
        channel = output[self.index]
        mask = self._mask_for(channel)
        return channel.sum() if mask is None else (channel * mask).sum()

    def __repr__(self) -> str:
        covered = "all" if self.mask is None else f"{int(self.mask.sum())}"
        return f"SegmentationTarget({self.index}, pixels={covered})"
