"""Saves how the open slide's result layers are shown whenever the user changes it.

Watches the layer stack: a change to a heatmap's display settings (class, colormap,
range, threshold, pixels, opacity, clipping) or to the order of the layers is saved,
a moment after the last change (a slider drag saves once), in the
:class:`~viewer.layer_memory.LayerSettingsStore` keyed by the open slide; the saved
settings come back with the cached results (:class:`InferenceJobs` restores them).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from viewer.layer_memory import LayerSettingsStore
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer

#: Layer events that change what is remembered (``data``, ``name``, ``visible``... do not).
REMEMBERED_EVENTS = frozenset(
    {
        "class_index",
        "colormap",
        "value_range",
        "threshold",
        "interpolation",
        "opacity",
        "clip_to_tissue",
    }
)
#: Milliseconds after the last change before the settings are written.
SAVE_DELAY_MS = 400


class LayerSettingsKeeper(QObject):
    """Saves ``layers``' settings for the slide named by :meth:`set_slide`."""

    def __init__(
        self, layers: LayerStack, store: LayerSettingsStore, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.layers = layers
        self.store = store
        self._slide: tuple[str, str] | None = None  # (source_id, file name)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        layers.layer_changed.connect(self._on_layer_changed)
        layers.moved.connect(lambda *_: self._timer.start())

    def set_slide(self, source_id: str | None, file_name: str = "") -> None:
        """The slide whose layers are on screen (``None``: none); what is pending for
        the previous slide is saved first."""
        if self._timer.isActive():
            self.save_now()
        self._slide = (source_id, file_name) if source_id is not None else None

    def _on_layer_changed(self, layer: Layer, what: str) -> None:
        if isinstance(layer, HeatmapLayer) and what in REMEMBERED_EVENTS:
            self._timer.start()

    def save_now(self) -> None:
        """Write the settings of the layers on screen now."""
        self._timer.stop()
        if self._slide is not None:
            source_id, file_name = self._slide
            self.store.remember(source_id, self.layers, file_name)
