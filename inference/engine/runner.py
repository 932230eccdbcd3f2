"""Batched patch inference: yields results batch by batch, cancellable, device and AMP aware.

``run(job)`` builds the patch grid at the model's spacing, drops background patches
with the tissue mask, reads patches on a few reader threads into a bounded queue ahead
of the model, runs batched forward passes and yields one
:class:`~inference.engine.job.BatchResult` per batch (with the patches' embeddings
when ``job.embeddings``, from the same forward passes).  It never prints: progress is the
stream of batches (``done`` / ``total``), and the caller draws a bar or folds each batch
into a heatmap as it arrives.

Order: patches overlapping ``job.region`` first (nearest its centre first), then the
rest.  Cancel: set the ``cancel`` event; it is checked between batches and by the
readers between patches.  Closing the generator (or leaving a ``for`` loop early)
stops and joins the reader threads.

Devices: the readers make each batch a uint8 CPU tensor (pinned on CUDA) and nothing
more; the thread running the model does every device operation (on CUDA: the copy
without blocking, the model's conversion, resize and normalisation on the GPU, the
forward pass).  Inputs and weights are channels-last; on CUDA the forward pass runs
under autocast (bf16 where supported, else fp16: :mod:`inference.engine.device`); when
the GPU runs out of memory anywhere in that step the batch is halved and the run goes on
(:mod:`inference.engine.forward`).

On the CPU batches run in *lanes* (:mod:`inference.engine.lanes`): one thread per core,
each reading its batch and running the model on it with one torch thread.
``job.cpu_lanes=1`` runs one batch at a time on every core, with separate reader threads
(here, as on CUDA).  Preparing a job (slide, model, grid, order) is
:mod:`inference.engine.prepare`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing

import numpy as np

from inference.engine.cores import torch_threads
from inference.engine.job import BatchResult, InferenceJob
from inference.engine.lanes import Computed, run_lanes
from inference.engine.prepare import PreparedJob, prepare
from inference.engine.read_ahead import ReadAhead

#: How much nicer than the model's thread the patch readers run.
READER_NICENESS = 5


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
    tap = prepared.forward.tap if job.embeddings else None
    layer = tap.layer if tap is not None else ""

    def result(
        p_ij: np.ndarray,
        probs: np.ndarray,
        unreadable: np.ndarray,
        embeddings: np.ndarray | None = None,
    ) -> BatchResult:
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
            embeddings=None if embeddings is None else embeddings.astype(np.float16),
            embedding_layer=layer,
        )
        background = none
        return batch

    if total == 0:
        yield result(none, prepared.empty_probs(), none, prepared.empty_embeddings())
        return
    batches = [order[i : i + job.batch_size] for i in range(0, total, job.batch_size)]
    run_batches = run_lanes if prepared.lanes > 1 else _run_one_at_a_time
    # closing: leaving this generator early stops the threads at once, not when collected
    with closing(run_batches(prepared, batches, cancel)) as computed:
        for p_ij, probs, unreadable, embeddings in computed:
            done += len(p_ij)
            yield result(p_ij, probs, unreadable, embeddings)


def _run_one_at_a_time(
    prepared: PreparedJob, batches: Sequence[np.ndarray], cancel: threading.Event | None
) -> Generator[Computed, None, None]:
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
            if batch.value is None:
                probs, embeddings = prepared.empty_probs(), prepared.empty_embeddings()
            else:
                probs, embeddings = forward.run(batch.value)
            yield batch.p_ij, probs, batch.unreadable_p_ij, embeddings


def run(job: InferenceJob, *, cancel: threading.Event | None = None) -> Iterator[BatchResult]:
    """Run a job, yielding one :class:`BatchResult` per batch.

    Raises :class:`~inference.engine.patches.MissingMppError` when the slide has no mpp and the
    job gives none, :class:`~inference.engine.job.InferenceError` when the device cannot go
    on, and the slide and model errors of ``open_slide`` / ``load_model``.  A job with
    nothing to compute (all background) yields one empty batch that reports the background.
    """
    with prepare(job) as prepared:
        yield from run_prepared(prepared, cancel=cancel)
