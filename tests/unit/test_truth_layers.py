"""Ground truth as a layer: a binary truth is one black outline; a label image of many
classes outlines each class in the colour the class map fills it with, named by the
truth file beside it, on the canvas model and in figures alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.core.palette import GROUND_TRUTH_COLOUR, result_class_colours
from inference.evaluation.truth import load_truth
from viewer.export.scene import OutlineLayerSnapshot, _snapshot
from viewer.layers.legend import ClassLegend
from viewer.layers.masks import LabelMaskLayer, MaskLayer
from viewer.truth_layers import label_names, truth_layer

NAMES = ("background", "stroma", "benign", "gleason3")


def _label_mask(folder: Path, with_names: bool) -> Path:
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 5:25] = 1
    labels[20:35, 10:30] = 3
    labels[20:35, 40:55] = 2
    path = folder / "biopsy.mask.png"
    Image.fromarray(labels).save(path)
    if with_names:
        doc = {"labels": {str(k): name for k, name in enumerate(NAMES)}}
        (folder / "biopsy.truth.json").write_text(json.dumps(doc))
    return path


def test_a_label_image_outlines_each_class_in_its_class_colour(tmp_path: Path) -> None:
    path = _label_mask(tmp_path, with_names=True)
    truth = load_truth(path, (600, 400))
    layer = truth_layer(truth, path)
    assert isinstance(layer, LabelMaskLayer) and layer.outline_only
    colours = result_class_colours(NAMES)
    groups = layer.outline_groups()
    assert [colour for _rings, colour in groups] == [colours[1], colours[2], colours[3]]
    # each class's ring lies on its own region, in level-0 px (10 per mask px here)
    stroma_rings, _ = groups[0]
    (ring,) = stroma_rings
    assert ring[:, 0].min() == pytest.approx(55) and ring[:, 1].max() == pytest.approx(145)
    legend = layer.legend()
    assert isinstance(legend, ClassLegend)
    assert [name for name, _ in legend.entries] == ["stroma", "benign", "gleason3"]
    assert layer.mask.sum() == np.count_nonzero(truth.labels)  # binary use still works
    rgba = layer.colour_image().rgba
    assert tuple(rgba[5, 5, :3]) == colours[1] and rgba[10, 10, 3] == 0  # border, inside

    snapshots = _snapshot(layer)
    assert isinstance(snapshots, tuple) and len(snapshots) == 3
    assert all(isinstance(s, OutlineLayerSnapshot) for s in snapshots)
    assert [s.colour for s in snapshots] == [colours[1], colours[2], colours[3]]


def test_without_a_truth_file_the_classes_are_numbered(tmp_path: Path) -> None:
    path = _label_mask(tmp_path, with_names=False)
    layer = truth_layer(load_truth(path, (600, 400)), path)
    assert isinstance(layer, LabelMaskLayer)
    assert layer.class_names == ("class 0", "class 1", "class 2", "class 3")
    (tmp_path / "biopsy.truth.json").write_text("{damaged")
    assert label_names(path, 3) == ("class 0", "class 1", "class 2", "class 3")


def test_a_binary_truth_is_one_black_outline(tmp_path: Path) -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 10:30] = 255
    path = tmp_path / "tumour.png"
    Image.fromarray(mask).save(path)
    layer = truth_layer(load_truth(path, (600, 400)), path)
    assert type(layer) is MaskLayer and layer.outline_only
    assert layer.colour == GROUND_TRUTH_COLOUR
    ((rings, colour),) = layer.outline_groups()
    assert colour == GROUND_TRUTH_COLOUR and len(rings) == 1
    assert layer.provenance == {"kind": "truth", "source": str(path.resolve())}


def test_a_model_on_screen_names_the_labels_no_truth_file_names(tmp_path: Path) -> None:
    path = _label_mask(tmp_path, with_names=False)
    truth = load_truth(path, (600, 400))
    six = (*NAMES, "gleason4", "gleason5")
    layer = truth_layer(truth, path, model_classes=six)
    assert isinstance(layer, LabelMaskLayer) and layer.class_names == NAMES
    assert [c for _rings, c in layer.outline_groups()] == list(result_class_colours(six)[1:4])
    # too few classes to cover the labels: numbered, not guessed
    short = truth_layer(truth, path, model_classes=("a", "b"))
    assert isinstance(short, LabelMaskLayer) and short.class_names[3] == "class 3"
    # a truth file beside the mask wins over the model's classes
    (tmp_path / "biopsy.truth.json").write_text(json.dumps({"labels": {"3": "G3", "²": "x"}}))
    named = truth_layer(truth, path, model_classes=six)
    assert isinstance(named, LabelMaskLayer) and named.class_names[3] == "G3"
