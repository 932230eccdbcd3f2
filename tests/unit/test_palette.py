"""One class palette: the viewer's heatmap, its legend and the GeoJSON export agree."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from inference.core import palette
from inference.core.palette import (
    CLASS_PALETTE,
    GROUND_TRUTH_COLOUR,
    TUMOUR_COLOUR,
    class_colour,
    class_key,
    named_class_colour,
    result_class_colours,
)
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
    result = one_class_per_patch()
    write_geojson(path, result)
    classes = import_geojson(path).classes
    assert [(c.name, c.colour) for c in classes] == list(
        zip(result.class_names, result_class_colours(result.class_names), strict=True)
    )
    doc = json.loads(path.read_text())
    assert doc["features"][0]["properties"]["classification"]["color"] == [0, 114, 178]


def test_the_viewer_keeps_its_look() -> None:
    """The shared palette is the viewer's own: Okabe-Ito in the viewer's order; QuPath's
    colours for the default annotation classes except Tumour (vermillion) and Necrosis
    (grey); sky blue for unclassified and black for the ground truth."""
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
    # classes without a name of their own skip the colours that mean something
    assert class_colors(["a", "b", "c"]) == [(0, 114, 178), (0, 158, 115), (204, 121, 167)]
    assert [(c.name, c.colour) for c in DEFAULT_CLASSES] == [
        ("Tumour", (213, 94, 0)),
        ("Stroma", (150, 200, 150)),
        ("Immune cells", (160, 90, 160)),
        ("Necrosis", (120, 120, 120)),
        ("Other", (255, 200, 0)),
    ]
    assert UNCLASSIFIED_COLOUR == (86, 180, 233)
    assert GROUND_TRUTH_COLOUR == (0, 0, 0)


def _lab(rgb: tuple[int, int, int]) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def test_each_role_has_its_own_colour() -> None:
    """A Tumour annotation, an unclassified one and the ground truth differ clearly (the
    three were reds once), from each other and from every default class; a heatmap's
    "tumour" class is the Tumour annotation's colour, never a role's."""
    tumour = next(c.colour for c in DEFAULT_CLASSES if c.name == "Tumour")
    roles = {"Tumour": tumour, "unclassified": UNCLASSIFIED_COLOUR, "truth": GROUND_TRUTH_COLOUR}
    names = list(roles)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert _delta_e(roles[a], roles[b]) > 40, (a, b)
    for role in ("unclassified", "truth"):
        for cls in DEFAULT_CLASSES:
            assert _delta_e(roles[role], cls.colour) > 40, (role, cls.name)
    _, heatmap_tumour = result_class_colours(("other", "tumour"))
    assert heatmap_tumour == tumour == TUMOUR_COLOUR
    assert result_class_colours(("normal", "Tumor")) == [(0, 114, 178), tumour]
    unnamed = result_class_colours([f"class {k}" for k in range(20)])
    assert not {UNCLASSIFIED_COLOUR, GROUND_TRUTH_COLOUR, tumour} & set(unnamed)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Tumor", "Tumour"),
        ("TUMOUR", "tumour"),
        ("immune_cells", "Immune cells"),
        ("Tumor: Positive", "tumour positive"),
        ("  Necrosis ", "necrosis"),
    ],
)
def test_class_names_are_compared_without_case_or_spelling(a: str, b: str) -> None:
    assert class_key(a) == class_key(b)
    assert named_class_colour(a) == named_class_colour(b)


def test_different_classes_stay_different() -> None:
    assert class_key("Tumour") != class_key("Tumour: Positive")
    assert class_key("*") != class_key("+")  # names without words keep their text


@pytest.mark.parametrize(
    ("name", "colour"),
    [
        ("Stroma", (150, 200, 150)),  # a default class: its colour
        ("Mitosis", (119, 74, 126)),  # others: derived from the class key (SHA-256)
        ("Tumor: Positive", (116, 147, 215)),
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
    assert imported <= {"__future__", "hashlib", "collections.abc"}
