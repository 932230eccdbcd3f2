"""The layers of a multi-class result, Qt-free: which layers a result makes, the
confidence measures against hand-computed values, settings names, and that remembered
and carried settings tell the layers of one result apart."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from inference.engine.patches import PatchGrid
from inference.results.class_map import certainty
from inference.results.store import ResultGrid, collect
from tests.helpers.results import batch
from viewer.layer_memory import apply_settings, layer_settings, result_identity
from viewer.layers.base import LayerStack
from viewer.layers.heatmap import (
    ARGMAX,
    ONE_MINUS_ENTROPY,
    TOP_PROBABILITY,
    HeatmapLayer,
    shown_index,
    shown_name,
)
from viewer.projects.paging import LayerCarry
from viewer.result_layers import result_layers

THREE = ("stroma", "benign", "gleason4")


def _result(names: tuple[str, ...], probs: np.ndarray) -> ResultGrid:
    """A 2 x 1 grid: cell (0, 0) with ``probs``' first row, cell (1, 0) with its second."""
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=2, p_rows=1)
    made = replace(batch(grid, [(0, 0), (1, 0)], probs), class_names=names)
    result = collect([made])
    assert isinstance(result, ResultGrid)
    return result


def test_certainty_is_one_minus_the_normalised_entropy() -> None:
    p = np.array([[[1.0, 0.5, 0.2, np.nan]], [[0.0, 0.5, 0.3, 0.5]], [[0.0, 0.0, 0.5, 0.5]]])
    got = certainty(p)
    by_hand = 1 - -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5)) / math.log(3)
    assert got[0, 0] == pytest.approx(1.0)
    assert got[0, 1] == pytest.approx(1 - math.log(2) / math.log(3), abs=1e-6)
    assert got[0, 2] == pytest.approx(by_hand, abs=1e-6)
    assert np.isnan(got[0, 3])
    assert certainty(np.array([[[0.5, 1.0]]]))[0].tolist() == pytest.approx([0.0, 1.0])
    # outputs that do not sum to one (sigmoids) are shared out first
    sigmoid = certainty(np.array([[[0.9, 0.1, 0.6]], [[0.9, 0.1, 0.6]], [[0.9, 0.1, 0.0]]]))
    assert sigmoid[0, :2].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert sigmoid[0, 2] == pytest.approx(got[0, 1], abs=1e-6)  # 0.6, 0.6, 0 as 0.5, 0.5, 0


def test_a_multi_class_result_makes_a_class_map_a_confidence_and_one_layer_per_class() -> None:
    result = _result(THREE, np.array([[0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]]))
    layers = result_layers("grader on the whole slide", result, {"cache_key": "k"})
    assert [x.name for x in layers] == [
        "grader on the whole slide: class map",
        "grader on the whole slide: confidence",
        *(f"grader on the whole slide: {n}" for n in THREE),
    ]
    assert [x.class_index for x in layers] == [ARGMAX, TOP_PROBABILITY, 0, 1, 2]
    assert [x.visible for x in layers] == [True, False, False, False, False]
    # each layer has its own provenance: marking one does not mark the others
    layers[0].provenance["incomplete"] = True
    assert "incomplete" not in layers[1].provenance

    confidence = layers[1]
    top = confidence.confidence(confidence.probabilities())
    assert top[0].tolist() == pytest.approx([0.7, 1 / 3])
    confidence.class_index = ONE_MINUS_ENTROPY
    flat = confidence.confidence(confidence.probabilities())[0]
    assert flat[1] == pytest.approx(0.0, abs=1e-6) and 0 < flat[0] < 1
    assert confidence.legend().label == "confidence (1 - entropy)"  # type: ignore[union-attr]
    # the colour follows the measure: a sure cell brighter than an undecided one
    rgba = confidence.colour_image().rgba
    assert rgba[0, 0, :3].sum() > rgba[0, 1, :3].sum()


def test_two_classes_or_one_output_stay_one_layer_without_confidence_for_one_output() -> None:
    two = _result(("benign", "tumour"), np.array([[0.9, 0.1], [0.2, 0.8]]))
    (layer,) = result_layers("m", two, {})
    assert layer.class_index == 1 and "view" not in layer.provenance
    layer.class_index = TOP_PROBABILITY  # two classes: offered
    one = _result(("tumour",), np.array([[0.9], [0.2]]))
    (single,) = result_layers("m", one, {})
    with pytest.raises(ValueError, match="one-output"):
        single.class_index = TOP_PROBABILITY


def test_settings_name_what_a_layer_shows_and_come_back() -> None:
    for index in (ARGMAX, TOP_PROBABILITY, ONE_MINUS_ENTROPY, 0, 2):
        assert shown_index(shown_name(index, THREE), THREE) == index
    with pytest.raises(ValueError, match="1 - entropy"):
        shown_index("tumour", THREE)
    result = _result(THREE, np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]))
    source = HeatmapLayer("a", result, class_index=ONE_MINUS_ENTROPY)
    target = HeatmapLayer("b", result)
    assert layer_settings(source)["class"] == "1 - entropy"
    assert apply_settings(target, layer_settings(source)) == []
    assert target.class_index == ONE_MINUS_ENTROPY


def test_remembered_and_carried_settings_tell_the_layers_of_one_result_apart() -> None:
    result = _result(THREE, np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]))
    provenance = {"cache_key": "key", "model_sha256": "abc"}
    layers = result_layers("m", result, provenance)
    identities = [result_identity(x) for x in layers]
    assert identities[0] == "key#class map" and len(set(identities)) == len(layers)

    stack = LayerStack()
    for layer in reversed(layers):
        stack.add(layer)
    carry = LayerCarry(stack)
    layers[1].visible = True
    layers[4].colormap = "magma"
    assert carry.take() == len(layers)
    for layer in list(stack):
        stack.remove(layer)
    fresh = result_layers("m", result, provenance)
    for layer in reversed(fresh):
        stack.add(layer)
    assert [x.visible for x in fresh] == [True, True, False, False, False]
    assert [x.colormap for x in fresh][2:] == ["viridis", "viridis", "magma"]
    assert fresh[0].class_index == ARGMAX and fresh[1].class_index == TOP_PROBABILITY
