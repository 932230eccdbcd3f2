"""The engine's forward step: a host batch to float32 NumPy probabilities, in device-sized chunks.

Contract: a :class:`Forward` is called with a ``(N, H, W, 3)`` uint8 CPU tensor as
:func:`~inference.engine.device.host_batch` makes it on a reader thread (pinned on
CUDA) and returns float32 probabilities ``(N, C)``, or ``(N, C, t, t)`` tiles for
segmentation.  It owns every device operation of the step, on the calling thread (the
worker): upload, the model's ``to_model_input`` (convert, resize, normalise), forward
pass, postprocessing.  It puts the model in channels-last memory format once, runs
under the shared mixed-precision policy (:func:`~inference.engine.device.amp_dtype`:
bf16 or fp16 autocast on CUDA, fp32 on the CPU) and takes a shared hold of the model's
use gate around each call (an explanation holding it exclusively waits for, and stops,
these passes).  On CUDA a batch is computed whole, each chunk copied without blocking,
converted and run inside :func:`~inference.engine.device.run_halving`: when the GPU runs
out of memory anywhere in that step the chunk is halved for good; a single patch that
does not fit raises :class:`~inference.engine.job.InferenceError`.  On the CPU the batch
is converted whole, then computed :func:`cpu_chunk_patches` patches at a time.

With an :class:`~inference.engine.embedding.EmbeddingTap`, :meth:`Forward.run` also
returns each patch's embedding ``(N, D)`` float32 from the same pass (the tap's hook
reads the layer's output; a module whose ``forward`` returns ``(logits, embeddings)``
gives them itself): one forward pass per patch whether or not embeddings are asked for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from inference.core.threads import use_gate
from inference.engine.device import (
    amp_dtype,
    autocast_to,
    is_cuda,
    is_torch_oom,
    precision_name,
    run_halving,
)
from inference.engine.job import InferenceError, ModelLike

if TYPE_CHECKING:
    import torch

    from inference.engine.embedding import EmbeddingTap

log = logging.getLogger(__name__)

#: On the CPU a forward pass takes at most this many input pixels (at least one patch).
#: Large batches do not pay on a CPU: there is no launch overhead to share out, and
#: their activations spill out of the caches.  Measured here, one thread, patches/s at
#: batch 32 against this rule's batch: U-Net 256 px 13.5 vs 30.6 (batch 2), ResNet-18
#: 224 px 44 vs 48, EfficientNet-B0 42 vs 66, small CNN 128 px 170 vs 312 (batch 8).
CPU_CHUNK_PIXELS = 1 << 17


def cpu_chunk_patches(p_height: int, p_width: int) -> int:
    """Patches per forward pass on the CPU for patches of this size (see above)."""
    return max(1, CPU_CHUNK_PIXELS // max(1, p_height * p_width))


class Forward:
    """Upload, input conversion, forward pass and postprocessing, in chunks that suit the device.

    Called with a ``(N, H, W, 3)`` uint8 CPU tensor (pinned on CUDA) on the thread that
    runs the model; returns float32 NumPy probabilities ``(N, C)``, or ``(N, C, t, t)``
    tiles for segmentation.  On CUDA each chunk is copied to the GPU
    (``non_blocking=True``), converted by the model's ``to_model_input`` and run, and a
    chunk that runs out of memory in any of these is halved for good.  On the CPU the
    batch is converted whole (the model's own arithmetic, nothing else) and computed
    :func:`cpu_chunk_patches` patches at a time.
    """

    def __init__(
        self,
        model: ModelLike,
        device: str,
        seg_tile_px: int | None,
        tap: EmbeddingTap | None = None,
    ) -> None:
        import torch

        self.model = model
        self.device = device
        self.cuda = is_cuda(device)
        self.dtype = amp_dtype(device)
        self.seg_tile_px = seg_tile_px
        self.max_chunk: int | None = None
        #: Where embeddings come from (``None``: probabilities only).
        self.tap = tap
        if tap is not None and seg_tile_px is not None:
            raise InferenceError("patch embeddings are made for classification models only")
        # channels-last suits convolutions on the CPU as on the GPU (about 2x for the
        # demo CNN at batch 32 on this machine's CPU); other layers are unaffected
        try:
            model.module.to(memory_format=torch.channels_last)
        except (RuntimeError, TypeError, AttributeError):  # a program that cannot move
            log.debug("model stays in contiguous memory format")

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def _to_model_input(self, batch: torch.Tensor) -> torch.Tensor:
        """A host batch (or chunk of one) as the module's input on the device: uploaded
        without blocking on CUDA (from pinned memory), then the model's conversion,
        resize and normalisation there."""
        import torch

        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True) if self.cuda else batch
            return self.model.to_model_input(x)

    def _once(self, x: torch.Tensor) -> np.ndarray:
        """Forward pass and postprocessing of model inputs already on the device; with a
        tap, the embeddings follow the probabilities as extra columns ``(n, C + D)``."""
        import torch

        with torch.inference_mode():
            if x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            embedding = None
            with autocast_to(self.device, self.dtype):
                if self.tap is None:
                    out = self.model.module(x)
                else:
                    with self.tap.capturing():
                        out = self.model.module(x)
                        embedding = self.tap.take()
            if isinstance(out, tuple | list):  # a module that returns (logits, embeddings)
                logits = out[0]
                embedding = out[1] if len(out) > 1 and self.tap is not None else embedding
            else:
                logits = out
            probs = self.model.postprocess(logits.float()).float()
            probs = probs.reshape(len(x), -1) if self.seg_tile_px is None else self._tiles(probs)
            if self.tap is not None:
                if embedding is None:
                    raise InferenceError(
                        f"the embedding layer {self.tap.layer!r} was not reached by the "
                        "forward pass; name another in slidelens.embedding_layer"
                    )
                flat = embedding.float().reshape(len(x), -1)
                probs = torch.cat([probs, flat.to(probs.device)], dim=1)
            return probs.cpu().numpy().astype(np.float32, copy=False)

    def _tiles(self, probs: torch.Tensor) -> torch.Tensor:
        """Segmentation probabilities ``(n, C, t, t)``: area-shrunk or bilinear-grown."""
        import torch.nn.functional as F

        t = self.seg_tile_px
        assert t is not None
        if probs.ndim == 3:
            probs = probs.unsqueeze(1)
        if probs.shape[-2:] != (t, t):
            shrink = probs.shape[-1] > t
            probs = F.interpolate(
                probs,
                size=(t, t),
                mode="area" if shrink else "bilinear",
                **({} if shrink else {"align_corners": False}),
            )
        return probs

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Probabilities of a host batch ``(N, H, W, 3)`` uint8 (see the class)."""
        return self.run(batch)[0]

    def run(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities of a host batch and, with a tap, its embeddings ``(N, D)``
        float32 from the same pass (``None`` without)."""
        # shared: lanes run side by side, but not while an explanation has hooks on
        # the module (they would catch these passes too)
        with use_gate(self.model.module).shared():
            out = self._chunked(batch)
        if self.tap is None:
            return out, None
        classes = len(self.model.card.class_names)
        return np.ascontiguousarray(out[:, :classes]), np.ascontiguousarray(out[:, classes:])

    def _chunked(self, batch: torch.Tensor) -> np.ndarray:
        n = int(batch.shape[0])
        chunk = min(n, self.max_chunk or n)
        if self.cuda:
            # the whole step per chunk, so running out of memory in the upload or the
            # conversion halves the chunk like running out of it in the forward pass
            def step(start: int, stop: int) -> np.ndarray:
                return self._once(self._to_model_input(batch[start:stop]))

        else:
            # converted whole, then chunked by the input's size: the CPU's arithmetic
            # and chunks are those of a batch preprocessed in one go
            x = self._to_model_input(batch)
            if x.ndim == 4:
                chunk = min(chunk, cpu_chunk_patches(int(x.shape[2]), int(x.shape[3])))

            def step(start: int, stop: int) -> np.ndarray:
                return self._once(x[start:stop])

        return run_halving(
            n,
            step,
            chunk,
            cuda=self.cuda,
            is_oom=is_torch_oom,
            too_big=self._too_big,
            halved=self._halved,
        )

    def _too_big(self, exc: BaseException) -> InferenceError:
        return InferenceError(
            f"out of GPU memory on {self.device} even with a batch of one patch; "
            "close other programs using the GPU or run with --device cpu"
        )

    def _halved(self, size: int, chunk: int) -> None:
        self.max_chunk = chunk
        log.warning("out of GPU memory with a batch of %d; going on with %d", size, chunk)
