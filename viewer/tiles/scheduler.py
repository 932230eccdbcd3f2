"""Reads missing tiles on a small pool of reader threads, most urgent first.  Qt-free.

Each call to :meth:`TileScheduler.request` starts a new view generation and replaces
the whole pending list, so tiles of a view the user has already left are never read.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from viewer.runtime import lower_this_thread_priority
from viewer.tiles.cache import TileCache
from viewer.tiles.keys import TileKey

log = logging.getLogger(__name__)

#: Reads one tile: returns the payload to cache and its size in bytes.
LoadFn = Callable[[TileKey], tuple[object, int]]
LoadedFn = Callable[[TileKey], None]
FailedFn = Callable[[TileKey, Exception], None]


@dataclass(slots=True)
class SchedulerStats:
    """Counters of a :class:`TileScheduler` since it was made.

    ``loaded``: tiles read and put in the cache.  ``failed``: reads that raised.
    ``dropped_stale``: queued keys dropped by a newer :meth:`~TileScheduler.request`
    before they were read.  ``cancelled``: queued keys dropped by
    :meth:`~TileScheduler.cancel_source` or :meth:`~TileScheduler.shutdown`.
    ``skipped_cached`` / ``skipped_in_flight`` / ``skipped_failed``: requested keys
    that were not queued because they were cached, being read, or known to fail
    (``skipped_cached`` also counts queued keys found cached when a reader took them).
    """

    loaded: int = 0
    failed: int = 0
    dropped_stale: int = 0
    cancelled: int = 0
    skipped_cached: int = 0
    skipped_in_flight: int = 0
    skipped_failed: int = 0


class TileScheduler:
    """Reads missing tiles on a pool of reader threads, most urgent first, dropping stale requests.

    ``load(key)`` runs on a reader thread, outside any lock, and returns
    ``(payload, nbytes)``; the payload goes into ``cache`` and then ``on_loaded(key)``
    is called on that reader thread.  When ``load`` raises, the key is remembered as
    failed (never retried until :meth:`forget_failed`) and ``on_failed(key, exc)`` is
    called.  Exceptions from the callbacks are logged; readers never die of them.

    No key is ever read by two readers at once.  A read that is in flight when a newer
    view generation arrives still completes: its tile is valid, so it is cached and
    announced.  Callbacks may call any method of the scheduler except
    :meth:`wait_idle` and :meth:`shutdown` with ``wait=True`` (which would wait for
    the calling reader itself).
    """

    def __init__(
        self,
        cache: TileCache,
        load: LoadFn,
        *,
        n_readers: int = 2,
        on_loaded: LoadedFn | None = None,
        on_failed: FailedFn | None = None,
        reader_niceness: int = 0,
    ) -> None:
        if n_readers < 1:
            raise ValueError(f"n_readers must be >= 1, got {n_readers}")
        self._cache = cache
        self._load = load
        self._reader_niceness = reader_niceness
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._cond = threading.Condition(threading.Lock())
        # Everything below is guarded by self._cond.
        self._queue: deque[TileKey] = deque()  # current generation, most urgent first
        self._in_flight: set[TileKey] = set()  # being loaded right now
        self._failed: set[TileKey] = set()
        self._busy = 0  # readers between taking a key and returning from its callback
        self._watchers = 0  # threads in cancel_source / wait_idle; readers notify only then
        self._generation = 0
        self._closed = False
        self._stats = SchedulerStats()
        self._threads = [
            threading.Thread(target=self._run, name=f"slidelens-tile-reader-{i}", daemon=True)
            for i in range(n_readers)
        ]
        for thread in self._threads:
            thread.start()

    # -- state --------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The number of the latest view generation (0 before the first request)."""
        return self._generation

    @property
    def stats(self) -> SchedulerStats:
        """A snapshot of the counters."""
        with self._cond:
            return replace(self._stats)

    def is_failed(self, key: TileKey) -> bool:
        """Whether ``load`` raised for ``key`` (it is not retried until :meth:`forget_failed`)."""
        with self._cond:
            return key in self._failed

    # -- requests -----------------------------------------------------------------------
    def request(self, keys: Sequence[TileKey]) -> int:
        """Start a new view generation that wants ``keys``, most urgent first; return its number.

        Keys already cached, in flight or known failed are skipped, as are repeats.
        Every key still queued from an older generation is dropped unread.  Cheap
        enough for the GUI thread to call on every view change.

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        # The cache is asked before taking our lock, to keep its hold time short.  A tile
        # cached between there and here is caught by the reader's own check.
        wanted = dict.fromkeys(keys)  # drops repeats, keeps order
        missing = self._cache.missing(wanted)
        with self._cond:
            if self._closed:
                raise RuntimeError("request() on a TileScheduler that was shut down")
            stats = self._stats
            stats.skipped_cached += len(wanted) - len(missing)
            in_flight, failed = self._in_flight, self._failed
            if in_flight:
                n_missing = len(missing)
                missing = [key for key in missing if key not in in_flight]
                stats.skipped_in_flight += n_missing - len(missing)
            if failed:
                n_missing = len(missing)
                missing = [key for key in missing if key not in failed]
                stats.skipped_failed += n_missing - len(missing)
            stale = self._queue
            self._queue = deque(missing)
            self._generation += 1
            generation = self._generation
            if missing:
                self._cond.notify(len(missing))
        if stale:
            # Counted after releasing the lock; keys asked for again are not stale.
            n_stale = sum(1 for key in stale if key not in wanted)
            with self._cond:
                self._stats.dropped_stale += n_stale
        return generation

    def cancel_source(self, source_id: str, wait: bool = True) -> None:
        """Drop the queued keys of one slide; with ``wait``, also wait for its reads in flight.

        After ``cancel_source(sid, wait=True)`` returns, no reader is inside ``load``
        for a key of ``sid``, so the slide's handle may be closed, provided nobody
        requests keys of ``sid`` again.
        """
        with self._cond:
            queue = self._queue
            if any(key.source_id == source_id for key in queue):
                kept = deque(key for key in queue if key.source_id != source_id)
                self._stats.cancelled += len(queue) - len(kept)
                self._queue = kept
            if not wait:
                return
            self._watchers += 1
            try:
                self._cond.wait_for(
                    lambda: not any(key.source_id == source_id for key in self._in_flight)
                )
            finally:
                self._watchers -= 1

    def forget_failed(self, source_id: str | None = None) -> None:
        """Let failed keys be requested again: all of them, or those of one slide."""
        with self._cond:
            if source_id is None:
                self._failed.clear()
            else:
                self._failed = {key for key in self._failed if key.source_id != source_id}

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or being read (callbacks included).

        Returns False if ``timeout`` seconds passed first.  Meant for tests and
        benchmarks; never call it on the GUI thread or from a callback.
        """
        with self._cond:
            self._watchers += 1
            try:
                return self._cond.wait_for(
                    lambda: not self._queue and self._busy == 0, timeout=timeout
                )
            finally:
                self._watchers -= 1

    def shutdown(self, wait: bool = True) -> None:
        """Stop the readers, dropping queued keys; with ``wait``, join them.

        Reads in flight finish first (and are cached and announced).  Idempotent.
        After it, :meth:`request` raises RuntimeError.
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                self._stats.cancelled += len(self._queue)
                self._queue = deque()
                self._cond.notify_all()
        if wait:
            current = threading.current_thread()
            for thread in self._threads:
                if thread is not current:
                    thread.join()

    # -- reader threads -----------------------------------------------------------------
    def _run(self) -> None:
        if self._reader_niceness:
            lower_this_thread_priority(self._reader_niceness)
        cond = self._cond
        cache = self._cache
        stats = self._stats
        finished = False  # whether this reader has a key to sign off (saves a lock round)
        while True:
            with cond:
                if finished:
                    self._busy -= 1
                    if self._watchers:
                        cond.notify_all()
                while not self._queue and not self._closed:
                    cond.wait()
                if self._closed:
                    return
                key = self._queue.popleft()
                self._in_flight.add(key)
                self._busy += 1
            finished = True

            error: Exception | None = None
            outcome = "aborted"  # stays so only if a BaseException escapes
            try:
                if key in cache:
                    outcome = "cached"
                else:
                    payload, nbytes = self._load(key)
                    cache.put(key, payload, nbytes)
                    outcome = "loaded"
            except Exception as exc:
                error = exc
                outcome = "failed"
            finally:
                with cond:
                    self._in_flight.discard(key)
                    if outcome == "loaded":
                        stats.loaded += 1
                    elif outcome == "failed":
                        self._failed.add(key)
                        stats.failed += 1
                    elif outcome == "cached":
                        stats.skipped_cached += 1
                    if self._watchers:
                        cond.notify_all()

            # Called after the key left the in-flight set, so a callback may call
            # cancel_source(wait=True) for its own slide without deadlocking.
            if error is not None:
                if self._on_failed is not None:
                    self._call(self._on_failed, key, error)
                else:
                    log.warning("reading tile %s failed: %s", key, error)
            elif outcome == "loaded" and self._on_loaded is not None:
                self._call(self._on_loaded, key)

    @staticmethod
    def _call(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("tile callback %r failed for %s", callback, args[0])
