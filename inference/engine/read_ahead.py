"""Reading patches ahead of the model on a small thread pool, in order, cancellable.

Contract: :class:`ReadAhead` reads the given batches of patch indices with a
:class:`~inference.engine.patches.PatchReader`, at most ``depth`` batches ahead, runs a
``prepare`` function on each batch on the reader thread, and yields a :class:`ReadBatch`
per batch in submission order.  A damaged tile makes its patch *unreadable* (reported,
not raised); a closed slide ends the run.  The cancel event is looked at between patches
and while waiting; :meth:`ReadAhead.close` (also on leaving a ``with`` block) stops and
joins every thread.  No torch here: what ``prepare`` does is the caller's.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from inference.core.threads import lower_this_thread_priority
from inference.engine.patches import PatchReader

log = logging.getLogger(__name__)

#: How often (seconds) a wait for a batch being read looks at the cancel event.
_CANCEL_POLL_S = 0.05

T = TypeVar("T")


class _Stopped(Exception):
    """A reader saw the stop or cancel event."""


@dataclass
class ReadBatch(Generic[T]):
    """One batch as the readers deliver it: the patches read, their input, the failures."""

    p_ij: np.ndarray
    value: T | None
    unreadable_p_ij: np.ndarray


def _start_thread(niceness: int, setup: Callable[[], object] | None) -> None:
    """A reader thread's first act: lower its priority, then run ``setup`` (if any)."""
    if niceness:
        lower_this_thread_priority(niceness)
    if setup is not None:
        setup()


class ReadAhead(Generic[T]):
    """Reads batches of patches on a small thread pool, ``depth`` batches ahead, in order.

    ``prepare`` runs on the reader thread too (e.g. making the uint8 host batch and
    pinning it, or, in the CPU's lanes, the whole forward step).  The bounded window of
    submitted batches is the queue ahead of the model.  Each thread (named
    ``thread_name`` and a number) starts by lowering its priority by ``niceness`` and
    calling ``setup`` (if given).  Iterating yields :class:`ReadBatch` in submission
    order and ends early when ``cancel`` is set; :meth:`close` (also on leaving a
    ``with`` block) stops the readers and joins them.
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
