"""The annotation layer: one slide's :class:`AnnotationSet` drawn over the slide."""

from __future__ import annotations

from typing import Any

from viewer.annotations import AnnotationSet
from viewer.annotations.model import UNCLASSIFIED_COLOUR
from viewer.layers.base import Layer
from viewer.layers.legend import ClassLegend


class AnnotationLayer(Layer):
    """Shows an annotation set; any change to the set fires ``changed("data")``.

    ``show_labels`` draws names (or class names) beside shapes; ``fill_alpha`` (0..255)
    is the opacity of area fills (outlines are always opaque, scaled by ``opacity``).
    """

    kind = "annotations"
    stays_on_top = True

    def __init__(self, annotations: AnnotationSet, name: str = "Annotations") -> None:
        super().__init__(name, opacity=1.0)
        self.annotations = annotations
        self._show_labels = True
        self._fill_alpha = 28
        self.provenance: dict[str, Any] = {"kind": "annotations"}
        for signal in (annotations.added, annotations.removed):
            signal.connect(self._on_set_changed)
        annotations.changed.connect(self._on_set_changed)
        annotations.selection_changed.connect(self._on_set_changed)
        annotations.mpp_changed.connect(self._on_set_changed)  # ruler labels change unit

    def _on_set_changed(self, *_: object) -> None:
        self.changed.emit("data")

    def disconnect(self) -> None:
        """Stop following the set (before the layer is dropped)."""
        for signal in (
            self.annotations.added,
            self.annotations.removed,
            self.annotations.changed,
            self.annotations.selection_changed,
            self.annotations.mpp_changed,
        ):
            signal.disconnect(self._on_set_changed)

    @property
    def show_labels(self) -> bool:
        return self._show_labels

    @show_labels.setter
    def show_labels(self, value: bool) -> None:
        self._set("_show_labels", bool(value), "show_labels")

    @property
    def fill_alpha(self) -> int:
        return self._fill_alpha

    @fill_alpha.setter
    def fill_alpha(self, value: int) -> None:
        self._set("_fill_alpha", max(0, min(255, int(value))), "fill_alpha")

    def legend(self) -> ClassLegend:
        """The classes in use, in palette order, then unclassified if any."""
        used = {a.class_name for a in self.annotations}
        entries = [(c.name, c.colour) for c in self.annotations.palette if c.name in used]
        if None in used:
            entries.append(("Unclassified", UNCLASSIFIED_COLOUR))
        return ClassLegend(self.name, tuple(entries))

    def settings(self) -> dict[str, Any]:
        return {
            "visible": self.visible,
            "opacity": self.opacity,
            "show_labels": self._show_labels,
            "fill_alpha": self._fill_alpha,
            "count": len(self.annotations),
        }
