"""Running a prepared job's batches on the CPU in *lanes*.

Contract: :func:`run_lanes` computes the batches of a
:class:`~inference.engine.prepare.PreparedJob` side by side, one lane (thread) per
``prepared.lanes``, each reading its batch and running the model on it with
``prepared.cpu_threads`` torch threads, and yields ``(p_ij, probs, unreadable_p_ij,
embeddings)`` per batch in order.  It stops between batches when ``cancel`` is set; closing the
generator stops and joins the lanes.  The calling thread's torch thread count is left
as it was.

Why lanes: they never wait for each other, whereas one batch spread over every core
waits at each layer for its slowest thread (measured on 2 cores: +22 % for ResNet-18,
+30 % for the U-Net, +30 % or more for the demo CNN, and far better when other work
takes a core now and then, as the viewer's does).  ``job.cpu_lanes=1`` runs one batch
at a time on every core instead (:mod:`inference.engine.runner`), with separate reader
threads.  Each lane sets its own torch thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from inference.engine.read_ahead import ReadAhead

if TYPE_CHECKING:
    from inference.engine.prepare import PreparedJob

#: What a way of running batches yields per batch: p_ij, probs, unreadable p_ij, and
#: the embeddings when the job asked for them (else ``None``).
Computed = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def _set_lane_threads(count: int) -> None:
    """A lane's own torch thread count (per thread under OpenMP: other threads keep theirs)."""
    import torch

    torch.set_num_threads(count)


def run_lanes(
    prepared: PreparedJob, batches: Sequence[np.ndarray], cancel: threading.Event | None
) -> Generator[Computed, None, None]:
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
                if batch.value is None:
                    probs, embeddings = prepared.empty_probs(), prepared.empty_embeddings()
                else:
                    probs, embeddings = batch.value
                yield batch.p_ij, probs, batch.unreadable_p_ij, embeddings
    finally:
        torch.set_num_threads(previous)
