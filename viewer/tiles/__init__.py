"""Qt-free tile machinery: tile keys, a byte-bounded LRU cache and a reader scheduler.

The planner (which tiles a view needs) and the viewport model live in
:mod:`viewer.tiles.planner` and :mod:`viewer.tiles.viewport`.
"""

from viewer.tiles.cache import CacheStats, TileCache
from viewer.tiles.keys import TileKey
from viewer.tiles.scheduler import SchedulerStats, TileScheduler

__all__ = ["CacheStats", "SchedulerStats", "TileCache", "TileKey", "TileScheduler"]
