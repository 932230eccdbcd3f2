"""The off-screen compositor: geometry, slide pixels, layers, annotations, overlays,
tiling, limits and bounded memory.  No Qt."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inference.core.geometry import Rect, ViewTransform
from inference.slides import SlideSource, open_slide
from tests.helpers.figures import TUMOUR, PatternSource, result_grid
from viewer.annotations import Annotation, AnnotationClass
from viewer.export.annotation_render import AnnotationStyle, ruler_label
from viewer.export.compositor import MAX_OUTPUT_SIDE, Compositor
from viewer.export.figure import compose_view, region_compositor, view_compositor, write_figure
from viewer.export.scene import (
    CANVAS_BACKGROUND,
    ExportError,
    FigureOptions,
    FigureScene,
    FigureSpec,
)
from viewer.layers.base import Layer
from viewer.layers.colormaps import lut
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.legend import ClassLegend
from viewer.layers.masks import MaskLayer, PolygonLayer

PLAIN = FigureOptions(scale_bar=False, legend=False)


# -- helpers shared by the export tests -------------------------------------------------


@pytest.fixture
def slide(synthetic_slide: Path) -> Iterator[SlideSource]:
    source = open_slide(synthetic_slide)
    yield source
    source.close()


def compose(
    source: SlideSource,
    region: Rect,
    l0_per_px: float,
    layers: list[HeatmapLayer | MaskLayer | PolygonLayer] | None = None,
    annotations: list[Annotation] | None = None,
    options: FigureOptions = PLAIN,
) -> np.ndarray:
    spec = FigureSpec(region, l0_per_px, options)
    scene = FigureScene.capture(source, layers or [], annotations or [])
    return Compositor(scene, spec).compose()


# -- geometry and slide pixels ----------------------------------------------------------


def test_full_resolution_region_is_exactly_the_slide_pixels(slide: SlideSource) -> None:
    out = compose(slide, Rect(1000, 500, 700, 300), 1.0)
    assert out.shape == (300, 700, 3)
    assert np.array_equal(out, slide.read_region(0, 1000, 500, 700, 300))


def test_a_levels_own_scale_reads_that_level_exactly(slide: SlideSource) -> None:
    out = compose(slide, Rect(400, 800, 2000, 1200), 4.0)
    assert out.shape == (300, 500, 3)
    assert np.array_equal(out, slide.read_region(1, 100, 200, 500, 300))


def test_between_levels_pixels_are_area_averages(slide: SlideSource) -> None:
    out = compose(slide, Rect(0, 0, 2048, 1536), 2.0)
    full = slide.read_region(0, 0, 0, 2048, 1536)
    expected = cv2.resize(full, (1024, 768), interpolation=cv2.INTER_AREA)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_figure_has_the_requested_size_and_pixel_size(slide: SlideSource, tmp_path: Path) -> None:
    compositor = region_compositor(slide, [], Rect(300, 200, 2400, 1500), um_per_px=1.5)
    assert compositor.spec.l0_per_px == pytest.approx(3.0)
    assert (compositor.width, compositor.height) == (800, 500)
    result = write_figure(compositor, tmp_path / "fig.png")
    assert result.um_per_px == pytest.approx(1.5)
    with Image.open(result.path) as image:
        assert image.size == (800, 500)
        assert image.info["dpi"][0] == pytest.approx(25400 / 1.5, rel=1e-6)


def test_outside_the_slide_is_the_background_colour(slide: SlideSource) -> None:
    out = compose(slide, Rect(-400, 0, 1000, 200), 2.0)
    assert (out[:, :200] == CANVAS_BACKGROUND).all()
    assert not (out[:, 200:] == CANVAS_BACKGROUND).all(axis=2).any()


def test_beyond_full_resolution_is_bilinear(slide: SlideSource) -> None:
    out = compose(slide, Rect(1000, 1000, 50, 40), 0.5)
    assert out.shape == (80, 100, 3)
    src = slide.read_region(0, 1000, 1000, 50, 40)
    # output pixel (2i + 1, 2j + 1) is a quarter of the way from source pixel (i, j)
    expected = (0.75 * 0.75 * src[:-1, :-1] + 0.25 * 0.75 * src[:-1, 1:]) + (
        0.75 * 0.25 * src[1:, :-1] + 0.25 * 0.25 * src[1:, 1:]
    )
    assert np.abs(out[1:-1:2, 1:-1:2].astype(float) - expected).max() <= 1.0


# -- limits ---------------------------------------------------------------------------


def test_an_absurd_size_is_refused_with_a_clear_message(slide: SlideSource) -> None:
    with pytest.raises(ExportError, match="100,000 per side"):
        region_compositor(slide, [], Rect(0, 0, 4096, 3072), l0_per_px=0.02)
    big = PatternSource(400_000, 1000)
    spec = FigureSpec(Rect(0, 0, MAX_OUTPUT_SIDE + 1, 10), 1.0)
    with pytest.raises(ExportError, match="100,001 x 10"):
        Compositor(FigureScene.capture(big), spec)


def test_a_region_off_the_slide_and_bad_sizes_are_refused(slide: SlideSource) -> None:
    with pytest.raises(ExportError, match="outside the slide"):
        region_compositor(slide, [], Rect(5000, 0, 100, 100))
    with pytest.raises(ExportError, match="positive width"):
        region_compositor(slide, [], Rect(0, 0, 0, 100))
    no_mpp = PatternSource(1000, 1000, mpp=None)
    with pytest.raises(ExportError, match="does not state its pixel size"):
        region_compositor(no_mpp, [], Rect(0, 0, 100, 100), um_per_px=1.0)


# -- overlays ---------------------------------------------------------------------------


def _longest_dark_run(rgb: np.ndarray) -> int:
    """The longest horizontal run of the bar's ink (20, 20, 20) in an image."""
    dark = (rgb == (20, 20, 20)).all(axis=2)
    best = 0
    for row in dark:
        padded = np.concatenate([[0], row.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


@pytest.mark.parametrize("um_per_px", [0.5, 1.3, 4.0])
def test_scale_bar_is_as_long_as_it_says(slide: SlideSource, um_per_px: float) -> None:
    compositor = region_compositor(slide, [], Rect(0, 0, 4096, 3072), um_per_px=um_per_px)
    image = compositor.compose()
    bar = compositor.scale_bar
    assert bar is not None and bar.unit == "µm"
    h = image.shape[0]
    corner = image[h - 60 :, :260]
    measured_px = _longest_dark_run(corner)
    assert abs(measured_px * um_per_px - bar.length) <= um_per_px  # within one pixel
    assert 160 / 2.5 <= measured_px <= 160
    assert str(round(bar.length)) in bar.label
    # nothing dark like that elsewhere on the bottom edge: it is in the bottom-left corner
    assert _longest_dark_run(image[h - 60 :, 260:]) < measured_px


def test_scale_bar_in_pixels_without_mpp() -> None:
    source = PatternSource(2000, 2000, mpp=None)
    compositor = region_compositor(source, [], Rect(0, 0, 2000, 2000), l0_per_px=3.0)
    image = compositor.compose()
    assert compositor.scale_bar is not None
    assert compositor.scale_bar.label == "200 px"
    assert _longest_dark_run(image[-60:, :260]) == round(200 / 3)


def test_caption_and_legend_go_to_their_corners(slide: SlideSource) -> None:
    layer = HeatmapLayer("Tumour model", result_grid(np.full((12, 16), 0.7), 256))
    options = FigureOptions(scale_bar=False, caption="Case 12")
    with_all = compose(slide, Rect(0, 0, 4096, 3072), 4.0, [layer], options=options)
    without = compose(slide, Rect(0, 0, 4096, 3072), 4.0, [layer])
    changed = (with_all != without).any(axis=2)
    h, w = changed.shape
    assert changed[: h // 4, : w // 4].any()  # caption, top-left
    assert changed[3 * h // 4 :, 3 * w // 4 :].any()  # legend, bottom-right
    assert not changed[h // 3 : 2 * h // 3, :].any()  # nothing in between


# -- layers -----------------------------------------------------------------------------


def test_heatmap_cells_are_drawn_where_they_lie(slide: SlideSource) -> None:
    probs = np.full((12, 16), np.nan)
    probs[2, 3] = 1.0  # patch (col 3, row 2): level-0 [768, 1024) x [512, 768)
    layer = HeatmapLayer("model", result_grid(probs, 256), opacity=0.5)
    region = Rect(512, 256, 1024, 768)
    base = compose(slide, region, 2.0).astype(float)
    out = compose(slide, region, 2.0, [layer]).astype(float)
    inside = (slice(128, 256), slice(128, 256))  # (768 - 512) / 2 ... (1024 - 512) / 2
    colour = lut("viridis")[255].astype(float)
    assert np.abs(out[inside] - (0.5 * base[inside] + 0.5 * colour)).max() <= 1.0
    changed = (out != base).any(axis=2)
    changed[inside] = False
    assert not changed.any()


def test_smooth_heatmaps_blend_and_nearest_ones_do_not(slide: SlideSource) -> None:
    probs = np.full((12, 16), np.nan)
    probs[4, 4:6] = [0.0, 1.0]  # two neighbours: level-0 x [1024, 1280) and [1280, 1536)
    layer = HeatmapLayer("model", result_grid(probs, 256), opacity=1.0)
    region = Rect(1024, 1024, 512, 256)
    hard = compose(slide, region, 4.0, [layer])
    layer.interpolation = "smooth"
    soft = compose(slide, region, 4.0, [layer])
    row = 32  # output row through the middle of both cells
    low, high = lut("viridis")[0], lut("viridis")[255]
    assert (hard[row, :64] == low).all() and (hard[row, 64:] == high).all()
    # smooth: the cell centres keep their colours, the boundary is halfway
    assert np.abs(soft[row, 31].astype(int) - low).max() <= 4
    assert np.abs(soft[row, 96].astype(int) - high).max() <= 4
    mid = (low.astype(float) + high) / 2
    assert np.abs(soft[row, 63:65].astype(float).mean(axis=0) - mid).max() <= 6


def test_mask_layers_and_hidden_layers(slide: SlideSource) -> None:
    mask = np.zeros((48, 64), bool)  # 64 level-0 px per mask pixel
    mask[10:20, 30:40] = True  # level-0 x [1920, 2560), y [640, 1280)
    layer = MaskLayer("truth", mask, 64.0, colour=(0, 0, 255), opacity=1.0)
    out = compose(slide, Rect(0, 0, 4096, 3072), 16.0, [layer])
    assert (out[40:80, 120:160] == (0, 0, 255)).all()
    assert not (out[:40, :] == (0, 0, 255)).all(axis=2).any()
    layer.visible = False
    assert np.array_equal(
        compose(slide, Rect(0, 0, 4096, 3072), 16.0, [layer]),
        compose(slide, Rect(0, 0, 4096, 3072), 16.0),
    )


def test_polygon_layers_are_outlined_where_they_lie(slide: SlideSource) -> None:
    square = np.array([[1000, 1000], [1400, 1000], [1400, 1400], [1000, 1400]], float)
    layer = PolygonLayer("truth", [square], colour=(0, 0, 255), line_width=2.0)
    region = Rect(800, 800, 800, 800)
    base = compose(slide, region, 2.0)
    out = compose(slide, region, 2.0, [layer])
    # edges at output 100 and 300; a 2 px line covers the two pixels beside each edge
    assert _near(out[120:280, 99:101], (0, 0, 255), 10).all()
    assert _near(out[299:301, 120:280].transpose(1, 0, 2), (0, 0, 255), 10).all()
    changed = (out != base).any(axis=2)
    assert not changed[103:297, 103:297].any() and not changed[:97].any()
    layer.visible = False
    assert np.array_equal(compose(slide, region, 2.0, [layer]), base)


# -- annotations ------------------------------------------------------------------------


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return np.asarray((np.abs(rgb.astype(int) - colour) <= tolerance).all(axis=-1))


def test_annotations_are_outlined_in_their_class_colour_where_they_are(
    slide: SlideSource,
) -> None:
    region = Rect(800, 800, 1000, 800)
    rect = Annotation.rectangle(1000, 1000, 1400, 1200, classification=TUMOUR)
    point = Annotation.points([(1500, 1100)], classification=AnnotationClass("Cells", (0, 0, 255)))
    base = compose(slide, region, 2.0)
    out = compose(slide, region, 2.0, annotations=[rect, point])
    # the rectangle's edges lie at output x = 100 and 300, y = 100 and 200
    assert _near(out[100, 110:290], TUMOUR.colour).mean() > 0.95
    assert _near(out[110:190, 300], TUMOUR.colour).mean() > 0.95
    assert np.array_equal(out[110:190, 110:290], base[110:190, 110:290])  # not filled
    # the point: a blue disc centred on output (350, 150)
    assert _near(out[148:153, 348:353], (0, 0, 255)).all()
    changed = (out != base).any(axis=2)
    changed[95:206, 95:306] = False
    changed[140:161, 340:361] = False
    assert not changed.any()


def test_rulers_get_their_length_as_a_label(slide: SlideSource) -> None:
    ruler = Annotation.ruler([(1000, 1000), (1300, 1400)])
    assert ruler_label(ruler, 0.5) == "250.0 µm"
    assert ruler_label(ruler, None) == "500.0 px"
    assert ruler_label(Annotation.ruler([(0, 0), (3000, 0)]), 0.5) == "1,500.0 µm"
    region = Rect(800, 800, 1000, 800)
    scene = FigureScene.capture(slide, [], [ruler])
    compositor = Compositor(scene, FigureSpec(region, 2.0, PLAIN))
    (label,) = compositor.sprites
    # beside the ruler's middle, output (175, 200): to its right, above it
    assert 175 < label.x < 190 and 190 < label.y + label.height < 205
    out = compositor.compose()
    box = out[label.y : label.y + label.height, label.x : label.x + label.width]
    assert (box > 200).all(axis=2).mean() > 0.6  # a light box...
    assert (box < 100).all(axis=2).any()  # ...with dark text


def test_fills_labels_and_holes(slide: SlideSource) -> None:
    ring = [(1000, 1000), (1600, 1000), (1600, 1600), (1000, 1600)]
    hole = [(1200, 1200), (1400, 1200), (1400, 1400), (1200, 1400)]
    shape = Annotation.polygon(ring, [hole], classification=TUMOUR, name="Lesion 1")
    region = Rect(800, 800, 1000, 1000)
    base = compose(slide, region, 2.0).astype(int)
    style = AnnotationStyle(fill_alpha=128, labels=True)
    scene = FigureScene.capture(slide, [], [shape], annotation_style=style)
    compositor = Compositor(scene, FigureSpec(region, 2.0, PLAIN))
    out = compositor.compose().astype(int)
    expected_fill = base * (1 - 128 / 255) + np.array(TUMOUR.colour) * 128 / 255
    assert np.abs(out[130:170, 130:170] - expected_fill[130:170, 130:170]).max() <= 1
    assert np.array_equal(out[210:290, 210:290], base[210:290, 210:290])  # the hole
    assert np.array_equal(out[420:, 420:], base[420:, 420:])  # outside
    # the name sits just above the shape's top-left corner, output (100, 100)
    name = [sp for sp in compositor.sprites if sp.x == 100]
    assert len(name) == 1 and 80 < name[0].y + name[0].height <= 100


class _AnnotationLayer(Layer):
    """What an annotation layer offers the compositor (see ``annotation_source``)."""

    kind = "annotations"

    def __init__(self, annotations: list[Annotation]) -> None:
        super().__init__("Annotations")
        self.annotations = annotations
        self.fill_alpha = 40
        self.show_labels = False

    def legend(self) -> ClassLegend:
        return ClassLegend(self.name, ((TUMOUR.name, TUMOUR.colour),))


def test_an_annotation_layer_brings_its_annotations_and_style(slide: SlideSource) -> None:
    shape = Annotation.rectangle(1000, 1000, 1400, 1200, classification=TUMOUR)
    layer = _AnnotationLayer([shape])
    scene = FigureScene.capture(slide, [layer])
    assert scene.annotations == (shape,)
    assert scene.annotation_style.fill_alpha == 40 and not scene.annotation_key
    compositor = Compositor(scene, FigureSpec(Rect(800, 800, 1000, 800), 2.0))
    assert [legend.title for legend in compositor.legends] == ["Annotations"]  # just one
    layer.visible = False
    assert FigureScene.capture(slide, [layer]).annotations == ()


def test_annotations_off_the_figure_are_left_out(slide: SlideSource) -> None:
    inside = Annotation.rectangle(100, 100, 200, 200, classification=TUMOUR)
    outside = Annotation.rectangle(3000, 2000, 3100, 2100)
    scene = FigureScene.capture(slide, [], [inside, outside])
    compositor = Compositor(scene, FigureSpec(Rect(0, 0, 1000, 1000), 2.0))
    assert compositor.annotations == (inside,)
    legend_titles = [legend.title for legend in compositor.legends]
    assert legend_titles == ["Annotations"]


# -- tiling and views -------------------------------------------------------------------


def test_tiling_does_not_change_the_picture(slide: SlideSource) -> None:
    probs = np.where(np.random.default_rng(1).random((12, 16)) > 0.5, 0.9, 0.2)
    layer = HeatmapLayer("model", result_grid(probs, 256))
    layer.interpolation = "smooth"
    annotations = [
        Annotation.polygon([(300, 300), (3000, 500), (1500, 2500)], classification=TUMOUR),
        Annotation.ellipse(2000, 1000, 3500, 2500),
        Annotation.ruler([(500, 2500), (3500, 2800)]),
        Annotation.points([(1000, 1000), (1085, 1010), (2560, 1600)], name="cells"),
        Annotation.polygon(
            [(2500, 200), (4000, 200), (4000, 900)], [[(3500, 300), (3900, 320), (3850, 700)]]
        ),
    ]
    style = AnnotationStyle(fill_alpha=60, labels=True)
    scene = FigureScene.capture(slide, [layer], annotations, annotation_style=style)
    spec = FigureSpec(Rect(0, 0, 4096, 3072), 2.0, FigureOptions(caption="tiles"))
    whole = Compositor(scene, spec).compose()
    small = Compositor(scene, spec, workers=1)
    small.tile_px = 80  # tiles that cut through every line and label
    assert np.array_equal(small.compose(), whole)
    bands = np.concatenate([band for _, band in Compositor(scene, spec).iter_bands(37)])
    assert np.array_equal(bands, whole)


def test_a_view_composes_what_the_canvas_shows(slide: SlideSource) -> None:
    transform = ViewTransform(l0_x=812.0, l0_y=400.0, scale=0.5)
    view = compose_view(slide, [], transform, (640, 480), show_scale_bar=False)
    region = compose(slide, Rect(812, 400, 1280, 960), 2.0)
    assert view.shape == (480, 640, 3)
    assert np.array_equal(view, region)
    sharp = view_compositor(slide, [], transform, (640, 480), pixel_ratio=2.0)
    assert (sharp.width, sharp.height) == (1280, 960)
    assert sharp.spec.l0_per_px == pytest.approx(1.0)
    assert sharp.spec.options.overlay_scale == 2.0


def test_the_scene_is_a_snapshot(slide: SlideSource) -> None:
    grid = result_grid(np.full((12, 16), 0.2), 256)
    layer = HeatmapLayer("model", grid)
    scene = FigureScene.capture(slide, [layer])
    spec = FigureSpec(Rect(0, 0, 4096, 3072), 16.0, PLAIN)
    before = Compositor(scene, spec).compose()
    grid.sums[:] *= 4.0  # the job goes on: values change and the layer recolours in place
    layer.notify_data_changed(Rect(0, 0, 4096, 3072))
    layer.colour_image()
    assert np.array_equal(Compositor(scene, spec).compose(), before)
    now = Compositor(FigureScene.capture(slide, [layer]), spec).compose()
    assert not np.array_equal(now, before)


# -- memory -----------------------------------------------------------------------------


def _peak_bytes_writing(width: int, height: int, path: Path) -> int:
    source = PatternSource(width, height, levels=1)
    compositor = region_compositor(source, [], Rect(0, 0, width, height), options=PLAIN)
    tracemalloc.start()
    try:
        write_figure(compositor, path, png_level=1)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_export_never_holds_the_whole_image(tmp_path: Path) -> None:
    """Peak memory is a small fraction of the figure and does not grow with its size:
    a 3,000 x 9,000 figure (81 MB of RGB) needs what a 3,000 x 3,000 one needs."""
    small = _peak_bytes_writing(3000, 3000, tmp_path / "small.png")
    large = _peak_bytes_writing(3000, 9000, tmp_path / "large.png")
    full_large = 3000 * 9000 * 3
    # one full-size buffer would be 81 MB; a band and a few tiles in flight are ~20 MB
    assert large < 0.3 * full_large, f"peak {large / 1e6:.1f} MB of {full_large / 1e6:.0f} MB"
    assert large < 1.15 * small, f"peak grew from {small / 1e6:.1f} to {large / 1e6:.1f} MB"
    with Image.open(tmp_path / "large.png") as image:
        assert image.size == (3000, 9000)
        rows = np.asarray(image.crop((0, 8990, 3000, 9000)))
    assert np.array_equal(rows, PatternSource.expected(np.arange(3000), np.arange(8990, 9000)))
