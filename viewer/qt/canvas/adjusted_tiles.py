"""The tiles on screen under the display adjustment: copies of cached tiles through its
lookup table, made on the GUI thread as tiles are painted and kept in a small
byte-bounded cache of their own.

Why here and not on the tile readers: the tile cache keeps each tile once, as read, so
an adjustment neither halves how many tiles it holds (which would mean reading them
again) nor slows the readers; a change of adjustment re-colours what is painted next,
never reads the slide.  A 256 px tile takes about 0.1 ms through the table, once per
adjustment while it stays here.  Only the GUI thread uses this.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np
from PySide6.QtGui import QImage

from viewer.qt.canvas.tile_bridge import DecodedTile, bgrx_image
from viewer.tiles.adjustment import DisplayAdjustment
from viewer.tiles.keys import TileKey

#: Byte budget of adjusted copies: every tile a 4K screen shows, twice over.
ADJUSTED_BUDGET_BYTES = 96 * 2**20


class AdjustedTiles:
    """Least recently used adjusted copies of tiles, at most :attr:`capacity_bytes`.

    :meth:`image` gives a tile's image under an adjustment: the tile's own for none,
    else a kept copy made for the same tile object and adjustment, else a new one.  A
    new adjustment, or none, forgets every copy (they are of no further use).  Copies
    refer to their tiles weakly: a tile the tile cache evicts is not kept alive here.
    """

    def __init__(self, capacity_bytes: int = ADJUSTED_BUDGET_BYTES) -> None:
        self.capacity_bytes = capacity_bytes
        self._adjustment: DisplayAdjustment | None = None
        # key -> (the tile it was made from, its pixels, the image over them)
        self._copies: OrderedDict[TileKey, tuple[weakref.ref[DecodedTile], np.ndarray, QImage]] = (
            OrderedDict()
        )
        self._nbytes = 0
        #: Copies made since this was created (for tests and benchmarks).
        self.made = 0

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._copies)

    def image(self, key: TileKey, tile: DecodedTile, adjustment: DisplayAdjustment) -> QImage:
        """``tile`` (cached under ``key``) as shown under ``adjustment``."""
        if adjustment.is_identity:
            if self._copies:
                self.clear()
            return tile.image
        if adjustment != self._adjustment:
            self.clear()
            self._adjustment = adjustment
        kept = self._copies.get(key)
        if kept is not None and kept[0]() is tile:  # the same decode of the tile
            self._copies.move_to_end(key)
            return kept[2]
        if kept is not None:
            self._drop(key)
        pixels = adjustment.apply(tile.pixels)
        image = bgrx_image(pixels)
        self._copies[key] = (weakref.ref(tile), pixels, image)
        self._nbytes += int(pixels.nbytes)
        self.made += 1
        while self._nbytes > self.capacity_bytes and len(self._copies) > 1:
            self._drop(next(iter(self._copies)))
        return image

    def clear(self) -> None:
        self._copies.clear()
        self._nbytes = 0

    def _drop(self, key: TileKey) -> None:
        _tile, pixels, _image = self._copies.pop(key)
        self._nbytes -= int(pixels.nbytes)
