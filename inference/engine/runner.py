"""Batched patch inference: yields results batch by batch, cancellable, device and AMP aware.

``run(job)`` builds the patch grid at the model's spacing, drops background patches
with the tissue mask, reads patches on a few reader threads into a bounded queue ahead
of the model, runs batched forward passes and yields one :class:`BatchResult` per
batch.  It never prints: progress is the stream of batches (``done`` / ``total``), and
the caller draws a bar or folds each batch into a heatmap as it arrives.

Order: patches overlapping ``job.region`` first (nearest its centre first), then the
rest.  Cancel: set the ``cancel`` event; it is checked between batches and by the
readers between patches.  Closing the generator (or leaving a ``for`` loop early)
stops and joins the reader threads.

Devices: inputs and weights are channels-last; on CUDA the forward pass runs under
autocast (bf16 where supported, else fp16) with inputs copied from pinned memory
without blocking; when the
GPU runs out of memory the batch is halved and the run goes on.

On the CPU batches run in *lanes*: one thread per core, each reading its batch and
running the model on it with one torch thread.  Lanes never wait for each other,
whereas one batch spread over every core waits at each layer for its slowest thread
(measured on 2 cores: +22 % for ResNet-18, +30 % for the U-Net, +30 % or more for the
demo CNN, and far better when other work takes a core now and then, as the viewer's
does).  ``job.cpu_lanes=1`` runs one batch at a time on every core, with separate
reader threads.  Each lane sets its own torch thread count; the calling thread's is
left as it was.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from inference.core.geometry import Rect
from inference.core.threads import lower_this_thread_priority, use_gate
from inference.engine.patches import (
    PatchGrid,
    PatchReader,
    make_patch_grid,
    make_patch_reader,
    order_patches,
)
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD, TissueMask, tissue_mask

if TYPE_CHECKING:
    import torch

    from inference.slides import SlideSource

log = logging.getLogger(__name__)

#: How much nicer than the model's thread the patch readers run.
READER_NICENESS = 5
#: Longest side (pixels) of a segmentation probability map; tiles shrink to fit.
MAX_SEG_MAP_SIDE = 4096
#: Default overlap of segmentation windows (classification defaults to none).
DEFAULT_SEG_OVERLAP = 0.25
#: How often (seconds) a wait for a batch being read looks at the cancel event.
_CANCEL_POLL_S = 0.05

T = TypeVar("T")


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


class ModelLike(Protocol):
    """A loaded model (``inference.models.LoadedModel`` or a hand-built one in tests).

    ``preprocess`` turns ``(N, H, W, 3)`` uint8 RGB into the module's float input
    ``(N, 3, S, S)`` on the CPU; ``postprocess`` turns logits into probabilities.
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
    :func:`default_cpu_threads`).  ``seg_tile_px``: segmentation tiles are returned at
    most this many pixels square.
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

    @property
    def task(self) -> str:
        return "segmentation" if self.probs.ndim == 4 else "classification"

    def __len__(self) -> int:
        return len(self.p_ij)


# -- threads ------------------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_num_readers(device: str) -> int:
    cores = available_cores()
    if device.startswith("cuda"):
        return min(8, max(2, cores // 2))
    return max(1, min(4, cores // 4))


def default_cpu_lanes() -> int:
    """Batches computed at once on the CPU: one per core (see the module docstring)."""
    return available_cores()


def default_cpu_threads(lanes: int = 1) -> int:
    """torch threads of each of ``lanes`` lanes on the CPU: the cores shared out.

    The model is the slow stage on a CPU: reading keeps up with it using a fraction of
    a core (measured: the demo classifier's reader ceiling is about 3x its model
    ceiling), so no core is kept for reading alone.
    """
    return max(1, available_cores() // max(1, lanes))


def _set_lane_threads(count: int) -> None:
    """A lane's own torch thread count (per thread under OpenMP: other threads keep theirs)."""
    import torch

    torch.set_num_threads(count)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for a block (``None``: leave them), then restore."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Stopped(Exception):
    """A reader saw the stop or cancel event."""


@dataclass
class ReadBatch(Generic[T]):
    """One batch as the readers deliver it: the patches read, their input, the failures."""

    p_ij: np.ndarray
    value: T | None
    unreadable_p_ij: np.ndarray


def _start_thread(niceness: int, setup: Callable[[], object] | None) -> None:
    if niceness:
        lower_this_thread_priority(niceness)
    if setup is not None:
        setup()


class ReadAhead(Generic[T]):
    """Reads batches of patches on a small thread pool, ``depth`` batches ahead, in order.

    ``prepare`` runs on the reader thread too (e.g. preprocessing and pinning memory, or
    on the CPU the whole forward pass).  The bounded window of submitted batches is the
    queue ahead of the model.  Each thread (named ``thread_name`` and a number) starts
    by lowering its priority by ``niceness`` and calling ``setup`` (if given).  Iterating
    yields :class:`ReadBatch` in submission order and ends early when ``cancel`` is set;
    :meth:`close` (also on leaving a ``with`` block) stops the readers and joins them.
    """

    def __init__(
        self,
        reader: PatchReader,
        batches: Sequence[np.ndarray],
        prepare: Callable[[np.ndarray], T],
        *,
        num_threads: int,
        depth: int | None = None,
        cancel: threading.Event | None = None,
        niceness: int = 0,
        setup: Callable[[], object] | None = None,
        thread_name: str = "slidelens-reader",
    ) -> None:
        from inference.slides import SlideClosedError, SlideError

        self._slide_error: type[Exception] = SlideError
        self._closed_error: type[Exception] = SlideClosedError
        self._reader = reader
        self._batches = batches
        self._prepare = prepare
        self._cancel = cancel
        self._stop = threading.Event()
        self._depth = max(1, depth if depth is not None else 2 * num_threads)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, num_threads),
            thread_name_prefix=thread_name,
            initializer=_start_thread,
            initargs=(niceness, setup),
        )
        self._pending: deque[tuple[np.ndarray, Future[ReadBatch[T]]]] = deque()
        self._next = 0
        self._fill()

    def _stopped(self) -> bool:
        return self._stop.is_set() or (self._cancel is not None and self._cancel.is_set())

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next < len(self._batches):
            p_ij = self._batches[self._next]
            self._next += 1
            self._pending.append((p_ij, self._pool.submit(self._read, p_ij)))

    def _read(self, p_ij: np.ndarray) -> ReadBatch[T]:
        reader = self._reader
        xy = reader.grid.l0_xy(p_ij)
        rgb = np.empty((len(p_ij), reader.out_px, reader.out_px, 3), np.uint8)
        ok = np.ones(len(p_ij), bool)
        for i, (l0_x, l0_y) in enumerate(xy):
            if self._stopped():
                raise _Stopped
            try:
                rgb[i] = reader.read_l0(int(l0_x), int(l0_y))
            except self._slide_error as exc:  # one damaged tile must not end the job
                if isinstance(exc, self._closed_error):
                    raise
                log.warning("patch at level-0 (%d, %d) unreadable: %s", l0_x, l0_y, exc)
                ok[i] = False
        if not ok.all():
            rgb = rgb[ok]
        value = self._prepare(rgb) if len(rgb) else None
        return ReadBatch(p_ij=p_ij[ok], value=value, unreadable_p_ij=p_ij[~ok])

    def __iter__(self) -> Iterator[ReadBatch[T]]:
        while self._pending:
            _, future = self._pending.popleft()
            while True:
                if self._cancel is not None and self._cancel.is_set():
                    return
                try:
                    batch = future.result(timeout=_CANCEL_POLL_S)
                    break
                except TimeoutError:
                    continue
                except _Stopped:
                    return
            self._fill()
            yield batch

    def close(self) -> None:
        """Stop the readers and wait for them (each finishes at most one patch)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- device ---------------------------------------------------------------------------------


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


def amp_dtype(device: str) -> torch.dtype | None:
    """The autocast dtype for a device: bf16 where supported, else fp16; none on the CPU."""
    import torch

    if not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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
    """Forward pass plus postprocessing, in chunks that suit the device.

    Called with a ``(N, 3, S, S)`` CPU tensor (pinned on CUDA); returns float32 NumPy
    probabilities ``(N, C)``, or ``(N, C, t, t)`` tiles for segmentation.  On the CPU the
    batch is computed :func:`cpu_chunk_patches` patches at a time; on CUDA whole, and
    halved for good when the GPU runs out of memory.
    """

    def __init__(self, model: ModelLike, device: str, seg_tile_px: int | None) -> None:
        import torch

        self.model = model
        self.device = device
        self.cuda = device.startswith("cuda")
        self.dtype = amp_dtype(device)
        self.seg_tile_px = seg_tile_px
        self.max_chunk: int | None = None
        # channels-last suits convolutions on the CPU as on the GPU (about 2x for the
        # demo CNN at batch 32 on this machine's CPU); other layers are unaffected
        try:
            model.module.to(memory_format=torch.channels_last)
        except (RuntimeError, TypeError, AttributeError):  # a program that cannot move
            log.debug("model stays in contiguous memory format")

    @property
    def precision(self) -> str:
        import torch

        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def _once(self, x: torch.Tensor) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            if self.cuda:
                x = x.to(self.device, non_blocking=True)
            if x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            amp = (
                torch.autocast(device_type="cuda", dtype=self.dtype)
                if self.dtype is not None
                else nullcontext()
            )
            with amp:
                logits = self.model.module(x)
            probs = self.model.postprocess(logits.float()).float()
            if self.seg_tile_px is None:
                probs = probs.reshape(len(x), -1)
            else:
                t = self.seg_tile_px
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
            return probs.cpu().numpy().astype(np.float32, copy=False)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        # shared: lanes run side by side, but not while an explanation has hooks on
        # the module (they would catch these passes too)
        with use_gate(self.model.module).shared():
            return self._chunked(x)

    def _chunked(self, x: torch.Tensor) -> np.ndarray:
        import torch

        n = int(x.shape[0])
        chunk = min(n, self.max_chunk or n)
        if not self.cuda and x.ndim == 4:
            chunk = min(chunk, cpu_chunk_patches(int(x.shape[2]), int(x.shape[3])))
        outputs: list[np.ndarray] = []
        start = 0
        while start < n:
            size = min(chunk, n - start)
            try:
                outputs.append(self._once(x[start : start + size]))
            except torch.OutOfMemoryError as exc:
                if size <= 1:
                    raise InferenceError(
                        f"out of GPU memory on {self.device} even with a batch of one patch; "
                        "close other programs using the GPU or run with --device cpu"
                    ) from exc
                chunk = max(1, size // 2)
                self.max_chunk = chunk
                if self.cuda:
                    torch.cuda.empty_cache()
                log.warning("out of GPU memory with a batch of %d; going on with %d", size, chunk)
                continue
            start += size
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]


# -- preparing a job ------------------------------------------------------------------------


def _open_source(slide: str | Path | SlideSource) -> tuple[SlideSource, bool]:
    if isinstance(slide, str | Path):
        from inference.slides import open_slide

        return open_slide(slide), True
    return slide, False


def _load_model(model: str | Path | ModelLike, device: str, trust: bool) -> ModelLike:
    if isinstance(model, str | Path):
        from inference.models import load_model, resolve_model

        folder = resolve_model(str(model))
        loaded: ModelLike = load_model(folder, trust=trust, device=device)
        return loaded
    if str(model.device) != device and hasattr(model, "to"):
        moved = model.to(device)
        return moved if moved is not None else model
    return model


@dataclass
class PreparedJob:
    """A job with its slide open, model loaded, grid laid out and patches ordered.

    Made by :func:`prepare`; :func:`run_prepared` runs it.  Close it (or use ``with``) to
    release a slide the engine opened.
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
            self._forward = Forward(self.model, self.device, self.seg_tile_px)
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

    def read_and_forward(self, rgb: np.ndarray) -> np.ndarray:
        """A lane's work on one batch of read patches: preprocess, forward, probabilities."""
        return self.forward(self.make_input(rgb))

    def make_input(self, rgb: np.ndarray) -> torch.Tensor:
        """Preprocess read patches on the calling thread (a reader).

        For CUDA a CPU result is pinned, so :class:`Forward` copies it without blocking;
        a model whose ``preprocess`` already put the tensor on the GPU is left as it is.
        """
        x = self.model.preprocess(rgb)
        if self.device.startswith("cuda") and x.device.type == "cpu":
            return x.pin_memory()
        return x

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
        }

    def limited(self, max_patches: int) -> PreparedJob:
        """The same job restricted to its first ``max_patches`` patches (for benchmarks)."""
        return replace(self, order=self.order[:max_patches], owns_source=False, _forward=None)

    def close(self) -> None:
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
        model = _load_model(job.model, device, job.trust)
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
        from inference.engine.patches import slide_mpp

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


# -- running ----------------------------------------------------------------------------------


def _empty_probs(prepared: PreparedJob) -> np.ndarray:
    c = len(prepared.class_names)
    t = prepared.seg_tile_px
    return np.zeros((0, c) if t is None else (0, c, t, t), np.float32)


def run_prepared(
    prepared: PreparedJob, *, cancel: threading.Event | None = None
) -> Iterator[BatchResult]:
    """Run a prepared job, yielding a :class:`BatchResult` per batch (see :func:`run`)."""
    job = prepared.job
    grid = prepared.grid
    order = prepared.order
    total = len(order)
    names = prepared.class_names
    none = np.zeros((0, 2), np.int32)
    background = prepared.background_p_ij
    done = 0

    def result(p_ij: np.ndarray, probs: np.ndarray, unreadable: np.ndarray) -> BatchResult:
        nonlocal background
        batch = BatchResult(
            job_id=job.job_id,
            grid=grid,
            class_names=names,
            p_ij=p_ij.astype(np.int32),
            l0_xy=grid.l0_xy(p_ij),
            probs=probs,
            l0_per_px=prepared.l0_per_px,
            background_p_ij=background,
            unreadable_p_ij=unreadable,
            done=done,
            total=total,
            skipped_background=len(prepared.background_p_ij),
        )
        background = none
        return batch

    if total == 0:
        yield result(none, _empty_probs(prepared), none)
        return
    batches = [order[i : i + job.batch_size] for i in range(0, total, job.batch_size)]
    run_batches = _run_lanes if prepared.lanes > 1 else _run_one_at_a_time
    # closing: leaving this generator early stops the threads at once, not when collected
    with closing(run_batches(prepared, batches, cancel)) as computed:
        for p_ij, probs, unreadable in computed:
            done += len(p_ij)
            yield result(p_ij, probs, unreadable)


_Computed = tuple[np.ndarray, np.ndarray, np.ndarray]  # p_ij, probs, unreadable p_ij


def _run_one_at_a_time(
    prepared: PreparedJob, batches: Sequence[np.ndarray], cancel: threading.Event | None
) -> Generator[_Computed, None, None]:
    """Readers (a little nicer than the model) read ahead; this thread runs the model on
    each batch with ``cpu_threads`` torch threads (CUDA, or one lane on the CPU)."""
    forward = prepared.forward
    with (
        torch_threads(prepared.cpu_threads),
        ReadAhead(
            prepared.reader,
            batches,
            prepared.make_input,
            num_threads=prepared.num_readers,
            cancel=cancel,
            # readers that yield to torch fill the gaps between its parallel sections
            # instead of stalling them (an OpenMP section waits for its slowest thread)
            niceness=READER_NICENESS,
        ) as read_ahead,
    ):
        for batch in read_ahead:
            if cancel is not None and cancel.is_set():
                return
            probs = _empty_probs(prepared) if batch.value is None else forward(batch.value)
            yield batch.p_ij, probs, batch.unreadable_p_ij


def _run_lanes(
    prepared: PreparedJob, batches: Sequence[np.ndarray], cancel: threading.Event | None
) -> Generator[_Computed, None, None]:
    """Lanes read and compute whole batches side by side; results come back in order."""
    import torch

    prepared.forward  # noqa: B018  (made once here, not raced for by the lanes)
    lanes = prepared.lanes
    threads = prepared.cpu_threads or 1
    # a lane's setting is its own, but torch also keeps it for threads started later:
    # put the caller's back afterwards
    previous = torch.get_num_threads()
    try:
        with ReadAhead(
            prepared.reader,
            batches,
            prepared.read_and_forward,
            num_threads=lanes,
            depth=2 * lanes,  # a batch queued per lane: a lane that finishes starts at once
            cancel=cancel,
            setup=partial(_set_lane_threads, threads),
            thread_name="slidelens-lane",
        ) as read_ahead:
            for batch in read_ahead:
                if cancel is not None and cancel.is_set():
                    return
                probs = _empty_probs(prepared) if batch.value is None else batch.value
                yield batch.p_ij, probs, batch.unreadable_p_ij
    finally:
        torch.set_num_threads(previous)


def run(job: InferenceJob, *, cancel: threading.Event | None = None) -> Iterator[BatchResult]:
    """Run a job, yielding one :class:`BatchResult` per batch.

    Raises :class:`~inference.engine.patches.MissingMppError` when the slide has no mpp and the
    job gives none, :class:`InferenceError` when the device cannot go on, and the slide
    and model errors of ``open_slide`` / ``load_model``.  A job with nothing to compute
    (all background) yields one empty batch that reports the background.
    """
    with prepare(job) as prepared:
        yield from run_prepared(prepared, cancel=cancel)
