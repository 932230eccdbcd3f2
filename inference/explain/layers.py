"""The layer a CAM is taken from: finding it by name, and its output without a full pass.

Contract: :func:`resolve_layer` finds a submodule by dotted path (a number may count
from the end: ``blocks.-1.norm1``; :func:`resolve_layer_named` also gives its canonical
name) or raises :class:`~inference.explain.methods.LayerNotFoundError` listing nearby
valid names;
:func:`guess_channels` reads a layer's likely output channels off its modules without
running anything; :func:`layer_output_shape` runs the model only up to the layer (a
temporary hook stops the pass there and is always removed; ``reshape`` turns it into
the maps a CAM sees).  torch is imported inside functions only.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inference.explain.methods import ExplainError, LayerNotFoundError
from inference.models.layer_paths import find_layer

if TYPE_CHECKING:
    import torch
    from torch import nn


def resolve_layer(module: nn.Module, name: str, model_name: str = "model") -> nn.Module:
    """The submodule at a dotted path such as ``layer4``, ``features.2`` or
    ``blocks.-1.norm1``.

    Raises :class:`LayerNotFoundError` naming the model and listing nearby valid names.
    """
    return resolve_layer_named(module, name, model_name)[1]


def resolve_layer_named(
    module: nn.Module, name: str, model_name: str = "model"
) -> tuple[str, nn.Module]:
    """``(canonical name, submodule)`` at a dotted path (see :func:`resolve_layer`)."""
    found = find_layer(module, name)
    if found is not None:
        return found
    names = [n for n, _ in module.named_modules() if n]
    near = difflib.get_close_matches(name, names, n=6, cutoff=0.5)
    if not near:
        prefix = name.rsplit(".", 1)[0] if "." in name else ""
        near = [n for n in names if prefix and n.startswith(prefix + ".")][:6]
    if not near:
        near = [n for n in names if "." not in n][:8]
    raise LayerNotFoundError(
        f"{model_name} has no layer {name!r}; nearby valid names: {', '.join(near)} "
        "(a layer is a dotted module path, as in model.named_modules())"
    )


def guess_channels(layer: nn.Module) -> int | None:
    """The channels a layer most likely outputs, read from its last convolution or batch
    norm (``None`` when it has neither), without running anything."""
    from torch import nn

    for sub in reversed(list(layer.modules())):
        if isinstance(sub, nn.Conv2d | nn.ConvTranspose2d):
            return int(sub.out_channels)
        if isinstance(sub, nn.BatchNorm2d):
            return int(sub.num_features)
    return None


class _Probed(Exception):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


def layer_output_shape(
    module: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[int, ...]:
    """The shape of ``layer``'s output for input ``x`` (after ``reshape``, as a CAM sees
    it), stopping the forward pass right there.

    A temporary forward hook raises once it has seen the output, so only the layers up to
    ``layer`` run; the hook is removed before this returns.
    """
    import torch

    def hook(_m: nn.Module, _i: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple | list) else output
        if reshape is not None:
            tensor = reshape(tensor)
        raise _Probed(tuple(tensor.shape))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            module(x)
    except _Probed as probe:
        return probe.shape
    finally:
        handle.remove()
    raise ExplainError("the target layer was not used by the model's forward pass")
