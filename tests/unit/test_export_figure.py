"""Writing figures: PNG and tiled TIFF with their physical size, the provenance sidecar,
and failures (disk full, unwritable, cancelled) that leave no partial file."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from inference.core.geometry import Rect
from inference.slides import SlideSource, open_slide
from tests.helpers.figures import TUMOUR, result_grid
from viewer.annotations import Annotation, AnnotationClass
from viewer.export import figure
from viewer.export.figure import region_compositor, sidecar_path, write_figure
from viewer.export.scene import ExportCancelled, ExportError, FigureOptions
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer

MODEL_SHA = "ab" * 32


@pytest.fixture
def slide(synthetic_slide: Path) -> Iterator[SlideSource]:
    source = open_slide(synthetic_slide)
    yield source
    source.close()


def _heatmap() -> HeatmapLayer:
    probs = np.full((12, 16), 0.3)
    probs[4:8, 6:10] = 0.95
    return HeatmapLayer(
        "Tumour classifier",
        result_grid(probs, 256),
        opacity=0.6,
        provenance={"model": "demo", "model_sha256": MODEL_SHA, "params": {"batch": 8}},
    )


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_tiff_is_tiled_with_resolution_and_the_same_pixels(
    slide: SlideSource, tmp_path: Path
) -> None:
    compositor = region_compositor(slide, [_heatmap()], Rect(0, 0, 4096, 3072), um_per_px=2.5)
    expected = compositor.compose()
    result = write_figure(compositor, tmp_path / "fig.tiff")
    with tifffile.TiffFile(result.path) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.tilewidth % 16 == 0
        assert page.shape == (614, 819, 3)
        x_res = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3  # centimetre
        assert x_res[0] / x_res[1] == pytest.approx(1e4 / 2.5)
        assert json.loads(str(page.description))["um_per_px"] == pytest.approx(2.5)
        assert np.array_equal(page.asarray(), expected)


def test_png_holds_exactly_the_composed_pixels(slide: SlideSource, tmp_path: Path) -> None:
    annotations = [Annotation.rectangle(500, 500, 1500, 1200, classification=TUMOUR)]
    compositor = region_compositor(
        slide,
        [_heatmap()],
        Rect(100, 50, 3000, 2000),
        um_per_px=1.0,
        annotations=annotations,
        options=FigureOptions(caption="Case 7"),
    )
    expected = compositor.compose()
    result = write_figure(compositor, tmp_path / "fig.png")
    with Image.open(result.path) as image:
        assert np.array_equal(np.asarray(image), expected)
        assert image.info["dpi"][0] == pytest.approx(25400.0)
        assert json.loads(image.info["Description"])["source_id"] == slide.info.source_id


def test_sidecar_has_the_provenance(slide: SlideSource, tmp_path: Path) -> None:
    truth = MaskLayer("Ground truth", np.ones((48, 64), bool), 64.0, provenance={"kind": "truth"})
    truth.outline_only = True
    hidden = MaskLayer("Tissue", np.ones((48, 64), bool), 64.0)
    hidden.visible = False
    annotations = [
        Annotation.rectangle(500, 500, 1500, 1200, classification=TUMOUR),
        Annotation.points(
            [(900, 900), (950, 900)], classification=AnnotationClass("Cells", (0, 0, 255))
        ),
        Annotation.ruler([(2000, 2000), (2500, 2000)]),
        Annotation.rectangle(4000, 3000, 4050, 3050),  # outside the region: not drawn
    ]
    compositor = region_compositor(
        slide,
        [hidden, _heatmap(), truth],
        Rect(0, 0, 3000, 2500),
        um_per_px=2.0,
        annotations=annotations,
        options=FigureOptions(caption="Case 7"),
    )
    result = write_figure(compositor, tmp_path / "out" / "fig.png")
    assert result.sidecar == sidecar_path(result.path) == tmp_path / "out" / "fig.png.json"
    doc = json.loads(result.sidecar.read_text("utf-8"))
    assert doc["slide"]["path"] == str(slide.info.path.resolve())
    assert doc["slide"]["source_id"] == slide.info.source_id
    assert doc["slide"]["mpp"] == pytest.approx(0.5)
    assert doc["region"]["l0"] == [0, 0, 3000, 2500]
    assert doc["figure"]["um_per_px"] == pytest.approx(2.0)
    assert (doc["figure"]["width"], doc["figure"]["height"]) == (750, 625)
    assert doc["figure"]["format"] == "png"
    names = [layer["name"] for layer in doc["layers"]]
    assert names == ["Tissue", "Tumour classifier", "Ground truth"]
    tissue, heatmap, truth_doc = doc["layers"]
    assert tissue["drawn"] is False and heatmap["drawn"] is True
    assert heatmap["provenance"]["model_sha256"] == MODEL_SHA
    assert heatmap["settings"]["opacity"] == pytest.approx(0.6)
    assert heatmap["settings"]["class"] == "tumour"
    assert heatmap["settings"]["colormap"] == "viridis"
    assert truth_doc["settings"]["outline_only"] is True
    assert doc["annotations"] == {
        "given": 4,
        "drawn": 3,
        "classes": {"Tumour": 1, "Cells": 1, "Unclassified": 1},
        "kinds": {"rectangle": 1, "point": 1, "ruler": 1},
    }
    assert doc["overlays"]["scale_bar"]["label"] == "200 µm"
    assert doc["overlays"]["caption"] == "Case 7"
    assert doc["overlays"]["legends"][-1] == "Annotations"
    assert doc["versions"]["numpy"] == np.__version__
    assert datetime.fromisoformat(doc["created"]).tzinfo is not None


def test_disk_full_names_the_file_and_leaves_nothing(
    slide: SlideSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: object, rows: np.ndarray) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(figure.PngStreamWriter, "write_rows", full)
    compositor = region_compositor(slide, [], Rect(0, 0, 2000, 2000), um_per_px=2.0)
    target = tmp_path / "fig.png"
    with pytest.raises(ExportError, match="disk is full") as caught:
        write_figure(compositor, target)
    assert str(target) in str(caught.value)
    assert _files(tmp_path) == []


def test_unwritable_places_are_reported(slide: SlideSource, tmp_path: Path) -> None:
    compositor = region_compositor(slide, [], Rect(0, 0, 1000, 1000), um_per_px=4.0)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ExportError, match="not-a-folder"):
        write_figure(compositor, blocker / "fig.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_figure(compositor, tmp_path / "folder.png")
    with pytest.raises(ExportError, match=r"unknown figure type \.jpg"):
        write_figure(compositor, tmp_path / "fig.jpg")
    assert _files(tmp_path) == ["folder.png", "not-a-folder"]


def test_cancel_leaves_no_file_and_keeps_an_old_one(slide: SlideSource, tmp_path: Path) -> None:
    compositor = region_compositor(slide, [], Rect(0, 0, 4096, 3072), um_per_px=1.0)
    target = tmp_path / "fig.tiff"
    target.write_bytes(b"the previous figure")
    seen: list[tuple[int, int]] = []

    def cancelled() -> bool:
        return len(seen) >= 3

    with pytest.raises(ExportCancelled):
        write_figure(
            compositor, target, progress=lambda d, t: seen.append((d, t)), cancelled=cancelled
        )
    assert target.read_bytes() == b"the previous figure"
    assert _files(tmp_path) == ["fig.tiff"]
    assert seen[0] == (1, len(compositor.tiles()))


def test_progress_counts_every_tile(slide: SlideSource, tmp_path: Path) -> None:
    compositor = region_compositor(slide, [], Rect(0, 0, 4096, 3072), um_per_px=1.0)
    seen: list[tuple[int, int]] = []
    write_figure(compositor, tmp_path / "fig.png", progress=lambda d, t: seen.append((d, t)))
    total = seen[-1][1]
    assert [d for d, _ in seen] == list(range(1, total + 1))
    assert total == len(compositor.tiles(compositor.tile_px, compositor.band_height()))
