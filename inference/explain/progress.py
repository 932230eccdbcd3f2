"""Progress, cancel and batching of an explanation's work.

Contract: a :class:`ProgressTracker` counts work units and reports ``(done, total)`` on
the calling thread.  A unit is one pass of the model over one patch, or over one masked
or interpolated copy of it (Score-CAM's channels, integrated gradients' steps,
occlusion's windows); a callback that also has a ``planned(patches)`` method
(:class:`PlanListener`) is told, before the first report, how many patches the passes
are for.  Its :meth:`~ProgressTracker.check` raises
:class:`~inference.explain.methods.ExplainCancelled` once the cancel event is set.  A
:class:`BatchLoop` runs a function over a range in batches through the engine's
out-of-memory halving loop (:func:`inference.engine.device.run_halving`): it checks for
cancel before every batch, advances the tracker after each (when it ``counts``), halves
its batch on out-of-memory (torch's error, or a ``RuntimeError`` that says so), keeps
the halved size for later calls, and raises
:class:`~inference.explain.methods.ExplainError` when even a batch of one does not fit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from inference.engine.device import is_cuda, is_out_of_memory, run_halving
from inference.explain.methods import ExplainCancelled, ExplainError

if TYPE_CHECKING:
    import torch

#: ``progress(done, total)``: work units done so far of ``total`` (see :class:`ProgressTracker`).
ProgressCallback = Callable[[int, int], None]


def patch_count(patches: int) -> str:
    """``"1 patch"``, ``"12 patches"``: how progress and results name the patches."""
    return f"{patches:,} patch" if patches == 1 else f"{patches:,} patches"


@runtime_checkable
class PlanListener(Protocol):
    """A progress callback that also wants to know how many patches are explained
    (what ``slidelens explain`` reports at the end, and its progress bar says)."""

    def planned(self, patches: int) -> None: ...


class ProgressTracker:
    """Counts work units and reports them; raises :class:`ExplainCancelled` on request.

    ``callback(done, total)`` runs on the calling thread: first when :meth:`start` gives
    the total, then after every batch, and ``(total, total)`` at :meth:`finish`.
    """

    def __init__(
        self, callback: ProgressCallback | None, cancel: threading.Event | None = None
    ) -> None:
        self.callback = callback
        self.cancel = cancel
        self.done = 0
        self.total = 0
        #: The patches the work is for (``None`` until :meth:`start` says).
        self.patches: int | None = None

    def check(self) -> None:
        """Raise :class:`ExplainCancelled` when the cancel event is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise ExplainCancelled("explanation cancelled")

    def start(self, total: int, *, patches: int | None = None) -> None:
        """``total`` units of work, for ``patches`` patches (told to a
        :class:`PlanListener` callback first)."""
        self.total = max(0, int(total))
        self.done = 0
        if patches is not None:
            self.patches = int(patches)
            if isinstance(self.callback, PlanListener):
                self.callback.planned(self.patches)
        self._report()

    def advance(self, units: int) -> None:
        self.done = min(self.total, self.done + int(units))
        self._report()

    def finish(self) -> None:
        self.done = self.total
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)


class BatchLoop:
    """Runs ``fn(start, stop)`` over ``range(count)`` in batches, halving on out-of-memory.

    Before each batch it checks for cancel; after each batch it advances ``tracker`` by the
    batch's size (when ``counts``).  ``batch_size`` keeps the halved size for later calls.
    """

    def __init__(
        self, tracker: ProgressTracker, batch_size: int, device: torch.device, *, counts: bool
    ) -> None:
        self.tracker = tracker
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.counts = counts
        self.halvings = 0

    def run(self, count: int, fn: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Results of every batch concatenated along axis 0."""
        return run_halving(
            count,
            fn,
            self.batch_size,
            cuda=is_cuda(self.device),
            is_oom=is_out_of_memory,
            too_big=self._too_big,
            before=self.tracker.check,
            after=self.tracker.advance if self.counts else None,
            halved=self._halved,
        )

    def _too_big(self, exc: BaseException) -> ExplainError:
        return ExplainError(
            f"out of memory on {self.device} even with a batch of one; close other "
            "programs using it, explain a smaller region, or use the CPU"
        )

    def _halved(self, size: int, batch_size: int) -> None:
        self.batch_size = batch_size
        self.halvings += 1
