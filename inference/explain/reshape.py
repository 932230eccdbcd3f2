"""Layer outputs as channel maps: what pytorch-grad-cam's ``reshape_transform`` is given.

A CAM weighs the channels of ``(N, C, h, w)`` maps.  A Vision Transformer's layer gives a
token sequence ``(N, T, C)`` instead (class and register tokens first, then the patch
tokens row by row), and timm's Swin gives channels-last maps ``(N, h, w, C)``.
:func:`reshape_for` returns the transform for a model's layer, or ``None`` for a layer
whose maps are already ``(N, C, h, w)``:

- ``nhwc`` (the card's ``cam_layer_layout``, or a module on the way to the layer that
  declares ``output_fmt == "NHWC"``, as timm's Swin does): channels moved first;
- ``tokens`` (the card's layout, or a model with a ``patch_embed``: a ViT, also as an
  unflattened ``.pt2`` program): the prefix tokens dropped and the patch tokens laid
  out on their square grid.  The prefix count is the model's ``num_prefix_tokens`` when
  it states it, else what a square grid leaves over.

The transform reaches pytorch-grad-cam's CAM constructor (``reshape_transform=``), which
applies it to activations and gradients alike.  torch is imported inside functions only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from inference.explain.methods import ExplainError
from inference.models.layer_paths import declared_layout, find_layer

if TYPE_CHECKING:
    import torch
    from torch import nn

Reshape = Callable[["torch.Tensor"], "torch.Tensor"]


def nhwc_to_maps(tensor: torch.Tensor) -> torch.Tensor:
    """``(N, h, w, C)`` to ``(N, C, h, w)``."""
    if tensor.ndim != 4:
        raise ExplainError(f"expected channels-last maps (N, h, w, C), got {tuple(tensor.shape)}")
    return tensor.permute(0, 3, 1, 2)


def tokens_to_maps(tensor: torch.Tensor, prefix: int | None = None) -> torch.Tensor:
    """``(N, T, C)`` tokens to ``(N, C, s, s)`` maps of the patch tokens (maps pass as
    they are).  ``prefix``: the class and register tokens in front (``None``: what is
    left over above the largest square grid)."""
    if tensor.ndim == 4:
        return tensor
    if tensor.ndim != 3:
        raise ExplainError(f"expected tokens (N, T, C), got {tuple(tensor.shape)}")
    count = int(tensor.shape[1])
    side = math.isqrt(count - (prefix or 0))
    skip = count - side * side if prefix is None else prefix
    if side < 1 or skip + side * side != count:
        raise ExplainError(
            f"cannot lay {count} tokens out on a square grid after {skip} prefix tokens; "
            "set slidelens.cam_layer_layout, or choose another layer"
        )
    maps = tensor[:, skip:].reshape(tensor.shape[0], side, side, tensor.shape[2])
    return maps.permute(0, 3, 1, 2)


def _token_owner(module: nn.Module, layer: str) -> nn.Module | None:
    """The module on the way to ``layer`` that embeds patches (a ViT), if any."""
    current = module
    found: nn.Module | None = module if hasattr(module, "patch_embed") else None
    for part in layer.split("."):
        step = find_layer(current, part)
        if step is None:
            break
        current = step[1]
        if hasattr(current, "patch_embed"):
            found = current
    return found


def layer_layout(module: nn.Module, layer: str, declared: str | None = None) -> str:
    """``nchw``, ``nhwc`` or ``tokens``: the card's word, else found from the model."""
    layout = declared or declared_layout(module, layer)
    if layout:
        return layout
    return "tokens" if _token_owner(module, layer) is not None else "nchw"


def reshape_for(module: nn.Module, layer: str, declared: str | None = None) -> Reshape | None:
    """The transform for ``layer``'s output, or ``None`` when it is ``(N, C, h, w)``."""
    layout = layer_layout(module, layer, declared)
    if layout == "nhwc":
        return nhwc_to_maps
    if layout == "tokens":
        prefix = getattr(_token_owner(module, layer), "num_prefix_tokens", None)
        return functools.partial(tokens_to_maps, prefix=prefix if isinstance(prefix, int) else None)
    return None
