"""How many threads the engine uses: cores, readers, CPU lanes, torch threads per lane.

Contract: pure sizing rules from the cores this process may use
(:func:`available_cores`), plus :func:`torch_threads`, a block with torch's intra-op
thread count set and then restored.  Why lanes, and how many: see
:mod:`inference.engine.lanes`.  torch is imported inside the functions only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_num_readers(device: str) -> int:
    """Reader threads ahead of a one-batch-at-a-time model: more on CUDA, few on the CPU."""
    cores = available_cores()
    if device.startswith("cuda"):
        return min(8, max(2, cores // 2))
    return max(1, min(4, cores // 4))


def default_cpu_lanes() -> int:
    """Batches computed at once on the CPU: one per core (see :mod:`inference.engine.lanes`)."""
    return available_cores()


def default_cpu_threads(lanes: int = 1) -> int:
    """torch threads of each of ``lanes`` lanes on the CPU: the cores shared out.

    The model is the slow stage on a CPU: reading keeps up with it using a fraction of
    a core (measured: the demo classifier's reader ceiling is about 3x its model
    ceiling), so no core is kept for reading alone.
    """
    return max(1, available_cores() // max(1, lanes))


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
