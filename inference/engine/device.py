"""The device rules shared by the engine and the explanations.

Contract:

* :func:`resolve_device`: ``cpu`` or ``cuda[:N]`` from what was asked for (``None`` /
  ``"auto"``: CUDA when torch sees a GPU), or :class:`~inference.engine.job.InferenceError`.
* ONE mixed-precision policy, :func:`amp_dtype`: on CUDA autocast to bf16 where the GPU
  supports it, else fp16; nothing (fp32) elsewhere.  :func:`autocast` is that policy as a
  context manager and :func:`precision_name` its name in results and provenance.  The
  engine's forward passes and the explanations' autocast passes both go through it, so
  a CAM's masked scores are computed in the same precision as the heatmap beneath it.
* ONE out-of-memory halving loop, :func:`run_halving`: run ``fn(start, stop)`` over
  ``range(count)`` in batches; when a batch runs out of memory, halve the batch size
  (at least 1), empty the CUDA cache and retry that batch; when even one item does not
  fit, raise the caller's error.  The caller chooses what counts as out of memory
  (:func:`is_torch_oom` or the wider :func:`is_out_of_memory`) and keeps the reduced
  size for later calls through ``halved``.
* ONE split of a batch's input between host and device, :func:`host_batch`: the host's
  part (uint8 RGB as read, as a CPU tensor, page-locked for CUDA) is made where the
  patches are read; the rest (upload, convert, resize, normalise: the model's
  ``to_model_input``) belongs to the thread that runs the forward passes, inside
  :func:`run_halving` (:class:`~inference.engine.forward.Forward`).

torch is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.engine.job import InferenceError

if TYPE_CHECKING:
    import torch


def resolve_device(requested: str | None) -> str:
    """``cpu`` or ``cuda[:N]``; ``None``/``"auto"`` picks CUDA when torch sees a GPU."""
    import torch

    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    assert requested is not None
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InferenceError(
                f"device {requested!r} was asked for, but torch sees no CUDA GPU "
                f"(torch {torch.__version__}); use --device cpu"
            )
        return requested
    if requested != "cpu":
        raise InferenceError(f"unknown device {requested!r}; use cpu or cuda")
    return requested


# -- host side of a batch ----------------------------------------------------------------------


def host_batch(rgb: np.ndarray, *, pin: bool = False) -> torch.Tensor:
    """``(N, H, W, 3)`` (or one ``(H, W, 3)``) uint8 RGB as a ``(N, H, W, 3)`` uint8 CPU tensor.

    Host work only, no device operation: what the engine's reader threads make of the
    patches they read, and what a model's ``to_model_input`` takes once it is on the
    device.  uint8 is a quarter of float32's bytes to upload.  ``pin``: copied into
    page-locked memory, which a CUDA copy with ``non_blocking=True`` reads without
    blocking the host (pass it for a CUDA device only: pinning needs a GPU).  Without
    ``pin`` the tensor shares the array's memory when the array is contiguous.  Raises
    ``ValueError`` for anything but uint8 RGB.
    """
    import torch

    arr = np.asarray(rgb)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB; got {arr.shape} {arr.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(arr))
    return x.pin_memory() if pin else x


# -- mixed precision --------------------------------------------------------------------------


def is_cuda(device: str | torch.device) -> bool:
    """Whether a device (``"cuda:1"`` or a ``torch.device``) is a CUDA GPU."""
    return str(device).startswith("cuda")


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for a device: bf16 where supported, else fp16; none on the CPU."""
    import torch

    if not is_cuda(device):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_to(
    device: str | torch.device, dtype: torch.dtype | None
) -> AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``'s kind of device; nothing when ``dtype`` is None."""
    import torch

    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def autocast(device: str | torch.device) -> AbstractContextManager[Any]:
    """The policy of :func:`amp_dtype` as a context manager for forward passes on ``device``."""
    return autocast_to(device, amp_dtype(device))


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32`` (no autocast), ``bf16`` or ``fp16``: how results record the precision."""
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


# -- out of memory --------------------------------------------------------------------------


def is_torch_oom(exc: BaseException) -> bool:
    """Whether an exception is torch's own out-of-memory error (``torch.OutOfMemoryError``)."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is torch running out of (GPU or CPU) memory: its own error,
    or a ``RuntimeError`` whose message says so."""
    if is_torch_oom(exc):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def run_halving(
    count: int,
    fn: Callable[[int, int], np.ndarray],
    batch_size: int,
    *,
    cuda: bool,
    too_big: Callable[[BaseException], BaseException],
    is_oom: Callable[[BaseException], bool] = is_torch_oom,
    before: Callable[[], None] | None = None,
    after: Callable[[int], None] | None = None,
    halved: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``fn(start, stop)`` over ``range(count)`` in batches of at most ``batch_size``,
    halving the batch whenever one runs out of memory; results concatenated on axis 0.

    A batch of ``size`` items that raises an error ``is_oom`` accepts is retried with
    ``max(1, size // 2)`` items from the same start, after ``torch.cuda.empty_cache()``
    when ``cuda``, and every later batch is at most that big; then ``halved(size,
    new_size)`` is told (to remember the size for later calls, or to log).  When a batch
    of one item runs out of memory, ``too_big(exc)`` is raised from it.  Other errors
    propagate.  ``before()`` runs before every try (e.g. to check for cancel),
    ``after(size)`` after every batch that succeeded.  ``count`` must be positive.
    """
    parts: list[np.ndarray] = []
    size_limit = max(1, int(batch_size))
    start = 0
    while start < count:
        if before is not None:
            before()
        size = min(size_limit, count - start)
        try:
            parts.append(fn(start, start + size))
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not is_oom(exc):
                raise
            if size <= 1:
                raise too_big(exc) from exc
            size_limit = max(1, size // 2)
            if cuda:
                import torch

                torch.cuda.empty_cache()
            if halved is not None:
                halved(size, size_limit)
            continue
        start += size
        if after is not None:
            after(size)
    return np.concatenate(parts) if len(parts) != 1 else parts[0]
