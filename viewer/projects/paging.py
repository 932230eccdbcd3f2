"""Page Up / Page Down through a project keep the look of the result layers.

Contract: :meth:`LayerCarry.take` remembers the display settings (class, colormap,
range, threshold, pixels, opacity, clipping; :func:`viewer.layer_memory.layer_settings`)
and the visibility of the model-result layers on screen, by model (``model_sha256`` of
their provenance) and view (``"view"``: a multi-class result's class map, confidence
or a class's probability, see :func:`viewer.result_layers.result_layers`).  Until
:meth:`LayerCarry.drop`, every model-result layer of the same model and view that
enters the stack gets them (:func:`viewer.layer_memory.apply_settings`): the next
slide's results look like the last slide's.  Qt-free; GUI thread.
"""

from __future__ import annotations

from typing import Any

from viewer.layer_memory import apply_settings, layer_settings, result_identity
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer


def _model_key(layer: Layer) -> str | None:
    if not isinstance(layer, HeatmapLayer) or result_identity(layer) is None:
        return None
    sha = layer.provenance.get("model_sha256")
    if not sha:
        return None
    view = layer.provenance.get("view")
    return f"{sha}#{view}" if view else str(sha)


class LayerCarry:
    """Carries result-layer settings from one slide to the next (see the module)."""

    def __init__(self, layers: LayerStack) -> None:
        self.layers = layers
        self._carried: dict[str, tuple[dict[str, Any], bool]] = {}
        layers.inserted.connect(self._on_inserted)

    @property
    def armed(self) -> bool:
        return bool(self._carried)

    def take(self) -> int:
        """Remember the result layers on screen now; how many were remembered."""
        self._carried = {}
        for layer in self.layers:
            key = _model_key(layer)
            if key is not None and isinstance(layer, HeatmapLayer) and key not in self._carried:
                self._carried[key] = (layer_settings(layer), layer.visible)
        return len(self._carried)

    def drop(self) -> None:
        """Stop giving remembered settings to new layers."""
        self._carried = {}

    def _on_inserted(self, index: int, layer: Layer) -> None:
        key = _model_key(layer)
        if key is None or key not in self._carried or not isinstance(layer, HeatmapLayer):
            return
        settings, visible = self._carried[key]
        apply_settings(layer, settings)
        layer.visible = visible
