"""What a figure shows and how: options, geometry (:class:`FigureSpec`) and a snapshot of
the slide's layers and annotations (:class:`FigureScene`), independent of any toolkit.

Geometry.  A :class:`FigureSpec` names a level-0 rectangle ``l0_region`` and
``l0_per_px``, the level-0 pixels one output pixel spans (``um/px = l0_per_px * mpp``).
Output pixel ``(i, j)`` covers level-0 ``[x + i * l0_per_px, x + (i + 1) * l0_per_px)``
horizontally (likewise vertically): exactly the canvas's ``scr = (l0 - origin) * scale``
with ``scale = 1 / l0_per_px``, so a view and its export are the same picture.

Threads.  :meth:`FigureScene.capture` reads the layer models and must run on the thread
that owns them (the GUI thread); it copies what can still change.  Everything made from
a scene is then independent of the models: compose and write on any thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from inference.core.geometry import Rect, ViewTransform
from inference.slides import SlideSource
from viewer.annotations.model import UNCLASSIFIED_COLOUR, Annotation
from viewer.export.annotation_render import AnnotationStyle
from viewer.export.corners import DEFAULT_LEGEND_CORNER, Corner
from viewer.layers.base import Layer
from viewer.layers.heatmap import ColourImage, HeatmapLayer
from viewer.layers.legend import ClassLegend, Legend
from viewer.layers.masks import MaskLayer, PolygonLayer
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment

RGB = tuple[int, int, int]
#: Colour of glass outside the slide (the canvas's background).
CANVAS_BACKGROUND: RGB = (48, 50, 54)
#: At most this many layer legends are shown (the top layers'), as on the canvas.
MAX_LEGENDS = 4


class ExportError(Exception):
    """An export that cannot be done; the message says what, with which file, and why."""


class ExportCancelled(ExportError):
    """The caller's ``cancelled()`` returned true; no file was left behind."""


# -- what to draw ----------------------------------------------------------------------


@dataclass(frozen=True)
class FigureOptions:
    """What goes on a figure besides slide and layers.

    ``overlay_scale`` enlarges scale bar, legends, caption, annotation lines and labels
    together (2 for a figure at twice the screen's resolution).  ``background`` fills
    what lies outside the slide.  ``annotation_legend`` adds a class key of the
    annotations drawn (the canvas has none, so views leave it out).  ``legend_corner``:
    where the legends go (the canvas's corner, for a view).
    """

    scale_bar: bool = True
    legend: bool = True
    legend_corner: Corner = DEFAULT_LEGEND_CORNER
    caption: str = ""
    overlay_scale: float = 1.0
    background: RGB = CANVAS_BACKGROUND
    annotation_legend: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.overlay_scale) and 0 < self.overlay_scale <= 64):
            raise ValueError(f"overlay scale must be in (0, 64], not {self.overlay_scale}")


@dataclass(frozen=True)
class FigureSpec:
    """Which part of the slide, at which pixel size, with which overlays.

    The output is ``width x height`` pixels, ``round(l0_region.w / l0_per_px)`` by
    ``round(l0_region.h / l0_per_px)`` (at least 1); it covers level-0
    ``[l0_region.x, l0_region.x + width * l0_per_px)`` (likewise in y).
    """

    l0_region: Rect
    l0_per_px: float
    options: FigureOptions = field(default_factory=FigureOptions)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.l0_per_px) and self.l0_per_px > 0):
            raise ExportError(f"the pixel size must be a positive number, not {self.l0_per_px}")
        r = self.l0_region
        if not all(math.isfinite(v) for v in (r.x, r.y, r.w, r.h)) or r.is_empty():
            raise ExportError(f"the region must have a positive width and height, not {r}")

    @property
    def width(self) -> int:
        return max(1, round(self.l0_region.w / self.l0_per_px))

    @property
    def height(self) -> int:
        return max(1, round(self.l0_region.h / self.l0_per_px))

    @property
    def l0_covered(self) -> Rect:
        """The level-0 rectangle the output pixels cover exactly."""
        s = self.l0_per_px
        return Rect(self.l0_region.x, self.l0_region.y, self.width * s, self.height * s)

    def um_per_px(self, mpp: float | None) -> float | None:
        """Microns per output pixel on a slide of ``mpp`` (``None`` without one)."""
        return None if not mpp else self.l0_per_px * mpp

    def with_options(self, **changes: Any) -> FigureSpec:
        return replace(self, options=replace(self.options, **changes))

    @classmethod
    def for_view(
        cls,
        transform: ViewTransform,
        scr_size: tuple[int, int],
        *,
        pixel_ratio: float = 1.0,
        options: FigureOptions | None = None,
    ) -> FigureSpec:
        """Exactly what a canvas of ``scr_size`` shows under ``transform``.

        ``pixel_ratio`` > 1 renders the same view with that many times more pixels per
        side (a HiDPI screen, or a sharper "export view"); overlays grow with it unless
        ``options`` say otherwise.
        """
        scr_w, scr_h = scr_size
        if scr_w < 1 or scr_h < 1:
            raise ExportError(f"the view is empty ({scr_w} x {scr_h} px)")
        if not (math.isfinite(pixel_ratio) and pixel_ratio > 0):
            raise ExportError(f"the pixel ratio must be positive, not {pixel_ratio}")
        l0_view = transform.scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        if options is None:
            options = FigureOptions(overlay_scale=pixel_ratio, annotation_legend=False)
        return cls(l0_view, 1.0 / (transform.scale * pixel_ratio), options)

    @classmethod
    def for_region(
        cls,
        l0_region: Rect,
        *,
        mpp: float | None,
        um_per_px: float | None = None,
        l0_per_px: float | None = None,
        options: FigureOptions | None = None,
    ) -> FigureSpec:
        """A slide region at ``um_per_px`` (needs the slide's ``mpp``) or ``l0_per_px``
        level-0 px per output pixel; neither given means full resolution."""
        if um_per_px is not None and l0_per_px is not None:
            raise ExportError("give the pixel size in µm/px or in level-0 px, not both")
        if um_per_px is not None:
            if not mpp:
                raise ExportError(
                    "this slide does not state its pixel size (mpp), so a size in µm/px "
                    "cannot be honoured; give level-0 pixels per output pixel instead"
                )
            if not (math.isfinite(um_per_px) and um_per_px > 0):
                raise ExportError(f"µm/px must be a positive number, not {um_per_px}")
            l0_per_px = um_per_px / mpp
        return cls(l0_region, 1.0 if l0_per_px is None else l0_per_px, options or FigureOptions())


@dataclass(frozen=True)
class ImageLayerSnapshot:
    """A layer drawn as a colour image (heatmap, mask): premultiplied RGBA, placed at
    level-0 ``(colour.l0_x, colour.l0_y)`` with ``colour.l0_per_px`` per pixel."""

    name: str
    colour: ColourImage
    opacity: float
    smooth: bool


@dataclass(frozen=True)
class OutlineLayerSnapshot:
    """A layer drawn as closed outlines (ground-truth polygons) ``line_width`` px wide."""

    name: str
    polygons: tuple[np.ndarray, ...]
    colour: RGB
    line_width: float
    opacity: float


LayerSnapshot = ImageLayerSnapshot | OutlineLayerSnapshot


@dataclass(frozen=True)
class LayerRecord:
    """A layer as the provenance sidecar describes it (drawn or not)."""

    name: str
    kind: str
    drawn: bool
    settings: dict[str, Any]
    provenance: dict[str, Any]


def layer_settings(layer: Layer) -> dict[str, Any]:
    """A layer's display settings: its own ``settings()`` where it has one."""
    settings = getattr(layer, "settings", None)
    if callable(settings):
        found = settings()
        if isinstance(found, dict):
            return dict(found)
    out: dict[str, Any] = {"opacity": layer.opacity, "visible": layer.visible}
    if isinstance(layer, MaskLayer):
        out.update(
            colour=list(layer.colour),
            outline_only=layer.outline_only,
            l0_per_px=layer.l0_per_px,
            l0_origin=list(layer.l0_origin),
        )
    elif isinstance(layer, PolygonLayer):
        out.update(
            colour=list(layer.colour), line_width=layer.line_width, polygons=len(layer.polygons)
        )
    return out


def _snapshot(layer: Layer) -> LayerSnapshot | tuple[LayerSnapshot, ...] | None:
    """What to draw of a visible layer, copied where the model may still change it (a
    label image's outlines: one snapshot per class colour)."""
    if isinstance(layer, PolygonLayer):
        return OutlineLayerSnapshot(
            layer.name,
            tuple(np.array(p, np.float64) for p in layer.polygons),
            tuple(layer.colour),  # type: ignore[arg-type]
            float(layer.line_width),
            layer.opacity,
        )
    if isinstance(layer, MaskLayer) and layer.outline_only:
        # the canvas draws a mask's outline as lines, so the figure does too
        return tuple(
            OutlineLayerSnapshot(
                layer.name,
                tuple(np.array(r, np.float64) for r in rings),
                tuple(colour),  # type: ignore[arg-type]
                2.0,
                layer.opacity,
            )
            for rings, colour in layer.outline_groups()
        )
    colour_image = getattr(layer, "colour_image", None)
    if not callable(colour_image):
        return None
    colour = colour_image()
    if not isinstance(colour, ColourImage) or colour.rgba.size == 0:
        return None
    if isinstance(layer, HeatmapLayer):
        # a running job recolours the cached image in place: keep our own copy
        colour = replace(colour, rgba=colour.rgba.copy())
    smooth = getattr(layer, "interpolation", "nearest") == "smooth"
    return ImageLayerSnapshot(layer.name, colour, layer.opacity, smooth)


def layer_legends(layers: Iterable[Layer]) -> tuple[Legend, ...]:
    """Legends of the visible layers that have one (empty class keys left out), top
    layer first, at most :data:`MAX_LEGENDS`: what the canvas shows."""
    found: list[Legend] = []
    for layer in reversed(list(layers)):
        legend = getattr(layer, "legend", None)
        if layer.visible and layer.opacity > 0 and callable(legend):
            entry = legend()
            if not (isinstance(entry, ClassLegend) and not entry.entries):
                found.append(entry)
    return tuple(found[:MAX_LEGENDS])


def annotation_source(layer: Layer) -> tuple[tuple[Annotation, ...], AnnotationStyle] | None:
    """The annotations and look of an annotation layer (``kind == "annotations"`` with
    an ``annotations`` collection, as ``viewer.layers.annotation_layer`` defines it), or
    ``None`` for other layers.  Its ``fill_alpha``, ``show_labels`` and ``opacity``
    become the figure's annotation style, so the figure looks like the canvas."""
    items = getattr(layer, "annotations", None)
    if getattr(layer, "kind", None) != "annotations" or items is None:
        return None
    annotations = tuple(a for a in items if isinstance(a, Annotation))
    style = AnnotationStyle(
        fill_alpha=int(getattr(layer, "fill_alpha", 0)),
        labels=bool(getattr(layer, "show_labels", False)),
        opacity=layer.opacity,
    )
    return annotations, style


def annotation_legend(annotations: Iterable[Annotation]) -> ClassLegend | None:
    """A key of the annotation classes, first seen first (``None`` without annotations)."""
    entries: dict[str, RGB] = {}
    for annotation in annotations:
        name = annotation.class_name or "Unclassified"
        if name not in entries:
            colour = annotation.colour if annotation.class_name else UNCLASSIFIED_COLOUR
            entries[name] = colour
    if not entries:
        return None
    return ClassLegend("Annotations", tuple(entries.items()))


@dataclass(frozen=True)
class FigureScene:
    """Everything a figure shows except its geometry: the slide, snapshots of the
    visible layers (bottom first), annotations and their style, legends, and records
    for provenance.  ``annotation_key`` asks for a class key of the annotations (when
    they were given directly rather than by a layer that has its own legend).
    ``typed_mpp``: the pixel size the user typed for a slide that states none (used
    only then; the provenance says so).  ``warnings``: ``(layer name, warning)`` of
    every drawn layer that carries one (see ``Layer.warning``); a figure shows each,
    in its layer's legend or, when that is not on the figure, in a box of its own.
    ``adjustment``: the display adjustment of the slide's pixels (the canvas's), applied
    to them before anything is drawn over them.

    Make it with :meth:`capture` on the thread that owns the layer models.
    """

    source: SlideSource
    layers: tuple[LayerSnapshot, ...]
    records: tuple[LayerRecord, ...]
    legends: tuple[Legend, ...]
    annotations: tuple[Annotation, ...] = ()
    annotation_style: AnnotationStyle = field(default_factory=AnnotationStyle)
    annotation_key: bool = True
    typed_mpp: float | None = None
    warnings: tuple[tuple[str, str], ...] = ()
    #: Brightness, contrast and gamma of the slide's pixels (as the canvas shows them).
    adjustment: DisplayAdjustment = NEUTRAL

    @property
    def mpp(self) -> float | None:
        """µm per level-0 pixel: the slide's own, else the typed one, else ``None``."""
        return self.source.info.mpp or self.typed_mpp

    @property
    def mpp_source(self) -> str | None:
        """Where :attr:`mpp` comes from: ``"slide"``, ``"typed"`` or ``None``."""
        if self.source.info.mpp:
            return "slide"
        return "typed" if self.typed_mpp else None

    @classmethod
    def capture(
        cls,
        source: SlideSource,
        layers: Iterable[Layer] = (),
        annotations: Iterable[Annotation] = (),
        *,
        annotation_style: AnnotationStyle | None = None,
        typed_mpp: float | None = None,
        adjustment: DisplayAdjustment = NEUTRAL,
    ) -> FigureScene:
        """Snapshot ``layers`` (bottom first, e.g. a ``LayerStack``) and ``annotations``.

        Hidden layers and layers at opacity 0 are recorded but not drawn.  A visible
        annotation layer in the stack contributes its annotations and style (drawn
        above the other layers, as it stays on top on the canvas).
        """
        stack = list(layers)
        given = tuple(annotations)
        drawn_annotations = list(given)
        style = annotation_style or AnnotationStyle()
        from_layer = False
        snapshots: list[LayerSnapshot] = []
        records: list[LayerRecord] = []
        warnings: list[tuple[str, str]] = []
        for layer in stack:
            shown = layer.visible and layer.opacity > 0
            found = annotation_source(layer)
            snap = None
            if found is not None:
                if shown:
                    drawn_annotations.extend(found[0])
                    style = annotation_style or found[1]
                    from_layer = True
            elif shown:
                snap = _snapshot(layer)
                if snap is not None:
                    snapshots.extend(snap if isinstance(snap, tuple) else (snap,))
                    if layer.warning:
                        warnings.append((layer.name, layer.warning))
            provenance = getattr(layer, "provenance", None)
            records.append(
                LayerRecord(
                    layer.name,
                    str(getattr(layer, "kind", type(layer).__name__)),
                    snap is not None or (found is not None and shown and bool(found[0])),
                    layer_settings(layer),
                    dict(provenance) if isinstance(provenance, dict) else {},
                )
            )
        return cls(
            source,
            tuple(snapshots),
            tuple(records),
            layer_legends(stack),
            tuple(drawn_annotations),
            style,
            annotation_key=bool(given) and not from_layer,
            typed_mpp=typed_mpp,
            warnings=tuple(reversed(warnings)),  # top layer first, as legends are
            adjustment=adjustment,
        )
