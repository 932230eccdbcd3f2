"""Layer settings remembered per slide and result (``viewer.layer_memory``), Qt-free."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.figures import result_grid
from viewer.layer_memory import (
    LayerSettingsStore,
    apply_settings,
    layer_settings,
    restore_index,
    result_identity,
)
from viewer.layers.base import LayerStack
from viewer.layers.heatmap import ARGMAX, HeatmapLayer
from viewer.layers.masks import MaskLayer


def _heatmap(key: str, name: str = "model on the view") -> HeatmapLayer:
    probs = np.linspace(0, 1, 12).reshape(3, 4)
    return HeatmapLayer(name, result_grid(probs, 256), provenance={"cache_key": key})


def _tuned(layer: HeatmapLayer) -> HeatmapLayer:
    layer.class_index = ARGMAX
    layer.class_index = 0
    layer.colormap = "magma"
    layer.value_range = (0.2, 0.9)
    layer.threshold = 0.4
    layer.opacity = 0.8
    layer.interpolation = "smooth"
    return layer


def test_a_results_settings_come_back_in_a_new_session(tmp_path: Path) -> None:
    path = tmp_path / "layer-settings.json"
    stack = LayerStack()
    stack.append(MaskLayer("Tissue mask", np.ones((2, 2), bool), 64.0))
    stack.append(_tuned(_heatmap("key-a")))
    LayerSettingsStore(path).remember("slide-1", stack, "a.svs")

    again = LayerSettingsStore(path)  # read from disk
    assert again.problem is None
    found = again.get("slide-1", "key-a")
    assert found is not None
    settings, order = found
    assert order == 1
    fresh = _heatmap("key-a")
    assert apply_settings(fresh, settings) == []
    assert layer_settings(fresh) == layer_settings(_tuned(_heatmap("key-a")))
    assert (fresh.class_index, fresh.colormap, fresh.threshold) == (0, "magma", 0.4)
    assert fresh.value_range == (0.2, 0.9) and fresh.opacity == pytest.approx(0.8)
    assert again.get("slide-2", "key-a") is None and again.get("slide-1", "key-b") is None
    doc = json.loads(path.read_text())
    assert doc["slides"]["slide-1"]["file"] == "a.svs"


def test_results_not_on_screen_keep_what_was_remembered(tmp_path: Path) -> None:
    store = LayerSettingsStore(tmp_path / "s.json")
    one, two = LayerStack(), LayerStack()
    one.append(_tuned(_heatmap("key-a")))
    store.remember("slide", one)
    two.append(_heatmap("key-b"))
    store.remember("slide", two)
    assert store.get("slide", "key-a") is not None and store.get("slide", "key-b") is not None


def test_settings_that_no_longer_fit_are_skipped_not_fatal() -> None:
    layer = _heatmap("k")
    skipped = apply_settings(
        layer,
        {
            "class": "necrosis",
            "colormap": "rainbow-unicorn",
            "range": [0.9, 0.1],
            "threshold": "high",
            "opacity": float("nan"),
            "interpolation": "cubic",
            "clip_to_tissue": "yes",
        },
    )
    assert sorted(skipped) == sorted(
        ["class", "colormap", "range", "threshold", "opacity", "interpolation", "clip_to_tissue"]
    )
    assert (layer.colormap, layer.value_range, layer.threshold) == ("viridis", (0.0, 1.0), None)


def test_a_damaged_file_is_reported_and_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "layer-settings.json"
    path.write_text("{not json")
    store = LayerSettingsStore(path)
    assert store.problem is not None and str(path) in store.problem
    stack = LayerStack()
    stack.append(_heatmap("k"))
    store.remember("slide", stack)
    assert path.with_name(path.name + ".damaged").read_text() == "{not json"
    assert LayerSettingsStore(path).get("slide", "k") is not None


def test_result_identity_is_the_cache_key_else_model_and_scope() -> None:
    assert result_identity(_heatmap("abc")) == "abc"
    layer = HeatmapLayer(
        "x", result_grid(np.zeros((2, 2)), 256), provenance={"model_sha256": "f0", "scope": "view"}
    )
    assert result_identity(layer) == "f0:view"
    assert result_identity(MaskLayer("m", np.ones((2, 2), bool), 1.0)) is None


def test_restored_layers_keep_their_saved_order_whatever_order_they_arrive_in() -> None:
    stack = LayerStack()
    tissue = MaskLayer("Tissue", np.ones((2, 2), bool), 1.0)
    stack.append(tissue)
    top, middle, bottom = _heatmap("t"), _heatmap("m"), _heatmap("b")
    saved = {id(top): 3, id(middle): 2, id(bottom): 1}
    for layer in (middle, top, bottom):  # as the cache happens to return them
        index = restore_index(stack, saved[id(layer)], saved)
        if index is None:
            stack.add(layer)
        else:
            stack.insert(index, layer)
    assert list(stack) == [tissue, bottom, middle, top]
