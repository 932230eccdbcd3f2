"""TileCache: byte bound, LRU order, replacement, shrinking, per-slide drop, thread safety."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict

import pytest

from viewer.tiles import TileCache, TileKey


def key(t_col: int, t_row: int = 0, level: int = 0, source: str = "s") -> TileKey:
    return TileKey(source, level, t_col, t_row)


def test_put_get_and_membership() -> None:
    cache = TileCache(1000)
    cache.put(key(0), "a", 100)
    assert key(0) in cache
    assert key(1) not in cache
    assert len(cache) == 1
    assert cache.nbytes == 100
    assert cache.get(key(0)) == "a"
    assert cache.get(key(1)) is None
    assert cache.peek(key(1)) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.evictions) == (1, 1, 0)


def test_bound_is_never_exceeded_under_random_puts() -> None:
    """A reference LRU model agrees with the cache after every operation."""
    rng = random.Random(1234)
    capacity = 10_000
    cache = TileCache(capacity)
    model: OrderedDict[TileKey, int] = OrderedDict()
    for step in range(3000):
        k = key(rng.randrange(40), level=rng.randrange(3))
        if rng.random() < 0.7:
            size = rng.choice([0, 1, 100, 999, 2500, capacity, capacity + 1])
            cache.put(k, step, size)
            model.pop(k, None)
            if size <= capacity:
                while sum(model.values()) + size > capacity:
                    model.popitem(last=False)
                model[k] = size
        else:
            got = cache.get(k)
            assert (got is not None) == (k in model)
            if k in model:
                model.move_to_end(k)
        assert cache.nbytes <= capacity
        assert cache.nbytes == sum(model.values())
        assert len(cache) == len(model)
    assert all(k in cache for k in model)


def test_least_recently_used_is_evicted_and_get_refreshes_recency() -> None:
    cache = TileCache(300)
    for col in range(3):
        cache.put(key(col), col, 100)
    assert cache.get(key(0)) == 0  # now key(1) is the least recently used
    cache.put(key(3), 3, 100)
    assert key(1) not in cache
    assert all(key(col) in cache for col in (0, 2, 3))
    assert cache.stats.evictions == 1


def test_peek_does_not_refresh_recency() -> None:
    cache = TileCache(300)
    for col in range(3):
        cache.put(key(col), col, 100)
    assert cache.peek(key(0)) == 0
    assert key(0) in cache  # `in` does not refresh either
    cache.put(key(3), 3, 100)
    assert key(0) not in cache
    assert all(key(col) in cache for col in (1, 2, 3))
    stats = cache.stats
    assert (stats.hits, stats.misses) == (0, 0)


def test_evicts_as_many_as_needed_for_a_big_item() -> None:
    cache = TileCache(300)
    for col in range(3):
        cache.put(key(col), col, 100)
    cache.put(key(9), 9, 250)
    assert list(k for k in map(key, range(10)) if k in cache) == [key(9)]
    assert cache.nbytes == 250


def test_item_larger_than_capacity_is_not_stored() -> None:
    cache = TileCache(300)
    cache.put(key(0), 0, 100)
    cache.put(key(1), 1, 301)
    assert key(1) not in cache
    assert key(0) in cache  # nothing was evicted for it
    assert cache.nbytes == 100


def test_oversize_replacement_removes_the_old_entry() -> None:
    cache = TileCache(300)
    cache.put(key(0), "old", 100)
    cache.put(key(0), "new", 301)
    assert key(0) not in cache
    assert cache.nbytes == 0


def test_replacing_a_key_updates_nbytes_and_payload() -> None:
    cache = TileCache(300)
    cache.put(key(0), "old", 100)
    cache.put(key(1), "other", 100)
    cache.put(key(0), "new", 50)
    assert cache.nbytes == 150
    assert len(cache) == 2
    assert cache.peek(key(0)) == "new"
    cache.put(key(0), "bigger", 200)
    assert cache.nbytes == 300
    assert cache.stats.evictions == 0


def test_replacing_makes_the_key_most_recently_used() -> None:
    cache = TileCache(200)
    cache.put(key(0), 0, 100)
    cache.put(key(1), 1, 100)
    cache.put(key(0), "again", 100)
    cache.put(key(2), 2, 100)
    assert key(1) not in cache
    assert key(0) in cache


def test_shrinking_capacity_evicts_at_once() -> None:
    cache = TileCache(300)
    for col in range(3):
        cache.put(key(col), col, 100)
    cache.capacity_bytes = 150
    assert cache.capacity_bytes == 150
    assert cache.nbytes == 100
    assert key(2) in cache
    assert cache.stats.evictions == 2
    cache.capacity_bytes = 1000  # growing evicts nothing
    assert cache.nbytes == 100


def test_drop_source_forgets_only_that_slide() -> None:
    cache = TileCache(10_000)
    for col in range(4):
        cache.put(key(col, source="a"), col, 100)
        cache.put(key(col, source="b"), col, 10)
    cache.drop_source("a")
    assert len(cache) == 4
    assert cache.nbytes == 40
    assert all(key(col, source="b") in cache for col in range(4))
    assert not any(key(col, source="a") in cache for col in range(4))
    cache.drop_source("unknown")
    assert len(cache) == 4


def test_clear() -> None:
    cache = TileCache(1000)
    cache.put(key(0), 0, 100)
    cache.clear()
    assert len(cache) == 0
    assert cache.nbytes == 0
    assert key(0) not in cache


def test_missing_keeps_order() -> None:
    cache = TileCache(1000)
    cache.put(key(1), 1, 10)
    assert cache.missing([key(3), key(1), key(0)]) == [key(3), key(0)]


def test_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError):
        TileCache(-1)
    cache = TileCache(100)
    with pytest.raises(ValueError):
        cache.put(key(0), 0, -1)
    with pytest.raises(ValueError):
        cache.capacity_bytes = -1


def test_concurrent_use_keeps_invariants() -> None:
    capacity = 5000
    cache = TileCache(capacity)
    all_keys = [key(col, row, source=src) for col in range(10) for row in range(5) for src in "ab"]
    errors: list[str] = []
    start = threading.Barrier(4)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(timeout=5)
        for _ in range(3000):
            k = rng.choice(all_keys)
            op = rng.random()
            if op < 0.5:
                size = rng.randrange(0, 800)
                cache.put(k, (k, size), size)  # the payload records its own size
            elif op < 0.8:
                got = cache.get(k)
                if got is not None and (not isinstance(got, tuple) or got[0] != k):
                    errors.append(f"{k} returned {got}")
            elif op < 0.95:
                cache.peek(k)
            elif op < 0.99:
                cache.capacity_bytes = rng.choice([capacity // 2, capacity])
            else:
                cache.drop_source(k.source_id)
            if cache.nbytes > capacity:
                errors.append(f"nbytes {cache.nbytes} over {capacity}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    sizes = []
    for k in all_keys:
        payload = cache.peek(k)
        if payload is not None:
            assert isinstance(payload, tuple)
            assert payload[0] == k
            sizes.append(payload[1])
    assert len(sizes) == len(cache)
    assert sum(sizes) == cache.nbytes
    assert cache.nbytes <= cache.capacity_bytes
