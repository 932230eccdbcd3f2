"""Layer settings kept per slide with the results, so a result comes back as it was left.

A pathologist tunes a heatmap (class shown, colormap, range, threshold, opacity, pixels,
clipping) and orders the layers; closing and reopening the slide restores the results
from the cache, and :class:`LayerSettingsStore` restores how they were shown.

Settings are keyed by the slide's ``SlideInfo.source_id`` (its content, so a renamed
or moved copy keeps them) and the layer's result identity (:func:`result_identity`:
the result-cache key, else model and scope), in ``layer-settings.json`` in the user data
folder, rewritten atomically on every change (as :mod:`viewer.pixel_size` keeps typed
pixel sizes).  A damaged file gives a message naming it and the cause, an empty store,
and is kept aside as ``<name>.damaged`` before anything new is written.

Order is kept as each layer's position in the stack when it was saved; a restored
layer goes below every present layer saved higher and above the rest
(:func:`restore_index`), whatever order the results arrive in.  Qt-free; GUI thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from inference.core.paths import user_data_dir
from viewer.layers.base import Layer, LayerStack
from viewer.layers.colormaps import CONTINUOUS
from viewer.layers.heatmap import HeatmapLayer, shown_index
from viewer.slide_keyed_file import SlideKeyedFile

log = logging.getLogger(__name__)

#: The file in the user data folder.
STORE_FILE_NAME = "layer-settings.json"
STORE_VERSION = 1
#: Slides remembered at most; the least recently saved are forgotten first.
MAX_SLIDES = 500


def result_identity(layer: Layer) -> str | None:
    """What identifies a layer's result across sessions: the result-cache key its
    provenance records, else ``model_sha256:scope``, followed by ``#view`` for one of
    several layers of a result (``"view"`` in its provenance: the class map, the
    confidence, a class's probability); ``None`` for layers that are not model results
    (masks, explanations, annotations)."""
    if not isinstance(layer, HeatmapLayer) or layer.result.task == "explanation":
        return None
    prov = layer.provenance
    key = prov.get("cache_key")
    sha = prov.get("model_sha256")
    if isinstance(key, str) and key:
        identity = key
    elif isinstance(sha, str) and sha:
        identity = f"{sha}:{prov.get('scope', '')}"
    else:
        return None
    view = prov.get("view")
    return f"{identity}#{view}" if isinstance(view, str) and view else identity


def layer_settings(layer: HeatmapLayer) -> dict[str, Any]:
    """What is remembered of a layer: its display settings, not its visibility."""
    settings = layer.settings()
    settings.pop("visible", None)
    return settings


def apply_settings(layer: HeatmapLayer, settings: Mapping[str, Any]) -> list[str]:
    """Give ``layer`` the remembered ``settings`` (as :func:`layer_settings` made them).

    Values that no longer fit (a class the result lacks, an unknown colormap, an empty
    range) are skipped; returns the names of those skipped.
    """
    skipped: list[str] = []

    def attempt(name: str, action: Any) -> None:
        try:
            action()
        except (TypeError, ValueError, KeyError):
            skipped.append(name)

    if "class" in settings:
        wanted = str(settings["class"])

        def set_class() -> None:
            layer.class_index = shown_index(wanted, layer.class_names)

        attempt("class", set_class)
    if "colormap" in settings:
        if settings["colormap"] in CONTINUOUS:
            layer.colormap = str(settings["colormap"])
        else:
            skipped.append("colormap")
    if "range" in settings:
        attempt("range", lambda: _set_range(layer, settings["range"]))
    if "threshold" in settings:
        attempt("threshold", lambda: _set_threshold(layer, settings["threshold"]))
    if "interpolation" in settings:
        attempt("interpolation", lambda: setattr(layer, "interpolation", settings["interpolation"]))
    if "opacity" in settings:
        attempt("opacity", lambda: setattr(layer, "opacity", _finite(settings["opacity"])))
    if "clip_to_tissue" in settings:
        if isinstance(settings["clip_to_tissue"], bool):
            layer.clip_to_tissue = settings["clip_to_tissue"]
        else:
            skipped.append("clip_to_tissue")
    return skipped


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not finite: {value!r}")
    return number


def _set_range(layer: HeatmapLayer, value: object) -> None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"a range is two numbers, not {value!r}")
    layer.value_range = (_finite(value[0]), _finite(value[1]))


def _set_threshold(layer: HeatmapLayer, value: object) -> None:
    layer.threshold = None if value is None else _finite(value)


def restore_index(stack: LayerStack, order: int, orders: Mapping[int, int]) -> int | None:
    """Where a restored layer saved at position ``order`` goes in ``stack``: just below
    the lowest present layer saved higher (``orders``: ``id(layer) -> saved position``
    of the present layers that have one); ``None``: on top of the data layers, as a new
    layer goes."""
    above = [i for i, layer in enumerate(stack) if orders.get(id(layer), -1) > order]
    return min(above) if above else None


class LayerSettingsStore:
    """Remembered layer settings, by slide and result (see the module docstring).

    The file is ``{"version": 1, "slides": {source_id: {"file": "a.svs", "saved":
    "2024-05-01T10:00:00", "layers": {result_id: {"settings": {...}, "order": 3}}}}}``.
    ``problem`` names the file and the cause when it could not be read or written;
    ``None`` when all is well.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / STORE_FILE_NAME
        self._file = SlideKeyedFile(
            self.path,
            STORE_VERSION,
            contents="the remembered layer settings",
            kind="layer-settings",
            unsaved="layer settings could not be saved ({cause}); they hold until SlideLens closes",
        )
        self._slides: dict[str, dict[str, Any]] = {
            str(source_id): entry
            for source_id, entry in self._file.load().items()
            if isinstance(entry, dict) and isinstance(entry.get("layers"), dict)
        }

    @property
    def problem(self) -> str | None:
        """What went wrong reading or writing the file, naming it; ``None`` when fine."""
        return self._file.problem

    def get(self, source_id: str, result_id: str) -> tuple[dict[str, Any], int | None] | None:
        """The settings remembered for a result on a slide and its saved position in the
        stack (``None`` when unknown); ``None`` when nothing is remembered."""
        entry = self._slides.get(source_id, {}).get("layers", {}).get(result_id)
        if not isinstance(entry, dict) or not isinstance(entry.get("settings"), dict):
            return None
        order = entry.get("order")
        return dict(entry["settings"]), order if isinstance(order, int) else None

    def remember(self, source_id: str, layers: Iterable[Layer], file_name: str = "") -> None:
        """Save the settings and positions of the model-result layers in ``layers`` (a
        stack, bottom first) for the slide; results not in ``layers`` keep what was
        remembered for them.  Writes only when something changed."""
        slide = self._slides.get(source_id, {"layers": {}})
        stored: dict[str, Any] = dict(slide.get("layers", {}))
        for position, layer in enumerate(layers):
            result_id = result_identity(layer)
            if result_id is None or not isinstance(layer, HeatmapLayer):
                continue
            stored[result_id] = {"settings": layer_settings(layer), "order": position}
        if source_id in self._slides and stored == slide.get("layers"):
            return
        self._slides.pop(source_id, None)  # re-inserted last: the most recently saved
        self._slides[source_id] = {
            "file": file_name,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "layers": stored,
        }
        while len(self._slides) > MAX_SLIDES:
            del self._slides[next(iter(self._slides))]
        self._save()

    def _save(self) -> None:
        self._file.save(self._slides)
