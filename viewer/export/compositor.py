"""The off-screen compositor: a :class:`~viewer.export.scene.FigureScene` seen through a
:class:`~viewer.export.scene.FigureSpec`, composed tile by tile into RGB.

Each output tile reads its slide pixels from the best pyramid level (the coarsest whose
downsample does not exceed ``l0_per_px``, as the canvas chooses), applies the scene's
display adjustment (brightness, contrast, gamma) to them as read, shrinks them with
``cv2.INTER_AREA`` onto a grid anchored at a whole level pixel (then shifts by the
remaining fraction of a pixel, which is zero for whole-pixel regions at a level's own
scale), or enlarges them bilinearly beyond full resolution, and paints what lies outside
the slide in the background colour.  Visible layers follow, bottom first, blended as
the canvas paints them (premultiplied "source over" at the layer's opacity, nearest or
bilinear), then annotations, then the overlays (scale bar bottom-left, legends
bottom-right, caption top-left), each drawn into whichever tiles it touches.

Memory is that of a few tiles (plus one band for a PNG), whatever the figure size:
nothing figure-sized is ever allocated except by :meth:`Compositor.compose`, which is
for view-sized images and refuses big ones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from inference.core.geometry import Rect, best_level_for_downsample
from inference.slides import SlideError
from viewer.annotations.model import Annotation
from viewer.export.annotation_render import (
    AnnotationPainter,
    draw_pieces,
    pieces_of,
    segments_of,
    stroke_margin,
    stroke_mask,
    visible_coverage,
)
from viewer.export.blend import (
    Sprite,
    blend_coverage,
    blend_premultiplied,
    blend_sprite,
    sample_bilinear,
    sample_nearest,
    to_uint8,
)
from viewer.export.corners import Box, Corner, place_in_corner
from viewer.export.legend_render import render_legends
from viewer.export.scale_bar_render import (
    ScaleBarSpec,
    bottom_left,
    render_scale_bar,
    top_left,
)
from viewer.export.scene import (
    ExportCancelled,
    ExportError,
    FigureScene,
    FigureSpec,
    ImageLayerSnapshot,
    OutlineLayerSnapshot,
    annotation_legend,
)
from viewer.export.text_render import render_caption
from viewer.layers.legend import ClassLegend, Legend

#: Neither side of an exported figure may exceed this many pixels.
MAX_OUTPUT_SIDE = 100_000
#: A figure of more pixels than this is written only when the user insists
#: (``slidelens export --force``; the window asks): at 3 bytes a pixel it is 300 MB
#: before compression, far more than any journal figure needs.
LARGE_FIGURE_PIXELS = 100_000_000
#: :meth:`Compositor.compose` (a whole figure in memory) refuses more pixels than this.
MAX_IN_MEMORY_PIXELS = 64_000_000
#: Output tile edge, and the most level pixels one tile may read along a side.
TILE_PX = 512
_MAX_READ_PX = 2048
#: A PNG band (one row of tiles) stays within about this many bytes.
BAND_BYTES = 24 * 1024 * 1024
_EPS = 1e-3

T = TypeVar("T")
R = TypeVar("R")


# -- composing -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutTile:
    """One output tile: pixels ``[x, x + w) x [y, y + h)`` of the figure."""

    x: int
    y: int
    w: int
    h: int


def check_output_size(width: int, height: int) -> None:
    """:class:`ExportError` when a figure would be absurdly large."""
    if width > MAX_OUTPUT_SIDE or height > MAX_OUTPUT_SIDE:
        raise ExportError(
            f"the figure would be {width:,} x {height:,} pixels; the limit is "
            f"{MAX_OUTPUT_SIDE:,} per side. Choose a smaller region or a larger µm/px "
            f"(coarser pixels)."
        )


def figure_size_text(width: int, height: int) -> str:
    """``"12,000 x 9,000 px (108 megapixels, about 324 MB uncompressed)"``."""
    pixels = width * height
    return (
        f"{width:,} x {height:,} px ({pixels / 1e6:.3g} megapixels, "
        f"about {_bytes_text(3 * pixels)} uncompressed)"
    )


def is_large_figure(width: int, height: int) -> bool:
    """Whether a figure exceeds :data:`LARGE_FIGURE_PIXELS` (and so needs a yes)."""
    return width * height > LARGE_FIGURE_PIXELS


def _bytes_text(n: int) -> str:
    if n >= 10**9:
        return f"{n / 1e9:.3g} GB"
    if n >= 10**6:
        return f"{n / 1e6:.3g} MB"
    return f"{max(1, round(n / 1e3))} kB"


class Compositor:
    """Composes one figure (``scene`` seen through ``spec``) tile by tile.

    Construction checks the size (:class:`ExportError` beyond :data:`MAX_OUTPUT_SIDE`,
    or for a region that misses the slide) and renders the overlays once.
    ``workers`` threads compose tiles in parallel (slide reads and OpenCV release the
    GIL); results always come back in order.
    """

    def __init__(self, scene: FigureScene, spec: FigureSpec, *, workers: int = 2) -> None:
        self.scene = scene
        self.spec = spec
        self.workers = max(1, int(workers))
        self.width, self.height = spec.width, spec.height
        check_output_size(self.width, self.height)
        info = scene.source.info
        self._l0_w, self._l0_h = info.dimensions
        covered = spec.l0_covered
        if covered.intersect(Rect(0, 0, self._l0_w, self._l0_h)).is_empty():
            raise ExportError(
                f"the region {_fmt_rect(spec.l0_region)} lies outside the slide "
                f"({self._l0_w} x {self._l0_h} level-0 px)"
            )
        s = spec.l0_per_px
        self.level = best_level_for_downsample(info.level_downsamples, s)
        self._downsample = float(info.level_downsamples[self.level])
        self._k = s / self._downsample  # level pixels per output pixel
        tile = TILE_PX if self._k <= _MAX_READ_PX / TILE_PX else _MAX_READ_PX / self._k
        self.tile_px = max(16, int(tile) // 16 * 16)
        painter = self._painter(scene.annotations)
        #: The annotations that reach the figure, bottom first (only these are drawn).
        self.annotations = tuple(painter.reaching(0, 0, self.width, self.height))
        self._annotations = (
            painter if len(self.annotations) == len(painter) else self._painter(self.annotations)
        )
        self.scale_bar: ScaleBarSpec | None = None
        self.legends: tuple[Legend, ...] = ()
        self.sprites: tuple[Sprite, ...] = self._overlays()
        self._pieces: dict[int, tuple[np.ndarray, tuple[float, float, float, float]]] = {}

    def _painter(self, annotations: Sequence[Annotation]) -> AnnotationPainter:
        spec = self.spec
        return AnnotationPainter(
            annotations,
            l0_origin=(spec.l0_region.x, spec.l0_region.y),
            l0_per_px=spec.l0_per_px,
            mpp=self.scene.mpp,
            scale=spec.options.overlay_scale,
            style=self.scene.annotation_style,
        )

    # -- overlays ----------------------------------------------------------------------
    def _overlays(self) -> tuple[Sprite, ...]:
        """Scale bar bottom-left, caption top-left, legends in ``legend_corner`` (past
        the others), and a box with each layer warning that no legend shows."""
        options = self.spec.options
        scale = options.overlay_scale
        w, h = self.width, self.height
        sprites = list(self._annotations.labels())
        taken: list[Box] = []
        if options.scale_bar:
            bar = render_scale_bar(self.spec.l0_per_px, self.scene.mpp, scale)
            if bar is not None:
                self.scale_bar = bar.spec
                sprites.append(Sprite(bar.rgba, *bottom_left(w, h, bar.width, bar.height, scale)))
                taken.append(_box(sprites[-1]))
        if options.caption.strip():
            max_w = max(1, w - 2 * round(28 * scale))
            rgba = render_caption(options.caption, max_w, scale)
            sprites.append(Sprite(rgba, *top_left(w, h, rgba.shape[1], rgba.shape[0], scale)))
            taken.append(_box(sprites[-1]))
        corner = options.legend_corner
        if options.legend:
            legends = list(self.scene.legends)
            wanted = options.annotation_legend and self.scene.annotation_key
            key = annotation_legend(self.annotations) if wanted else None
            if key is not None:
                legends.append(key)
            self.legends = tuple(legends)
            rgba = render_legends(self.legends, scale)
            if rgba.size:
                lh, lw = rgba.shape[:2]
                xy = place_in_corner(corner, w, h, lw, lh, scale, taken)
                sprites.append(Sprite(rgba, *xy))
                taken.append(_box(sprites[-1]))
        shown = {(legend.title, legend.warning) for legend in self.legends}
        unshown = [
            ClassLegend(name, (), warning)
            for name, warning in self.scene.warnings
            if (name, warning) not in shown
        ]
        if unshown:
            # a warning never leaves the figure: in a box of its own when no legend has it
            rgba = render_legends(unshown, scale)
            box_corner: Corner = "bottom-right" if corner == "top-right" else "top-right"
            xy = place_in_corner(box_corner, w, h, rgba.shape[1], rgba.shape[0], scale, taken)
            sprites.append(Sprite(rgba, *xy))
        return tuple(sprites)

    # -- tiles -------------------------------------------------------------------------
    def tiles(self, tile_w: int | None = None, tile_h: int | None = None) -> list[OutTile]:
        """The figure cut into tiles, row by row (edge tiles are smaller)."""
        tw = tile_w or self.tile_px
        th = tile_h or tw
        return [
            OutTile(x, y, min(tw, self.width - x), min(th, self.height - y))
            for y in range(0, self.height, th)
            for x in range(0, self.width, tw)
        ]

    def band_height(self) -> int:
        """Rows per band for streamed writers: a tile's height, fewer for very wide
        figures so a band stays within :data:`BAND_BYTES`."""
        rows = BAND_BYTES // max(1, 3 * self.width)
        return int(max(16, min(self.tile_px, rows)))

    def compose_tile(self, out_x: int, out_y: int, w: int, h: int) -> np.ndarray:
        """Output pixels ``[out_x, out_x + w) x [out_y, out_y + h)`` as ``(h, w, 3)``
        uint8 RGB.  Raises :class:`ExportError` when the slide cannot be read."""
        rgb = self._slide_tile(out_x, out_y, w, h)
        sprites = [sp for sp in self.sprites if sp.overlaps(out_x, out_y, w, h)]
        if not (self.scene.layers or sprites or self._annotations.touches(out_x, out_y, w, h)):
            return rgb
        buf = rgb.astype(np.float32)
        for layer in self.scene.layers:
            if isinstance(layer, ImageLayerSnapshot):
                self._draw_image_layer(buf, layer, out_x, out_y)
            else:
                self._draw_outline_layer(buf, layer, out_x, out_y)
        self._annotations.draw(buf, out_x, out_y)
        for sprite in sprites:
            blend_sprite(buf, out_x, out_y, sprite)
        return to_uint8(buf)

    def _slide_tile(self, out_x: int, out_y: int, w: int, h: int) -> np.ndarray:
        """Slide pixels of a tile, resampled from the chosen level; background outside."""
        spec = self.spec
        s, ds, k = spec.l0_per_px, self._downsample, self._k
        l0_x0 = spec.l0_region.x + out_x * s
        l0_y0 = spec.l0_region.y + out_y * s
        # output pixel centres in level-0 px, to find which lie on the slide
        l0_cx = l0_x0 + (np.arange(w) + 0.5) * s
        l0_cy = l0_y0 + (np.arange(h) + 0.5) * s
        on_x = (l0_cx >= 0) & (l0_cx < self._l0_w)
        on_y = (l0_cy >= 0) & (l0_cy < self._l0_h)
        out = np.empty((h, w, 3), np.uint8)
        out[:] = spec.options.background
        if not on_x.any() or not on_y.any():
            return out
        # only the columns and rows on the slide are read (a contiguous range of each)
        i0, i1 = int(np.argmax(on_x)), w - int(np.argmax(on_x[::-1]))
        j0, j1 = int(np.argmax(on_y)), h - int(np.argmax(on_y[::-1]))
        lv_x = (l0_x0 + i0 * s) / ds  # level coordinate of the left edge of column i0
        lv_y = (l0_y0 + j0 * s) / ds
        out[j0:j1, i0:i1] = self._resample(lv_x, lv_y, k, i1 - i0, j1 - j0)
        return out

    def _read(self, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        try:
            # the BGRX path skips a PIL image and an alpha pass: ~30% faster than RGB
            bgrx = self.scene.source.read_region_bgrx(self.level, lv_x, lv_y, w, h)
            # adjusted as read, before resampling: the canvas adjusts decoded tiles
            # before it scales them
            return self.scene.adjustment.apply(cv2.cvtColor(bgrx, cv2.COLOR_BGRA2RGB))
        except SlideError as exc:
            raise ExportError(
                f"{self.scene.source.info.path.name}: could not read level {self.level} at "
                f"({lv_x}, {lv_y}): {exc}"
            ) from exc

    def _resample(self, lv_x: float, lv_y: float, k: float, w: int, h: int) -> np.ndarray:
        """``(h, w, 3)`` pixels whose column ``i`` covers level ``[lv_x + i k, lv_x + (i+1) k)``."""
        if k >= 1.0:
            # shrink: area-average onto a grid anchored at a whole level pixel, then
            # shift by the remaining fraction of an output pixel (exact when it is 0)
            a_x, a_y = math.floor(lv_x), math.floor(lv_y)
            read_w, read_h = math.ceil((w + 2) * k), math.ceil((h + 2) * k)
            region = self._read(a_x, a_y, read_w, read_h)
            if abs(k - 1.0) > 1e-9:
                region = cv2.resize(
                    region, (0, 0), fx=1.0 / k, fy=1.0 / k, interpolation=cv2.INTER_AREA
                )
            dx, dy = (lv_x - a_x) / k, (lv_y - a_y) / k
            ix, iy = round(dx), round(dy)
            if abs(dx - ix) < _EPS and abs(dy - iy) < _EPS:
                return np.ascontiguousarray(region[iy : iy + h, ix : ix + w])
            u = np.arange(w) + dx
            v = np.arange(h) + dy
            return to_uint8(sample_bilinear(region, u, v))
        # enlarge (beyond full resolution): bilinear, like the canvas's smooth scaling
        u = lv_x + (np.arange(w) + 0.5) * k - 0.5
        v = lv_y + (np.arange(h) + 0.5) * k - 0.5
        a_x, a_y = math.floor(u[0]), math.floor(v[0])
        read_w, read_h = math.floor(u[-1]) - a_x + 2, math.floor(v[-1]) - a_y + 2
        region = self._read(a_x, a_y, read_w, read_h)
        return to_uint8(sample_bilinear(region, u - a_x, v - a_y))

    def _draw_image_layer(
        self, buf: np.ndarray, layer: ImageLayerSnapshot, out_x: int, out_y: int
    ) -> bool:
        colour = layer.colour
        img_h, img_w = colour.rgba.shape[:2]
        s, c = self.spec.l0_per_px, colour.l0_per_px
        th, tw = buf.shape[:2]
        # output pixel centres in the colour image's edge coordinates
        u = (self.spec.l0_region.x + (out_x + np.arange(tw) + 0.5) * s - colour.l0_x) / c
        v = (self.spec.l0_region.y + (out_y + np.arange(th) + 0.5) * s - colour.l0_y) / c
        in_u = (u >= 0) & (u < img_w)
        in_v = (v >= 0) & (v < img_h)
        if not in_u.any() or not in_v.any():
            return False
        i0, i1 = int(np.argmax(in_u)), tw - int(np.argmax(in_u[::-1]))
        j0, j1 = int(np.argmax(in_v)), th - int(np.argmax(in_v[::-1]))
        u, v = u[i0:i1], v[j0:j1]
        if layer.smooth:
            sample = sample_bilinear(colour.rgba, u - 0.5, v - 0.5)
        else:
            sample = sample_nearest(colour.rgba, u, v).astype(np.float32)
        blend_premultiplied(buf, sample, layer.opacity, slice(j0, j1), slice(i0, i1))
        return True

    def _draw_outline_layer(
        self, buf: np.ndarray, layer: OutlineLayerSnapshot, out_x: int, out_y: int
    ) -> bool:
        th, tw = buf.shape[:2]
        width = layer.line_width * self.spec.options.overlay_scale
        pieces, (x0, y0, x1, y1) = self._outline_pieces(layer)
        reach = width + 2
        if (
            x1 < out_x - reach
            or y1 < out_y - reach
            or x0 > out_x + tw + reach
            or y0 > out_y + th + reach
        ):
            return False
        margin = stroke_margin(width)
        mask = stroke_mask(tw, th, margin)
        draw_pieces(mask, pieces, (out_x - margin, out_y - margin), width)
        coverage = visible_coverage(mask, tw, th, margin)
        blend_coverage(buf, coverage, layer.colour, layer.opacity)
        return True

    def _outline_pieces(
        self, layer: OutlineLayerSnapshot
    ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """A layer's outlines as figure-wide pieces (see ``pieces_of``) and their bounds
        in output px (empty bounds when there are none); made once per layer."""
        found = self._pieces.get(id(layer))
        if found is None:
            origin = (self.spec.l0_region.x, self.spec.l0_region.y)
            rings = [(polygon - origin) / self.spec.l0_per_px for polygon in layer.polygons]
            segments = segments_of(rings, closed=True)
            if len(segments):
                lo, hi = segments.min(axis=(0, 1)), segments.max(axis=(0, 1))
                bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            else:
                bounds = (math.inf, math.inf, -math.inf, -math.inf)
            found = (pieces_of(segments), bounds)
            self._pieces[id(layer)] = found
        return found

    # -- whole figures -----------------------------------------------------------------
    def iter_tiles(
        self,
        tiles: Sequence[OutTile] | None = None,
        *,
        cancelled: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[OutTile, np.ndarray]]:
        """Compose ``tiles`` (default :meth:`tiles`) in order, ``workers`` at a time.

        ``cancelled()`` is asked before each tile (:class:`ExportCancelled` when true);
        ``progress(done, total)`` is called after each.
        """
        todo = list(self.tiles() if tiles is None else tiles)
        total = len(todo)

        def work(tile: OutTile) -> np.ndarray:
            if cancelled is not None and cancelled():
                raise ExportCancelled("the export was cancelled")
            return self.compose_tile(tile.x, tile.y, tile.w, tile.h)

        results = _ordered_map(work, todo, self.workers)
        for done, (tile, pixels) in enumerate(zip(todo, results, strict=True), 1):
            if progress is not None:
                progress(done, total)
            yield tile, pixels

    def iter_bands(
        self,
        band_height: int | None = None,
        *,
        cancelled: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """The figure as row bands ``(out_y, (rows, width, 3) uint8)``, top to bottom.

        Only one band (plus the tiles in flight) is held at a time.
        """
        rows = band_height or self.band_height()
        tiles = self.tiles(self.tile_px, rows)
        band: np.ndarray | None = None
        for tile, pixels in self.iter_tiles(tiles, cancelled=cancelled, progress=progress):
            if tile.x == 0:
                band = np.empty((tile.h, self.width, 3), np.uint8)
            assert band is not None
            band[:, tile.x : tile.x + tile.w] = pixels
            if tile.x + tile.w == self.width:
                yield tile.y, band
                band = None

    def compose(self) -> np.ndarray:
        """The whole figure as one ``(height, width, 3)`` uint8 RGB array.

        For view-sized figures (the clipboard, previews); :class:`ExportError` above
        :data:`MAX_IN_MEMORY_PIXELS` (write those with a streamed writer instead).
        """
        if self.width * self.height > MAX_IN_MEMORY_PIXELS:
            raise ExportError(
                f"a {self.width:,} x {self.height:,} figure is too large to hold in memory; "
                f"export it to a PNG or TIFF file instead"
            )
        out = np.empty((self.height, self.width, 3), np.uint8)
        for tile, pixels in self.iter_tiles():
            out[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w] = pixels
        return out


def _ordered_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, in order, with a bounded number of
    results in flight (so memory stays that of a few items)."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    window = 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="slidelens-export") as pool:
        pending: deque[Future[R]] = deque()
        iterator = iter(items)
        try:
            for item in iterator:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _box(sprite: Sprite) -> Box:
    """Where a sprite lies on the figure, ``(x, y, w, h)``."""
    h, w = sprite.rgba.shape[:2]
    return (sprite.x, sprite.y, w, h)


def _fmt_rect(rect: Rect) -> str:
    return f"{rect.x:g},{rect.y:g},{rect.w:g},{rect.h:g}"
