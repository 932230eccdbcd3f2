"""How result layers are shown, Qt-free: segmentation maps clipped to the slide and its
tissue (on the layer and in figures), warnings in legends and on every figure, and
legends placed in any corner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inference.core.geometry import Rect
from inference.engine.job import BatchResult
from inference.engine.patches import PatchGrid
from inference.engine.tissue import TissueMask, tissue_mask
from inference.results.store import SegmentationMap
from inference.slides import SlideSource, open_slide
from viewer.export.compositor import Compositor
from viewer.export.corners import nearest_corner, place_in_corner
from viewer.export.figure import sidecar_path, write_figure
from viewer.export.legend_render import render_legends
from viewer.export.scene import FigureScene, FigureSpec
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.legend import ColourBarLegend
from viewer.result_layers import layer_clip
from viewer.settings import Settings, load_settings, save_settings

#: Level-0 px per patch and per map pixel of the test segmentation map.
PATCH, MAP_PX = 1000, 10
WARNING = "NOT FOR DIAGNOSIS\nSlide outside the model's domain"


def segmentation_everywhere(l0_w: int, l0_h: int) -> SegmentationMap:
    """A one-class map that says "tumour 1.0" on every patch of a grid that reaches past
    the slide's right and bottom edges, as a U-Net's last tiles do."""
    cols, rows = -(-l0_w // PATCH), -(-l0_h // PATCH)
    grid = PatchGrid(PATCH, PATCH, (0, 0), cols, rows)
    tile = PATCH // MAP_PX
    result = SegmentationMap(grid, ("tumour",), MAP_PX, tile)
    p_ij = np.array([(c, r) for r in range(rows) for c in range(cols)], np.int32)
    batch = BatchResult(
        job_id=0,
        grid=grid,
        class_names=("tumour",),
        p_ij=p_ij,
        l0_xy=grid.l0_xy(p_ij),
        probs=np.ones((len(p_ij), 1, tile, tile), np.float32),
        l0_per_px=float(MAP_PX),
        background_p_ij=np.zeros((0, 2), np.int32),
        unreadable_p_ij=np.zeros((0, 2), np.int32),
        done=len(p_ij),
        total=len(p_ij),
        skipped_background=0,
    )
    result.add(batch)
    return result


@pytest.fixture
def slide(synthetic_slide: Path) -> Iterator[SlideSource]:
    source = open_slide(synthetic_slide)
    yield source
    source.close()


@pytest.fixture
def tissue(slide: SlideSource) -> TissueMask:
    return tissue_mask(slide)


def _layer(slide: SlideSource, tissue: TissueMask | None) -> HeatmapLayer:
    l0_w, l0_h = slide.info.dimensions
    layer = HeatmapLayer("unet", segmentation_everywhere(l0_w, l0_h), opacity=1.0)
    layer.set_clip(layer_clip(slide.info.dimensions, tissue))
    return layer


def _centres(layer: HeatmapLayer) -> tuple[np.ndarray, np.ndarray]:
    (o_x, o_y), px = layer.result.raster_geometry()
    h, w = layer.result.raster_shape
    return o_x + (np.arange(w) + 0.5) * px, o_y + (np.arange(h) + 0.5) * px


def test_a_segmentation_layer_paints_only_on_the_slide_and_its_tissue(
    slide: SlideSource, tissue: TissueMask
) -> None:
    layer = _layer(slide, tissue)
    assert layer.clips and layer.clip_to_tissue
    alpha = layer.colour_image().rgba[..., 3]
    cx, cy = _centres(layer)
    l0_w, l0_h = slide.info.dimensions
    past_edge = (cy[:, None] >= l0_h) | (cx[None, :] >= l0_w)
    assert past_edge.any() and not alpha[past_edge].any()  # no strip past the edges
    on_slide = ~past_edge
    m = tissue.mask[
        np.minimum(cy // tissue.l0_per_px, tissue.mask.shape[0] - 1).astype(int)[:, None],
        np.minimum(cx // tissue.l0_per_px, tissue.mask.shape[1] - 1).astype(int)[None, :],
    ]
    glass = on_slide & ~m
    assert glass.sum() > 1000 and not alpha[glass].any()  # no blocks on the glass
    assert (alpha[on_slide & m] == 255).all()
    # what is not painted is not reported under the cursor either
    gy, gx = np.argwhere(glass)[0]
    assert layer.values_at(float(cx[gx]), float(cy[gy])) is None
    ty, tx = np.argwhere(on_slide & m)[0]
    assert layer.values_at(float(cx[tx]), float(cy[ty])) == {"tumour": 1.0}


def test_clipping_to_tissue_can_be_turned_off_but_never_past_the_slide(
    slide: SlideSource, tissue: TissueMask
) -> None:
    layer = _layer(slide, tissue)
    events: list[str] = []
    layer.changed.connect(events.append)
    layer.clip_to_tissue = False
    assert events == ["clip_to_tissue"]
    assert layer.settings()["clip_to_tissue"] is False
    alpha = layer.colour_image().rgba[..., 3]
    cx, cy = _centres(layer)
    l0_w, l0_h = slide.info.dimensions
    on_slide = (cy[:, None] < l0_h) & (cx[None, :] < l0_w)
    assert (alpha[on_slide] == 255).all() and not alpha[~on_slide].any()


def test_a_figure_of_a_segmentation_layer_is_clipped_as_the_canvas_is(
    slide: SlideSource, tissue: TissueMask
) -> None:
    l0_w, l0_h = slide.info.dimensions
    spec = FigureSpec.for_region(
        Rect(0, 0, l0_w, l0_h), mpp=slide.info.mpp, l0_per_px=16.0
    ).with_options(scale_bar=False, legend=False)
    plain = Compositor(FigureScene.capture(slide, []), spec).compose()
    clipped = Compositor(FigureScene.capture(slide, [_layer(slide, tissue)]), spec).compose()
    changed = np.abs(clipped.astype(int) - plain).max(axis=2) > 8
    # the tissue mask under each figure pixel's centre (16 level-0 px per figure pixel)
    rows = ((np.arange(changed.shape[0]) + 0.5) * 16 // tissue.l0_per_px).astype(int)
    cols = ((np.arange(changed.shape[1]) + 0.5) * 16 // tissue.l0_per_px).astype(int)
    m_h, m_w = tissue.mask.shape
    on_tissue = tissue.mask[np.minimum(rows, m_h - 1)[:, None], np.minimum(cols, m_w - 1)[None, :]]
    assert changed[on_tissue].mean() > 0.9
    # off the tissue (the glass, and the slide's own background) the figure is the slide
    assert changed[~on_tissue].mean() < 0.02


def _red_pixels(rgba: np.ndarray) -> int:
    r, g, b = (rgba[..., k].astype(int) for k in range(3))
    return int(((r > 140) & (g < 40) & (b < 40)).sum())


def test_a_legend_shows_its_layers_warning_in_red() -> None:
    plain = ColourBarLegend("demo on the view", "tumour probability", "viridis", 0.0, 1.0)
    warned = ColourBarLegend(
        "demo on the view", "tumour probability", "viridis", 0.0, 1.0, warning=WARNING
    )
    assert _red_pixels(render_legends([plain])) == 0
    image = render_legends([warned])
    assert _red_pixels(image) > 100
    assert image.shape[0] > render_legends([plain]).shape[0]  # two more lines


def test_a_layers_warning_reaches_its_legend_and_every_figure(
    slide: SlideSource, tissue: TissueMask, tmp_path: Path
) -> None:
    layer = _layer(slide, tissue)
    layer.warning = WARNING
    assert layer.legend().warning == WARNING
    l0_w, l0_h = slide.info.dimensions
    for legend in (True, False):
        spec = FigureSpec.for_region(
            Rect(0, 0, l0_w, l0_h), mpp=slide.info.mpp, l0_per_px=8.0
        ).with_options(legend=legend, scale_bar=False)
        scene = FigureScene.capture(slide, [layer])
        assert scene.warnings == (("unet", WARNING),)
        compositor = Compositor(scene, spec)
        # in the legend, or (no legend) in a box of its own: never left out
        assert any(_red_pixels(sprite.rgba) > 100 for sprite in compositor.sprites)
        out = tmp_path / f"fig-{legend}.png"
        write_figure(compositor, out)
        doc = json.loads(sidecar_path(out).read_text())
        assert doc["overlays"]["warnings"] == [{"layer": "unet", "warning": WARNING}]
        assert doc["layers"][0]["settings"]["clip_to_tissue"] is True


def test_corner_placement_steps_past_what_is_there() -> None:
    assert place_in_corner("bottom-right", 1000, 800, 200, 100) == (786, 686)
    assert place_in_corner("top-left", 1000, 800, 200, 100) == (14, 14)
    # the scale bar's box in the bottom-left corner pushes a legend up above it
    bar = (14.0, 740.0, 150.0, 46.0)
    assert place_in_corner("bottom-left", 1000, 800, 200, 100, taken=[bar]) == (14, 626)
    assert place_in_corner("top-right", 1000, 800, 200, 100, 2.0) == (772, 28)
    assert nearest_corner(100, 100, 1000, 800) == "top-left"
    assert nearest_corner(900, 700, 1000, 800) == "bottom-right"
    assert nearest_corner(900, 100, 1000, 800) == "top-right"


def test_figure_legends_go_to_the_chosen_corner(slide: SlideSource, tissue: TissueMask) -> None:
    layer = _layer(slide, tissue)
    l0_w, l0_h = slide.info.dimensions
    spec = FigureSpec.for_region(Rect(0, 0, l0_w, l0_h), mpp=slide.info.mpp, l0_per_px=8.0)
    scene = FigureScene.capture(slide, [layer])
    legend_rgba = render_legends(scene.legends)
    for corner, expected in (
        ("bottom-right", (spec.width - legend_rgba.shape[1] - 14, None)),
        ("top-left", (14, 14)),
    ):
        compositor = Compositor(scene, spec.with_options(legend_corner=corner))
        (sprite,) = [s for s in compositor.sprites if s.rgba.shape == legend_rgba.shape]
        assert sprite.x == expected[0]
        if expected[1] is not None:
            assert sprite.y == expected[1]


def test_the_legend_corner_is_remembered_in_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(Settings(legend_corner="top-left"), path)
    assert load_settings(path).legend_corner == "top-left"
    path.write_text(json.dumps({"legend_corner": "middle"}))
    assert load_settings(path).legend_corner == "bottom-right"
