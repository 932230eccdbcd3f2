"""Joins the Qt-free tile scheduler to Qt: tiles decoded to QImage off the GUI thread,
announced to the GUI thread through a queued signal."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from inference.slides import SlideSource
from viewer.tiles.adjustment import DisplayAdjustment
from viewer.tiles.cache import TileCache
from viewer.tiles.keys import TileKey
from viewer.tiles.planner import TileGridSet
from viewer.tiles.scheduler import TileScheduler

log = logging.getLogger(__name__)

#: How much nicer than the GUI thread the tile readers run (the inference worker: 10).
READER_NICENESS = 4
#: Default byte budget of decoded tiles (a setting in the main window).
DEFAULT_CACHE_MB = 512


def bgrx_image(bgrx: np.ndarray) -> QImage:
    """A ``Format_RGB32`` QImage that borrows ``bgrx``'s memory (keep the array alive)."""
    h, w = bgrx.shape[:2]
    return QImage(bgrx.data, w, h, 4 * w, QImage.Format.Format_RGB32)


class DecodedTile:
    """A tile ready to paint: a ``Format_RGB32`` QImage over pixels this object keeps alive.

    The QImage borrows the array's memory (no copy), so the two live and die together.
    The pixels are kept as read: a display adjustment is applied to a copy when the tile
    is painted (see :mod:`viewer.qt.canvas.adjusted_tiles`), never to these.
    """

    __slots__ = ("__weakref__", "_pixels", "image")

    def __init__(self, bgrx: np.ndarray) -> None:
        self._pixels = np.ascontiguousarray(bgrx)
        self.image = bgrx_image(self._pixels)

    @property
    def pixels(self) -> np.ndarray:
        """The decoded ``(h, w, 4)`` BGRX pixels (the QImage's memory: do not write)."""
        return self._pixels

    @property
    def nbytes(self) -> int:
        return int(self._pixels.nbytes)


def adjusted_image(image: QImage, adjustment: DisplayAdjustment) -> QImage:
    """An owning copy of ``image`` under ``adjustment`` (``image`` itself for none);
    for the thumbnail, which stands in for tiles not yet read."""
    if adjustment.is_identity or image.isNull():
        return image
    rgb32 = image.convertToFormat(QImage.Format.Format_RGB32)
    w, h = rgb32.width(), rgb32.height()
    rows = np.frombuffer(rgb32.constBits(), np.uint8, rgb32.sizeInBytes())
    bgrx = rows.reshape(h, rgb32.bytesPerLine())[:, : 4 * w].reshape(h, w, 4)
    return bgrx_image(adjustment.apply(bgrx)).copy()


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An owning ``Format_RGB32`` QImage (the fastest to paint) from an RGB uint8 array."""
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb)
    view = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return view.convertToFormat(QImage.Format.Format_RGB32)


@dataclass(frozen=True)
class _OpenSource:
    source: SlideSource
    grids: TileGridSet


class TileBridge(QObject):
    """Owns the tile cache, the scheduler and its reader threads for every open slide.

    ``tile_loaded`` and ``tile_failed`` are emitted from reader threads and so reach
    slots on the GUI thread as queued calls.  The GUI thread only ever looks tiles up
    in the cache; it never decodes.
    """

    tile_loaded = Signal(object)  # TileKey
    tile_failed = Signal(object, str)  # TileKey, message

    def __init__(
        self, cache_mb: int = DEFAULT_CACHE_MB, n_readers: int = 2, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.cache = TileCache(cache_mb * 2**20)
        self._sources: dict[str, _OpenSource] = {}
        self._lock = threading.Lock()
        self.scheduler = TileScheduler(
            self.cache,
            self._load,
            n_readers=n_readers,
            on_loaded=self.tile_loaded.emit,
            on_failed=lambda key, exc: self.tile_failed.emit(key, str(exc)),
            # a little nicer than the GUI thread: on two cores two busy readers would
            # otherwise take the GUI thread's turn in the middle of a pan
            reader_niceness=READER_NICENESS,
        )

    def add_source(self, source: SlideSource, grids: TileGridSet) -> None:
        with self._lock:
            self._sources[source.info.source_id] = _OpenSource(source, grids)

    def _load(self, key: TileKey) -> tuple[DecodedTile, int]:
        with self._lock:
            entry = self._sources[key.source_id]
        level, (lv_x, lv_y, lv_w, lv_h), (w, h) = entry.grids.source_region(
            key.level, key.t_col, key.t_row
        )
        bgrx = entry.source.read_region_bgrx(level, lv_x, lv_y, lv_w, lv_h)
        if (lv_w, lv_h) != (w, h):  # a display level between two stored ones
            bgrx = cv2.resize(bgrx, (w, h), interpolation=cv2.INTER_AREA)
        tile = DecodedTile(bgrx)
        return tile, tile.nbytes

    def release_source(self, source: SlideSource) -> None:
        """Stop reading a slide, then close it, on a background thread.

        OpenSlide forbids closing a handle while another thread reads it, so the
        scheduler drains in-flight reads of this slide first; the GUI never waits.  When
        the same slide has been opened again meanwhile (a late release, after a figure
        finished reading the old handle), the new opening's tiles are left alone: the old
        handle's own reader gate waits for whatever still reads it.
        """
        source_id = source.info.source_id
        with self._lock:
            entry = self._sources.get(source_id)
            reopened = entry is not None and entry.source is not source
            if entry is not None and entry.source is source:
                # from now on no new read of this slide can start
                del self._sources[source_id]

        def drain_and_close() -> None:
            if not reopened:
                self.scheduler.cancel_source(source_id, wait=True)
            try:
                source.close()
            except Exception:
                log.exception("closing %s failed", source.info.path)
            if not reopened:
                self.scheduler.forget_failed(source_id)

        threading.Thread(target=drain_and_close, name="slidelens-slide-closer", daemon=True).start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)
        with self._lock:
            sources = [entry.source for entry in self._sources.values()]
            self._sources.clear()
        for source in sources:
            source.close()
