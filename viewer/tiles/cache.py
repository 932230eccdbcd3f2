"""A byte-bounded, thread-safe LRU cache of decoded tiles.  Qt-free."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from viewer.tiles.keys import TileKey

#: Default byte budget: 512 MiB of decoded tiles.
DEFAULT_CAPACITY_BYTES = 512 * 2**20


@dataclass(slots=True)
class CacheStats:
    """Counters of a :class:`TileCache` since it was made.

    ``hits`` and ``misses`` count :meth:`TileCache.get` calls only; ``evictions``
    counts entries pushed out to stay within the byte budget (not replacements,
    :meth:`TileCache.drop_source` or :meth:`TileCache.clear`).
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class TileCache:
    """Byte-bounded, thread-safe LRU of decoded tiles (payload is opaque: a QImage, an ndarray...).

    The caller states each payload's size in bytes when it puts it; the sum of the
    stored sizes never exceeds :attr:`capacity_bytes`.  Putting evicts least recently
    used entries until the new one fits; an entry larger than the whole budget is not
    stored.  :meth:`get` and :meth:`put` make an entry the most recently used;
    :meth:`peek`, ``in`` and ``len`` do not touch recency.  Every method may be called
    from any thread; none calls out while holding the lock.
    """

    def __init__(self, capacity_bytes: int = DEFAULT_CAPACITY_BYTES) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self._lock = threading.Lock()
        # Least recently used first; values are (payload, nbytes).
        self._entries: OrderedDict[TileKey, tuple[object, int]] = OrderedDict()
        self._capacity = capacity_bytes
        self._nbytes = 0
        self._stats = CacheStats()

    # -- budget -------------------------------------------------------------------------
    @property
    def capacity_bytes(self) -> int:
        """The byte budget.  Setting a smaller one evicts at once until the cache fits."""
        return self._capacity

    @capacity_bytes.setter
    def capacity_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {value}")
        with self._lock:
            self._capacity = value
            self._evict_to(value)

    @property
    def nbytes(self) -> int:
        """Sum of the sizes of the stored entries; always ``<= capacity_bytes``."""
        return self._nbytes

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return replace(self._stats)

    # -- lookups ------------------------------------------------------------------------
    def get(self, key: TileKey) -> object | None:
        """The payload of ``key``, made most recently used; None when it is not cached."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self._stats.hits += 1
            return entry[0]

    def peek(self, key: TileKey) -> object | None:
        """The payload of ``key`` without touching recency or counters; None when absent."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def missing(self, keys: Iterable[TileKey]) -> list[TileKey]:
        """The keys that are not cached, in the given order (one lock round for all)."""
        with self._lock:
            entries = self._entries
            return [key for key in keys if key not in entries]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # -- updates ------------------------------------------------------------------------
    def put(self, key: TileKey, payload: object, nbytes: int) -> None:
        """Store ``payload`` (of ``nbytes`` bytes) under ``key`` as the most recently used.

        An entry already under ``key`` is replaced.  Least recently used entries are
        evicted until the new one fits.  A payload larger than the whole budget is not
        stored (and any older entry under ``key`` is removed, as it is out of date).
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old[1]
            if nbytes > self._capacity:
                return
            self._evict_to(self._capacity - nbytes)
            self._entries[key] = (payload, nbytes)
            self._nbytes += nbytes

    def drop_source(self, source_id: str) -> None:
        """Forget every tile of one slide."""
        with self._lock:
            doomed = [key for key in self._entries if key.source_id == source_id]
            for key in doomed:
                self._nbytes -= self._entries.pop(key)[1]

    def clear(self) -> None:
        """Forget every tile (the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def _evict_to(self, budget: int) -> None:
        """Evict least recently used entries until at most ``budget`` bytes remain.

        The caller holds the lock.
        """
        entries = self._entries
        while self._nbytes > budget and entries:
            _, (_, size) = entries.popitem(last=False)
            self._nbytes -= size
            self._stats.evictions += 1
