"""Pixels past the slide's edge: an edge patch is filled with the slide's background
(white for brightfield), whatever the slide source returned there."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from inference.engine.patches import make_patch_grid, make_patch_reader
from inference.slides import open_slide
from inference.slides.base import SlideInfo
from tests.helpers.slides import ArraySource

TISSUE = (180, 60, 150)


@dataclass(frozen=True)
class Card:
    patch_size_pixels: int = 32
    spacing_um_px: float = 0.5


class BlackOutside(ArraySource):
    """Reads black past the image, as WSInfer's patches come out."""

    def __init__(self, rgb: np.ndarray, properties: dict[str, str] | None = None) -> None:
        super().__init__(rgb, levels=1)
        self._info = dataclasses.replace(self._info, properties=properties or {})
        self.width, self.height = rgb.shape[1], rgb.shape[0]

    def read_region(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        out = super().read_region(level, lv_x, lv_y, w, h)
        out[max(0, self.height - lv_y) :, :] = 0
        out[:, max(0, self.width - lv_x) :] = 0
        return out


def _edge_patch(source: ArraySource) -> np.ndarray:
    grid = make_patch_grid(source.info, Card())
    reader = make_patch_reader(source, grid, 32)
    return reader.read(grid.p_cols - 1, grid.p_rows - 1)  # crosses the right and bottom edges


def test_edge_patch_is_white_past_the_edge_not_what_the_source_read() -> None:
    rgb = np.full((100, 70, 3), TISSUE, np.uint8)  # 70 = 2 * 32 + 6, 100 = 3 * 32 + 4
    patch = _edge_patch(BlackOutside(rgb))
    assert (patch[:4, :6] == TISSUE).all()
    assert (patch[4:, :] == 255).all() and (patch[:, 6:] == 255).all()


def test_edge_patch_takes_the_slides_stated_background() -> None:
    rgb = np.full((100, 70, 3), TISSUE, np.uint8)
    source = BlackOutside(rgb, {"openslide.background-color": "F0E0D0"})
    assert source.info.background_rgb == (0xF0, 0xE0, 0xD0)
    patch = _edge_patch(source)
    assert (patch[:, 6:] == (0xF0, 0xE0, 0xD0)).all()
    assert (patch[:4, :6] == TISSUE).all()


def test_interior_patches_are_untouched() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (100, 70, 3), np.uint8)
    source = BlackOutside(rgb)
    grid = make_patch_grid(source.info, Card())
    reader = make_patch_reader(source, grid, 32)
    assert np.array_equal(reader.read(1, 2), rgb[64:96, 32:64])


@pytest.mark.parametrize("bad", ["", "nothex", "12345"])
def test_unreadable_background_colour_means_white(bad: str) -> None:
    info = SlideInfo(
        Path("x"), "id", "v", ((1, 1),), (1.0,), 0.5, None, (), {"openslide.background-color": bad}
    )
    assert info.background_rgb == (255, 255, 255)


def test_openslide_edge_patch_is_white(tmp_path: Path) -> None:
    """A real tiled TIFF read through OpenSlide, 6 x 4 px of tissue in the edge patch."""
    rgb = np.full((512 + 4, 512 + 6, 3), TISSUE, np.uint8)
    path = tmp_path / "edge.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            rgb,
            tile=(256, 256),
            photometric="rgb",
            compression="zlib",
            resolution=(1e4 / 0.5, 1e4 / 0.5),
            resolutionunit="CENTIMETER",
        )
    source = open_slide(path)
    try:
        grid = make_patch_grid(source.info, Card())
        patch = make_patch_reader(source, grid, 32).read(grid.p_cols - 1, grid.p_rows - 1)
    finally:
        source.close()
    assert (patch[:4, :6] == TISSUE).all()
    assert (patch[4:, :] == 255).all() and (patch[:, 6:] == 255).all()


def test_a_resized_edge_patch_is_tissue_on_white_glass() -> None:
    """Filled before resizing: the edge patch equals the resize of tissue padded white."""
    import cv2

    rgb = np.random.default_rng(1).integers(0, 255, (100, 70, 3), np.uint8)
    source = BlackOutside(rgb)
    grid = make_patch_grid(source.info, Card(spacing_um_px=1.0))  # 64 level-0 px -> 32
    reader = make_patch_reader(source, grid, 32)
    patch = reader.read(grid.p_cols - 1, grid.p_rows - 1)
    padded = np.full((64, 64, 3), 255, np.uint8)
    padded[: 100 - 64, : 70 - 64] = rgb[64:, 64:]
    assert np.array_equal(patch, cv2.resize(padded, (32, 32), interpolation=cv2.INTER_AREA))
