"""Layer models: events, the stack, heatmap colouring and lookups."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from inference.core.geometry import Rect
from inference.core.palette import TUMOUR_COLOUR
from viewer.layers.base import Layer, LayerStack
from viewer.layers.colormaps import apply_colormap, lut, result_class_colours
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.layers.legend import ClassLegend, ColourBarLegend
from viewer.layers.masks import MaskLayer


class _Grid:
    """A tiny result: 2 classes on a 2 x 3 grid of 100 px cells starting at (50, 0)."""

    task: ClassVar[str] = "classification"
    raster_shape = (2, 3)

    def __init__(self) -> None:
        self.class_names = ("other", "tumour")
        tumour = np.array([[0.1, 0.9, np.nan], [0.6, 0.2, 0.4]], np.float32)
        self.probs = np.stack([1 - tumour, tumour])

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        return self.probs[:, rows, cols].copy()

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        return (50.0, 0.0), 100.0

    def raster_window(self, l0_rect: Rect) -> tuple[slice, slice]:
        c0, c1 = int((l0_rect.x - 50) // 100), int(-(-(l0_rect.right - 50) // 100))
        r0, r1 = int(l0_rect.y // 100), int(-(-l0_rect.bottom // 100))
        return slice(max(0, r0), min(2, r1)), slice(max(0, c0), min(3, c1))

    def values_at(self, l0_x: float, l0_y: float) -> np.ndarray | None:
        col, row = int((l0_x - 50) // 100), int(l0_y // 100)
        if not (0 <= row < 2 and 0 <= col < 3) or l0_x < 50:
            return None
        values = self.probs[:, row, col]
        return values if np.isfinite(values).all() else None


def test_layer_events_fire_once_per_real_change() -> None:
    layer = Layer("a")
    events: list[str] = []
    layer.changed.connect(events.append)
    layer.opacity = 0.3
    layer.opacity = 0.3
    layer.visible = False
    layer.opacity = 7.0
    assert events == ["opacity", "visible", "opacity"]
    assert layer.opacity == 1.0


def test_stack_insert_move_remove_and_forwarding() -> None:
    stack = LayerStack()
    a, b, c = Layer("a"), Layer("b"), Layer("c")
    log: list[tuple[object, ...]] = []
    stack.inserted.connect(lambda i, layer: log.append(("ins", i, layer.name)))
    stack.removed.connect(lambda i, layer: log.append(("rm", i, layer.name)))
    stack.moved.connect(lambda old, new: log.append(("mv", old, new)))
    stack.layer_changed.connect(lambda layer, name: log.append(("chg", layer.name, name)))
    for layer in (a, b, c):
        stack.append(layer)
    stack.move(c, 0)
    assert [layer.name for layer in stack] == ["c", "a", "b"]
    b.visible = False
    stack.remove(b)
    b.visible = True  # no longer forwarded
    assert log == [
        ("ins", 0, "a"),
        ("ins", 1, "b"),
        ("ins", 2, "c"),
        ("mv", 2, 0),
        ("chg", "b", "visible"),
        ("rm", 2, "b"),
    ]
    with pytest.raises(ValueError):
        stack.append(a)


def test_colormap_range_threshold_and_nan() -> None:
    values = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    rgba = apply_colormap(values, "viridis", 0.0, 1.0, threshold=0.4)
    assert rgba.shape == (1, 4, 4)
    assert list(rgba[0, :, 3]) == [0, 255, 255, 0]
    np.testing.assert_array_equal(rgba[0, 2, :3], lut("viridis")[255])
    narrowed = apply_colormap(values, "viridis", 0.0, 0.5)
    np.testing.assert_array_equal(narrowed[0, 1, :3], lut("viridis")[255])


def test_heatmap_colour_image_and_cache_invalidation() -> None:
    layer = HeatmapLayer("model", _Grid())
    assert layer.class_index == 1
    first = layer.colour_image()
    assert first.rgba.shape == (2, 3, 4)
    assert (first.l0_x, first.l0_y, first.l0_per_px) == (50.0, 0.0, 100.0)
    assert first.rgba[0, 2, 3] == 0  # not computed: transparent
    assert layer.colour_image() is first  # cached
    layer.opacity = 0.2
    assert layer.colour_image() is first  # opacity is applied when painting
    layer.threshold = 0.5
    second = layer.colour_image()
    assert second is not first
    assert list(second.rgba[:, :, 3].ravel()) == [0, 255, 0, 255, 0, 0]
    layer.class_index = ARGMAX
    argmax = layer.colour_image()
    other, tumour = result_class_colours(("other", "tumour"))
    assert tuple(argmax.rgba[0, 1, :3]) == tumour
    assert argmax.rgba[0, 0, 3] == 255 and tuple(argmax.rgba[0, 0, :3]) == other


def test_heatmap_recolours_only_what_a_batch_touched() -> None:
    grid = _Grid()
    layer = HeatmapLayer("model", grid)
    first = layer.colour_image()
    before = first.rgba.copy()
    events: list[str] = []
    layer.changed.connect(events.append)
    grid.probs[:, 0, 2] = [0.0, 1.0]  # the NaN cell gets a value
    grid.probs[:, 1, 0] = [1.0, 0.0]  # changed, but outside the notified area
    layer.notify_data_changed(Rect(250, 0, 100, 100))
    assert events == ["data"]
    second = layer.colour_image()
    assert second.version != first.version
    assert second.rgba[0, 2, 3] == 255
    np.testing.assert_array_equal(second.rgba[1, 0], before[1, 0])  # untouched
    layer.notify_data_changed()  # everything
    np.testing.assert_array_equal(layer.colour_image().rgba[1, 0, :3], lut("viridis")[0])


def test_heatmap_legend_follows_the_settings() -> None:
    layer = HeatmapLayer("model", _Grid())
    bar = layer.legend()
    assert isinstance(bar, ColourBarLegend)
    assert (bar.colormap, bar.vmin, bar.vmax, bar.label) == (
        "viridis",
        0.0,
        1.0,
        "tumour probability",
    )
    layer.class_index = ARGMAX
    classes = layer.legend()
    assert isinstance(classes, ClassLegend)
    # the classes are named like annotation classes: their colours are those classes'
    assert classes.entries == (("other", (255, 200, 0)), ("tumour", TUMOUR_COLOUR))


def test_heatmap_values_at() -> None:
    layer = HeatmapLayer("model", _Grid())
    assert layer.values_at(160, 10) == pytest.approx({"other": 0.1, "tumour": 0.9})
    assert layer.values_at(260, 10) is None  # NaN cell
    assert layer.values_at(10, 10) is None  # left of the grid


def test_heatmap_rejects_bad_settings() -> None:
    layer = HeatmapLayer("model", _Grid())
    with pytest.raises(ValueError):
        layer.class_index = 5
    with pytest.raises(ValueError):
        layer.colormap = "rainbow-unicorn"
    with pytest.raises(ValueError):
        layer.value_range = (1.0, 0.0)


def test_mask_layer() -> None:
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    layer = MaskLayer("truth", mask, 16.0)
    image = layer.colour_image()
    assert image.rgba[5, 5, 3] == 255 and image.rgba[0, 0, 3] == 0
    layer.outline_only = True
    outline = layer.colour_image()
    assert outline.rgba[5, 5, 3] == 0 and outline.rgba[2, 5, 3] == 255
    assert layer.value_at(5 * 16, 5 * 16) is True
    assert layer.value_at(-1, 0) is None
