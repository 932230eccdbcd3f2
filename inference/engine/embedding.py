"""Patch embeddings from the forward pass that makes the probabilities: a hook on one layer.

Contract: :func:`attach_tap` hooks one layer of a classification model's module and
returns an :class:`EmbeddingTap`; while a thread runs a forward pass inside
:meth:`EmbeddingTap.capturing`, the hook keeps that layer's output for that thread only
(CPU lanes run the same module side by side), pooled to ``(N, D)`` float32:

* the default layer is the model's *penultimate* one: the input of the module's last
  ``torch.nn.Linear`` (a forward pre-hook on it), the features its classifier reads;
* ``layer`` (the card's ``slidelens.embedding_layer``, a dotted module name, ``-1``
  counting from the end) hooks that layer's output: maps ``(N, C, h, w)`` are averaged
  over space, tokens ``(N, T, D)`` over the tokens, ``(N, D)`` kept as they are.

A module whose ``forward`` returns ``(logits, embeddings)`` needs no hook (see
:mod:`inference.engine.forward`).  Nothing is computed twice: the hook reads what the
forward pass makes anyway.  The hook is registered once per job and removed by
:meth:`EmbeddingTap.close`; passes outside :meth:`~EmbeddingTap.capturing` (an
explanation's) are ignored.  Raises :class:`~inference.engine.job.InferenceError` when
the layer does not exist or the model's form takes no hooks (TorchScript, ONNX).
torch is imported inside functions only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from inference.engine.job import InferenceError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: What :attr:`EmbeddingTap.layer` says for the default layer.
PENULTIMATE = "penultimate"


class EmbeddingTap:
    """A hook on one layer that keeps its pooled output per thread (see the module)."""

    def __init__(self, layer: str, handle: Any) -> None:
        #: The hooked layer's dotted name, ``penultimate:<name>`` for the default.
        self.layer = layer
        self._handle = handle
        self._local = threading.local()

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Keep what the hook sees on this thread while the block runs."""
        self._local.armed = True
        self._local.value = None
        try:
            yield
        finally:
            self._local.armed = False

    def take(self) -> torch.Tensor | None:
        """The embeddings of this thread's last pass inside :meth:`capturing` (once)."""
        value: torch.Tensor | None = getattr(self._local, "value", None)
        self._local.value = None
        return value

    def keep(self, tensor: torch.Tensor) -> None:
        """Called by the hook: pool and keep ``tensor`` when this thread is capturing."""
        if getattr(self._local, "armed", False):
            self._local.value = pool_embedding(tensor)

    def close(self) -> None:
        """Remove the hook (the module is as it was before :func:`attach_tap`)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def pool_embedding(tensor: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` float32 from a layer's output: spatial maps and tokens averaged."""
    out = tensor.detach()
    if out.ndim == 4:
        out = out.float().mean(dim=(2, 3))
    elif out.ndim == 3:
        out = out.float().mean(dim=1)
    elif out.ndim != 2:
        out = out.reshape(out.shape[0], -1)
    return out.float()


def last_linear(module: nn.Module) -> tuple[str, nn.Module] | None:
    """The last ``torch.nn.Linear`` of ``module`` in registration order, with its name."""
    from torch import nn

    found = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Linear):
            found = (name, child)
    return found


def attach_tap(module: Any, layer: str | None) -> EmbeddingTap:
    """Hook ``layer`` of ``module`` (``None``: its penultimate layer); see the module."""
    from inference.models.layer_paths import find_layer

    if layer:
        found = find_layer(module, layer)
        if found is None:
            raise InferenceError(
                f"the model has no layer {layer!r} to take embeddings from; name a dotted "
                "module in slidelens.embedding_layer (e.g. 'pool' or 'classifier.2')"
            )
        name, target = found
        tap = EmbeddingTap(name, None)

        def after(_module: Any, _inputs: Any, output: Any) -> None:
            tap.keep(output[0] if isinstance(output, tuple | list) else output)

        tap._handle = _register(target, "forward", after)
        return tap
    found = last_linear(module) if hasattr(module, "named_modules") else None
    if found is None:
        raise InferenceError(
            "the model has no Linear classifier layer whose input would be its embedding "
            "(or takes no hooks: TorchScript, ONNX); name a layer in "
            "slidelens.embedding_layer, or use the model's eager weights"
        )
    name, target = found
    tap = EmbeddingTap(f"{PENULTIMATE}:{name}", None)

    def before(_module: Any, inputs: Any) -> None:
        tap.keep(inputs[0])

    tap._handle = _register(target, "pre", before)
    return tap


def _register(target: Any, kind: str, hook: Any) -> Any:
    try:
        if kind == "pre":
            return target.register_forward_pre_hook(hook)
        return target.register_forward_hook(hook)
    except (RuntimeError, AttributeError) as exc:  # a scripted module takes no hooks
        raise InferenceError(
            f"this form of the model takes no hooks ({type(exc).__name__}), so it gives no "
            "embeddings; use the model's eager weights (model.safetensors)"
        ) from exc
