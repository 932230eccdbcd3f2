"""One class palette: the viewer's heatmap, its legend and the GeoJSON export agree."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from inference.core import palette
from inference.core.palette import CLASS_PALETTE, class_colour, named_class_colour
from inference.engine.patches import PatchGrid
from inference.results.exports import class_colors, geojson_features, write_geojson
from inference.results.store import ResultGrid
from viewer.annotations import DEFAULT_CLASSES, UNCLASSIFIED_COLOUR, import_geojson
from viewer.layers import colormaps
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.layers.legend import ClassLegend

ROOT = Path(__file__).resolve().parents[2]
#: More classes than the palette has colours, so the cycling is compared too.
N_CLASSES = len(CLASS_PALETTE) + 3


def one_class_per_patch() -> ResultGrid:
    """Patch ``k`` of a 1-row grid (one cell each) is class ``k`` for certain."""
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=N_CLASSES, p_rows=1)
    result = ResultGrid(grid, [f"class {k}" for k in range(N_CLASSES)])
    one_hot = np.eye(N_CLASSES, dtype=np.float32)[:, None, :]  # (C, 1, N)
    result.patch_probs[...] = one_hot
    result.sums[...] = one_hot
    result.weights[...] = 1.0
    return result


def test_geojson_export_colours_are_the_heatmap_legend_colours() -> None:
    result = one_class_per_patch()
    layer = HeatmapLayer("model", result)
    layer.class_index = ARGMAX
    legend = layer.legend()
    assert isinstance(legend, ClassLegend)
    features = geojson_features(result)
    assert len(features) == N_CLASSES
    for k, feature in enumerate(features):
        classification = feature["properties"]["classification"]
        name, colour = legend.entries[k]
        assert classification["name"] == name == f"class {k}"
        assert tuple(classification["color"]) == colour


def test_geojson_export_colours_are_the_colours_the_heatmap_draws() -> None:
    result = one_class_per_patch()
    layer = HeatmapLayer("model", result)
    layer.class_index = ARGMAX
    rgba = layer.colour_image().rgba  # premultiplied, but every cell is opaque
    for k, feature in enumerate(geojson_features(result)):
        assert rgba[0, k, 3] == 255
        assert tuple(feature["properties"]["classification"]["color"]) == tuple(rgba[0, k, :3])


def test_qupath_round_trip_keeps_the_class_colours(tmp_path: Path) -> None:
    """The exported tiles, imported as annotations, carry the viewer's class colours."""
    path = tmp_path / "tiles.geojson"
    write_geojson(path, one_class_per_patch())
    classes = import_geojson(path).classes
    assert [(c.name, c.colour) for c in classes] == [
        (f"class {k}", class_colour(k)) for k in range(N_CLASSES)
    ]
    doc = json.loads(path.read_text())
    assert doc["features"][0]["properties"]["classification"]["color"] == [0, 114, 178]


def test_the_viewer_keeps_its_look() -> None:
    """The shared palette is the viewer's own: Okabe-Ito in the viewer's order, the
    QuPath colours for default annotation classes, QuPath red for unclassified."""
    assert CLASS_PALETTE == (
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (240, 228, 66),
        (120, 120, 120),
    )
    assert colormaps.CLASS_PALETTE is CLASS_PALETTE
    assert colormaps.class_colour is class_colour
    assert class_colour(len(CLASS_PALETTE)) == class_colour(0)
    assert class_colors(["a", "b", "c"]) == [class_colour(0), class_colour(1), class_colour(2)]
    assert [(c.name, c.colour) for c in DEFAULT_CLASSES] == [
        ("Tumour", (200, 0, 0)),
        ("Stroma", (150, 200, 150)),
        ("Immune cells", (160, 90, 160)),
        ("Necrosis", (50, 50, 50)),
        ("Other", (255, 200, 0)),
    ]
    assert UNCLASSIFIED_COLOUR == (255, 0, 0)


@pytest.mark.parametrize(
    ("name", "colour"),
    [
        ("Stroma", (150, 200, 150)),  # a default class: its QuPath colour
        ("Mitosis", (99, 183, 117)),  # others: derived from the name (SHA-256)
        ("Tumor: Positive", (225, 156, 175)),
    ],
)
def test_named_class_colours_are_stable(name: str, colour: tuple[int, int, int]) -> None:
    assert named_class_colour(name) == colour


def test_the_palette_module_needs_only_the_standard_library() -> None:
    tree = ast.parse(Path(palette.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "hashlib"}
