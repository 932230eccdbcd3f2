"""Layer models and the layer stack: plain Python state with events, no Qt."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

from psygnal import Signal


class Layer:
    """Something drawn over the slide.  ``changed`` fires with the property's name.

    Display properties (visibility, opacity) live here; subclasses add theirs and say
    which changes alter pixels (``"data"`` for new values, other names for settings).
    """

    kind: ClassVar[str] = "layer"
    #: Layers that stay above data layers added later (annotations drawn by hand).
    stays_on_top: ClassVar[bool] = False
    changed = Signal(str)

    def __init__(self, name: str, *, visible: bool = True, opacity: float = 1.0) -> None:
        self._name = name
        self._visible = visible
        self._opacity = _clamp01(opacity)
        self._warning = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._set("_name", value, "name")

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._set("_visible", bool(value), "visible")

    @property
    def opacity(self) -> float:
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._set("_opacity", _clamp01(value), "opacity")

    @property
    def warning(self) -> str:
        """A warning that the layer, its legend entry and every figure made with it
        carry (e.g. from a model not for diagnosis, or run on a slide outside its
        domain): short lines separated by newlines; "" for none."""
        return self._warning

    @warning.setter
    def warning(self, value: str) -> None:
        self._set("_warning", str(value), "warning")

    def _set(self, attribute: str, value: object, event: str) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            self.changed.emit(event)


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


class LayerStack:
    """An ordered list of layers, bottom first, with events for every change.

    ``inserted(index, layer)``, ``removed(index, layer)``, ``moved(old, new)`` and
    ``layer_changed(layer, property)`` (forwarded from each layer's ``changed``).
    """

    inserted = Signal(int, object)
    removed = Signal(int, object)
    moved = Signal(int, int)
    layer_changed = Signal(object, str)

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._forwarders: dict[int, Callable[[str], None]] = {}

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> Layer:
        return self._layers[index]

    def __contains__(self, layer: object) -> bool:
        return any(item is layer for item in self._layers)

    def index(self, layer: Layer) -> int:
        for i, item in enumerate(self._layers):
            if item is layer:
                return i
        raise ValueError(f"{layer!r} is not in the stack")

    def append(self, layer: Layer) -> None:
        self.insert(len(self._layers), layer)

    def add(self, layer: Layer) -> None:
        """Put a new layer on top of the data layers but below any layer that
        :attr:`Layer.stays_on_top` (a new heatmap never hides the annotations)."""
        index = next(
            (i for i, item in enumerate(self._layers) if item.stays_on_top), len(self._layers)
        )
        self.insert(index, layer)

    def insert(self, index: int, layer: Layer) -> None:
        if layer in self:
            raise ValueError(f"{layer!r} is already in the stack")
        index = max(0, min(index, len(self._layers)))
        self._layers.insert(index, layer)

        def forward(name: str, layer: Layer = layer) -> None:
            self.layer_changed.emit(layer, name)

        layer.changed.connect(forward)
        self._forwarders[id(layer)] = forward
        self.inserted.emit(index, layer)

    def remove(self, layer: Layer) -> None:
        index = self.index(layer)
        del self._layers[index]
        forward = self._forwarders.pop(id(layer), None)
        if forward is not None:
            layer.changed.disconnect(forward)
        self.removed.emit(index, layer)

    def clear(self) -> None:
        for layer in reversed(list(self._layers)):
            self.remove(layer)

    def move(self, layer: Layer, new_index: int) -> None:
        """Move ``layer`` to ``new_index`` (0 is the bottom, drawn first)."""
        old = self.index(layer)
        new_index = max(0, min(new_index, len(self._layers) - 1))
        if old == new_index:
            return
        del self._layers[old]
        self._layers.insert(new_index, layer)
        self.moved.emit(old, new_index)

    def of_kind(self, kind: type[Layer]) -> list[Layer]:
        return [layer for layer in self._layers if isinstance(layer, kind)]
