"""TileScheduler: priority order, de-duplication, staleness, failures, cancel, shutdown.

Every wait is bounded by TIMEOUT, so a bug fails a test instead of hanging it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from viewer.tiles import TileCache, TileKey, TileScheduler

TIMEOUT = 5.0
READER_PREFIX = "slidelens-tile-reader-"


def key(t_col: int, t_row: int = 0, level: int = 0, source: str = "s") -> TileKey:
    return TileKey(source, level, t_col, t_row)


class Loader:
    """A ``load`` function that records its calls, can hold chosen keys and fail others."""

    def __init__(self, block: Iterable[TileKey] = (), fail: Iterable[TileKey] = ()) -> None:
        self.block = set(block)
        self.fail = set(fail)
        self.started = {k: threading.Event() for k in self.block}
        self.release = threading.Event()
        self.calls: list[TileKey] = []
        self.finished: list[TileKey] = []
        self.overlaps: list[TileKey] = []  # keys read by two threads at once
        self._active: set[TileKey] = set()
        self._lock = threading.Lock()

    def __call__(self, k: TileKey) -> tuple[object, int]:
        with self._lock:
            self.calls.append(k)
            if k in self._active:
                self.overlaps.append(k)
            self._active.add(k)
        try:
            if k in self.block:
                self.started[k].set()
                if not self.release.wait(TIMEOUT):
                    raise TimeoutError(f"{k} was never released")
            if k in self.fail:
                raise OSError(f"cannot read {k}")
            return f"pixels of {k}", 100
        finally:
            with self._lock:
                self._active.discard(k)
                self.finished.append(k)

    def wait_started(self, k: TileKey) -> None:
        assert self.started[k].wait(TIMEOUT), f"{k} was never read"


class Events:
    """Collects on_loaded / on_failed calls (from reader threads)."""

    def __init__(self) -> None:
        self.loaded: list[TileKey] = []
        self.failed: list[tuple[TileKey, Exception]] = []
        self.threads: set[str] = set()

    def on_loaded(self, k: TileKey) -> None:
        self.threads.add(threading.current_thread().name)
        self.loaded.append(k)

    def on_failed(self, k: TileKey, exc: Exception) -> None:
        self.failed.append((k, exc))


def _reader_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(READER_PREFIX)}


MakeScheduler = Callable[..., TileScheduler]


@pytest.fixture
def make_scheduler() -> Iterator[MakeScheduler]:
    """Builds schedulers (default: a roomy cache, one reader) and fails on leaked readers."""
    before = _reader_threads()
    made: list[TileScheduler] = []

    def make(load: Callable[[TileKey], tuple[object, int]], **kwargs: Any) -> TileScheduler:
        cache = kwargs.pop("cache", None)
        if cache is None:  # not `or`: an empty cache is falsy (it has a __len__)
            cache = TileCache(10**6)
        kwargs.setdefault("n_readers", 1)
        scheduler = TileScheduler(cache, load, **kwargs)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown(wait=True)  # Loader's bounded waits make this bounded too
    assert _reader_threads() - before == set()


def test_reads_in_priority_order_skipping_repeats_and_cached(
    make_scheduler: MakeScheduler,
) -> None:
    cache = TileCache(10**6)
    cache.put(key(7), "cached", 100)
    loader = Loader()
    scheduler = make_scheduler(loader, cache=cache)
    keys = [key(5, 1, level=2), key(0, 3), key(7), key(2, 2), key(0, 3), key(9, 0, level=1)]
    assert scheduler.request(keys) == 1
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(5, 1, level=2), key(0, 3), key(2, 2), key(9, 0, level=1)]
    assert scheduler.stats.loaded == 4
    assert scheduler.stats.skipped_cached == 1
    assert all(k in cache for k in keys)
    assert cache.peek(key(0, 3)) == f"pixels of {key(0, 3)}"


def test_generation_counts_requests(make_scheduler: MakeScheduler) -> None:
    scheduler = make_scheduler(Loader())
    assert scheduler.generation == 0
    assert scheduler.request([]) == 1
    assert scheduler.request([key(0)]) == 2
    assert scheduler.generation == 2


def test_on_loaded_is_called_from_a_reader_thread(make_scheduler: MakeScheduler) -> None:
    events = Events()
    scheduler = make_scheduler(Loader(), n_readers=2, on_loaded=events.on_loaded)
    scheduler.request([key(0), key(1), key(2)])
    assert scheduler.wait_idle(TIMEOUT)
    assert sorted(events.loaded) == [key(0), key(1), key(2)]
    assert events.threads <= {f"{READER_PREFIX}0", f"{READER_PREFIX}1"}


def test_key_in_flight_is_not_read_twice(make_scheduler: MakeScheduler) -> None:
    loader = Loader(block=[key(0)])
    scheduler = make_scheduler(loader, n_readers=2)
    scheduler.request([key(0)])
    loader.wait_started(key(0))
    scheduler.request([key(0), key(1)])
    assert scheduler.stats.skipped_in_flight == 1
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls.count(key(0)) == 1
    assert loader.calls.count(key(1)) == 1
    assert loader.overlaps == []


def test_newer_request_drops_queued_keys_before_they_are_read(
    make_scheduler: MakeScheduler,
) -> None:
    cache = TileCache(10**6)
    loader = Loader(block=[key(0)])
    events = Events()
    scheduler = make_scheduler(loader, cache=cache, on_loaded=events.on_loaded)
    scheduler.request([key(0), key(1), key(2)])
    loader.wait_started(key(0))
    scheduler.request([key(3)])
    assert scheduler.stats.dropped_stale == 2
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0), key(3)]
    # The read in flight from the older view still counts: its tile is cached and announced.
    assert events.loaded == [key(0), key(3)]
    assert key(0) in cache


def test_keys_asked_for_again_are_not_stale(make_scheduler: MakeScheduler) -> None:
    loader = Loader(block=[key(0)])
    scheduler = make_scheduler(loader)
    scheduler.request([key(0), key(1), key(2)])
    loader.wait_started(key(0))
    scheduler.request([key(2), key(4)])
    assert scheduler.stats.dropped_stale == 1
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0), key(2), key(4)]


def test_key_cached_while_queued_is_not_read(make_scheduler: MakeScheduler) -> None:
    cache = TileCache(10**6)
    loader = Loader(block=[key(0)])
    events = Events()
    scheduler = make_scheduler(loader, cache=cache, on_loaded=events.on_loaded)
    scheduler.request([key(0), key(1)])
    loader.wait_started(key(0))
    cache.put(key(1), "from elsewhere", 10)
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0)]
    assert events.loaded == [key(0)]
    assert cache.peek(key(1)) == "from elsewhere"
    assert scheduler.stats.skipped_cached == 1


def test_failed_keys_are_reported_and_not_retried(make_scheduler: MakeScheduler) -> None:
    bad_a, bad_b = key(0, source="a"), key(0, source="b")
    loader = Loader(fail=[bad_a, bad_b])
    events = Events()
    scheduler = make_scheduler(loader, on_loaded=events.on_loaded, on_failed=events.on_failed)
    scheduler.request([bad_a, key(1, source="a"), bad_b])
    assert scheduler.wait_idle(TIMEOUT)
    assert [k for k, _ in events.failed] == [bad_a, bad_b]
    assert all(isinstance(exc, OSError) for _, exc in events.failed)
    assert events.loaded == [key(1, source="a")]
    assert scheduler.is_failed(bad_a)
    assert not scheduler.is_failed(key(1, source="a"))
    assert scheduler.stats.failed == 2

    scheduler.request([bad_a, bad_b])
    assert scheduler.wait_idle(TIMEOUT)
    assert scheduler.stats.skipped_failed == 2
    assert loader.calls.count(bad_a) == 1

    scheduler.forget_failed("a")
    assert not scheduler.is_failed(bad_a)
    assert scheduler.is_failed(bad_b)
    scheduler.request([bad_a, bad_b])
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls.count(bad_a) == 2
    assert loader.calls.count(bad_b) == 1

    scheduler.forget_failed()
    assert not scheduler.is_failed(bad_a)
    assert not scheduler.is_failed(bad_b)


def test_bad_size_from_load_is_a_failure(make_scheduler: MakeScheduler) -> None:
    events = Events()
    scheduler = make_scheduler(lambda k: ("pixels", -1), on_failed=events.on_failed)
    scheduler.request([key(0)])
    assert scheduler.wait_idle(TIMEOUT)
    assert [(k, type(exc)) for k, exc in events.failed] == [(key(0), ValueError)]


def test_cancel_source_waits_for_its_reads_in_flight(make_scheduler: MakeScheduler) -> None:
    a0, a1, b0 = key(0, source="a"), key(1, source="a"), key(0, source="b")
    loader = Loader(block=[a0])
    scheduler = make_scheduler(loader)
    scheduler.request([a0, a1, b0])
    loader.wait_started(a0)

    finished_when_cancel_returned: list[TileKey] = []

    def cancel() -> None:
        scheduler.cancel_source("a", wait=True)
        finished_when_cancel_returned.extend(loader.finished)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    canceller.join(timeout=0.1)
    assert canceller.is_alive(), "cancel_source returned while a read of its slide ran"
    loader.release.set()
    canceller.join(timeout=TIMEOUT)
    assert not canceller.is_alive()
    assert a0 in finished_when_cancel_returned
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [a0, b0]  # a1 was dropped, b0 kept
    assert scheduler.stats.cancelled == 1


def test_cancel_source_without_wait_returns_at_once(make_scheduler: MakeScheduler) -> None:
    a0, a1 = key(0, source="a"), key(1, source="a")
    loader = Loader(block=[a0])
    scheduler = make_scheduler(loader)
    scheduler.request([a0, a1])
    loader.wait_started(a0)
    scheduler.cancel_source("a", wait=False)
    assert not scheduler.wait_idle(timeout=0.05)  # a0 is still being read
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [a0]


def test_cancel_source_with_nothing_in_flight_returns(make_scheduler: MakeScheduler) -> None:
    """Cancelling a slide with no queued or running reads returns at once, cancels
    nothing, and leaves the other slides' reads alone."""
    loader = Loader()
    scheduler = make_scheduler(loader)
    canceller = threading.Thread(target=scheduler.cancel_source, args=("nothing",), daemon=True)
    canceller.start()
    canceller.join(TIMEOUT)
    assert not canceller.is_alive(), "cancel_source waited for reads that do not exist"
    assert scheduler.stats.cancelled == 0
    assert scheduler.request([key(0), key(1)]) == 1
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0), key(1)]


def test_shutdown_joins_readers_and_is_idempotent(make_scheduler: MakeScheduler) -> None:
    before = _reader_threads()
    scheduler = make_scheduler(Loader(), n_readers=3)
    ours = _reader_threads() - before
    assert sorted(t.name for t in ours) == [f"{READER_PREFIX}{i}" for i in range(3)]
    assert all(t.daemon for t in ours)
    scheduler.shutdown()
    assert not any(t.is_alive() for t in ours)
    scheduler.shutdown()
    scheduler.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        scheduler.request([key(0)])


def test_shutdown_lets_the_read_in_flight_finish(make_scheduler: MakeScheduler) -> None:
    cache = TileCache(10**6)
    loader = Loader(block=[key(0)])
    scheduler = make_scheduler(loader, cache=cache)
    scheduler.request([key(0), key(1)])
    loader.wait_started(key(0))
    scheduler.shutdown(wait=False)
    loader.release.set()
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0)]
    assert key(0) in cache
    assert scheduler.stats.cancelled == 1


def test_exceptions_in_callbacks_do_not_kill_readers(
    make_scheduler: MakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("callback bug")

    cache = TileCache(10**6)
    loader = Loader(fail=[key(1)])
    scheduler = make_scheduler(loader, cache=cache, on_loaded=boom, on_failed=boom)
    with caplog.at_level(logging.ERROR, logger="viewer.tiles.scheduler"):
        scheduler.request([key(0), key(1)])
        assert scheduler.wait_idle(TIMEOUT)
        scheduler.request([key(2)])  # the single reader is still alive
        assert scheduler.wait_idle(TIMEOUT)
    assert loader.calls == [key(0), key(1), key(2)]
    assert key(2) in cache
    assert len([r for r in caplog.records if "callback bug" in str(r.exc_info)]) == 3


def test_no_key_is_ever_read_twice_under_churn(make_scheduler: MakeScheduler) -> None:
    """Many overlapping views on 4 readers: with a roomy cache every tile is read once."""
    loader = Loader()
    scheduler = make_scheduler(loader, n_readers=4)
    rng = random.Random(7)
    universe = [key(col, row, level) for col in range(12) for row in range(12) for level in (0, 1)]
    for _ in range(300):
        scheduler.request(rng.sample(universe, 40))
    scheduler.request(universe)
    assert scheduler.wait_idle(TIMEOUT)
    assert loader.overlaps == []
    assert sorted(loader.calls) == sorted(set(loader.calls)) == sorted(universe)
    assert scheduler.stats.loaded == len(universe)


def test_rejects_no_readers() -> None:
    with pytest.raises(ValueError):
        TileScheduler(TileCache(), Loader(), n_readers=0)
